//! Build records and explanations: what each step's key was made of, kept
//! so that a later miss can name the input that changed. Nothing here
//! affects a key.

use std::collections::{BTreeMap, HashMap};

use petgraph::stable_graph::NodeIndex;
use serde::{Deserialize, Serialize};

use crate::digest::CacheKey;
use crate::ir::BuildGraph;

use super::BuildOptions;

/// What a step's key was made of, kept so a later miss can be explained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StepInputs {
    /// blake3 of the canonical op.
    pub(super) op: String,
    pub(super) parent: Option<String>,
    /// Context files: source path -> content digest (hex).
    #[serde(default)]
    pub(super) files: BTreeMap<String, String>,
    /// Context bind mounts: selected path -> (file -> content digest).
    #[serde(default)]
    pub(super) binds: BTreeMap<String, BTreeMap<String, String>>,
    /// Source stages: name -> key (hex).
    #[serde(default)]
    pub(super) stages: BTreeMap<String, String>,
    /// Base images and images copied from: as named -> manifest digest.
    #[serde(default)]
    pub(super) bases: BTreeMap<String, String>,
    /// A RUN step's environment (image env and build args in scope).
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) epoch: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct BuildRecord {
    pub(super) steps: BTreeMap<String, RecordedStep>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct RecordedStep {
    pub(super) key: CacheKey,
    pub(super) inputs: StepInputs,
}

pub(super) fn record_name(
    opts: &BuildOptions,
    graph: &BuildGraph,
    targets: &[NodeIndex],
) -> String {
    let names: Vec<&str> = graph
        .targets
        .iter()
        .filter(|t| targets.contains(&t.node))
        .map(|t| t.name.as_str())
        .collect();
    format!("{}#{}", opts.spec_id, names.join(","))
}

/// Names the input that changed since the last build of this step.
pub(super) fn explain(
    previous: &BuildRecord,
    id: &str,
    now: &StepInputs,
    ids: &HashMap<NodeIndex, String>,
    graph: &BuildGraph,
    n: NodeIndex,
) -> String {
    let Some(old) = previous.steps.get(id) else {
        return "not built before".to_string();
    };
    let old = &old.inputs;
    if old.env != now.env {
        return env_change(&old.env, &now.env, graph);
    }
    if old.op != now.op {
        return "the step's definition changed".to_string();
    }
    if old.bases != now.bases {
        return map_change(&old.bases, &now.bases, "base");
    }
    if old.stages != now.stages {
        let changed: Vec<&str> = (now.stages.iter())
            .filter(|(k, v)| old.stages.get(*k) != Some(v))
            .map(|(k, _)| k.as_str())
            .collect();
        return match changed.as_slice() {
            [] => "its source stages changed".to_string(),
            [one] => format!("source stage {one} changed"),
            many => format!("source stages {} changed", many.join(", ")),
        };
    }
    if old.parent != now.parent {
        let p = graph
            .parent(n)
            .and_then(|p| ids.get(&p))
            .cloned()
            .unwrap_or_default();
        return format!("its parent step {p} changed");
    }
    if old.files != now.files {
        return format!("context files: {}", file_changes(&old.files, &now.files));
    }
    if old.binds != now.binds {
        let empty = BTreeMap::new();
        for (src, files) in &now.binds {
            let before = old.binds.get(src).unwrap_or(&empty);
            if before != files {
                return format!(
                    "bind mount source {src} changed ({})",
                    file_changes(before, files)
                );
            }
        }
        return "its bind mounts changed".to_string();
    }
    if old.epoch != now.epoch {
        let show = |e: Option<u64>| e.map_or("unset".to_string(), |e| e.to_string());
        return format!(
            "SOURCE_DATE_EPOCH: {} -> {}",
            show(old.epoch),
            show(now.epoch)
        );
    }
    "its layer is no longer in the cache".to_string()
}

/// `added a, changed b, removed c` (at most five, then a count).
fn file_changes(old: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> String {
    let mut changes = Vec::new();
    for (path, h) in now {
        match old.get(path) {
            None => changes.push(format!("added {path}")),
            Some(o) if o != h => changes.push(format!("changed {path}")),
            _ => {}
        }
    }
    for path in old.keys() {
        if !now.contains_key(path) {
            changes.push(format!("removed {path}"));
        }
    }
    let more = changes.len().saturating_sub(5);
    changes.truncate(5);
    let mut s = changes.join(", ");
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    s
}

/// `base ./vendor/base: sha256:ab… -> sha256:cd…`
fn map_change(
    old: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    what: &str,
) -> String {
    let short = |d: &str| {
        let cut = d.char_indices().nth(19).map_or(d.len(), |(i, _)| i);
        format!("{}…", &d[..cut])
    };
    for (k, v) in now {
        match old.get(k) {
            Some(o) if o != v => return format!("{what} {k}: {} -> {}", short(o), short(v)),
            None => return format!("{what} {k} is new"),
            _ => {}
        }
    }
    format!("a {what} changed")
}

/// `build arg V: 1 -> 2` or `env X: a -> b` (the first that changed).
fn env_change(
    old: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    graph: &BuildGraph,
) -> String {
    let what = |k: &str| {
        if graph.args.contains_key(k) {
            "build arg"
        } else {
            "env"
        }
    };
    for (k, v) in now {
        match old.get(k) {
            Some(o) if o != v => return format!("{} {k}: {o} -> {v}", what(k)),
            None => return format!("{} {k} is new ({v})", what(k)),
            _ => {}
        }
    }
    for k in old.keys() {
        if !now.contains_key(k) {
            return format!("{} {k} is no longer set", what(k));
        }
    }
    "its environment changed".to_string()
}

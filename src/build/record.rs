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
    /// Source stages / base images: what they resolved to.
    #[serde(default)]
    pub(super) sources: Vec<String>,
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
    if old.op != now.op {
        return "the step's definition changed".to_string();
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
        let mut changes = Vec::new();
        for (path, h) in &now.files {
            match old.files.get(path) {
                None => changes.push(format!("added {path}")),
                Some(o) if o != h => changes.push(format!("changed {path}")),
                _ => {}
            }
        }
        for path in old.files.keys() {
            if !now.files.contains_key(path) {
                changes.push(format!("removed {path}"));
            }
        }
        let more = changes.len().saturating_sub(5);
        changes.truncate(5);
        let mut s = format!("context files: {}", changes.join(", "));
        if more > 0 {
            s.push_str(&format!(" (and {more} more)"));
        }
        return s;
    }
    if old.sources != now.sources {
        return "a source stage or image changed".to_string();
    }
    "its layer is no longer in the cache".to_string()
}

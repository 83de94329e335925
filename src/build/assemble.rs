//! Image assembly: a target's chain folded into a config, history and
//! layer list; then the image is written and tagged.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::ir::{BaseRef, BuildGraph, MetaOp, Op, Target};
use crate::oci::{self, History, ImageConfig};
use crate::store::{Descriptor, Store};

use super::BuildOptions;
use super::layers::NodeResult;
use super::output::BuiltImage;
use super::plan::Plan;

/// Assembles, writes and tags every planned target.
pub(super) fn write_targets(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &HashMap<NodeIndex, NodeResult>,
    opts: &BuildOptions,
) -> Result<Vec<BuiltImage>> {
    // Targets of one name, one per platform in a build for several.
    let mut groups: Vec<(&str, Vec<&Target>)> = Vec::new();
    for t in graph
        .targets
        .iter()
        .filter(|t| plan.targets.contains(&t.node))
    {
        match groups.iter_mut().find(|(name, _)| *name == t.name) {
            Some((_, g)) => g.push(t),
            None => groups.push((&t.name, vec![t])),
        }
    }
    let mut images = Vec::new();
    for (_, group) in groups {
        let mut manifests = Vec::with_capacity(group.len());
        for t in &group {
            let (config, layers) = assemble(graph, plan, results, t, opts)?;
            if let Some(i) = &opts.cache_from {
                // cache_io: imported layers the image needs
                i.fetch(layers.iter().zip(&config.rootfs.diff_ids))?;
            }
            manifests.push(oci::write_image(store, &config, &layers)?);
        }
        let t = group[0];
        let (manifest, config_digest) = match manifests.as_slice() {
            [one] => {
                let config = oci::load_image(store, &one.digest)?.config_digest;
                (one.clone(), config)
            }
            // An index has no config: its digest is its ID.
            several => {
                let index = oci::write_index(store, several)?;
                let digest = index.digest;
                (index, digest)
            }
        };
        for name in &t.tags {
            store.set_tag(name, &manifest)?;
        }
        images.push(BuiltImage {
            target: t.name.clone(),
            manifest,
            config_digest,
            names: t.tags.clone(),
            platforms: if manifests.len() > 1 {
                manifests
            } else {
                Vec::new()
            },
        });
    }
    Ok(images)
}

/// Applies ENV steps the way `ImageConfig::apply` does (a variable already
/// set keeps its place and takes the new value, a new one is appended), but
/// through an index, so a chain of many ENV steps stays linear.
#[derive(Default)]
struct EnvIndex {
    /// Position of each variable in `config.env`; None = rebuild.
    pos: Option<HashMap<String, usize>>,
}

impl EnvIndex {
    /// The config's env changed by something else (a base).
    fn reset(&mut self) {
        self.pos = None;
    }

    fn apply(&mut self, config: &mut ImageConfig, vars: &[(String, String)]) {
        let env = config.config.env.get_or_insert_with(Vec::new);
        let pos = self.pos.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(env.len());
            for (i, e) in env.iter().enumerate() {
                let k = e.split_once('=').map_or(e.as_str(), |x| x.0);
                m.entry(k.to_string()).or_insert(i);
            }
            m
        });
        for (k, v) in vars {
            let entry = format!("{k}={v}");
            match pos.get(k) {
                Some(&i) => env[i] = entry,
                None => {
                    pos.insert(k.clone(), env.len());
                    env.push(entry);
                }
            }
        }
    }
}

fn created(epoch: u64) -> String {
    rfc3339(epoch)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC), without a date crate.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The config and layers of the image a node's chain produces.
pub(super) fn assemble(
    graph: &BuildGraph,
    plan: &Plan,
    results: &HashMap<NodeIndex, NodeResult>,
    target: &Target,
    opts: &BuildOptions,
) -> Result<(ImageConfig, Vec<Descriptor>)> {
    let chain = graph.chain(target.node);
    let mut config = ImageConfig::scratch(Some(created(opts.epoch)));
    // An image from scratch has the default PATH and works in `/`, as with
    // BuildKit.
    config.config.env = Some(vec![format!("PATH={}", crate::ir::DEFAULT_PATH)]);
    config.config.working_dir = Some("/".to_string());
    let mut layers = Vec::new();
    let mut env = EnvIndex::default();
    // ONBUILD triggers are for the direct children of an image: a stage
    // drops the OnBuild of its base (image or stage), as Docker does; a
    // Dockerfile frontend has run them at the start of the stage.
    let mut stage: Option<&str> = None;
    for n in chain {
        let step = &graph.graph[n];
        if stage.is_some_and(|s| s != step.stage) {
            config.config.on_build = None;
        }
        stage = Some(&step.stage);
        match &step.op {
            Op::Base(b) => {
                if let Some(Some(img)) = plan.bases.get(&n) {
                    let defaults = config.config.clone();
                    config = img.config.clone();
                    config.created = Some(created(opts.epoch));
                    config.config.on_build = None;
                    if b.base == BaseRef::Scratch {
                        // `scratch` on a platform: its empty image, with the
                        // same defaults as the host's.
                        config.config = defaults;
                    }
                    layers = img.layers.clone();
                    env.reset();
                }
            }
            Op::Meta(MetaOp::Env(vars)) => {
                env.apply(&mut config, vars);
                config.history.extend(history(graph, n, opts, true));
            }
            Op::Meta(m) => {
                config.apply(m);
                if let MetaOp::Cmd(_) = m {
                    // As BuildKit's Dockerfile frontend (dispatchCmd), on
                    // Linux too; ENTRYPOINT leaves it as it is.
                    config.config.args_escaped = Some(true);
                }
                config.history.extend(history(graph, n, opts, true));
            }
            Op::Copy(_) | Op::Run(_) | Op::Workdir(_) => {
                if let Op::Workdir(w) = &step.op {
                    config.config.working_dir = Some(w.path.clone());
                }
                let r = results.get(&n).ok_or_else(|| {
                    Error::msg(format!("internal: no result for {}", graph.describe(n)))
                })?;
                match &r.layer {
                    Some((desc, diff_id)) => {
                        layers.push(desc.clone());
                        config.rootfs.diff_ids.push(*diff_id);
                        config.history.extend(history(graph, n, opts, false));
                    }
                    None => config.history.extend(history(graph, n, opts, true)),
                }
            }
        }
    }
    // A target stage without steps of its own ends on its base stage's node.
    if stage.is_some_and(|s| s != target.stage) {
        config.config.on_build = None;
    }
    Ok((config, layers))
}

/// The history entry of a step, `None` for a step BuildKit records none for
/// (ONBUILD); only steps without a layer can have none.
fn history(graph: &BuildGraph, n: NodeIndex, opts: &BuildOptions, empty: bool) -> Option<History> {
    let created_by = crate::ir::history::created_by(&graph.graph[n].op)
        .or_else(|| (!empty).then(|| graph.describe(n)))?;
    Some(History {
        created: Some(created(opts.epoch)),
        created_by: Some(created_by),
        author: None,
        comment: Some("strata".to_string()),
        empty_layer: empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn indexed_env_matches_apply() {
        let steps = vec![
            vec![kv("A", "1"), kv("B", "2")],
            vec![kv("PATH", "/x")],
            vec![kv("A", "3"), kv("C", "")],
            vec![kv("B", "4"), kv("B", "5")],
        ];
        let mut base = ImageConfig::scratch(None);
        // A duplicate in the base: both ways change the first one.
        base.config.env = Some(vec!["PATH=/bin".into(), "D".into(), "PATH=/dup".into()]);
        let mut plain = base.clone();
        let mut indexed = base.clone();
        let mut index = EnvIndex::default();
        for vars in &steps {
            plain.apply(&MetaOp::Env(vars.clone()));
            index.apply(&mut indexed, vars);
        }
        assert_eq!(plain.config.env, indexed.config.env);
        assert_eq!(
            indexed.config.env.unwrap(),
            ["PATH=/x", "D", "PATH=/dup", "A=3", "B=5", "C="]
        );
    }
}

//! Layer chains: the layers of the image at a node, from its base's layers
//! and the results of the steps before it.

use petgraph::stable_graph::NodeIndex;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::{BuildGraph, CopyFrom, Op};
use crate::oci::{self, SnapshotTimes};
use crate::store::{CacheRecord, Descriptor, Store};

use super::BuildOptions;
use super::plan::{Plan, Status};
use super::schedule::Finished;

/// The results of the nodes finished so far.
pub(super) type Results = Finished<NodeIndex, NodeResult>;

/// The result of one node.
#[derive(Clone, Debug)]
pub(super) struct NodeResult {
    /// Layer blob and diff_id (None: no layer).
    pub(super) layer: Option<(Descriptor, Digest)>,
}

pub(super) fn layer_of(rec: &CacheRecord, opts: &BuildOptions) -> Option<(Descriptor, Digest)> {
    let diff_id = rec.diff_id?;
    let desc = rec.layers.get(opts.compression.name())?.clone();
    Some((desc, diff_id))
}

/// Layers of the image at `node` (its chain's base layers and step layers).
pub(super) fn chain_layers(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
) -> Result<Vec<(Descriptor, Digest)>> {
    Ok(chain_layers_origin(graph, plan, results, node, 0)?
        .into_iter()
        .map(|(d, id, _)| (d, id))
        .collect())
}

/// [`chain_layers`] with how each layer's snapshot shows its mtimes: a
/// base's layers as their tars say, the build steps' layers restamped
/// (`oci::SnapshotTimes`).
pub(super) fn chain_layers_origin(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
    epoch: u64,
) -> Result<Vec<(Descriptor, Digest, SnapshotTimes)>> {
    let layers = chain_layers_known(graph, plan, results, node, epoch)?;
    if let Some(i) = &plan.imports {
        i.fetch(layers.iter().map(|(d, id, _)| (d, id)))?; // cache_io: parents of executed steps
    }
    Ok(layers)
}

fn chain_layers_known(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
    epoch: u64,
) -> Result<Vec<(Descriptor, Digest, SnapshotTimes)>> {
    let results = results.lock()?;
    let mut layers = Vec::new();
    for n in graph.chain(node) {
        if let Some(Some(img)) = plan.bases.get(&n) {
            if img.layers.len() != img.config.rootfs.diff_ids.len() {
                return Err(Error::corrupt(
                    format!("image {}", img.manifest.digest),
                    "the config's diff_ids do not match the manifest's layers",
                ));
            }
            layers = img
                .layers
                .iter()
                .cloned()
                .zip(img.config.rootfs.diff_ids.iter().copied())
                .map(|(d, id)| (d, id, SnapshotTimes::Layer))
                .collect();
        }
        if let Some(NodeResult {
            layer: Some((d, diff_id)),
        }) = results.get(&n)
        {
            layers.push((d.clone(), *diff_id, SnapshotTimes::Step { epoch }));
        }
    }
    Ok(layers)
}

/// The base layers the steps that will run stack or read (a RUN's parent
/// chain, a stage copy's source chain, a copy that looks up owners by
/// name), bottom first per base, without repeats.
fn base_layers_needed(graph: &BuildGraph, plan: &Plan) -> Vec<(Descriptor, Digest)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for step in plan.steps.iter().filter(|s| s.status == Status::Run) {
        let n = step.node;
        let mut from = Vec::new();
        match &graph.graph[n].op {
            Op::Run(_) | Op::Workdir(_) => from.extend(graph.parent(n)),
            Op::Copy(c) => {
                if matches!(c.from, CopyFrom::Stage(_)) {
                    from.extend(graph.sources_of(n));
                }
                if c.chown.is_some() {
                    from.extend(graph.parent(n));
                }
            }
            _ => {}
        }
        for node in from {
            for b in graph.chain(node) {
                let Some(Some(img)) = plan.bases.get(&b) else {
                    continue;
                };
                for (d, id) in img.layers.iter().zip(&img.config.rootfs.diff_ids) {
                    if seen.insert(*id) {
                        out.push((d.clone(), *id));
                    }
                }
            }
        }
    }
    out
}

/// Makes the snapshots of the base layers the build will need, on up to
/// `threads` threads of the scope, while the scheduler starts the first
/// steps: a step that needs one waits only for what is left of its
/// unpacking (`oci::layer_snapshot` makes each once). Errors are left to
/// the step that needs the snapshot, which tries again and reports them.
pub(super) fn prefetch_base_snapshots<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    store: &'s Store,
    graph: &BuildGraph,
    plan: &Plan,
    threads: usize,
) {
    let queue: Vec<(Descriptor, Digest)> = base_layers_needed(graph, plan)
        .into_iter()
        .filter(|(_, id)| !oci::has_snapshot(store, id))
        .collect();
    if queue.is_empty() {
        return;
    }
    let n = threads.clamp(1, queue.len());
    let queue = std::sync::Arc::new(std::sync::Mutex::new(queue.into_iter()));
    for _ in 0..n {
        let queue = queue.clone();
        scope.spawn(move || {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((desc, id)) = next else { break };
                let _ = oci::layer_snapshot(store, &desc, &id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::session::{Frontend, Session, SpecFile};
    use crate::spec::LowerOptions;
    use crate::store::Area;

    fn load<'a>(store: &'a Store, dir: &std::path::Path, text: &str, tag: &str) -> Session<'a> {
        let path = dir.join("Dockerfile");
        std::fs::write(&path, text).unwrap();
        let spec = SpecFile {
            path,
            text: text.to_string(),
            frontend: Frontend::Dockerfile,
        };
        let lower = LowerOptions {
            tags: [tag.to_string()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect(),
            ..LowerOptions::default()
        };
        Session::load(store, spec, lower).unwrap()
    }

    fn snapshots(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.area_dir(Area::Snapshots))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The snapshots of a base's layers are made by the prefetch alone,
    /// before any step runs, for the steps that will stack them (a RUN),
    /// and not for a build that never needs them.
    #[test]
    fn prefetch_makes_the_base_snapshots_a_run_needs_before_any_step() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("f"), b"base file").unwrap();

        // A base image of two layers, built from scratch by COPY.
        let base = load(
            &store,
            &ctx,
            "FROM scratch\nCOPY f /f\nCOPY f /g\n",
            "prefetch-base:1",
        );
        let opts = base.options(&ctx);
        let plan = base.plan(&opts).unwrap();
        base.execute(plan, &opts, &|_| {}).unwrap();
        // Start with no snapshot at all (the build may have made some).
        std::fs::remove_dir_all(store.area_dir(Area::Snapshots)).ok();
        std::fs::create_dir_all(store.area_dir(Area::Snapshots)).unwrap();

        let prefetch = |text: &str| {
            let s = load(&store, &ctx, text, "");
            let opts = s.options(&ctx);
            let plan = s.plan(&opts).unwrap();
            std::thread::scope(|scope| {
                prefetch_base_snapshots(scope, &store, s.graph(), &plan, 2);
            });
            let ids: Vec<String> = plan
                .bases
                .values()
                .flatten()
                .flat_map(|img| img.config.rootfs.diff_ids.iter().map(|d| d.hex()))
                .collect();
            ids
        };

        // Nothing stacks the base's layers: nothing is unpacked.
        let ids = prefetch("FROM prefetch-base:1\nENV A=b\nCOPY f /h\n");
        assert_eq!(ids.len(), 2);
        assert!(snapshots(&store).is_empty(), "{:?}", snapshots(&store));

        // A RUN on the base: both layers are snapshots once the prefetch
        // is done, though no step has run.
        let mut ids = prefetch("FROM prefetch-base:1\nRUN true\n");
        ids.sort();
        assert_eq!(snapshots(&store), ids);
        let dir = store.area_dir(Area::Snapshots);
        for id in &ids {
            let d: Digest = format!("sha256:{id}").parse().unwrap();
            assert!(oci::has_snapshot(&store, &d));
        }
        let with = |name: &str| {
            ids.iter()
                .filter(|id| dir.join(id).join(name).is_file())
                .count()
        };
        assert_eq!((with("f"), with("g")), (1, 1));
    }
}

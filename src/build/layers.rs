//! Layer chains: the layers of the image at a node, from its base's layers
//! and the results of the steps before it.

use std::path::PathBuf;
use std::sync::Arc;

use petgraph::stable_graph::NodeIndex;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::{BuildGraph, CopyFrom, Op};
use crate::layer;
use crate::oci::{self, SnapshotTimes};
use crate::store::{CacheRecord, Descriptor, Store};

use super::BuildOptions;
use super::pending::PendingLayer;
use super::plan::{Plan, Status};
use super::schedule::Finished;

/// The results of the nodes finished so far.
pub(super) type Results = Finished<NodeIndex, NodeResult>;

/// The result of one node.
#[derive(Clone, Debug)]
pub(super) struct NodeResult {
    /// Layer blob and diff_id (None: no layer, or one still pending).
    pub(super) layer: Option<(Descriptor, Digest)>,
    /// A RUN's layer whose blob is still being written beside the build
    /// (build::pending): its snapshot is there already. Settled into
    /// `layer` when the steps are done.
    pub(super) pending: Option<Arc<PendingLayer>>,
}

impl NodeResult {
    /// A result with `layer` (or none) in the store.
    pub(super) fn stored(layer: Option<(Descriptor, Digest)>) -> NodeResult {
        NodeResult {
            layer,
            pending: None,
        }
    }
}

/// One layer of a node's chain as the steps after it read it.
// A chain is a few of these, made once per step: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(super) enum ChainLayer {
    /// A layer in the store (a base's, or a step's), its snapshot made
    /// from its blob when first needed.
    Stored {
        desc: Descriptor,
        diff_id: Digest,
        times: SnapshotTimes,
    },
    /// A RUN's layer whose blob is still being written: its snapshot is
    /// its upper dir, in place already.
    Pending(Arc<PendingLayer>),
}

impl ChainLayer {
    /// The layer's snapshot directory (overlay form), made if need be.
    pub(super) fn snapshot(&self, store: &Store) -> Result<PathBuf> {
        match self {
            ChainLayer::Stored {
                desc,
                diff_id,
                times,
            } => oci::layer_snapshot_with(store, desc, diff_id, *times),
            ChainLayer::Pending(p) => Ok(p.snapshot().to_path_buf()),
        }
    }

    /// The layer's blob and diff_id, waiting for a pending layer's.
    pub(super) fn stored(&self) -> Result<(Descriptor, Digest)> {
        match self {
            ChainLayer::Stored { desc, diff_id, .. } => Ok((desc.clone(), *diff_id)),
            ChainLayer::Pending(p) => p.wait(),
        }
    }
}

pub(super) fn layer_of(rec: &CacheRecord, opts: &BuildOptions) -> Option<(Descriptor, Digest)> {
    let diff_id = rec.diff_id?;
    let desc = rec.layers.get(opts.compression.name())?.clone();
    Some((desc, diff_id))
}

/// Layers of the image at `node` (its chain's base layers and step layers),
/// bottom first. With `epoch`, a step's snapshot, when it has to be made,
/// shows its mtimes as a build step's (`oci::SnapshotTimes::Step`: what a
/// RUN stacks, what a stage copy reads); without, as its tar says (a reader
/// that looks at names and metadata only).
pub(super) fn chain_layers(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
    epoch: Option<u64>,
) -> Result<Vec<ChainLayer>> {
    let layers = chain_layers_known(graph, plan, results, node, epoch)?;
    if let Some(i) = &plan.imports {
        // cache_io: parents of executed steps (a pending layer is this
        // build's own, never imported).
        let stored: Vec<(&Descriptor, &Digest)> = layers
            .iter()
            .filter_map(|l| match l {
                ChainLayer::Stored { desc, diff_id, .. } => Some((desc, diff_id)),
                ChainLayer::Pending(_) => None,
            })
            .collect();
        i.fetch(stored)?;
    }
    Ok(layers)
}

/// [`chain_layers`] as blobs and diff_ids, waiting for pending layers.
pub(super) fn chain_blobs(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
) -> Result<Vec<(Descriptor, Digest)>> {
    chain_layers(graph, plan, results, node, None)?
        .iter()
        .map(ChainLayer::stored)
        .collect()
}

fn chain_layers_known(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    node: NodeIndex,
    epoch: Option<u64>,
) -> Result<Vec<ChainLayer>> {
    let step_times = epoch.map_or(SnapshotTimes::Layer, |epoch| SnapshotTimes::Step { epoch });
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
                .map(|(desc, diff_id)| ChainLayer::Stored {
                    desc,
                    diff_id,
                    times: SnapshotTimes::Layer,
                })
                .collect();
        }
        match results.get(&n) {
            Some(NodeResult {
                pending: Some(p), ..
            }) => layers.push(ChainLayer::Pending(p.clone())),
            Some(NodeResult {
                layer: Some((d, diff_id)),
                ..
            }) => layers.push(ChainLayer::Stored {
                desc: d.clone(),
                diff_id: *diff_id,
                times: step_times,
            }),
            _ => {}
        }
    }
    Ok(layers)
}

/// The (mode, uid, gid) of directory `path` in the image made of `layers`
/// (bottom first), or None when it is not a directory there: as
/// [`oci::lower_dir`] says from the layers' directory indexes, and for a
/// pending layer (no index yet) from its snapshot, which holds the same
/// entries in overlay form.
pub(super) fn lower_dir(
    store: &Store,
    layers: &[ChainLayer],
    path: &str,
) -> Result<Option<(u32, u32, u32)>> {
    let stored: Option<Vec<(Descriptor, Digest)>> = layers
        .iter()
        .map(|l| match l {
            ChainLayer::Stored { desc, diff_id, .. } => Some((desc.clone(), *diff_id)),
            ChainLayer::Pending(_) => None,
        })
        .collect();
    if let Some(stored) = stored {
        return oci::lower_dir(store, &stored, path);
    }
    let path = path.trim_start_matches("./").trim_matches('/');
    // The path and its ancestors, the path first.
    let mut prefixes = vec![path];
    let mut p = path;
    while let Some((parent, _)) = p.rsplit_once('/') {
        prefixes.push(parent);
        p = parent;
    }
    for l in layers.iter().rev() {
        match l {
            ChainLayer::Stored { desc, diff_id, .. } => {
                let d = oci::layer_dirs(store, desc, diff_id)?;
                if let Some(meta) = d.dirs.get(path) {
                    return Ok(Some(*meta));
                }
                if prefixes.iter().any(|x| d.whiteouts.contains(*x)) {
                    return Ok(None);
                }
                if prefixes.iter().skip(1).any(|x| d.opaque.contains(*x)) {
                    return Ok(None);
                }
            }
            ChainLayer::Pending(p) => match snapshot_dir(p.snapshot(), &prefixes)? {
                Lookup::Dir(meta) => return Ok(Some(meta)),
                Lookup::Hidden => return Ok(None),
                Lookup::Through => {}
            },
        }
    }
    Ok(None)
}

/// What one layer's snapshot (overlay form) says of a directory path.
enum Lookup {
    /// The layer has it as a directory, with this (mode, uid, gid).
    Dir((u32, u32, u32)),
    /// A whiteout, or an opaque ancestor, hides it in the layers below.
    Hidden,
    /// The layer says nothing of it: look below.
    Through,
}

/// [`Lookup`] of `prefixes[0]` (its ancestors follow it) in the snapshot
/// `dir`, walking real directories only, as the layer's tar lists them.
fn snapshot_dir(dir: &std::path::Path, prefixes: &[&str]) -> Result<Lookup> {
    use std::os::unix::fs::MetadataExt;
    if prefixes[0].is_empty() {
        return Ok(Lookup::Through);
    }
    let mut cur = dir.to_path_buf();
    let mut opaque_above = false;
    // From the top ancestor down to the path itself.
    for (i, x) in prefixes.iter().enumerate().rev() {
        cur.push(x.rsplit('/').next().unwrap_or(x));
        let meta = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(format!("reading {}", cur.display()), e)),
        };
        if layer::is_overlay_whiteout(&meta) {
            return Ok(Lookup::Hidden);
        }
        if !meta.is_dir() {
            break;
        }
        if i == 0 {
            return Ok(Lookup::Dir((meta.mode() & 0o7777, meta.uid(), meta.gid())));
        }
        opaque_above |= layer::is_overlay_opaque(&cur)
            .map_err(|e| Error::io(format!("reading {}", cur.display()), e))?;
    }
    Ok(if opaque_above {
        Lookup::Hidden
    } else {
        Lookup::Through
    })
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

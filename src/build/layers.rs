//! Layer chains: the layers of the image at a node, from its base's layers
//! and the results of the steps before it.

use petgraph::stable_graph::NodeIndex;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::BuildGraph;
use crate::oci::SnapshotTimes;
use crate::store::{CacheRecord, Descriptor};

use super::BuildOptions;
use super::plan::Plan;
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

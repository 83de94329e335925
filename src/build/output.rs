//! What a build produced and where it goes besides the store: exports,
//! the metadata file, the shared cache.

use std::path::PathBuf;

use petgraph::stable_graph::NodeIndex;
use serde::Serialize;
use serde_json::json;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::BuildGraph;
use crate::oci::{self, ExportImage, OutputKind};
use crate::store::{Descriptor, Store};

use super::BuildOptions;
use super::plan::{Plan, PlannedStep, Status};

/// One built target.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltImage {
    pub target: String,
    pub manifest: Descriptor,
    /// The config's digest (the image ID); an index's own digest.
    pub config_digest: Digest,
    pub names: Vec<String>,
    /// In a build for several platforms, `manifest` is an index of these.
    pub platforms: Vec<Descriptor>,
}

/// What a build did.
pub struct BuildReport {
    pub images: Vec<BuiltImage>,
    pub hits: usize,
    pub misses: usize,
    pub steps: Vec<PlannedStep>,
    /// Uncompressed layer blobs the build wrote and compressed, which
    /// neither its images nor its records name: removable once no build
    /// holds the store ([`crate::build::remove_uncompressed`]).
    pub uncompressed: Vec<Digest>,
}

/// cache_io: writes the imported records now backed by local blobs into
/// the store, then exports every layered step's record to `--cache-to`.
pub(super) fn share_cache(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    opts: &BuildOptions,
) -> Result<()> {
    if opts.cache_from.is_none() && opts.cache_to.is_empty() {
        return Ok(());
    }
    let finals: std::collections::HashSet<NodeIndex> =
        plan.targets.iter().flat_map(|t| graph.chain(*t)).collect();
    let mut records = Vec::new();
    for s in plan.steps.iter().filter(|s| s.status != Status::Free) {
        let np = &plan.nodes[&s.node];
        let record = match &np.cached {
            Some(r) if s.status == Status::Cached => Some(r.clone()),
            _ => store.get_cache(&np.layer_key)?,
        };
        if let Some(record) = record {
            records.push(crate::cache_io::ExportRecord {
                key: np.layer_key,
                record,
                in_final_image: finals.contains(&s.node),
            });
        }
    }
    if let Some(i) = &opts.cache_from {
        let used: Vec<_> = records.iter().map(|r| (r.key, r.record.clone())).collect();
        i.persist(&used)?;
    }
    for to in &opts.cache_to {
        crate::cache_io::export(store, &records, to, opts.cache_from.as_deref())
            .map_err(|e| Error::msg(format!("--cache-to {}: {e}", to.location)))?;
    }
    Ok(())
}

/// Where a build's images go besides the store.
pub struct Output {
    pub kind: OutputKind,
    pub dest: PathBuf,
}

/// Writes the built images to an output.
pub fn export(store: &Store, report: &BuildReport, output: &Output) -> Result<()> {
    let images: Vec<ExportImage> = report
        .images
        .iter()
        .map(|i| ExportImage {
            manifest: i.manifest.clone(),
            names: i.names.clone(),
        })
        .collect();
    oci::export(store, &images, output.kind, &output.dest)
}

/// The JSON written by `--metadata-file`.
pub fn metadata(report: &BuildReport) -> serde_json::Value {
    let image = |i: &BuiltImage| {
        json!({
            "target": i.target,
            "digest": i.manifest.digest.to_string(),
            "size": i.manifest.size,
            "config": { "digest": i.config_digest.to_string() },
            "names": i.names,
        })
    };
    json!({
        "image": report.images.first().map(image),
        "images": report.images.iter().map(image).collect::<Vec<_>>(),
        "cache": { "hits": report.hits, "misses": report.misses },
        "steps": report.steps,
    })
}

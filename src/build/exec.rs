//! Step execution: the only place a build has side effects (COPY, RUN and
//! WORKDIR layers, mounts, secrets). A COPY's or WORKDIR's result is stored
//! (blob, then cache record) before the step counts as finished; a RUN's
//! finishes with its snapshot in place and its blob and record written
//! beside the build (build::pending).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use petgraph::stable_graph::NodeIndex;

use crate::digest::CacheKey;
use crate::error::{Error, Result};
use crate::ir::{BuildGraph, Op};
use crate::layer::{self, Entry};
use crate::oci;
use crate::store::{CacheRecord, Descriptor, Store};

use super::BuildOptions;
use super::event::{Event, Progress, now};
use super::layers::{NodeResult, Results, layer_of};
use super::pending::{PendingLayer, Tars};
use super::plan::{Plan, PlannedStep, Status};

mod copy;
mod dest;
mod mounts;
mod run;
mod stubs;
mod workdir;

use copy::run_copy;
use run::run_run;
use workdir::run_workdir;

/// What a step made: a stored record, or a RUN's pending layer.
enum Made {
    Record(CacheRecord),
    Pending(Arc<PendingLayer>),
}

/// Runs (or reuses) one node.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_node(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    step: &PlannedStep,
    results: &Results,
    opts: &BuildOptions,
    tars: &Tars,
    progress: Progress,
) -> Result<NodeResult> {
    let n = step.node;
    let np = &plan.nodes[&n];
    // A layer written beside the build failed: nothing starts after it.
    if let Some(e) = tars.failure() {
        return Err(e);
    }
    match step.status {
        Status::Free => {
            return Ok(NodeResult::stored(None));
        }
        Status::Cached => {
            progress(Event::Cached {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
            });
            let rec = np
                .cached
                .as_ref()
                .ok_or_else(|| Error::msg("internal: cached step without a record"))?;
            return Ok(NodeResult::stored(layer_of(rec, opts)));
        }
        Status::Run => {}
    }
    progress(Event::Started {
        id: step.id.clone(),
        name: step.name.clone(),
        time: now(),
        reason: step.reason.clone(),
    });
    let start = Instant::now();
    let r = match &graph.graph[n].op {
        Op::Copy(c) => run_copy(store, graph, plan, n, c, results, opts).map(Made::Record),
        Op::Run(r) => {
            run_run(store, graph, plan, step, r, results, opts, tars, progress).map(Made::Pending)
        }
        Op::Workdir(w) => run_workdir(store, graph, plan, n, w, results, opts).map(Made::Record),
        _ => Err(Error::msg("internal: nothing to run")),
    };
    let r = r.and_then(|made| match made {
        Made::Record(rec) => {
            file_record(store, np.layer_key, &rec)?;
            Ok(NodeResult::stored(layer_of(&rec, opts)))
        }
        Made::Pending(p) => Ok(NodeResult {
            layer: None,
            pending: Some(p),
        }),
    });
    match r {
        Ok(result) => {
            progress(Event::Finished {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
                seconds: start.elapsed().as_secs_f64(),
            });
            Ok(result)
        }
        Err(e) => {
            progress(Event::Failed {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

/// Files `rec`, a step's record whose blob is in the store, under `key`: a
/// layer still being compressed gets its record when its compressed blob
/// is in the store.
pub(super) fn file_record(store: &Store, key: CacheKey, rec: &CacheRecord) -> Result<()> {
    match (super::compress::active(store), rec.diff_id) {
        (Some(bg), Some(d)) if bg.owns(&d) => {
            bg.record_when_done(key, rec.clone());
            Ok(())
        }
        _ => store.put_cache(&key, rec),
    }
}

/// Writes a layer of `entries` to the store and makes its cache record.
pub(super) fn write_layer_record(
    store: &Store,
    graph: &BuildGraph,
    n: NodeIndex,
    entries: Vec<Entry>,
    opts: &BuildOptions,
) -> Result<CacheRecord> {
    let dirs = oci::LayerDirs::from_entries(&entries);
    // A copy's snapshot shows each file with its source's mtime (see
    // oci::SnapshotTimes::Step); a RUN's snapshot is its upper dir.
    let times = match &graph.graph[n].op {
        Op::Copy(_) => Some(oci::source_times(&entries)),
        _ => None,
    };
    // During a build the layer is compressed beside it (build::compress).
    let (stats, desc) = match super::compress::active(store) {
        Some(bg) => bg.write_layer(n, entries)?,
        None => {
            let mut writer = store.blob_writer()?;
            let (stats, _) = layer::write_layer(entries, opts.compression, &mut writer)?;
            let (digest, size) = writer.commit()?;
            let desc = Descriptor {
                media_type: opts.compression.media_type().to_string(),
                digest,
                size,
                annotations: None,
                platform: None,
            };
            (stats, desc)
        }
    };
    oci::save_layer_dirs(store, &stats.diff_id, &dirs)?;
    if let Some(times) = times {
        oci::save_snapshot_times(store, &stats.diff_id, &times)?;
    }
    let mut layers = BTreeMap::new();
    layers.insert(opts.compression.name().to_string(), desc);
    Ok(CacheRecord {
        diff_id: Some(stats.diff_id),
        layers,
        created_by: graph.describe(n),
        size: stats.uncompressed_size,
    })
}

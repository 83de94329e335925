//! A RUN's layer made beside the build, off the critical path.
//!
//! When a RUN's command exits, its upper dir (stubs added, mode set) is the
//! layer in overlay form: the step finishes at once with a
//! [`PendingLayer`] that names that dir, and the steps after it stack it
//! (or read it: a stage copy, an owner lookup, WORKDIR) while a few
//! background workers ([`Tars`]) scan it, write and hash the layer tar,
//! commit the blob, hand it to compression and only then file the step's
//! cache record (a record never names a missing blob). A reader that needs
//! the layer's digest (a bind mount from the stage, the images) waits for
//! it.
//!
//! Invariants:
//! - The bytes of a layer, and so every digest and key, do not depend on
//!   when its tar is written: the worker scans the same dir the step would
//!   have, and nothing writes to it once the step is done (an overlay
//!   never writes to a lowerdir).
//! - The pending snapshot stays in the step's temp dir under the store's
//!   `tmp/` until no step can be using it as a lower: when the build's
//!   steps are done ([`settle`]) it is renamed to `snapshots/<diff_id>`
//!   (or dropped, when that exists already). A crash leaves it in `tmp/`,
//!   which the next store open or prune empties; nothing looks it up by
//!   name.
//! - The build does not end, and does not clean up, before every worker is
//!   done; a failed tar fails the build with its step named, and no new
//!   step starts after it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Instant;

use petgraph::stable_graph::NodeIndex;

use crate::digest::{CacheKey, Digest};
use crate::error::{Error, Result};
use crate::ir::BuildGraph;
use crate::layer;
use crate::oci;
use crate::store::{Descriptor, Store};

use super::BuildOptions;
use super::event::{Event, Progress, now};
use super::layers::{NodeResult, layer_of};

/// Environment variable (tests only): milliseconds each layer worker waits
/// after scanning a pending layer and before writing its tar, so that a
/// test can see the steps after it run meanwhile, or kill the build in the
/// middle of a layer.
pub const DELAY_ENV: &str = "STRATA_TEST_LAYER_DELAY_MS";

/// A layer whose snapshot is in place and whose blob is being written.
#[derive(Debug)]
pub(super) struct PendingLayer {
    /// The step's name, for errors.
    step: String,
    /// The upper dir: the layer in overlay form.
    snapshot: PathBuf,
    /// The temp dir (under `tmp/`) the snapshot lives in until settled.
    dir: Mutex<Option<tempfile::TempDir>>,
    /// The layer's blob and diff_id, or why they could not be made.
    done: Mutex<Option<std::result::Result<(Descriptor, Digest), String>>>,
    changed: Condvar,
}

impl PendingLayer {
    /// The snapshot later steps stack.
    pub(super) fn snapshot(&self) -> &Path {
        &self.snapshot
    }

    /// Waits for the layer's blob and diff_id.
    pub(super) fn wait(&self) -> Result<(Descriptor, Digest)> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = &*done {
                return r.clone().map_err(|e| self.error(&e));
            }
            done = self.changed.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn error(&self, e: &str) -> Error {
        Error::msg(format!("writing the layer of {}: {e}", self.step))
    }

    fn set(&self, r: std::result::Result<(Descriptor, Digest), String>) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.changed.notify_all();
    }

    /// Makes the snapshot `snapshots/<diff_id>` (once no step can stack
    /// it), or drops it when that exists already.
    fn settle(&self, store: &Store) -> Result<(Descriptor, Digest)> {
        let (desc, diff_id) = self.wait()?;
        oci::adopt_snapshot(store, &diff_id, &self.snapshot)?;
        drop(self.dir.lock().unwrap_or_else(|e| e.into_inner()).take());
        Ok((desc, diff_id))
    }
}

/// One layer to write: the step's node, id and cache key, and its layer.
struct Job {
    node: NodeIndex,
    id: String,
    key: CacheKey,
    layer: Arc<PendingLayer>,
}

/// The layer workers of one build.
pub(super) struct Tars {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    rx: Mutex<mpsc::Receiver<Job>>,
    /// The first failure of a worker.
    failed: Mutex<Option<String>>,
    /// The workers' thread ids (their priority goes back up at the end).
    threads: Mutex<Vec<libc::pid_t>>,
    /// Every layer submitted.
    all: Mutex<Vec<Arc<PendingLayer>>>,
    delay: Option<std::time::Duration>,
}

impl Tars {
    pub(super) fn new() -> Tars {
        let (tx, rx) = mpsc::channel();
        let delay = std::env::var(DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        Tars {
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(rx),
            failed: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            delay,
        }
    }

    /// Starts `threads` workers on `scope`; they run until [`Tars::close`]
    /// and the queue is empty.
    pub(super) fn start<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        store: &'s Store,
        graph: &'s BuildGraph,
        opts: &'s BuildOptions,
        threads: usize,
        progress: Progress<'s>,
    ) {
        for _ in 0..threads.max(1) {
            scope.spawn(move || {
                super::compress::lower_priority();
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                self.threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(tid);
                loop {
                    let job = self.rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { break };
                    // A panic fails this layer (its waiters must not
                    // wait forever), as the scheduler does for a step.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.write(store, graph, opts, &job, progress)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Error::msg("internal error: the layer worker panicked"))
                    })
                    .map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                        failed.get_or_insert_with(|| job.layer.error(e).to_string());
                    }
                    job.layer.set(r);
                }
            });
        }
    }

    /// Makes the upper dir `upper` (in the temp dir `dir`) node `node`'s
    /// pending layer and queues its writing; the cache record goes under
    /// `key` once the blob is in the store.
    pub(super) fn submit(
        &self,
        node: NodeIndex,
        (id, step): (&str, &str),
        key: CacheKey,
        dir: tempfile::TempDir,
        upper: PathBuf,
    ) -> Result<Arc<PendingLayer>> {
        let layer = Arc::new(PendingLayer {
            step: step.to_string(),
            snapshot: upper,
            dir: Mutex::new(Some(dir)),
            done: Mutex::new(None),
            changed: Condvar::new(),
        });
        let job = Job {
            node,
            id: id.to_string(),
            key,
            layer: layer.clone(),
        };
        (self.all.lock().unwrap_or_else(|e| e.into_inner())).push(layer.clone());
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.as_ref()
            .ok_or_else(|| Error::msg("internal: a layer submitted after the steps ended"))?
            .send(job)
            .map_err(|_| Error::msg("internal: the layer workers are gone"))?;
        Ok(layer)
    }

    /// The first failure of a layer worker, if any: no step starts after it.
    pub(super) fn failure(&self) -> Option<Error> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.as_ref().map(|e| Error::msg(e.clone()))
    }

    /// No more layers come: the workers finish the queue and stop (the
    /// scope they run on waits for them), at the steps' priority now that
    /// the build waits for them.
    pub(super) fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        super::compress::level_threads(&self.threads.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Scans, writes and hashes one layer, and files its cache record.
    fn write(
        &self,
        store: &Store,
        graph: &BuildGraph,
        opts: &BuildOptions,
        job: &Job,
        progress: Progress,
    ) -> Result<(Descriptor, Digest)> {
        let start = Instant::now();
        let entries =
            layer::entries_from_dir_with(job.layer.snapshot(), layer::Mtimes::Clamp(opts.epoch))?;
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        let rec = super::exec::write_layer_record(store, graph, job.node, entries, opts)?;
        super::exec::file_record(store, job.key, &rec)?;
        let layer = layer_of(&rec, opts)
            .ok_or_else(|| Error::msg("internal: a RUN's record without its layer"))?;
        progress(Event::Layer {
            id: job.id.clone(),
            name: job.layer.step.clone(),
            time: now(),
            seconds: start.elapsed().as_secs_f64(),
            diff_id: layer.1.to_string(),
            size: rec.size,
        });
        Ok(layer)
    }
}

impl Tars {
    /// Puts every layer the workers wrote into the store's snapshots, once
    /// they are done (after [`Tars::close`], when the scope they ran on has
    /// ended), also after a failed build: its finished steps' records name
    /// those layers. Then gives each pending result of `results` its layer.
    /// The first failed layer is the error.
    pub(super) fn settle(
        &self,
        store: &Store,
        results: &mut std::collections::HashMap<NodeIndex, NodeResult>,
    ) -> Result<()> {
        let all = std::mem::take(&mut *self.all.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = None;
        for p in &all {
            if let Err(e) = p.settle(store) {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        for r in results.values_mut() {
            if let Some(p) = r.pending.take() {
                r.layer = Some(p.wait()?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer whose scan fails: whoever waits for it gets the error
    /// naming its step, no step starts after it, nothing is recorded under
    /// its key, and settling the build reports it.
    #[test]
    fn a_failed_layer_fails_its_waiters_and_the_steps_after_it() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let graph = BuildGraph::default();
        let opts = BuildOptions::new(t.path(), "spec".to_string(), None);
        let key = CacheKey([7; 32]);
        let events = Mutex::new(Vec::new());
        let progress = |e: Event| events.lock().unwrap().push(e);
        let tars = Tars::new();
        assert!(tars.failure().is_none());
        std::thread::scope(|scope| {
            tars.start(scope, &store, &graph, &opts, 1, &progress);
            let dir = store.temp_dir().unwrap();
            let upper = dir.path().join("upper"); // never made
            let layer = tars
                .submit(NodeIndex::new(0), ("s/1", "RUN make"), key, dir, upper)
                .unwrap();
            let e = layer.wait().unwrap_err().to_string();
            assert!(e.starts_with("writing the layer of RUN make: "), "{e}");
            let f = tars.failure().expect("the failure is kept").to_string();
            assert_eq!(f, e);
            tars.close();
        });
        assert!(store.get_cache(&key).unwrap().is_none());
        assert!(events.lock().unwrap().is_empty());
        let e = tars.settle(&store, &mut Default::default()).unwrap_err();
        assert!(e.to_string().starts_with("writing the layer of RUN make"));
        let tmp = store.area_dir(crate::store::Area::Tmp);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}

//! Layer compression beside the build, off the critical path.
//!
//! While a build runs, a step writes its layer as an uncompressed tar blob
//! (its digest is the diff_id, known at once) and finishes; the steps after
//! it stack its snapshot, never its blob. The blob is compressed here, on a
//! few background threads at a lower CPU priority, into the compressed blob
//! the image references; the step's cache record is written when that blob
//! is in the store (a record never names a missing blob). Before the build
//! assembles its images, [`Background::finish`] waits for every layer the
//! build wrote and swaps in the compressed descriptors, so the manifest,
//! the digest strata prints and what a push or an export sends are one and
//! the same. The compressor is the one a one-pass write uses: the bytes,
//! and so the digests, do not depend on whether a layer was compressed here
//! or in line.
//!
//! A build registers its `Background` for its store for as long as it runs
//! ([`Background::start`]); [`active`] finds it from a step, which keeps
//! step signatures unchanged. Without one (`--compression none`, `strata
//! run --commit`) layers are written in one pass, in line, as before.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use petgraph::stable_graph::NodeIndex;

use crate::digest::{CacheKey, Digest};
use crate::error::{Error, Result};
use crate::ir::BuildGraph;
use crate::layer::{self, Compression};
use crate::store::{CacheRecord, Descriptor, Store};

use super::layers::NodeResult;
use super::plan::Plan;

/// The media type of an uncompressed layer blob.
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The compressions of one build's layers.
pub(super) struct Background {
    store: Store,
    compression: Compression,
    threads: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Digest>,
    running: usize,
    /// diff_id -> the compressed blob (or why it could not be made).
    done: HashMap<Digest, std::result::Result<Descriptor, String>>,
    /// Layers submitted and not done yet.
    pending: HashSet<Digest>,
    /// Cache records to write once their layer is compressed.
    records: HashMap<Digest, Vec<(CacheKey, CacheRecord)>>,
    /// Uncompressed blobs this build created (removed at the end).
    created: Vec<Digest>,
    /// The first error writing a cache record.
    record_error: Option<String>,
    /// Layers whose compression was stopped (no image needs them).
    cancelled: HashSet<Digest>,
    /// The nodes whose layers the build's images hold (None: all).
    exported: Option<HashSet<NodeIndex>>,
    /// Uncompressed blobs written deferred: their cache records name them,
    /// so they stay even when an image of the build had them compressed.
    deferred_blobs: HashSet<Digest>,
    /// Handles on the uncompressed layers this build wrote and queued:
    /// compression reads them rather than the blob's path. Since blobs are
    /// removed only under the exclusive store lock (`remove_uncompressed`),
    /// no other build can remove one while this build runs; the handle
    /// keeps compression independent of the path all the same (a test
    /// removes the file under it).
    held: HashMap<Digest, std::fs::File>,
}

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Arc<Background>>> {
    static ACTIVE: OnceLock<Mutex<HashMap<PathBuf, Arc<Background>>>> = OnceLock::new();
    ACTIVE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The background compression of the build running on `store`, if any.
pub(super) fn active(store: &Store) -> Option<Arc<Background>> {
    registry().get(store.root()).cloned()
}

/// Unregisters a build's [`Background`] when the build ends.
pub(super) struct Registration {
    root: PathBuf,
    bg: Arc<Background>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = registry();
        if r.get(&self.root).is_some_and(|b| Arc::ptr_eq(b, &self.bg)) {
            r.remove(&self.root);
        }
    }
}

impl Registration {
    pub(super) fn background(&self) -> &Arc<Background> {
        &self.bg
    }
}

impl Background {
    /// Registers background compression for a build on `store` (None for
    /// `Compression::None`: there is nothing to do beside the build, and
    /// when another build of this process already compresses for this
    /// store: this one then writes in line).
    pub(super) fn start(
        store: &Store,
        compression: Compression,
        threads: usize,
    ) -> Option<Registration> {
        if compression == Compression::None {
            return None;
        }
        let mut r = registry();
        if r.contains_key(store.root()) {
            return None;
        }
        let bg = Arc::new(Background {
            store: store.clone(),
            compression,
            threads: threads.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        r.insert(store.root().to_path_buf(), bg.clone());
        pool_below_steps(true);
        Some(Registration {
            root: store.root().to_path_buf(),
            bg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Only the layers of `nodes` (see [`exported_nodes`]) are compressed
    /// as they are written; the others are left deferred from the start,
    /// so their compression does not take CPU from the steps.
    pub(super) fn export_only(&self, nodes: HashSet<NodeIndex>) {
        self.lock().exported = Some(nodes);
    }

    /// Writes `entries`, node `n`'s layer, as an uncompressed layer blob and
    /// queues its compression if an image of the build holds it; returns
    /// the record of the step as it stands during the build (the
    /// uncompressed blob under the build's compression name, which
    /// [`Background::finish`] replaces, or which stays when deferred).
    pub(super) fn write_layer(
        self: &Arc<Self>,
        n: NodeIndex,
        entries: Vec<layer::Entry>,
    ) -> Result<(layer::LayerStats, Descriptor)> {
        let mut writer = self.store.blob_writer()?;
        let (stats, _) = layer::write_layer(entries, Compression::None, &mut writer)?;
        let existed = self.store.has_blob(&stats.diff_id);
        let (digest, size, held) = writer.commit_keeping()?;
        if digest != stats.diff_id {
            return Err(Error::msg(
                "internal: an uncompressed layer's digest is not its diff_id",
            ));
        }
        let desc = Descriptor {
            media_type: TAR.to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        };
        let exported = {
            let mut st = self.lock();
            if !existed {
                st.created.push(digest);
            }
            let exported = st.exported.as_ref().is_none_or(|e| e.contains(&n));
            if exported {
                // Kept until its compression reads it (one already done
                // needs none).
                if !st.done.contains_key(&digest) {
                    st.held.entry(digest).or_insert(held);
                }
            } else {
                st.deferred_blobs.insert(digest);
            }
            exported
        };
        if exported {
            self.submit(digest)?;
        }
        Ok((stats, desc))
    }

    /// Queues the compression of the uncompressed blob `digest` (once).
    fn submit(self: &Arc<Self>, digest: Digest) -> Result<()> {
        let start = {
            let mut st = self.lock();
            if st.done.contains_key(&digest) || !st.pending.insert(digest) {
                false
            } else {
                st.queue.push_back(digest);
                if st.running < self.threads {
                    st.running += 1;
                    true
                } else {
                    false
                }
            }
        };
        if start {
            let bg = self.clone();
            std::thread::Builder::new()
                .name("strata-compress".into())
                .spawn(move || bg.work())
                .map_err(|e| Error::io("starting a compression thread", e))?;
        }
        Ok(())
    }

    /// Whether `diff_id` is a layer this build compresses.
    pub(super) fn owns(&self, diff_id: &Digest) -> bool {
        let st = self.lock();
        st.pending.contains(diff_id) || st.done.contains_key(diff_id)
    }

    /// Files `rec` under `key` once its layer is compressed (at once if it
    /// is), with the compressed blob in place of the uncompressed one.
    pub(super) fn record_when_done(&self, key: CacheKey, rec: CacheRecord) {
        let Some(diff_id) = rec.diff_id else { return };
        let mut st = self.lock();
        match st.done.get(&diff_id).cloned() {
            Some(Ok(desc)) => {
                drop(st);
                self.put_record(key, rec, desc);
            }
            Some(Err(_)) => {} // finish() reports it
            None => st.records.entry(diff_id).or_default().push((key, rec)),
        }
    }

    fn put_record(&self, key: CacheKey, mut rec: CacheRecord, desc: Descriptor) {
        rec.layers = [(self.compression.name().to_string(), desc)].into();
        if let Err(e) = self.store.put_cache(&key, &rec) {
            self.lock().record_error.get_or_insert(e.to_string());
        }
    }

    fn work(self: Arc<Self>) {
        lower_priority();
        loop {
            let next = {
                let mut st = self.lock();
                match st.queue.pop_front() {
                    Some(d) => d,
                    None => {
                        st.running -= 1;
                        return;
                    }
                }
            };
            let result = self.compress(&next).map_err(|e| e.to_string());
            let records = {
                let mut st = self.lock();
                st.pending.remove(&next);
                if st.cancelled.contains(&next) {
                    // finish() filed its records with the uncompressed blob.
                    drop(st);
                    self.changed.notify_all();
                    continue;
                }
                st.done.insert(next, result.clone());
                st.records.remove(&next).unwrap_or_default()
            };
            if let Ok(desc) = &result {
                for (key, rec) in records {
                    self.put_record(key, rec, desc.clone());
                }
            }
            self.changed.notify_all();
        }
    }

    fn compress(&self, diff_id: &Digest) -> Result<Descriptor> {
        if let Some(d) = test_delay() {
            std::thread::sleep(d);
        }
        // The gzip members (and zstd's workers, started from the calling
        // thread) are compressed on the pool's lowered threads.
        match pool() {
            Some(pool) => pool.install(|| self.compress_here(diff_id)),
            None => self.compress_here(diff_id),
        }
    }

    fn compress_here(&self, diff_id: &Digest) -> Result<Descriptor> {
        let held = self.lock().held.remove(diff_id);
        let inner = match held {
            Some(f) => f,
            None => self.store.open_blob(diff_id)?,
        };
        let blob = Stoppable {
            inner,
            bg: self,
            diff_id,
        };
        let tar = std::io::BufReader::with_capacity(1 << 17, blob);
        let writer = layer::compress_tar(tar, self.compression, self.store.blob_writer()?)?;
        let (digest, size) = writer.commit()?;
        Ok(Descriptor {
            media_type: self.compression.media_type().to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        })
    }

    /// Waits for the layers in `needed` (those the build's images hold;
    /// see [`image_layers`]), compressing the deferred ones among them too,
    /// writes the cache records and puts the compressed descriptors into
    /// `results`. The compression of every other layer is stopped and its
    /// record filed with the uncompressed blob (deferred). Also called
    /// after a failed build (no results, nothing needed), so that no
    /// compression outlives it.
    ///
    /// Returns the uncompressed blobs this build created and compressed
    /// that none of its records names. It does not remove them: another
    /// build on the store may have found one and named it (its blob writer
    /// found the blob there), so they go only through
    /// [`remove_uncompressed`], once no build holds the store.
    pub(super) fn finish(
        self: &Arc<Self>,
        results: &mut HashMap<NodeIndex, NodeResult>,
        needed: &HashSet<Digest>,
    ) -> Result<Vec<Digest>> {
        for d in deferred(results, needed) {
            self.submit(d)?;
        }
        let mut deferred_records = Vec::new();
        {
            let mut st = self.lock();
            let stop: Vec<Digest> = st
                .pending
                .iter()
                .filter(|d| !needed.contains(d))
                .copied()
                .collect();
            for d in stop {
                st.cancelled.insert(d);
                if st.queue.contains(&d) {
                    // Not started: no worker will take it off `pending`.
                    st.queue.retain(|q| *q != d);
                    st.pending.remove(&d);
                    st.held.remove(&d);
                }
                if let Some(recs) = st.records.remove(&d) {
                    deferred_records.extend(recs);
                }
            }
        }
        for (key, rec) in deferred_records {
            if let Err(e) = self.store.put_cache(&key, &rec) {
                self.lock().record_error.get_or_insert(e.to_string());
            }
        }
        // No step runs any more: the images wait for these compressions.
        pool_below_steps(false);
        let mut st = self.lock();
        while !st.pending.is_empty() {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let done = st.done.clone();
        // The cache records of cancelled and deferred layers name their
        // uncompressed blobs, even when a compression of them finished:
        // those blobs stay.
        let mut named_by_records = st.cancelled.clone();
        named_by_records.extend(st.deferred_blobs.iter().copied());
        let created = std::mem::take(&mut st.created);
        let record_error = st.record_error.take();
        drop(st);
        swap_in(results, &done)?;
        if let Some(e) = record_error {
            return Err(Error::msg(format!("writing a cache record: {e}")));
        }
        Ok(created
            .into_iter()
            .filter(|d| done.get(d).is_some_and(|r| r.is_ok()) && !named_by_records.contains(d))
            .collect())
    }

    /// Whether the compression of `diff_id` was stopped.
    fn is_cancelled(&self, diff_id: &Digest) -> bool {
        self.lock().cancelled.contains(diff_id)
    }
}

/// How far below the steps' CPU priority background compression runs.
const NICENESS: libc::c_int = 10;

/// The process's CPU priority (its main thread's), or None if it cannot be
/// read.
fn process_priority() -> Option<libc::c_int> {
    // SAFETY: getpriority on this process's id has no preconditions; errno
    // is cleared first since -1 is a valid priority.
    unsafe {
        *libc::__errno_location() = 0;
        let p = libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t);
        (p != -1 || *libc::__errno_location() == 0).then_some(p)
    }
}

/// Sets thread `tid`'s CPU priority to the process's plus `below` (at most
/// 19). Relative to the process, so a strata started under `nice` never
/// raises a thread above it, and a thread started by an already lowered
/// one does not go lower still. Going back up needs CAP_SYS_NICE (root;
/// not a rootless strata, whose threads then stay lowered).
fn set_priority(tid: libc::pid_t, below: libc::c_int) {
    if let Some(p) = process_priority() {
        // SAFETY: setpriority on a thread of this process has no preconditions.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (p + below).min(19));
        }
    }
}

/// The compression pool's threads (their ids).
fn pool_threads() -> MutexGuard<'static, Vec<libc::pid_t>> {
    static THREADS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
    THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lowers the calling thread [`NICENESS`] below the process, so that
/// compression takes the cores the steps leave idle (also the layer
/// workers of build::pending).
pub(super) fn lower_priority() {
    // SAFETY: gettid has no preconditions.
    set_priority(unsafe { libc::gettid() }, NICENESS);
}

/// Puts the compression pool's threads [`NICENESS`] below the process while
/// steps run (`true`), or level with it once the build waits for them
/// (`false`): compression is then the build's critical path.
fn pool_below_steps(below: bool) {
    if pool().is_some() {
        set_threads_below(&pool_threads(), below);
    }
}

/// Puts `threads` (lowered by [`lower_priority`]) back level with the
/// process, once the build waits for them.
pub(super) fn level_threads(threads: &[libc::pid_t]) {
    set_threads_below(threads, false);
}

fn set_threads_below(threads: &[libc::pid_t], below: bool) {
    for tid in threads {
        set_priority(*tid, if below { NICENESS } else { 0 });
    }
}

/// The threads background compression runs its parallel work on. Not
/// rayon's global pool: on Linux a thread inherits its creator's priority,
/// and the global pool is started by whoever uses it first (context
/// hashing, at normal priority), so the gzip members compressed on it ran
/// beside the steps at their priority. None if no thread could be started
/// (compression then runs on the global pool).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .thread_name(|i| format!("strata-compress-pool-{i}"))
            .start_handler(|_| {
                lower_priority();
                // SAFETY: gettid has no preconditions.
                pool_threads().push(unsafe { libc::gettid() });
            })
            .build()
            .ok()
    })
    .as_ref()
}

/// A blob reader that fails once its layer's compression is stopped.
struct Stoppable<'a, R> {
    inner: R,
    bg: &'a Background,
    diff_id: &'a Digest,
}

impl<R: std::io::Read> std::io::Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.bg.is_cancelled(self.diff_id) {
            return Err(std::io::Error::other(
                "compression stopped: no image needs this layer",
            ));
        }
        self.inner.read(buf)
    }
}

/// Removes `blobs`, uncompressed layer blobs a build made and compressed
/// ([`crate::build::BuildReport::uncompressed`]), if no build, push or pull
/// holds the store now (its exclusive lock is free; the caller must hold
/// no store lock) and nothing names them: no image in `index.json` or of a
/// container, no cache record. That is the store's one rule for removing a
/// blob (`rmi` and `prune` keep it too). A blob left because another
/// process held the store stays until `strata prune`, which collects it
/// once nothing names it. Returns the blobs removed; a store it cannot
/// read leaves everything in place (the build's result stands).
pub fn remove_uncompressed(store: &Store, blobs: &[Digest]) -> Vec<Digest> {
    if blobs.is_empty() {
        return Vec::new();
    }
    match store.try_lock_exclusive() {
        Ok(Some(lock)) => {
            crate::images::remove_unreferenced(store, &lock, blobs).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The nodes whose layers the images of the build's targets hold (their
/// chains).
pub(super) fn exported_nodes(graph: &BuildGraph, plan: &Plan) -> HashSet<NodeIndex> {
    graph
        .targets
        .iter()
        .filter(|t| plan.targets.contains(&t.node))
        .flat_map(|t| graph.chain(t.node))
        .collect()
}

/// The diff_ids of the layers the images of the build's targets hold
/// (their chains' layers; base layers included).
pub(super) fn image_layers(
    graph: &BuildGraph,
    plan: &Plan,
    results: &HashMap<NodeIndex, NodeResult>,
) -> HashSet<Digest> {
    exported_nodes(graph, plan)
        .into_iter()
        .filter_map(|n| results.get(&n)?.layer.as_ref().map(|(_, d)| *d))
        .collect()
}

/// Layers in `needed` that `results` hold as uncompressed blobs: deferred
/// by an earlier build, or written by this one.
fn deferred(results: &HashMap<NodeIndex, NodeResult>, needed: &HashSet<Digest>) -> Vec<Digest> {
    let mut v: Vec<Digest> = results
        .values()
        .filter_map(|r| r.layer.as_ref())
        .filter(|(desc, diff_id)| {
            desc.media_type == TAR && desc.digest == *diff_id && needed.contains(diff_id)
        })
        .map(|(_, d)| *d)
        .collect();
    v.sort_unstable_by_key(|d| d.hex());
    v.dedup();
    v
}

/// Files again, with the compressed blob, the cache records of this
/// build's hits that name a deferred layer's uncompressed blob when the
/// build compressed that layer for one of its images (see [`deferred`]): the
/// next build then takes the compressed blob from the cache instead of
/// compressing the layer again, and a `--cache-to` export sends it.
pub(super) fn refile_compressed(
    store: &Store,
    plan: &Plan,
    results: &HashMap<NodeIndex, NodeResult>,
    compression: Compression,
) -> Result<()> {
    let name = compression.name();
    for (n, np) in &plan.nodes {
        let Some(rec) = &np.cached else { continue };
        let (Some(diff_id), Some(old)) = (rec.diff_id, rec.layers.get(name)) else {
            continue;
        };
        if old.media_type != TAR || old.digest != diff_id {
            continue;
        }
        let Some((desc, d)) = results.get(n).and_then(|r| r.layer.as_ref()) else {
            continue;
        };
        if *d == diff_id && desc.media_type != TAR {
            let mut rec = rec.clone();
            rec.layers.insert(name.to_string(), desc.clone());
            store.put_cache(&np.layer_key, &rec)?;
        }
    }
    Ok(())
}

/// Puts the compressed descriptors of `done` into `results`.
fn swap_in(
    results: &mut HashMap<NodeIndex, NodeResult>,
    done: &HashMap<Digest, std::result::Result<Descriptor, String>>,
) -> Result<()> {
    for r in results.values_mut() {
        let Some((desc, diff_id)) = &mut r.layer else {
            continue;
        };
        if desc.media_type != TAR || desc.digest != *diff_id {
            continue;
        }
        match done.get(diff_id) {
            Some(Ok(c)) => *desc = c.clone(),
            Some(Err(e)) => {
                return Err(Error::msg(format!("compressing layer {diff_id}: {e}")));
            }
            None => {}
        }
    }
    Ok(())
}

/// For a build without a [`Background`] (`--compression none`, or another
/// build of this process compresses for the store): compresses, in line,
/// the deferred layers its images hold, so no image gets an uncompressed
/// layer its compression does not call for.
pub(super) fn compress_deferred(
    store: &Store,
    compression: Compression,
    results: &mut HashMap<NodeIndex, NodeResult>,
    needed: &HashSet<Digest>,
) -> Result<()> {
    if compression == Compression::None {
        return Ok(());
    }
    let mut done = HashMap::new();
    for d in deferred(results, needed) {
        let tar = std::io::BufReader::with_capacity(1 << 17, store.open_blob(&d)?);
        let writer = layer::compress_tar(tar, compression, store.blob_writer()?)?;
        let (digest, size) = writer.commit()?;
        let desc = Descriptor {
            media_type: compression.media_type().to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        };
        done.insert(d, Ok(desc));
    }
    swap_in(results, &done)
}

/// Environment variable (tests only): milliseconds each background
/// compression waits before it starts, so that a test can run another
/// build while a layer is still being compressed.
pub const COMPRESS_DELAY_ENV: &str = "STRATA_TEST_COMPRESS_DELAY_MS";

fn test_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var(COMPRESS_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(std::time::Duration::from_millis)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(dir: &std::path::Path) -> Vec<layer::Entry> {
        layer::entries_from_dir(dir, 0).unwrap()
    }

    fn gettid() -> libc::pid_t {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    fn priority(id: libc::pid_t) -> libc::c_int {
        // SAFETY: as in lower_priority.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, id as libc::id_t) }
    }

    #[test]
    fn background_compression_threads_run_below_the_steps() {
        let process = priority(std::process::id() as libc::pid_t);
        let lowered = (process + NICENESS).min(19);
        // Started from an already lowered thread, as by a compression
        // thread: the pool's threads are still NICENESS below the process.
        let pool = std::thread::spawn(|| {
            lower_priority();
            pool().expect("the compression pool starts")
        })
        .join()
        .unwrap();
        // Every thread has run its start handler (which takes the list)
        // once it has run a job; only then is the list taken and held, so
        // that no build of another test moves the pool's priority meanwhile.
        pool.broadcast(|_| ());
        let threads = pool_threads();
        let mut tids: Vec<libc::pid_t> = pool.broadcast(|_| gettid());
        tids.sort_unstable();
        let mut known = threads.clone();
        known.sort_unstable();
        assert_eq!(tids, known, "every pool thread is known by its id");
        set_threads_below(&threads, true);
        let workers: Vec<libc::c_int> = pool.broadcast(|_| priority(gettid()));
        assert!(
            workers.iter().all(|w| *w == lowered),
            "{workers:?}, process at {process}"
        );
        // Work handed to the pool runs on those threads, nested parallel
        // work (the gzip members) included.
        let nested: Vec<libc::c_int> = pool.install(|| {
            use rayon::prelude::*;
            (0..8).into_par_iter().map(|_| priority(gettid())).collect()
        });
        assert!(nested.iter().all(|p| *p == lowered), "{nested:?}");
        // Once the build waits for them, level with the steps (which needs
        // CAP_SYS_NICE: root).
        set_threads_below(&threads, false);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let workers: Vec<libc::c_int> = pool.broadcast(|_| priority(gettid()));
            assert!(workers.iter().all(|w| *w == process), "{workers:?}");
        }
    }

    #[test]
    fn a_layer_compressed_beside_the_build_is_the_one_a_one_pass_write_gives() {
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(files.join("d")).unwrap();
        for i in 0..50 {
            std::fs::write(
                files.join(format!("d/f{i}")),
                format!("content {i}\n").repeat(100),
            )
            .unwrap();
        }
        let store = Store::open(&tmp.path().join("store")).unwrap();
        // In line, as without a build.
        let mut w = store.blob_writer().unwrap();
        let (stats, _) = layer::write_layer(entries(&files), Compression::Gzip, &mut w).unwrap();
        let (inline, _) = w.commit().unwrap();

        let other = Store::open(&tmp.path().join("store2")).unwrap();
        let reg = Background::start(&other, Compression::Gzip, 2).unwrap();
        assert!(active(&other).is_some());
        let bg = reg.background().clone();
        let (bstats, desc) = bg.write_layer(NodeIndex::new(0), entries(&files)).unwrap();
        assert_eq!(bstats.diff_id, stats.diff_id);
        assert_eq!(
            (desc.media_type.as_str(), desc.digest),
            (TAR, stats.diff_id)
        );
        assert!(bg.owns(&stats.diff_id));
        let key = CacheKey([7; 32]);
        let rec = CacheRecord {
            diff_id: Some(stats.diff_id),
            layers: [("gzip".to_string(), desc.clone())].into(),
            created_by: "test".into(),
            size: stats.uncompressed_size,
        };
        bg.record_when_done(key, rec);
        let mut results = HashMap::new();
        results.insert(
            NodeIndex::new(0),
            NodeResult::stored(Some((desc, stats.diff_id))),
        );
        let made = bg.finish(&mut results, &[stats.diff_id].into()).unwrap();
        let (d, _) = results[&NodeIndex::new(0)].layer.clone().unwrap();
        assert_eq!(d.digest, inline, "same compressed bytes as in line");
        assert_eq!(d.media_type, Compression::Gzip.media_type());
        assert!(other.has_blob(&inline));
        assert_eq!(made, [stats.diff_id], "the uncompressed blob is spare");
        assert!(other.has_blob(&stats.diff_id), "finish removes nothing");
        drop(reg);
        assert_eq!(remove_uncompressed(&other, &made), made);
        assert!(!other.has_blob(&stats.diff_id), "then it is removed");
        let stored = other.get_cache(&key).unwrap().unwrap();
        assert_eq!(
            stored.layers["gzip"].digest, inline,
            "the record names the gzip blob"
        );
        assert!(active(&other).is_none());
    }

    /// Issue 12: a spare uncompressed blob is removed only when no build
    /// holds the store and nothing names it; here another build on the
    /// same store (a second handle, `--compression none`) found the blob
    /// this build created and named it in its cache record and manifest.
    #[test]
    fn a_spare_uncompressed_blob_another_build_names_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("f"), "shared layer\n".repeat(500)).unwrap();
        let root = tmp.path().join("store");
        let store = Store::open(&root).unwrap();
        let reg = Background::start(&store, Compression::Gzip, 1).unwrap();
        let bg = reg.background().clone();
        let (stats, desc) = bg.write_layer(NodeIndex::new(0), entries(&files)).unwrap();
        let mut results: HashMap<_, _> = [(
            NodeIndex::new(0),
            NodeResult::stored(Some((desc.clone(), stats.diff_id))),
        )]
        .into();
        let made = bg.finish(&mut results, &[stats.diff_id].into()).unwrap();
        drop(reg);
        assert_eq!(made, [stats.diff_id]);

        // The other build, still running: it found the blob in place.
        let other = Store::open(&root).unwrap();
        let running = other.lock_shared().unwrap();
        let mut w = other.blob_writer().unwrap();
        layer::write_layer(entries(&files), Compression::None, &mut w).unwrap();
        assert_eq!(w.commit().unwrap().0, stats.diff_id);
        assert!(
            remove_uncompressed(&store, &made).is_empty(),
            "a build holds the store"
        );
        assert!(store.has_blob(&stats.diff_id));

        // It files its record (and could tag an image) and ends.
        let rec = CacheRecord {
            diff_id: Some(stats.diff_id),
            layers: [("none".to_string(), desc.clone())].into(),
            created_by: "test".into(),
            size: stats.uncompressed_size,
        };
        other.put_cache(&CacheKey([3; 32]), &rec).unwrap();
        drop(running);
        assert!(
            remove_uncompressed(&store, &made).is_empty(),
            "a record names it"
        );
        assert!(store.has_blob(&stats.diff_id));

        // Once nothing names it, it goes.
        other.remove_cache(&CacheKey([3; 32])).unwrap();
        assert_eq!(remove_uncompressed(&store, &made), made);
        assert!(!store.has_blob(&stats.diff_id));
    }

    /// Another build on the same store that made the same layer may
    /// remove its uncompressed blob when it finishes, while this build's
    /// compression of it is still queued: the compression reads the
    /// content this build wrote, not the blob's path.
    #[test]
    fn a_queued_compression_survives_the_uncompressed_blob_being_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big");
        let small = tmp.path().join("small");
        std::fs::create_dir_all(&big).unwrap();
        std::fs::create_dir_all(&small).unwrap();
        // One thread: the small layer waits while the big one compresses.
        let bytes: Vec<u8> = (0..32u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(big.join("f"), bytes).unwrap();
        std::fs::write(small.join("g"), "small\n").unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let reg = Background::start(&store, Compression::Gzip, 1).unwrap();
        let bg = reg.background().clone();
        let (bs, bdesc) = bg.write_layer(NodeIndex::new(0), entries(&big)).unwrap();
        let (ss, sdesc) = bg.write_layer(NodeIndex::new(1), entries(&small)).unwrap();
        // What the other build's finish does.
        std::fs::remove_file(store.blob_path(&ss.diff_id)).unwrap();
        let mut results = HashMap::new();
        for (i, (desc, stats)) in [(bdesc, bs), (sdesc, ss.clone())].into_iter().enumerate() {
            results.insert(
                NodeIndex::new(i),
                NodeResult::stored(Some((desc, stats.diff_id))),
            );
        }
        let needed = results
            .values()
            .map(|r| r.layer.clone().unwrap().1)
            .collect();
        bg.finish(&mut results, &needed).unwrap();
        let (d, _) = results[&NodeIndex::new(1)].layer.clone().unwrap();
        assert_eq!(d.media_type, Compression::Gzip.media_type());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(store.open_blob(&d.digest).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            Digest::of(&tar),
            ss.diff_id,
            "the compressed blob holds the layer"
        );
        drop(reg);
    }

    #[test]
    fn a_layer_no_image_holds_is_deferred_and_compressed_when_one_does() {
        let tmp = tempfile::tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("f"), "stage output\n".repeat(1000)).unwrap();
        let mut w = tempfile::tempfile().unwrap();
        let (stats, _) = layer::write_layer(entries(&files), Compression::Gzip, &mut w).unwrap();
        let inline = {
            let s = Store::open(&tmp.path().join("inline")).unwrap();
            let mut w = s.blob_writer().unwrap();
            layer::write_layer(entries(&files), Compression::Gzip, &mut w).unwrap();
            w.commit().unwrap().0
        };

        let store = Store::open(&tmp.path().join("store")).unwrap();
        // No worker ever starts: the layer is still queued when the build ends.
        let bg = Arc::new(Background {
            store: store.clone(),
            compression: Compression::Gzip,
            threads: 0,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let (_, desc) = bg.write_layer(NodeIndex::new(0), entries(&files)).unwrap();
        let key = CacheKey([9; 32]);
        bg.record_when_done(
            key,
            CacheRecord {
                diff_id: Some(stats.diff_id),
                layers: [("gzip".to_string(), desc.clone())].into(),
                created_by: "test".into(),
                size: stats.uncompressed_size,
            },
        );
        let node = NodeIndex::new(0);
        let mut results: HashMap<_, _> = [(
            node,
            NodeResult::stored(Some((desc.clone(), stats.diff_id))),
        )]
        .into();
        bg.finish(&mut results, &HashSet::new()).unwrap();
        let stored = store.get_cache(&key).unwrap().expect("the record is filed");
        assert_eq!(stored.layers["gzip"].media_type, TAR, "deferred");
        assert_eq!(stored.layers["gzip"].digest, stats.diff_id);
        assert!(
            store.has_blob(&stats.diff_id),
            "the uncompressed blob stays"
        );
        assert!(!store.has_blob(&inline));

        // A later build whose image holds it (its cached record gives the tar).
        let reg = Background::start(&store, Compression::Gzip, 2).unwrap();
        let mut later = results.clone();
        reg.background()
            .finish(&mut later, &[stats.diff_id].into())
            .unwrap();
        let (d, _) = later[&node].layer.clone().unwrap();
        assert_eq!(d.digest, inline, "the bytes of a one-pass write");
        assert!(store.has_blob(&inline));
        drop(reg);

        // The same without a Background.
        let mut again = results.clone();
        compress_deferred(
            &store,
            Compression::Gzip,
            &mut again,
            &[stats.diff_id].into(),
        )
        .unwrap();
        assert_eq!(again[&node].layer.clone().unwrap().0.digest, inline);
        let mut unneeded = results.clone();
        compress_deferred(&store, Compression::Gzip, &mut unneeded, &HashSet::new()).unwrap();
        assert_eq!(unneeded[&node].layer.clone().unwrap().0.media_type, TAR);
    }
}

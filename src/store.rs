//! The content-addressed store.
//!
//! The store root is itself an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), so skopeo, umoci and podman read it directly; tags
//! are `org.opencontainers.image.ref.name` annotations on the manifest
//! descriptors in `index.json`. Beside the layout live `cache/` (one JSON
//! record per cache key), `builds/` (the last build record of each target),
//! `statcache/`, `tmp/` and the lock files `lock` and `index.lock`.
//!
//! Invariants:
//! - Every write goes to `tmp/` first, is fsynced, renamed into place, and the
//!   directory is fsynced: a process killed at any point leaves either the old
//!   or the new file, never a partial one. Leftovers in `tmp/` are removed by
//!   [`Store::open`] when no other process holds the store lock.
//! - Blobs are content-addressed: two processes writing the same blob both
//!   rename identical content into the same path.
//! - Anything read back (index.json, cache records, small blobs) is treated as
//!   untrusted: malformed content is an [`Error::Corrupt`], never a panic.
//! - A process that writes to the store holds [`Store::lock_shared`] for the
//!   whole time (a build or a push does); gc/prune take
//!   [`Store::lock_exclusive`]. The one writer without it, `rmi`, only
//!   rewrites `index.json`, under [`Store::lock_index`]; so whoever empties
//!   `tmp/` holds both.
//! - A blob is removed only under the exclusive lock, and only when nothing
//!   names it (an image in `index.json` or of a container, a cache record):
//!   then no build, push or pull is running that found it and has yet to
//!   write the manifest or record naming it. `prune`, `rmi` and a build's
//!   removal of its uncompressed layer blobs (`images::remove_unreferenced`)
//!   all keep this; a blob a running process found is never taken from it.

mod cache_record;
mod descriptor;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use cache_record::CacheRecord;
pub use descriptor::{Descriptor, ImageIndex, OciLayoutFile, Platform, media_type};

use crate::digest::{CacheKey, Digest, Sha256Writer};
use crate::error::{Error, IoContext, Result};

/// Largest blob [`Store::read_blob`] reads into memory (configs, manifests).
pub const MAX_SMALL_BLOB: u64 = 64 << 20;

/// An open store. Cheap to clone paths from; holds no file handles.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held store lock (shared or exclusive); released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Writes one blob: the content goes to a temp file under `tmp/` while its
/// sha256 is computed; [`BlobWriter::commit`] moves it into place.
pub struct BlobWriter {
    inner: Sha256Writer<BufWriter<tempfile::NamedTempFile>>,
    blobs_dir: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Flushes the temp file; returns its digest and size.
    fn finish(self) -> Result<(Digest, u64, tempfile::NamedTempFile, PathBuf)> {
        let (digest, size, buf) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io("writing a blob to the store", e.into_error()))?;
        Ok((digest, size, tmp, self.blobs_dir))
    }

    /// Finishes the blob: fsync, rename into `blobs/sha256/<hex>` (if that
    /// blob already exists the temp file is dropped), fsync the directory.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (digest, size, tmp, dir) = self.finish()?;
        place_blob(tmp, &dir, &digest)?;
        Ok((digest, size))
    }

    /// Like [`BlobWriter::commit`], and also returns a handle on the
    /// content written (positioned at its start): it stays readable
    /// whatever happens to `blobs/sha256/<hex>` afterwards (another
    /// process that made the same blob may remove it once it no longer
    /// needs it; an open file keeps its data).
    pub fn commit_keeping(self) -> Result<(Digest, u64, File)> {
        let (digest, size, tmp, dir) = self.finish()?;
        let mut held = tmp.as_file().try_clone().at("reopening", tmp.path())?;
        held.seek(io::SeekFrom::Start(0))
            .at("reopening", tmp.path())?;
        place_blob(tmp, &dir, &digest)?;
        Ok((digest, size, held))
    }

    /// Finishes hashing without storing: the blob waits in `tmp/` until
    /// [`PendingBlob::commit`] (or is discarded when dropped), for content
    /// whose use is known only later (an archive member read before the
    /// manifest that names it).
    pub fn finish_pending(self) -> Result<PendingBlob> {
        let (digest, size, tmp, blobs_dir) = self.finish()?;
        Ok(PendingBlob {
            digest,
            size,
            tmp,
            blobs_dir,
        })
    }

    /// Like [`BlobWriter::commit`], but the content must have the digest
    /// `expected`; otherwise nothing is stored and the error is `Corrupt`.
    pub fn commit_expect(self, expected: &Digest) -> Result<u64> {
        let (digest, size, tmp, dir) = self.finish()?;
        if digest != *expected {
            return Err(Error::corrupt(
                format!("blob {expected}"),
                format!("content has digest {digest}"),
            ));
        }
        place_blob(tmp, &dir, &digest)?;
        Ok(size)
    }
}

/// A blob hashed from its bytes but not in the store yet (see
/// [`BlobWriter::finish_pending`]); dropped, it is discarded.
pub struct PendingBlob {
    digest: Digest,
    size: u64,
    tmp: tempfile::NamedTempFile,
    blobs_dir: PathBuf,
}

impl PendingBlob {
    /// The sha256 of the content written.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the blob into `blobs/sha256/<hex>` (as [`BlobWriter::commit`]).
    pub fn commit(self) -> Result<(Digest, u64)> {
        place_blob(self.tmp, &self.blobs_dir, &self.digest)?;
        Ok((self.digest, self.size))
    }
}

fn place_blob(tmp: tempfile::NamedTempFile, dir: &Path, digest: &Digest) -> Result<()> {
    let dest = dir.join(digest.hex());
    if dest.exists() {
        return Ok(());
    }
    tmp.as_file().sync_all().at("syncing", tmp.path())?;
    tmp.persist(&dest)
        .map_err(|e| Error::io(format!("renaming a blob to {}", dest.display()), e.error))?;
    sync_dir(dir)
}

impl Store {
    /// `$XDG_DATA_HOME/strata`, else `~/.local/share/strata`, else
    /// `./.strata` when neither variable is set.
    pub fn default_root() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("strata");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(h).join(".local/share/strata");
        }
        PathBuf::from(".strata")
    }

    /// Opens the store at `root`, creating the layout if it is missing and
    /// validating `oci-layout` if present. Removes stale files in `tmp/` when
    /// no other process holds the store lock.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for d in [
            store.root.clone(),
            store.blobs_dir(),
            store.root.join("cache"),
            store.root.join("builds"),
            store.root.join("statcache"),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&d).at("creating", &d)?;
        }
        // Creating the layout and cleaning tmp/ happen under index.lock, so
        // two processes opening a new store at once cannot remove each
        // other's half-made files.
        let init_lock = store.lock_index()?;
        let layout = store.root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                let f: OciLayoutFile = parse_json(&bytes, &layout)?;
                if f.image_layout_version != media_type::OCI_LAYOUT_VERSION {
                    return Err(Error::corrupt(
                        layout.display().to_string(),
                        format!(
                            "unsupported imageLayoutVersion `{}`",
                            f.image_layout_version
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = OciLayoutFile {
                    image_layout_version: media_type::OCI_LAYOUT_VERSION.to_string(),
                };
                store.write_atomic(&layout, &to_json(&f)?)?;
            }
            Err(e) => return Err(Error::io(format!("reading {}", layout.display()), e)),
        }
        let index = store.index_path();
        if !index.exists() {
            // Never clobber an index another process created meanwhile.
            let bytes = to_json(&ImageIndex::default())?;
            let tmp = store.write_tmp(&bytes)?;
            match tmp.persist_noclobber(&index) {
                Ok(_) => sync_dir(&store.root)?,
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", index.display()), e.error)),
            }
        }
        store.clean_tmp()?;
        drop(init_lock);
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let p = self.root.join(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .at("opening", &p)
    }

    /// Removes everything in `tmp/` if the exclusive lock is free right now.
    fn clean_tmp(&self) -> Result<()> {
        let f = self.lock_file("lock")?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking the store", e));
            }
        }
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).at("reading", &tmp)? {
            let entry = entry.at("reading", &tmp)?;
            let p = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let r = if is_dir {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", p.display()), e)),
            }
        }
        Ok(())
    }

    /// A shared lock, held by a build for its whole duration.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        let f = self.lock_file("lock")?;
        f.lock_shared()
            .ctx(|| "taking the shared store lock".into())?;
        Ok(StoreLock { _file: f })
    }

    /// The `index.json` lock, held while `index.json` is rewritten. Whoever
    /// empties `tmp/` holds it too: a process that holds no store lock
    /// (`rmi`) stages its new `index.json` there under this lock alone.
    pub fn lock_index(&self) -> Result<StoreLock> {
        let f = self.lock_file("index.lock")?;
        f.lock().ctx(|| "locking index.json".into())?;
        Ok(StoreLock { _file: f })
    }

    /// The exclusive lock (prune/gc); waits for builds to finish.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        let f = self.lock_file("lock")?;
        f.lock().ctx(|| "taking the exclusive store lock".into())?;
        Ok(StoreLock { _file: f })
    }

    /// A writer for a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir())
            .at("creating a temp file in", &self.tmp_dir())?;
        Ok(BlobWriter {
            inner: Sha256Writer::new(BufWriter::with_capacity(1 << 16, tmp)),
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Stores `bytes` as a blob.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        // A blob already stored (an unchanged config or manifest) costs a
        // hash and a stat, not a write.
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes)
            .ctx(|| "writing a blob to the store".into())?;
        Ok(w.commit()?.0)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    /// Reads a small blob (at most [`MAX_SMALL_BLOB`] bytes) and verifies
    /// its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f = File::open(&p).at("opening blob", &p)?;
        let mut bytes = Vec::new();
        f.take(MAX_SMALL_BLOB + 1)
            .read_to_end(&mut bytes)
            .at("reading", &p)?;
        if bytes.len() as u64 > MAX_SMALL_BLOB {
            return Err(Error::corrupt(
                format!("blob {d}"),
                format!("larger than {MAX_SMALL_BLOB} bytes for a JSON document"),
            ));
        }
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(Error::corrupt(
                format!("blob {d}"),
                format!("content has digest {actual}"),
            ));
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming (not verified: readers that need it hash
    /// while reading).
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).at("opening blob", &p)
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let p = self.index_path();
        let bytes = fs::read(&p).at("reading", &p)?;
        let idx: ImageIndex = parse_json(&bytes, &p)?;
        if idx.schema_version != 2 {
            return Err(Error::corrupt(
                p.display().to_string(),
                format!("schemaVersion {} (expected 2)", idx.schema_version),
            ));
        }
        Ok(idx)
    }

    /// Tags `manifest` as `name` (normalized with [`normalize_reference`]),
    /// replacing the entry that had that name.
    pub fn set_tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        let name = normalize_reference(name);
        let lock = self.lock_index()?;
        let mut idx = self.read_index()?;
        idx.set_ref(&name, manifest);
        self.write_atomic_if_changed(&self.index_path(), &to_json(&idx)?)?;
        drop(lock);
        Ok(())
    }

    /// The manifest tagged `name` (normalized with [`normalize_reference`]).
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>> {
        let name = normalize_reference(name);
        Ok(self.read_index()?.find_ref(&name).cloned())
    }

    /// Every tag, in index order.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.ref_name()?.to_string(), d)))
            .collect())
    }

    fn cache_path(&self, key: &CacheKey) -> PathBuf {
        self.root.join("cache").join(format!("{}.json", key.hex()))
    }

    /// The record for `key`; a record whose blobs are missing counts as absent.
    pub fn get_cache(&self, key: &CacheKey) -> Result<Option<CacheRecord>> {
        let p = self.cache_path(key);
        let Some(bytes) = read_optional(&p)? else {
            return Ok(None);
        };
        let rec: CacheRecord = parse_json(&bytes, &p)?;
        if rec.layers.values().any(|d| !self.has_blob(&d.digest)) {
            return Ok(None);
        }
        Ok(Some(rec))
    }

    pub fn put_cache(&self, key: &CacheKey, rec: &CacheRecord) -> Result<()> {
        self.write_atomic(&self.cache_path(key), &to_json(rec)?)
    }

    fn build_record_path(&self, target: &str) -> PathBuf {
        let h = blake3::hash(target.as_bytes());
        self.root
            .join("builds")
            .join(format!("{}.json", h.to_hex()))
    }

    /// The last build record of `target` (bytes whose format `build` owns).
    pub fn get_build_record(&self, target: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.build_record_path(target))
    }

    /// Replaces the build record of `target`; a record equal to the one
    /// stored is not written again (a rebuild with nothing changed costs
    /// no write and no sync).
    pub fn put_build_record(&self, target: &str, rec: &[u8]) -> Result<()> {
        self.write_atomic_if_changed(&self.build_record_path(target), rec)
    }

    /// `statcache/<blake3 of the canonical context path>.bin`.
    pub fn stat_cache_path(&self, context_dir: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let canon = fs::canonicalize(context_dir).unwrap_or_else(|_| context_dir.to_path_buf());
        let h = blake3::hash(canon.as_os_str().as_bytes());
        self.root
            .join("statcache")
            .join(format!("{}.bin", h.to_hex()))
    }

    /// A fresh directory under `tmp/`, removed on drop.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("dir-")
            .tempdir_in(self.tmp_dir())
            .at("creating a temp dir in", &self.tmp_dir())
    }

    /// A synced temp file under `tmp/` holding `bytes`.
    fn write_tmp(&self, bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
        let mut tmp = tempfile::Builder::new()
            .prefix("file-")
            .tempfile_in(self.tmp_dir())
            .at("creating a temp file in", &self.tmp_dir())?;
        tmp.write_all(bytes).at("writing", tmp.path())?;
        tmp.as_file().sync_all().at("syncing", tmp.path())?;
        Ok(tmp)
    }

    /// Replaces `dest` with `bytes` atomically (tmp + fsync + rename + fsync dir).
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.write_tmp(bytes)?;
        tmp.persist(dest)
            .map_err(|e| Error::io(format!("renaming into {}", dest.display()), e.error))?;
        if let Some(dir) = dest.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// [`Store::write_atomic`], unless `dest` already holds exactly
    /// `bytes` (then nothing is written or synced).
    fn write_atomic_if_changed(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        if read_optional(dest)?.as_deref() == Some(bytes) {
            return Ok(());
        }
        self.write_atomic(dest, bytes)
    }

    // Listing and removal, for the image verbs (`rmi`, `prune`).

    /// The exclusive lock if no other process holds the store lock now.
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>> {
        let f = self.lock_file("lock")?;
        match f.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: f })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::io("locking the store", e)),
        }
    }

    /// Every `index.json` entry, tagged or not, in index order.
    pub fn index_entries(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.manifests)
    }

    /// Removes the tag `name` (normalized); returns what it pointed to.
    pub fn remove_tag(&self, name: &str) -> Result<Option<Descriptor>> {
        let name = normalize_reference(name);
        let lock = self.lock_index()?;
        let mut idx = self.read_index()?;
        let Some(i) = idx
            .manifests
            .iter()
            .position(|m| m.ref_name() == Some(name.as_str()))
        else {
            return Ok(None);
        };
        let removed = idx.manifests.remove(i);
        self.write_atomic(&self.index_path(), &to_json(&idx)?)?;
        drop(lock);
        Ok(Some(removed))
    }

    /// Adds an unnamed `index.json` entry for `manifest` (kept reachable
    /// without a tag) unless one with that digest is there.
    pub fn add_index_entry(&self, manifest: &Descriptor) -> Result<()> {
        let lock = self.lock_index()?;
        let mut idx = self.read_index()?;
        if idx.manifests.iter().all(|m| m.digest != manifest.digest) {
            idx.manifests.push(manifest.clone());
            self.write_atomic(&self.index_path(), &to_json(&idx)?)?;
        }
        drop(lock);
        Ok(())
    }

    /// Removes every `index.json` entry `pred` selects; returns how many.
    pub fn remove_index_entries(&self, pred: &dyn Fn(&Descriptor) -> bool) -> Result<usize> {
        let lock = self.lock_index()?;
        let mut idx = self.read_index()?;
        let before = idx.manifests.len();
        idx.manifests.retain(|m| !pred(m));
        let n = before - idx.manifests.len();
        if n > 0 {
            self.write_atomic(&self.index_path(), &to_json(&idx)?)?;
        }
        drop(lock);
        Ok(n)
    }

    /// Every blob with its size on disk; files whose names are not sha256
    /// hex digests are skipped.
    pub fn list_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).at("reading", &dir)? {
            let entry = entry.at("reading", &dir)?;
            let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
            else {
                continue;
            };
            let meta = entry.metadata().at("reading", &entry.path())?;
            if meta.is_file() {
                out.push((d, meta.len()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a blob; `false` if it was not there. Only under the
    /// exclusive lock, after checking that nothing names it (see the
    /// module's invariants).
    pub fn remove_blob(&self, d: &Digest) -> Result<bool> {
        remove_optional(&self.blob_path(d))
    }

    /// Every cache record on disk, readable or not.
    pub fn cache_entries(&self) -> Result<Vec<CacheEntry>> {
        let dir = self.root.join("cache");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).at("reading", &dir)? {
            let entry = entry.at("reading", &dir)?;
            let path = entry.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|h| h.parse::<CacheKey>().ok())
            else {
                continue;
            };
            let meta = entry.metadata().at("reading", &path)?;
            let record =
                read_optional(&path)?.and_then(|b| serde_json::from_slice::<CacheRecord>(&b).ok());
            out.push(CacheEntry {
                key,
                modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                file_size: meta.len(),
                record,
            });
        }
        out.sort_by_key(|e| e.key);
        Ok(out)
    }

    /// Removes the cache record `key` and the log of the step that made it.
    pub fn remove_cache(&self, key: &CacheKey) -> Result<()> {
        remove_optional(&self.cache_path(key))?;
        remove_optional(&self.root.join("logs").join(format!("{}.log", key.hex())))?;
        Ok(())
    }

    /// The directory of one store area (it may not exist yet).
    pub fn area_dir(&self, area: Area) -> PathBuf {
        self.root.join(match area {
            Area::Builds => "builds",
            Area::Snapshots => "snapshots",
            Area::SnapshotTimes => "snapshot-times",
            Area::CacheMounts => "mounts/cache",
            Area::Logs => "logs",
            Area::StatCache => "statcache",
            Area::Tmp => "tmp",
        })
    }
}

/// A cache record file as [`Store::cache_entries`] lists it.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub key: CacheKey,
    /// When the record was last written.
    pub modified: std::time::SystemTime,
    pub file_size: u64,
    /// `None` when the file cannot be parsed (it is then useless).
    pub record: Option<CacheRecord>,
}

/// Store areas beside the OCI layout whose entries can be pruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// `builds/`: the last build record of each target.
    Builds,
    /// `snapshots/<diff_id hex>/`: unpacked layers (RUN lowerdirs).
    Snapshots,
    /// `snapshot-times/<diff_id hex>.json`: a copy layer's source mtimes,
    /// applied when its snapshot is made.
    SnapshotTimes,
    /// `mounts/cache/`: RUN cache mounts.
    CacheMounts,
    /// `logs/<cache key>.log`: RUN output.
    Logs,
    /// `statcache/`: context stat caches.
    StatCache,
    /// `tmp/`: in-flight writes.
    Tmp,
}

fn remove_optional(p: &Path) -> Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}

/// The name the store keeps a tag under: `:latest` added to a reference
/// that has neither a tag nor a digest (`busybox` -> `busybox:latest`;
/// `host:5000/x` -> `host:5000/x:latest`), and Docker Hub's spellings
/// folded to Docker's short form (`docker.io/library/debian` -> `debian:latest`).
pub fn normalize_reference(name: &str) -> String {
    if let Ok(r) = crate::reference::Reference::parse(name) {
        return r.familiar();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn read_optional(p: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

/// Parses untrusted JSON read from `path`; errors are `Corrupt`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string()))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::msg(format!("encoding JSON: {e}")))
}

/// fsync a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .at("syncing directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_adds_latest_only_without_tag_or_digest() {
        assert_eq!(normalize_reference("busybox"), "busybox:latest");
        assert_eq!(normalize_reference("example/app:1.0"), "example/app:1.0");
        assert_eq!(normalize_reference("host:5000/x"), "host:5000/x:latest");
        assert_eq!(normalize_reference("host:5000/x:2"), "host:5000/x:2");
        let pinned = format!("x@{}", Digest::of(b""));
        assert_eq!(normalize_reference(&pinned), pinned);
        assert_eq!(
            normalize_reference("docker.io/library/busybox"),
            "busybox:latest"
        );
        assert_eq!(normalize_reference("docker.io/u/app:1"), "u/app:1");
    }

    #[test]
    fn open_rejects_unknown_layout_version() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"9.9"}"#,
        )
        .unwrap();
        let e = Store::open(t.path()).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }

    #[test]
    fn open_keeps_existing_index() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"m"), 1);
        s.set_tag("a:1", &d).unwrap();
        let s = Store::open(t.path()).unwrap();
        assert_eq!(s.resolve("a:1").unwrap().unwrap().digest, d.digest);
    }

    #[test]
    fn an_unchanged_tag_or_blob_is_not_written_again() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"m"), 1);
        s.set_tag("a:1", &d).unwrap();
        let blob = s.put_blob(b"config").unwrap();
        let index = s.index_path();
        let stamp = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        let (index_at, blob_at) = (stamp(&index), stamp(&s.blob_path(&blob)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.set_tag("a:1", &d).unwrap();
        assert_eq!(s.put_blob(b"config").unwrap(), blob);
        assert_eq!(
            stamp(&index),
            index_at,
            "same tag, index.json not rewritten"
        );
        assert_eq!(stamp(&s.blob_path(&blob)), blob_at);
        let other = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"n"), 1);
        s.set_tag("a:1", &other).unwrap();
        assert_ne!(stamp(&index), index_at, "a moved tag is written");
        assert_eq!(s.resolve("a:1").unwrap().unwrap().digest, other.digest);
    }

    #[test]
    fn remove_tag_list_and_remove_blobs_and_cache_entries() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let blob = s.put_blob(b"layer").unwrap();
        let d = Descriptor::new(media_type::OCI_MANIFEST, blob, 5);
        s.set_tag("a:1", &d).unwrap();
        s.set_tag("b", &d).unwrap();
        s.add_index_entry(&d).unwrap(); // already there: no unnamed entry
        assert_eq!(s.index_entries().unwrap().len(), 2);
        assert_eq!(s.remove_tag("b").unwrap().unwrap().digest, blob);
        assert!(s.remove_tag("b").unwrap().is_none());
        assert_eq!(s.tags().unwrap().len(), 1);
        assert_eq!(
            s.remove_index_entries(&|e| e.ref_name() == Some("a:1"))
                .unwrap(),
            1
        );
        assert!(s.index_entries().unwrap().is_empty());

        fs::write(s.blobs_dir().join("not-a-digest"), "x").unwrap();
        assert_eq!(s.list_blobs().unwrap(), vec![(blob, 5)]);
        let key = CacheKey([7; 32]);
        let rec = CacheRecord {
            diff_id: None,
            layers: [("none".to_string(), d.clone())].into_iter().collect(),
            created_by: "COPY".into(),
            size: 5,
        };
        s.put_cache(&key, &rec).unwrap();
        fs::write(
            t.path()
                .join("cache")
                .join(format!("{}.json", CacheKey([8; 32]).hex())),
            "{",
        )
        .unwrap();
        fs::create_dir_all(s.area_dir(Area::Logs)).unwrap();
        let log = s.area_dir(Area::Logs).join(format!("{}.log", key.hex()));
        fs::write(&log, "out").unwrap();
        let entries = s.cache_entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].record.as_ref(), Some(&rec));
        assert!(entries[1].record.is_none(), "unparseable record");
        s.remove_cache(&key).unwrap();
        assert!(!log.exists());
        assert_eq!(s.cache_entries().unwrap().len(), 1);

        assert!(s.remove_blob(&blob).unwrap());
        assert!(!s.remove_blob(&blob).unwrap());
        assert!(s.list_blobs().unwrap().is_empty());
        let held = s.lock_shared().unwrap();
        assert!(s.try_lock_exclusive().unwrap().is_none());
        drop(held);
        assert!(s.try_lock_exclusive().unwrap().is_some());
    }

    #[test]
    fn build_record_and_stat_cache_paths() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        assert!(s.get_build_record("app").unwrap().is_none());
        s.put_build_record("app", b"one").unwrap();
        assert_eq!(
            s.get_build_record("app").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        let p = s.build_record_path("app");
        let written = fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.put_build_record("app", b"one").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().modified().unwrap(),
            written,
            "same record not rewritten"
        );
        s.put_build_record("app", b"two").unwrap();
        assert_eq!(
            s.get_build_record("app").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(s.get_build_record("other").unwrap().is_none());
        let a = s.stat_cache_path(t.path());
        let b = s.stat_cache_path(&t.path().join("."));
        assert_eq!(a, b, "canonical path gives the same stat cache");
        assert!(a.starts_with(t.path().join("statcache")));
        assert_ne!(a, s.stat_cache_path(&t.path().join("cache")));
    }
}

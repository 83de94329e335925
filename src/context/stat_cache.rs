//! A persistent map from a file's stat to the blake3 of its content, so that
//! re-keying an unchanged context costs one `lstat` per file.
//!
//! The cache only ever saves work: a hit requires size, mtime, ctime, inode
//! and device to be identical, and a file whose timestamps are too close to
//! the moment it was hashed is never recorded ("racily clean", as git calls
//! it: a write in the same timestamp tick would go unnoticed). A missing or
//! corrupt cache file is treated as empty.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

const FORMAT_VERSION: u32 = 1;

/// Files changed less than this long before they were hashed are not
/// recorded: file timestamps come from a coarse clock, so a second write
/// in the same tick would keep the same stat.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

/// The parts of a stat that identify one version of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

impl FileStat {
    pub(crate) fn of(meta: &fs::Metadata) -> FileStat {
        let ns = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
        FileStat {
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    stat: FileStat,
    blake3: String,
}

#[derive(Debug, Default, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

#[derive(Serialize)]
struct CacheFileRef<'a> {
    version: u32,
    entries: &'a BTreeMap<String, Entry>,
}

#[derive(Debug)]
pub(crate) struct StatCache {
    file: PathBuf,
    entries: BTreeMap<String, Entry>,
    dirty: bool,
}

/// Nanoseconds since the epoch, now.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl StatCache {
    /// Loads `file`; a missing, unreadable or corrupt file gives an empty
    /// cache (it is rebuilt on save).
    pub(crate) fn load(file: &Path) -> StatCache {
        let entries = fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|c| c.version == FORMAT_VERSION)
            .map(|c| c.entries)
            .unwrap_or_default();
        StatCache {
            file: file.to_path_buf(),
            entries,
            dirty: false,
        }
    }

    /// The cached content hash of `path` if its stat is unchanged.
    pub(crate) fn get(&self, path: &Path, stat: &FileStat) -> Option<[u8; 32]> {
        let entry = self.entries.get(path.to_str()?)?;
        if entry.stat != *stat {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(&entry.blake3, &mut out).ok()?;
        Some(out)
    }

    /// Records a hash computed from a file with `stat`, read starting at
    /// `hashed_at_ns`; skipped when the file changed too recently to trust.
    pub(crate) fn insert(
        &mut self,
        path: &Path,
        stat: FileStat,
        hash: [u8; 32],
        hashed_at_ns: i64,
    ) {
        let Some(key) = path.to_str() else { return };
        let newest = stat.mtime_ns.max(stat.ctime_ns);
        if newest > hashed_at_ns.saturating_sub(RACY_WINDOW_NS) {
            self.entries.remove(key);
            return;
        }
        self.entries.insert(
            key.to_string(),
            Entry {
                stat,
                blake3: hex::encode(hash),
            },
        );
        self.dirty = true;
    }

    /// Writes the cache atomically (temporary file, fsync, rename), dropping
    /// entries for files that no longer exist. No-op when nothing changed.
    pub(crate) fn save(&mut self) -> Result<()> {
        let before = self.entries.len();
        self.entries
            .retain(|path, _| fs::symlink_metadata(path).is_ok());
        if !self.dirty && self.entries.len() == before {
            return Ok(());
        }
        let dir = match self.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).at("creating", dir)?;
        let body = serde_json::to_vec(&CacheFileRef {
            version: FORMAT_VERSION,
            entries: &self.entries,
        })
        .map_err(|e| crate::error::Error::msg(format!("encoding the stat cache: {e}")))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).at("creating a temporary file in", dir)?;
        tmp.write_all(&body).at("writing", tmp.path())?;
        tmp.as_file().sync_all().at("syncing", tmp.path())?;
        tmp.persist(&self.file)
            .map_err(|e| e.error)
            .at("replacing", &self.file)?;
        if let Ok(d) = fs::File::open(dir) {
            // Best effort: the rename is durable once the directory is synced.
            let _ = d.sync_all();
        }
        self.dirty = false;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

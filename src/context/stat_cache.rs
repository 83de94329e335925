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

use crate::error::{IoContext, Result};

/// First bytes of a cache file: a name and the format version.
const MAGIC: &[u8; 8] = b"strstc02";

/// Files changed less than this long before they were hashed are not
/// recorded: file timestamps come from a coarse clock, so a second write
/// in the same tick would keep the same stat.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

/// The parts of a stat that identify one version of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug)]
struct Entry {
    stat: FileStat,
    blake3: [u8; 32],
    /// Looked up during this run, so the file existed: `save` need not
    /// check it again.
    seen: bool,
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

/// The file format: `MAGIC`, then per entry, in key order: the length of
/// the prefix shared with the previous key (u32), the rest of the key
/// (u32 length, bytes), size, mtime, ctime, inode, device (8 bytes each)
/// and the 32-byte blake3; integers little-endian. Sorted keys of one
/// context share long prefixes, so the file stays small and decodes with
/// no parsing.
fn encode(entries: &BTreeMap<String, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * 96);
    out.extend_from_slice(MAGIC);
    let mut prev: &str = "";
    for (key, e) in entries {
        let shared = key
            .bytes()
            .zip(prev.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        // Cut on a character boundary so every suffix is valid UTF-8.
        let shared = (0..=shared)
            .rev()
            .find(|&i| key.is_char_boundary(i))
            .unwrap_or(0);
        let rest = &key.as_bytes()[shared..];
        out.extend_from_slice(&(shared as u32).to_le_bytes());
        out.extend_from_slice(&(rest.len() as u32).to_le_bytes());
        out.extend_from_slice(rest);
        for v in [
            e.stat.size,
            e.stat.mtime_ns as u64,
            e.stat.ctime_ns as u64,
            e.stat.ino,
            e.stat.dev,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&e.blake3);
        prev = key;
    }
    out
}

/// Reads what [`encode`] wrote; `None` for anything else (another version,
/// a truncated or corrupt file).
fn decode(bytes: &[u8]) -> Option<BTreeMap<String, Entry>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(head)
    }
    fn u32_at(rest: &mut &[u8]) -> Option<usize> {
        let b: [u8; 4] = take(rest, 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    }
    fn u64_at(rest: &mut &[u8]) -> Option<u64> {
        let b: [u8; 8] = take(rest, 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }
    let mut out = Vec::new();
    let mut prev = String::new();
    while !rest.is_empty() {
        let shared = u32_at(&mut rest)?;
        let len = u32_at(&mut rest)?;
        let suffix = std::str::from_utf8(take(&mut rest, len)?).ok()?;
        let mut key = String::with_capacity(shared + suffix.len());
        key.push_str(prev.get(..shared)?);
        key.push_str(suffix);
        let stat = FileStat {
            size: u64_at(&mut rest)?,
            mtime_ns: u64_at(&mut rest)? as i64,
            ctime_ns: u64_at(&mut rest)? as i64,
            ino: u64_at(&mut rest)?,
            dev: u64_at(&mut rest)?,
        };
        let blake3: [u8; 32] = take(&mut rest, 32)?.try_into().ok()?;
        if key <= prev && !out.is_empty() {
            return None; // not written by `encode`
        }
        prev.clone_from(&key);
        out.push((
            key,
            Entry {
                stat,
                blake3,
                seen: false,
            },
        ));
    }
    Some(out.into_iter().collect())
}

impl StatCache {
    /// Loads `file`; a missing, unreadable or corrupt file gives an empty
    /// cache (it is rebuilt on save).
    pub(crate) fn load(file: &Path) -> StatCache {
        let entries = fs::read(file)
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        StatCache {
            file: file.to_path_buf(),
            entries,
            dirty: false,
        }
    }

    /// The cached content hash of `path` if its stat is unchanged.
    pub(crate) fn get(&mut self, path: &Path, stat: &FileStat) -> Option<[u8; 32]> {
        let entry = self.entries.get_mut(path.to_str()?)?;
        entry.seen = true;
        (entry.stat == *stat).then_some(entry.blake3)
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
            if self.entries.remove(key).is_some() {
                self.dirty = true;
            }
            return;
        }
        self.entries.insert(
            key.to_string(),
            Entry {
                stat,
                blake3: hash,
                seen: true,
            },
        );
        self.dirty = true;
    }

    /// Writes the cache atomically (temporary file, fsync, rename), dropping
    /// entries for files that no longer exist (only entries this run did
    /// not look up need a check). No-op when nothing changed.
    pub(crate) fn save(&mut self) -> Result<()> {
        let before = self.entries.len();
        self.entries
            .retain(|path, e| e.seen || fs::symlink_metadata(path).is_ok());
        if !self.dirty && self.entries.len() == before {
            return Ok(());
        }
        let dir = match self.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).at("creating", dir)?;
        let body = encode(&self.entries);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        Entry {
            stat: FileStat {
                size: n,
                mtime_ns: -(n as i64),
                ctime_ns: n as i64 * 7,
                ino: n + 1,
                dev: u64::MAX - n,
            },
            blake3: [n as u8; 32],
            seen: false,
        }
    }

    #[test]
    fn the_file_format_round_trips_and_rejects_damage() {
        let mut m = BTreeMap::new();
        for (i, k) in ["/c/a", "/c/a/b", "/c/a/bé", "/c/aé/x", "/c/b", "/d", "/é"]
            .into_iter()
            .enumerate()
        {
            m.insert(k.to_string(), entry(i as u64));
        }
        let bytes = encode(&m);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.len(), m.len());
        for (k, e) in &m {
            let b = &back[k];
            assert_eq!((b.stat, b.blake3), (e.stat, e.blake3), "{k}");
        }
        // A truncated file is refused, or (cut between entries) gives
        // fewer entries, each one intact: never a misread or a panic.
        for cut in 0..bytes.len() {
            if let Some(d) = decode(&bytes[..cut]) {
                assert!(d.len() < m.len(), "cut at {cut}");
                for (k, e) in &d {
                    assert_eq!((e.stat, e.blake3), (m[k].stat, m[k].blake3), "cut at {cut}");
                }
            }
        }
        assert!(decode(b"{\"version\":1}").is_none());
        assert_eq!(decode(MAGIC).map(|m| m.len()), Some(0));
    }

    #[test]
    fn save_keeps_looked_up_entries_and_drops_vanished_files() {
        let t = tempfile::tempdir().unwrap();
        let keep = t.path().join("keep");
        let gone = t.path().join("gone");
        fs::write(&keep, "k").unwrap();
        fs::write(&gone, "g").unwrap();
        let file = t.path().join("cache.bin");
        let mut c = StatCache::load(&file);
        let stat = FileStat::of(&fs::metadata(&keep).unwrap());
        let later = stat.mtime_ns.max(stat.ctime_ns) + 2 * RACY_WINDOW_NS;
        c.insert(&keep, stat, [1; 32], later);
        let gstat = FileStat::of(&fs::metadata(&gone).unwrap());
        c.insert(&gone, gstat, [2; 32], later);
        c.save().unwrap();
        fs::remove_file(&gone).unwrap();
        let mut c = StatCache::load(&file);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&keep, &stat), Some([1; 32]));
        c.save().unwrap();
        let mut c = StatCache::load(&file);
        assert_eq!(c.len(), 1, "the vanished file's entry is dropped");
        assert_eq!(c.get(&keep, &stat), Some([1; 32]));
        let mut changed = stat;
        changed.size += 1;
        assert_eq!(c.get(&keep, &changed), None);
    }
}

//! The build context: which files a COPY selects, where they land, and the
//! content hashes that key the cache.
//!
//! A [`Tree`] is a directory files are copied from: the build context (with
//! `.dockerignore` rules, a stat cache and content hashing) or an unpacked
//! stage rootfs (no ignore rules). [`Tree::plan_copy`] applies Docker's COPY
//! semantics and returns the entries of the layer to write, sorted by
//! destination and self-contained (every ancestor directory is listed).
//! [`items_digest`] turns such a list into the Merkle digest a cache key
//! uses.
//!
//! Invariants:
//! - The module reads the file system but never writes to it, except the
//!   stat cache file in [`Tree::save_stat_cache`].
//! - Nothing outside the tree root is read: sources are lexically confined
//!   and symlinks are resolved inside the root (an absolute or `..` target
//!   stops at the root, as in BuildKit).
//! - Results never depend on mtimes, on the stat cache, on the checkout
//!   location or on directory listing order.

mod glob;
mod ignore;
mod path;
mod plan;
mod stat_cache;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use self::glob::BadPattern;
pub use self::ignore::{IgnoreError, IgnorePattern, IgnoreRules, RuleRef};
use self::stat_cache::StatCache;
use crate::error::{Error, IoContext, Result};

/// Where a context comes from and how it is read.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// A `.dockerignore`-syntax file; `None` = `ROOT/.dockerignore` if it exists.
    pub ignore_file: Option<PathBuf>,
    /// A JSON stat cache file; `None` = no stat cache.
    pub stat_cache: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TreeKind {
    Context,
    Rootfs,
}

/// A directory tree files are copied from: the build context (with ignore
/// rules and content hashing) or an unpacked stage rootfs (no ignore rules).
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    kind: TreeKind,
    ignore: IgnoreRules,
    stat_cache: Option<Mutex<StatCache>>,
    /// Files whose content was read to hash them (tests check the stat cache).
    #[cfg(test)]
    reads: std::sync::atomic::AtomicUsize,
}

/// One COPY instruction, as the build sees it.
#[derive(Clone, Copy, Debug)]
pub struct CopyRequest<'a> {
    /// Paths or globs relative to the tree root (a leading `/` is the root).
    pub sources: &'a [String],
    /// Absolute destination; a trailing `/` means "into this directory".
    pub dest: &'a str,
    /// `.dockerignore`-syntax patterns dropped from the sources (`--exclude`).
    pub exclude: &'a [String],
    /// Keep each source's path under `dest` (`--parents`).
    pub parents: bool,
    /// Compute the blake3 of every file's content.
    pub hash: bool,
}

/// One entry of the layer a COPY writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyItem {
    /// Path in the image: relative, no leading `/` (`app/src/main.rs`).
    pub dest: String,
    /// Path relative to the tree root (`src/main.rs`), for explanations;
    /// empty for a directory created only because a destination needs it.
    pub source: String,
    pub kind: ItemKind,
    /// Permission bits including setuid/setgid/sticky, as on disk.
    pub mode: u32,
    /// Owner as on disk (the build replaces it for context copies).
    pub uid: u32,
    pub gid: u32,
    /// For the one file a COPY writes to a destination without a trailing
    /// `/` (`COPY a.txt /etc`): its source name. When the destination is an
    /// existing directory of the image copied into, the file lands at
    /// `dest/NAME` instead (as in BuildKit); only the build, which sees that
    /// image, can decide. None for every other item.
    pub name: Option<String>,
    /// The destination of the first item of the same COPY source that is
    /// the same file on disk (a hard link of it): this one is written as a
    /// hard link to it, as BuildKit keeps one inode. None when the file is
    /// not hard linked within the copy.
    pub hardlink_of: Option<String>,
}

impl CopyItem {
    /// A directory listed only because a destination needs it: root's, 0755
    /// (as BuildKit creates a destination's missing parents).
    pub fn implied_dir(dest: String) -> CopyItem {
        CopyItem {
            dest,
            source: String::new(),
            kind: ItemKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            name: None,
            hardlink_of: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Dir,
    File {
        /// Absolute path on disk.
        path: PathBuf,
        size: u64,
        /// blake3 of the content, when the request asked for hashes.
        hash: Option<[u8; 32]>,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CopyError {
    #[error(
        "COPY source `{pattern}` matches nothing{}",
        match ignored_by { Some(rule) => format!(": it is excluded by {rule}"), None => String::new() }
    )]
    #[diagnostic(code(strata::copy::missing))]
    SourceMissing {
        pattern: String,
        /// The ignore rule that excludes the file, as ``.dockerignore line 3 (`*.log`)``.
        ignored_by: Option<String>,
    },
    #[error("COPY source `{pattern}` points outside the build context")]
    #[diagnostic(code(strata::copy::outside))]
    OutsideRoot { pattern: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Io(#[from] Error),
}

impl From<CopyError> for Error {
    fn from(e: CopyError) -> Error {
        match e {
            CopyError::Io(inner) => inner,
            other => Error::Message(other.to_string()),
        }
    }
}

impl Tree {
    /// The build context at `root`, with its ignore file and stat cache.
    pub fn context(root: &Path, opts: &ContextOptions) -> Result<Tree> {
        let root = std::path::absolute(root).at("resolving", root)?;
        let meta = fs::metadata(&root).at("reading the build context", &root)?;
        if !meta.is_dir() {
            return Err(Error::msg(format!(
                "the build context {} is not a directory",
                root.display()
            )));
        }
        let (ignore_path, required) = match &opts.ignore_file {
            Some(p) => (p.clone(), true),
            None => (root.join(".dockerignore"), false),
        };
        let ignore = match fs::read(&ignore_path) {
            Ok(bytes) => {
                let name = if required {
                    ignore_path.display().to_string()
                } else {
                    ".dockerignore".to_string()
                };
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::msg(format!("{name} is not valid UTF-8")))?;
                IgnoreRules::parse(&name, &text).map_err(|e| Error::msg(e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                IgnoreRules::default()
            }
            Err(e) => return Err(Error::io(format!("reading {}", ignore_path.display()), e)),
        };
        let stat_cache = opts
            .stat_cache
            .as_deref()
            .map(|p| Mutex::new(StatCache::load(p)));
        Ok(Tree {
            root,
            kind: TreeKind::Context,
            ignore,
            stat_cache,
            #[cfg(test)]
            reads: Default::default(),
        })
    }

    /// An unpacked stage rootfs: no ignore rules, no stat cache.
    pub fn rootfs(root: &Path) -> Tree {
        Tree {
            root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
            kind: TreeKind::Rootfs,
            ignore: IgnoreRules::default(),
            stat_cache: None,
            #[cfg(test)]
            reads: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore rules of a context (empty for a rootfs).
    pub fn ignore_rules(&self) -> &IgnoreRules {
        &self.ignore
    }

    /// Applies Docker COPY semantics and returns what lands where, sorted by
    /// destination, with every ancestor directory of every destination.
    pub fn plan_copy(&self, req: &CopyRequest) -> Result<Vec<CopyItem>, CopyError> {
        plan::plan_copy(self, req)
    }

    /// Writes the stat cache back (call after a build). No-op without one.
    pub fn save_stat_cache(&self) -> Result<()> {
        match &self.stat_cache {
            Some(cache) => cache
                .lock()
                .map_err(|_| Error::msg("the stat cache lock is poisoned"))?
                .save(),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    fn files_read(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Domain separation for [`items_digest`]; bump the version when the
/// encoding changes.
const ITEMS_DIGEST_CONTEXT: &str = "strata 2026 context items digest v1";

/// Merkle-style blake3 digest over `items`: one leaf per item in order
/// (dest, kind, mode, size, content hash, link target, and when set the
/// name it takes in an existing directory and the item it is a hard link
/// of), never mtimes, never uid/gid (the build keys owners separately),
/// never the on-disk path. The optional parts add bytes only when set, so
/// a list without them digests as it did before they existed.
pub fn items_digest(items: &[CopyItem]) -> [u8; 32] {
    let mut root = blake3::Hasher::new_derive_key(ITEMS_DIGEST_CONTEXT);
    root.update(&(items.len() as u64).to_le_bytes());
    for item in items {
        root.update(item_leaf(item).as_bytes());
    }
    *root.finalize().as_bytes()
}

fn item_leaf(item: &CopyItem) -> blake3::Hash {
    fn bytes(h: &mut blake3::Hasher, b: &[u8]) {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    }
    let mut h = blake3::Hasher::new();
    bytes(&mut h, item.dest.as_bytes());
    h.update(&item.mode.to_le_bytes());
    match &item.kind {
        ItemKind::Dir => {
            h.update(b"d");
        }
        ItemKind::File { size, hash, .. } => {
            h.update(b"f");
            h.update(&size.to_le_bytes());
            match hash {
                Some(hash) => h.update(b"h").update(hash),
                None => h.update(b"-"),
            };
        }
        ItemKind::Symlink { target } => {
            h.update(b"l");
            bytes(&mut h, target.as_bytes());
        }
    }
    if let Some(name) = &item.name {
        h.update(b"n");
        bytes(&mut h, name.as_bytes());
    }
    if let Some(first) = &item.hardlink_of {
        h.update(b"=");
        bytes(&mut h, first.as_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn write(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn plan(tree: &Tree) -> Vec<CopyItem> {
        let sources = [".".to_string()];
        tree.plan_copy(&CopyRequest {
            sources: &sources,
            dest: "/app/",
            exclude: &[],
            parents: false,
            hash: true,
        })
        .unwrap()
    }

    /// Hashes without any stat cache: what every cached run must equal.
    fn uncached(root: &Path) -> Vec<CopyItem> {
        plan(&Tree::context(root, &ContextOptions::default()).unwrap())
    }

    #[test]
    fn stat_cache_saves_reads_and_never_changes_results() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        write(&ctx, "a.txt", b"alpha");
        write(&ctx, "sub/b.txt", b"bravo");
        let cache = dir.path().join("state/stat-cache.json");
        fs::create_dir_all(cache.parent().unwrap()).unwrap();
        fs::write(&cache, b"{ this is not json").unwrap();
        let opts = ContextOptions {
            ignore_file: None,
            stat_cache: Some(cache.clone()),
        };
        // Files changed just now are "racily clean" and never cached: let
        // them age past the window first.
        std::thread::sleep(Duration::from_millis(1100));

        // A corrupt cache is ignored; everything is read once.
        let first = Tree::context(&ctx, &opts).unwrap();
        assert_eq!(plan(&first), uncached(&ctx));
        assert_eq!(first.files_read(), 2);
        first.save_stat_cache().unwrap();
        assert_eq!(StatCache::load(&cache).len(), 2);

        // Unchanged: nothing is read, same result.
        let second = Tree::context(&ctx, &opts).unwrap();
        assert_eq!(plan(&second), uncached(&ctx));
        assert_eq!(second.files_read(), 0);
        second.save_stat_cache().unwrap();

        // `touch` changes the stat, not the content: read again, same result.
        let before = plan(&Tree::context(&ctx, &opts).unwrap());
        set_mtime(
            &ctx.join("a.txt"),
            SystemTime::now() - Duration::from_secs(3600),
        );
        let third = Tree::context(&ctx, &opts).unwrap();
        let after_touch = plan(&third);
        assert_eq!(third.files_read(), 1);
        assert_eq!(after_touch, uncached(&ctx));
        assert_eq!(items_digest(&after_touch), items_digest(&before));
        third.save_stat_cache().unwrap();

        // Same size, mtime restored, new content: ctime gives it away.
        let b = ctx.join("sub/b.txt");
        let mtime = fs::metadata(&b).unwrap().modified().unwrap();
        fs::write(&b, b"BRAVO").unwrap();
        set_mtime(&b, mtime);
        let fourth = Tree::context(&ctx, &opts).unwrap();
        let after_edit = plan(&fourth);
        // b is re-read (and a too, touched within the racy window).
        assert!(fourth.files_read() >= 1);
        assert_eq!(after_edit, uncached(&ctx));
        assert_ne!(items_digest(&after_edit), items_digest(&before));
    }

    #[test]
    fn trees_are_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Tree>();
    }

    #[test]
    fn stat_cache_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        write(&ctx, "old.txt", b"old");
        std::thread::sleep(Duration::from_millis(1100));
        let state = dir.path().join("state");
        let opts = ContextOptions {
            ignore_file: None,
            stat_cache: Some(state.join("cache.json")),
        };
        let tree = Tree::context(&ctx, &opts).unwrap();
        plan(&tree);
        tree.save_stat_cache().unwrap();
        // Entries of deleted files are dropped on the next save.
        fs::remove_file(ctx.join("old.txt")).unwrap();
        write(&ctx, "new.txt", b"new");
        let tree = Tree::context(&ctx, &opts).unwrap();
        plan(&tree);
        tree.save_stat_cache().unwrap();
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["cache.json"], "no temporary file is left behind");
        let cache = StatCache::load(&state.join("cache.json"));
        assert_eq!(cache.len(), 0, "old.txt is gone, new.txt is racily clean");
    }

    #[test]
    fn racily_clean_files_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        write(&ctx, "fresh.txt", b"just written");
        let opts = ContextOptions {
            ignore_file: None,
            stat_cache: Some(dir.path().join("cache.json")),
        };
        let first = Tree::context(&ctx, &opts).unwrap();
        let items = plan(&first);
        first.save_stat_cache().unwrap();
        let second = Tree::context(&ctx, &opts).unwrap();
        assert_eq!(plan(&second), items);
        assert_eq!(
            second.files_read(),
            1,
            "a file changed within the racy window must be re-read"
        );
    }

    #[test]
    fn no_hash_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", b"x");
        let tree = Tree::rootfs(dir.path());
        let sources = ["a".to_string()];
        let items = tree
            .plan_copy(&CopyRequest {
                sources: &sources,
                dest: "/b",
                exclude: &[],
                parents: false,
                hash: false,
            })
            .unwrap();
        assert_eq!(tree.files_read(), 0);
        assert!(matches!(
            &items[0].kind,
            ItemKind::File {
                hash: None,
                size: 1,
                ..
            }
        ));
        assert!(tree.save_stat_cache().is_ok());
    }
}

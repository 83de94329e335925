//! COPY semantics: from source patterns to the sorted list of layer entries.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::collections::btree_map::Entry as MapEntry;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;

use super::glob::{Glob, has_meta};
use super::ignore::IgnoreRules;
use super::path::{ancestors, basename, clean, join, relative};
use super::stat_cache::{FileStat, now_ns};
use super::{CopyError, CopyItem, CopyRequest, ItemKind, Tree, TreeKind};
use crate::error::Error;

/// Files at least this large are hashed on several threads, a
/// [`PARALLEL_CHUNK`] at a time; smaller ones on one.
const PARALLEL_THRESHOLD: u64 = 16 << 20;

/// What a big file is read in. Read, not mapped: a mapping of the whole
/// file would count all of it in the process's resident memory (1 GiB for
/// a 1 GiB file, issue 12), and would raise SIGBUS if the file shrank.
const PARALLEL_CHUNK: usize = 4 << 20;

/// Symlinks followed while resolving one path before giving up (Linux's).
const MAX_LINKS: usize = 40;

/// A layer entry before hashing.
struct Pending {
    item: CopyItem,
    stat: Option<FileStat>,
    /// (source pattern index, st_dev, st_ino) of a regular file with more
    /// than one link: the identity hard links are grouped by.
    inode: Option<(usize, u64, u64)>,
}

/// One path a source pattern selected.
struct Selected {
    /// As named (after glob expansion), relative to the root.
    logical: String,
    /// With symlinks resolved inside the root.
    real: String,
    meta: fs::Metadata,
    /// The part of `logical` kept under dest with `--parents`.
    kept: String,
}

fn io_err(what: String, e: io::Error) -> CopyError {
    CopyError::Io(Error::io(what, e))
}

fn msg(m: String) -> CopyError {
    CopyError::Io(Error::msg(m))
}

/// `Ok(None)` when `r` failed because the path does not exist (or a
/// component on the way is not a directory); other errors name `verb`.
fn existing<T>(r: io::Result<T>, verb: &str, abs: &Path) -> Result<Option<T>, CopyError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(io_err(format!("{verb} {}", abs.display()), e)),
    }
}

fn utf8_name(name: std::ffi::OsString, dir: &Path) -> Result<String, CopyError> {
    name.into_string().map_err(|n| {
        msg(format!(
            "file name {:?} in {} is not valid UTF-8",
            n,
            dir.display()
        ))
    })
}

pub(super) fn plan_copy(tree: &Tree, req: &CopyRequest) -> Result<Vec<CopyItem>, CopyError> {
    let exclude =
        IgnoreRules::from_patterns("--exclude", req.exclude).map_err(|e| msg(e.to_string()))?;
    let dest_hint_dir = req.dest.ends_with('/') || req.dest.ends_with("/.") || req.dest == ".";
    let dest = clean(&format!("/{}", req.dest))
        .trim_start_matches('/')
        .to_string();

    // Each selection with the index of the source pattern that chose it:
    // hard links are kept within one source, as BuildKit copies each
    // source on its own.
    let mut selected = Vec::new();
    for (i, source) in req.sources.iter().enumerate() {
        selected.extend(
            tree.select(source, req.parents)?
                .into_iter()
                .map(|s| (s, i)),
        );
    }
    let into_dir = dest_hint_dir
        || dest.is_empty()
        || req.parents
        || selected.len() > 1
        || req.sources.len() > 1;

    let mut pending = Vec::new();
    for (sel, source_index) in &selected {
        let first = pending.len();
        if sel.meta.is_dir() {
            let base = if req.parents {
                join(&dest, &sel.kept)
            } else {
                dest.clone()
            };
            if !base.is_empty() {
                pending.push(tree.pending(&base, &sel.real, &sel.meta)?);
            }
            tree.walk(&sel.real, &sel.logical, "", &base, &exclude, &mut pending)?;
        } else {
            if exclude.is_excluded(&sel.logical) || exclude.is_excluded(basename(&sel.logical)) {
                continue;
            }
            let target = if req.parents {
                join(&dest, &sel.kept)
            } else if into_dir {
                join(&dest, basename(&sel.logical))
            } else {
                dest.clone()
            };
            if !sel.meta.is_file() {
                return Err(msg(format!(
                    "COPY source `{}` is not a regular file, directory or symlink",
                    sel.logical
                )));
            }
            let mut p = tree.pending(&target, &sel.real, &sel.meta)?;
            if !(req.parents || into_dir) {
                p.item.name = Some(basename(&sel.logical).to_string());
            }
            pending.push(p);
        }
        for p in &mut pending[first..] {
            if let Some(inode) = &mut p.inode {
                inode.0 = *source_index;
            }
        }
    }

    let mut items = assemble(pending)?;
    link_hardlinks(&mut items);
    if req.hash {
        tree.hash_all(&mut items)?;
    }
    Ok(items.into_iter().map(|p| p.item).collect())
}

/// Marks every file that is the same file on disk as an earlier one (in
/// destination order) of the same source as a hard link of it.
fn link_hardlinks(items: &mut [Pending]) {
    let mut first_of: BTreeMap<(usize, u64, u64), String> = BTreeMap::new();
    for p in items {
        if let Some(inode) = p.inode {
            match first_of.entry(inode) {
                MapEntry::Vacant(v) => {
                    v.insert(p.item.dest.clone());
                }
                MapEntry::Occupied(o) => p.item.hardlink_of = Some(o.get().clone()),
            }
        }
    }
}

/// Sorts by destination (a later source wins), adds missing ancestors and
/// rejects a destination that must be both a file and a directory.
fn assemble(pending: Vec<Pending>) -> Result<Vec<Pending>, CopyError> {
    let mut by_dest: BTreeMap<String, Pending> = BTreeMap::new();
    for p in pending {
        by_dest.insert(p.item.dest.clone(), p);
    }
    let dests: Vec<String> = by_dest.keys().cloned().collect();
    for dest in &dests {
        for parent in ancestors(dest) {
            match by_dest.entry(parent.to_string()) {
                MapEntry::Vacant(v) => {
                    v.insert(Pending {
                        item: CopyItem::implied_dir(parent.to_string()),
                        stat: None,
                        inode: None,
                    });
                }
                MapEntry::Occupied(o) if o.get().item.kind != ItemKind::Dir => {
                    return Err(msg(format!(
                        "COPY destination `/{parent}` would be both a file (from `{}`) and a directory (for `/{dest}`)",
                        o.get().item.source
                    )));
                }
                MapEntry::Occupied(_) => {}
            }
        }
    }
    Ok(by_dest.into_values().collect())
}

impl Tree {
    fn where_(&self) -> &'static str {
        match self.kind {
            TreeKind::Context => "the build context",
            TreeKind::Rootfs => "the stage",
        }
    }

    /// The paths one source pattern selects, with symlinks named by the
    /// source followed.
    fn select(&self, source: &str, parents: bool) -> Result<Vec<Selected>, CopyError> {
        let outside = || CopyError::OutsideRoot {
            pattern: source.to_string(),
        };
        // `--parents` keeps the path after a `/./` pivot, or all of it.
        let pivot = if parents {
            source
                .find("/./")
                .map(|i| relative(&source[..i]).ok_or_else(outside))
                .transpose()?
        } else {
            None
        };
        let rel = relative(source).ok_or_else(outside)?;
        let candidates = if has_meta(&rel) {
            self.expand_glob(&rel)?
        } else {
            vec![rel.clone()]
        };

        let mut out = Vec::new();
        let mut ignored_by = None;
        for logical in candidates {
            let Some(real) = self.resolve(&logical, true)? else {
                continue;
            };
            let abs = self.root.join(&real);
            let meta =
                fs::metadata(&abs).map_err(|e| io_err(format!("reading {}", abs.display()), e))?;
            if self.kind == TreeKind::Context {
                let rule = [&logical, &real]
                    .into_iter()
                    .find_map(|p| self.ignore.excluded_by(p));
                if let Some(rule) = rule
                    && !(meta.is_dir()
                        && self.ignore.may_include_under(&real)
                        && self.has_included(&real)?)
                {
                    ignored_by.get_or_insert_with(|| rule.to_string());
                    continue;
                }
            }
            // The pivot may itself be a glob: drop as many components as it has.
            let kept = match &pivot {
                Some(p) => {
                    let n = p.split('/').filter(|c| !c.is_empty()).count();
                    logical.split('/').skip(n).collect::<Vec<_>>().join("/")
                }
                None => logical.clone(),
            };
            out.push(Selected {
                logical,
                real,
                meta,
                kept,
            });
        }
        if out.is_empty() {
            return Err(CopyError::SourceMissing {
                pattern: source.to_string(),
                ignored_by,
            });
        }
        Ok(out)
    }

    /// Go `filepath.Glob` over the tree, one component at a time; the
    /// results are sorted and exist (they may still be ignored).
    fn expand_glob(&self, pattern: &str) -> Result<Vec<String>, CopyError> {
        let mut current = vec![String::new()];
        for component in pattern.split('/') {
            let mut next = Vec::new();
            if !has_meta(component) {
                next = current.iter().map(|c| join(c, component)).collect();
            } else {
                let glob = Glob::new(component).map_err(|e| msg(e.to_string()))?;
                for dir in &current {
                    let Some(real) = self.resolve(dir, true)? else {
                        continue;
                    };
                    for name in self.list(&real)?.unwrap_or_default() {
                        if glob.matches(&name) {
                            next.push(join(dir, &name));
                        }
                    }
                }
            }
            current = next;
        }
        // Literal trailing components may name nothing.
        let mut found = Vec::new();
        for c in current {
            if self.resolve(&c, false)?.is_some() {
                found.push(c);
            }
        }
        Ok(found)
    }

    /// The sorted names in a directory (relative to the root); `None` when
    /// it is not a directory.
    fn list(&self, real_dir: &str) -> Result<Option<Vec<String>>, CopyError> {
        Ok(self
            .list_entries(real_dir)?
            .map(|v| v.into_iter().map(|(name, _)| name).collect()))
    }

    /// Like [`Tree::list`], with each entry: its metadata is read relative
    /// to the open directory, far cheaper than a stat of the full path.
    fn list_entries(
        &self,
        real_dir: &str,
    ) -> Result<Option<Vec<(String, fs::DirEntry)>>, CopyError> {
        let abs = self.root.join(real_dir);
        let Some(entries) = existing(fs::read_dir(&abs), "listing", &abs)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(format!("listing {}", abs.display()), e))?;
            out.push((utf8_name(entry.file_name(), &abs)?, entry));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(out))
    }

    /// Resolves `logical` inside the root: `..` and absolute symlink
    /// targets stop at the root. The last component is followed only when
    /// `follow_last`. `None` when some component does not exist.
    fn resolve(&self, logical: &str, follow_last: bool) -> Result<Option<String>, CopyError> {
        let mut pending: VecDeque<String> = logical.split('/').map(str::to_string).collect();
        let mut real: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(component) = pending.pop_front() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    real.pop();
                    continue;
                }
                _ => real.push(component),
            }
            let abs = self.root.join(real.join("/"));
            let Some(meta) = existing(fs::symlink_metadata(&abs), "reading", &abs)? else {
                return Ok(None);
            };
            let last = pending.iter().all(|c| c.is_empty() || c == ".");
            if meta.file_type().is_symlink() && (follow_last || !last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(msg(format!(
                        "too many levels of symbolic links resolving `{logical}` in {}",
                        self.where_()
                    )));
                }
                let target = fs::read_link(&abs)
                    .map_err(|e| io_err(format!("reading link {}", abs.display()), e))?;
                let target = target.into_os_string().into_string().map_err(|t| {
                    msg(format!(
                        "symlink target {t:?} of {} is not valid UTF-8",
                        abs.display()
                    ))
                })?;
                real.pop();
                if target.starts_with('/') {
                    real.clear();
                }
                for c in target.split('/').rev() {
                    pending.push_front(c.to_string());
                }
            }
        }
        Ok(Some(real.join("/")))
    }

    /// Whether an ignored directory holds anything a `!` rule re-includes.
    fn has_included(&self, real_dir: &str) -> Result<bool, CopyError> {
        for name in self.list(real_dir)?.unwrap_or_default() {
            let real = join(real_dir, &name);
            let abs = self.root.join(&real);
            let meta = fs::symlink_metadata(&abs)
                .map_err(|e| io_err(format!("reading {}", abs.display()), e))?;
            let ft = meta.file_type();
            if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                continue;
            }
            if !self.ignore.is_excluded(&real)
                || (ft.is_dir()
                    && self.ignore.may_include_under(&real)
                    && self.has_included(&real)?)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// An entry for `real` (followed metadata `meta`) landing at `dest`.
    fn pending(&self, dest: &str, real: &str, meta: &fs::Metadata) -> Result<Pending, CopyError> {
        let abs = self.root.join(real);
        let ft = meta.file_type();
        let mut inode = None;
        let (kind, stat) = if ft.is_dir() {
            (ItemKind::Dir, None)
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs)
                .map_err(|e| io_err(format!("reading link {}", abs.display()), e))?;
            let target = target.into_os_string().into_string().map_err(|t| {
                msg(format!(
                    "symlink target {t:?} of {} is not valid UTF-8",
                    abs.display()
                ))
            })?;
            (ItemKind::Symlink { target }, None)
        } else {
            if meta.nlink() > 1 {
                inode = Some((0, meta.dev(), meta.ino()));
            }
            (
                ItemKind::File {
                    path: abs,
                    size: meta.size(),
                    hash: None,
                },
                Some(FileStat::of(meta)),
            )
        };
        Ok(Pending {
            item: CopyItem {
                dest: dest.to_string(),
                source: real.to_string(),
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                name: None,
                hardlink_of: None,
            },
            stat,
            inode,
        })
    }

    /// Adds the contents of directory `real_dir` (named `logical_dir`, at
    /// `inner` below the copied source directory) under `dest_dir`. Ignored
    /// and excluded entries are dropped, but a dropped directory is still
    /// searched when a `!` rule could re-include something inside it.
    fn walk(
        &self,
        real_dir: &str,
        logical_dir: &str,
        inner: &str,
        dest_dir: &str,
        exclude: &IgnoreRules,
        out: &mut Vec<Pending>,
    ) -> Result<(), CopyError> {
        let current = join(real_dir, inner);
        let entries = self.list_entries(&current)?.unwrap_or_default();
        // Entries (and the subtrees below them) are read in parallel; the
        // parts are joined back in name order, so the result is the same.
        let parts = entries
            .into_par_iter()
            .map(|(name, entry)| -> Result<Vec<Pending>, CopyError> {
                let real = join(&current, &name);
                let inner_path = join(inner, &name);
                let logical = join(logical_dir, &inner_path);
                let meta = entry.metadata().map_err(|e| {
                    io_err(format!("reading {}", self.root.join(&real).display()), e)
                })?;
                let ignored = self.kind == TreeKind::Context && self.ignore.is_excluded(&real);
                let excluded = exclude.is_excluded(&inner_path) || exclude.is_excluded(&logical);
                let hidden = ignored || excluded;
                let dest = join(dest_dir, &name);
                let ft = meta.file_type();
                if ft.is_dir() {
                    let may_reinclude = (!ignored || self.ignore.may_include_under(&real))
                        && (!excluded
                            || exclude.may_include_under(&inner_path)
                            || exclude.may_include_under(&logical));
                    if hidden && !may_reinclude {
                        return Ok(Vec::new());
                    }
                    let mut children = Vec::new();
                    self.walk(
                        real_dir,
                        logical_dir,
                        &inner_path,
                        &dest,
                        exclude,
                        &mut children,
                    )?;
                    if hidden && children.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut part = Vec::with_capacity(children.len() + 1);
                    part.push(self.pending(&dest, &real, &meta)?);
                    part.append(&mut children);
                    Ok(part)
                } else if (ft.is_file() || ft.is_symlink()) && !hidden {
                    Ok(vec![self.pending(&dest, &real, &meta)?])
                } else {
                    // Sockets, devices and fifos are not copied.
                    Ok(Vec::new())
                }
            })
            .collect::<Result<Vec<_>, CopyError>>()?;
        out.extend(parts.into_iter().flatten());
        Ok(())
    }

    /// Fills in content hashes, in parallel, through the stat cache.
    fn hash_all(&self, items: &mut [Pending]) -> Result<(), CopyError> {
        items.par_iter_mut().try_for_each(|p| {
            let (ItemKind::File { path, size, hash }, Some(stat)) = (&mut p.item.kind, &p.stat)
            else {
                return Ok(());
            };
            if let Some(cache) = &self.stat_cache
                && let Some(h) = cache.lock().ok().and_then(|mut c| c.get(path, stat))
            {
                *hash = Some(h);
                return Ok(());
            }
            let started = now_ns();
            let h = self.hash_file(path, *size)?;
            if let Some(cache) = &self.stat_cache
                && let Ok(mut c) = cache.lock()
            {
                c.insert(path, *stat, h, started);
            }
            *hash = Some(h);
            Ok(())
        })
    }

    fn hash_file(&self, path: &Path, size: u64) -> Result<[u8; 32], CopyError> {
        #[cfg(test)]
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut hasher = blake3::Hasher::new();
        let mut file =
            fs::File::open(path).map_err(|e| io_err(format!("opening {}", path.display()), e))?;
        let reading = |e| io_err(format!("reading {}", path.display()), e);
        let read = if size >= PARALLEL_THRESHOLD {
            hash_in_chunks(&mut file, &mut hasher).map_err(reading)?
        } else {
            io::copy(&mut file, &mut hasher).map_err(reading)?
        };
        if read != size {
            return Err(msg(format!(
                "{} changed while it was being hashed ({size} bytes when listed, {read} when read)",
                path.display()
            )));
        }
        Ok(*hasher.finalize().as_bytes())
    }
}

/// Hashes all of `file` a [`PARALLEL_CHUNK`] at a time, each chunk on the
/// rayon pool; returns the bytes read. Memory stays one chunk.
fn hash_in_chunks(file: &mut fs::File, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    let mut buf = vec![0u8; PARALLEL_CHUNK];
    let mut total = 0u64;
    loop {
        // Fill the buffer (a read may return less), so chunks stay large.
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(k) => len += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len == 0 {
            return Ok(total);
        }
        hasher.update_rayon(&buf[..len]);
        total += len as u64;
    }
}

//! Where a COPY's entries land in the image it writes onto.
//!
//! The context decides the entries from the sources alone; two things
//! depend on the parent image, and BuildKit (which copies onto the parent's
//! file system) does both:
//! - the destination is resolved inside the image, following its symlinks
//!   in every component (`COPY a /link` with `/link -> /real` writes
//!   `/real/a`): a layer never replaces an image's symlink with a
//!   directory;
//! - the one file copied to a destination without a trailing `/` goes
//!   *into* that destination when it is an existing directory
//!   (`COPY a.txt /etc` writes `/etc/a.txt`); otherwise it is the
//!   destination (a new file, or one that replaces an existing file).
//!
//! Both read only the parent's layers, which the step's key already
//! includes (through the parent's key), so a cached result stays right.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

use crate::context::{CopyItem, ItemKind};
use crate::error::{Error, Result};
use crate::layer;
use crate::store::Store;

use super::super::layers::ChainLayer;

/// Symlinks followed while resolving one destination (Linux's limit).
const MAX_LINKS: usize = 40;

/// What a path is in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Found {
    Missing,
    Dir,
    Symlink(String),
    /// A regular file, device, fifo or socket.
    Other,
}

/// An image's file system read through its layer snapshots, without
/// unpacking it: the top layer that has a path decides what it is, and
/// overlay whiteouts and opaque directories hide what lower layers hold.
pub(super) struct ImageFs {
    /// Snapshot directories, top layer first.
    layers: Vec<PathBuf>,
}

impl ImageFs {
    /// The image made of `layers` (bottom first); their snapshots are made
    /// if they are not there yet.
    pub(super) fn new(store: &Store, layers: &[ChainLayer]) -> Result<ImageFs> {
        let mut dirs = Vec::with_capacity(layers.len());
        for l in layers.iter().rev() {
            dirs.push(l.snapshot(store)?);
        }
        Ok(ImageFs { layers: dirs })
    }

    /// Over snapshot directories given bottom first (tests).
    #[cfg(test)]
    pub(super) fn from_dirs(mut bottom_first: Vec<PathBuf>) -> ImageFs {
        bottom_first.reverse();
        ImageFs {
            layers: bottom_first,
        }
    }

    /// What `path` (relative, every ancestor already a real directory or
    /// missing) is.
    pub(super) fn lookup(&self, path: &str) -> Result<Found> {
        if path.is_empty() {
            return Ok(Found::Dir);
        }
        let stat = |p: &std::path::Path| match std::fs::symlink_metadata(p) {
            Ok(m) => Ok(Some(m)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
        };
        for dir in &self.layers {
            // The ancestors first, shortest first, without following any
            // link: a symlink in a lower layer under a directory of an upper
            // one must never be followed on the host (the image decides
            // nothing outside its snapshots).
            let mut opaque_above = false;
            let mut here = true;
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                let anc = &path[..at + i];
                at += i + 1;
                let p = dir.join(anc);
                match stat(&p)? {
                    Some(m) if m.is_dir() => {
                        opaque_above |= layer::is_overlay_opaque(&p).map_err(|e| {
                            Error::io(format!("reading xattrs of {}", p.display()), e)
                        })?;
                    }
                    // A whiteout or a non-directory replaces the ancestor.
                    Some(_) => return Ok(Found::Missing),
                    None => {
                        here = false;
                        break;
                    }
                }
            }
            if here {
                let abs = dir.join(path);
                if let Some(m) = stat(&abs)? {
                    let ft = m.file_type();
                    return Ok(if layer::is_overlay_whiteout(&m) {
                        Found::Missing
                    } else if ft.is_dir() {
                        Found::Dir
                    } else if ft.is_symlink() {
                        let t = std::fs::read_link(&abs)
                            .map_err(|e| Error::io(format!("reading link {}", abs.display()), e))?;
                        Found::Symlink(t.to_string_lossy().into_owned())
                    } else {
                        Found::Other
                    });
                }
            }
            // An opaque ancestor in this layer hides the lower ones.
            if opaque_above {
                return Ok(Found::Missing);
            }
        }
        Ok(Found::Missing)
    }

    /// `path` (relative) with every symlink on the way followed inside the
    /// image (an absolute or `..` target stops at its root), and what the
    /// result is there.
    pub(super) fn resolve(&self, path: &str) -> Result<(String, Found)> {
        let mut pending: VecDeque<String> = path.split('/').map(str::to_string).collect();
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
            if let Found::Symlink(target) = self.lookup(&real.join("/"))? {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::msg(format!(
                        "too many levels of symbolic links resolving the COPY destination `/{path}` in the image"
                    )));
                }
                real.pop();
                if target.starts_with('/') {
                    real.clear();
                }
                for c in target.split('/').rev() {
                    pending.push_front(c.to_string());
                }
            }
        }
        let real = real.join("/");
        let found = self.lookup(&real)?;
        Ok((real, found))
    }
}

/// `items` (from the context's COPY planning, destinations under
/// `dest_root`) moved to where they land in `image`, and the destination
/// root they now have. `keeps_dest` says whether a file item stays the
/// destination itself even when that is a directory (an ADD archive,
/// which is unpacked into it).
pub(super) fn place(
    mut items: Vec<CopyItem>,
    dest_root: &str,
    image: &ImageFs,
    keeps_dest: impl Fn(&CopyItem) -> Result<bool>,
) -> Result<(Vec<CopyItem>, String)> {
    if dest_root.is_empty() {
        return Ok((items, String::new()));
    }
    let (real, found) = image.resolve(dest_root)?;
    let mut moved = false;
    if real != dest_root {
        rebase(&mut items, dest_root, &real);
        moved = true;
    }
    if found == Found::Dir {
        for it in &mut items {
            if it.dest == real
                && it.kind != ItemKind::Dir
                && let Some(name) = &it.name
                && !keeps_dest(it)?
            {
                it.dest = join(&real, name);
                moved = true;
            }
        }
    }
    if moved {
        complete_ancestors(&mut items);
    }
    Ok((items, real))
}

/// Moves everything at or below `from` to `to`, and drops the directories
/// listed only as ancestors of `from` (those of `to` are listed after).
fn rebase(items: &mut Vec<CopyItem>, from: &str, to: &str) {
    let moved = |p: &str| -> Option<String> {
        let rest = if p == from {
            ""
        } else {
            p.strip_prefix(from)?.strip_prefix('/')?
        };
        Some(join(to, rest))
    };
    items.retain(|it| {
        !(it.source.is_empty() && it.kind == ItemKind::Dir && is_ancestor(&it.dest, from))
    });
    for it in items.iter_mut() {
        if let Some(d) = moved(&it.dest) {
            it.dest = d;
        }
        if let Some(first) = &it.hardlink_of
            && let Some(d) = moved(first)
        {
            it.hardlink_of = Some(d);
        }
    }
    // The image's root is not an entry.
    items.retain(|it| !it.dest.is_empty());
}

/// Lists every missing ancestor directory (as the context's planning
/// does) and sorts by destination again.
pub(super) fn complete_ancestors(items: &mut Vec<CopyItem>) {
    let listed: BTreeSet<String> = items.iter().map(|it| it.dest.clone()).collect();
    let mut missing = BTreeSet::new();
    for d in &listed {
        let mut p = d.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            p = parent;
            if !listed.contains(p) {
                missing.insert(p.to_string());
            }
        }
    }
    items.extend(missing.into_iter().map(CopyItem::implied_dir));
    items.sort_by(|a, b| a.dest.cmp(&b.dest));
}

/// Whether `a` is a strict ancestor of `p`.
fn is_ancestor(a: &str, p: &str) -> bool {
    p.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'))
}

fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;

    fn item(dest: &str, source: &str, kind: ItemKind, name: Option<&str>) -> CopyItem {
        CopyItem {
            dest: dest.to_string(),
            source: source.to_string(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            name: name.map(str::to_string),
            hardlink_of: None,
        }
    }

    fn file(dest: &str, name: Option<&str>) -> CopyItem {
        let kind = ItemKind::File {
            path: PathBuf::from("/ctx/f"),
            size: 1,
            hash: None,
        };
        item(dest, "f", kind, name)
    }

    fn dests(items: &[CopyItem]) -> Vec<&str> {
        items.iter().map(|i| i.dest.as_str()).collect()
    }

    fn mkdir(root: &Path, p: &str) {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }

    /// Two layers: the lower has /etc, /real/d, a file /f and symlinks
    /// to them; the upper deletes /gone (a whiteout) and makes /opq opaque.
    fn image() -> (tempfile::TempDir, ImageFs) {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "real/d", "gone", "opq/old"] {
            mkdir(&lower, d);
        }
        std::fs::write(lower.join("f"), b"f").unwrap();
        symlink("/real", lower.join("abs")).unwrap();
        symlink("real/d", lower.join("rel")).unwrap();
        symlink("../../etc", lower.join("real/up")).unwrap();
        symlink("/f", lower.join("to-file")).unwrap();
        mkdir(&upper, "opq");
        if !is_root() {
            // A whiteout is a device node: only root makes one.
            return (t, ImageFs::from_dirs(vec![lower, upper]));
        }
        let opaque = crate::layer::UnpackOptions {
            overlay_whiteouts: true,
            ..crate::layer::UnpackOptions::for_current_user()
        };
        // Whiteout and opaque marker as a snapshot holds them.
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind) in [
            (".wh.gone", tar::EntryType::Regular),
            ("opq/", tar::EntryType::Directory),
            ("opq/.wh..wh..opq", tar::EntryType::Regular),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            tar.append(&h, std::io::empty()).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        crate::layer::unpack(&bytes[..], &upper, &opaque).unwrap();
        (t, ImageFs::from_dirs(vec![lower, upper]))
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_image() {
        let (_t, fs) = image();
        let r = |p: &str| fs.resolve(p).unwrap();
        assert_eq!(r("etc"), ("etc".into(), Found::Dir));
        assert_eq!(r("abs"), ("real".into(), Found::Dir));
        assert_eq!(r("rel/x/y"), ("real/d/x/y".into(), Found::Missing));
        assert_eq!(r("abs/up"), ("etc".into(), Found::Dir));
        assert_eq!(r("to-file"), ("f".into(), Found::Other));
        assert_eq!(r("new/a"), ("new/a".into(), Found::Missing));
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        if !is_root() {
            eprintln!("SKIP: overlay whiteouts need root");
            return;
        }
        let (_t, fs) = image();
        // Whether the kernel let the xattr be set (not on every file system).
        let opaque = layer::is_overlay_opaque(&fs.layers[0].join("opq")).unwrap_or(false);
        assert_eq!(fs.resolve("gone").unwrap().1, Found::Missing);
        assert_eq!(fs.resolve("opq").unwrap().1, Found::Dir);
        if opaque {
            assert_eq!(fs.resolve("opq/old").unwrap().1, Found::Missing);
        }
    }

    #[test]
    fn a_lower_symlink_under_an_upper_directory_is_never_followed_on_the_host() {
        let t = tempfile::tempdir().unwrap();
        let (host, lower, upper) = (
            t.path().join("host"),
            t.path().join("lower"),
            t.path().join("upper"),
        );
        mkdir(&host, "x");
        mkdir(&lower, "");
        symlink(&host, lower.join("etc")).unwrap();
        mkdir(&upper, "etc");
        let fs = ImageFs::from_dirs(vec![lower, upper]);
        assert!(matches!(fs.lookup("etc/x").unwrap(), Found::Missing));
        assert!(matches!(fs.resolve("etc/x").unwrap().1, Found::Missing));
    }

    #[test]
    fn a_file_goes_into_an_existing_directory() {
        let (_t, fs) = image();
        let never = |_: &CopyItem| Ok(false);
        let (items, root) = place(vec![file("etc", Some("a.txt"))], "etc", &fs, never).unwrap();
        assert_eq!(
            (dests(&items), root.as_str()),
            (vec!["etc", "etc/a.txt"], "etc")
        );
        assert_eq!(items[0].kind, ItemKind::Dir);
        assert_eq!(items[0].source, "", "the directory is only a parent");
        // A new path or an existing file is the destination itself.
        let (items, _) = place(vec![file("new", Some("a.txt"))], "new", &fs, never).unwrap();
        assert_eq!(dests(&items), ["new"]);
        let (items, _) = place(vec![file("f", Some("a.txt"))], "f", &fs, never).unwrap();
        assert_eq!(dests(&items), ["f"]);
        // Into a directory behind a symlink; an archive stays the directory.
        let (items, _) = place(vec![file("rel", Some("a.txt"))], "rel", &fs, never).unwrap();
        assert_eq!(dests(&items), ["real", "real/d", "real/d/a.txt"]);
        let (items, _) = place(vec![file("etc", Some("a.tar"))], "etc", &fs, |_| Ok(true)).unwrap();
        assert_eq!(dests(&items), ["etc"]);
        // An item already named into the directory stays.
        let (items, _) = place(vec![file("etc/a.txt", None)], "etc/a.txt", &fs, never).unwrap();
        assert_eq!(dests(&items), ["etc/a.txt"]);
    }

    #[test]
    fn a_directory_copy_through_a_symlink_is_rebased_with_its_parents() {
        let (_t, fs) = image();
        let dir = |d: &str, s: &str| item(d, s, ItemKind::Dir, None);
        let mut linked = file("abs/new/sub/b", None);
        linked.hardlink_of = Some("abs/new/a".into());
        let items = vec![
            dir("abs", ""),
            dir("abs/new", "src"),
            file("abs/new/a", None),
            dir("abs/new/sub", "src/sub"),
            linked,
        ];
        let (items, root) = place(items, "abs/new", &fs, |_| Ok(false)).unwrap();
        assert_eq!(root, "real/new");
        assert_eq!(
            dests(&items),
            [
                "real",
                "real/new",
                "real/new/a",
                "real/new/sub",
                "real/new/sub/b"
            ]
        );
        assert_eq!(items[4].hardlink_of.as_deref(), Some("real/new/a"));
        assert_eq!(items[1].source, "src");
        assert_eq!(items[0].source, "");
    }
}

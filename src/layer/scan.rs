//! Reading a directory tree (an overlay upperdir, a fixture) into entries.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::entry::{Entry, EntryKind};
use super::sys;
use crate::error::{Error, IoContext, Result};

/// (st_dev, st_ino): the identity of a file for hard-link detection.
type Inode = (u64, u64);

/// Overlay marks a directory that hides its lower content with one of these
/// set to "y" (`trusted.` as root, `user.` with the `userxattr` option).
pub(super) const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Whether an xattr belongs in a layer: `user.*` (but not overlay's own
/// `user.overlay.*`) and file capabilities. `trusted.*` (overlay's
/// bookkeeping), `security.selinux` and ACLs are host state and are skipped.
fn keep_xattr(name: &str) -> bool {
    (name.starts_with("user.") && !name.starts_with("user.overlay."))
        || name == "security.capability"
}

/// The mtimes [`entries_from_dir_with`] gives entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mtimes {
    /// Every entry gets this mtime.
    Set(u64),
    /// An entry keeps its mtime when it is not later than this one (a file
    /// a package manager unpacked with its packaged mtime), and gets this
    /// one otherwise (a file written during the build); negative mtimes
    /// become 0.
    Clamp(u64),
}

impl Mtimes {
    fn of(self, actual: i64) -> u64 {
        match self {
            Mtimes::Set(t) => t,
            Mtimes::Clamp(t) => (actual.max(0) as u64).min(t),
        }
    }
}

/// [`entries_from_dir_with`] with every mtime set to `mtime`.
pub fn entries_from_dir(root: &Path, mtime: u64) -> Result<Vec<Entry>> {
    entries_from_dir_with(root, Mtimes::Set(mtime))
}

/// Reads the tree under `root` (not `root` itself) into entries, in output
/// order.
///
/// Type, mode, uid/gid, xattrs (`user.*`, `security.capability`), symlink
/// targets; files that share an inode become hard links to the first of them
/// in output order; mtimes follow `mtimes`. Overlay whiteouts (0:0
/// character devices) become [`EntryKind::Whiteout`]; a directory with the
/// overlay opaque xattr yields an [`EntryKind::Opaque`] entry as well as its
/// `Dir`. Sockets are skipped (a tar cannot hold them). Names that are not
/// UTF-8 are an error.
pub fn entries_from_dir_with(root: &Path, mtimes: Mtimes) -> Result<Vec<Entry>> {
    // (tar name, entry, (dev, inode) if it may be hard linked)
    let mut out: Vec<(String, Entry, Option<Inode>)> = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name();
    for item in walker {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).display().to_string();
            match e.into_io_error() {
                Some(io) => Error::io(format!("reading directory tree at {path}"), io),
                None => Error::msg(format!("reading directory tree at {path}: symlink loop")),
            }
        })?;
        let abs = item.path();
        let rel = abs.strip_prefix(root).map_err(|_| {
            Error::msg(format!("{} is not under {}", abs.display(), root.display()))
        })?;
        let mut parts = Vec::new();
        for c in rel.components() {
            let s = c.as_os_str().to_str().ok_or_else(|| {
                Error::Unsupported(format!("file name that is not UTF-8 ({})", abs.display()))
            })?;
            parts.push(s);
        }
        let path = parts.join("/");
        let meta = abs.symlink_metadata().at("reading metadata of", abs)?;
        let ft = meta.file_type();
        let mut xattrs = Vec::new();
        let mut opaque = false;
        for name in sys::llistxattr(abs).at("listing xattrs of", abs)? {
            if OPAQUE_XATTRS.contains(&name.as_str()) {
                let v = sys::lgetxattr(abs, &name).at("reading xattrs of", abs)?;
                opaque |= v.as_deref() == Some(b"y");
            } else if keep_xattr(&name)
                && let Some(v) = sys::lgetxattr(abs, &name).at("reading xattrs of", abs)?
            {
                xattrs.push((name, v));
            }
        }
        xattrs.sort();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File {
                source: abs.to_path_buf(),
                size: meta.len(),
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(abs).at("reading symlink", abs)?;
            let target = target.into_os_string().into_string().map_err(|_| {
                Error::Unsupported(format!(
                    "symlink target that is not UTF-8 ({})",
                    abs.display()
                ))
            })?;
            EntryKind::Symlink { target }
        } else if ft.is_char_device() && meta.rdev() == 0 {
            EntryKind::Whiteout
        } else if ft.is_char_device() {
            EntryKind::CharDevice {
                major: libc::major(meta.rdev()),
                minor: libc::minor(meta.rdev()),
            }
        } else if ft.is_block_device() {
            EntryKind::BlockDevice {
                major: libc::major(meta.rdev()),
                minor: libc::minor(meta.rdev()),
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            // Sockets: not representable in a tar.
            continue;
        };
        // Overlay shares one inode among whiteouts: those are not links.
        let inode = (kind.is_linkable() && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        let is_dir = matches!(kind, EntryKind::Dir);
        let entry = Entry {
            path: path.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: mtimes.of(meta.mtime()),
            xattrs,
        };
        out.push((entry.tar_name()?, entry, inode));
        if is_dir && opaque {
            let marker = Entry {
                path,
                kind: EntryKind::Opaque,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: mtimes.of(0),
                xattrs: Vec::new(),
            };
            out.push((marker.tar_name()?, marker, None));
        }
    }
    // Same order as write_layer, so the first of a hard-link group is the
    // one written with content.
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut first_of: HashMap<Inode, String> = HashMap::new();
    let mut entries = Vec::with_capacity(out.len());
    for (_, mut entry, inode) in out {
        if let Some(inode) = inode {
            match first_of.get(&inode) {
                Some(target) => {
                    entry.kind = EntryKind::Hardlink {
                        target: target.clone(),
                    }
                }
                None => {
                    first_of.insert(inode, entry.path.clone());
                }
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_filter() {
        assert!(keep_xattr("user.mime_type"));
        assert!(keep_xattr("security.capability"));
        assert!(!keep_xattr("user.overlay.origin"));
        assert!(!keep_xattr("trusted.overlay.opaque"));
        assert!(!keep_xattr("security.selinux"));
        assert!(!keep_xattr("system.posix_acl_access"));
    }

    #[test]
    fn reads_types_links_and_clamps_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("d/e")).unwrap();
        std::fs::write(r.join("d/f"), b"hello").unwrap();
        std::fs::hard_link(r.join("d/f"), r.join("a-link")).unwrap();
        std::os::unix::fs::symlink("../x", r.join("d/s")).unwrap();
        let entries = entries_from_dir(r, 42).unwrap();
        let summary: Vec<(&str, String)> = entries
            .iter()
            .map(|e| {
                let k = match &e.kind {
                    EntryKind::Dir => "dir".to_string(),
                    EntryKind::File { size, .. } => format!("file {size}"),
                    EntryKind::Symlink { target } => format!("symlink {target}"),
                    EntryKind::Hardlink { target } => format!("hardlink {target}"),
                    other => format!("{other:?}"),
                };
                (e.path.as_str(), k)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a-link", "file 5".to_string()),
                ("d", "dir".to_string()),
                ("d/e", "dir".to_string()),
                ("d/f", "hardlink a-link".to_string()),
                ("d/s", "symlink ../x".to_string()),
            ]
        );
        assert!(entries.iter().all(|e| e.mtime == 42));
    }

    fn set_mtime(p: &Path, secs: i64) {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
            .unwrap();
    }

    #[test]
    fn clamp_keeps_older_mtimes_and_lowers_newer_ones() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::write(r.join("old"), b"packaged").unwrap();
        std::fs::write(r.join("new"), b"written now").unwrap();
        std::fs::write(r.join("at"), b"at the epoch").unwrap();
        set_mtime(&r.join("old"), 1_000);
        set_mtime(&r.join("at"), 5_000);
        let epoch = 5_000;
        let entries = entries_from_dir_with(r, Mtimes::Clamp(epoch)).unwrap();
        let got: Vec<(&str, u64)> = entries.iter().map(|e| (e.path.as_str(), e.mtime)).collect();
        assert_eq!(got, [("at", 5_000), ("new", 5_000), ("old", 1_000)]);
        // With the default epoch 0 everything is 0, as before.
        let zero = entries_from_dir_with(r, Mtimes::Clamp(0)).unwrap();
        assert!(zero.iter().all(|e| e.mtime == 0));
    }
}

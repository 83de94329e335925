//! `Entry`: one member of a layer, and the rules for its path.

use std::path::PathBuf;

use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::error::{Error, Result};

/// One entry of a layer. `path` is relative with '/' separators, no leading
/// '/', no '.'/'..' components ("usr/bin/app").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Extended attributes, written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// Contents streamed from `source` at write time; `size` is checked then.
    File {
        source: PathBuf,
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// `target` is the path of another entry of the same layer.
    Hardlink {
        target: String,
    },
    /// Written as `dir/.wh.NAME` (deletes NAME from lower layers).
    Whiteout,
    /// Written as `path/.wh..wh..opq` for directory `path`.
    Opaque,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl EntryKind {
    /// Whether a hard link may point at an entry of this kind.
    pub(crate) fn is_linkable(&self) -> bool {
        !matches!(
            self,
            EntryKind::Dir | EntryKind::Whiteout | EntryKind::Opaque | EntryKind::Hardlink { .. }
        )
    }
}

fn invalid(path: &str, why: &str) -> Error {
    Error::msg(format!("invalid layer entry path {path:?}: {why}"))
}

/// Checks that `path` is a clean relative path (see [`Entry::path`]).
pub(crate) fn check_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(invalid(path, "empty"));
    }
    if path.contains('\0') {
        return Err(invalid(path, "contains a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(invalid(
            path,
            "absolute (must be relative to the layer root)",
        ));
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err(invalid(path, "empty component (`//` or trailing `/`)")),
            "." | ".." => return Err(invalid(path, "`.` and `..` components are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

impl Entry {
    /// The member name written to the tar, without the trailing `/` of
    /// directories. Entries are sorted and deduplicated by this name.
    pub(crate) fn tar_name(&self) -> Result<String> {
        check_path(&self.path)?;
        let (parent, base) = match self.path.rsplit_once('/') {
            Some((p, b)) => (Some(p), b),
            None => (None, self.path.as_str()),
        };
        if base.starts_with(WHITEOUT_PREFIX) {
            return Err(invalid(
                &self.path,
                "names starting with `.wh.` are reserved for whiteouts",
            ));
        }
        Ok(match &self.kind {
            EntryKind::Whiteout => match parent {
                Some(p) => format!("{p}/{WHITEOUT_PREFIX}{base}"),
                None => format!("{WHITEOUT_PREFIX}{base}"),
            },
            EntryKind::Opaque => format!("{}/{OPAQUE_MARKER}", self.path),
            _ => self.path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        }
    }

    #[test]
    fn rejects_unclean_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            ".",
            "..",
            "a/../b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "usr/bin/app", "a b/c-d", "...", "a/..b"] {
            check_path(good).unwrap();
        }
    }

    #[test]
    fn tar_names_of_whiteouts_and_opaque_markers() {
        assert_eq!(
            entry("a/b", EntryKind::Whiteout).tar_name().unwrap(),
            "a/.wh.b"
        );
        assert_eq!(
            entry("top", EntryKind::Whiteout).tar_name().unwrap(),
            ".wh.top"
        );
        assert_eq!(
            entry("a/b", EntryKind::Opaque).tar_name().unwrap(),
            "a/b/.wh..wh..opq"
        );
        assert_eq!(entry("a/b", EntryKind::Dir).tar_name().unwrap(), "a/b");
        let err = entry("a/.wh.x", EntryKind::Fifo).tar_name().unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }
}

//! Deterministic tar writing and careful tar reading for image archives.

use std::io::{Read, Write};
use std::path::{Component, Path};

use crate::error::{IoContext, Result};

/// Writes entries with fixed metadata (mtime 0, owner 0:0, modes 0644/0755)
/// so the same content always gives the same archive bytes.
pub(crate) struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    dest: std::path::PathBuf,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W, dest: &Path) -> TarOut<W> {
        TarOut {
            builder: tar::Builder::new(w),
            dest: dest.to_path_buf(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub(crate) fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .at("writing", &self.dest)
    }

    pub(crate) fn file(&mut self, path: &str, size: u64, data: impl Read) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, size);
        self.builder
            .append_data(&mut h, path, data)
            .at("writing", &self.dest)
    }

    pub(crate) fn bytes(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.file(path, data.len() as u64, data)
    }

    pub(crate) fn finish(self) -> Result<W> {
        self.builder.into_inner().at("writing", &self.dest)
    }
}

/// An archive member's path as `a/b/c`, or `None` if it is absolute or
/// climbs with `..` (such entries are ignored, never followed).
pub(crate) fn member_path(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// Resolves `target` of a symlink found at `link` (both member paths).
pub(crate) fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut v: Vec<&str> = link.split('/').collect();
        v.pop();
        v
    };
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_normalized_and_escapes_rejected() {
        assert_eq!(
            member_path(Path::new("./index.json")).as_deref(),
            Some("index.json")
        );
        assert_eq!(
            member_path(Path::new("blobs/sha256/ab")).as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(member_path(Path::new("../x")), None);
        assert_eq!(member_path(Path::new("/etc/passwd")), None);
        assert_eq!(member_path(Path::new(".")), None);
    }

    #[test]
    fn links_resolve_inside_the_archive_only() {
        assert_eq!(
            resolve_link("a/layer.tar", "../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(
            resolve_link("a/layer.tar", "x.tar").as_deref(),
            Some("a/x.tar")
        );
        assert_eq!(resolve_link("a/layer.tar", "../../etc/passwd"), None);
    }

    #[test]
    fn tar_output_is_deterministic() {
        let make = || {
            let mut t = TarOut::new(Vec::new(), Path::new("mem"));
            t.dir("blobs/").unwrap();
            t.bytes("blobs/x", b"hello").unwrap();
            t.finish().unwrap()
        };
        let a = make();
        assert_eq!(a, make());
        let mut ar = tar::Archive::new(&a[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), 0);
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["blobs/", "blobs/x"]);
    }
}

//! Reading a few paths of an image from its layers' snapshots (each layer
//! unpacked on its own in overlay form: whiteouts are 0:0 character
//! devices, opaque directories carry the overlay xattr) without laying out
//! the whole image: `COPY --from` of one file reads that file.
//!
//! [`merge_paths`] writes a sparse copy of the merged image: the named
//! paths with their whole subtrees, plus the symlinks met on the way to
//! them, so that resolving the same paths in the copy (symlinks followed
//! inside the root) gives what it gives in the image. Regular files are
//! hard links to the snapshots' files (same inode, same metadata); nothing
//! else of the image is written.
//!
//! Confinement: a snapshot's path is only ever read after each of its
//! ancestors was seen, with `lstat`, to be a real directory in that
//! snapshot, so a symlink in a layer is never followed out of it; targets
//! of symlinks are resolved inside the merged root.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

use super::scan::OPAQUE_XATTRS;
use super::sys;

/// Symlinks followed while resolving one path (as Linux's 40).
const MAX_HOPS: usize = 40;

/// What [`merge_paths`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Entries written into the output (files linked, directories and
    /// symlinks made); deletions of lower content are not counted.
    pub written: usize,
}

/// Writes under `out` (an empty directory) the paths `paths` of the image
/// whose layer snapshots are `layers` (bottom first), each with its whole
/// subtree. A path is relative to the image root (`src/hello`); its
/// components after the first one that holds a glob character (`*?[\`)
/// are dropped, so the copy holds everything a glob could match. A path
/// that does not exist in the image is left out (the caller's own lookup
/// then reports it).
pub fn merge_paths(layers: &[PathBuf], paths: &[String], out: &Path) -> Result<MergeStats> {
    let mut m = Merger {
        layers,
        out,
        stats: MergeStats::default(),
    };
    for p in paths {
        let literal = literal_prefix(p);
        if let Some(real) = m.resolve(&literal)? {
            m.materialize(&real)?;
        }
    }
    Ok(m.stats)
}

/// The components of `p` before the first one with a glob character.
fn literal_prefix(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .take_while(|c| !c.contains(['*', '?', '[', '\\']))
        .map(str::to_string)
        .collect()
}

/// What a path is in the merged image.
enum Found {
    /// In layer `i`, with its metadata there.
    At(usize, fs::Metadata),
    /// Does not exist (never, or deleted by a higher layer).
    Absent,
}

struct Merger<'a> {
    layers: &'a [PathBuf],
    out: &'a Path,
    stats: MergeStats,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn lstat(p: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

fn is_opaque(p: &Path) -> Result<bool> {
    for name in OPAQUE_XATTRS {
        if sys::lgetxattr(p, name)
            .at("reading xattrs of", p)?
            .as_deref()
            == Some(b"y")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn join(comps: &[String]) -> PathBuf {
    comps.iter().collect()
}

/// How layer `dir` treats `comps`: what it has there, whether it hides
/// the lower layers' content at `comps` (an ancestor that is not a
/// directory here, or an opaque one), and whether `comps` can be read in
/// it at all (every ancestor a real directory).
struct LayerView {
    entry: Option<fs::Metadata>,
    hides_lower: bool,
}

fn layer_view(dir: &Path, comps: &[String]) -> Result<LayerView> {
    let mut p = dir.to_path_buf();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(c);
        match lstat(&p)? {
            None => {
                return Ok(LayerView {
                    entry: None,
                    hides_lower: false,
                });
            }
            Some(m) if !m.is_dir() => {
                // A file, symlink or whiteout over an ancestor hides all
                // below it.
                return Ok(LayerView {
                    entry: None,
                    hides_lower: true,
                });
            }
            Some(_) => {
                if is_opaque(&p)? {
                    let entry = match comps.last() {
                        Some(last) => lstat(&p.join(last))?,
                        None => None,
                    };
                    return Ok(LayerView {
                        entry,
                        hides_lower: true,
                    });
                }
            }
        }
    }
    let entry = match comps.last() {
        Some(last) => lstat(&p.join(last))?,
        None => lstat(&p)?,
    };
    Ok(LayerView {
        entry,
        hides_lower: false,
    })
}

impl Merger<'_> {
    /// The topmost layer that has `comps`, unless a higher one deletes it.
    fn lookup(&self, comps: &[String]) -> Result<Found> {
        for (i, dir) in self.layers.iter().enumerate().rev() {
            let v = layer_view(dir, comps)?;
            match v.entry {
                Some(m) if is_whiteout(&m) => return Ok(Found::Absent),
                Some(m) => return Ok(Found::At(i, m)),
                None if v.hides_lower => return Ok(Found::Absent),
                None => {}
            }
        }
        Ok(Found::Absent)
    }

    /// The real path of `logical` in the merged image, every symlink on the
    /// way (the last one too) followed inside the root and written into
    /// the output; None when it does not exist.
    fn resolve(&mut self, logical: &[String]) -> Result<Option<Vec<String>>> {
        let mut todo: Vec<String> = logical.iter().rev().cloned().collect();
        let mut real: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                real.pop();
                continue;
            }
            real.push(c);
            let Found::At(i, m) = self.lookup(&real)? else {
                return Ok(None);
            };
            if !m.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Ok(None);
            }
            let src = join(&real);
            let link = self.layers[i].join(&src);
            let target = fs::read_link(&link).at("reading symlink", &link)?;
            self.write_symlink(&src, &target)?;
            real.pop();
            let t = target.to_string_lossy().into_owned();
            if t.starts_with('/') {
                real.clear();
            }
            for c in t.split('/').rev() {
                if !c.is_empty() && c != "." {
                    todo.push(c.to_string());
                }
            }
        }
        Ok(Some(real))
    }

    /// Writes the merged subtree at `comps` (a real path) into the output.
    fn materialize(&mut self, comps: &[String]) -> Result<()> {
        let rel = join(comps);
        for dir in self.layers {
            let v = layer_view(dir, comps)?;
            if v.hides_lower {
                self.remove(&rel)?;
            }
            let Some(m) = v.entry else { continue };
            if is_whiteout(&m) {
                self.remove(&rel)?;
                continue;
            }
            self.apply(dir, &rel, &m)?;
        }
        Ok(())
    }

    /// Applies layer `dir`'s entry `rel` (metadata `m`) and, for a
    /// directory, everything under it.
    fn apply(&mut self, dir: &Path, rel: &Path, m: &fs::Metadata) -> Result<()> {
        let src = dir.join(rel);
        let dst = self.out.join(rel);
        if m.is_dir() {
            self.ensure_dir(rel)?;
            if is_opaque(&src)? {
                for e in fs::read_dir(&dst).at("reading", &dst)? {
                    let e = e.at("reading", &dst)?;
                    self.remove(&rel.join(e.file_name()))?;
                }
            }
            copy_meta(m, &dst)?;
            let mut names: Vec<_> = fs::read_dir(&src)
                .at("reading", &src)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .at("reading", &src)?;
            names.sort();
            for name in names {
                let child = rel.join(&name);
                let Some(cm) = lstat(&dir.join(&child))? else {
                    continue;
                };
                if is_whiteout(&cm) {
                    self.remove(&child)?;
                } else {
                    self.apply(dir, &child, &cm)?;
                }
            }
            return Ok(());
        }
        self.ensure_parent(rel)?;
        self.remove(rel)?;
        let ft = m.file_type();
        if ft.is_file() {
            match fs::hard_link(&src, &dst) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    fs::copy(&src, &dst).at("copying", &src)?;
                    copy_meta(m, &dst)?;
                }
                Err(e) => return Err(Error::io(format!("linking {}", src.display()), e)),
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).at("reading symlink", &src)?;
            std::os::unix::fs::symlink(&target, &dst).at("creating", &dst)?;
        } else {
            // Devices, fifos and sockets: COPY does not take them.
            return Ok(());
        }
        self.stats.written += 1;
        Ok(())
    }

    fn write_symlink(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let dst = self.out.join(rel);
        if let Some(m) = lstat(&dst)?
            && m.file_type().is_symlink()
        {
            return Ok(());
        }
        self.ensure_parent(rel)?;
        self.remove(rel)?;
        std::os::unix::fs::symlink(target, &dst).at("creating", &dst)?;
        self.stats.written += 1;
        Ok(())
    }

    fn ensure_parent(&mut self, rel: &Path) -> Result<()> {
        match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.ensure_dir(p),
            _ => Ok(()),
        }
    }

    /// Makes `rel` a real directory in the output, component by component,
    /// replacing whatever else is in the way (never following a symlink).
    fn ensure_dir(&mut self, rel: &Path) -> Result<()> {
        let mut p = self.out.to_path_buf();
        for c in rel.components() {
            p.push(c);
            match lstat(&p)? {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&p).at("removing", &p)?;
                    fs::create_dir(&p).at("creating", &p)?;
                    self.stats.written += 1;
                }
                None => {
                    fs::create_dir(&p).at("creating", &p)?;
                    self.stats.written += 1;
                }
            }
        }
        Ok(())
    }

    fn remove(&mut self, rel: &Path) -> Result<()> {
        let p = self.out.join(rel);
        match lstat(&p)? {
            None => Ok(()),
            Some(m) if m.is_dir() => fs::remove_dir_all(&p).at("removing", &p),
            Some(_) => fs::remove_file(&p).at("removing", &p),
        }
    }
}

fn copy_meta(m: &fs::Metadata, dst: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Owners only as root (they are what the layer says).
    let _ = std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()));
    fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
        .at("setting the mode of", dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(root)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                if e.path_is_symlink() {
                    format!("{rel} -> {}", fs::read_link(e.path()).unwrap().display())
                } else {
                    rel
                }
            })
            .collect();
        v.sort();
        v
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn one_file_of_a_big_image_writes_one_file_and_its_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("l0");
        let build = tmp.path().join("l1");
        for i in 0..500 {
            write(&base, &format!("usr/lib/f{i}"), "lib");
        }
        write(&build, "src/hello", "binary");
        write(&build, "src/hello.o", "object");
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let stats = merge_paths(&[base, build], &["/src/hello".to_string()], &out).unwrap();
        assert_eq!(names(&out), ["src", "src/hello"]);
        assert_eq!(stats.written, 2, "the file and its parent directory");
        assert_eq!(fs::read_to_string(out.join("src/hello")).unwrap(), "binary");
    }

    #[test]
    fn directories_merge_across_layers_and_symlinks_are_followed_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let l0 = tmp.path().join("l0");
        let l1 = tmp.path().join("l1");
        write(&l0, "data/out/a", "a0");
        write(&l0, "data/out/b", "b0");
        write(&l0, "other/x", "x");
        write(&l1, "data/out/a", "a1");
        write(&l1, "data/out/c", "c1");
        fs::create_dir_all(&l1).unwrap();
        // An absolute link, as images have: resolved in the merged root.
        std::os::unix::fs::symlink("/data/out", l1.join("out")).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        merge_paths(&[l0, l1], &["out/*".to_string()], &out).unwrap();
        assert_eq!(
            names(&out),
            [
                "data",
                "data/out",
                "data/out/a",
                "data/out/b",
                "data/out/c",
                "out -> /data/out"
            ]
        );
        assert_eq!(fs::read_to_string(out.join("data/out/a")).unwrap(), "a1");
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_content() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: overlay whiteouts (0:0 character devices) need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let l0 = tmp.path().join("l0");
        let l1 = tmp.path().join("l1");
        write(&l0, "app/gone", "g");
        write(&l0, "app/kept", "k");
        write(&l0, "opq/old", "o");
        write(&l0, "deleted/f", "d");
        fs::create_dir_all(l1.join("app")).unwrap();
        fs::create_dir_all(l1.join("opq")).unwrap();
        write(&l1, "opq/new", "n");
        sys::setxattr_path(&l1.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
        for wh in ["app/gone", "deleted"] {
            let c =
                std::ffi::CString::new(l1.join(wh).into_os_string().into_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
        }
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let layers = [l0, l1];
        let paths = [
            "app".to_string(),
            "opq".to_string(),
            "deleted/f".to_string(),
        ];
        merge_paths(&layers, &paths, &out).unwrap();
        assert_eq!(names(&out), ["app", "app/kept", "opq", "opq/new"]);
    }
}

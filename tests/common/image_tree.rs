//! Comparing two images' root file systems: unpack an OCI layout with umoci,
//! describe every path in one line (type, mode, owner, size and content
//! digest, link target, hardlink group, xattrs; never mtimes), and list the
//! differences of two such descriptions. Shared by the differential tests.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use super::run_ok;

/// `umoci unpack` of `layout:reference` into `bundle` (removed first);
/// returns the rootfs.
pub fn unpack(layout: &Path, reference: &str, bundle: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(bundle);
    std::fs::create_dir_all(bundle.parent().expect("parent")).expect("mkdir");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{reference}", layout.display()))
            .arg(bundle),
    );
    bundle.join("rootfs")
}

/// Path -> "type mode owner [xattrs]" for every entry under `root` (the root
/// itself is `/`). A file whose inode an earlier path (in sorted order)
/// already has is described as a hardlink of that path.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(root).expect("prefix");
        let path = format!("/{}", rel.display());
        let md = e.path().symlink_metadata().expect("lstat");
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).expect("readlink");
            format!("symlink -> {}", t.display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let first = if md.nlink() > 1 {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| path.clone())
                    .clone()
            } else {
                path.clone()
            };
            let bytes = std::fs::read(e.path()).expect("read");
            let link = if first == path {
                String::new()
            } else {
                format!(" hardlink of {first}")
            };
            format!(
                "file {} bytes sha256:{}{link}",
                bytes.len(),
                hex::encode(Sha256::digest(&bytes))
            )
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("device {:x}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mode = md.mode() & 0o7777;
        let xattrs = xattrs(e.path());
        let xattrs = if xattrs.is_empty() {
            String::new()
        } else {
            format!(" xattrs {}", xattrs.join(","))
        };
        out.insert(
            path,
            format!(
                "{what} mode {mode:04o} owner {}:{}{xattrs}",
                md.uid(),
                md.gid()
            ),
        );
    }
    out
}

/// "name=hex(value)" for each extended attribute of `path` (not followed),
/// sorted.
fn xattrs(path: &Path) -> Vec<String> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; c is NUL-terminated.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("xattr name");
        let mut value = vec![0u8; 65536];
        // SAFETY: as above; cname is NUL-terminated.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        let value = if len >= 0 {
            hex::encode(&value[..len as usize])
        } else {
            "?".to_string()
        };
        out.push(format!("{}={value}", String::from_utf8_lossy(name)));
    }
    out.sort();
    out
}

/// One line per path that differs between tree `a` (named `an`) and tree
/// `b` (named `bn`), in path order.
pub fn diff_trees(
    an: &str,
    a: &BTreeMap<String, String>,
    bn: &str,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (p, v) in a {
        match b.get(p) {
            None => diffs.push(format!("{p}: only in {an}: {v}")),
            Some(w) if w != v => diffs.push(format!("{p}: {an} {v} | {bn} {w}")),
            Some(_) => {}
        }
    }
    for (p, v) in b {
        if !a.contains_key(p) {
            diffs.push(format!("{p}: only in {bn}: {v}"));
        }
    }
    diffs.sort();
    diffs
}

//! Layers written by `write_layer` are deterministic, read back by
//! `unpack` (and GNU tar) as the tree they came from, and apply with OCI
//! whiteout semantics.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::Digest as _;
use strata::digest::Digest;
use strata::layer::{
    Compression, Entry, EntryKind, UnpackOptions, decompress, entries_from_dir, unpack, write_layer,
};

const MTIME: u64 = 1_234_567_890;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn set_user_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid strings and buffer.
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid strings and buffer of the given length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

fn layer_bytes(entries: Vec<Entry>, c: Compression) -> (strata::layer::LayerStats, Vec<u8>) {
    write_layer(entries, c, Vec::new()).unwrap()
}

fn uncompressed(blob: &[u8], c: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    decompress(blob, c.media_type())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn file_entry(path: &str, source: &Path, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            source: source.to_path_buf(),
            size: std::fs::metadata(source).unwrap().len(),
        },
        mode,
        uid: 0,
        gid: 0,
        mtime: MTIME,
        xattrs: vec![],
    }
}

fn plain(path: &str, kind: EntryKind) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: MTIME,
        xattrs: vec![],
    }
}

// ---- determinism ------------------------------------------------------------

fn sample_entries(dir: &Path) -> Vec<Entry> {
    std::fs::write(dir.join("one"), b"first file\n").unwrap();
    std::fs::write(dir.join("two"), vec![0xabu8; 70_000]).unwrap();
    vec![
        plain("etc", EntryKind::Dir),
        file_entry("etc/one", &dir.join("one"), 0o644),
        file_entry("usr/bin/two", &dir.join("two"), 0o4755),
        plain("usr", EntryKind::Dir),
        plain("usr/bin", EntryKind::Dir),
        plain(
            "usr/bin/sh",
            EntryKind::Symlink {
                target: "two".into(),
            },
        ),
        plain(
            "etc/two-link",
            EntryKind::Hardlink {
                target: "usr/bin/two".into(),
            },
        ),
        plain("var/gone", EntryKind::Whiteout),
        plain("var", EntryKind::Opaque),
        plain("var", EntryKind::Dir),
    ]
}

#[test]
fn same_entries_any_order_any_source_mtime_give_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = sample_entries(tmp.path());
    let mut reversed = entries.clone();
    reversed.reverse();
    let mut rotated = entries.clone();
    rotated.rotate_left(4);

    for c in Compression::ALL {
        let (s1, b1) = layer_bytes(entries.clone(), c);
        // Touch the sources: their mtimes must not matter.
        for f in ["one", "two"] {
            let file = std::fs::File::options()
                .write(true)
                .open(tmp.path().join(f))
                .unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 400))
                .unwrap();
        }
        let (s2, b2) = layer_bytes(reversed.clone(), c);
        let (s3, b3) = layer_bytes(rotated.clone(), c);
        assert_eq!(b1, b2, "{c}: order changed the bytes");
        assert_eq!(b1, b3, "{c}: order changed the bytes");
        assert_eq!(s1, s2);
        assert_eq!(s1, s3);
        assert_eq!(s1.entries, entries.len());
    }
}

#[test]
fn every_compression_decompresses_to_the_tar_whose_sha256_is_the_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = sample_entries(tmp.path());
    let (plain_stats, plain_tar) = layer_bytes(entries.clone(), Compression::None);
    assert_eq!(
        plain_stats.diff_id,
        Digest::from_bytes(sha2::Sha256::digest(&plain_tar).into())
    );
    assert_eq!(plain_stats.uncompressed_size, plain_tar.len() as u64);
    assert_eq!(plain_tar.len() % 512, 0);
    for c in [Compression::Gzip, Compression::Zstd] {
        let (stats, blob) = layer_bytes(entries.clone(), c);
        assert_ne!(blob, plain_tar);
        assert_eq!(uncompressed(&blob, c), plain_tar, "{c}");
        assert_eq!(stats, plain_stats, "{c}");
    }
}

#[test]
fn a_file_that_changed_size_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    std::fs::write(&src, b"12345").unwrap();
    let mut e = file_entry("f", &src, 0o644);
    std::fs::write(&src, b"123456").unwrap();
    let err = write_layer(vec![e.clone()], Compression::None, Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("file changed during build"),
        "{err}"
    );
    e.kind = EntryKind::File {
        source: src.clone(),
        size: 7,
    };
    let err = write_layer(vec![e], Compression::None, Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("file changed during build"),
        "{err}"
    );
}

#[test]
fn scanning_the_same_tree_twice_gives_the_same_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/f"), b"data").unwrap();
    std::fs::write(src.join("z"), b"zz").unwrap();
    let (s1, b1) = layer_bytes(entries_from_dir(&src, MTIME).unwrap(), Compression::Gzip);
    let f = std::fs::File::options()
        .write(true)
        .open(src.join("z"))
        .unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(5))
        .unwrap();
    let (s2, b2) = layer_bytes(entries_from_dir(&src, MTIME).unwrap(), Compression::Gzip);
    assert_eq!(b1, b2);
    assert_eq!(s1.diff_id, s2.diff_id);
}

// ---- round trip ---------------------------------------------------------------

struct Tree {
    paths: Vec<String>,
    long_path: String,
    xattr_ok: bool,
}

/// Builds a tree with every kind the scanner knows; returns what it made.
fn build_tree(src: &Path) -> Tree {
    let root = is_root();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::create_dir(src.join("private")).unwrap();
    std::fs::set_permissions(src.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(src.join("etc/config"), b"key = value\n").unwrap();
    std::fs::set_permissions(
        src.join("etc/config"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(src.join("usr/bin/su"), b"\x7fELF pretend").unwrap();
    std::fs::set_permissions(
        src.join("usr/bin/su"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::hard_link(src.join("usr/bin/su"), src.join("usr/bin/su-again")).unwrap();
    std::os::unix::fs::symlink("su", src.join("usr/bin/sudo")).unwrap();
    std::os::unix::fs::symlink("/etc/config", src.join("config-abs")).unwrap();
    std::fs::write(src.join("tagged"), b"has an xattr").unwrap();
    let xattr_ok = set_user_xattr(&src.join("tagged"), "user.strata.test", b"v\x00\xff");
    // Long paths: > 100 bytes and > 255 bytes in total.
    let seg = "d".repeat(60);
    let long_dir = format!("long/{seg}/{seg}/{seg}/{seg}/{seg}");
    std::fs::create_dir_all(src.join(&long_dir)).unwrap();
    let long_path = format!("{long_dir}/{}", "f".repeat(120));
    assert!(long_path.len() > 255);
    std::fs::write(src.join(&long_path), b"deep").unwrap();
    std::os::unix::fs::symlink(&long_path, src.join("long-link")).unwrap();
    let fifo = CString::new(src.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o620) }, 0);
    if root {
        std::os::unix::fs::chown(src.join("etc/config"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("config-abs"), Some(42), Some(43)).unwrap();
        std::os::unix::fs::chown(src.join("private"), Some(3_000_000), Some(7)).unwrap();
        // chown cleared nothing here (setuid file untouched), but re-assert.
        let null = CString::new(src.join("null").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path string.
        assert_eq!(
            unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
            0
        );
    }
    let mut paths: Vec<String> = walkdir::WalkDir::new(src)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    paths.sort();
    Tree {
        paths,
        long_path,
        xattr_ok,
    }
}

/// Type, mode, owners, content or link target, and mtime of every path.
fn describe(root: &Path, with_owners: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
        let m = p.symlink_metadata().unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink {}", std::fs::read_link(p).unwrap().display())
        } else if ft.is_file() {
            format!(
                "file {:?}",
                String::from_utf8_lossy(&std::fs::read(p).unwrap())
            )
        } else {
            format!("special {:o} rdev {}", m.mode() & libc::S_IFMT, m.rdev())
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        let owners = if with_owners {
            format!(" {}:{}", m.uid(), m.gid())
        } else {
            String::new()
        };
        out.insert(rel, format!("{what} {mode:o}{owners} mtime {}", m.mtime()));
    }
    out
}

#[test]
fn tree_round_trips_through_write_and_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let tree = build_tree(&src);
    let entries = entries_from_dir(&src, MTIME).unwrap();
    assert!(entries.iter().all(|e| e.mtime == MTIME));
    let (stats, blob) = write_layer(entries.clone(), Compression::Gzip, Vec::new()).unwrap();
    assert_eq!(stats.entries, tree.paths.len());

    let opts = UnpackOptions::for_current_user();
    let tar = decompress(&blob[..], Compression::Gzip.media_type()).unwrap();
    let unpacked = unpack(tar, &dst, &opts).unwrap();
    assert_eq!(unpacked.entries, tree.paths.len());

    // The source tree's mtimes are "now"; the layer clamps them to MTIME.
    let mut want = describe(&src, is_root());
    for v in want.values_mut() {
        let (head, _) = v.rsplit_once(" mtime ").unwrap();
        *v = format!("{head} mtime {MTIME}");
    }
    let got = describe(&dst, is_root());
    assert_eq!(got, want);

    // Hard links share an inode again.
    let a = dst.join("usr/bin/su").metadata().unwrap();
    let b = dst.join("usr/bin/su-again").metadata().unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert_eq!(a.mode() & 0o7777, 0o4755);
    if tree.xattr_ok {
        assert_eq!(
            get_xattr(&dst.join("tagged"), "user.strata.test").as_deref(),
            Some(&b"v\x00\xff"[..])
        );
    } else {
        eprintln!("skipping xattr check: this file system has no user xattrs");
    }
    assert_eq!(std::fs::read(dst.join(&tree.long_path)).unwrap(), b"deep");
    if !is_root() {
        eprintln!("skipping owner and device checks: not running as root");
    }
}

#[test]
fn gnu_tar_lists_the_expected_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let tree = build_tree(&src);
    let (_, tar_bytes) = layer_bytes(entries_from_dir(&src, MTIME).unwrap(), Compression::None);
    let tar_file = tmp.path().join("layer.tar");
    std::fs::write(&tar_file, &tar_bytes).unwrap();
    let out = match std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar_file)
        .env("LC_ALL", "C")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: GNU tar is not available ({e})");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tar -tvf failed: {stderr}");
    assert!(stderr.is_empty(), "tar warned: {stderr}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), tree.paths.len(), "{listing}");
    for p in &tree.paths {
        let found = lines.iter().any(|l| {
            l.contains(&format!(" {p} "))
                || l.ends_with(&format!(" {p}"))
                || l.ends_with(&format!(" {p}/"))
        });
        assert!(found, "{p} missing from tar listing:\n{listing}");
    }
    let su = lines.iter().find(|l| l.ends_with(" usr/bin/su")).unwrap();
    assert!(su.starts_with("-rwsr-xr-x"), "{su}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("usr/bin/su-again link to usr/bin/su")),
        "{listing}"
    );

    // GNU tar also extracts it to the same content.
    let gnu = tmp.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xpf")
        .arg(&tar_file)
        .arg("-C")
        .arg(&gnu)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(gnu.join(&tree.long_path)).unwrap(), b"deep");
    assert_eq!(
        std::fs::read_link(gnu.join("usr/bin/sudo")).unwrap(),
        PathBuf::from("su")
    );
}

// ---- whiteouts ----------------------------------------------------------------

/// A ustar header with every numeric field filled.
fn test_header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn whiteouts_and_opaque_dirs_apply_to_lower_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("content");
    std::fs::write(&content, b"c").unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let opts = UnpackOptions::default();
    let file = |p: &str| file_entry(p, &content, 0o644);

    let layer1 = vec![
        plain("a", EntryKind::Dir),
        file("a/keep"),
        file("a/gone"),
        plain("a/gone-dir", EntryKind::Dir),
        file("a/gone-dir/inner"),
        plain("b", EntryKind::Dir),
        file("b/old"),
        plain("b/sub", EntryKind::Dir),
        file("b/sub/old2"),
        file("c"),
    ];
    let (_, t1) = layer_bytes(layer1, Compression::None);
    unpack(&t1[..], &root, &opts).unwrap();
    assert_eq!(names_in(&root.join("b")), ["old", "sub"]);

    let layer2 = vec![
        plain("a/gone", EntryKind::Whiteout),
        plain("a/gone-dir", EntryKind::Whiteout),
        plain("a/never-existed", EntryKind::Whiteout),
        plain("b", EntryKind::Dir),
        plain("b", EntryKind::Opaque),
        file("b/new"),
        plain("c", EntryKind::Whiteout),
    ];
    let (_, t2) = layer_bytes(layer2, Compression::None);
    let stats = unpack(&t2[..], &root, &opts).unwrap();
    assert_eq!(stats.entries, 7);
    assert_eq!(names_in(&root), ["a", "b"]);
    assert_eq!(names_in(&root.join("a")), ["keep"]);
    assert_eq!(names_in(&root.join("b")), ["new"]);
}

#[test]
fn whiteouts_never_hide_entries_of_their_own_layer() {
    // A hand-ordered tar (not from write_layer): the new content comes
    // before the markers that would otherwise delete it.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/lower"), b"lower").unwrap();
    std::fs::write(root.join("x"), b"lower x").unwrap();

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = test_header(tar::EntryType::Regular, data.len() as u64, 0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("d/mine", b"new");
    add("d/.wh..wh..opq", b"");
    add("x", b"new x");
    add(".wh.x", b"");
    let tar = b.into_inner().unwrap();
    unpack(&tar[..], &root, &UnpackOptions::default()).unwrap();
    assert_eq!(names_in(&root.join("d")), ["mine"]);
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"new x");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("was-dir/child")).unwrap();
    std::fs::write(root.join("was-file"), b"old").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = test_header(tar::EntryType::Regular, 3, 0o600);
    b.append_data(&mut h, "was-dir", &b"new"[..]).unwrap();
    let mut d = test_header(tar::EntryType::Directory, 0, 0o711);
    b.append_data(&mut d, "was-file/", &b""[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let stats = unpack(&tar[..], &root, &UnpackOptions::default()).unwrap();
    assert_eq!(stats.bytes, 3);
    assert_eq!(std::fs::read(root.join("was-dir")).unwrap(), b"new");
    let m = root.join("was-file").symlink_metadata().unwrap();
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o711);
}

#[test]
fn unpack_output_can_be_rewritten_identically() {
    // write -> unpack -> scan -> write gives the same diff_id.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    build_tree(&src);
    let (s1, t1) = layer_bytes(entries_from_dir(&src, MTIME).unwrap(), Compression::None);
    unpack(&t1[..], &dst, &UnpackOptions::for_current_user()).unwrap();
    let (s2, _) = layer_bytes(entries_from_dir(&dst, MTIME).unwrap(), Compression::None);
    assert_eq!(s1.diff_id, s2.diff_id);
}

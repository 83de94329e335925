//! A real overlayfs upperdir (what a RUN step leaves) scans into OCI
//! whiteouts and opaque markers, and the layer made from it turns a copy of
//! the lower tree into what the overlay showed. Needs root and overlayfs;
//! skips with a message otherwise.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use strata::layer::{Compression, EntryKind, UnpackOptions, entries_from_dir, unpack, write_layer};

fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let content = e
                .file_type()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap());
            (rel, content)
        })
        .collect()
}

fn write_lower(dir: &Path) {
    std::fs::create_dir_all(dir.join("d/sub")).unwrap();
    std::fs::create_dir_all(dir.join("keep")).unwrap();
    std::fs::write(dir.join("a"), b"a").unwrap();
    std::fs::write(dir.join("b"), b"b").unwrap();
    std::fs::write(dir.join("d/x"), b"x").unwrap();
    std::fs::write(dir.join("d/sub/z"), b"z").unwrap();
    std::fs::write(dir.join("keep/k"), b"k").unwrap();
}

#[test]
fn overlay_upperdir_becomes_an_oci_layer() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: mounting overlayfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    write_lower(&t.join("lower"));
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.join("lower").display(),
        t.join("upper").display(),
        t.join("work").display()
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(t.join("merged"))
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipping: cannot mount overlayfs here: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping: no mount command ({e})");
            return;
        }
    }
    let m = t.join("merged");
    let changes = (|| -> std::io::Result<()> {
        std::fs::remove_file(m.join("a"))?;
        std::fs::remove_dir_all(m.join("d"))?;
        std::fs::create_dir(m.join("d"))?;
        std::fs::write(m.join("d/new"), b"new")?;
        std::fs::write(m.join("b"), b"changed")?;
        std::fs::write(m.join("keep/added"), b"added")?;
        Ok(())
    })();
    let expected = tree(&m);
    let umounted = Command::new("umount").arg(&m).status().unwrap();
    changes.unwrap();
    assert!(umounted.success());

    let entries = entries_from_dir(&t.join("upper"), 0).unwrap();
    let kinds: Vec<(String, &str)> = entries
        .iter()
        .map(|e| {
            let k = match e.kind {
                EntryKind::Dir => "dir",
                EntryKind::File { .. } => "file",
                EntryKind::Whiteout => "whiteout",
                EntryKind::Opaque => "opaque",
                _ => "other",
            };
            (e.path.clone(), k)
        })
        .collect();
    let want: Vec<(String, &str)> = [
        ("a", "whiteout"),
        ("b", "file"),
        ("d", "dir"),
        ("d", "opaque"),
        ("d/new", "file"),
        ("keep", "dir"),
        ("keep/added", "file"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), *k))
    .collect();
    assert_eq!(kinds, want);
    // Overlay's own xattrs never reach the layer.
    assert!(
        entries
            .iter()
            .flat_map(|e| &e.xattrs)
            .all(|(k, _)| !k.contains("overlay"))
    );

    let (_, layer) = write_layer(entries, Compression::Gzip, Vec::new()).unwrap();
    let root = t.join("root");
    std::fs::create_dir(&root).unwrap();
    write_lower(&root);
    let tar = strata::layer::decompress(&layer[..], Compression::Gzip.media_type()).unwrap();
    unpack(tar, &root, &UnpackOptions::for_current_user()).unwrap();
    assert_eq!(tree(&root), expected);
}

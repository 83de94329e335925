//! `context::items_digest`: what changes the Merkle digest of a COPY, and
//! what must not.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use strata::context::{ContextOptions, CopyItem, CopyRequest, ItemKind, Tree, items_digest};

/// Writes a small tree the way a checkout would: files created with
/// `create_mode` (what a umask leaves), then chmod'ed explicitly.
fn checkout(root: &Path, create_mode: u32) {
    let file = |rel: &str, content: &[u8], mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(create_mode)
            .open(&p)
            .unwrap();
        f.write_all(content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    file("app/main.py", b"print('hi')\n", 0o644);
    file("app/run.sh", b"#!/bin/sh\nexec python3 main.py\n", 0o755);
    file("app/lib/util.py", b"X = 1\n", 0o644);
    symlink("run.sh", root.join("app/start")).unwrap();
    for dir in ["app", "app/lib"] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn items(root: &Path) -> Vec<CopyItem> {
    let tree = Tree::context(root, &ContextOptions::default()).unwrap();
    let sources = ["app".to_string()];
    tree.plan_copy(&CopyRequest {
        sources: &sources,
        dest: "/srv/",
        exclude: &[],
        parents: false,
        hash: true,
    })
    .unwrap()
}

fn digest(root: &Path) -> [u8; 32] {
    items_digest(&items(root))
}

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ctx");
    checkout(&root, 0o644);
    (dir, root)
}

#[test]
fn same_tree_elsewhere_with_another_umask_gives_the_same_digest() {
    let (_a, first) = fresh();
    let other = tempfile::tempdir().unwrap();
    let second = other.path().join("somewhere/else/entirely");
    checkout(&second, 0o600);
    assert_ne!(items(&first), items(&second), "on-disk paths differ");
    assert_eq!(digest(&first), digest(&second));
}

#[test]
fn touch_does_not_change_the_digest() {
    let (_d, root) = fresh();
    let before = digest(&root);
    let old = SystemTime::now() - Duration::from_secs(86_400);
    for rel in ["app/main.py", "app/run.sh"] {
        fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(digest(&root), before);
}

#[test]
fn owners_and_source_paths_do_not_enter_the_digest() {
    let (_d, root) = fresh();
    let mut list = items(&root);
    let before = items_digest(&list);
    for item in &mut list {
        item.uid = 1000;
        item.gid = 1000;
        item.source = format!("elsewhere/{}", item.source);
    }
    assert_eq!(items_digest(&list), before);
}

#[test]
fn content_mode_name_and_link_target_change_the_digest() {
    let (_d, root) = fresh();
    let base = digest(&root);

    let (_d1, r) = fresh();
    fs::write(r.join("app/lib/util.py"), b"X = 2\n").unwrap();
    assert_ne!(digest(&r), base, "content");

    let (_d2, r) = fresh();
    fs::set_permissions(r.join("app/main.py"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(digest(&r), base, "file mode");

    let (_d3, r) = fresh();
    fs::set_permissions(r.join("app/lib"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_ne!(digest(&r), base, "directory mode");

    let (_d4, r) = fresh();
    fs::rename(r.join("app/main.py"), r.join("app/Main.py")).unwrap();
    assert_ne!(digest(&r), base, "name");

    let (_d5, r) = fresh();
    fs::remove_file(r.join("app/start")).unwrap();
    symlink("main.py", r.join("app/start")).unwrap();
    assert_ne!(digest(&r), base, "symlink target");

    let (_d6, r) = fresh();
    fs::create_dir(r.join("app/empty")).unwrap();
    assert_ne!(digest(&r), base, "an added empty directory");
}

#[test]
fn kinds_and_hash_presence_are_distinguished() {
    let item = |kind| CopyItem {
        dest: "x".to_string(),
        source: "x".to_string(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        name: None,
        hardlink_of: None,
    };
    let file = |hash| ItemKind::File {
        path: PathBuf::from("/x"),
        size: 0,
        hash,
    };
    let digests = [
        items_digest(&[item(ItemKind::Dir)]),
        items_digest(&[item(file(None))]),
        items_digest(&[item(file(Some(*blake3::hash(b"").as_bytes())))]),
        items_digest(&[item(ItemKind::Symlink {
            target: String::new(),
        })]),
        items_digest(&[]),
    ];
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

/// The encoding is part of every cache key: changing it must be deliberate
/// (bump the digest's version string and this value together).
#[test]
fn encoding_is_pinned() {
    let list = [
        CopyItem {
            dest: "app".to_string(),
            source: String::new(),
            kind: ItemKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            name: None,
            hardlink_of: None,
        },
        CopyItem {
            dest: "app/a".to_string(),
            source: "a".to_string(),
            kind: ItemKind::File {
                path: PathBuf::from("/ctx/a"),
                size: 5,
                hash: Some(*blake3::hash(b"hello").as_bytes()),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            name: None,
            hardlink_of: None,
        },
        CopyItem {
            dest: "app/l".to_string(),
            source: "l".to_string(),
            kind: ItemKind::Symlink {
                target: "a".to_string(),
            },
            mode: 0o777,
            uid: 0,
            gid: 0,
            name: None,
            hardlink_of: None,
        },
    ];
    assert_eq!(
        hex::encode(items_digest(&list)),
        "d42da9f0d9a38fbb79883c258f86071a98660a7b3333b8821d824e85a4d71fa6"
    );
}

/// Hard links and the name a file takes in an existing directory change
/// what the layer is, so they change the digest; absent, they add nothing
/// (the pinned encoding above is unchanged).
#[test]
fn hard_links_and_names_change_the_digest() {
    let file = |dest: &str| CopyItem {
        dest: dest.to_string(),
        source: "x".to_string(),
        kind: ItemKind::File {
            path: PathBuf::from("/x"),
            size: 1,
            hash: Some(*blake3::hash(b"x").as_bytes()),
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        name: None,
        hardlink_of: None,
    };
    let plain = items_digest(&[file("a"), file("b")]);
    let mut linked = file("b");
    linked.hardlink_of = Some("a".to_string());
    let with_link = items_digest(&[file("a"), linked]);
    assert_ne!(plain, with_link);
    let mut named = file("etc");
    named.name = Some("a.txt".to_string());
    let mut renamed = file("etc");
    renamed.name = Some("c.txt".to_string());
    let digests = [
        items_digest(&[file("etc")]),
        items_digest(&[named]),
        items_digest(&[renamed]),
    ];
    assert_ne!(digests[0], digests[1]);
    assert_ne!(digests[1], digests[2]);
}

//! COPY semantics of `context::Tree::plan_copy` on real directories.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use strata::context::{ContextOptions, CopyError, CopyItem, CopyRequest, ItemKind, Tree};

/// A fresh context directory; each entry is `path` (file content = path),
/// `path/` (empty dir) or `path -> target` (symlink).
fn context(entries: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in entries {
        let root = dir.path();
        if let Some((link, target)) = entry.split_once(" -> ") {
            let p = root.join(link);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        } else if let Some(d) = entry.strip_suffix('/') {
            fs::create_dir_all(root.join(d)).unwrap();
        } else {
            let p = root.join(entry);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, entry.as_bytes()).unwrap();
        }
    }
    dir
}

struct Copy<'a> {
    sources: &'a [&'a str],
    dest: &'a str,
    exclude: &'a [&'a str],
    parents: bool,
}

fn copy<'a>(sources: &'a [&'a str], dest: &'a str) -> Copy<'a> {
    Copy {
        sources,
        dest,
        exclude: &[],
        parents: false,
    }
}

fn run(tree: &Tree, c: &Copy) -> Result<Vec<CopyItem>, CopyError> {
    let sources: Vec<String> = c.sources.iter().map(|s| s.to_string()).collect();
    let exclude: Vec<String> = c.exclude.iter().map(|s| s.to_string()).collect();
    tree.plan_copy(&CopyRequest {
        sources: &sources,
        dest: c.dest,
        exclude: &exclude,
        parents: c.parents,
        hash: true,
    })
}

/// Items as `dest` (dirs end in `/`, links show ` -> target`).
fn summary(items: &[CopyItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i.kind {
            ItemKind::Dir => format!("{}/", i.dest),
            ItemKind::File { .. } => i.dest.clone(),
            ItemKind::Symlink { target } => format!("{} -> {target}", i.dest),
        })
        .collect()
}

fn plan(root: &Path, c: &Copy) -> Vec<String> {
    let tree = Tree::context(root, &ContextOptions::default()).expect("context");
    match run(&tree, c) {
        Ok(items) => summary(&items),
        Err(e) => panic!("COPY {:?} {}: {e}", c.sources, c.dest),
    }
}

const TREE: &[&str] = &[
    "a.txt",
    "b.txt",
    "README.md",
    "src/main.rs",
    "src/util.rs",
    "src/lib/mod.rs",
    "src/lib/notes.md",
    "docs/guide.md",
    "docs/img/logo.png",
    "empty/",
];

#[test]
fn directory_source_copies_its_contents() {
    let ctx = context(TREE);
    assert_eq!(
        plan(ctx.path(), &copy(&["src"], "/app")),
        [
            "app/",
            "app/lib/",
            "app/lib/mod.rs",
            "app/lib/notes.md",
            "app/main.rs",
            "app/util.rs"
        ]
    );
    // A trailing `/` on the source changes nothing.
    assert_eq!(
        plan(ctx.path(), &copy(&["src/"], "/app")),
        plan(ctx.path(), &copy(&["src"], "/app"))
    );
    // An empty directory still creates the destination.
    assert_eq!(plan(ctx.path(), &copy(&["empty"], "/e/")), ["e/"]);
}

#[test]
fn whole_context_into_root() {
    let ctx = context(&["a.txt", "d/b.txt"]);
    assert_eq!(
        plan(ctx.path(), &copy(&["."], "/")),
        ["a.txt", "d/", "d/b.txt"]
    );
    assert_eq!(
        plan(ctx.path(), &copy(&["/"], "/")),
        ["a.txt", "d/", "d/b.txt"]
    );
}

#[test]
fn file_into_directory_and_rename() {
    let ctx = context(TREE);
    assert_eq!(
        plan(ctx.path(), &copy(&["src/main.rs"], "/app/")),
        ["app/", "app/main.rs"]
    );
    assert_eq!(
        plan(ctx.path(), &copy(&["src/main.rs"], "/app/entry.rs")),
        ["app/", "app/entry.rs"]
    );
    assert_eq!(plan(ctx.path(), &copy(&["/a.txt"], "/x")), ["x"]);
    assert_eq!(
        plan(ctx.path(), &copy(&["a.txt"], "/x/.")),
        ["x/", "x/a.txt"]
    );
}

#[test]
fn nested_destination_creates_every_ancestor() {
    let ctx = context(TREE);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let items = run(&tree, &copy(&["a.txt"], "/usr/local/share/a.txt")).unwrap();
    assert_eq!(
        summary(&items),
        [
            "usr/",
            "usr/local/",
            "usr/local/share/",
            "usr/local/share/a.txt"
        ]
    );
    for dir in &items[..3] {
        assert_eq!((dir.mode, dir.uid, dir.gid), (0o755, 0, 0), "{}", dir.dest);
        assert_eq!(dir.source, "");
    }
    assert_eq!(items[3].source, "a.txt");
}

#[test]
fn glob_sources() {
    let ctx = context(TREE);
    assert_eq!(
        plan(ctx.path(), &copy(&["src/*.rs"], "/out/")),
        ["out/", "out/main.rs", "out/util.rs"]
    );
    // A glob matching several files makes dest a directory, slash or not.
    assert_eq!(
        plan(ctx.path(), &copy(&["?.txt"], "/out")),
        ["out/", "out/a.txt", "out/b.txt"]
    );
    // A glob matching one file behaves like naming it.
    assert_eq!(plan(ctx.path(), &copy(&["[a]*.txt"], "/out")), ["out"]);
    // Globs work in any component; a matched directory copies its contents.
    assert_eq!(
        plan(ctx.path(), &copy(&["s*/l*"], "/o/")),
        ["o/", "o/mod.rs", "o/notes.md"]
    );
}

#[test]
fn several_sources_make_dest_a_directory() {
    let ctx = context(TREE);
    assert_eq!(
        plan(
            ctx.path(),
            &copy(&["a.txt", "docs", "src/lib/mod.rs"], "/d")
        ),
        [
            "d/",
            "d/a.txt",
            "d/guide.md",
            "d/img/",
            "d/img/logo.png",
            "d/mod.rs"
        ]
    );
}

#[test]
fn parents_keep_the_source_path() {
    let ctx = context(TREE);
    let c = Copy {
        sources: &["src/lib/mod.rs", "a.txt", "docs/img"],
        dest: "/p",
        exclude: &[],
        parents: true,
    };
    assert_eq!(
        plan(ctx.path(), &c),
        [
            "p/",
            "p/a.txt",
            "p/docs/",
            "p/docs/img/",
            "p/docs/img/logo.png",
            "p/src/",
            "p/src/lib/",
            "p/src/lib/mod.rs"
        ]
    );
    // `/./` marks where the kept part starts.
    let c = Copy {
        sources: &["src/./lib/*.rs"],
        dest: "/p/",
        exclude: &[],
        parents: true,
    };
    assert_eq!(plan(ctx.path(), &c), ["p/", "p/lib/", "p/lib/mod.rs"]);
    let c = Copy {
        sources: &["s*/./lib/mod.rs", "/./a.txt"],
        dest: "/p/",
        exclude: &[],
        parents: true,
    };
    assert_eq!(
        plan(ctx.path(), &c),
        ["p/", "p/a.txt", "p/lib/", "p/lib/mod.rs"]
    );
}

#[test]
fn exclude_patterns() {
    let ctx = context(TREE);
    let c = Copy {
        sources: &["."],
        dest: "/",
        exclude: &["**/*.md", "src/lib"],
        parents: false,
    };
    assert_eq!(
        plan(ctx.path(), &c),
        [
            "a.txt",
            "b.txt",
            "docs/",
            "docs/img/",
            "docs/img/logo.png",
            "empty/",
            "src/",
            "src/main.rs",
            "src/util.rs"
        ]
    );
    // Patterns apply relative to the copied directory, and `!` re-includes.
    let c = Copy {
        sources: &["src"],
        dest: "/s/",
        exclude: &["*.rs", "!main.rs"],
        parents: false,
    };
    assert_eq!(
        plan(ctx.path(), &c),
        [
            "s/",
            "s/lib/",
            "s/lib/mod.rs",
            "s/lib/notes.md",
            "s/main.rs"
        ]
    );
    // Globbed files are matched by name.
    let c = Copy {
        sources: &["*"],
        dest: "/g/",
        exclude: &["*.txt", "src", "docs", "empty"],
        parents: false,
    };
    assert_eq!(plan(ctx.path(), &c), ["g/", "g/README.md"]);
}

#[test]
fn symlinks_are_kept_unless_named() {
    let ctx = context(&[
        "data/real.txt",
        "data/link -> real.txt",
        "data/abs -> /etc/passwd",
        "top -> data/real.txt",
    ]);
    assert_eq!(
        plan(ctx.path(), &copy(&["data"], "/d")),
        [
            "d/",
            "d/abs -> /etc/passwd",
            "d/link -> real.txt",
            "d/real.txt"
        ]
    );
    // Named directly, a symlink is followed: the file lands under the link's name.
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let items = run(&tree, &copy(&["top"], "/t/")).unwrap();
    assert_eq!(summary(&items), ["t/", "t/top"]);
    assert_eq!(items[1].source, "data/real.txt");
    match &items[1].kind {
        ItemKind::File { path, size, hash } => {
            assert_eq!(path, &ctx.path().join("data/real.txt"));
            assert_eq!(*size, "data/real.txt".len() as u64);
            assert_eq!(hash, &Some(*blake3::hash(b"data/real.txt").as_bytes()));
        }
        other => panic!("expected a file, got {other:?}"),
    }
}

#[test]
fn symlinks_resolve_inside_the_root() {
    // `/etc` inside the context is not the host's `/etc`.
    let ctx = context(&["etc-link -> /etc", "up -> ../../..", "inner/hosts"]);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let err = run(&tree, &copy(&["etc-link/passwd"], "/x")).unwrap_err();
    assert!(matches!(err, CopyError::SourceMissing { .. }), "{err}");
    // `..` in a link target stops at the root.
    assert_eq!(plan(ctx.path(), &copy(&["up/inner/hosts"], "/h")), ["h"]);
}

#[test]
fn missing_sources() {
    let ctx = context(TREE);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    for source in ["nope", "*.zzz", "src/*/nothing", "a.txt/inside"] {
        match run(&tree, &copy(&[source], "/x")) {
            Err(CopyError::SourceMissing {
                pattern,
                ignored_by: None,
            }) => assert_eq!(pattern, source),
            other => panic!("{source}: expected SourceMissing, got {other:?}"),
        }
    }
    // One missing source among present ones is still an error.
    assert!(run(&tree, &copy(&["a.txt", "nope"], "/x/")).is_err());
}

#[test]
fn missing_source_names_the_ignore_rule() {
    let ctx = context(&["app.py", "secret.key", "logs/today.log", ".dockerignore"]);
    fs::write(
        ctx.path().join(".dockerignore"),
        "# keep it small\n*.key\nlogs\n",
    )
    .unwrap();
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let err = run(&tree, &copy(&["secret.key"], "/x")).unwrap_err();
    match &err {
        CopyError::SourceMissing {
            pattern,
            ignored_by,
        } => {
            assert_eq!(pattern, "secret.key");
            assert_eq!(
                ignored_by.as_deref(),
                Some(".dockerignore line 2 (`*.key`)")
            );
        }
        other => panic!("expected SourceMissing, got {other:?}"),
    }
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = run(&tree, &copy(&["logs/today.log"], "/x")).unwrap_err();
    assert!(err.to_string().contains("line 3 (`logs`)"), "{err}");
    let err = run(&tree, &copy(&["*.key"], "/x/")).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    // Copying the whole context silently leaves ignored files out.
    assert_eq!(
        plan(ctx.path(), &copy(&["."], "/c/")),
        ["c/", "c/.dockerignore", "c/app.py"]
    );
}

#[test]
fn explicit_ignore_file_and_reinclusion() {
    let ctx = context(&[
        "docs/keep.md",
        "docs/drop.md",
        "docs/deep/keep.md",
        "main.c",
    ]);
    let ignore = ctx.path().join("custom.ignore");
    fs::write(&ignore, "docs\n!docs/**/keep.md\ncustom.ignore\n").unwrap();
    let opts = ContextOptions {
        ignore_file: Some(ignore),
        stat_cache: None,
    };
    let tree = Tree::context(ctx.path(), &opts).unwrap();
    let items = run(&tree, &copy(&["."], "/")).unwrap();
    assert_eq!(
        summary(&items),
        [
            "docs/",
            "docs/deep/",
            "docs/deep/keep.md",
            "docs/keep.md",
            "main.c"
        ]
    );
    // The excluded directory, named directly, still holds what was re-included.
    let items = run(&tree, &copy(&["docs"], "/d/")).unwrap();
    assert_eq!(
        summary(&items),
        ["d/", "d/deep/", "d/deep/keep.md", "d/keep.md"]
    );
    // A missing explicit ignore file is an error.
    let opts = ContextOptions {
        ignore_file: Some(ctx.path().join("absent")),
        stat_cache: None,
    };
    assert!(Tree::context(ctx.path(), &opts).is_err());
}

#[test]
fn escaping_the_root_is_rejected() {
    let ctx = context(TREE);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    for source in ["../x", "src/../../x", "/../etc/passwd", ".."] {
        match run(&tree, &copy(&[source], "/x")) {
            Err(CopyError::OutsideRoot { pattern }) => assert_eq!(pattern, source),
            other => panic!("{source}: expected OutsideRoot, got {other:?}"),
        }
    }
    // Inside the root, `..` is fine.
    assert_eq!(plan(ctx.path(), &copy(&["src/../a.txt"], "/x")), ["x"]);
}

#[test]
fn rootfs_has_no_ignore_rules() {
    let ctx = context(&["etc/os-release", ".dockerignore"]);
    fs::write(ctx.path().join(".dockerignore"), "etc\n").unwrap();
    let tree = Tree::rootfs(ctx.path());
    let items = run(&tree, &copy(&["/etc/os-release"], "/os-release")).unwrap();
    assert_eq!(summary(&items), ["os-release"]);
}

#[test]
fn modes_and_special_files() {
    let ctx = context(&["bin/tool", "bin/data"]);
    fs::set_permissions(
        ctx.path().join("bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::set_permissions(
        ctx.path().join("bin/data"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(ctx.path().join("bin"), fs::Permissions::from_mode(0o1777)).unwrap();
    let fifo = ctx.path().join("bin/pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let items = run(&tree, &copy(&["bin"], "/b")).unwrap();
    let modes: Vec<(String, u32)> = items.iter().map(|i| (i.dest.clone(), i.mode)).collect();
    assert_eq!(
        modes,
        [
            ("b".to_string(), 0o1777),
            ("b/data".to_string(), 0o600),
            ("b/tool".to_string(), 0o4755)
        ]
    );
}

#[test]
fn later_sources_replace_earlier_ones_but_not_under_a_file() {
    let ctx = context(&["x", "sub/x/z"]);
    // `sub/x/` replaces the file `x` at `o/x`, as a second copy would.
    assert_eq!(
        plan(ctx.path(), &copy(&["x", "sub"], "/o/")),
        ["o/", "o/x/", "o/x/z"]
    );
    // The file `x` cannot replace `o/x/`, which still holds `o/x/z`.
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let err = run(&tree, &copy(&["sub", "x"], "/o/")).unwrap_err();
    assert!(err.to_string().contains("both a file"), "{err}");
}

#[test]
fn large_files_hash_like_small_ones() {
    let ctx = context(&[]);
    let big: Vec<u8> = (0..(16u32 << 20) + 3).map(|i| (i % 251) as u8).collect();
    fs::write(ctx.path().join("big.bin"), &big).unwrap();
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let items = run(&tree, &copy(&["big.bin"], "/big.bin")).unwrap();
    match &items[0].kind {
        ItemKind::File { size, hash, .. } => {
            assert_eq!(*size, big.len() as u64);
            assert_eq!(hash, &Some(*blake3::hash(&big).as_bytes()));
        }
        other => panic!("expected a file, got {other:?}"),
    }
}

#[test]
fn everything_ignored_but_a_few_reincluded_paths() {
    let ctx = context(&[
        "node_modules/pkg/index.js",
        "src/keep/a.rs",
        "src/drop/b.rs",
        "src/gen/x/keep.txt",
        "Cargo.toml",
        "target/debug/app",
    ]);
    fs::write(
        ctx.path().join(".dockerignore"),
        "*\n!Cargo.toml\n!src/keep\n!**/keep.txt\n",
    )
    .unwrap();
    assert_eq!(
        plan(ctx.path(), &copy(&["."], "/w/")),
        [
            "w/",
            "w/Cargo.toml",
            "w/src/",
            "w/src/gen/",
            "w/src/gen/x/",
            "w/src/gen/x/keep.txt",
            "w/src/keep/",
            "w/src/keep/a.rs"
        ]
    );
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).unwrap();
    let err = run(&tree, &copy(&["node_modules"], "/n")).unwrap_err();
    assert!(err.to_string().contains("line 1 (`*`)"), "{err}");
}

#[test]
fn a_single_file_to_a_plain_destination_carries_its_name() {
    let ctx = context(&["a.txt", "b.txt", "d/link -> ../a.txt"]);
    let tree = Tree::context(ctx.path(), &ContextOptions::default()).expect("context");
    let names = |c: &Copy| -> Vec<(String, Option<String>)> {
        run(&tree, c)
            .expect("copy")
            .into_iter()
            .map(|i| (i.dest, i.name))
            .collect()
    };
    // The build moves it into the destination when that is a directory.
    assert_eq!(
        names(&copy(&["a.txt"], "/etc")),
        [("etc".to_string(), Some("a.txt".to_string()))]
    );
    // The name as written, not the symlink's target; a glob's match.
    assert_eq!(
        names(&copy(&["d/link"], "/etc")),
        [("etc".to_string(), Some("link".to_string()))]
    );
    assert_eq!(
        names(&copy(&["a.*"], "/etc")),
        [("etc".to_string(), Some("a.txt".to_string()))]
    );
    // Into a directory already: nothing left to decide.
    assert!(
        names(&copy(&["a.txt"], "/etc/"))
            .iter()
            .all(|(_, n)| n.is_none())
    );
    assert!(
        names(&copy(&["a.txt", "b.txt"], "/etc"))
            .iter()
            .all(|(_, n)| n.is_none())
    );
}

#[test]
fn hard_links_within_one_source_stay_links() {
    let ctx = context(&["hard/h1", "hard/sub/", "other"]);
    let root = ctx.path();
    fs::hard_link(root.join("hard/h1"), root.join("hard/h2")).unwrap();
    fs::hard_link(root.join("hard/h1"), root.join("hard/sub/h3")).unwrap();
    fs::hard_link(root.join("other"), root.join("hard/o")).unwrap();
    let tree = Tree::context(root, &ContextOptions::default()).expect("context");
    let links = |c: &Copy| -> Vec<(String, Option<String>)> {
        run(&tree, c)
            .expect("copy")
            .into_iter()
            .filter(|i| matches!(i.kind, ItemKind::File { .. }))
            .map(|i| (i.dest, i.hardlink_of))
            .collect()
    };
    let s = |x: &str| x.to_string();
    // The first in destination order is the file; the others link to it.
    // `other` is linked only from outside the copied directory.
    assert_eq!(
        links(&copy(&["hard"], "/x")),
        [
            (s("x/h1"), None),
            (s("x/h2"), Some(s("x/h1"))),
            (s("x/o"), None),
            (s("x/sub/h3"), Some(s("x/h1"))),
        ]
    );
    // Two sources are copied one at a time, as BuildKit does: no links
    // between them.
    assert_eq!(
        links(&copy(&["hard/h1", "hard/h2"], "/y/")),
        [(s("y/h1"), None), (s("y/h2"), None)]
    );
    // One glob is one source.
    assert_eq!(
        links(&copy(&["hard/h*"], "/z/")),
        [(s("z/h1"), None), (s("z/h2"), Some(s("z/h1")))]
    );
}

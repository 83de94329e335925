//! The inputs every BuildKit differential case shares: the build contexts,
//! a secret, and the context of the busybox base every case starts from.
//! No daemon is needed to make them (the rootless check uses them too).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::run_ok;

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn tar(args: &[&str], cwd: &Path) {
    run_ok(Command::new("tar").current_dir(cwd).args(args));
}

/// `ctx`: the context most cases use.
fn shared_context(dir: &Path) {
    let ctx = dir.join("ctx");
    write(&ctx.join("a.txt"), "alpha\n", 0o644);
    write(&ctx.join("b.sh"), "#!/bin/sh\necho b\n", 0o755);
    write(&ctx.join("with space.txt"), "spaced\n", 0o644);
    write(&ctx.join("dir/x.txt"), "x in dir\n", 0o640);
    write(&ctx.join("dir/sub/y.txt"), "y in sub\n", 0o600);
    chmod(&ctx.join("dir/sub"), 0o750);
    std::os::unix::fs::symlink("x.txt", ctx.join("dir/link")).expect("symlink");
    write(&ctx.join("conf/one.conf"), "one=1\n", 0o644);
    write(&ctx.join("conf/two.conf"), "two=2\n", 0o644);
    write(&ctx.join("conf/three.txt"), "three\n", 0o644);
    write(&ctx.join("conf/nested/four.conf"), "four=4\n", 0o644);
    write(&ctx.join("hard/h1"), "hardlinked\n", 0o644);
    std::fs::hard_link(ctx.join("hard/h1"), ctx.join("hard/h2")).expect("hard link");
    write(&ctx.join("exec/run.sh"), "#!/bin/sh\necho run\n", 0o4755);
    // Archives for ADD, with owners and modes of their own.
    let tree = dir.join("tar-src");
    write(&tree.join("t/one.txt"), "one from tar\n", 0o644);
    write(&tree.join("t/two/deep.txt"), "deep from tar\n", 0o600);
    std::os::unix::fs::symlink("one.txt", tree.join("t/one-link")).expect("symlink");
    let common = [
        "--numeric-owner",
        "--owner=5",
        "--group=6",
        "--mtime=@0",
        "--sort=name",
    ];
    for (name, flag) in [("arch.tar.gz", "-czf"), ("arch.tar", "-cf")] {
        let out = ctx.join(name);
        let mut args: Vec<&str> = common.to_vec();
        let out = out.to_str().expect("utf-8 path");
        args.extend([flag, out, "t"]);
        tar(&args, &tree);
    }
}

/// `ignore`: a context with a .dockerignore that re-includes with `!`.
fn ignore_context(dir: &Path) {
    let ctx = dir.join("ignore");
    write(
        &ctx.join(".dockerignore"),
        "# comments and blank lines are skipped\n\n*.log\n!keep.log\nsecret/\n**/*.tmp\nsrc/gen\n!src/gen/keep.c\ndocs/*.md\n",
        0o644,
    );
    for f in [
        "a.log",
        "keep.log",
        "secret/s.txt",
        "src/main.c",
        "src/x.tmp",
        "src/deep/y.tmp",
        "src/gen/drop.c",
        "src/gen/keep.c",
        "docs/a.md",
        "docs/sub/b.md",
        "top.md",
    ] {
        write(&ctx.join(f), &format!("{f}\n"), 0o644);
    }
}

/// The busybox base's rootfs: the static busybox, its applets as symlinks,
/// users root, app (1000) and nobody.
fn base_context(dir: &Path, bb: &Path) {
    let root = dir.join("base/rootfs");
    for d in ["bin", "etc", "dev", "proc", "sys", "root", "tmp"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    chmod(&root.join("tmp"), 0o1777);
    chmod(&root.join("root"), 0o700);
    std::fs::copy(bb, root.join("bin/busybox")).expect("copy busybox");
    chmod(&root.join("bin/busybox"), 0o755);
    let list = run_ok(Command::new(bb).arg("--list"));
    for applet in list.stdout.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
        0o644,
    );
    write(
        &dir.join("base/Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD [\"/bin/sh\"]\n",
        0o644,
    );
}

/// The tag of the base every case starts from.
pub const BASE: &str = "localhost/bkbase:1";

/// Where the secret `id` is (its content is known: "the secret\n").
pub fn secret_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("secret-{id}"))
}

/// Writes every context under `dir` (`ctx`, `ignore`, ...), the secret,
/// and `base/`, the context of the base (build it with `base/Dockerfile`).
pub fn write_inputs(dir: &Path, bb: &Path) {
    shared_context(dir);
    ignore_context(dir);
    write(&secret_file(dir, "s"), "the secret\n", 0o600);
    base_context(dir, bb);
}

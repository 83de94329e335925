//! The inputs every BuildKit differential case shares: the build contexts,
//! a secret, and the busybox base, built once by strata and loaded into
//! dockerd from `strata save`, so both tools start from the same image.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::{BASE, Harness, must, read_json};
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
    must(Command::new("tar").current_dir(cwd).args(args));
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

/// Writes the contexts and the secret, builds the base with strata and
/// loads it into dockerd; both must then hold the same image config.
pub fn prepare(h: &Harness, bb: &Path) {
    shared_context(&h.dir);
    ignore_context(&h.dir);
    write(&h.secret_file("s"), "the secret\n", 0o600);
    base_context(&h.dir, bb);
    let base = h.dir.join("base");
    must(
        h.strata()
            .arg("build")
            .arg(&base)
            .arg("-f")
            .arg(base.join("Dockerfile"))
            .args(["--progress", "plain", "-t", BASE]),
    );
    let archive = h.dir.join("base.tar");
    must(h.strata().args(["save", "-o"]).arg(&archive).arg(BASE));
    let load = crate::common::run(h.dockerd.docker().args(["load", "-i"]).arg(&archive));
    assert!(
        load.ok,
        "docker load of strata's base failed: {}\n{}\ndockerd log:\n{}",
        load.stdout,
        load.stderr,
        h.dockerd.log()
    );
    // docker's image ID is the config digest: the same image in both.
    let dir = h.dir.join("base-archive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    must(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xf")
            .arg(&archive)
            .arg("manifest.json"),
    );
    let manifest = read_json(&dir.join("manifest.json"));
    let config = manifest[0]["Config"].as_str().expect("Config");
    let hex = config
        .trim_start_matches("blobs/sha256/")
        .trim_end_matches(".json");
    let id = run_ok(
        h.dockerd
            .docker()
            .args(["image", "inspect", "--format", "{{.Id}}", BASE]),
    );
    assert_eq!(
        id.stdout.trim(),
        format!("sha256:{hex}"),
        "base image ID in dockerd"
    );
}

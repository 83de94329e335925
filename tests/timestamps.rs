//! Timestamps toolchains accept (issue 12): every RUN sees
//! `SOURCE_DATE_EPOCH`, a RUN layer clamps mtimes to the epoch instead of
//! resetting them, and an mtime-based tool with a cache mount rebuilds
//! when a copied source changes.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const BASE: &str = r#"
[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"] },
]
"#;

fn context(env: &TestEnv, spec: &str, test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIP {test}: RUN needs root");
        return None;
    }
    let bb = busybox(test)?;
    let dir = env.write_tree("ctx", &[("strata.toml", &format!("{BASE}\n{spec}"))]);
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    Some(dir)
}

/// Builds `ctx` with SOURCE_DATE_EPOCH=`epoch`, exports it as an OCI layout
/// and unpacks it with umoci (which keeps the layers' mtimes).
fn build_rootfs(env: &TestEnv, ctx: &Path, epoch: &str, test: &str) -> Option<PathBuf> {
    if !have_tool("umoci", test) {
        return None;
    }
    let oci = env.path("oci");
    let _ = std::fs::remove_dir_all(&oci);
    run_ok(
        env.strata("root")
            .env("SOURCE_DATE_EPOCH", epoch)
            .arg("build")
            .arg(ctx)
            .args(["--progress", "plain", "-t", "t/ts:1", "--output"])
            .arg(format!("type=oci,dest={}", oci.display())),
    );
    let bundle = env.path("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    run_ok(
        std::process::Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t/ts:1", oci.display()))
            .arg(&bundle),
    );
    Some(bundle.join("rootfs"))
}

fn mtime(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mtime()
}

#[test]
fn a_run_sees_source_date_epoch_and_its_layer_clamps_mtimes() {
    const T: &str = "a_run_sees_source_date_epoch_and_its_layer_clamps_mtimes";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "echo $SOURCE_DATE_EPOCH > /seen && echo x > /new && echo y > /old && touch -d @5000 /old && mkdir /d && touch -d @7000 /d" },
  { env = { SOURCE_DATE_EPOCH = "42" } },
  { run = "echo $SOURCE_DATE_EPOCH > /own" },
]
"#;
    let Some(ctx) = context(&env, spec, T) else {
        return;
    };
    let Some(root) = build_rootfs(&env, &ctx, "100000", T) else {
        return;
    };
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("seen"), "100000\n", "the build's epoch is exported");
    assert_eq!(
        read("own"),
        "42\n",
        "a SOURCE_DATE_EPOCH the spec sets wins"
    );
    assert_eq!(
        mtime(&root.join("new")),
        100000,
        "a new file gets the epoch"
    );
    assert_eq!(mtime(&root.join("old")), 5000, "an older mtime is kept");
    assert_eq!(mtime(&root.join("d")), 7000, "directories too");
    assert_eq!(
        mtime(&root.join("own")),
        100000,
        "the layer uses the build's epoch"
    );
}

#[test]
fn an_mtime_based_tool_with_a_cache_mount_rebuilds_a_changed_source() {
    const T: &str = "an_mtime_based_tool_with_a_cache_mount_rebuilds_a_changed_source";
    let env = TestEnv::new();
    // What make and cargo do: rebuild the output in the cache mount when
    // the source is newer than it.
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { copy = ["src.txt", "other.txt"], to = "/src/" },
  { run = "if [ ! -e /cache/out ] || [ /src/src.txt -nt /cache/out ]; then cp /src/src.txt /cache/out; fi; cp /cache/out /result; if [ -e /cache/other ] && [ /src/other.txt -nt /cache/other ]; then echo newer > /other-seen; else echo older > /other-seen; fi; cp /src/other.txt /cache/other", mounts = [{ type = "cache", target = "/cache", id = "mtime" }] },
]
"#;
    let Some(ctx) = context(&env, spec, T) else {
        return;
    };
    std::fs::write(ctx.join("src.txt"), "one\n").unwrap();
    std::fs::write(ctx.join("other.txt"), "unchanged\n").unwrap();
    let Some(root) = build_rootfs(&env, &ctx, "0", T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("result")).unwrap(),
        "one\n"
    );
    // Snapshot times have a resolution of one second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(ctx.join("src.txt"), "two\n").unwrap();
    let root = build_rootfs(&env, &ctx, "0", T).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("result")).unwrap(),
        "two\n",
        "the changed source must look newer than the cached output"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("other-seen")).unwrap(),
        "older\n",
        "a file the copy did not change must not look newer than the cache"
    );
    assert_eq!(
        mtime(&root.join("src/src.txt")),
        0,
        "the layer keeps the epoch"
    );
}

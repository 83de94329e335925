//! Issue 12: builds with different `--compression` on one store. A gzip
//! build writes each layer as an uncompressed blob first and compresses it
//! beside the build; that uncompressed blob is removed afterwards only when
//! no build, push or pull is running and nothing names it, so a concurrent
//! `--compression none` build of the same layer keeps a whole image, and
//! `strata prune` still collects what stays behind.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const DOCKERFILE: &str = "FROM scratch\nCOPY big.bin /big.bin\n";

/// A context whose one layer takes a while to gzip: 64 MiB that do not
/// compress (xorshift).
fn context(env: &TestEnv) -> std::path::PathBuf {
    let ctx = env.write_tree("ctx", &[("Dockerfile", DOCKERFILE)]);
    let mut data = Vec::with_capacity(64 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < (64 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.join("big.bin"), data).unwrap();
    ctx
}

fn blob(root: &Path, digest: &str) -> std::path::PathBuf {
    root.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// The layer digests of the manifest `digest` in the store at `root`.
fn layers(env: &TestEnv, root: &str, digest: &str) -> Vec<String> {
    let m = env.blob_json(root, digest);
    (m["layers"].as_array().unwrap().iter())
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn image_digest(env: &TestEnv, meta: &str) -> String {
    metadata(&env.path(meta))["image"]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn build(
    env: &TestEnv,
    ctx: &Path,
    compression: &str,
    tag: &str,
    meta: &str,
) -> std::process::Command {
    let mut c = env.strata("root");
    c.arg("build")
        .arg(ctx)
        .args([
            "--progress",
            "plain",
            "--compression",
            compression,
            "-t",
            tag,
        ])
        .arg("--metadata-file")
        .arg(env.path(meta));
    c
}

/// Whether the store at `root` holds the blob `digest`.
fn has(env: &TestEnv, digest: &str) -> bool {
    blob(&env.path("root"), digest).is_file()
}

/// While a gzip build compresses its layer, a `--compression none` build
/// of the same layer finds the uncompressed blob the gzip build wrote and
/// names it in its manifest. The gzip build must not remove it when it
/// ends (it once did: a tagged image naming a missing blob).
#[test]
fn a_gzip_build_keeps_the_uncompressed_blob_a_concurrent_none_build_names() {
    let env = TestEnv::new();
    let ctx = context(&env);
    // The layer's diff_id, from a build into another store.
    run_ok(
        env.strata("ref")
            .arg("build")
            .arg(&ctx)
            .args(["--compression", "none", "--metadata-file"])
            .arg(env.path("ref.json")),
    );
    let diff_id = layers(&env, "ref", &image_digest(&env, "ref.json")).remove(0);

    // Its compression waits 5 s before it starts: time enough for the
    // none build, however busy the machine.
    let mut gzip = build(&env, &ctx, "gzip", "mix/gzip:1", "gzip.json")
        .env("STRATA_TEST_COMPRESS_DELAY_MS", "5000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the gzip build has stored the uncompressed blob (and is still
    // compressing it), the none build runs start to end.
    let start = Instant::now();
    while !has(&env, &diff_id) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the gzip build never stored its uncompressed blob"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    run_ok(&mut build(&env, &ctx, "none", "mix/none:1", "none.json"));
    let gzip_still_running = gzip.try_wait().unwrap().is_none();
    let out = gzip.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        gzip_still_running,
        "the gzip build ended before the none build: the test shows nothing"
    );

    let none = image_digest(&env, "none.json");
    assert_eq!(layers(&env, "root", &none), std::slice::from_ref(&diff_id));
    assert!(
        has(&env, &diff_id),
        "the none build's image names {diff_id}, which the gzip build removed"
    );
    let gz = layers(&env, "root", &image_digest(&env, "gzip.json"));
    assert_ne!(gz[0], diff_id);
    assert!(has(&env, &gz[0]), "the gzip image's layer is there");
    // Both images export whole.
    for tag in ["mix/none:1", "mix/gzip:1"] {
        let dest = env.path(&format!("{}.tar", tag.replace(['/', ':'], "-")));
        run_ok(env.strata("root").args(["save", "-o"]).arg(&dest).arg(tag));
    }
}

/// When another build holds the store while a gzip build ends, the gzip
/// build's uncompressed blob stays (it cannot know what that build will
/// name); nothing names it, so `strata prune` collects it, and a build
/// alone on the store removes its own at once.
#[test]
fn an_uncompressed_blob_left_while_another_build_ran_is_pruned() {
    let env = TestEnv::new();
    let ctx = context(&env);
    let store = strata::store::Store::open(&env.path("root")).unwrap();
    // As a build in progress does.
    let other = store.lock_shared().unwrap();
    run_ok(&mut build(&env, &ctx, "gzip", "mix/gzip:1", "gzip.json"));
    drop(other);
    let gz = layers(&env, "root", &image_digest(&env, "gzip.json")).remove(0);
    let config = env.blob_json("root", &image_digest(&env, "gzip.json"))["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let diff_id = env.blob_json("root", &config)["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        has(&env, &diff_id),
        "left while another build held the store"
    );
    let out = run_ok(env.strata("root").args(["prune", "-f"]));
    assert!(!has(&env, &diff_id), "prune collects it: {}", out.stdout);
    assert!(has(&env, &gz));
    run_ok(
        env.strata("root")
            .args(["save", "-o"])
            .arg(env.path("g.tar"))
            .arg("mix/gzip:1"),
    );

    // Alone on the store, a build removes its own uncompressed blob.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("{DOCKERFILE}COPY Dockerfile /\n"),
    )
    .unwrap();
    run_ok(&mut build(&env, &ctx, "gzip", "mix/gzip:2", "gzip2.json"));
    let config = env.blob_json("root", &image_digest(&env, "gzip2.json"))["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let diff_ids = env.blob_json("root", &config)["rootfs"]["diff_ids"].clone();
    let last = diff_ids[1].as_str().unwrap();
    assert!(
        !has(&env, last),
        "a build alone on the store removes its uncompressed blobs"
    );
}

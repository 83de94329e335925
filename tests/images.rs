//! The local image verbs through the real binary: images, tag, rmi,
//! history, inspect, prune, save, load.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const TWO_IMAGES: &str = r#"
[stage.base]
from = "scratch"
steps = [{ copy = ["shared.bin"], to = "/shared.bin" }]

[stage.one]
from = "base"
steps = [
  { copy = ["one.txt"], to = "/one.txt" },
  { env = { MODE = "one" } },
]
cmd = ["/bin/one"]
labels = { "org.example.name" = "one" }

[stage.two]
from = "base"
steps = [{ copy = ["two.txt"], to = "/two.txt" }]
entrypoint = ["/bin/two"]

[image.one]
stage = "one"
tags = ["test/one:1"]

[image.two]
stage = "two"
tags = ["test/two:1"]
"#;

/// A deterministic pseudo-random byte string (does not compress).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn two_images(env: &TestEnv, root: &str) -> PathBuf {
    let ctx = env.write_tree(
        "ctx",
        &[
            ("one.txt", "one\n"),
            ("two.txt", "two\n"),
            ("strata.toml", TWO_IMAGES),
        ],
    );
    std::fs::write(ctx.join("shared.bin"), noise(20_000, 1)).unwrap();
    run_ok(
        env.strata(root)
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"]),
    );
    ctx
}

fn strata_ok(env: &TestEnv, root: &str, args: &[&str]) -> String {
    run_ok(env.strata(root).args(args)).stdout
}

fn blob_files(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn inspect(env: &TestEnv, root: &str, name: &str) -> serde_json::Value {
    let out = strata_ok(env, root, &["inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn images_lists_tags_sizes_and_shared_layers() {
    let env = TestEnv::new();
    two_images(&env, "root");
    let out = strata_ok(&env, "root", &["images"]);
    insta::assert_snapshot!("images", out);
    let q = strata_ok(&env, "root", &["images", "-q"]);
    assert_eq!(q.lines().count(), 2, "{q}");
    let d = strata_ok(&env, "root", &["images", "--digests"]);
    let one = inspect(&env, "root", "test/one:1");
    let id = one["Id"].as_str().unwrap();
    assert!(d.contains("DIGEST"), "{d}");
    assert!(d.contains(&id["sha256:".len()..][..12]), "{d}");
    // Both images share the base layer: it counts as shared in each.
    for line in out.lines().skip(1) {
        assert!(!line.ends_with("   0B"), "shared size expected: {line}");
    }
}

#[test]
fn history_rows_are_newest_first_with_missing_for_metadata() {
    let env = TestEnv::new();
    two_images(&env, "root");
    let out = strata_ok(&env, "root", &["history", "test/one:1"]);
    insta::assert_snapshot!("history", out);
    let q = strata_ok(&env, "root", &["history", "-q", "test/one:1"]);
    let one = inspect(&env, "root", "test/one:1");
    let layers: Vec<&str> = one["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let ids: Vec<&str> = q.lines().filter(|l| *l != "<missing>").collect();
    let want: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l["sha256:".len()..][..12].to_string())
        .collect();
    assert_eq!(ids, want);
    let full = strata_ok(&env, "root", &["history", "--no-trunc", "test/one:1"]);
    for l in &layers {
        assert!(full.contains(l), "{full}");
    }
}

#[test]
fn history_truncates_long_commands() {
    let env = TestEnv::new();
    let long = "a-file-with-a-really-long-name-that-goes-on-and-on.txt";
    let spec = format!(
        "[stage.s]\nfrom = \"scratch\"\nsteps = [{{ copy = [\"{long}\"], to = \"/x\" }}]\n\
         [image.s]\nstage = \"s\"\ntags = [\"test/long:1\"]\n"
    );
    let ctx = env.write_tree("ctx", &[(long, "x"), ("strata.toml", &spec)]);
    run_ok(env.strata("root").arg("build").arg(&ctx));
    let short = strata_ok(&env, "root", &["history", "test/long:1"]);
    let full = strata_ok(&env, "root", &["history", "--no-trunc", "test/long:1"]);
    assert!(short.contains('…'), "{short}");
    assert!(!short.contains(long), "{short}");
    assert!(full.contains(&format!("COPY {long} /x")), "{full}");
}

#[test]
fn inspect_matches_skopeo_config() {
    const T: &str = "inspect_matches_skopeo_config";
    let env = TestEnv::new();
    two_images(&env, "root");
    let out = strata_ok(&env, "root", &["inspect", "test/one:1", "test/two:1"]);
    let docs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(docs.as_array().unwrap().len(), 2);
    insta::assert_snapshot!("inspect", out);
    if !have_tool("skopeo", T) {
        return;
    }
    for (i, tag) in ["test/one:1", "test/two:1"].iter().enumerate() {
        let r = format!("oci:{}:{tag}", env.path("root").display());
        let raw = run_ok(Command::new("skopeo").args(["inspect", "--config", "--raw", &r]));
        let digest = format!("sha256:{}", sha256_hex(raw.stdout.as_bytes()));
        let cfg: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
        let d = &docs[i];
        assert_eq!(d["Id"], digest.as_str());
        assert_eq!(d["RepoTags"], serde_json::json!([tag]));
        assert_eq!(d["Created"], cfg["created"]);
        assert_eq!(d["Architecture"], cfg["architecture"]);
        assert_eq!(d["Os"], cfg["os"]);
        assert_eq!(d["Config"], cfg["config"]);
        assert_eq!(d["RootFS"]["Type"], cfg["rootfs"]["type"]);
        assert_eq!(d["RootFS"]["Layers"], cfg["rootfs"]["diff_ids"]);
    }
}

fn sha256_hex(b: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

#[test]
fn tag_and_rmi_follow_docker() {
    let env = TestEnv::new();
    two_images(&env, "root");
    strata_ok(&env, "root", &["tag", "test/one:1", "other/one"]);
    let one = inspect(&env, "root", "other/one:latest");
    let id = one["Id"].as_str().unwrap().to_string();
    assert_eq!(
        one["RepoTags"],
        serde_json::json!(["test/one:1", "other/one:latest"])
    );
    // An ID prefix several tags point at is refused without -f, and
    // nothing is removed.
    let short = &id["sha256:".len()..][..12];
    let refused = run(env.strata("root").args(["rmi", short]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("must be forced"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        inspect(&env, "root", short)["RepoTags"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Removing one tag keeps the image.
    let out = strata_ok(&env, "root", &["rmi", "other/one"]);
    assert_eq!(out, "Untagged: other/one:latest\n");
    let blobs_before = blob_files(&env.path("root"));
    // The last tag: the image goes; its manifest and config blobs too
    // (layers stay: cache records use them).
    let out = strata_ok(&env, "root", &["rmi", "test/one:1"]);
    assert!(out.starts_with("Untagged: test/one:1\n"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}\n")), "{out}");
    let blobs_after = blob_files(&env.path("root"));
    assert!(!blobs_after.contains(&id["sha256:".len()..].to_string()));
    assert_eq!(blobs_before.len() - blobs_after.len(), 2, "{out}");
    let missing = run(env.strata("root").args(["inspect", "test/one:1"]));
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no such image"),
        "{}",
        missing.stderr
    );
    // -f with an ID removes every tag.
    strata_ok(&env, "root", &["tag", "test/two:1", "test/two:2"]);
    let two = inspect(&env, "root", "test/two:1")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = strata_ok(&env, "root", &["rmi", "-f", &two]);
    assert!(
        out.contains("Untagged: test/two:1\nUntagged: test/two:2\n"),
        "{out}"
    );
    assert_eq!(strata_ok(&env, "root", &["images", "-q"]), "");
    // Bad references are errors.
    let bad = run(env.strata("root").args(["tag", "nope", "x"]));
    assert_eq!(bad.code, 1);
}

fn umoci_unpacks(env: &TestEnv, layout: &Path, tag: &str, bundle: &str) {
    let bundle = env.path(bundle);
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    assert!(bundle.join("rootfs").is_dir());
}

fn can_umoci(test: &str) -> bool {
    if !have_tool("umoci", test) {
        return false;
    }
    if !is_root() {
        eprintln!("SKIP {test}: umoci unpack needs root here");
        return false;
    }
    true
}

#[test]
fn prune_removes_only_unreachable_and_dry_run_removes_nothing() {
    const T: &str = "prune_removes_only_unreachable_and_dry_run_removes_nothing";
    let env = TestEnv::new();
    let ctx = two_images(&env, "root");
    let root = env.path("root");
    // A rebuild with a changed file leaves the old layer to the cache only.
    std::fs::write(ctx.join("two.txt"), "TWO\n").unwrap();
    run_ok(env.strata("root").arg("build").arg(&ctx));
    strata_ok(&env, "root", &["rmi", "test/one:1"]);

    let before = blob_files(&root);
    let dry = strata_ok(&env, "root", &["prune", "--dry-run", "--all"]);
    assert!(dry.contains("Total reclaimable space:"), "{dry}");
    assert!(dry.contains("cache records"), "{dry}");
    assert_eq!(blob_files(&root), before, "dry run deleted blobs");

    // Without --all the cache keeps its layers: only unreferenced blobs
    // (the old two's manifest and config) go.
    let out = strata_ok(&env, "root", &["prune", "-f"]);
    assert!(out.contains("Removed 2 blobs"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let mid = blob_files(&root);
    assert!(mid.len() < before.len(), "{out}");

    // --all: only what test/two:1 needs survives.
    let two = inspect(&env, "root", "test/two:1");
    let out = strata_ok(&env, "root", &["prune", "-f", "--all"]);
    assert!(out.contains("cache records"), "{out}");
    let after = blob_files(&root);
    // manifest + config + two layers (shared.bin, two.txt)
    assert_eq!(after.len(), 4, "{after:?}\n{out}");
    assert!(after.contains(&two["Id"].as_str().unwrap()["sha256:".len()..].to_string()));
    for b in before.iter().filter(|b| !after.contains(b)) {
        assert!(!root.join("blobs/sha256").join(b).exists());
    }
    assert_eq!(std::fs::read_dir(root.join("cache")).unwrap().count(), 0);
    // The survivor still exports and unpacks.
    strata_ok(
        &env,
        "root",
        &[
            "save",
            "--format",
            "oci",
            "-o",
            env.path("two.tar").to_str().unwrap(),
            "test/two:1",
        ],
    );
    if can_umoci(T) {
        umoci_unpacks(&env, &root, "test/two:1", "bundle");
        let content = std::fs::read_to_string(env.path("bundle/rootfs/two.txt")).unwrap();
        assert_eq!(content, "TWO\n");
    }
    // Nothing left to prune.
    let again = strata_ok(&env, "root", &["prune", "-f", "--all"]);
    assert!(again.contains("Total reclaimed space: 0B"), "{again}");
}

#[test]
fn prune_keep_storage_drops_old_cache_records() {
    let env = TestEnv::new();
    let ctx = two_images(&env, "root");
    let root = env.path("root");
    strata_ok(&env, "root", &["rmi", "test/one:1", "test/two:1"]);
    let records = || std::fs::read_dir(root.join("cache")).unwrap().count();
    let n = records();
    assert!(n >= 3, "{n}");
    // A generous limit keeps everything...
    let out = strata_ok(&env, "root", &["prune", "-f", "--keep-storage", "1GB"]);
    assert!(!out.contains("cache records"), "{out}");
    assert_eq!(records(), n);
    // ...a limit of zero removes every record, and their layer blobs.
    let out = strata_ok(&env, "root", &["prune", "-f", "--keep-storage", "0"]);
    assert!(out.contains(&format!("Removed {n} cache records")), "{out}");
    assert_eq!(records(), 0);
    assert!(blob_files(&root).is_empty(), "{:?}", blob_files(&root));
    let bad = run(env
        .strata("root")
        .args(["prune", "-f", "--keep-storage", "lots"]));
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // The context rebuilds from scratch afterwards.
    run_ok(env.strata("root").arg("build").arg(&ctx));
}

#[test]
fn prune_waits_for_a_running_build() {
    const T: &str = "prune_waits_for_a_running_build";
    let env = TestEnv::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..24 {
        files.push((format!("big/f{i:02}.bin"), noise(4 << 20, i + 10)));
    }
    let ctx = env.path("ctx");
    for (p, data) in &files {
        let p = ctx.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::write(
        ctx.join("strata.toml"),
        "[stage.s]\nfrom = \"scratch\"\nsteps = [{ copy = [\"big/\"], to = \"/big/\" }]\n\
         [image.s]\nstage = \"s\"\ntags = [\"test/big:1\"]\n",
    )
    .unwrap();
    let root = env.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut build = env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the build is writing to the store.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let busy = std::fs::read_dir(root.join("tmp"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if busy || build.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = build.try_wait().unwrap().is_none();
    let prune = run(env.strata("root").args(["prune", "-f", "--all"]));
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(prune.ok, "{}", prune.stderr);
    if running {
        assert!(prune.stderr.contains("waiting"), "{}", prune.stderr);
    } else {
        eprintln!("note {T}: the build finished before prune started");
    }
    // The image the build tagged is whole.
    strata_ok(
        &env,
        "root",
        &[
            "save",
            "-o",
            env.path("big.tar").to_str().unwrap(),
            "test/big:1",
        ],
    );
    if can_umoci(T) {
        umoci_unpacks(&env, &root, "test/big:1", "bundle");
        let got = std::fs::read(env.path("bundle/rootfs/big/f07.bin")).unwrap();
        assert_eq!(got, files[7].1);
    }
}

#[test]
fn save_then_load_gives_the_same_manifest_digest() {
    let env = TestEnv::new();
    two_images(&env, "root");
    let digests = |root: &str| strata_ok(&env, root, &["images", "--digests"]);
    for (i, format) in ["docker", "oci"].iter().enumerate() {
        let ar = env.path(&format!("images-{format}.tar"));
        strata_ok(
            &env,
            "root",
            &[
                "save",
                "--format",
                format,
                "-o",
                ar.to_str().unwrap(),
                "test/one:1",
                "test/two:1",
            ],
        );
        let other = format!("other{i}");
        let out = strata_ok(&env, &other, &["load", "-i", ar.to_str().unwrap()]);
        assert!(out.contains("Loaded image: test/one:1\n"), "{out}");
        assert!(out.contains("Loaded image: test/two:1\n"), "{out}");
        assert_eq!(digests(&other), digests("root"), "{format}");
    }
    // Through a pipe, too.
    let saved = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(env.path("root"))
        .args(["save", "test/two:1"])
        .output()
        .unwrap();
    assert!(saved.status.success());
    let mut load = env
        .strata("piped")
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        load.stdin.take().unwrap().write_all(&saved.stdout).unwrap();
    }
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: test/two:1\n"
    );
    // Not an archive: a clear error.
    std::fs::write(env.path("junk.tar"), b"not a tar").unwrap();
    let bad = run(env
        .strata("root")
        .args(["load", "-i", env.path("junk.tar").to_str().unwrap()]));
    assert_eq!(bad.code, 1);
}

/// Docker's grouped verbs are the same commands as the top-level ones.
#[test]
fn image_and_container_groups_are_aliases() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")],
    );
    run_ok(
        env.strata("root")
            .arg("image")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "grp/app:1", "--progress", "plain"]),
    );
    run_ok(
        env.strata("root")
            .args(["image", "tag", "grp/app:1", "grp/app:2"]),
    );
    let images = strata_ok(&env, "root", &["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["grp/app", "2"])),
        "{images}"
    );
    assert_eq!(strata_ok(&env, "root", &["image", "ls"]), images);
    assert_eq!(strata_ok(&env, "root", &["image", "list"]), images);
    assert_eq!(
        strata_ok(&env, "root", &["image", "inspect", "grp/app:1"]),
        strata_ok(&env, "root", &["inspect", "grp/app:1"])
    );
    assert_eq!(
        strata_ok(&env, "root", &["image", "history", "grp/app:1"]),
        strata_ok(&env, "root", &["history", "grp/app:1"])
    );
    let rm = strata_ok(&env, "root", &["image", "rm", "grp/app:2"]);
    assert!(rm.contains("Untagged: grp/app:2"), "{rm}");
    assert_eq!(
        strata_ok(&env, "root", &["container", "ls", "-a"]),
        strata_ok(&env, "root", &["ps", "-a"])
    );
    assert_eq!(
        strata_ok(&env, "root", &["container", "ps"]),
        strata_ok(&env, "root", &["ps"])
    );
}

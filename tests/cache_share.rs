//! Sharing the build cache between two machines (two store roots) through a
//! registry (`docker-registry` on 127.0.0.1) or a directory: the second
//! machine runs no step, gets the same image, and downloads only the layers
//! the final image needs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::built::{Built, build};
use common::registry::Registry;
use common::*;

/// A two-stage spec from scratch: `build` makes files (with a RUN step when
/// this host can run one), `app` copies one of them and a context file.
/// Returns the context and whether it has a RUN step.
fn context(env: &TestEnv, test: &str) -> (PathBuf, bool) {
    let bb = if is_root() { busybox(test) } else { None };
    let run = if bb.is_some() {
        r#"  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "sh", "-c", "echo built > /src/made.txt"] },"#
    } else {
        eprintln!("NOTE {test}: no RUN step (needs root and a static busybox)");
        ""
    };
    let spec = format!(
        r#"
[stage.build]
from = "scratch"
steps = [
  {{ copy = ["src/"], to = "/src/" }},
  {{ copy = ["big.txt"], to = "/big.txt" }},
{run}
]

[stage.app]
from = "scratch"
steps = [
  {{ copy = ["a.txt"], to = "/a.txt" }},
  {{ copy = ["/src/"], from = "build", to = "/app/" }},
]
cmd = ["/app/main.txt"]

[image.app]
stage = "app"
tags = ["t/app:1"]
"#
    );
    let big = "intermediate only\n".repeat(5000);
    let dir = env.write_tree(
        "ctx",
        &[
            ("strata.toml", spec.as_str()),
            ("a.txt", "hello\n"),
            ("src/main.txt", "main\n"),
            ("big.txt", big.as_str()),
        ],
    );
    if let Some(bb) = bb {
        std::fs::copy(bb, dir.join("busybox")).unwrap();
    }
    (dir, !run.is_empty())
}

fn blobs(env: &TestEnv, root: &str) -> BTreeSet<String> {
    std::fs::read_dir(env.path(root).join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest, config and layer digests of an image in a store.
fn image_blobs(env: &TestEnv, root: &str, manifest: &str) -> BTreeSet<String> {
    let hex = manifest.trim_start_matches("sha256:");
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path(root).join("blobs/sha256").join(hex)).unwrap(),
    )
    .unwrap();
    let mut out: BTreeSet<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    out.insert(m["config"]["digest"].as_str().unwrap().to_string());
    out.insert(manifest.to_string());
    out
}

/// Machine A exports, machine B imports: no step runs on B, same image,
/// and B holds exactly the final image's blobs.
fn share(env: &TestEnv, ctx: &Path, has_run: bool, to: &str, from: &str) -> Built {
    let a = build(env, "a", ctx, &["--cache-to", to]);
    let steps = if has_run { 6 } else { 4 };
    assert_eq!(a.count("misses"), steps, "{}", a.out.stderr);
    assert!(a.warnings().is_empty(), "{:?}", a.warnings());

    let b = build(env, "b", ctx, &["--cache-from", from]);
    assert_eq!(b.count("misses"), 0, "{}", b.out.stderr);
    assert_eq!(b.count("hits"), steps);
    assert!(b.started().is_empty(), "steps ran: {:?}", b.started());
    assert!(b.warnings().is_empty(), "{:?}", b.warnings());
    assert_eq!(b.digest(), a.digest(), "same image on both machines");

    let on_b = blobs(env, "b");
    let wanted = image_blobs(env, "b", b.digest());
    assert_eq!(
        on_b, wanted,
        "B downloaded exactly the final image's layers"
    );
    let on_a = blobs(env, "a");
    assert!(on_b.is_subset(&on_a));
    let intermediate = if has_run { 3 } else { 2 };
    assert!(
        on_a.len() >= on_b.len() + intermediate,
        "A has the intermediate layers: {} vs {}",
        on_a.len(),
        on_b.len()
    );

    // Imported records whose blobs are now local are in B's own cache: a
    // rebuild without --cache-from hits them for the final image's steps
    // (the build stage, whose layers B never fetched, runs again).
    let again = build(env, "b", ctx, &[]);
    assert_eq!(again.digest(), a.digest());
    let final_steps: Vec<String> = again
        .started()
        .into_iter()
        .filter(|id| id.starts_with("app/"))
        .collect();
    assert!(final_steps.is_empty(), "{}", again.out.stderr);
    b
}

#[test]
fn registry_cache_lets_a_second_machine_build_without_running_steps() {
    const T: &str = "registry_cache_lets_a_second_machine_build_without_running_steps";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, T) else {
        return;
    };
    let (ctx, has_run) = context(&env, T);
    let r = format!("{}/cache:main", reg.host());
    share(
        &env,
        &ctx,
        has_run,
        &format!("type=registry,ref={r},mode=max"),
        &format!("type=registry,ref={r}"),
    );

    // Other tools see an OCI artifact of strata's cache type.
    if have_tool("skopeo", T) {
        let o = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]));
        let m: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(m["artifactType"], "application/vnd.strata.cache.v1+json");
        let layers = m["layers"].as_array().unwrap().len();
        assert_eq!(layers, if has_run { 6 } else { 4 }, "every step's layer");
    }

    // Exporting again sends no blob the registry has (the records blob is
    // the same too).
    let before = reg.blob_uploads();
    build(
        &env,
        "a",
        &ctx,
        &["--cache-to", &format!("type=registry,ref={r}")],
    );
    assert_eq!(reg.blob_uploads(), before);

    // A third machine whose context changed in the final stage runs only the
    // final stage's steps; the COPY --from step fetches the cached build
    // stage's layers on demand.
    std::fs::write(ctx.join("a.txt"), "changed\n").unwrap();
    let c = build(&env, "c", &ctx, &["--cache-from", &r]);
    let mut started = c.started();
    started.sort();
    assert_eq!(started, vec!["app/1", "app/2"], "{}", c.out.stderr);
    assert_eq!(c.count("misses"), 2);
    // The result equals a build without any cache.
    let d = build(&env, "d", &ctx, &[]);
    assert_eq!(c.digest(), d.digest());
}

#[test]
fn local_cache_directory_works_the_same_way() {
    const T: &str = "local_cache_directory_works_the_same_way";
    let env = TestEnv::new();
    let (ctx, has_run) = context(&env, T);
    let dir = env.path("shared-cache");
    share(
        &env,
        &ctx,
        has_run,
        &format!("type=local,dest={}", dir.display()),
        &format!("type=local,src={}", dir.display()),
    );
    // It is an OCI layout that skopeo can read.
    assert!(dir.join("oci-layout").is_file());
    if have_tool("skopeo", T) {
        let o = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:latest", dir.display()),
        ]));
        let m: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.strata.cache.v1+json"
        );
    }
}

#[test]
fn a_corrupted_records_blob_is_ignored_with_a_warning() {
    const T: &str = "a_corrupted_records_blob_is_ignored_with_a_warning";
    let env = TestEnv::new();
    let (ctx, has_run) = context(&env, T);
    let dir = env.path("shared-cache");
    let a = build(
        &env,
        "a",
        &ctx,
        &["--cache-to", &format!("type=local,dest={}", dir.display())],
    );
    // Find the records blob through the layout and change it.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifest)).unwrap()).unwrap();
    let records = blob(m["config"]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&records).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x20;
    std::fs::write(&records, bytes).unwrap();

    let b = build(
        &env,
        "b",
        &ctx,
        &["--cache-from", &format!("type=local,src={}", dir.display())],
    );
    let w = b.warnings();
    assert!(
        w.iter()
            .any(|m| m.contains("ignored") && m.contains("corrupt")),
        "{w:?}"
    );
    let steps = if has_run { 6 } else { 4 };
    assert_eq!(b.count("misses"), steps, "every step ran");
    assert_eq!(b.started().len() as u64, steps);
    assert_eq!(b.digest(), a.digest());
}

#[test]
fn bad_cache_flags_are_usage_errors() {
    let env = TestEnv::new();
    let ctx = env.write_tree("ctx", &[("strata.toml", "[stage.a]\nfrom = \"scratch\"\n")]);
    for flag in [
        ["--cache-to", "type=s3,bucket=x"],
        ["--cache-to", "type=local"],
        ["--cache-from", "type=local,dest=/x"],
        ["--cache-to", "type=registry,ref=127.0.0.1:1/c,mode=all"],
    ] {
        let out = run(env.strata("root").arg("build").arg(&ctx).args(flag));
        assert_eq!(out.code, 2, "{flag:?}: {}", out.stderr);
        assert!(out.stderr.contains(flag[0]), "{}", out.stderr);
    }
    // An unreachable cache source is a warning, not a failure.
    let out = run(env.strata("root").arg("build").arg(&ctx).args([
        "--progress",
        "json",
        "--cache-from",
        "type=registry,ref=127.0.0.1:1/none:x",
    ]));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("--cache-from"), "{}", out.stderr);
}

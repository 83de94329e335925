//! End-to-end builds through the real binary: caching, reproducibility,
//! parallelism, failure handling, and the store under SIGKILL.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

const TWO_STAGES: &str = r#"
[stage.a]
from = "scratch"
steps = [{ copy = ["a/"], to = "/a/" }]

[stage.b]
from = "scratch"
steps = [{ copy = ["b/"], to = "/b/" }]

[stage.final]
from = "scratch"
steps = [
  { copy = ["/a/"], from = "a", to = "/data/a/" },
  { copy = ["/b/"], from = "b", to = "/data/b/" },
  { copy = ["top.txt"], to = "/top.txt" },
]
cmd = ["/bin/true"]

[image.final]
stage = "final"
tags = ["test/final:1"]
"#;

fn two_stage_context(env: &TestEnv, rel: &str) -> std::path::PathBuf {
    env.write_tree(
        rel,
        &[
            ("a/one.txt", "one\n"),
            ("a/sub/two.txt", "two\n"),
            ("b/three.txt", "three\n"),
            ("top.txt", "top\n"),
            ("strata.toml", TWO_STAGES),
        ],
    )
}

fn build_meta(
    env: &TestEnv,
    root: &str,
    ctx: &std::path::Path,
    extra: &[&str],
) -> (serde_json::Value, Output) {
    let meta = env.path(&format!("{root}-meta.json"));
    let out = run_ok(
        env.strata(root)
            .arg("build")
            .arg(ctx)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(&meta)
            .args(extra),
    );
    (metadata(&meta), out)
}

#[test]
fn second_build_is_all_cache_hits_and_touch_changes_nothing() {
    let env = TestEnv::new();
    let ctx = two_stage_context(&env, "ctx");
    let (m1, _) = build_meta(&env, "root", &ctx, &[]);
    assert_eq!(m1["cache"]["hits"], 0);
    assert_eq!(m1["cache"]["misses"], 5);
    let (m2, _) = build_meta(&env, "root", &ctx, &[]);
    assert_eq!(m2["cache"]["misses"], 0, "{m2}");
    assert_eq!(m2["cache"]["hits"], 5);
    assert_eq!(m1["image"]["digest"], m2["image"]["digest"]);

    // touch every file: mtimes never enter keys
    std::thread::sleep(Duration::from_millis(20));
    for f in ["a/one.txt", "a/sub/two.txt", "b/three.txt", "top.txt"] {
        let p = ctx.join(f);
        let content = std::fs::read(&p).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let (m3, _) = build_meta(&env, "root", &ctx, &[]);
    assert_eq!(m3["cache"]["misses"], 0, "{m3}");
    assert_eq!(m3["image"]["digest"], m1["image"]["digest"]);

    // change one file: only the steps that depend on it miss, and
    // --dry-run names the file
    std::fs::write(ctx.join("b/three.txt"), "THREE\n").unwrap();
    let dry = run_ok(env.strata("root").arg("build").arg(&ctx).arg("--dry-run"));
    assert!(
        dry.stdout.contains("b/three.txt"),
        "dry run must name the file:\n{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("3 to run"), "{}", dry.stdout);
    let (m4, _) = build_meta(&env, "root", &ctx, &[]);
    // b's copy, and final's copy from b; final's copy from a is still cached,
    // but the top.txt copy follows the changed step so it misses too.
    assert_eq!(m4["cache"]["misses"], 3, "{m4}");
    assert_ne!(m4["image"]["digest"], m1["image"]["digest"]);
}

#[test]
fn dry_run_lists_every_step_and_builds_nothing() {
    let env = TestEnv::new();
    let ctx = two_stage_context(&env, "ctx");
    let dry = run_ok(env.strata("root").arg("build").arg(&ctx).arg("--dry-run"));
    assert_eq!(
        dry.stdout.matches("\nRUN ").count() + dry.stdout.starts_with("RUN ") as usize,
        5,
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("not built before"), "{}", dry.stdout);
    assert!(dry.stdout.contains("0 cached, 5 to run"), "{}", dry.stdout);
    // nothing was built: a real build still misses everything
    let (m, _) = build_meta(&env, "root", &ctx, &[]);
    assert_eq!(m["cache"]["misses"], 5);
}

fn set_modes(dir: &std::path::Path, file_mode: u32) {
    for e in walkdir::WalkDir::new(dir) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(file_mode)).unwrap();
        }
    }
}

#[test]
fn same_spec_in_two_stores_gives_the_same_digest() {
    let env = TestEnv::new();
    let ctx1 = two_stage_context(&env, "ctx1");
    let ctx2 = two_stage_context(&env, "ctx2");
    set_modes(&ctx1, 0o644);
    set_modes(&ctx2, 0o644);
    // different mtimes
    let old = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000));
    for e in walkdir::WalkDir::new(&ctx2) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            std::fs::File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_times(old)
                .unwrap();
        }
    }
    let (m1, _) = build_meta(&env, "root1", &ctx1, &[]);
    // a different umask for the second strata process
    let meta2 = env.path("m2.json");
    let bin = env!("CARGO_BIN_EXE_strata");
    let script = format!(
        "umask 077 && exec {bin} --root {} build {} --progress plain --metadata-file {}",
        env.path("root2").display(),
        ctx2.display(),
        meta2.display()
    );
    run_ok(std::process::Command::new("sh").arg("-c").arg(script));
    let m2 = metadata(&meta2);
    assert_eq!(m1["image"]["digest"], m2["image"]["digest"]);
    assert_eq!(
        m1["image"]["config"]["digest"],
        m2["image"]["config"]["digest"]
    );

    // and SOURCE_DATE_EPOCH changes it (times are part of the image)
    let meta3 = env.path("m3.json");
    run_ok(
        env.strata("root3")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("build")
            .arg(&ctx1)
            .arg("--metadata-file")
            .arg(&meta3),
    );
    assert_ne!(metadata(&meta3)["image"]["digest"], m1["image"]["digest"]);
}

fn big_stage_context(env: &TestEnv, rel: &str) -> std::path::PathBuf {
    // Big enough that compressing a stage's layer takes a while.
    let dir = env.write_tree(rel, &[("strata.toml", TWO_STAGES), ("top.txt", "top\n")]);
    for s in ["a", "b"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
        let mut data = Vec::with_capacity(24 << 20);
        let mut x: u64 = if s == "a" { 1 } else { 2 };
        while data.len() < (24 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(s).join("big.bin"), data).unwrap();
    }
    dir
}

#[test]
fn independent_stages_overlap_and_jobs_1_runs_one_at_a_time() {
    let env = TestEnv::new();
    let ctx = big_stage_context(&env, "ctx");
    let out = run_ok(env.strata("root-par").arg("build").arg(&ctx).args([
        "--progress",
        "json",
        "--jobs",
        "2",
    ]));
    let iv = step_intervals(&out.stderr);
    let (a, b) = (iv["a/1"], iv["b/1"]);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "stages a and b did not overlap: {a:?} {b:?}\n{}",
        out.stderr
    );

    let out = run_ok(env.strata("root-seq").arg("build").arg(&ctx).args([
        "--progress",
        "json",
        "--jobs",
        "1",
    ]));
    let mut iv: Vec<(f64, f64)> = step_intervals(&out.stderr).into_values().collect();
    iv.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap());
    assert_eq!(iv.len(), 5);
    for w in iv.windows(2) {
        assert!(w[0].1 <= w[1].0, "steps overlapped with --jobs 1: {iv:?}");
    }
}

#[test]
fn a_run_step_without_a_shell_fails_clearly_and_earlier_steps_stay_cached() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("f.txt", "x"),
            (
                "strata.toml",
                "[stage.main]\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"f.txt\"], to = \"/f.txt\" },\n  { run = \"echo hi\" },\n]\n",
            ),
        ],
    );
    let dry = run_ok(env.strata("root").arg("build").arg(&ctx).arg("--dry-run"));
    assert!(
        dry.stdout.contains("RUN /bin/sh -c echo hi"),
        "{}",
        dry.stdout
    );
    let out = run(env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    // scratch has no /bin/sh (or, where RUN cannot run at all, it says why)
    assert!(
        out.stderr.contains("/bin/sh") || out.stderr.contains("cannot run this step here"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("strata.toml:"),
        "diagnostic must point at the file: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // the copy before it finished and stays cached
    let dry = run_ok(env.strata("root").arg("build").arg(&ctx).arg("--dry-run"));
    assert!(dry.stdout.contains("1 cached, 1 to run"), "{}", dry.stdout);
}

#[test]
fn missing_context_file_is_a_diagnostic_with_a_span() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[(
            "strata.toml",
            "[stage.main]\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"nope.txt\"], to = \"/x\" },\n]\n",
        )],
    );
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nope.txt"), "{}", out.stderr);
    assert!(
        out.stderr.contains("strata.toml:4:"),
        "line/column expected: {}",
        out.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    let out = run(env.strata("root").args(["build", "--jobs", "zero"]));
    assert_eq!(out.code, 2);
    let out = run(env
        .strata("root")
        .args(["build", "--output", "type=tarball,dest=x"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(env.strata("root").args(["build", "/nonexistent-dir"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_build_killed_at_any_moment_leaves_a_usable_store() {
    let env = TestEnv::new();
    let ctx = big_stage_context(&env, "ctx");
    // Kill at increasing delays; whatever state that leaves, the next build
    // must succeed and give the reference digest.
    let (reference, _) = build_meta(&env, "ref", &ctx, &[]);
    for delay_ms in [5u64, 30, 80, 150, 300, 600] {
        let mut child = env
            .strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (m, _) = build_meta(&env, "root", &ctx, &[]);
        assert_eq!(
            m["image"]["digest"], reference["image"]["digest"],
            "after kill at {delay_ms} ms"
        );
        // start the next round from a partial store again
        let _ = std::fs::remove_dir_all(env.path("root").join("cache"));
    }
}

#[test]
fn concurrent_builds_on_one_store_agree() {
    let env = TestEnv::new();
    let ctx = big_stage_context(&env, "ctx");
    let spawn = |i: usize| {
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(env.path(&format!("m{i}.json")))
            .output()
            .unwrap()
    };
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|i| s.spawn(move || spawn(i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let d: Vec<_> = (0..3)
        .map(|i| metadata(&env.path(&format!("m{i}.json")))["image"]["digest"].clone())
        .collect();
    assert!(d.iter().all(|x| *x == d[0]), "{d:?}");
    let (m, _) = build_meta(&env, "root", &ctx, &[]);
    assert_eq!(m["cache"]["misses"], 0);
}

#[test]
fn metadata_file_names_the_image() {
    let env = TestEnv::new();
    let ctx = two_stage_context(&env, "ctx");
    let (m, out) = build_meta(&env, "root", &ctx, &["-t", "extra/name:2"]);
    let digest = m["image"]["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"));
    assert!(
        m["image"]["config"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let names: Vec<&str> = m["image"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"test/final:1") && names.contains(&"extra/name:2"),
        "{names:?}"
    );
    assert!(out.stdout.contains(digest));
    // the manifest blob is in the store under its digest
    let hex = digest.trim_start_matches("sha256:");
    assert!(env.path("root").join("blobs/sha256").join(hex).is_file());
}

#[test]
fn graph_prints_text_and_dot() {
    let env = TestEnv::new();
    let ctx = two_stage_context(&env, "ctx");
    let text = run_ok(env.strata("root").arg("graph").arg(&ctx));
    assert!(
        text.stdout.contains("COPY --from=a /a/ /data/a/"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("target final"), "{}", text.stdout);
    let dot = run_ok(
        env.strata("root")
            .arg("graph")
            .arg(&ctx)
            .args(["--format", "dot"]),
    );
    assert!(dot.stdout.starts_with("digraph"));
    assert!(
        dot.stdout.contains("style=dashed"),
        "source edges are dashed: {}",
        dot.stdout
    );
    // --target b needs only stage b
    let t = run_ok(
        env.strata("root")
            .arg("graph")
            .arg(&ctx)
            .args(["--target", "b"]),
    );
    assert!(!t.stdout.contains("/a/"), "{}", t.stdout);
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let env = TestEnv::new();
    let out = run_ok(env.strata("root").arg("schema"));
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/strata.schema.json"),
    )
    .unwrap();
    assert_eq!(
        out.stdout, file,
        "schema/strata.schema.json is stale: run `strata schema > schema/strata.schema.json`"
    );
}

/// `graph` and `build --dry-run` never touch the network: a registry base
/// the store lacks is reported, not pulled (a listener sees no connection).
#[test]
fn graph_and_dry_run_never_connect_to_a_registry() {
    let env = TestEnv::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let spec = format!(
        "[stage.a]\nfrom = \"127.0.0.1:{port}/base:1\"\nsteps = [{{ workdir = \"/w\" }}]\n\n[image.a]\nstage = \"a\"\n"
    );
    let ctx = env.write_tree("ctx", &[("strata.toml", spec.as_str())]);
    let graph = run_ok(env.strata("root").arg("graph").arg(&ctx));
    assert!(graph.stdout.contains("WORKDIR /w"), "{}", graph.stdout);
    assert!(
        graph.stderr.contains("is not in the store"),
        "graph says the base is unknown: {}",
        graph.stderr
    );
    let dry = run(env.strata("root").args(["build", "--dry-run"]).arg(&ctx));
    assert!(!dry.ok, "a dry run cannot plan on an unpulled base");
    assert!(
        dry.stderr.contains("not in the store yet"),
        "{}",
        dry.stderr
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to the registry port: {other:?}"),
    }
}

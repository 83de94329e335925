//! A RUN's layer tar is written beside the build (build::pending): the
//! steps after a RUN start from its snapshot before its blob exists, the
//! image is the one a build without the wait gives, and a build killed
//! while a layer is being written leaves a store the next build uses.
//!
//! The layer workers' test hook `STRATA_TEST_LAYER_DELAY_MS` makes each
//! wait that long between scanning a RUN's upper dir and writing its tar.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const DELAY: &str = "STRATA_TEST_LAYER_DELAY_MS";

/// busybox on scratch, then two RUNs, the second reading the first's file.
const SPEC: &str = r#"
[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"] },
]

[stage.app]
from = "base"
steps = [
  { run = "echo one > /one" },
  { run = "cat /one > /two; echo two >> /two" },
]
"#;

fn context(env: &TestEnv, test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIP {test}: RUN needs root");
        return None;
    }
    let bb = busybox(test)?;
    let dir = env.write_tree("ctx", &[("strata.toml", SPEC)]);
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    Some(dir)
}

/// Builds `ctx` into store `root` (json progress); the image digest and
/// the cache misses.
fn build(env: &TestEnv, root: &str, ctx: &Path, delay_ms: Option<u64>) -> (Output, String, u64) {
    let meta = env.path(&format!("{root}-meta.json"));
    let mut cmd = env.strata(root);
    cmd.arg("build")
        .arg(ctx)
        .args(["--progress", "json", "--jobs", "2", "--metadata-file"])
        .arg(&meta);
    match delay_ms {
        Some(ms) => cmd.env(DELAY, ms.to_string()),
        None => cmd.env_remove(DELAY),
    };
    let out = run_ok(&mut cmd);
    let m = metadata(&meta);
    let digest = m["image"]["digest"].as_str().unwrap().to_string();
    (out, digest, m["cache"]["misses"].as_u64().unwrap())
}

/// The time of each step's `layer` event (its layer is in the store).
fn layer_events(stderr: &str) -> std::collections::HashMap<String, f64> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "layer")
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["time"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_runs_dependent_starts_before_its_layer_is_written() {
    const T: &str = "a_runs_dependent_starts_before_its_layer_is_written";
    let env = TestEnv::new();
    let Some(ctx) = context(&env, T) else { return };
    let delay = 2000;
    let (slow, digest, misses) = build(&env, "root", &ctx, Some(delay));
    assert_eq!(misses, 4, "{}", slow.stderr);
    let iv = step_intervals(&slow.stderr);
    let layers = layer_events(&slow.stderr);
    // One layer event per RUN, after the step finished.
    let mut ids: Vec<&String> = layers.keys().collect();
    ids.sort();
    assert_eq!(ids, ["app/0", "app/1", "base/2"], "{}", slow.stderr);
    for (id, t) in &layers {
        assert!(
            *t >= iv[id].1 + delay as f64 / 1000.0,
            "{id}: {}",
            slow.stderr
        );
    }
    // The second RUN, stacked on the first, started before the first's
    // layer blob and record were in the store.
    let (one, two) = (iv["app/0"], iv["app/1"]);
    assert!(
        two.0 < layers["app/0"],
        "the second RUN waited for the first's layer: {one:?} {two:?} {}",
        slow.stderr
    );
    // The same image as a build that wrote each layer before going on
    // (here: without the wait), and every step is cached afterwards.
    let (_, plain, _) = build(&env, "root2", &ctx, None);
    assert_eq!(digest, plain);
    let (again, cached, misses) = build(&env, "root", &ctx, None);
    assert_eq!(
        (cached.as_str(), misses),
        (digest.as_str(), 0),
        "{}",
        again.stderr
    );
    // The pending snapshots took their diff_id names; tmp/ is empty.
    let snaps = names(&env.path("root/snapshots"));
    assert!(!snaps.is_empty());
    assert!(
        snaps
            .iter()
            .all(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit())),
        "{snaps:?}"
    );
    assert_eq!(names(&env.path("root/tmp")), Vec::<String>::new());
}

#[test]
fn a_build_killed_while_a_layer_is_written_leaves_a_usable_store() {
    const T: &str = "a_build_killed_while_a_layer_is_written_leaves_a_usable_store";
    let env = TestEnv::new();
    let Some(ctx) = context(&env, T) else { return };
    // Each layer waits a minute before its tar: kill the build once the
    // last RUN has finished, its layer and the one below still pending.
    let mut child = env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        // Uncompressed: a COPY's record is filed at once (a compressed
        // layer's waits for its blob, beside the build).
        .args(["--progress", "json", "--jobs", "2", "--compression", "none"])
        .env(DELAY, "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let start = Instant::now();
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "finished" && v["id"] == "app/1" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(50),
            "the steps waited for their parents' layers:\n{seen}"
        );
    }
    assert!(seen.contains("\"app/1\""), "{seen}");
    // Every RUN has finished; none has its record (so none its blob yet):
    // the one record is the COPY's.
    assert_eq!(names(&env.path("root/cache")).len(), 1, "{seen}");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL: nothing is cleaned up
    child.wait().unwrap();
    // What the killed build left: its pending snapshots in tmp/.
    assert!(!names(&env.path("root/tmp")).is_empty());

    // The next build runs those RUNs again and gives the image a fresh
    // store gives; the leftovers are gone and no snapshot is misnamed.
    let (out, digest, misses) = build(&env, "root", &ctx, None);
    assert!(misses >= 2, "{}", out.stderr);
    let (_, fresh, _) = build(&env, "fresh", &ctx, None);
    assert_eq!(digest, fresh);
    assert_eq!(names(&env.path("root/tmp")), Vec::<String>::new());
    let snaps = names(&env.path("root/snapshots"));
    assert!(
        snaps
            .iter()
            .all(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit())),
        "{snaps:?}"
    );
    let (_, again, misses) = build(&env, "root", &ctx, None);
    assert_eq!((again, misses), (digest, 0));
}

#[test]
fn a_layer_that_cannot_be_written_fails_the_build_naming_its_step() {
    const T: &str = "a_layer_that_cannot_be_written_fails_the_build_naming_its_step";
    let env = TestEnv::new();
    let Some(ctx) = context(&env, T) else { return };
    let mut child = env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "json", "--jobs", "4"])
        .env(DELAY, "4000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the build ended before its last RUN finished:\n{seen}");
        }
        seen.push_str(&line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "finished" && v["id"] == "app/1" {
            break;
        }
    }
    // The last RUN's file goes from its pending snapshot once its layer
    // is scanned (a worker is free for it at once) and while it waits to
    // be written: the worker cannot read it.
    std::thread::sleep(Duration::from_millis(500));
    let mut removed = 0;
    for d in names(&env.path("root/tmp")) {
        let f = env.path("root/tmp").join(d).join("upper/two");
        if std::fs::remove_file(&f).is_ok() {
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "{seen}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{seen}{rest}");
    assert!(
        rest.contains("writing the layer of RUN /bin/sh -c cat /one > /two"),
        "{rest}"
    );
    // The other layers were written and recorded; the next build runs
    // only the failed RUN again.
    let (out, _, misses) = build(&env, "root", &ctx, None);
    assert_eq!(misses, 1, "{}", out.stderr);
}

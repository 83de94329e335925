//! Lowering is linear in the number of steps (issue 9): a Dockerfile of
//! many `ENV` lines once took quadratic time (each instruction copied and
//! scanned the whole env).
//!
//! The cheap tests compare 4n lines with n lines, for the lowering alone
//! and for the whole `strata graph` (parse, lower, print, exit); the
//! ignored ones are the figure, for an optimized build:
//! `cargo test --release --test dockerfile_scale -- --ignored`.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use strata::frontend::LowerOptions;
use strata::frontend::dockerfile;
use strata::frontend::toml as spec;
use strata::ir::EmptyResolver;

/// The timed tests run one at a time: run side by side (the test
/// harness's threads) on a small machine, each would time the others.
fn timed() -> std::sync::MutexGuard<'static, ()> {
    static TIMED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TIMED.lock().unwrap_or_else(|e| e.into_inner())
}

fn envs_dockerfile(n: usize) -> String {
    let mut s = String::from("FROM scratch\n");
    for i in 0..n {
        s.push_str(&format!("ENV K{i}=v{i}-$PATH\n"));
    }
    s.push_str("RUN true\n");
    s
}

fn envs_toml(n: usize) -> String {
    let mut s = String::from("[stage.a]\nfrom = \"scratch\"\nsteps = [\n");
    for i in 0..n {
        s.push_str(&format!("  {{ env = {{ K{i} = \"v{i}-${{PATH}}\" }} }},\n"));
    }
    s.push_str("  { run = \"true\" },\n]\n");
    s
}

/// Best of three: the time to lower `text`, and its node count.
fn time(text: &str, toml: bool) -> (Duration, usize) {
    let opts = LowerOptions::default();
    let mut best = Duration::MAX;
    let mut nodes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let g = if toml {
            spec::load("strata.toml", text, &opts, &EmptyResolver)
        } else {
            dockerfile::load("Dockerfile", text, &opts, &EmptyResolver)
        }
        .unwrap_or_else(|d| panic!("{:?}", miette::Report::new(d)));
        best = best.min(t.elapsed());
        nodes = g.graph.node_count();
    }
    (best, nodes)
}

fn assert_linear(make: fn(usize) -> String, toml: bool, n: usize) {
    let (small, n1) = time(&make(n), toml);
    let (large, n2) = time(&make(4 * n), toml);
    assert_eq!((n1, n2), (n + 2, 4 * n + 2));
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
    eprintln!("{n} ENV: {small:?}; {}: {large:?} (x{ratio:.1})", 4 * n);
    // Linear gives about 4, quadratic about 16.
    assert!(ratio < 9.0, "4x the ENV lines took {ratio:.1}x the time");
}

#[test]
fn dockerfile_env_lowering_is_linear() {
    let _one_at_a_time = timed();
    assert_linear(envs_dockerfile, false, 5_000);
}

#[test]
fn toml_env_lowering_is_linear() {
    let _one_at_a_time = timed();
    assert_linear(envs_toml, true, 5_000);
}

/// The figure: 200,000 ENV lines lower in under 2 s (release).
#[test]
#[ignore = "slow unoptimized; run with --release -- --ignored"]
fn two_hundred_thousand_env_lines_lower_in_two_seconds() {
    let _one_at_a_time = timed();
    let (t, nodes) = time(&envs_dockerfile(200_000), false);
    eprintln!("200000 ENV lines: {t:?}");
    assert_eq!(nodes, 200_002);
    assert!(t < Duration::from_secs(2), "{t:?}");
}

/// `strata graph` on a Dockerfile of `n` ENV lines, end to end (the
/// process as a user runs it, output to a file): the best of three wall
/// times. Checks that it printed every node and the target.
fn time_graph(dir: &Path, n: usize) -> Duration {
    let ctx = dir.join(format!("env{n}"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), envs_dockerfile(n)).unwrap();
    let out = dir.join(format!("graph{n}.txt"));
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("graph")
            .arg("--root")
            .arg(dir.join("root"))
            .arg(&ctx)
            .stdout(File::create(&out).unwrap())
            .status()
            .unwrap();
        best = best.min(t.elapsed());
        assert!(status.success(), "strata graph: {status}");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    // Every node (FROM, the ENV lines, RUN), then `target ...`.
    assert_eq!(text.lines().count(), n + 3);
    let last_env = format!("ENV K{}=\"v{}-/usr/local/sbin:", n - 1, n - 1);
    assert!(text.contains(&last_env), "no `{last_env}` in the graph");
    assert!(text.ends_with(&format!("target 0 = {} (0)\n", n + 1)));
    best
}

/// `large` lines took `ratio` times as long as `small`: about the ratio of
/// the sizes when linear, its square when quadratic.
fn assert_scales_linearly(small: (usize, Duration), large: (usize, Duration)) {
    let size = large.0 as f64 / small.0 as f64;
    let ratio = large.1.as_secs_f64() / small.1.as_secs_f64().max(1e-6);
    eprintln!(
        "strata graph: {} ENV: {:?}; {}: {:?} (x{ratio:.1} for x{size:.0} the lines)",
        small.0, small.1, large.0, large.1
    );
    assert!(
        ratio < size * 2.25,
        "{size:.0}x the ENV lines took {ratio:.1}x the time"
    );
}

#[test]
fn graph_of_env_lines_is_linear_end_to_end() {
    let _one_at_a_time = timed();
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000;
    let small = time_graph(dir.path(), n);
    let large = time_graph(dir.path(), 4 * n);
    assert_scales_linearly((n, small), (4 * n, large));
}

/// The figure end to end: `strata graph` on 200,000 ENV lines in
/// under 2 s (release), and 50,000 -> 200,000 scales linearly.
#[test]
#[ignore = "slow unoptimized; run with --release -- --ignored"]
fn graph_of_two_hundred_thousand_env_lines_in_two_seconds() {
    let _one_at_a_time = timed();
    let dir = tempfile::tempdir().unwrap();
    let mut times = Vec::new();
    for n in [5_000, 20_000, 50_000, 200_000] {
        let t = time_graph(dir.path(), n);
        eprintln!("strata graph, {n} ENV lines: {t:?}");
        times.push((n, t));
    }
    assert_scales_linearly(times[2], times[3]);
    let (_, t) = times[3];
    assert!(t < Duration::from_secs(2), "{t:?}");
}

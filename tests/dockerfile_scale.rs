//! Lowering is linear in the number of steps (issue 9): a Dockerfile of
//! many `ENV` lines once took quadratic time (each instruction copied and
//! scanned the whole env).
//!
//! The cheap test compares 4n lines with n lines; the ignored one is the
//! issue's figure, for an optimized build:
//! `cargo test --release --test dockerfile_scale -- --ignored`.

use std::time::{Duration, Instant};

use strata::frontend::LowerOptions;
use strata::frontend::dockerfile;
use strata::frontend::toml as spec;
use strata::ir::EmptyResolver;

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
    assert_linear(envs_dockerfile, false, 5_000);
}

#[test]
fn toml_env_lowering_is_linear() {
    assert_linear(envs_toml, true, 5_000);
}

/// The figure: 200,000 ENV lines lower in under 2 s (release).
#[test]
#[ignore = "slow unoptimized; run with --release -- --ignored"]
fn two_hundred_thousand_env_lines_lower_in_two_seconds() {
    let (t, nodes) = time(&envs_dockerfile(200_000), false);
    eprintln!("200000 ENV lines: {t:?}");
    assert_eq!(nodes, 200_002);
    assert!(t < Duration::from_secs(2), "{t:?}");
}

//! Parse + lower a generated 2,000-instruction Dockerfile, and one of
//! 200,000 `ENV` lines (issue 9: lowering must stay linear); prints the
//! times and exits non-zero when the best of several runs is above 20 ms,
//! or the ENV file above 2 s.
//!
//! `cargo bench --bench parse`. `cargo test --all-targets` also runs it,
//! unoptimized: then it only checks that everything parses and reports the
//! time, since the limit is about the optimized build.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use strata::frontend::LowerOptions;
use strata::frontend::dockerfile;
use strata::ir::EmptyResolver;

const INSTRUCTIONS: usize = 2_000;
const LIMIT: Duration = Duration::from_millis(20);
const RUNS: usize = 15;
const ENV_LINES: usize = 200_000;
const ENV_LIMIT: Duration = Duration::from_secs(2);

/// A Dockerfile of `n` instructions: ten stages mixing every common
/// instruction, with variables to expand, continuations and COPY --from.
fn generate(n: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=localhost/bench:1\n");
    let mut count = 1;
    let per_stage = n / 10;
    let mut stage = 0;
    while count < n {
        if count == 1 || count % per_stage == 0 {
            out.push_str(&format!(
                "FROM ${{BASE}} AS s{stage}\nARG V{stage}=v{stage}\n"
            ));
            stage += 1;
            count += 2;
            continue;
        }
        let i = count;
        let line = match i % 12 {
            0 => format!("ENV K{i}=value-{i} P{i}=\"${{K{i}:-x}} two\"\n"),
            1 => format!("RUN echo step {i} > /f{i} && \\\n    cat /f{i}\n"),
            2 => format!("COPY --chmod=0644 src/f{i} /dst/f{i}\n"),
            3 => format!("LABEL l{i}=\"label {i}\" version=${{V{}}}\n", stage - 1),
            4 => format!("WORKDIR /w/{i}\n"),
            5 => format!("EXPOSE {}/tcp\n", 1000 + i),
            6 => format!("RUN [\"/bin/sh\", \"-c\", \"echo exec {i}\"]\n"),
            7 => format!("USER {}:{}\n", 1000 + i % 7, 1000 + i % 5),
            8 if stage > 1 => format!("COPY --from=s{} /f1 /from/{i}\n", stage - 2),
            8 => format!("COPY a{i} b{i} /many/\n"),
            9 => format!("RUN --mount=type=cache,target=/c{i} --network=none true {i}\n"),
            10 => format!("VOLUME /v{i}\n"),
            _ => format!("CMD [\"/bin/echo\", \"{i}\"]\n"),
        };
        out.push_str(&line);
        count += 1;
    }
    out
}

/// `FROM scratch`, `n` ENV lines each reading the env, one RUN.
fn env_lines(n: usize) -> String {
    let mut s = String::from("FROM scratch\n");
    for i in 0..n {
        s.push_str(&format!("ENV K{i}=v{i}-$PATH\n"));
    }
    s.push_str("RUN true\n");
    s
}

/// The best of `runs` parse+lower times of `text`.
fn best_of(text: &str, runs: usize) -> Result<Duration, ExitCode> {
    let opts = LowerOptions::default();
    let mut best = Duration::MAX;
    for _ in 0..runs {
        // `load` is parse + lower.
        let t = Instant::now();
        let graph = match dockerfile::load("Dockerfile", text, &opts, &EmptyResolver) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("lowering failed: {:?}", miette::Report::new(e));
                return Err(ExitCode::FAILURE);
            }
        };
        best = best.min(t.elapsed());
        std::hint::black_box(graph);
    }
    Ok(best)
}

fn main() -> ExitCode {
    let text = generate(INSTRUCTIONS);
    let nodes = match dockerfile::parse("Dockerfile", &text) {
        Ok(ast) => ast.children.len(),
        Err(e) => {
            eprintln!("parse failed: {:?}", miette::Report::new(e));
            return ExitCode::FAILURE;
        }
    };
    let best = match best_of(&text, RUNS) {
        Ok(t) => t,
        Err(code) => return code,
    };
    println!(
        "parse+lower of a {nodes}-instruction Dockerfile ({} bytes): best of {RUNS} runs {:.2} ms (limit {} ms)",
        text.len(),
        best.as_secs_f64() * 1e3,
        LIMIT.as_millis()
    );
    if nodes < INSTRUCTIONS {
        eprintln!("generated only {nodes} instructions");
        return ExitCode::FAILURE;
    }
    if cfg!(debug_assertions) {
        println!("(unoptimized build: the time limit is checked by `cargo bench` only)");
        return ExitCode::SUCCESS;
    }
    if best > LIMIT {
        eprintln!("too slow: above {} ms", LIMIT.as_millis());
        return ExitCode::FAILURE;
    }
    let env = match best_of(&env_lines(ENV_LINES), 3) {
        Ok(t) => t,
        Err(code) => return code,
    };
    println!(
        "parse+lower of {ENV_LINES} ENV lines: best of 3 runs {:.2} s (limit {} s)",
        env.as_secs_f64(),
        ENV_LIMIT.as_secs()
    );
    if env > ENV_LIMIT {
        eprintln!("too slow: above {} s", ENV_LIMIT.as_secs());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

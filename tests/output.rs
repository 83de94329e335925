//! What strata prints and how it ends: a closed pipe ends it quietly at
//! once, an error has one header, Ctrl-C says "interrupted" with status 130,
//! terminal progress ends its lines, the result line names the image and
//! `images` shows an epoch-0 image's date.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn strata_cmd(env: &TestEnv) -> String {
    format!(
        "{} --root {}",
        env!("CARGO_BIN_EXE_strata"),
        env.path("root").display()
    )
}

/// `strata build CTX 2>&1 | head -1` through a real shell pipe: strata
/// ends as soon as it next writes, not when the 30 s step would finish,
/// and prints nothing about it.
#[test]
fn a_closed_pipe_ends_a_build_at_once_and_quietly() {
    let t = "a_closed_pipe_ends_a_build_at_once_and_quietly";
    let env = TestEnv::new();
    if !built_hello(&env, t, "RUN steps") {
        return;
    }
    let ctx = env.write_tree(
        "slow",
        &[(
            "Dockerfile",
            "FROM example/hello\nRUN echo start; i=0; while [ $i -lt 50 ]; do echo tick $i; i=$((i+1)); busybox sleep 1; done\n",
        )],
    );
    let started = Instant::now();
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "{} build {} --progress plain 2>&1 | head -1; echo done",
        strata_cmd(&env),
        ctx.display()
    )));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}: {}",
        out.stdout
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("=> plan"), "{}", out.stdout);
    assert!(out.stderr.is_empty(), "{}", out.stderr);

    // Only stdout piped: the result line goes to a closed pipe.
    let mut child = env
        .strata("root")
        .args(["build", "--progress", "plain"])
        .arg(env.path("examples/hello"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn an_error_prints_one_header() {
    let env = TestEnv::new();
    let ctx = env.write_tree("ctx", &[("Dockerfile", "FROM scratch\nRUNN x\n")]);
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr.matches('×').count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("Error:"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown instruction"), "{}", out.stderr);
    // Several problems: one header each, then the count.
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nRUNN x\nCOPYY y\n").unwrap();
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert_eq!(out.stderr.matches('×').count(), 2, "{}", out.stderr);
    assert!(
        out.stderr.trim_end().ends_with("2 errors"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_result_line_names_the_image() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")],
    );
    let out = run_ok(env.strata("root").arg("build").arg(&ctx).args([
        "-t",
        "app:1",
        "-t",
        "app:2",
        "--progress",
        "plain",
    ]));
    let line = out.stdout.trim_end();
    assert!(line.starts_with("built app:1, app:2 sha256:"), "{line}");
    let out = run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"]),
    );
    let line = out.stdout.trim_end();
    assert!(
        line.starts_with("built stage 0 (untagged) sha256:"),
        "{line}"
    );
    // -q: only the image ID, as `images` and `inspect` show it (docker's).
    let q = run_ok(env.strata("root").arg("build").arg(&ctx).arg("-q"));
    assert!(
        q.stdout.starts_with("sha256:") && q.stdout.lines().count() == 1,
        "{}",
        q.stdout
    );
    let id = q.stdout.trim();
    let manifest = line.rsplit(' ').next().unwrap();
    assert_ne!(
        id, manifest,
        "-q prints the config digest, not the manifest's"
    );
    let images = run_ok(env.strata("root").args(["images", "-a", "-q"]));
    let short = &id["sha256:".len()..][..12];
    assert!(
        images.stdout.lines().any(|l| l == short),
        "{}",
        images.stdout
    );
    let inspect = run_ok(env.strata("root").args(["inspect", id]));
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(v[0]["Id"], id);
}

/// Under a terminal (`script` gives strata a pty) every progress line ends
/// with a newline, so the recording reads line by line.
#[test]
fn tty_progress_ends_its_lines() {
    let t = "tty_progress_ends_its_lines";
    if !have_tool("script", t) {
        return;
    }
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a /a\nCOPY a /b\n"),
            ("a", "a\n"),
        ],
    );
    let out = run_ok(
        Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "{} build {} --progress tty -t tty:1",
                strata_cmd(&env),
                ctx.display()
            ))
            .arg("/dev/null"),
    );
    for want in ["=> plan: 3 steps", "DONE", "built tty:1 sha256:"] {
        let line = out
            .stdout
            .split('\n')
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no line with {want}: {:?}", out.stdout));
        // The line ends where its text ends (a `\r` before the newline is
        // the pty's), not padded on to the terminal's width.
        let text = line.trim_end_matches('\r');
        assert!(!text.ends_with("  "), "padded: {text:?}");
    }
    assert!(out.stdout.matches('\n').count() >= 4, "{:?}", out.stdout);
}

/// An image made at SOURCE_DATE_EPOCH 0 (the default) shows its date.
#[test]
fn images_shows_an_epoch_image_as_its_date() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")],
    );
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "old:1", "--progress", "plain"]),
    );
    let out = run_ok(env.strata("root").arg("images"));
    let row = out.stdout.lines().find(|l| l.starts_with("old ")).unwrap();
    assert!(row.contains("1970-01-01"), "{}", out.stdout);
    assert!(!row.contains("ago"), "{}", out.stdout);
    // A recent SOURCE_DATE_EPOCH is shown relative to now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "new:1", "--progress", "plain"])
            .env("SOURCE_DATE_EPOCH", (now - 7200).to_string()),
    );
    let out = run_ok(env.strata("root").arg("images"));
    let row = out.stdout.lines().find(|l| l.starts_with("new ")).unwrap();
    assert!(row.contains("2 hours ago"), "{}", out.stdout);
}

/// `strata run IMAGE yes-like | head -1`: the container ends with strata.
#[test]
fn a_closed_pipe_ends_a_container_at_once() {
    let t = "a_closed_pipe_ends_a_container_at_once";
    let env = TestEnv::new();
    if !built_hello(&env, t, "RUN steps") {
        return;
    }
    let started = Instant::now();
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "{} run --rm example/hello sh -c 'while :; do echo y; done' | head -1",
        strata_cmd(&env)
    )));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.stdout, "y\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

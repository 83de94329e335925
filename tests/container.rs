//! `strata run`: the built example runs, the exit status is the command's,
//! and `--commit` keeps exactly the container's changes as a new layer.

mod common;

use common::*;

fn built_hello(env: &TestEnv, test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: containers need root");
        return false;
    }
    let Some(ctx) = example(env, "hello", test) else {
        return false;
    };
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"]),
    );
    true
}

#[test]
fn run_prints_the_example_output_and_returns_its_status() {
    const T: &str = "run_prints_the_example_output_and_returns_its_status";
    let env = TestEnv::new();
    if !built_hello(&env, T) {
        return;
    }
    let out = run_ok(env.strata("root").args(["run", "example/hello:latest"]));
    assert_eq!(
        out.stdout, "hello from strata\nrunning as 0 in /app on Linux\n",
        "{}",
        out.stderr
    );
    let out = run(env.strata("root").args([
        "run",
        "-e",
        "GREETING=bonjour",
        "-w",
        "/tmp",
        "-u",
        "1234",
        "example/hello:latest",
    ]));
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "bonjour\nrunning as 1234 in /tmp on Linux\n");
    let out = run(env
        .strata("root")
        .args(["run", "example/hello:latest", "sh", "-c", "exit 42"]));
    assert_eq!(out.code, 42);
    let out = run(env.strata("root").args([
        "run",
        "--network",
        "none",
        "example/hello:latest",
        "ls",
        "/sys/class/net",
    ]));
    assert_eq!(out.stdout.trim(), "lo");
    // the container layer is gone afterwards
    let out = run(env.strata("root").args([
        "run",
        "example/hello:latest",
        "sh",
        "-c",
        "echo x > /app/new",
    ]));
    assert!(out.ok);
    let out = run(env
        .strata("root")
        .args(["run", "example/hello:latest", "ls", "/app"]));
    assert_eq!(out.stdout, "hello.sh\n");
}

#[test]
fn commit_turns_the_containers_changes_into_one_layer() {
    const T: &str = "commit_turns_the_containers_changes_into_one_layer";
    let env = TestEnv::new();
    if !built_hello(&env, T) {
        return;
    }
    let out = run(env.strata("root").args([
        "run",
        "--commit",
        "example/hello:changed",
        "example/hello:latest",
        "sh",
        "-c",
        "echo new > /app/new.txt && rm /app/hello.sh && mkdir /data",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let out =
        run_ok(
            env.strata("root")
                .args(["run", "example/hello:changed", "ls", "/app", "/data"]),
        );
    assert!(
        out.stdout.contains("new.txt") && !out.stdout.contains("hello.sh"),
        "{}",
        out.stdout
    );
    // exactly one new layer, holding exactly those changes
    let inspect = |name: &str| -> serde_json::Value {
        let o = run_ok(env.strata("root").args(["inspect", name]));
        serde_json::from_str(&o.stdout).unwrap()
    };
    let before = inspect("example/hello:latest")[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len();
    let after = inspect("example/hello:changed")[0]["RootFS"]["Layers"].clone();
    assert_eq!(after.as_array().unwrap().len(), before + 1);
    let diff_id = after
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    // find the blob whose uncompressed content has that diff_id and list it
    let blobs = env.path("root").join("blobs/sha256");
    let mut listing = None;
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        let mut plain = Vec::new();
        use std::io::Read;
        if flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .is_ok()
            && strata::digest::Digest::of(&plain).to_string() == diff_id
        {
            let mut names: Vec<String> = tar::Archive::new(&plain[..])
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            names.sort();
            listing = Some(names);
        }
    }
    assert_eq!(
        listing.expect("the committed layer blob"),
        vec!["app/", "app/.wh.hello.sh", "app/new.txt", "data/"]
    );
}

/// Docker's statuses: the command's own, 127 not found, 126 not
/// executable, 125 strata's failure, 130 with "interrupted" on Ctrl-C.
#[test]
fn run_exit_statuses_are_dockers() {
    const T: &str = "run_exit_statuses_are_dockers";
    let env = TestEnv::new();
    if !built_hello(&env, T) {
        return;
    }
    let status = |args: &[&str]| {
        let out = run(env.strata("root").arg("run").args(args));
        (out.code, out.stderr)
    };
    assert_eq!(status(&["example/hello", "sh", "-c", "exit 3"]).0, 3);
    let (code, err) = status(&["example/hello", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(status(&["example/hello", "/no/such/file"]).0, 127);
    let (code, err) = status(&["example/hello", "/etc"]);
    assert_eq!(code, 126, "{err}");
    let (code, err) = status(&["no-such-image:1"]);
    assert_eq!(code, 125, "{err}");

    // SIGINT while the command runs.
    let child = env
        .strata("root")
        .args(["run", "example/hello", "sh", "-c", "while :; do :; done"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: plain system call on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "interrupted");
}

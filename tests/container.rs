//! `strata run`: the built example runs, the exit status is the command's,
//! and `--commit` keeps exactly the container's changes as a new layer.

mod common;

use common::*;

#[test]
fn run_prints_the_example_output_and_returns_its_status() {
    const T: &str = "run_prints_the_example_output_and_returns_its_status";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
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
    if !built_hello(&env, T, "containers") {
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
/// executable, 125 strata's failure, 130 when Ctrl-C (SIGINT, passed on)
/// ends the command.
#[test]
fn run_exit_statuses_are_dockers() {
    const T: &str = "run_exit_statuses_are_dockers";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
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

    // SIGINT while the command runs: passed on, it ends the command (130),
    // with no error of strata's.
    let (code, _, err) = signalled(&env, "echo ready; while :; do :; done", libc::SIGINT);
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(err.trim(), "");
}

/// Starts `strata run example/hello sh -c SCRIPT`, sends it `sig` once the
/// command printed `ready`, and returns strata's status,
/// the output after `ready`, and stderr.
fn signalled(env: &TestEnv, script: &str, sig: i32) -> (Option<i32>, String, String) {
    use std::io::BufRead;
    let mut child = env
        .strata("root")
        .args(["run", "example/hello", "sh", "-c"])
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: plain system call on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        rest,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A foreground `run` passes SIGTERM, SIGHUP and SIGINT on to the command
/// (as `docker run` does): a trap sees it, and a command it kills gives
/// 128 + the signal (143 for SIGTERM).
#[test]
fn run_passes_signals_on_to_the_command() {
    const T: &str = "run_passes_signals_on_to_the_command";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let trap = |sig: &str| {
        format!(
            "trap 'echo got {sig}; exit 7' {sig}; echo ready; \
             while :; do busybox sleep 0.1; done"
        )
    };
    for (name, sig) in [("TERM", libc::SIGTERM), ("HUP", libc::SIGHUP)] {
        let (code, out, err) = signalled(&env, &trap(name), sig);
        assert_eq!(code, Some(7), "{err}");
        assert_eq!(out, format!("got {name}\n"));
    }
    let started = std::time::Instant::now();
    let (code, _, err) = signalled(&env, "echo ready; busybox sleep 30", libc::SIGTERM);
    assert_eq!(code, Some(143), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let (code, _, err) = signalled(&env, "echo ready; busybox sleep 30", libc::SIGHUP);
    assert_eq!(code, Some(129), "{err}");
}

/// Removes the named containers (running or not) when dropped, so a failed
/// assertion leaves no supervisor behind.
struct Cleanup<'a>(&'a TestEnv, Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for name in &self.1 {
            let _ = run(self.0.strata("root").args(["rm", "-f", name]));
        }
    }
}

/// A shell loop that keeps a container running for up to a minute.
const FOREVER: &str = "i=0; while [ $i -lt 600 ]; do busybox sleep 0.1; i=$((i+1)); done";

fn ps(env: &TestEnv, all: bool) -> String {
    let mut c = env.strata("root");
    c.arg("ps");
    if all {
        c.arg("-a");
    }
    run_ok(&mut c).stdout
}

fn row<'a>(ps: &'a str, name: &str) -> Option<&'a str> {
    ps.lines()
        .find(|l| l.split_whitespace().last() == Some(name))
}

#[test]
fn detached_containers_are_listed_logged_stopped_and_removed() {
    const T: &str = "detached_containers_are_listed_logged_stopped_and_removed";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["web"]);
    let script = format!("echo started; echo oops >&2; {FOREVER}");
    let out = run_ok(env.strata("root").args([
        "run",
        "-d",
        "--name",
        "web",
        "example/hello",
        "sh",
        "-c",
        &script,
    ]));
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{}", out.stdout);
    let listed = ps(&env, false);
    let r = row(&listed, "web").unwrap_or_else(|| panic!("{listed}"));
    assert!(r.starts_with(&id[..12]) && r.contains("Up "), "{listed}");
    // The output is kept; stderr too.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = run_ok(env.strata("root").args(["logs", "web"])).stdout;
        if logs.contains("oops") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        logs.contains("started\n") && logs.contains("oops\n"),
        "{logs}"
    );
    // A running container is not removed without -f.
    let rm = run(env.strata("root").args(["rm", "web"]));
    assert!(!rm.ok && rm.stderr.contains("running"), "{}", rm.stderr);
    let started = std::time::Instant::now();
    let stop = run_ok(env.strata("root").args(["stop", &id[..12]]));
    assert_eq!(stop.stdout.trim(), &id[..12]);
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(row(&ps(&env, false), "web").is_none());
    let all = ps(&env, true);
    let r = row(&all, "web").unwrap_or_else(|| panic!("{all}"));
    assert!(r.contains("Exited (143)"), "SIGTERM ends sh: {all}");
    run_ok(env.strata("root").args(["rm", "web"]));
    assert!(row(&ps(&env, true), "web").is_none());
    let gone = run(env.strata("root").args(["logs", "web"]));
    assert!(gone.stderr.contains("no such container"), "{}", gone.stderr);
}

#[test]
fn logs_follow_ends_when_the_container_does() {
    const T: &str = "logs_follow_ends_when_the_container_does";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["counter"]);
    run_ok(env.strata("root").args([
        "run",
        "-d",
        "--name",
        "counter",
        "example/hello",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; busybox sleep 0.3; done",
    ]));
    let out = run_ok(env.strata("root").args(["logs", "-f", "counter"]));
    assert_eq!(out.stdout, "n1\nn2\nn3\n");
    assert!(
        row(&ps(&env, true), "counter")
            .unwrap()
            .contains("Exited (0)")
    );
}

/// Each container writes to its own copy-on-write layer: two of one image
/// at the same time do not see each other's files, and the image is
/// unchanged for a third.
#[test]
fn two_containers_of_one_image_do_not_share_writes() {
    const T: &str = "two_containers_of_one_image_do_not_share_writes";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["one", "two"]);
    for name in ["one", "two"] {
        let script = format!("echo {name} > /app/mark; touch /app/only-{name}; {FOREVER}");
        run_ok(env.strata("root").args([
            "run",
            "-d",
            "--name",
            name,
            "example/hello",
            "sh",
            "-c",
            &script,
        ]));
    }
    for name in ["one", "two"] {
        let mut seen = String::new();
        for _ in 0..100 {
            let out = run(env.strata("root").args(["exec", name, "cat", "/app/mark"]));
            seen = out.stdout;
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(seen, format!("{name}\n"));
        let ls = run_ok(env.strata("root").args(["exec", name, "ls", "/app"])).stdout;
        assert_eq!(ls, format!("hello.sh\nmark\nonly-{name}\n"));
    }
    let fresh = run_ok(
        env.strata("root")
            .args(["run", "--rm", "example/hello", "ls", "/app"]),
    );
    assert_eq!(fresh.stdout, "hello.sh\n");
}

#[test]
fn exec_runs_in_the_container_with_its_status() {
    const T: &str = "exec_runs_in_the_container_with_its_status";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["box"]);
    run_ok(env.strata("root").args([
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "WHO=box",
        "-w",
        "/tmp",
        "example/hello",
        "sh",
        "-c",
        FOREVER,
    ]));
    let out = run_ok(env.strata("root").args([
        "exec",
        "box",
        "sh",
        "-c",
        "echo $WHO $(pwd) $(hostname); cat /proc/1/cmdline | tr '\\0' ' '",
    ]));
    assert!(out.stdout.starts_with("box /tmp "), "{}", out.stdout);
    // Inside the container's pid namespace: pid 1 is its init.
    assert!(out.stdout.contains("__strata-sandbox"), "{}", out.stdout);
    let out = run(env
        .strata("root")
        .args(["exec", "box", "sh", "-c", "exit 5"]));
    assert_eq!(out.code, 5);
    let out = run(env.strata("root").args(["exec", "box", "no-such-command"]));
    assert_eq!(out.code, 127, "{}", out.stderr);
    // `kill` sends SIGKILL by default: status 137.
    run_ok(env.strata("root").args(["kill", "box"]));
    let mut status = String::new();
    for _ in 0..100 {
        status = row(&ps(&env, true), "box").unwrap().to_string();
        if status.contains("Exited") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(status.contains("Exited (137)"), "{status}");
    let out = run(env.strata("root").args(["kill", "-s", "NOPE", "box"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(env.strata("root").args(["exec", "box", "echo"]));
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("not running"), "{}", out.stderr);
}

#[test]
fn run_flags_rm_entrypoint_volume_and_start_again() {
    const T: &str = "run_flags_rm_entrypoint_volume_and_start_again";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["kept", "counted"]);
    // A foreground run is kept (as docker keeps it) unless --rm.
    run_ok(
        env.strata("root")
            .args(["run", "--name", "kept", "example/hello", "echo"]),
    );
    assert!(row(&ps(&env, true), "kept").unwrap().contains("Exited (0)"));
    run_ok(
        env.strata("root")
            .args(["run", "--rm", "--name", "gone", "example/hello", "echo"]),
    );
    assert!(row(&ps(&env, true), "gone").is_none());
    let dup = run(env
        .strata("root")
        .args(["run", "--name", "kept", "example/hello", "echo"]));
    assert_eq!(dup.code, 125);
    assert!(dup.stderr.contains("already in use"), "{}", dup.stderr);

    // --entrypoint replaces the entrypoint; the arguments follow it.
    let out = run_ok(env.strata("root").args([
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "example/hello",
        "via",
        "entrypoint",
    ]));
    assert_eq!(out.stdout, "via entrypoint\n");

    // -v: a read-only and a writable bind of host directories.
    let ro = env.write_tree("ro", &[("f", "from host\n")]);
    let rw = env.write_tree("rw", &[("keep", "")]);
    let out = run(env.strata("root").args([
        "run",
        "--rm",
        "-v",
        &format!("{}:/in:ro", ro.display()),
        "-v",
        &format!("{}:/out", rw.display()),
        "example/hello",
        "sh",
        "-c",
        "cat /in/f; echo x > /in/g || echo ro-refused; echo written > /out/new",
    ]));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.starts_with("from host\n"), "{}", out.stdout);
    assert!(out.stdout.contains("ro-refused"), "{}", out.stdout);
    assert!(!ro.join("g").exists());
    assert_eq!(
        std::fs::read_to_string(rw.join("new")).unwrap(),
        "written\n"
    );
    // A missing host directory is made, as docker makes it.
    let made = env.path("made/here");
    run_ok(env.strata("root").args([
        "run",
        "--rm",
        "-v",
        &format!("{}:/made", made.display()),
        "example/hello",
        "sh",
        "-c",
        "echo in > /made/f",
    ]));
    assert_eq!(std::fs::read_to_string(made.join("f")).unwrap(), "in\n");
    let bad = run(env
        .strata("root")
        .args(["run", "-v", "named:/x", "example/hello", "echo"]));
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // `start` runs a stopped container again over its own kept layer.
    let count = "echo x >> /app/count; wc -l < /app/count";
    let first = run_ok(env.strata("root").args([
        "run",
        "--name",
        "counted",
        "example/hello",
        "sh",
        "-c",
        count,
    ]));
    assert_eq!(first.stdout.trim(), "1");
    let again = run_ok(env.strata("root").args(["start", "-a", "counted"]));
    assert_eq!(again.stdout.trim(), "2");
    run_ok(env.strata("root").args(["start", "counted"]));
    let logs = run_ok(env.strata("root").args(["logs", "-f", "counted"]));
    assert_eq!(
        logs.stdout.split_whitespace().collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
}

/// `run -it` under a terminal (`script` gives strata one): what is typed
/// reaches the container's shell, its output comes back, its status is
/// strata's; the window size is the terminal's.
#[test]
fn run_it_gives_the_command_a_terminal() {
    const T: &str = "run_it_gives_the_command_a_terminal";
    let env = TestEnv::new();
    if !have_tool("script", T) || !built_hello(&env, T, "containers") {
        return;
    }
    let strata = format!(
        "{} --root {}",
        env!("CARGO_BIN_EXE_strata"),
        env.path("root").display()
    );
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{strata} run -it --rm example/hello sh"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo h''i; exit 3\n").unwrap();
        // Keep stdin open until the shell has exited.
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    // `h''i` typed, `hi` printed: the shell ran it.
    assert!(stdout.lines().any(|l| l.trim_end() == "hi"), "{stdout:?}");

    let out = run(std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 123 rows 45; {strata} run -t --rm example/hello sh -c 'stty size'"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null()));
    assert!(out.stdout.contains("45 123"), "{:?}", out.stdout);
}

/// `rmi` refuses to untag the last name of an image a container uses
/// (docker's "conflict"), `-f` only untags it, `prune --all` keeps what
/// containers need, and `container prune` removes the stopped ones only;
/// once no container uses the image, prune reclaims its blobs.
#[test]
fn rmi_and_prune_keep_what_containers_use() {
    const T: &str = "rmi_and_prune_keep_what_containers_use";
    let env = TestEnv::new();
    if !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["stopped", "alive"]);
    let strata = |args: &[&str]| run(env.strata("root").args(args));
    let inspect = run_ok(env.strata("root").args(["inspect", "example/hello"]));
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_string();
    let short = &id["sha256:".len()..][..12];
    run_ok(
        env.strata("root")
            .args(["run", "--name", "stopped", "example/hello", "echo", "once"]),
    );
    run_ok(env.strata("root").args([
        "run",
        "-d",
        "--name",
        "alive",
        "example/hello",
        "sh",
        "-c",
        FOREVER,
    ]));

    let refused = strata(&["rmi", "example/hello"]);
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("conflict: unable to remove repository reference")
            && (refused.stderr.contains("(stopped)") || refused.stderr.contains("(alive)")),
        "{}",
        refused.stderr
    );
    let refused = strata(&["rmi", short]);
    assert!(
        !refused.ok && refused.stderr.contains("used by container"),
        "{}",
        refused.stderr
    );
    // Another name of the image may go: the image keeps one.
    run_ok(env.strata("root").args(["tag", "example/hello", "other:1"]));
    run_ok(env.strata("root").args(["rmi", "other:1"]));
    // -f untags; the image stays for its containers.
    let forced = run_ok(env.strata("root").args(["rmi", "-f", "example/hello"]));
    assert_eq!(forced.stdout, "Untagged: example/hello:latest\n");
    assert!(!ps(&env, true).is_empty());
    run_ok(env.strata("root").args(["prune", "-a", "-f"]));
    let again = run_ok(env.strata("root").args(["start", "-a", "stopped"]));
    assert_eq!(again.stdout, "once\n");
    let ls = run_ok(env.strata("root").args(["exec", "alive", "ls", "/app"]));
    assert_eq!(ls.stdout, "hello.sh\n");

    let pruned = run_ok(env.strata("root").args(["container", "prune", "-f"]));
    let stopped_id = pruned.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        pruned.stdout.starts_with("Deleted Containers:\n") && stopped_id.len() == 64,
        "{}",
        pruned.stdout
    );
    assert!(pruned.stdout.contains("Total reclaimed space: "));
    assert!(row(&ps(&env, true), "stopped").is_none());
    assert!(row(&ps(&env, true), "alive").unwrap().contains("Up "));

    // Once no container uses it, the image's blobs go.
    run_ok(env.strata("root").args(["rm", "-f", "alive"]));
    let pruned = run_ok(env.strata("root").args(["prune", "-f"]));
    assert!(pruned.stdout.contains(" blobs: "), "{}", pruned.stdout);
    assert!(!strata(&["inspect", &id]).ok);
}

/// `strata ARGS...` under `script` (a terminal sized `stty cols 77 rows
/// 22`), typing `input` and keeping the terminal open for `secs` seconds:
/// (status, what the terminal showed).
fn on_terminal(env: &TestEnv, args: &str, input: &[u8], secs: u64) -> (Option<i32>, String) {
    use std::io::Write;
    let strata = format!(
        "{} --root {}",
        env!("CARGO_BIN_EXE_strata"),
        env.path("root").display()
    );
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 77 rows 22; {strata} {args}"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `run -t` gives the command a pty of the container's own devpts, as
/// docker does: `tty` prints `/dev/pts/0`, `/dev/pts` holds only it and
/// `ptmx`, and `/dev/ptmx` opens new ones (`script` inside would work).
#[test]
fn run_t_gives_a_terminal_of_the_containers_devpts() {
    const T: &str = "run_t_gives_a_terminal_of_the_containers_devpts";
    let env = TestEnv::new();
    if !have_tool("script", T) || !built_hello(&env, T, "containers") {
        return;
    }
    let (code, out) = on_terminal(
        &env,
        "run -t --rm example/hello sh -c 'tty; ls /dev/pts; stty size; ls -l /dev/ptmx'",
        b"",
        0,
    );
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.trim_matches(['\r', '\0', '^', '@']))
        .collect();
    assert!(lines.contains(&"/dev/pts/0"), "{out:?}");
    assert!(
        lines.iter().any(|l| l.split_whitespace().eq(["0", "ptmx"])),
        "{out:?}"
    );
    assert!(lines.contains(&"22 77"), "sized before it runs: {out:?}");
    assert!(out.contains("/dev/ptmx -> pts/ptmx"), "{out:?}");
}

/// `run -dit`: detached with a terminal, the shell waits on its open stdin
/// (as `docker run -dit`); its prompt is in the logs; `exec -t` and
/// `exec -it` get a terminal of their own (`/dev/pts/1`), sized as ours;
/// `stop` ends it. `-di` alone keeps a stdin open too.
#[test]
fn run_dit_keeps_a_shell_waiting_and_exec_t_gets_its_own_terminal() {
    const T: &str = "run_dit_keeps_a_shell_waiting_and_exec_t_gets_its_own_terminal";
    let env = TestEnv::new();
    if !have_tool("script", T) || !built_hello(&env, T, "containers") {
        return;
    }
    let _clean = Cleanup(&env, vec!["shell", "reader"]);
    run_ok(
        env.strata("root")
            .args(["run", "-dit", "--name", "shell", "example/hello", "sh"]),
    );
    run_ok(
        env.strata("root")
            .args(["run", "-di", "--name", "reader", "example/hello", "cat"]),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let listed = ps(&env, false);
    for name in ["shell", "reader"] {
        assert!(
            row(&listed, name).is_some_and(|r| r.contains("Up ")),
            "{listed}"
        );
    }
    let mut logs = String::new();
    for _ in 0..100 {
        logs = run_ok(env.strata("root").args(["logs", "shell"])).stdout;
        if logs.contains('#') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(logs.contains("/app # "), "the shell's prompt: {logs:?}");
    let (code, out) = on_terminal(
        &env,
        "exec -t shell sh -c 'tty; stty size; ls -l /proc/2/fd/0'",
        b"",
        0,
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("/dev/pts/1\r\n22 77\r\n"), "{out:?}");
    assert!(out.contains("/proc/2/fd/0 -> /dev/pts/0"), "{out:?}");
    let (code, out) = on_terminal(&env, "exec -it shell sh", b"echo h''i; exit 4\n", 3);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.lines().any(|l| l.trim_end() == "hi"), "{out:?}");
    for name in ["shell", "reader"] {
        run_ok(env.strata("root").args(["stop", "-t", "1", name]));
        let all = ps(&env, true);
        assert!(
            row(&all, name).is_some_and(|r| r.contains("Exited")),
            "{all}"
        );
    }
}

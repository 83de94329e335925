//! RUN steps through the real binary: the sandbox's changes become layers
//! that real tools read, failures are reported with their output and
//! source location, and the cache and mounts behave as users expect.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A stage `base` with busybox installed and a passwd that knows `app`.
const BASE: &str = r#"
[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"] },
  { copy = ["etc/"], to = "/etc/" },
]
"#;

/// A context with busybox and `spec` appended to BASE; None (with a SKIP
/// line) where RUN cannot work here.
fn context(env: &TestEnv, rel: &str, spec: &str, test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIP {test}: RUN needs root");
        return None;
    }
    let bb = busybox(test)?;
    let dir = env.write_tree(
        rel,
        &[
            ("strata.toml", &format!("{BASE}\n{spec}")),
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\napp:x:1000:\n"),
        ],
    );
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    Some(dir)
}

fn build(env: &TestEnv, ctx: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let meta = env.path("meta.json");
    let _ = std::fs::remove_file(&meta);
    let out = run(env
        .strata("root")
        .arg("build")
        .arg(ctx)
        .args(["--progress", "plain", "--metadata-file"])
        .arg(&meta)
        .args(extra));
    let m = if out.ok {
        metadata(&meta)
    } else {
        serde_json::Value::Null
    };
    (out, m)
}

/// Builds, exports an OCI layout and unpacks it with umoci; returns the rootfs.
fn rootfs(env: &TestEnv, ctx: &Path, test: &str) -> Option<PathBuf> {
    if !have_tool("umoci", test) {
        return None;
    }
    let oci = env.path("oci");
    let (out, _) = build(
        env,
        ctx,
        &[
            "-t",
            "t/run:1",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let bundle = env.path("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    run_ok(
        std::process::Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t/run:1", oci.display()))
            .arg(&bundle),
    );
    Some(bundle.join("rootfs"))
}

#[test]
fn file_system_changes_become_layers() {
    const T: &str = "file_system_changes_become_layers";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "mkdir -p /tmp /data/dir /data/gone && chmod 1777 /tmp && echo one > /data/file && echo x > /data/gone/f && ln -s file /data/link && ln /data/file /data/hard && chmod 4755 /data/file && chown 1000:1000 /data/dir" },
  { run = "echo two >> /data/file && rm -r /data/gone && rm /bin/ls && rmdir /data/dir && echo now-a-file > /data/dir" },
  { workdir = "/work/deep" },
  { user = "app" },
  { run = "id -un > /tmp/who && pwd > /tmp/where" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::read_to_string(root.join("data/file")).unwrap(),
        "one\ntwo\n"
    );
    let meta = std::fs::metadata(root.join("data/file")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        std::fs::read_link(root.join("data/link")).unwrap(),
        Path::new("file")
    );
    assert!(
        !root.join("data/gone").exists(),
        "deleted directory stays deleted"
    );
    assert!(
        !root.join("bin/ls").exists(),
        "deleted busybox link stays deleted"
    );
    assert!(root.join("bin/cat").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("data/dir")).unwrap(),
        "now-a-file\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("tmp/who")).unwrap(),
        "app\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("tmp/where")).unwrap(),
        "/work/deep\n"
    );
    assert!(
        !root.join("etc/resolv.conf").exists(),
        "sandbox files stay out of layers"
    );
    assert!(!root.join("proc/self").exists());
}

#[test]
fn a_failing_run_names_the_command_exit_code_location_and_output() {
    const T: &str = "a_failing_run_names_the_command_exit_code_location_and_output";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo line$i; done; echo oops >&2; exit 7" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let (out, _) = build(&env, &ctx, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("exit code 7"), "{}", out.stderr);
    assert!(
        out.stderr.contains("strata.toml:14:"),
        "source location expected: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line25") && out.stderr.contains("oops"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("  line5\n"),
        "only the last 20 lines in the error: {}",
        out.stderr
    );
    // streamed live, every line
    assert!(out.stderr.contains("[main/0] line1\n"), "{}", out.stderr);
    // the steps before the failure stay cached
    let dry = run_ok(env.strata("root").arg("build").arg(&ctx).arg("--dry-run"));
    assert!(dry.stdout.contains("3 cached, 1 to run"), "{}", dry.stdout);
}

#[test]
fn run_results_are_cached_and_a_no_op_run_adds_an_empty_layer() {
    const T: &str = "run_results_are_cached_and_a_no_op_run_adds_an_empty_layer";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "echo hi > /hi" },
  { run = "true" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let (out, m1) = build(&env, &ctx, &[]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(m1["cache"]["misses"], 5);
    let (_, m2) = build(&env, &ctx, &[]);
    assert_eq!(m2["cache"]["misses"], 0);
    assert_eq!(m1["image"]["digest"], m2["image"]["digest"]);
    // the config: 5 layers (busybox, install, etc, hi, and the no-op RUN's
    // empty one, as BuildKit makes: a tar of only its end marker)
    let config = env.blob_json("root", m1["image"]["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 5, "{config}");
    assert_eq!(
        diff_ids[4],
        // sha256 of 1024 zero bytes
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
        "{config}"
    );
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_ne!(last["empty_layer"], true, "{last}");
    assert!(last["created_by"].as_str().unwrap().contains("true"));
}

#[test]
fn a_cache_mount_persists_across_builds_and_stays_out_of_layers() {
    const T: &str = "a_cache_mount_persists_across_builds_and_stays_out_of_layers";
    let env = TestEnv::new();
    let spec = |n: u32| {
        format!(
            r#"
[stage.main]
from = "base"
steps = [
  {{ run = "echo build{n} >> /cache/log; cat /cache/log > /seen", mounts = [{{ type = "cache", target = "/cache", id = "c1" }}] }},
]
"#
        )
    };
    let Some(ctx) = context(&env, "ctx", &spec(1), T) else {
        return;
    };
    let (out, _) = build(&env, &ctx, &[]);
    assert!(out.ok, "{}", out.stderr);
    std::fs::write(ctx.join("strata.toml"), format!("{BASE}\n{}", spec(2))).unwrap();
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("seen")).unwrap(),
        "build1\nbuild2\n"
    );
    let cache_dir = root.join("cache");
    assert!(
        !cache_dir.exists() || std::fs::read_dir(&cache_dir).unwrap().next().is_none(),
        "cache contents must not be in the layer"
    );
}

#[test]
fn network_none_has_only_loopback() {
    const T: &str = "network_none_has_only_loopback";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [{ run = "ls /sys/class/net > /ifaces", network = "none" }]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("ifaces")).unwrap(),
        "lo\n"
    );
}

#[test]
fn independent_runs_in_different_stages_run_at_the_same_time() {
    const T: &str = "independent_runs_in_different_stages_run_at_the_same_time";
    let env = TestEnv::new();
    let spec = r#"
[stage.a]
from = "base"
steps = [{ run = "sleep 1; echo a > /a" }]

[stage.b]
from = "base"
steps = [{ run = "sleep 1; echo b > /b" }]

[stage.final]
from = "base"
steps = [
  { copy = ["/a"], from = "a", to = "/a" },
  { copy = ["/b"], from = "b", to = "/b" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let out = run_ok(env.strata("root").arg("build").arg(&ctx).args([
        "--progress",
        "json",
        "--jobs",
        "2",
    ]));
    let iv = step_intervals(&out.stderr);
    let (a, b) = (iv["a/0"], iv["b/0"]);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "a and b did not overlap: {a:?} {b:?}"
    );
}

#[test]
fn sigterm_kills_running_steps_and_leaves_no_mounts() {
    const T: &str = "sigterm_kills_running_steps_and_leaves_no_mounts";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [{ run = "echo started; sleep 60 & sleep 60; echo never" }]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let mut child = env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the step runs
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let mut r = stderr;
        let _ = r.read_to_string(&mut s);
        s
    });
    let start = std::time::Instant::now();
    let root = env.path("root");
    while !std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains("sleep")
    {
        // the helper's mounts are in its own namespace: wait for its process instead
        let busy = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\u{0}60"))
        });
        if busy || start.elapsed().as_secs() > 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: plain system call on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert!(start.elapsed().as_secs() < 30, "the build did not stop");
    // Interrupted (SIGINT or SIGTERM): status 130, "interrupted".
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("[main/0] never"), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "stray mounts under the store:\n{mounts}"
    );
    let sleeping = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("cmdline")).is_ok_and(|c| c == "sleep\u{0}60\u{0}")
    });
    assert!(!sleeping, "the step's processes must be gone");
}

#[test]
fn a_secret_is_readable_in_the_step_and_nowhere_else() {
    const T: &str = "a_secret_is_readable_in_the_step_and_nowhere_else";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "sha256sum < /run/secrets/token > /sum", mounts = [{ type = "secret", id = "token" }] },
  { run = "printf %s \"$TOKEN\" | sha256sum > /envsum", mounts = [{ type = "secret", id = "envtok", env = "TOKEN" }] },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let secret = env.path("token.txt");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let out = run(env
        .strata("root")
        .env("MY_TOKEN", "from-env-value")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain", "-t", "t/secret:1", "--output"])
        .arg(format!("type=oci,dest={}", env.path("oci").display()))
        .arg("--secret")
        .arg(format!("id=token,src={}", secret.display()))
        .args(["--secret", "id=envtok,env=MY_TOKEN"]));
    assert!(out.ok, "{}", out.stderr);
    assert!(!out.stderr.contains("s3cr3t") && !out.stderr.contains("from-env-value"));
    // the step read both values
    let sum = |v: &str| strata::digest::Digest::of(v.as_bytes()).hex();
    let mut sums_seen = 0;
    // nowhere in the store or the output: not in a layer, a log, a record
    for dir in [env.path("root"), env.path("oci")] {
        let found = std::process::Command::new("grep")
            .args(["-r", "-a", "-l", "-z", "s3cr3t-value\\|from-env-value"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "secret found in {}",
            String::from_utf8_lossy(&found.stdout)
        );
        // layers are compressed: look inside them too
        for e in walkdir::WalkDir::new(dir.join("blobs/sha256"))
            .into_iter()
            .flatten()
        {
            if !e.file_type().is_file() {
                continue;
            }
            let bytes = std::fs::read(e.path()).unwrap();
            let mut plain = Vec::new();
            use std::io::Read;
            if flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .is_err()
            {
                plain = bytes;
            }
            let text = String::from_utf8_lossy(&plain);
            if text.contains(&sum("s3cr3t-value")) && text.contains("sum\0") {
                sums_seen += 1;
            }
            if text.contains(&sum("from-env-value")) {
                sums_seen += 1;
            }
            assert!(
                !text.contains("s3cr3t-value") && !text.contains("from-env-value"),
                "secret in blob {}",
                e.path().display()
            );
            assert!(
                !text.contains("run/secrets/token\0"),
                "the mount point leaked into a layer"
            );
        }
    }
    assert!(sums_seen >= 2, "the RUN steps did not see the secrets");
    // without --secret the mount is left out, and the step cannot read it
    let out = run(env.strata("root2").arg("build").arg(&ctx).arg("--no-cache"));
    assert_eq!(out.code, 1);
}

#[test]
fn a_run_over_an_opaque_directory_sees_only_the_new_content() {
    const T: &str = "a_run_over_an_opaque_directory_sees_only_the_new_content";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "mkdir -p /d/sub && echo old > /d/old && echo old > /d/sub/x" },
  { run = "rm -rf /d && mkdir /d && echo new > /d/new" },
  { run = "ls -A /d > /listing" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("listing")).unwrap(),
        "new\n"
    );
    assert!(!root.join("d/old").exists());
}

#[test]
fn bind_mounts_from_a_stage_are_read_only_by_default_and_cache_locks_serialize() {
    const T: &str = "bind_mounts_from_a_stage_are_read_only_by_default_and_cache_locks_serialize";
    let env = TestEnv::new();
    let spec = r#"
[stage.tools]
from = "base"
steps = [{ run = "mkdir -p /opt/tool && echo tool-data > /opt/tool/data" }]

[stage.main]
from = "base"
steps = [
  { run = "cat /mnt/data > /seen && if touch /mnt/x 2>/dev/null; then echo writable > /ro; else echo read-only > /ro; fi", mounts = [{ type = "bind", from = "tools", source = "/opt/tool", target = "/mnt" }] },
  { run = "echo written > /mnt/tmp-write && cat /mnt/tmp-write > /rw", mounts = [{ type = "bind", from = "tools", source = "/opt/tool", target = "/mnt", readonly = false }] },
  { run = "cat /ctx/hello.txt > /from-context", mounts = [{ type = "bind", source = "ctxdir", target = "/ctx" }] },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    std::fs::create_dir_all(ctx.join("ctxdir")).unwrap();
    std::fs::write(ctx.join("ctxdir/hello.txt"), "from the context\n").unwrap();
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("seen")).unwrap(),
        "tool-data\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("ro")).unwrap(),
        "read-only\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("rw")).unwrap(),
        "written\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("from-context")).unwrap(),
        "from the context\n"
    );
    assert!(!root.join("mnt/data").exists() && !root.join("ctx").join("hello.txt").exists());

    // two stages with a `locked` cache mount never use it at the same time
    let spec2 = r#"
[stage.a]
from = "base"
steps = [{ run = "if [ -e /c/busy ]; then echo clash > /c/clash; fi; touch /c/busy; sleep 1; rm /c/busy; echo a > /a", mounts = [{ type = "cache", target = "/c", id = "shared-lock", sharing = "locked" }] }]

[stage.b]
from = "base"
steps = [{ run = "if [ -e /c/busy ]; then echo clash > /c/clash; fi; touch /c/busy; sleep 1; rm /c/busy; echo b > /b", mounts = [{ type = "cache", target = "/c", id = "shared-lock", sharing = "locked" }] }]

[stage.check]
from = "base"
steps = [
  { copy = ["/a"], from = "a", to = "/a" },
  { copy = ["/b"], from = "b", to = "/b" },
  { run = "ls /c > /cache-listing", mounts = [{ type = "cache", target = "/c", id = "shared-lock" }] },
]
"#;
    std::fs::write(ctx.join("strata.toml"), format!("{BASE}\n{spec2}")).unwrap();
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(root.join("cache-listing")).unwrap(),
        "",
        "no clash recorded"
    );
}

#[test]
fn copy_chown_by_name_uses_the_images_passwd_and_group() {
    const T: &str = "copy_chown_by_name_uses_the_images_passwd_and_group";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { copy = ["etc/passwd"], to = "/by-name", chown = "app" },
  { copy = ["etc/passwd"], to = "/by-names", chown = "app:root" },
  { copy = ["etc/passwd"], to = "/by-id", chown = "42" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &str| {
        let m = std::fs::metadata(root.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("by-name"), (1000, 1000));
    assert_eq!(owner("by-names"), (1000, 0));
    assert_eq!(owner("by-id"), (42, 42));
    // an unknown name is a diagnostic at the step
    std::fs::write(
        ctx.join("strata.toml"),
        format!("{BASE}\n[stage.main]\nfrom = \"base\"\nsteps = [{{ copy = [\"etc/passwd\"], to = \"/x\", chown = \"nobody-here\" }}]\n"),
    )
    .unwrap();
    let (out, _) = build(&env, &ctx, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("nobody-here") && out.stderr.contains("strata.toml:"),
        "{}",
        out.stderr
    );
}

#[test]
fn add_unpacks_local_tar_archives_and_copies_other_files() {
    const T: &str = "add_unpacks_local_tar_archives_and_copies_other_files";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { add = ["bundle.tar.gz"], to = "/opt/" },
  { add = ["plain.tar"], to = "/srv/plain" },
  { add = ["notes.txt"], to = "/notes.txt" },
]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    // a gzipped tar with a directory, a file, a symlink and an owner
    let src = env.write_tree(
        "src",
        &[
            ("pkg/bin/tool", "#!/bin/sh\necho tool\n"),
            ("pkg/README", "readme\n"),
        ],
    );
    run_ok(
        std::process::Command::new("ln")
            .args(["-s", "bin/tool", "pkg/tool-link"])
            .current_dir(&src),
    );
    run_ok(
        std::process::Command::new("tar")
            .args(["--owner=7", "--group=8", "-czf"])
            .arg(ctx.join("bundle.tar.gz"))
            .arg("pkg")
            .current_dir(&src),
    );
    run_ok(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(ctx.join("plain.tar"))
            .arg("pkg/README")
            .current_dir(&src),
    );
    std::fs::write(ctx.join("notes.txt"), "just a file\n").unwrap();
    let Some(root) = rootfs(&env, &ctx, T) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::read_to_string(root.join("opt/pkg/bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    assert_eq!(
        std::fs::read_link(root.join("opt/pkg/tool-link")).unwrap(),
        std::path::Path::new("bin/tool")
    );
    let m = std::fs::metadata(root.join("opt/pkg/README")).unwrap();
    assert_eq!((m.uid(), m.gid()), (7, 8), "archive owners are kept");
    assert!(!root.join("opt/bundle.tar.gz").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("srv/plain/pkg/README")).unwrap(),
        "readme\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("notes.txt")).unwrap(),
        "just a file\n"
    );

    // remote sources are a clear diagnostic
    std::fs::write(
        ctx.join("strata.toml"),
        format!("{BASE}\n[stage.main]\nfrom = \"base\"\nsteps = [{{ add = [\"https://example.invalid/x.tgz\"], to = \"/x/\" }}]\n"),
    )
    .unwrap();
    let (out, _) = build(&env, &ctx, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("remote source") && out.stderr.contains("not supported yet"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_stage_layer_no_image_holds_is_compressed_when_a_later_build_exports_it() {
    const T: &str = "a_stage_layer_no_image_holds_is_compressed_when_a_later_build_exports_it";
    let env = TestEnv::new();
    let spec = r#"
[stage.tool]
from = "base"
steps = [{ run = "echo tool > /t; seq 1 2000000 > /big" }]

[stage.final]
from = "base"
steps = [{ copy = ["/t"], from = "tool", to = "/t" }]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    // The image of `final` does not hold tool's RUN layer: its compression
    // is deferred.
    let (out, _) = build(&env, &ctx, &["--target", "final"]);
    assert!(out.ok, "{}", out.stderr);
    let deferred = std::fs::read_dir(env.path("root").join("cache"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|r| r.contains("\"application/vnd.oci.image.layer.v1.tar\""))
        .count();
    assert_eq!(deferred, 1, "the build did not wait for tool's 15 MB layer");
    let (out, m) = build(&env, &ctx, &["--target", "tool"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(m["cache"]["misses"], 0, "every step cached");
    let digest = m["image"]["digest"].as_str().unwrap().to_string();
    let manifest = env.blob_json("root", &digest);
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{manifest}"
        );
        assert!(
            env.path("root")
                .join("blobs/sha256")
                .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"))
                .is_file()
        );
    }
    // That build filed tool's record again with the gzip blob: the next
    // one takes it from the cache instead of compressing the layer again.
    let records = || -> Vec<String> {
        std::fs::read_dir(env.path("root").join("cache"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    };
    assert!(
        records()
            .iter()
            .all(|r| !r.contains("\"application/vnd.oci.image.layer.v1.tar\"")),
        "{:?}",
        records()
    );
    let (out, m) = build(&env, &ctx, &["--target", "tool"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(m["image"]["digest"], digest.as_str());
    // The same image as a build of `tool` into an empty store.
    let fresh = run_ok(
        env.strata("fresh")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--target", "tool", "--metadata-file"])
            .arg(env.path("fresh.json")),
    );
    assert!(fresh.ok);
    assert_eq!(
        metadata(&env.path("fresh.json"))["image"]["digest"],
        digest.as_str()
    );
}

/// A stage's last layer that no image holds but a later stage copies from:
/// its cache record keeps its blob, so a rebuild is all cache hits (the
/// uncompressed blob was once removed after the copy had it compressed).
#[test]
fn a_copied_from_stage_layer_stays_cached() {
    const T: &str = "a_copied_from_stage_layer_stays_cached";
    let env = TestEnv::new();
    let spec = r#"
[stage.build]
from = "base"
steps = [{ run = "echo made > /made" }]

[stage.app]
from = "scratch"
steps = [{ copy = ["/made"], from = "build", to = "/" }]

[image.app]
"#;
    let Some(ctx) = context(&env, "ctx", spec, T) else {
        return;
    };
    let (out, _) = build(&env, &ctx, &[]);
    assert!(out.ok, "{}", out.stderr);
    let (out, m) = build(&env, &ctx, &[]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(m["cache"]["misses"], 0, "{}", out.stderr);
}

//! Images built by strata with RUN steps run under a real OCI runtime: the
//! image is exported as an OCI layout, unpacked into a bundle by
//! `umoci unpack`, and started with `runc run` (no terminal). The process
//! sees what the RUN steps wrote and the image config (cmd, env, workdir,
//! user), and its exit code comes back through runc. Skips without root,
//! runc, umoci or a static busybox.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SPEC: &str = r#"
version = 1

[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"], network = "none" },
  { run = "mkdir -p /etc /tmp && chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd && printf 'root:x:0:\napp:x:1000:\n' > /etc/group", network = "none" },
]

[stage.hello]
from = "base"
steps = [
  { env = { GREETING = "hello from strata" } },
  { run = "mkdir -p /app/data && printf '#!/bin/sh\necho \"$GREETING\"\necho \"uid=$(id -u) pwd=$(pwd)\"\ncat /app/data/made-by-run\n' > /app/run.sh && chmod 0755 /app/run.sh && seq 1 3 > /app/data/made-by-run", network = "none" },
  { workdir = "/app/data" },
  { user = "app" },
]
cmd = ["/app/run.sh"]

[stage.fail]
from = "base"
steps = [
  { run = "printf '#!/bin/sh\necho about to fail\nexit 7\n' > /fail.sh && chmod 0755 /fail.sh", network = "none" },
]
cmd = "/fail.sh"
"#;

/// The context (spec + busybox), or None with a SKIP line.
fn context(env: &TestEnv, test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIP {test}: RUN and runc need root");
        return None;
    }
    if !have_tool("runc", test) || !have_tool("umoci", test) {
        return None;
    }
    let bb = busybox(test)?;
    let dir = env.write_tree("ctx", &[("strata.toml", SPEC)]);
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    Some(dir)
}

/// Builds stage `target`, exports it, unpacks it into a bundle and turns
/// the terminal off; returns the bundle.
fn bundle(env: &TestEnv, ctx: &Path, target: &str) -> PathBuf {
    let oci = env.path(&format!("oci-{target}"));
    let tag = format!("t/{target}:1");
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(ctx)
            .args(["--target", target, "-t", &tag, "--progress", "plain"])
            .arg("--output")
            .arg(format!("type=oci,dest={}", oci.display())),
    );
    let bundle = env.path(&format!("bundle-{target}"));
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", oci.display()))
            .arg(&bundle),
    );
    let config = bundle.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    c["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&config, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    bundle
}

/// `runc run` of the bundle, with runc's state under the test dir.
fn runc_run(env: &TestEnv, bundle: &Path, id: &str) -> Output {
    let id = format!("{id}-{}", std::process::id());
    let out = run(Command::new("runc")
        .arg("--root")
        .arg(env.path("runc-state"))
        .arg("run")
        .arg("--bundle")
        .arg(bundle)
        .arg(&id));
    // A container that could not start may be left behind: remove it.
    let _ = Command::new("runc")
        .arg("--root")
        .arg(env.path("runc-state"))
        .args(["delete", "--force", &id])
        .output();
    out
}

#[test]
fn an_image_with_run_steps_runs_under_runc() {
    const T: &str = "an_image_with_run_steps_runs_under_runc";
    let env = TestEnv::new();
    let Some(ctx) = context(&env, T) else {
        return;
    };
    let bundle = bundle(&env, &ctx, "hello");
    let out = runc_run(&env, &bundle, "strata-hello");
    assert!(
        out.ok,
        "runc run failed ({}):\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    assert_eq!(
        out.stdout, "hello from strata\nuid=1000 pwd=/app/data\n1\n2\n3\n",
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn the_exit_code_of_the_image_command_comes_back_through_runc() {
    const T: &str = "the_exit_code_of_the_image_command_comes_back_through_runc";
    let env = TestEnv::new();
    let Some(ctx) = context(&env, T) else {
        return;
    };
    let bundle = bundle(&env, &ctx, "fail");
    let out = runc_run(&env, &bundle, "strata-fail");
    assert_eq!(
        out.code, 7,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert_eq!(out.stdout, "about to fail\n", "stderr: {}", out.stderr);
}

//! The cache never lies (issue 10): one test per finding. Each failed on
//! the main branch before the typed key: a bind mount's source entered no
//! key, a writable bind wrote into the checkout, a local base's path
//! entered every key, an ARG change made an unrelated COPY miss, and
//! `build -q` printed progress.

mod common;

use std::path::{Path, PathBuf};

use common::built::build;
use common::registry::Registry;
use common::*;

/// A stage `base` with busybox installed.
const BASE: &str = r#"
[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"] },
]
"#;

/// A context with busybox and `spec` after BASE; None (SKIP) where RUN
/// cannot work.
fn run_context(env: &TestEnv, spec: &str, files: &[(&str, &str)], test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIP {test}: RUN needs root");
        return None;
    }
    let bb = busybox(test)?;
    if !have_tool("umoci", test) {
        return None;
    }
    let text = format!("{BASE}\n{spec}");
    let mut all = vec![("strata.toml", text.as_str())];
    all.extend_from_slice(files);
    let dir = env.write_tree("ctx", &all);
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    Some(dir)
}

/// The file `rel` in the image tagged `tag` in store `root`.
fn file_in_image(env: &TestEnv, root: &str, ctx: &Path, tag: &str, rel: &str) -> String {
    let oci = env.path(&format!("{root}-oci"));
    let _ = std::fs::remove_dir_all(&oci);
    build(
        env,
        root,
        ctx,
        &[
            "-t",
            tag,
            "--output",
            &format!("type=oci,dest={}", oci.display()),
        ],
    );
    let bundle = env.path(&format!("{root}-bundle"));
    let _ = std::fs::remove_dir_all(&bundle);
    run_ok(
        std::process::Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", oci.display()))
            .arg(&bundle),
    );
    std::fs::read_to_string(bundle.join("rootfs").join(rel)).unwrap_or_default()
}

#[test]
fn a_changed_bind_mount_source_misses_and_says_why() {
    const T: &str = "a_changed_bind_mount_source_misses_and_says_why";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "cat /m/data.txt > /out", mounts = [{ type = "bind", source = "data.txt", target = "/m/data.txt" }] },
]
"#;
    let Some(ctx) = run_context(&env, spec, &[("data.txt", "one\n")], T) else {
        return;
    };
    assert_eq!(file_in_image(&env, "root", &ctx, "t/b:1", "out"), "one\n");
    std::fs::write(ctx.join("data.txt"), "two\n").unwrap();
    let dry = run_ok(env.strata("root").args(["build", "--dry-run"]).arg(&ctx));
    assert!(
        dry.stdout.contains("bind mount source data.txt changed"),
        "{}",
        dry.stdout
    );
    assert_eq!(file_in_image(&env, "root", &ctx, "t/b:1", "out"), "two\n");
    // The same content again is a hit, and the image is a fresh build's.
    let warm = build(&env, "root", &ctx, &[]);
    assert_eq!(warm.misses(), 0);
    let fresh = build(&env, "fresh", &ctx, &["--no-cache"]);
    assert_eq!(warm.digest(), fresh.digest());
}

#[test]
fn a_writable_bind_of_the_context_never_writes_into_it() {
    const T: &str = "a_writable_bind_of_the_context_never_writes_into_it";
    let env = TestEnv::new();
    let spec = r#"
[stage.main]
from = "base"
steps = [
  { run = "echo x > /ctx/WRITTEN && cat /ctx/WRITTEN /ctx/keep.txt > /seen", mounts = [{ type = "bind", target = "/ctx", readonly = false }] },
]
"#;
    let Some(ctx) = run_context(&env, spec, &[("keep.txt", "kept\n")], T) else {
        return;
    };
    assert_eq!(
        file_in_image(&env, "root", &ctx, "t/w:1", "seen"),
        "x\nkept\n",
        "the step sees its own write"
    );
    assert!(!ctx.join("WRITTEN").exists(), "the checkout saw the write");
    assert_eq!(
        std::fs::read_to_string(ctx.join("keep.txt")).unwrap(),
        "kept\n"
    );
}

/// A project whose base is an OCI layout inside it (`vendor/base`).
fn project_with_local_base(env: &TestEnv, rel: &str) -> PathBuf {
    let base_ctx = env.write_tree(
        &format!("{rel}-basectx"),
        &[
            ("b.txt", "base\n"),
            (
                "strata.toml",
                "[stage.b]\nfrom = \"scratch\"\nsteps = [{ copy = [\"b.txt\"], to = \"/b.txt\" }]\n\n[image.b]\nstage = \"b\"\n",
            ),
        ],
    );
    let ctx = env.write_tree(
        rel,
        &[
            ("a.txt", "app\n"),
            ("src/main.txt", "main\n"),
            (
                "strata.toml",
                r#"
[stage.app]
from = { oci = "./vendor/base", ref = "t/base:1" }
steps = [
  { copy = ["a.txt"], to = "/a.txt" },
  { copy = ["src/"], to = "/src/", link = true },
  { workdir = "/src" },
]

[image.app]
stage = "app"
"#,
            ),
        ],
    );
    let layout = ctx.join("vendor/base");
    run_ok(
        env.strata(&format!("{rel}-baseroot"))
            .arg("build")
            .arg(&base_ctx)
            .args(["-q", "-t", "t/base:1", "--output"])
            .arg(format!("type=oci,dest={}", layout.display())),
    );
    ctx
}

#[test]
fn the_same_project_at_another_path_hits_the_shared_cache() {
    let env = TestEnv::new();
    let one = project_with_local_base(&env, "checkout-one");
    let cache = env.path("shared-cache");
    let first = build(
        &env,
        "store-one",
        &one,
        &[
            "--cache-to",
            &format!("type=local,dest={}", cache.display()),
        ],
    );
    assert_eq!(first.misses(), 3); // two copies and the workdir's layer
    // Another checkout at another path, another store: every step hits.
    let two = env.path("elsewhere/checkout-two");
    std::fs::create_dir_all(two.parent().unwrap()).unwrap();
    copy_tree(&one, &two);
    let second = build(
        &env,
        "store-two",
        &two,
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    );
    assert_eq!(second.misses(), 0, "{}", second.out.stderr);
    assert_eq!(first.digest(), second.digest());
}

#[test]
fn the_same_project_at_another_path_hits_a_registry_cache() {
    const T: &str = "the_same_project_at_another_path_hits_a_registry_cache";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, T) else {
        return;
    };
    let one = project_with_local_base(&env, "checkout-one");
    let r = format!("{}/cache:reloc", reg.host());
    let first = build(
        &env,
        "store-one",
        &one,
        &["--cache-to", &format!("type=registry,ref={r}")],
    );
    assert_eq!(first.misses(), 3); // two copies and the workdir's layer
    let two = env.path("elsewhere/checkout-two");
    std::fs::create_dir_all(two.parent().unwrap()).unwrap();
    copy_tree(&one, &two);
    let second = build(&env, "store-two", &two, &["--cache-from", &r]);
    assert_eq!(second.misses(), 0, "{}", second.out.stderr);
    assert_eq!(first.digest(), second.digest());
}

#[test]
fn a_build_arg_change_misses_only_the_steps_that_see_it() {
    const T: &str = "a_build_arg_change_misses_only_the_steps_that_see_it";
    let env = TestEnv::new();
    let bb = if is_root() { busybox(T) } else { None };
    let run = if bb.is_some() {
        "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo $V > /v\"]\n"
    } else {
        eprintln!("NOTE {T}: no RUN step (needs root and a static busybox)");
        ""
    };
    let dockerfile = format!("FROM scratch\nCOPY busybox* /bin/\nARG V\nCOPY a.txt /a.txt\n{run}");
    let ctx = env.write_tree(
        "ctx",
        &[("a.txt", "a\n"), ("Dockerfile", dockerfile.as_str())],
    );
    if let Some(bb) = &bb {
        std::fs::copy(bb, ctx.join("busybox")).unwrap();
    } else {
        std::fs::write(ctx.join("busybox-absent"), "").unwrap();
    }
    build(&env, "root", &ctx, &["--build-arg", "V=1"]);
    let again = build(&env, "root", &ctx, &["--build-arg", "V=2"]);
    let runs = if bb.is_some() { 1 } else { 0 };
    assert_eq!(
        again.misses(),
        runs,
        "only a RUN sees the arg: {}",
        again.out.stderr
    );
    if bb.is_some() {
        let dry = run_ok(
            env.strata("root")
                .args(["build", "--dry-run", "--build-arg", "V=3"])
                .arg(&ctx),
        );
        assert!(dry.stdout.contains("build arg V: 2 -> 3"), "{}", dry.stdout);
    }
}

#[test]
fn quiet_build_prints_only_the_digest() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("a.txt", "a\n"),
            (
                "strata.toml",
                "[stage.a]\nfrom = \"scratch\"\nsteps = [{ copy = [\"a.txt\"], to = \"/a.txt\" }]\n\n[image.a]\nstage = \"a\"\n",
            ),
        ],
    );
    let out = run_ok(
        env.strata("root")
            .args(["build", "-q", "--progress", "plain"])
            .arg(&ctx),
    );
    assert_eq!(out.stderr, "", "no progress with -q");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("sha256:") && lines[0].len() == 71,
        "{}",
        lines[0]
    );
}

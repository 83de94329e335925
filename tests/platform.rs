//! Building for another platform (issue 14): `--platform` and `FROM
//! --platform`, RUN steps of another architecture through qemu-user
//! (binfmt_misc), BuildKit's platform args, and pulling one platform of a
//! multi-platform index that buildah made. Needs the arm64 busybox and the
//! qemu-aarch64 handler that `scripts/foreign-arch.sh` sets up; skips with
//! a visible message without them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::registry::Registry;
use common::*;

/// Where `scripts/foreign-arch.sh` unpacks Debian's busybox-static:arm64.
const ARM64_BUSYBOX: &str = "/var/cache/strata-test/arm64/bin/busybox";

/// The arm64 busybox and a working qemu-aarch64 handler, or a SKIP line.
fn arm64(test: &str) -> Option<PathBuf> {
    let p = PathBuf::from(ARM64_BUSYBOX);
    if !p.exists() {
        eprintln!("SKIP {test}: no arm64 busybox at {ARM64_BUSYBOX} (run scripts/foreign-arch.sh)");
        return None;
    }
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    let ok = handler.is_ok_and(|h| {
        h.starts_with("enabled")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'))
    });
    if !ok {
        eprintln!(
            "SKIP {test}: no enabled qemu-aarch64 binfmt_misc handler with the F flag (run scripts/foreign-arch.sh)"
        );
        return None;
    }
    Some(p)
}

/// Whether an error says `text`: miette wraps a long message over lines
/// that start with `│` (at any character), so both are compared without
/// white space or box characters.
fn says(stderr: &str, text: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×'))
            .collect()
    };
    squash(stderr).contains(&squash(text))
}

/// This machine's `uname -m`.
fn host_machine() -> String {
    let out = run_ok(Command::new("uname").arg("-m"));
    out.stdout.trim().to_string()
}

/// A context with both busyboxes and `dockerfile`.
fn context(env: &TestEnv, dockerfile: &str, host_bb: &PathBuf, arm_bb: &PathBuf) -> PathBuf {
    let ctx = env.write_tree("ctx", &[("Dockerfile", dockerfile)]);
    std::fs::copy(host_bb, ctx.join("busybox-host")).unwrap();
    std::fs::copy(arm_bb, ctx.join("busybox-arm64")).unwrap();
    ctx
}

fn built_digest(out: &Output) -> String {
    out.stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {}", out.stdout))
        .to_string()
}

/// `strata inspect IMAGE` as JSON.
fn inspect(env: &TestEnv, image: &str) -> serde_json::Value {
    inspect_in(env, "root", image)
}

/// `strata inspect IMAGE` as JSON, in store `root`.
fn inspect_in(env: &TestEnv, root: &str, image: &str) -> serde_json::Value {
    let out = run_ok(env.strata(root).args(["inspect", image]));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    match v {
        serde_json::Value::Array(mut a) => a.remove(0),
        v => v,
    }
}

fn cat(env: &TestEnv, image: &str, files: &[&str]) -> String {
    let mut args = vec!["run", image, "cat"];
    args.extend_from_slice(files);
    run_ok(env.strata("root").args(&args)).stdout
}

const CROSS: &str = r#"FROM --platform=$BUILDPLATFORM scratch AS builder
COPY busybox-host /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG TARGETARCH
ARG BUILDPLATFORM
RUN uname -m > /built-on && echo "$TARGETARCH from $BUILDPLATFORM" > /for

FROM scratch
COPY busybox-arm64 /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=builder /built-on /for /
RUN uname -m > /runs-on
"#;

/// `--platform linux/arm64`: the image is arm64, its RUN steps ran on
/// aarch64 through qemu, and a `$BUILDPLATFORM` builder stage ran natively
/// with the TARGET* args of arm64 (the cross-compilation pattern).
#[test]
fn build_for_arm64_runs_foreign_steps_through_qemu() {
    let test = "build_for_arm64_runs_foreign_steps_through_qemu";
    let Some(arm_bb) = arm64(test) else { return };
    let Some(host_bb) = busybox(test) else { return };
    let env = TestEnv::new();
    let ctx = context(&env, CROSS, &host_bb, &arm_bb);
    let build = |platform: &str, tag: &str| {
        let mut c = env.strata("root");
        c.arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "-t", tag]);
        if !platform.is_empty() {
            c.args(["--platform", platform]);
        }
        run_ok(&mut c)
    };
    let out = build("linux/arm64", "mp/cross:arm64");
    let digest = built_digest(&out);
    let img = inspect(&env, "mp/cross:arm64");
    assert_eq!(img["Architecture"], "arm64", "{img}");
    assert_eq!(img["Os"], "linux", "{img}");
    let seen = cat(&env, "mp/cross:arm64", &["/built-on", "/for", "/runs-on"]);
    let host = host_machine();
    let host_platform = format!(
        "linux/{}",
        match host.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    );
    assert_eq!(
        seen,
        format!("{host}\narm64 from {host_platform}\naarch64\n"),
        "the builder runs natively, the final stage on aarch64"
    );

    // The same inputs: every step cached, the same digest.
    let again = build("linux/arm64", "mp/cross:arm64");
    assert!(again.stderr.contains(" 0 to run"), "{}", again.stderr);
    assert_eq!(built_digest(&again), digest);

    // For this host instead: the builder's steps before `ARG TARGETARCH`
    // are shared (the platform is in a key only where it changes a
    // result); the image is another one, of this host's architecture.
    let native = build("", "mp/cross:native");
    assert!(
        native
            .stderr
            .contains(r#"CACHED RUN ["/bin/busybox","--install","-s","/bin"]"#),
        "{}",
        native.stderr
    );
    assert_ne!(built_digest(&native), digest);
    let img = inspect(&env, "mp/cross:native");
    assert_ne!(img["Architecture"], "arm64", "{img}");
}

/// `FROM --platform=linux/arm64 scratch` without `--platform`: that stage
/// is arm64; a bad platform is an error at its span.
#[test]
fn from_platform_makes_the_stage_foreign() {
    let test = "from_platform_makes_the_stage_foreign";
    let Some(arm_bb) = arm64(test) else { return };
    let Some(host_bb) = busybox(test) else { return };
    let env = TestEnv::new();
    let df = "FROM --platform=linux/aarch64 scratch\nCOPY busybox-arm64 /bin/busybox\nRUN [\"/bin/busybox\", \"uname\", \"-m\"]\n";
    let ctx = context(&env, df, &host_bb, &arm_bb);
    let out = run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "mp/from:1"]),
    );
    built_digest(&out);
    assert_eq!(inspect(&env, "mp/from:1")["Architecture"], "arm64");

    std::fs::write(ctx.join("Dockerfile"), "FROM --platform=linux/ scratch\n").unwrap();
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert!(!out.ok);
    assert!(
        out.stderr.contains("bad platform `linux/`") && out.stderr.contains("Dockerfile:1"),
        "{}",
        out.stderr
    );
}

/// An index made by buildah from two strata images: `pull` takes this
/// host's entry, `pull --platform linux/arm64` the arm64 one, and a stage
/// `FROM --platform=linux/arm64` of the index builds on the arm64 image.
#[test]
fn pull_and_build_pick_the_platform_from_an_index() {
    let test = "pull_and_build_pick_the_platform_from_an_index";
    let Some(arm_bb) = arm64(test) else { return };
    let Some(host_bb) = busybox(test) else { return };
    if !have_tool("buildah", test) {
        return;
    }
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, test) else {
        return;
    };
    let df = "FROM scratch\nCOPY busybox-host /bin/busybox\n";
    let ctx = context(&env, df, &host_bb, &arm_bb);
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "mp/base:host"]),
    );
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=linux/arm64 scratch\nCOPY busybox-arm64 /bin/busybox\n",
    )
    .unwrap();
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "mp/base:arm64"]),
    );
    // A third platform, which no test store pulls at first.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=linux/s390x scratch\nCOPY busybox-arm64 /bin/busybox\n",
    )
    .unwrap();
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["-t", "mp/base:s390x"]),
    );
    let host = reg.host();
    for t in ["host", "arm64", "s390x"] {
        run_ok(env.strata("root").args([
            "push",
            &format!("mp/base:{t}"),
            &format!("{host}/mp/base:{t}"),
        ]));
    }
    // buildah, in storage of its own, makes and pushes the index.
    let buildah = |args: &[&str]| {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(env.path("buildah-root"))
            .arg("--runroot")
            .arg(env.path("buildah-run"))
            .args(args);
        run_ok(&mut c)
    };
    buildah(&["manifest", "create", "mp-index"]);
    for t in ["host", "arm64", "s390x"] {
        buildah(&[
            "manifest",
            "add",
            "--tls-verify=false",
            "mp-index",
            &format!("docker://{host}/mp/base:{t}"),
        ]);
    }
    buildah(&[
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "mp-index",
        &format!("docker://{host}/mp/base:multi"),
    ]);
    let multi = format!("{host}/mp/base:multi");
    let out = run_ok(
        env.strata("pulled")
            .args(["pull", &multi, "--progress", "plain"]),
    );
    assert!(!out.stdout.contains("linux/arm64"), "{}", out.stdout);
    let out = run_ok(env.strata("pulled").args([
        "pull",
        "--platform",
        "linux/arm64",
        &multi,
        "--progress",
        "plain",
    ]));
    assert!(out.stdout.contains("(linux/arm64)"), "{}", out.stdout);
    // The tag names the arm64 image now, not an index: `run` of another
    // platform says so.
    let out = run(env.strata("pulled").args([
        "run",
        "--platform",
        "linux/amd64",
        &multi,
        "/bin/busybox",
        "true",
    ]));
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("is for linux/arm64, not for linux/amd64"),
        "{}",
        out.stderr
    );

    // A build pulls the stage's platform from the index.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM --platform=linux/arm64 {multi}\nRUN [\"/bin/busybox\", \"uname\", \"-m\"]\n"),
    )
    .unwrap();
    let out = run_ok(env.strata("fresh").arg("build").arg(&ctx).args([
        "--progress",
        "plain",
        "-t",
        "mp/on-index:1",
    ]));
    assert!(out.stderr.contains("aarch64"), "{}", out.stderr);
    let out = run_ok(env.strata("fresh").args(["inspect", "mp/on-index:1"]));
    assert!(
        out.stdout.contains("\"Architecture\": \"arm64\""),
        "{}",
        out.stdout
    );

    // A build for both platforms pulls both images of the index (the tag
    // keeps it) and builds each platform's image on its own.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {multi}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /m\"]\n"
        ),
    )
    .unwrap();
    let layout = env.path("both");
    run_ok(env.strata("both").arg("build").arg(&ctx).args([
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "mp/both:1",
        "-o",
        &format!("type=oci,dest={}", layout.display()),
    ]));
    let out = run_ok(env.strata("both").args(["inspect", &multi]));
    assert!(
        out.stdout.contains("linux/arm64"),
        "the pulled tag keeps the index: {}",
        out.stdout
    );
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let image = env.path(&format!("one-{arch}"));
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &format!("oci:{}:mp/both:1", layout.display()),
            &format!("oci:{}:x", image.display()),
        ]));
        let bundle = env.path(&format!("bundle-{arch}"));
        run_ok(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:x", image.display()))
                .arg(&bundle),
        );
        let m = std::fs::read_to_string(bundle.join("rootfs/m")).unwrap();
        assert_eq!(m, format!("{machine}\n"), "{arch}");
    }
    sparse_index_platforms(&env, &ctx, &multi);
}

/// The store "both" holds the index `multi` of three platforms with the
/// images of two (linux/amd64, linux/arm64): `images` shows those two,
/// `run --platform` picks one, a platform not held says how to pull it,
/// and a build for it pulls it into the same index.
fn sparse_index_platforms(env: &TestEnv, ctx: &std::path::Path, multi: &str) {
    let row = |env: &TestEnv| {
        let listed = run_ok(env.strata("both").arg("images")).stdout;
        let (repo, tag) = multi.rsplit_once(':').unwrap();
        listed
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([repo, tag]))
            .unwrap_or_else(|| panic!("no row for {multi}:\n{listed}"))
            .to_string()
    };
    let first = row(env);
    assert!(
        first.ends_with("   linux/amd64,linux/arm64"),
        "PLATFORM lists the images held: {first}"
    );
    let run_on = |platform: &str| {
        run(env.strata("both").args([
            "run",
            "--rm",
            "--platform",
            platform,
            multi,
            "/bin/busybox",
            "uname",
            "-m",
        ]))
    };
    let out = run_on("linux/arm64");
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "aarch64\n");
    assert_eq!(run_on("linux/amd64").stdout, "x86_64\n");
    let out = run_on("linux/s390x");
    assert!(!out.ok);
    assert!(
        says(
            &out.stderr,
            "the store holds only linux/amd64, linux/arm64 of it"
        ) && says(
            &out.stderr,
            &format!("run `strata pull --platform linux/s390x {multi}`")
        ),
        "{}",
        out.stderr
    );
    // Nor can it be pushed whole.
    let (registry, _) = multi.split_once('/').unwrap();
    let out = run(env
        .strata("both")
        .args(["push", multi, &format!("{registry}/mp/copy:1")]));
    assert!(!out.ok);
    assert!(
        says(
            &out.stderr,
            "is an index whose images for linux/s390x are not in the store"
        ),
        "{}",
        out.stderr
    );
    let out = run_on("linux/ppc64le");
    assert!(!out.ok);
    assert!(
        says(
            &out.stderr,
            "has no image for linux/ppc64le (its platforms: linux/amd64, linux/arm64, linux/s390x)"
        ),
        "{}",
        out.stderr
    );

    // A build for the platform the store lacks pulls it (before, the
    // index's entry counted as present and the build failed on the
    // missing manifest); the tag keeps the index, now with all three.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM --platform=linux/s390x {multi}\nCOPY Dockerfile /d\n"),
    )
    .unwrap();
    let out = run(env.strata("both").arg("build").arg(ctx).args([
        "--progress",
        "plain",
        "-t",
        "mp/s390x:1",
    ]));
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        inspect_in(env, "both", "mp/s390x:1")["Architecture"],
        "s390x"
    );
    let last = row(env);
    assert!(
        last.ends_with("   linux/amd64,linux/arm64,linux/s390x"),
        "{last}"
    );
    // No qemu-s390x handler here: `run` says what to install, as a
    // build's RUN step would.
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-s390x");
    if handler.is_ok_and(|h| h.starts_with("enabled")) {
        eprintln!("note: a qemu-s390x handler is enabled here; its absence is not checked");
    } else {
        let out = run_on("linux/s390x");
        assert!(!out.ok);
        assert!(
            says(
                &out.stderr,
                "the image is for linux/s390x and this machine is linux/"
            ) && says(&out.stderr, "`update-binfmts --enable qemu-s390x`"),
            "{}",
            out.stderr
        );
    }
}

const TWO: &str = r#"FROM --platform=$BUILDPLATFORM scratch AS builder
COPY busybox-host /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo built once > /once
ARG TARGETARCH
RUN echo "for $TARGETARCH" > /for

FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY --from=builder /once /for /
RUN uname -m > /runs-on
"#;

/// `--platform linux/amd64,linux/arm64`: one index of two images, each
/// of its platform (skopeo reads it); the `$BUILDPLATFORM` builder's
/// shared steps run once for both (json progress shows each once); a
/// rebuild is all cache hits; `-o type=oci` keeps the index.
#[test]
fn two_platforms_make_one_index_and_share_the_builder() {
    let test = "two_platforms_make_one_index_and_share_the_builder";
    let Some(arm_bb) = arm64(test) else { return };
    let Some(host_bb) = busybox(test) else { return };
    if host_machine() != "x86_64" || !have_tool("skopeo", test) {
        eprintln!("SKIP {test}: needs an x86_64 host and skopeo");
        return;
    }
    let env = TestEnv::new();
    let ctx = context(&env, TWO, &host_bb, &arm_bb);
    std::fs::copy(&host_bb, ctx.join("busybox-amd64")).unwrap();
    let layout = env.path("out");
    let build = || {
        run_ok(env.strata("root").arg("build").arg(&ctx).args([
            "--platform",
            "linux/amd64,linux/arm64",
            "--progress",
            "json",
            "-t",
            "mp/two:1",
            "-o",
            &format!("type=oci,dest={}", layout.display()),
        ]))
    };
    let out = build();
    let started = |text: &str, what: &str| {
        text.lines()
            .filter(|l| l.contains("\"started\"") && l.contains(what))
            .count()
    };
    assert_eq!(started(&out.stderr, "built once"), 1, "{}", out.stderr);
    assert_eq!(started(&out.stderr, "uname -m"), 2, "{}", out.stderr);
    let digest = built_digest(&out);

    // skopeo: an OCI index with both platforms, each an image of its own.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:mp/two:1", layout.display()),
    ]));
    let index: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{}", raw.stdout);
    for arch in ["amd64", "arm64"] {
        let cfg = run_ok(Command::new("skopeo").args([
            "inspect",
            "--config",
            "--override-arch",
            arch,
            &format!("oci:{}:mp/two:1", layout.display()),
        ]));
        assert!(
            cfg.stdout
                .contains(&format!("\"architecture\": \"{arch}\"")),
            "{}",
            cfg.stdout
        );
    }
    // The tag names the index; `run` takes this host's image from it.
    assert_eq!(
        cat(&env, "mp/two:1", &["/once", "/for", "/runs-on"]),
        "built once\nfor amd64\nx86_64\n"
    );

    // inspect names the platforms; save --format oci and load keep the
    // index (in another store).
    let img = inspect(&env, "mp/two:1");
    assert_eq!(
        img["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{img}"
    );
    let archive = env.path("two.tar");
    run_ok(
        env.strata("root")
            .args(["save", "--format", "oci", "-o"])
            .arg(&archive)
            .arg("mp/two:1"),
    );
    run_ok(env.strata("loaded").args(["load", "-i"]).arg(&archive));
    let out = run_ok(env.strata("loaded").args(["inspect", "mp/two:1"]));
    assert!(out.stdout.contains("linux/arm64"), "{}", out.stdout);

    // A rebuild: every step a cache hit, the same index.
    let again = build();
    assert_eq!(started(&again.stderr, "RUN"), 0, "{}", again.stderr);
    assert_eq!(built_digest(&again), digest);

    // Pushed, the registry serves the index; buildah reads both entries.
    let Some(reg) = Registry::start(&env, test) else {
        return;
    };
    let dest = format!("{}/mp/two:1", reg.host());
    let out = run_ok(env.strata("root").args(["push", "mp/two:1", &dest]));
    assert!(out.stdout.contains(&digest), "{}", out.stdout);
    if !have_tool("buildah", test) {
        return;
    }
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.host()
        ),
    )
    .unwrap();
    let out = run_ok(
        Command::new("buildah")
            .arg("--root")
            .arg(env.path("buildah-root"))
            .arg("--runroot")
            .arg(env.path("buildah-run"))
            .arg("--registries-conf")
            .arg(&conf)
            .args(["manifest", "inspect", &dest]),
    );
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).expect("buildah JSON");
    let platforms: Vec<String> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]))
        .collect();
    assert_eq!(
        platforms,
        [r#""linux"/"amd64""#, r#""linux"/"arm64""#],
        "{}",
        out.stdout
    );
}

const TOML_SPEC: &str = r#"[stage.app]
from = "scratch"
args = ["TARGETARCH"]
steps = [
  { copy = ["busybox-${TARGETARCH}"], to = "/bin/busybox" },
  { run = ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /m"] },
]

[image.app]
tags = ["mp/app:1"]
platforms = ["linux/amd64", "linux/arm64"]

[image.native]
stage = "app"
tags = ["mp/native:1"]
"#;

/// TOML `platforms` on an `[image.*]` table: that image is one index of
/// both platforms, another image without the key is this host's (the very
/// image a file without any `platforms` gives), the steps they share run
/// once; `--platform` overrides every image's; bad lists are spanned
/// errors.
#[test]
fn toml_platforms_build_each_image_for_its_own() {
    let test = "toml_platforms_build_each_image_for_its_own";
    let Some(arm_bb) = arm64(test) else { return };
    let Some(host_bb) = busybox(test) else { return };
    if host_machine() != "x86_64" {
        eprintln!("SKIP {test}: needs an x86_64 host");
        return;
    }
    let env = TestEnv::new();
    let ctx = env.write_tree("toml", &[("strata.toml", TOML_SPEC)]);
    std::fs::copy(&host_bb, ctx.join("busybox-amd64")).unwrap();
    std::fs::copy(&arm_bb, ctx.join("busybox-arm64")).unwrap();
    let build = |root: &str, ctx: &std::path::Path, extra: &[&str]| {
        run_ok(
            env.strata(root)
                .arg("build")
                .arg(ctx)
                .args(["--progress", "plain"])
                .args(extra),
        )
    };
    let out = build("root", &ctx, &[]);
    let native_digest = (out.stdout.lines())
        .find_map(|l| l.strip_prefix("built mp/native:1 "))
        .unwrap_or_else(|| panic!("mp/native:1 not built: {}", out.stdout))
        .to_string();
    // The RUN ran once per platform: `native` shares app's amd64 steps.
    let runs = out
        .stderr
        .lines()
        .filter(|l| l.contains("DONE") && l.contains("RUN"))
        .count();
    assert_eq!(runs, 2, "{}", out.stderr);
    let app = inspect(&env, "mp/app:1");
    assert_eq!(
        app["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{app}"
    );
    let native = inspect(&env, "mp/native:1");
    assert_eq!(native["Architecture"], "amd64", "{native}");
    assert!(native.get("Platforms").is_none(), "{native}");
    let on = |platform: &str, image: &str| {
        let out = run_ok(env.strata("root").args([
            "run",
            "--rm",
            "--platform",
            platform,
            image,
            "/bin/busybox",
            "cat",
            "/m",
        ]));
        out.stdout
    };
    assert_eq!(on("linux/arm64", "mp/app:1"), "aarch64\n");
    assert_eq!(on("linux/amd64", "mp/app:1"), "x86_64\n");

    // The same image as from a file that names no platforms anywhere.
    let plain: String = TOML_SPEC
        .replace("platforms = [\"linux/amd64\", \"linux/arm64\"]\n", "")
        .replace("mp/app:1", "mp/app:plain");
    let solo = env.write_tree("solo", &[("strata.toml", plain.as_str())]);
    std::fs::copy(&host_bb, solo.join("busybox-amd64")).unwrap();
    let out = build("solo-root", &solo, &["--target", "native"]);
    assert_eq!(built_digest(&out), native_digest);

    // `--platform` overrides both images' platforms.
    let out = build("root", &ctx, &["--platform", "linux/arm64"]);
    assert!(out.stdout.contains("mp/native:1"), "{}", out.stdout);
    for image in ["mp/app:1", "mp/native:1"] {
        let img = inspect(&env, image);
        assert_eq!(img["Architecture"], "arm64", "{img}");
        assert!(img.get("Platforms").is_none(), "{img}");
    }

    // Images for platforms of which this host is none, on a base that is
    // an index of those only.
    let foreign = |from: &str, tag: &str| {
        format!(
            "[stage.f]\nfrom = \"{from}\"\nsteps = [{{ copy = [\"strata.toml\"], to = \"/{tag}\" }}]\n\n\
             [image.f]\ntags = [\"mp/{tag}:1\"]\nplatforms = [\"linux/arm64\", \"linux/s390x\"]\n"
        )
    };
    let f = env.write_tree("foreign", &[("strata.toml", &foreign("scratch", "base"))]);
    build("root", &f, &[]);
    std::fs::write(f.join("strata.toml"), foreign("mp/base:1", "on-base")).unwrap();
    build("root", &f, &[]);
    let img = inspect(&env, "mp/on-base:1");
    assert_eq!(
        img["Platforms"],
        serde_json::json!(["linux/arm64", "linux/s390x"]),
        "{img}"
    );

    // Bad lists: errors at their spans, all of them.
    let bad = TOML_SPEC.replace(
        "platforms = [\"linux/amd64\", \"linux/arm64\"]",
        "platforms = [\"linux/\", \"linux/amd64\", \"linux/x86_64\"]",
    );
    std::fs::write(ctx.join("strata.toml"), bad).unwrap();
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert!(!out.ok);
    for (what, at) in [
        ("bad platform `linux/`", "strata.toml:11:14"),
        ("platform linux/amd64 is named twice", "strata.toml:11:39"),
    ] {
        assert!(
            out.stderr.contains(what) && out.stderr.contains(at),
            "{what} at {at}: {}",
            out.stderr
        );
    }
    let empty = TOML_SPEC.replace(
        "platforms = [\"linux/amd64\", \"linux/arm64\"]",
        "platforms = []",
    );
    std::fs::write(ctx.join("strata.toml"), empty).unwrap();
    let out = run(env.strata("root").arg("build").arg(&ctx));
    assert!(
        !out.ok && out.stderr.contains("`platforms` is empty"),
        "{}",
        out.stderr
    );
}

//! A real `strata build` of a Dockerfile and of its `strata convert` output
//! gives the same image (manifest digest).

mod common;

use std::path::Path;

use common::{TestEnv, busybox, is_root, metadata, run_ok};

fn build(env: &TestEnv, ctx: &Path, file: &Path, meta: &str, extra: &[&str]) -> serde_json::Value {
    let meta = env.path(meta);
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(ctx)
            .arg("-f")
            .arg(file)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(&meta)
            .args(extra),
    );
    metadata(&meta)
}

#[test]
fn dockerfile_and_converted_toml_build_the_same_image() {
    let test = "dockerfile_and_converted_toml_build_the_same_image";
    if !is_root() {
        eprintln!("SKIP {test}: RUN steps need root");
        return;
    }
    let Some(bb) = busybox(test) else { return };
    let env = TestEnv::new();
    // The base the bench scenarios use, built from scratch.
    let base = env.write_tree(
        "base",
        &[(
            "strata.toml",
            "[stage.busybox]\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"busybox\"], to = \"/bin/busybox\", chmod = \"0755\" },\n  { run = [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"] },\n]\n",
        )],
    );
    std::fs::copy(&bb, base.join("busybox")).expect("copy busybox");
    build(
        &env,
        &base,
        &base.join("strata.toml"),
        "base.json",
        &["-t", "localhost:5000/busybox:1"],
    );

    // deep-chain's Dockerfile with a small generated context.
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/bench/scenarios/deep-chain/Dockerfile");
    let text = match std::fs::read_to_string(&dockerfile) {
        Ok(t) => t,
        Err(_) => {
            eprintln!("SKIP {test}: ../shared/bench is absent");
            return;
        }
    };
    let mut files: Vec<(String, String)> = (3..=48)
        .step_by(3)
        .map(|i| (format!("tiny/f{i}"), format!("tiny file {i}\n")))
        .collect();
    files.push(("last/stamp".into(), "stamp 0\n".into()));
    files.push(("Dockerfile".into(), text));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ctx = env.write_tree("ctx", &refs);

    let m1 = build(&env, &ctx, &ctx.join("Dockerfile"), "m1.json", &[]);
    let out = run_ok(
        env.strata("root")
            .arg("convert")
            .arg(ctx.join("Dockerfile"))
            .arg("-o")
            .arg(ctx.join("strata.toml")),
    );
    assert!(out.ok);
    let m2 = build(&env, &ctx, &ctx.join("strata.toml"), "m2.json", &[]);
    assert!(m1["image"]["digest"].is_string(), "{m1}");
    assert_eq!(m1["image"]["digest"], m2["image"]["digest"]);
    // Same IR, same cache keys: the converted spec is all cache hits.
    assert_eq!(m2["cache"]["misses"], 0, "{m2}");
}

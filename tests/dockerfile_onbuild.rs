//! ONBUILD triggers, with Docker's semantics: a stage whose base (an image,
//! or an earlier stage) has triggers runs them first, and its own config
//! keeps none of its base's OnBuild. A TOML spec does not run a base's
//! triggers, but drops them from the config the same way; `convert` writes
//! a stage base's triggers as steps, so the conversion builds the same
//! image. The fixtures have no RUN step: no root needed.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::{TestEnv, metadata, run_ok};

/// Builds `file` in `ctx` and returns the metadata of the build.
fn build(env: &TestEnv, ctx: &Path, file: &Path, meta: &str, extra: &[&str]) -> serde_json::Value {
    let meta = env.path(meta);
    let out = run_ok(
        env.strata("root")
            .arg("build")
            .arg(ctx)
            .arg("-f")
            .arg(file)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(&meta)
            .args(extra),
    );
    let mut m = metadata(&meta);
    m["stderr"] = out.stderr.into();
    m
}

fn blob(env: &TestEnv, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(env.path("root").join("blobs/sha256").join(hex)).expect("blob")
}

/// The config (its `config` object) and the regular files (path ->
/// content) of the image a build produced.
fn image(env: &TestEnv, meta: &serde_json::Value) -> (serde_json::Value, BTreeMap<String, String>) {
    let digest = meta["image"]["digest"].as_str().expect("digest");
    let manifest: serde_json::Value = serde_json::from_slice(&blob(env, digest)).expect("manifest");
    let config_digest = manifest["config"]["digest"].as_str().expect("config");
    let config: serde_json::Value =
        serde_json::from_slice(&blob(env, config_digest)).expect("config json");
    let mut files = BTreeMap::new();
    for l in manifest["layers"].as_array().expect("layers") {
        let bytes = blob(env, l["digest"].as_str().expect("layer digest"));
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .expect("gunzip layer");
        let mut archive = tar::Archive::new(&plain[..]);
        for e in archive.entries().expect("tar") {
            let mut e = e.expect("entry");
            if e.header().entry_type().is_file() {
                let path = format!("/{}", e.path().expect("path").display());
                let mut s = String::new();
                e.read_to_string(&mut s).expect("content");
                files.insert(path, s);
            }
        }
    }
    (config["config"].clone(), files)
}

fn env_of(c: &serde_json::Value) -> Vec<String> {
    c["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn onbuild_of(c: &serde_json::Value) -> Option<Vec<String>> {
    c.get("OnBuild")
        .and_then(|o| o.as_array())
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str())
                .map(String::from)
                .collect()
        })
}

const STAGES: &str = "\
FROM scratch AS parent
COPY a.txt /parent.txt
ONBUILD COPY a.txt /from-trigger.txt
ONBUILD ENV TRIGGERED=yes
LABEL parent=1

FROM parent AS child
ONBUILD LABEL own=1
LABEL child=1

FROM child AS grandchild
LABEL grandchild=1
";

#[test]
fn stage_base_runs_its_triggers_and_the_child_drops_them() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[("Dockerfile", STAGES), ("a.txt", "from the context\n")],
    );
    let df = ctx.join("Dockerfile");
    let pmeta = build(&env, &ctx, &df, "p.json", &["--target", "parent"]);
    let (parent, parent_files) = image(&env, &pmeta);
    assert_eq!(
        onbuild_of(&parent),
        Some(vec![
            "COPY a.txt /from-trigger.txt".to_string(),
            "ENV TRIGGERED=yes".to_string()
        ]),
        "{parent}"
    );
    assert!(!env_of(&parent).contains(&"TRIGGERED=yes".to_string()));
    assert!(!parent_files.contains_key("/from-trigger.txt"));

    // The child ran the parent's triggers and keeps only its own ONBUILD.
    let cmeta = build(&env, &ctx, &df, "c.json", &["--target", "child"]);
    let (child, child_files) = image(&env, &cmeta);
    assert_eq!(onbuild_of(&child), Some(vec!["LABEL own=1".to_string()]));
    assert!(
        env_of(&child).contains(&"TRIGGERED=yes".to_string()),
        "{child}"
    );
    assert_eq!(
        child_files.get("/from-trigger.txt").map(String::as_str),
        Some("from the context\n")
    );
    assert!(child["Labels"].get("own").is_none(), "{child}");

    // The grandchild ran the child's trigger only, and has no OnBuild.
    let gmeta = build(&env, &ctx, &df, "g.json", &["--target", "grandchild"]);
    let (grand, _) = image(&env, &gmeta);
    assert_eq!(onbuild_of(&grand), None, "{grand}");
    assert_eq!(grand["Labels"]["own"], "1", "{grand}");
    assert_eq!(grand["Labels"]["parent"], "1", "{grand}");

    // Its conversion builds the same images: the triggers are steps there.
    let toml = env.path("converted.toml");
    let out = run_ok(
        env.strata("root")
            .arg("convert")
            .arg(&df)
            .arg("-o")
            .arg(&toml),
    );
    let text = std::fs::read_to_string(&toml).expect("converted");
    assert!(
        text.contains("# ONBUILD trigger of stage parent\n  { copy = [\"a.txt\"], to = \"/from-trigger.txt\" },"),
        "{text}"
    );
    assert!(!out.stderr.contains("ONBUILD"), "{}", out.stderr);
    let spec = ctx.join("strata.converted.toml");
    std::fs::copy(&toml, &spec).expect("copy spec");
    for (target, df_meta) in [
        ("parent", &pmeta),
        ("child", &cmeta),
        ("grandchild", &gmeta),
    ] {
        let m = build(
            &env,
            &ctx,
            &spec,
            &format!("{target}.json"),
            &["--target", target],
        );
        assert_eq!(m["image"]["digest"], df_meta["image"]["digest"], "{text}");
        assert_eq!(m["cache"]["misses"], 0, "{m}");
    }
}

#[test]
fn image_base_triggers_run_in_a_dockerfile_and_never_carry_over() {
    let env = TestEnv::new();
    let parent = env.write_tree(
        "parent",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY a.txt /parent.txt\nONBUILD COPY a.txt /from-trigger.txt\nONBUILD ENV TRIGGERED=yes\n",
            ),
            ("a.txt", "parent context\n"),
        ],
    );
    let pm = build(
        &env,
        &parent,
        &parent.join("Dockerfile"),
        "p.json",
        &["-t", "localhost/onbuild-parent:1"],
    );
    let (pc, _) = image(&env, &pm);
    assert_eq!(onbuild_of(&pc).map(|v| v.len()), Some(2), "{pc}");

    let child = env.write_tree(
        "child",
        &[
            (
                "Dockerfile",
                "FROM localhost/onbuild-parent:1\nLABEL child=1\n",
            ),
            (
                "strata.toml",
                "[stage.app]\nfrom = \"localhost/onbuild-parent:1\"\nsteps = [{ label = { child = \"1\" } }]\n",
            ),
            ("a.txt", "child context\n"),
        ],
    );
    // Dockerfile: the triggers run against the child's context.
    let (c, files) = image(
        &env,
        &build(&env, &child, &child.join("Dockerfile"), "c.json", &[]),
    );
    assert_eq!(onbuild_of(&c), None, "{c}");
    assert!(env_of(&c).contains(&"TRIGGERED=yes".to_string()), "{c}");
    assert_eq!(
        files.get("/from-trigger.txt").map(String::as_str),
        Some("child context\n")
    );

    // TOML: the triggers do not run (a warning says so), and the OnBuild
    // of the base is dropped all the same.
    let tm = build(
        &env,
        &child,
        &child.join("strata.toml"),
        "t.json",
        &["--target", "app"],
    );
    let stderr = tm["stderr"].as_str().unwrap_or_default().to_string();
    assert!(
        stderr.contains("the base image has ONBUILD instructions"),
        "{stderr}"
    );
    let (t, tfiles) = image(&env, &tm);
    assert_eq!(onbuild_of(&t), None, "{t}");
    assert!(!env_of(&t).contains(&"TRIGGERED=yes".to_string()), "{t}");
    assert!(!tfiles.contains_key("/from-trigger.txt"));
}

#[test]
fn a_toml_stage_without_steps_drops_its_base_stage_onbuild() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[(
            "strata.toml",
            "[stage.parent]\nfrom = \"scratch\"\nsteps = [{ env = { A = \"1\" } }]\nonbuild = [\"ENV B=2\"]\n\n\
             [stage.bare]\nfrom = \"parent\"\n",
        )],
    );
    let spec = ctx.join("strata.toml");
    let (p, _) = image(
        &env,
        &build(&env, &ctx, &spec, "p.json", &["--target", "parent"]),
    );
    assert_eq!(onbuild_of(&p), Some(vec!["ENV B=2".to_string()]), "{p}");
    let (b, _) = image(
        &env,
        &build(&env, &ctx, &spec, "b.json", &["--target", "bare"]),
    );
    assert_eq!(onbuild_of(&b), None, "{b}");
    assert!(env_of(&b).contains(&"A=1".to_string()), "{b}");
}

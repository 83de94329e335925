//! Every Dockerfile we ship or benchmark (`examples/*/Dockerfile`,
//! `../shared/bench/scenarios/*/Dockerfile`) builds to the same image
//! (manifest digest) as its `strata convert` output, in one store.

mod common;

use std::path::{Path, PathBuf};

use common::{TestEnv, busybox, copy_tree, is_root, metadata, run_ok};

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

/// The base the bench scenarios name, built from scratch with busybox.
fn build_bench_base(env: &TestEnv, bb: &Path) {
    let base = env.write_tree(
        "base",
        &[(
            "strata.toml",
            "[stage.busybox]\nfrom = \"scratch\"\nsteps = [\n  { copy = [\"busybox\"], to = \"/bin/busybox\", chmod = \"0755\" },\n  { run = [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"] },\n]\n",
        )],
    );
    std::fs::copy(bb, base.join("busybox")).expect("copy busybox");
    build(
        env,
        &base,
        &base.join("strata.toml"),
        "base.json",
        &["-t", "localhost:5000/busybox:1"],
    );
}

/// Context sources named by the Dockerfile's `COPY`/`ADD` lines that read
/// the build context (no `--from`): every argument but the destination.
fn context_sources(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(kw) = words.next() else { continue };
        if !kw.eq_ignore_ascii_case("COPY") && !kw.eq_ignore_ascii_case("ADD") {
            continue;
        }
        let words: Vec<&str> = words.collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let args: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        if let Some((_dest, srcs)) = args.split_last() {
            out.extend(srcs.iter().map(|s| s.to_string()));
        }
    }
    out
}

/// A small context for a read-only scenario dir: its Dockerfile, unchanged,
/// plus a small file (or a dir of two files for `dir/`) per COPY source.
fn scenario_context(env: &TestEnv, name: &str, dockerfile: &Path) -> PathBuf {
    let text = std::fs::read_to_string(dockerfile).expect("read scenario Dockerfile");
    let ctx = env.path(&format!("scenarios/{name}"));
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(ctx.join("Dockerfile"), &text).expect("write Dockerfile");
    for src in context_sources(&text) {
        assert!(
            !src.contains("..") && !src.starts_with('/') && !src.contains('*'),
            "{name}: unexpected COPY source {src}"
        );
        let p = ctx.join(src.trim_end_matches('/'));
        if src.ends_with('/') {
            std::fs::create_dir_all(p.join("sub")).expect("mkdir");
            std::fs::write(p.join("one.txt"), format!("{name} {src} one\n")).expect("write");
            std::fs::write(p.join("sub/two.txt"), format!("{name} {src} two\n")).expect("write");
        } else {
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, format!("{name} {src}\n")).expect("write");
        }
    }
    ctx
}

/// (name, context dir) for every Dockerfile to check.
fn contexts(env: &TestEnv, bb: &Path, test: &str) -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    examples.sort();
    for src in examples {
        let name = src.file_name().expect("name").to_string_lossy().to_string();
        let dst = env.path(&format!("examples/{name}"));
        std::fs::create_dir_all(&dst).expect("mkdir");
        copy_tree(&src, &dst);
        // The examples expect a static busybox beside them (not checked in).
        if !dst.join("busybox").exists() {
            std::fs::copy(bb, dst.join("busybox")).expect("copy busybox");
        }
        out.push((format!("examples/{name}"), dst));
    }
    let scenarios = root.join("../shared/bench/scenarios");
    match std::fs::read_dir(&scenarios) {
        Err(_) => eprintln!("SKIP {test} (bench scenarios): ../shared/bench is absent"),
        Ok(rd) => {
            let mut dirs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("Dockerfile").is_file())
                .collect();
            dirs.sort();
            for d in dirs {
                let name = d.file_name().expect("name").to_string_lossy().to_string();
                let ctx = scenario_context(env, &name, &d.join("Dockerfile"));
                out.push((format!("scenarios/{name}"), ctx));
            }
        }
    }
    out
}

#[test]
fn every_dockerfile_builds_like_its_conversion() {
    let test = "every_dockerfile_builds_like_its_conversion";
    if !is_root() {
        eprintln!("SKIP {test}: RUN steps need root");
        return;
    }
    let Some(bb) = busybox(test) else { return };
    let env = TestEnv::new();
    build_bench_base(&env, &bb);
    let all = contexts(&env, &bb, test);
    assert!(!all.is_empty(), "no Dockerfile found");
    let mut checked = Vec::new();
    for (i, (name, ctx)) in all.iter().enumerate() {
        let from_df = build(
            &env,
            ctx,
            &ctx.join("Dockerfile"),
            &format!("df-{i}.json"),
            &[],
        );
        let toml = env.path(&format!("converted-{i}.toml"));
        run_ok(
            env.strata("root")
                .arg("convert")
                .arg(ctx.join("Dockerfile"))
                .arg("-o")
                .arg(&toml),
        );
        // The converted spec sits in the context like a strata.toml would.
        let spec = ctx.join("strata.converted.toml");
        std::fs::copy(&toml, &spec).expect("copy converted spec");
        let from_toml = build(&env, ctx, &spec, &format!("toml-{i}.json"), &[]);
        let d1 = &from_df["image"]["digest"];
        assert!(d1.is_string(), "{name}: {from_df}");
        assert_eq!(
            d1,
            &from_toml["image"]["digest"],
            "{name}: the Dockerfile and its conversion give different images\n{}",
            std::fs::read_to_string(&toml).unwrap_or_default()
        );
        // Same IR, same cache keys: the second build is all cache hits.
        assert_eq!(from_toml["cache"]["misses"], 0, "{name}: {from_toml}");
        eprintln!("ok {name}: {d1}");
        checked.push(name.clone());
    }
    eprintln!("{} Dockerfiles checked: {checked:?}", checked.len());
}

#[test]
fn context_sources_reads_copy_and_add_lines() {
    let text = "FROM x\nCOPY a b/ /dst/\ncopy --chmod=644 c /d\nCOPY --from=s /x /y\nADD e.tar /\nRUN COPY f g\n";
    assert_eq!(context_sources(text), ["a", "b/", "c", "e.tar"]);
}

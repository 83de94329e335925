//! Which frontend reads a spec: `*.toml` is a strata spec, any other `-f`
//! file a Dockerfile, `--frontend` forces one; without `-f` the context's
//! strata.toml, then Containerfile, then Dockerfile.

mod common;

use std::path::Path;

use common::*;

fn dockerfile(marker: &str) -> String {
    format!("FROM scratch\nCOPY a.txt /{marker}\n")
}

fn toml(marker: &str) -> String {
    format!(
        "[stage.s]\nfrom = \"scratch\"\nsteps = [{{ copy = [\"a.txt\"], to = \"/{marker}\" }}]\n\n\
         [image.s]\nstage = \"s\"\n"
    )
}

/// `strata graph CTX [ARGS]`: its output.
fn graph(env: &TestEnv, ctx: &Path, args: &[&str]) -> Output {
    run(env.strata("store").arg("graph").arg(ctx).args(args))
}

#[test]
fn every_non_toml_file_name_is_a_dockerfile() {
    let env = TestEnv::new();
    let names = [
        "Dockerfile",
        "Dockerfile.prod",
        "prod.dockerfile",
        "app.Dockerfile",
        "Containerfile",
        "build.df",
        "anything",
    ];
    let mut files: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("d/{n}"), dockerfile(&format!("m{i}"))))
        .collect();
    files.push(("a.txt".into(), "a\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let ctx = env.write_tree("ctx", &refs);
    for (i, n) in names.iter().enumerate() {
        let f = ctx.join("d").join(n);
        let out = graph(&env, &ctx, &["-f", f.to_str().unwrap()]);
        assert!(out.ok, "{n}: {}", out.stderr);
        assert!(
            out.stdout.contains(&format!("/m{i}")),
            "{n}: {}",
            out.stdout
        );
    }
}

#[test]
fn toml_by_extension_and_frontend_forces_either() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("a.txt", "a\n"),
            ("spec.toml", toml("t1").as_str()),
            ("odd.toml", dockerfile("d1").as_str()),
            ("spec.txt", toml("t2").as_str()),
        ],
    );
    let f = |n: &str| ctx.join(n).display().to_string();
    let out = graph(&env, &ctx, &["-f", &f("spec.toml")]);
    assert!(out.ok && out.stdout.contains("/t1"), "{}", out.stderr);
    // A Dockerfile named .toml is a TOML error, unless forced.
    let out = graph(&env, &ctx, &["-f", &f("odd.toml")]);
    assert!(!out.ok, "{}", out.stdout);
    let out = graph(
        &env,
        &ctx,
        &["-f", &f("odd.toml"), "--frontend", "dockerfile"],
    );
    assert!(out.ok && out.stdout.contains("/d1"), "{}", out.stderr);
    // A TOML spec with another name is a Dockerfile error, unless forced.
    let out = graph(&env, &ctx, &["-f", &f("spec.txt")]);
    assert!(!out.ok, "{}", out.stdout);
    let out = graph(&env, &ctx, &["-f", &f("spec.txt"), "--frontend", "toml"]);
    assert!(out.ok && out.stdout.contains("/t2"), "{}", out.stderr);
}

#[test]
fn without_f_strata_toml_then_containerfile_then_dockerfile() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("a.txt", "a\n"),
            ("strata.toml", toml("from-toml").as_str()),
            ("Containerfile", dockerfile("from-containerfile").as_str()),
            ("Dockerfile", dockerfile("from-dockerfile").as_str()),
        ],
    );
    let picked = |want: &str| {
        let out = graph(&env, &ctx, &[]);
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains(want), "want {want}: {}", out.stdout);
    };
    picked("/from-toml");
    std::fs::remove_file(ctx.join("strata.toml")).unwrap();
    picked("/from-containerfile");
    std::fs::remove_file(ctx.join("Containerfile")).unwrap();
    picked("/from-dockerfile");
    std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
    let out = graph(&env, &ctx, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("looked for strata.toml, Containerfile, Dockerfile"),
        "{}",
        out.stderr
    );
    // `build` makes the same choice and says the same.
    let out = run(env.strata("store").arg("build").arg(&ctx));
    assert!(out.stderr.contains("Containerfile"), "{}", out.stderr);
}

/// A context holding only a Containerfile (podman's and buildah's name)
/// builds and tags its image.
#[test]
fn a_containerfile_builds() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("a.txt", "a\n"),
            ("Containerfile", "FROM scratch\nCOPY a.txt /a.txt\n"),
        ],
    );
    let out = run_ok(env.strata("store").arg("build").arg(&ctx).args([
        "-t",
        "cf:1",
        "--progress",
        "plain",
    ]));
    assert!(out.stdout.contains("cf:1"), "{}", out.stdout);
}

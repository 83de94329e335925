//! Everyday registry use against a real `docker-registry`: `strata login` /
//! `logout` with htpasswd authentication, and Docker Hub names served by a
//! mirror configured in `registries.conf` (nothing leaves the machine).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::registry::Registry;
use common::*;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// A registry that wants `alice`'s password, or `None` (skipped) without
/// `htpasswd` (apache2-utils) or docker-registry.
fn auth_registry(env: &TestEnv, test: &str) -> Option<Registry> {
    if !have_tool("htpasswd", test) {
        return None;
    }
    let out = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
    let file = env.path("htpasswd");
    std::fs::write(&file, out.stdout.trim()).unwrap();
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
        file.display()
    );
    Registry::start_with(env, test, &extra)
}

fn login(env: &TestEnv, docker_config: &Path, host: &str, password: &str) -> Output {
    let mut child = env
        .strata("store")
        .args(["login", host, "-u", USER, "--password-stdin"])
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    Output::from(child.wait_with_output().unwrap())
}

/// A tiny image built from scratch and tagged `name`.
fn small_image(env: &TestEnv, root: &str, name: &str) {
    let spec = format!(
        "[stage.app]\nfrom = \"scratch\"\nsteps = [{{ copy = [\"a.txt\"], to = \"/a.txt\" }}]\n\n\
         [image.app]\nstage = \"app\"\ntags = [\"{name}\"]\n"
    );
    let ctx = env.write_tree(
        &format!("{root}-ctx"),
        &[("a.txt", "hello\n"), ("strata.toml", spec.as_str())],
    );
    run_ok(
        env.strata(root)
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"]),
    );
}

#[test]
fn login_checks_the_password_then_push_uses_it_and_logout_forgets_it() {
    let t = "login_checks_the_password_then_push_uses_it_and_logout_forgets_it";
    let env = TestEnv::new();
    let Some(reg) = auth_registry(&env, t) else {
        return;
    };
    let host = reg.host();
    let cfg_dir = env.path("docker");

    // A wrong password is refused and nothing is written.
    let bad = login(&env, &cfg_dir, &host, "wrong");
    assert!(
        !bad.ok,
        "login with a wrong password succeeded:\n{}",
        bad.stdout
    );
    assert!(
        bad.stderr.contains("incorrect username or password"),
        "{}",
        bad.stderr
    );
    assert!(!cfg_dir.join("config.json").exists());

    let good = login(&env, &cfg_dir, &host, PASSWORD);
    assert!(good.ok, "{}", good.stderr);
    assert!(good.stdout.contains("Login Succeeded"), "{}", good.stdout);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg_dir.join("config.json")).unwrap()).unwrap();
    assert!(cfg["auths"][&host]["auth"].is_string(), "{cfg}");
    assert!(!good.stderr.contains(PASSWORD) && !good.stdout.contains(PASSWORD));

    // The saved credentials are what push uses.
    small_image(&env, "store", "app:1");
    let dest = format!("{host}/app:1");
    run_ok(
        env.strata("store")
            .args(["push", "app:1", &dest, "--progress", "plain"])
            .env("DOCKER_CONFIG", &cfg_dir),
    );

    let out = run_ok(
        env.strata("store")
            .args(["logout", &host])
            .env("DOCKER_CONFIG", &cfg_dir),
    );
    assert!(
        out.stdout.contains("Removing login credentials"),
        "{}",
        out.stdout
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg_dir.join("config.json")).unwrap()).unwrap();
    assert!(cfg["auths"].get(&host).is_none(), "{cfg}");

    // Logged out, the registry refuses the pull.
    let out = run(env
        .strata("other")
        .args(["pull", &dest, "--progress", "plain"])
        .env("DOCKER_CONFIG", &cfg_dir));
    assert!(!out.ok, "pull without credentials succeeded");
    let again = run_ok(
        env.strata("store")
            .args(["logout", &host])
            .env("DOCKER_CONFIG", &cfg_dir),
    );
    assert!(again.stdout.contains("Not logged in"), "{}", again.stdout);
}

#[test]
fn docker_hub_names_are_pulled_from_the_configured_mirror() {
    let t = "docker_hub_names_are_pulled_from_the_configured_mirror";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let host = reg.host();
    // The mirror holds Hub's `library/debian:bookworm` under `hub/`.
    small_image(&env, "seed", "seed:1");
    run_ok(env.strata("seed").args([
        "push",
        "seed:1",
        &format!("{host}/hub/library/debian:bookworm"),
        "--progress",
        "plain",
    ]));
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\n\
             [[registry]]\nlocation = \"docker.io\"\n\n\
             [[registry.mirror]]\nlocation = \"{host}/hub\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let out = run_ok(
        env.strata("store")
            .args(["pull", "debian:bookworm", "--progress", "plain"])
            .env("STRATA_REGISTRIES_CONF", &conf),
    );
    assert!(
        reg.count(&["GET /v2/hub/library/debian/manifests/bookworm"]) >= 1,
        "the mirror was not asked:\n{}",
        out.stderr
    );
    let images = run_ok(env.strata("store").arg("images"));
    assert!(images.stdout.contains("debian"), "{}", images.stdout);

    // A blocked registry is refused before any request.
    std::fs::write(
        &conf,
        "[[registry]]\nprefix = \"docker.io/library/debian\"\nblocked = true\n",
    )
    .unwrap();
    let before = reg.count(&["GET /v2/"]);
    let out = run(env
        .strata("fresh")
        .args(["pull", "debian:bookworm", "--progress", "plain"])
        .env("STRATA_REGISTRIES_CONF", &conf));
    assert!(!out.ok);
    assert!(out.stderr.contains("blocked"), "{}", out.stderr);
    assert_eq!(reg.count(&["GET /v2/"]), before);
}

/// `FROM debian:bookworm` in a Dockerfile is Docker Hub's
/// `library/debian`: a build pulls it on first use through the mirror,
/// later builds use the stored copy (any spelling of the name), and
/// `--pull` asks the registry again.
#[test]
fn a_build_pulls_a_docker_hub_base_through_the_mirror_on_first_use() {
    let t = "a_build_pulls_a_docker_hub_base_through_the_mirror_on_first_use";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let host = reg.host();
    small_image(&env, "seed", "seed:1");
    run_ok(env.strata("seed").args([
        "push",
        "seed:1",
        &format!("{host}/hub/library/debian:bookworm"),
        "--progress",
        "plain",
    ]));
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"docker.io\"\n\n\
             [[registry.mirror]]\nlocation = \"{host}/hub\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let ctx = env.write_tree(
        "ctx",
        &[
            ("Dockerfile", "FROM debian:bookworm\nCOPY b.txt /b.txt\n"),
            ("b.txt", "b\n"),
        ],
    );
    let manifests = ["GET /v2/hub/library/debian/manifests/bookworm"];
    let build = |extra: &[&str]| {
        run_ok(
            env.strata("store")
                .arg("build")
                .arg(&ctx)
                .args(["--progress", "plain", "-t", "app:1"])
                .args(extra)
                .env("STRATA_REGISTRIES_CONF", &conf),
        )
    };
    let first = build(&[]);
    assert_eq!(reg.count(&manifests), 1, "pulled once:\n{}", first.stderr);
    assert!(first.stdout.contains("app:1"), "{}", first.stdout);
    let images = run_ok(env.strata("store").arg("images"));
    assert!(
        images
            .stdout
            .lines()
            .any(|l| l.starts_with("debian ") && l.contains("bookworm")),
        "{}",
        images.stdout
    );
    // Stored: no request, whichever Hub spelling names it.
    build(&[]);
    let spec = "[stage.s]\nfrom = \"docker.io/library/debian:bookworm\"\n\
                steps = [{ copy = [\"b.txt\"], to = \"/c.txt\" }]\n\n[image.s]\nstage = \"s\"\n";
    std::fs::write(ctx.join("strata.toml"), spec).unwrap();
    run_ok(
        env.strata("store")
            .arg("build")
            .arg(&ctx)
            .args(["-f"])
            .arg(ctx.join("strata.toml"))
            .args(["--progress", "plain"])
            .env("STRATA_REGISTRIES_CONF", &conf),
    );
    assert_eq!(reg.count(&manifests), 1, "the stored base is used");
    build(&["--pull"]);
    assert_eq!(reg.count(&manifests), 2, "--pull asks again");
    // Inspect shows where the image came from and went, as docker does.
    let repo_digests = |name: &str| -> Vec<String> {
        let out = run_ok(env.strata("store").args(["inspect", name]));
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v[0]["RepoDigests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let pulled = repo_digests("debian:bookworm");
    assert_eq!(pulled.len(), 1, "{pulled:?}");
    assert!(pulled[0].starts_with("debian@sha256:"), "{pulled:?}");
    let out = run_ok(env.strata("seed").args(["inspect", "seed:1"]));
    assert!(
        out.stdout
            .contains(&format!("{host}/hub/library/debian@sha256:")),
        "{}",
        out.stdout
    );
    // `run` and `tag` take the same names.
    run_ok(
        env.strata("store")
            .args(["tag", "library/debian:bookworm", "mine:1"]),
    );
    let inspect = run_ok(env.strata("store").args(["inspect", "mine:1"]));
    assert!(inspect.stdout.contains("mine:1"), "{}", inspect.stdout);
}

/// A base that is neither stored nor pullable fails with one message that
/// says how to get it.
#[test]
fn a_missing_base_says_how_to_get_it() {
    let t = "a_missing_base_says_how_to_get_it";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"docker.io\"\n\n\
             [[registry.mirror]]\nlocation = \"{}/hub\"\ninsecure = true\n",
            reg.host()
        ),
    )
    .unwrap();
    let ctx = env.write_tree("ctx", &[("Dockerfile", "FROM nosuch:1\n")]);
    let out = run(env
        .strata("store")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain"])
        .env("STRATA_REGISTRIES_CONF", &conf));
    assert!(!out.ok);
    for want in ["nosuch:1", "strata pull", "strata load"] {
        assert!(out.stderr.contains(want), "{want}:\n{}", out.stderr);
    }
}

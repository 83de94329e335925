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

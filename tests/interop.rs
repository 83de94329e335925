//! The bundled examples build, and real tools accept what strata writes:
//! skopeo, umoci, podman, and the OCI image-spec JSON schemas.

mod common;

use std::path::Path;

use common::*;

fn build_example(
    env: &TestEnv,
    name: &str,
    test: &str,
) -> Option<(std::path::PathBuf, serde_json::Value)> {
    let ctx = example(env, name, test)?;
    let meta = env.path(&format!("{name}-meta.json"));
    let oci = env.path(&format!("{name}-oci"));
    let ociar = env.path(&format!("{name}-oci.tar"));
    let docker = env.path(&format!("{name}-docker.tar"));
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(&meta)
            .arg("--output")
            .arg(format!("type=oci,dest={}", oci.display()))
            .arg("--output")
            .arg(format!("type=oci-archive,dest={}", ociar.display()))
            .arg("--output")
            .arg(format!("type=docker,dest={}", docker.display())),
    );
    Some((ctx, metadata(&meta)))
}

#[test]
fn examples_build_and_skopeo_reads_store_and_outputs() {
    const T: &str = "examples_build_and_skopeo_reads_store_and_outputs";
    let env = TestEnv::new();
    for (name, tag) in [
        ("multistage", "example/site:1.0"),
        ("hello", "example/hello:latest"),
    ] {
        let Some((_, meta)) = build_example(&env, name, T) else {
            continue;
        };
        let digest = meta["image"]["digest"].as_str().unwrap().to_string();
        if !have_tool("skopeo", T) {
            return;
        }
        // the store itself is an OCI layout
        let store_ref = format!("oci:{}:{tag}", env.path("root").display());
        let out =
            run_ok(std::process::Command::new("skopeo").args(["inspect", "--raw", &store_ref]));
        let manifest: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        let out = run_ok(std::process::Command::new("skopeo").args(["inspect", &store_ref]));
        let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(info["Digest"].as_str().unwrap(), digest);
        // the outputs
        let oci_ref = format!("oci:{}:{tag}", env.path(&format!("{name}-oci")).display());
        let out = run_ok(std::process::Command::new("skopeo").args(["inspect", &oci_ref]));
        let info2: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(info2["Digest"].as_str().unwrap(), digest);
        let ar = format!(
            "oci-archive:{}:{tag}",
            env.path(&format!("{name}-oci.tar")).display()
        );
        run_ok(std::process::Command::new("skopeo").args(["inspect", &ar]));
        let da = format!(
            "docker-archive:{}:{tag}",
            env.path(&format!("{name}-docker.tar")).display()
        );
        let out = run_ok(std::process::Command::new("skopeo").args(["inspect", "--config", &da]));
        let cfg: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert!(cfg["config"]["Cmd"].is_array(), "{cfg}");
    }
}

#[test]
fn umoci_unpacks_the_hello_image() {
    const T: &str = "umoci_unpacks_the_hello_image";
    if !have_tool("umoci", T) {
        return;
    }
    if !is_root() {
        eprintln!("SKIP {T}: umoci unpack needs root here");
        return;
    }
    let env = TestEnv::new();
    let Some(_) = build_example(&env, "hello", T) else {
        return;
    };
    let bundle = env.path("bundle");
    run_ok(
        std::process::Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!(
                "{}:example/hello:latest",
                env.path("root").display()
            ))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let script = std::fs::read_to_string(rootfs.join("app/hello.sh")).unwrap();
    assert!(script.contains("GREETING"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let env_list = config["process"]["env"].to_string();
    assert!(
        env_list.contains("GREETING=hello from strata"),
        "{env_list}"
    );
    assert_eq!(config["process"]["cwd"], "/app");
}

#[test]
fn podman_loads_the_docker_archive() {
    const T: &str = "podman_loads_the_docker_archive";
    if !have_tool("podman", T) {
        return;
    }
    let env = TestEnv::new();
    let Some(_) = build_example(&env, "multistage", T) else {
        return;
    };
    let proot = env.path("podman-root");
    let prun = env.path("podman-run");
    let out = run_ok(
        std::process::Command::new("podman")
            .arg("--root")
            .arg(&proot)
            .arg("--runroot")
            .arg(&prun)
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "file",
                "load",
                "-i",
            ])
            .arg(env.path("multistage-docker.tar")),
    );
    assert!(
        out.stdout.contains("example/site") || out.stderr.contains("example/site"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let out = run_ok(
        std::process::Command::new("podman")
            .arg("--root")
            .arg(&proot)
            .arg("--runroot")
            .arg(&prun)
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "file",
                "image",
                "inspect",
                "example/site:1.0",
            ]),
    );
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(info[0]["Config"]["User"], "1000:1000", "{info}");
    assert!(info[0]["Config"]["ExposedPorts"]["8080/tcp"].is_object());
}

/// Validates every JSON document of an OCI layout against the image-spec schemas.
fn validate_layout(layout: &Path, schemas: &Path) {
    let read = |p: &Path| std::fs::read(p).unwrap();
    validate_oci_json(
        schemas,
        "image-layout-schema.json",
        &read(&layout.join("oci-layout")),
    );
    let index_bytes = read(&layout.join("index.json"));
    validate_oci_json(schemas, "image-index-schema.json", &index_bytes);
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let manifest_bytes = read(&layout.join("blobs/sha256").join(hex));
        validate_oci_json(schemas, "image-manifest-schema.json", &manifest_bytes);
        let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let chex = manifest["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        validate_oci_json(
            schemas,
            "config-schema.json",
            &read(&layout.join("blobs/sha256").join(chex)),
        );
    }
}

#[test]
fn store_and_oci_output_validate_against_the_image_spec_schemas() {
    const T: &str = "store_and_oci_output_validate_against_the_image_spec_schemas";
    let Some(shared) = shared_dir(T) else { return };
    let schemas = shared.join("conformance/oci-image-spec-schema");
    let env = TestEnv::new();
    let Some(_) = build_example(&env, "multistage", T) else {
        return;
    };
    validate_layout(&env.path("root"), &schemas);
    validate_layout(&env.path("multistage-oci"), &schemas);
}

//! Images written by strata, checked with the real tools (skopeo, umoci,
//! podman) and the OCI JSON schemas; base images imported back from every
//! export kind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::validate_oci_json as validate;

use strata::digest::Digest;
use strata::ir::{BaseRef, MetaOp};
use strata::oci::{self, ExportImage, History, ImageConfig, OutputKind};
use strata::store::{Descriptor, Store, media_type};

const NAME: &str = "example/app:1.0";

/// A small layer: `hello.txt` and `etc/motd`, written with the tar crate.
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, b"");
    add("etc/motd", tar::EntryType::Regular, 0o644, b"welcome\n");
    add(
        "hello.txt",
        tar::EntryType::Regular,
        0o644,
        b"hello from strata\n",
    );
    b.into_inner().unwrap()
}

struct Built {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: Store,
    manifest: Descriptor,
    layer: Descriptor,
    diff_id: Digest,
}

/// A store holding one tagged image with one gzip layer.
fn build() -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let store = Store::open(&dir.join("root")).unwrap();
    let tar = layer_tar();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let digest = store.put_blob(&gz).unwrap();
    let layer = Descriptor::new(media_type::OCI_LAYER_GZIP, digest, gz.len() as u64);
    let mut config = ImageConfig::scratch(Some("1970-01-01T00:00:00Z".into()));
    config.rootfs.diff_ids.push(diff_id);
    config.history.push(History {
        created_by: Some("COPY hello.txt /".into()),
        ..Default::default()
    });
    config.apply(&MetaOp::Env(vec![("PATH".into(), "/bin".into())]));
    config.apply(&MetaOp::Cmd(vec!["/hello".into()]));
    config.apply(&MetaOp::Expose(vec!["8080".into()]));
    let manifest = oci::write_image(&store, &config, std::slice::from_ref(&layer)).unwrap();
    store.set_tag(NAME, &manifest).unwrap();
    Built {
        _tmp: tmp,
        dir,
        store,
        manifest,
        layer,
        diff_id,
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: `{tool}` is not installed");
    }
    ok
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn write_and_load_image_round_trip() {
    let b = build();
    let img = oci::load_image(&b.store, &b.manifest.digest).unwrap();
    assert_eq!(img.layers, vec![b.layer.clone()]);
    assert_eq!(img.config.rootfs.diff_ids, vec![b.diff_id]);
    assert_eq!(img.config.config.cmd, Some(vec!["/hello".to_string()]));
    assert_eq!(img.manifest.digest, b.manifest.digest);
    assert_eq!(img.manifest.size, b.manifest.size);
    // Writing the same image again gives the same digest.
    let again = oci::write_image(&b.store, &img.config, &img.layers).unwrap();
    assert_eq!(again.digest, b.manifest.digest);
    // resolve_base from a store tag
    let base = oci::resolve_base(
        &b.store,
        &BaseRef::Image {
            reference: NAME.into(),
        },
    )
    .unwrap();
    assert_eq!(base, img);
    let err = oci::resolve_base(
        &b.store,
        &BaseRef::Image {
            reference: "nope:1".into(),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("image nope:1 not found in the local store"),
        "{err}"
    );
}

#[test]
fn scratch_base_is_empty() {
    let b = build();
    let img = oci::resolve_base(&b.store, &BaseRef::Scratch).unwrap();
    assert!(img.layers.is_empty());
    assert_eq!(img.config.os, "linux");
}

#[test]
fn load_image_rejects_corrupt_manifest() {
    let b = build();
    let bad = b
        .store
        .put_blob(br#"{"schemaVersion":2,"config":7}"#)
        .unwrap();
    let e = oci::load_image(&b.store, &bad).unwrap_err();
    assert!(matches!(e, strata::error::Error::Corrupt { .. }), "{e}");
    let index = b
        .store
        .put_blob(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#)
        .unwrap();
    assert!(oci::load_image(&b.store, &index).is_err());
}

#[test]
fn skopeo_inspects_the_store() {
    if !have("skopeo") {
        return;
    }
    let b = build();
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{NAME}", b.store.root().display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Layers"], serde_json::json!([b.layer.digest.to_string()]));
    assert_eq!(v["Digest"], b.manifest.digest.to_string());
}

#[test]
fn umoci_unpacks_the_store() {
    if !have("umoci") {
        return;
    }
    if !is_root() {
        eprintln!("SKIP: umoci unpack needs root");
        return;
    }
    let b = build();
    let bundle = b.dir.join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{NAME}", b.store.root().display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from strata\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["/hello"]));
}

#[test]
fn docker_archive_loads_in_podman() {
    if !have("podman") {
        return;
    }
    let b = build();
    let file = b.dir.join("image.tar");
    let export = [ExportImage {
        manifest: b.manifest.clone(),
        names: vec![NAME.into()],
    }];
    oci::export(&b.store, &export, OutputKind::Docker, &file).unwrap();
    let proot = b.dir.join("podman-root");
    let prun = b.dir.join("podman-run");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&proot)
            .arg("--runroot")
            .arg(&prun)
            .arg("--storage-driver")
            .arg("vfs")
            .args(args);
        c
    };
    let out = run(&mut podman(&["load", "-i", file.to_str().unwrap()]));
    assert!(out.contains("example/app:1.0"), "{out}");
    let out = run(&mut podman(&["image", "inspect", "example/app:1.0"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[0]["RootFS"]["Layers"],
        serde_json::json!([b.diff_id.to_string()])
    );
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["/hello"]));

    // And back: a docker-archive written by podman (uncompressed layers,
    // legacy layout) imports as a base with the same diff_ids.
    let saved = b.dir.join("saved.tar");
    run(&mut podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        saved.to_str().unwrap(),
        NAME,
    ]));
    let t = tempfile::tempdir().unwrap();
    let fresh = Store::open(t.path()).unwrap();
    let img = oci::resolve_base(
        &fresh,
        &BaseRef::DockerArchive {
            path: saved,
            reference: Some(format!("localhost/{NAME}")),
        },
    )
    .unwrap();
    assert_eq!(img.config.rootfs.diff_ids, vec![b.diff_id]);
    assert_eq!(img.layers[0].media_type, media_type::OCI_LAYER);
    assert_eq!(img.layers[0].digest, b.diff_id);
}

#[test]
fn oci_archive_is_deterministic_and_inspectable() {
    let b = build();
    let file = b.dir.join("image-oci.tar");
    let export = [ExportImage {
        manifest: b.manifest.clone(),
        names: vec![NAME.into()],
    }];
    oci::export(&b.store, &export, OutputKind::OciArchive, &file).unwrap();
    let first = fs::read(&file).unwrap();
    oci::export(&b.store, &export, OutputKind::OciArchive, &file).unwrap();
    assert_eq!(
        first,
        fs::read(&file).unwrap(),
        "oci-archive not deterministic"
    );
    if !have("skopeo") {
        return;
    }
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:{NAME}", file.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Layers"], serde_json::json!([b.layer.digest.to_string()]));
}

#[test]
fn oci_layout_export_merges_names() {
    let b = build();
    let dest = b.dir.join("layout");
    let one = |names: &[&str]| {
        [ExportImage {
            manifest: b.manifest.clone(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }]
    };
    oci::export(&b.store, &one(&[NAME]), OutputKind::Oci, &dest).unwrap();
    oci::export(
        &b.store,
        &one(&["example/app:latest"]),
        OutputKind::Oci,
        &dest,
    )
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dest.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (e, name) in entries.iter().zip([NAME, "example/app:latest"]) {
        assert_eq!(e["annotations"]["org.opencontainers.image.ref.name"], name);
        assert_eq!(e["annotations"]["io.containerd.image.name"], name);
        assert_eq!(e["digest"], b.manifest.digest.to_string());
    }
    assert!(
        dest.join("blobs/sha256")
            .join(b.layer.digest.hex())
            .is_file()
    );
}

/// Imports `base` into a fresh store and checks it is the same image.
fn assert_imports(b: &Built, base: BaseRef) {
    let t = tempfile::tempdir().unwrap();
    let fresh = Store::open(t.path()).unwrap();
    let img = oci::resolve_base(&fresh, &base).unwrap_or_else(|e| panic!("{base:?}: {e}"));
    assert_eq!(img.config.rootfs.diff_ids, vec![b.diff_id], "{base:?}");
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.layers[0].digest, b.layer.digest, "{base:?}");
    assert_eq!(img.layers[0].media_type, media_type::OCI_LAYER_GZIP);
    assert_eq!(img.config.config.cmd, Some(vec!["/hello".to_string()]));
    for l in &img.layers {
        assert!(fresh.has_blob(&l.digest));
    }
    assert!(fresh.has_blob(&img.config_digest));
    assert!(fresh.has_blob(&img.manifest.digest));
}

#[test]
fn resolve_base_round_trips_every_export() {
    let b = build();
    let export = [ExportImage {
        manifest: b.manifest.clone(),
        names: vec![NAME.into()],
    }];
    let layout = b.dir.join("layout");
    let oci_ar = b.dir.join("oci.tar");
    let docker_ar = b.dir.join("docker.tar");
    oci::export(&b.store, &export, OutputKind::Oci, &layout).unwrap();
    oci::export(&b.store, &export, OutputKind::OciArchive, &oci_ar).unwrap();
    oci::export(&b.store, &export, OutputKind::Docker, &docker_ar).unwrap();
    for reference in [Some(NAME.to_string()), None] {
        assert_imports(
            &b,
            BaseRef::OciLayout {
                path: layout.clone(),
                reference: reference.clone(),
            },
        );
        assert_imports(
            &b,
            BaseRef::OciArchive {
                path: oci_ar.clone(),
                reference: reference.clone(),
            },
        );
        assert_imports(
            &b,
            BaseRef::DockerArchive {
                path: docker_ar.clone(),
                reference,
            },
        );
    }
    // The store itself is a layout too.
    assert_imports(
        &b,
        BaseRef::OciLayout {
            path: b.store.root().to_path_buf(),
            reference: Some(NAME.into()),
        },
    );
    let t = tempfile::tempdir().unwrap();
    let fresh = Store::open(t.path()).unwrap();
    let e = oci::resolve_base(
        &fresh,
        &BaseRef::OciLayout {
            path: layout,
            reference: Some("other:2".into()),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains(NAME), "error should list names: {e}");
}

#[test]
fn tampered_layout_blob_is_rejected_on_import() {
    let b = build();
    let layout = b.dir.join("layout");
    let export = [ExportImage {
        manifest: b.manifest.clone(),
        names: vec![],
    }];
    oci::export(&b.store, &export, OutputKind::Oci, &layout).unwrap();
    let blob = layout.join("blobs/sha256").join(b.layer.digest.hex());
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let t = tempfile::tempdir().unwrap();
    let fresh = Store::open(t.path()).unwrap();
    let e = oci::resolve_base(
        &fresh,
        &BaseRef::OciLayout {
            path: layout,
            reference: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, strata::error::Error::Corrupt { .. }), "{e}");
    assert!(!fresh.has_blob(&b.layer.digest));
}

// ---- schema conformance ----

fn schema_dir() -> Option<PathBuf> {
    let d =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/oci-image-spec-schema");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("SKIP: ../shared/conformance not found");
        None
    }
}

#[test]
fn written_json_matches_oci_schemas() {
    let Some(dir) = schema_dir() else { return };
    let b = build();
    let root = b.store.root();
    validate(
        &dir,
        "image-layout-schema.json",
        &fs::read(root.join("oci-layout")).unwrap(),
    );
    validate(
        &dir,
        "image-index-schema.json",
        &fs::read(root.join("index.json")).unwrap(),
    );
    let manifest = b.store.read_blob(&b.manifest.digest).unwrap();
    validate(&dir, "image-manifest-schema.json", &manifest);
    let img = oci::load_image(&b.store, &b.manifest.digest).unwrap();
    validate(
        &dir,
        "config-schema.json",
        &b.store.read_blob(&img.config_digest).unwrap(),
    );
    // The validator does reject a bad document.
    let v = common::oci_validator(&dir, "image-manifest-schema.json");
    assert!(!v.is_valid(&serde_json::json!({"schemaVersion": 3, "config": {}})));
}

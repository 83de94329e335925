//! `strata load` reads an archive once and unpacks its layers into their
//! snapshots while it loads (issue 12): a build's first RUN then stacks
//! them as they are; a corrupt archive leaves no snapshot and no blob it
//! did not verify.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::built::build;
use common::{TestEnv, busybox, is_root, run, run_ok};
use sha2::{Digest as _, Sha256};

fn sha256(b: &[u8]) -> String {
    let hex: String = Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn snapshot(env: &TestEnv, root: &str, diff_id: &str) -> PathBuf {
    env.path(root)
        .join("snapshots")
        .join(diff_id.strip_prefix("sha256:").unwrap())
}

fn snapshot_count(env: &TestEnv, root: &str) -> usize {
    std::fs::read_dir(env.path(root).join("snapshots")).map_or(0, |d| d.count())
}

fn blobs(env: &TestEnv, root: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.path(root).join("blobs/sha256"))
        .map(|d| {
            d.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The manifest digest and the config's diff_ids of `name` in `root`.
fn image(env: &TestEnv, root: &str, name: &str) -> (String, Vec<String>) {
    let out = run_ok(env.strata(root).args(["images", "--digests"]));
    let line = out
        .stdout
        .lines()
        .find(|l| {
            let (repo, tag) = name.split_once(':').unwrap();
            l.split_whitespace().take(2).eq([repo, tag])
        })
        .unwrap_or_else(|| panic!("{name} not in:\n{}", out.stdout));
    let digest = line.split_whitespace().nth(2).unwrap().to_string();
    let manifest = env.blob_json(root, &digest);
    let config = env.blob_json(root, manifest["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (digest, diff_ids)
}

#[test]
fn loaded_layers_are_snapshots_a_build_stacks_as_they_are() {
    const T: &str = "loaded_layers_are_snapshots_a_build_stacks_as_they_are";
    if !is_root() {
        eprintln!("SKIP {T}: RUN needs root");
        return;
    }
    let Some(bb) = busybox(T) else { return };
    let env = TestEnv::new();
    let ctx = env.path("base");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&bb, ctx.join("busybox")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nCOPY Dockerfile /etc/x\n",
    )
    .unwrap();
    let app = env.write_tree("app", &[("Dockerfile", "FROM t/base:1\nRUN true\n")]);
    for (compression, format) in [
        ("gzip", "docker"),
        ("none", "docker"),
        ("gzip", "oci"),
        ("zstd", "oci"),
    ] {
        let src = format!("src-{compression}");
        run_ok(env.strata(&src).arg("build").arg(&ctx).args([
            "-t",
            "t/base:1",
            "--compression",
            compression,
            "--progress",
            "plain",
        ]));
        let ar = env.path(&format!("{compression}-{format}.tar"));
        run_ok(
            env.strata(&src)
                .args(["save", "--format", format, "-o"])
                .arg(&ar)
                .arg("t/base:1"),
        );
        let (digest, diff_ids) = image(&env, &src, "t/base:1");

        let root = format!("loaded-{compression}-{format}");
        run_ok(env.strata(&root).args(["load", "-i"]).arg(&ar));
        let what = format!("{compression} {format}");
        // The same image as was saved.
        assert_eq!(
            image(&env, &root, "t/base:1"),
            (digest, diff_ids.clone()),
            "{what}"
        );
        // Every layer is a snapshot now, with the tar's mtimes (a base's
        // layer keeps them: 0 here, as strata's COPY writes them).
        let mut before = Vec::new();
        for d in &diff_ids {
            let s = snapshot(&env, &root, d);
            let m = std::fs::metadata(&s).unwrap_or_else(|_| panic!("{what}: no snapshot {d}"));
            before.push((m.ino(), m.mtime(), m.mtime_nsec()));
        }
        let bin = snapshot(&env, &root, &diff_ids[0]).join("bin/busybox");
        assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(&bb).unwrap());
        assert_eq!(std::fs::metadata(&bin).unwrap().mtime(), 0, "{what}");
        assert_eq!(snapshot_count(&env, &root), diff_ids.len(), "{what}");

        // The build's RUN stacks them: none is made again or replaced.
        let b = build(&env, &root, &app, &["-t", "t/app:1"]);
        assert_eq!(b.misses(), 1, "{what}: the RUN ran");
        for (d, was) in diff_ids.iter().zip(&before) {
            let m = std::fs::metadata(snapshot(&env, &root, d)).unwrap();
            assert_eq!((m.ino(), m.mtime(), m.mtime_nsec()), *was, "{what}: {d}");
        }
    }
}

/// A docker-archive written by hand: one layer (gzip if asked) and a
/// config whose diff_id is `diff_id` (the right one when `None`).
fn docker_archive(dest: &Path, layer: &[u8], gzip: bool, diff_id: Option<&str>) -> Vec<u8> {
    let blob = if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer).unwrap();
        gz.finish().unwrap()
    } else {
        layer.to_vec()
    };
    let right = sha256(layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.unwrap_or(&right)]},
    })
    .to_string();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["t/hand:1"],
        "Layers": ["abc/layer.tar"],
    }])
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("abc/layer.tar", &blob[..]),
        ("config.json", config.as_bytes()),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    }
    let bytes = b.into_inner().unwrap();
    std::fs::write(dest, &bytes).unwrap();
    blob
}

/// A layer tar big enough to be read in several chunks (2.5 MiB).
fn layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let big: Vec<u8> = (0..5u32 << 19).map(|i| (i * 7 % 251) as u8).collect();
    for (name, data) in [("big", &big[..]), ("etc/hi", b"hi\n")] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_hand_made_docker_archive_loads_with_its_snapshot() {
    let env = TestEnv::new();
    let layer = layer_tar();
    let ar = env.path("ok.tar");
    docker_archive(&ar, &layer, true, None);
    run_ok(env.strata("root").args(["load", "-i"]).arg(&ar));
    let s = snapshot(&env, "root", &sha256(&layer));
    assert_eq!(std::fs::read(s.join("etc/hi")).unwrap(), b"hi\n");
    assert_eq!(
        std::fs::metadata(s.join("big")).unwrap().mtime(),
        1_700_000_000
    );
    // Loading it again changes nothing.
    let blobs_before = blobs(&env, "root");
    let ino = std::fs::metadata(&s).unwrap().ino();
    run_ok(env.strata("root").args(["load", "-i"]).arg(&ar));
    assert_eq!(blobs(&env, "root"), blobs_before);
    assert_eq!(std::fs::metadata(&s).unwrap().ino(), ino);
    // Collected as a build's snapshots are: kept while an image needs the
    // layer, removed by prune once none does.
    run_ok(env.strata("root").args(["prune", "-f"]));
    assert!(s.is_dir(), "the image still needs it");
    run_ok(env.strata("root").args(["rmi", "t/hand:1"]));
    run_ok(env.strata("root").args(["prune", "-f"]));
    assert!(!s.exists(), "prune left the snapshot of a removed image");
}

#[test]
fn a_corrupt_archive_leaves_no_snapshot_and_no_unverified_blob() {
    let env = TestEnv::new();
    let layer = layer_tar();
    let wrong = sha256(b"another layer");
    for gzip in [false, true] {
        let root = format!("root-{gzip}");
        let ar = env.path(&format!("bad-{gzip}.tar"));
        let blob = docker_archive(&ar, &layer, gzip, Some(&wrong));
        let out = run(env.strata(&root).args(["load", "-i"]).arg(&ar));
        assert_eq!(out.code, 1, "{}", out.stderr);
        let flat = out.stderr.replace('│', " ");
        let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&format!("the config says {wrong}")), "{flat}");
        assert_eq!(snapshot_count(&env, &root), 0, "gzip {gzip}");
        let stored = blobs(&env, &root);
        assert!(!stored.contains(&sha256(&blob)), "gzip {gzip}: {stored:?}");
        assert!(stored.is_empty(), "gzip {gzip}: {stored:?}");
        let tmp = std::fs::read_dir(env.path(&root).join("tmp"))
            .unwrap()
            .count();
        assert_eq!(tmp, 0, "gzip {gzip}: tmp/ not emptied");
    }

    // Cut inside the layer member: a clear error, nothing kept.
    let ar = env.path("ok.tar");
    docker_archive(&ar, &layer, false, None);
    let bytes = std::fs::read(&ar).unwrap();
    let cut = env.path("cut.tar");
    std::fs::write(&cut, &bytes[..2 << 20]).unwrap();
    let out = run(env.strata("cut").args(["load", "-i"]).arg(&cut));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let flat = out.stderr.replace('│', " ");
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("member `abc/layer.tar` is truncated"),
        "{flat}"
    );
    assert_eq!(snapshot_count(&env, "cut"), 0);
    assert!(blobs(&env, "cut").is_empty(), "{:?}", blobs(&env, "cut"));
}

/// An oci-archive written by hand: one gzip layer whose config gives the
/// diff_id `diff_id`.
fn oci_archive(dest: &Path, layer: &[u8], diff_id: &str) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(layer).unwrap();
    let blob = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config.as_bytes()),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(&blob),
            "size": blob.len(),
        }],
    })
    .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest.as_bytes()),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t/oci:1"},
        }],
    })
    .to_string();
    let layout = r#"{"imageLayoutVersion":"1.0.0"}"#;
    let blob_name = |b: &[u8]| format!("blobs/sha256/{}", &sha256(b)[7..]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (blob_name(&blob), &blob[..]),
        (blob_name(config.as_bytes()), config.as_bytes()),
        (blob_name(manifest.as_bytes()), manifest.as_bytes()),
        ("oci-layout".to_string(), layout.as_bytes()),
        ("index.json".to_string(), index.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, &name, data).unwrap();
    }
    std::fs::write(dest, b.into_inner().unwrap()).unwrap();
    sha256(&blob)
}

#[test]
fn an_oci_archive_whose_layer_is_not_its_diff_id_is_refused_unadopted() {
    let env = TestEnv::new();
    let layer = layer_tar();
    let wrong = sha256(b"another layer");
    let ar = env.path("bad-oci.tar");
    oci_archive(&ar, &layer, &wrong);
    let out = run(env.strata("bad").args(["load", "-i"]).arg(&ar));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let flat = out.stderr.replace('│', " ");
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!(
            "holds the tar {} but the config says {wrong}",
            sha256(&layer)
        )),
        "{flat}"
    );
    assert_eq!(snapshot_count(&env, "bad"), 0);
    assert!(
        run_ok(env.strata("bad").arg("images"))
            .stdout
            .lines()
            .count()
            <= 1
    );

    // The same archive with the right diff_id loads, with its snapshot.
    let ar = env.path("ok-oci.tar");
    oci_archive(&ar, &layer, &sha256(&layer));
    run_ok(env.strata("ok").args(["load", "-i"]).arg(&ar));
    let s = snapshot(&env, "ok", &sha256(&layer));
    assert_eq!(std::fs::read(s.join("etc/hi")).unwrap(), b"hi\n");
}

//! umoci (an independent OCI implementation) unpacks our layers, gzip and
//! uncompressed, with whiteouts, to the tree we meant. Skips with a message when
//! umoci is not installed. The OCI layout is assembled by hand here; the
//! real one is the `oci`/`store` modules' business.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::json;
use strata::digest::Digest;
use strata::layer::{Compression, Entry, EntryKind, entries_from_dir, write_layer};

fn put_blob(layout: &Path, bytes: &[u8]) -> (Digest, usize) {
    let d = Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    (d, bytes.len())
}

fn entry(path: &str, kind: EntryKind) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 1_000_000,
        xattrs: vec![],
    }
}

#[test]
fn umoci_unpacks_our_layers() {
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("skipping: umoci is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc/sub")).unwrap();
    std::fs::create_dir_all(src.join("opq")).unwrap();
    std::fs::write(src.join("etc/keep"), b"keep").unwrap();
    std::fs::write(src.join("etc/remove"), b"remove").unwrap();
    std::fs::write(src.join("opq/lower"), b"lower").unwrap();
    std::fs::write(src.join("suid"), b"s").unwrap();
    std::fs::set_permissions(src.join("suid"), std::fs::Permissions::from_mode(0o4711)).unwrap();
    std::fs::hard_link(src.join("suid"), src.join("suid2")).unwrap();
    std::os::unix::fs::symlink("etc/keep", src.join("link")).unwrap();
    let long = format!("{}/{}", "l".repeat(120), "m".repeat(150));
    std::fs::create_dir_all(src.join(&long)).unwrap();

    let layout = tmp.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let (s1, blob1) = write_layer(
        entries_from_dir(&src, 1_000_000).unwrap(),
        Compression::Gzip,
        Vec::new(),
    )
    .unwrap();
    let new_file = tmp.path().join("new");
    std::fs::write(&new_file, b"upper").unwrap();
    let layer2 = vec![
        entry("etc/remove", EntryKind::Whiteout),
        entry("opq", EntryKind::Dir),
        entry("opq", EntryKind::Opaque),
        entry(
            "opq/upper",
            EntryKind::File {
                source: new_file.clone(),
                size: 5,
            },
        ),
    ];
    // Debian's umoci 0.4.7 rejects zstd layers ("not correct mediatype"), so
    // the second layer is an uncompressed one.
    let (s2, blob2) = write_layer(layer2, Compression::None, Vec::new()).unwrap();
    let (d1, n1) = put_blob(&layout, &blob1);
    let (d2, n2) = put_blob(&layout, &blob2);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [s1.diff_id.to_string(), s2.diff_id.to_string()]},
    });
    let (dc, nc) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dc.to_string(), "size": nc},
        "layers": [
            {"mediaType": Compression::Gzip.media_type(), "digest": d1.to_string(), "size": n1},
            {"mediaType": Compression::None.media_type(), "digest": d2.to_string(), "size": n2},
        ],
    });
    let (dm, nm) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": dm.to_string(), "size": nm,
            "annotations": {"org.opencontainers.image.ref.name": "test"},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let bundle = tmp.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read(rootfs.join("etc/keep")).unwrap(), b"keep");
    assert!(!rootfs.join("etc/remove").exists(), "whiteout not applied");
    assert!(rootfs.join("etc/sub").is_dir());
    assert!(
        !rootfs.join("opq/lower").exists(),
        "opaque marker not applied"
    );
    assert_eq!(std::fs::read(rootfs.join("opq/upper")).unwrap(), b"upper");
    assert!(!rootfs.join("opq/.wh..wh..opq").exists());
    let m = rootfs.join("suid").metadata().unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4711);
    assert_eq!(m.ino(), rootfs.join("suid2").metadata().unwrap().ino());
    assert_eq!(
        std::fs::read_link(rootfs.join("link")).unwrap(),
        Path::new("etc/keep")
    );
    assert!(rootfs.join(&long).is_dir());
    assert_eq!(
        rootfs.join("etc/keep").metadata().unwrap().mtime(),
        1_000_000
    );
}

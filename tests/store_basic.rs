//! The store: blobs, tags, cache records, crash leftovers, corrupt files.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;

use strata::digest::{CacheKey, Digest};
use strata::error::Error;
use strata::store::{CacheRecord, Descriptor, Store, media_type};

fn store() -> (tempfile::TempDir, Store) {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("root")).unwrap();
    (t, s)
}

#[test]
fn open_creates_an_oci_layout() {
    let (_t, s) = store();
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(s.root().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    for d in ["blobs/sha256", "cache", "builds", "statcache", "tmp"] {
        assert!(s.root().join(d).is_dir(), "{d} missing");
    }
}

#[test]
fn blob_writer_commits_content_addressed() {
    let (_t, s) = store();
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"hello ").unwrap();
    w.write_all(b"world").unwrap();
    let (d, n) = w.commit().unwrap();
    assert_eq!(d, Digest::of(b"hello world"));
    assert_eq!(n, 11);
    assert!(s.has_blob(&d));
    assert_eq!(s.blob_path(&d), s.root().join("blobs/sha256").join(d.hex()));
    assert_eq!(s.read_blob(&d).unwrap(), b"hello world");
    // Same content again: no error, same digest, temp file gone.
    assert_eq!(s.put_blob(b"hello world").unwrap(), d);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn commit_expect_rejects_wrong_content() {
    let (_t, s) = store();
    let want = Digest::of(b"expected");
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"something else").unwrap();
    let e = w.commit_expect(&want).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(!s.has_blob(&want));
    assert!(!s.has_blob(&Digest::of(b"something else")));

    let mut w = s.blob_writer().unwrap();
    w.write_all(b"expected").unwrap();
    assert_eq!(w.commit_expect(&want).unwrap(), 8);
    assert!(s.has_blob(&want));
}

#[test]
fn corrupt_blob_is_detected_on_read() {
    let (_t, s) = store();
    let d = s.put_blob(b"{\"a\":1}").unwrap();
    fs::write(s.blob_path(&d), b"{\"a\":2}").unwrap();
    let e = s.read_blob(&d).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&d.to_string()), "{e}");
}

fn manifest(tag: &[u8]) -> Descriptor {
    Descriptor::new(media_type::OCI_MANIFEST, Digest::of(tag), tag.len() as u64)
}

#[test]
fn set_tag_replaces_and_resolve_finds() {
    let (_t, s) = store();
    s.set_tag("example/app:1.0", &manifest(b"one")).unwrap();
    s.set_tag("example/app:2.0", &manifest(b"two")).unwrap();
    s.set_tag("example/app:1.0", &manifest(b"three")).unwrap();
    let tags = s.tags().unwrap();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(
        s.resolve("example/app:1.0").unwrap().unwrap().digest,
        Digest::of(b"three")
    );
    assert_eq!(
        s.resolve("example/app:2.0").unwrap().unwrap().digest,
        Digest::of(b"two")
    );
    assert!(s.resolve("example/app:3.0").unwrap().is_none());
    // index.json carries the OCI ref.name annotation
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["example/app:1.0", "example/app:2.0"]);
    // an untagged name means :latest
    s.set_tag("example/app", &manifest(b"latest")).unwrap();
    assert_eq!(
        s.resolve("example/app:latest").unwrap().unwrap().digest,
        Digest::of(b"latest")
    );
}

#[test]
fn concurrent_set_tag_keeps_every_tag() {
    let (_t, s) = store();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = s.clone();
            scope.spawn(move || {
                for i in 0..10 {
                    let name = format!("img{t}:{i}");
                    s.set_tag(&name, &manifest(name.as_bytes())).unwrap();
                }
            });
        }
    });
    let tags = s.tags().unwrap();
    assert_eq!(tags.len(), 80);
    for (name, d) in tags {
        assert_eq!(d.digest, Digest::of(name.as_bytes()));
    }
}

fn key(n: u8) -> CacheKey {
    CacheKey([n; 32])
}

fn record(s: &Store, content: &[u8]) -> CacheRecord {
    let d = s.put_blob(content).unwrap();
    let mut layers = BTreeMap::new();
    layers.insert(
        "gzip".to_string(),
        Descriptor::new(media_type::OCI_LAYER_GZIP, d, content.len() as u64),
    );
    CacheRecord {
        diff_id: Some(Digest::of(b"uncompressed")),
        layers,
        created_by: "RUN make".to_string(),
        size: 12,
    }
}

#[test]
fn cache_record_round_trip() {
    let (_t, s) = store();
    assert!(s.get_cache(&key(1)).unwrap().is_none());
    let rec = record(&s, b"layer");
    s.put_cache(&key(1), &rec).unwrap();
    assert_eq!(s.get_cache(&key(1)).unwrap(), Some(rec.clone()));
    assert!(s.get_cache(&key(2)).unwrap().is_none());
    // a record without a layer
    let empty = CacheRecord {
        diff_id: None,
        layers: BTreeMap::new(),
        created_by: "ENV A=1".into(),
        size: 0,
    };
    s.put_cache(&key(3), &empty).unwrap();
    assert_eq!(s.get_cache(&key(3)).unwrap(), Some(empty));
}

#[test]
fn cache_record_with_missing_blob_is_absent() {
    let (_t, s) = store();
    let rec = record(&s, b"layer that goes away");
    s.put_cache(&key(4), &rec).unwrap();
    fs::remove_file(s.blob_path(&rec.layers["gzip"].digest)).unwrap();
    assert!(s.get_cache(&key(4)).unwrap().is_none());
}

#[test]
fn garbage_cache_record_is_corrupt() {
    let (_t, s) = store();
    fs::write(
        s.root()
            .join("cache")
            .join(format!("{}.json", key(5).hex())),
        b"{\"diff_id\": 42",
    )
    .unwrap();
    let e = s.get_cache(&key(5)).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[test]
fn stale_tmp_is_cleaned_on_open_unless_locked() {
    let (t, s) = store();
    let root = t.path().join("root");
    fs::write(root.join("tmp/blob-stale"), b"half a blob").unwrap();
    fs::create_dir(root.join("tmp/dir-stale")).unwrap();
    fs::write(root.join("tmp/dir-stale/f"), b"x").unwrap();
    {
        // A build holds the shared lock: its temp files must survive.
        let _lock = s.lock_shared().unwrap();
        Store::open(&root).unwrap();
        assert!(root.join("tmp/blob-stale").exists());
    }
    Store::open(&root).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn garbage_index_is_corrupt() {
    let (_t, s) = store();
    fs::write(
        s.root().join("index.json"),
        b"{\"schemaVersion\": 2, \"manifests\": [{\"digest\": 7",
    )
    .unwrap();
    let e = s.resolve("a:1").unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("index.json"), "{e}");
    let e = s.set_tag("a:1", &manifest(b"m")).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    // a bad digest in an otherwise valid index
    fs::write(
        s.root().join("index.json"),
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:../../etc","size":1}]}"#,
    )
    .unwrap();
    assert!(matches!(s.tags().unwrap_err(), Error::Corrupt { .. }));
}

#[test]
fn exclusive_lock_waits_for_shared() {
    let (_t, s) = store();
    let shared = s.lock_shared().unwrap();
    let s2 = s.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let _x = s2.lock_exclusive().unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    drop(shared);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    h.join().unwrap();
}

use std::cell::RefCell;
use std::path::Path;

use super::*;
use crate::store::media_type;

#[test]
fn cache_flags_parse_like_buildx() {
    let to = parse_cache_to("type=registry,ref=127.0.0.1:5000/cache:main,mode=max").unwrap();
    assert_eq!(to.mode, ExportMode::Max);
    match &to.location {
        CacheLocation::Registry(r) => {
            assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
            assert_eq!(r.tag.as_deref(), Some("main"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_cache_to("type=local,dest=/tmp/c,mode=min").unwrap(),
        CacheTo {
            location: CacheLocation::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into()
            },
            mode: ExportMode::Min
        }
    );
    assert_eq!(
        parse_cache_from("type=local,src=/tmp/c,tag=v1").unwrap(),
        CacheLocation::Local {
            dir: "/tmp/c".into(),
            tag: "v1".into()
        }
    );
    // A bare reference is a registry cache.
    assert!(matches!(
        parse_cache_from("localhost:5000/c:1").unwrap(),
        CacheLocation::Registry(_)
    ));
    for bad in [
        "type=s3,ref=x",
        "ref=localhost:5000/c",
        "type=registry",
        "type=registry,ref=busybox",
        "type=registry,ref=Not A Ref",
        "type=local,src=/tmp/c",
        "type=local,dest=",
        "type=local,dest=/x,mode=all",
        "type=local,dest=/x,colour=red",
        "type=local,dest=/x,dest=/y",
        "type=local,dest",
    ] {
        assert!(parse_cache_to(bad).is_err(), "--cache-to {bad}");
    }
    for bad in ["type=local,dest=/tmp/c", "type=registry,ref=h:1/x,mode=max"] {
        assert!(parse_cache_from(bad).is_err(), "--cache-from {bad}");
    }
}

/// A store with one uncompressed layer blob (its diff_id is its digest)
/// and the record for it.
fn store_with_layer(root: &Path, content: &[u8], key: u8) -> (Store, ExportRecord) {
    let store = Store::open(root).unwrap();
    let digest = store.put_blob(content).unwrap();
    let desc = Descriptor::new(media_type::OCI_LAYER, digest, content.len() as u64);
    let record = CacheRecord {
        diff_id: Some(digest),
        layers: [("none".to_string(), desc)].into_iter().collect(),
        created_by: format!("COPY {key}"),
        size: content.len() as u64,
    };
    (
        store,
        ExportRecord {
            key: CacheKey([key; 32]),
            record,
            in_final_image: true,
        },
    )
}

/// Warnings a load reported.
#[derive(Default)]
struct Warnings(RefCell<Vec<String>>);

impl Warnings {
    fn push(&self, m: String) {
        self.0.borrow_mut().push(m);
    }

    fn all(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

#[test]
fn local_export_then_lazy_import_fetches_only_what_is_asked() {
    let t = tempfile::tempdir().unwrap();
    let (a, r1) = store_with_layer(&t.path().join("a"), b"layer one", 1);
    let content2 = b"layer two, only in an intermediate stage";
    let d2 = a.put_blob(content2).unwrap();
    let mut r2 = r1.clone();
    r2.key = CacheKey([2; 32]);
    r2.record.diff_id = Some(d2);
    r2.record.layers.get_mut("none").unwrap().digest = d2;
    r2.record.layers.get_mut("none").unwrap().size = content2.len() as u64;
    r2.in_final_image = false;
    // A record without a layer (a RUN that changed nothing).
    let r3 = ExportRecord {
        key: CacheKey([3; 32]),
        record: CacheRecord {
            diff_id: None,
            layers: BTreeMap::new(),
            created_by: "RUN true".into(),
            size: 0,
        },
        in_final_image: false,
    };
    let dir = t.path().join("cache");
    let to = CacheTo {
        location: CacheLocation::Local {
            dir: dir.clone(),
            tag: "latest".into(),
        },
        mode: ExportMode::Max,
    };
    let report = export(&a, &[r1.clone(), r2.clone(), r3.clone()], &to, None).unwrap();
    assert_eq!((report.records, report.layers, report.written), (3, 2, 2));
    // Exporting the same again writes no blob and gives the same manifest.
    let again = export(&a, &[r3.clone(), r2.clone(), r1.clone()], &to, None).unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(again.manifest, report.manifest);

    let b = Store::open(&t.path().join("b")).unwrap();
    let warnings = Warnings::default();
    let from = [CacheLocation::Local {
        dir: dir.clone(),
        tag: "latest".into(),
    }];
    let imports = Imports::load(&b, &from, &|m| warnings.push(m));
    assert!(warnings.all().is_empty(), "{:?}", warnings.all());
    assert_eq!(imports.len(), 3);
    assert_eq!(imports.lookup(&r1.key), Some(r1.record.clone()));
    assert!(imports.lookup(&CacheKey([9; 32])).is_none());
    let l1 = &r1.record.layers["none"];
    assert!(!b.has_blob(&l1.digest), "loading downloads no layer");
    let id1 = r1.record.diff_id.unwrap();
    assert_eq!(imports.fetch([(l1, &id1)]).unwrap(), 1);
    assert_eq!(imports.fetch([(l1, &id1)]).unwrap(), 0, "already local");
    let e = imports.fetch([(l1, &d2)]).unwrap_err();
    assert!(e.to_string().contains("diff_id"), "{e}");
    assert!(b.has_blob(&l1.digest));
    assert!(!b.has_blob(&d2), "an unneeded layer stays remote");
    let used: Vec<(CacheKey, CacheRecord)> = [&r1, &r2, &r3]
        .iter()
        .map(|r| (r.key, r.record.clone()))
        .collect();
    assert_eq!(imports.persist(&used).unwrap(), 2, "r1 and r3, not r2");
    assert_eq!(b.get_cache(&r1.key).unwrap(), Some(r1.record.clone()));
    assert!(b.get_cache(&r2.key).unwrap().is_none());
    assert!(b.get_cache(&r3.key).unwrap().is_some());

    // B re-exports with mode=min elsewhere: r2's blob is fetched on demand
    // only if exported; with min it is not.
    let min = CacheTo {
        location: CacheLocation::Local {
            dir: t.path().join("min"),
            tag: "latest".into(),
        },
        mode: ExportMode::Min,
    };
    let rep = export(&b, &[r1.clone(), r2.clone()], &min, Some(&imports)).unwrap();
    assert_eq!(rep.records, 1);
    assert!(!b.has_blob(&d2));
    let max = CacheTo {
        mode: ExportMode::Max,
        ..min
    };
    let rep = export(&b, &[r1.clone(), r2.clone()], &max, Some(&imports)).unwrap();
    assert_eq!(rep.records, 2, "merged and complete");
    assert!(b.has_blob(&d2), "fetched from the import to export it");
}

#[test]
fn local_export_merges_with_what_is_there() {
    let t = tempfile::tempdir().unwrap();
    let (a, r1) = store_with_layer(&t.path().join("a"), b"one", 1);
    let (b, r2) = store_with_layer(&t.path().join("b"), b"two", 2);
    let to = CacheTo {
        location: CacheLocation::Local {
            dir: t.path().join("cache"),
            tag: "main".into(),
        },
        mode: ExportMode::Max,
    };
    export(&a, std::slice::from_ref(&r1), &to, None).unwrap();
    let rep = export(&b, std::slice::from_ref(&r2), &to, None).unwrap();
    assert_eq!((rep.records, rep.layers), (2, 2));
    let c = Store::open(&t.path().join("c")).unwrap();
    let from = [parse_cache_from(&format!(
        "type=local,src={},tag=main",
        t.path().join("cache").display()
    ))
    .unwrap()];
    let imports = Imports::load(&c, &from, &|m| panic!("{m}"));
    assert!(imports.lookup(&r1.key).is_some() && imports.lookup(&r2.key).is_some());
}

#[test]
fn corrupt_records_or_lying_records_are_not_trusted() {
    let t = tempfile::tempdir().unwrap();
    let (a, r1) = store_with_layer(&t.path().join("a"), b"one", 1);
    let mut liar = r1.clone();
    liar.key = CacheKey([7; 32]);
    liar.record.diff_id = Some(Digest::of(b"something else"));
    let dir = t.path().join("cache");
    let to = CacheTo {
        location: CacheLocation::Local {
            dir: dir.clone(),
            tag: "latest".into(),
        },
        mode: ExportMode::Max,
    };
    let report = export(&a, &[liar.clone()], &to, None).unwrap();
    let from = [CacheLocation::Local {
        dir: dir.clone(),
        tag: "latest".into(),
    }];

    // The record claims a diff_id its blob does not have: fetch refuses.
    let b = Store::open(&t.path().join("b")).unwrap();
    let imports = Imports::load(&b, &from, &|m| panic!("{m}"));
    let claimed = liar.record.diff_id.unwrap();
    let e = imports
        .fetch([(&liar.record.layers["none"], &claimed)])
        .unwrap_err();
    assert!(e.to_string().contains("diff_id"), "{e}");
    assert_eq!(
        imports.persist(&[(liar.key, liar.record.clone())]).unwrap(),
        0
    );

    // A records blob changed in the directory: the source is ignored.
    let layout = Layout::new(&dir);
    let (_, mbytes) = layout.manifest("latest").unwrap().unwrap();
    let m = CacheManifest::parse(&mbytes, "m").unwrap();
    assert_eq!(Some(Digest::of(&mbytes)), report.manifest);
    std::fs::write(layout.blob_path(&m.config.digest), b"{\"garbage\": 1}").unwrap();
    let warnings = Warnings::default();
    let imports = Imports::load(&b, &from, &|m| warnings.push(m));
    assert!(imports.is_empty());
    let w = warnings.all();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("ignored") && w[0].contains("corrupt"),
        "{w:?}"
    );

    // A missing directory is a warning, not an error.
    let warnings = Warnings::default();
    let missing = [CacheLocation::Local {
        dir: t.path().join("nope"),
        tag: "latest".into(),
    }];
    assert!(Imports::load(&b, &missing, &|m| warnings.push(m)).is_empty());
    assert_eq!(warnings.all().len(), 1);
}

#[test]
fn fetch_takes_many_blobs_at_once_each_once_and_still_checks_diff_ids() {
    let t = tempfile::tempdir().unwrap();
    let a = Store::open(&t.path().join("a")).unwrap();
    let records: Vec<ExportRecord> = (0..10u8)
        .map(|k| {
            let content = format!("layer number {k} ").repeat(1000 + usize::from(k));
            let digest = a.put_blob(content.as_bytes()).unwrap();
            let desc = Descriptor::new(media_type::OCI_LAYER, digest, content.len() as u64);
            ExportRecord {
                key: CacheKey([k + 1; 32]),
                record: CacheRecord {
                    diff_id: Some(digest),
                    layers: [("none".to_string(), desc)].into_iter().collect(),
                    created_by: format!("COPY {k}"),
                    size: content.len() as u64,
                },
                in_final_image: true,
            }
        })
        .collect();
    let dir = t.path().join("cache");
    let to = CacheTo {
        location: CacheLocation::Local {
            dir: dir.clone(),
            tag: "latest".into(),
        },
        mode: ExportMode::Max,
    };
    assert_eq!(export(&a, &records, &to, None).unwrap().written, 10);
    let from = [CacheLocation::Local {
        dir,
        tag: "latest".into(),
    }];
    let wanted: Vec<(Descriptor, Digest)> = records
        .iter()
        .map(|r| (r.record.layers["none"].clone(), r.record.diff_id.unwrap()))
        .collect();

    // Every blob, some named twice: each is downloaded once and verified.
    let b = Store::open(&t.path().join("b")).unwrap();
    let imports = Imports::load(&b, &from, &|m| panic!("{m}"));
    let twice = wanted.iter().chain(&wanted[..3]).map(|(d, id)| (d, id));
    assert_eq!(imports.fetch(twice).unwrap(), 10);
    for (d, _) in &wanted {
        assert_eq!(b.read_blob(&d.digest).unwrap().len() as u64, d.size);
    }
    assert_eq!(
        imports.fetch(wanted.iter().map(|(d, id)| (d, id))).unwrap(),
        0
    );
    let used: Vec<(CacheKey, CacheRecord)> =
        records.iter().map(|r| (r.key, r.record.clone())).collect();
    assert_eq!(imports.persist(&used).unwrap(), 10, "all diff_ids checked");

    // One wrong diff_id among many fails the whole fetch, even when the
    // same blob is also named with its right diff_id.
    let c = Store::open(&t.path().join("c")).unwrap();
    let imports = Imports::load(&c, &from, &|m| panic!("{m}"));
    let wrong = Digest::of(b"not the layer");
    let mut bad: Vec<(&Descriptor, &Digest)> = wanted.iter().map(|(d, id)| (d, id)).collect();
    bad.push((&wanted[6].0, &wrong));
    let e = imports.fetch(bad).unwrap_err();
    assert!(e.to_string().contains(&wrong.to_string()), "{e}");
}

//! `strata prune`: removes what nothing reachable uses.
//!
//! Reachable means: every blob a manifest in `index.json` needs (index ->
//! manifests -> config + layers), plus the layer blobs of every cache record
//! that is kept, plus what every container's image needs (its blobs and
//! snapshots survive even `--all` until the container is removed).
//! Snapshots are kept while their diff_id belongs to a kept layer, and so
//! are their recorded source mtimes (`snapshot-times/`). Runs under the exclusive store lock (passed in as proof), so no
//! build, push or pull is running while it deletes; `tmp/` is emptied
//! under the index lock as well, which `rmi` (holding no store lock) takes
//! while it stages a new `index.json` there.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::digest::{CacheKey, Digest};
use crate::error::{Error, IoContext, Result};
use crate::oci::{ImageConfig, Manifest};
use crate::store::{Area, CacheEntry, ImageIndex, Store, StoreLock, media_type};

/// What to prune.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also every cache record, build record, snapshot, cache mount, log and
    /// stat cache: only what tagged images need survives.
    pub all: bool,
    /// Remove cache records, oldest first, until the bytes only the cache
    /// keeps alive are at most this.
    pub keep_storage: Option<u64>,
    /// Report, remove nothing.
    pub dry_run: bool,
}

/// One kind of thing removed, with the bytes it freed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneClass {
    /// `blobs`, `cache records`, `snapshots`, `snapshot times`, `build records`,
    /// `cache mounts`, `logs`, `stat caches`, `temporary files`.
    pub name: &'static str,
    /// What was removed (a digest, key or file name) and its size.
    pub items: Vec<(String, u64)>,
}

impl PruneClass {
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.1).sum()
    }
}

/// What prune removed (or, with `dry_run`, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub classes: Vec<PruneClass>,
    pub dry_run: bool,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.classes.iter().map(PruneClass::bytes).sum()
    }

    /// The class called `name`, if anything of it was removed.
    pub fn class(&self, name: &str) -> Option<&PruneClass> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// What the images in `index.json` need.
#[derive(Debug, Default)]
pub(crate) struct Reachable {
    pub blobs: BTreeSet<Digest>,
    pub diff_ids: BTreeSet<Digest>,
    /// The snapshots containers' images need (a subset of `diff_ids`).
    pub container_diff_ids: BTreeSet<Digest>,
}

/// Walks `index.json`: indexes -> manifests -> config + layers, and the
/// same from the manifest of every container. Missing or unreadable blobs
/// end the walk there (they are kept if present).
pub(crate) fn reachable(store: &Store) -> Result<Reachable> {
    let mut r = Reachable::default();
    for d in store.index_entries()? {
        mark(store, &d.media_type, &d.digest, &mut r, 0);
    }
    let c = in_containers(store)?;
    r.blobs.extend(c.blobs);
    r.diff_ids.extend(c.diff_ids.iter().copied());
    r.container_diff_ids = c.diff_ids;
    Ok(r)
}

/// What containers (running or stopped) use: their images' blobs and
/// layer snapshots, kept even by `prune --all`.
fn in_containers(store: &Store) -> Result<Reachable> {
    let mut r = Reachable::default();
    for c in crate::container::list(store)? {
        if let Ok(d) = c.config.manifest.parse::<Digest>() {
            mark(store, media_type::OCI_MANIFEST, &d, &mut r, 0);
        }
    }
    Ok(r)
}

fn mark(store: &Store, mt: &str, d: &Digest, r: &mut Reachable, depth: u32) {
    if !r.blobs.insert(*d) || depth > 8 {
        return;
    }
    let Ok(bytes) = store.read_blob(d) else {
        return;
    };
    if media_type::is_index(mt) {
        if let Ok(idx) = serde_json::from_slice::<ImageIndex>(&bytes) {
            for m in &idx.manifests {
                mark(store, &m.media_type, &m.digest, r, depth + 1);
            }
        }
    } else if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
        r.blobs.insert(m.config.digest);
        r.blobs.extend(m.layers.iter().map(|l| l.digest));
        if let Ok(c) = store.read_blob(&m.config.digest).and_then(|b| {
            serde_json::from_slice::<ImageConfig>(&b).map_err(|e| Error::msg(e.to_string()))
        }) {
            r.diff_ids.extend(c.rootfs.diff_ids);
        }
    }
}

/// Removes those of `candidates` that nothing names: no image in
/// `index.json` or of a container (their manifests, configs and layers),
/// no cache record. The store's one rule for removing a blob outside
/// [`prune`] (`rmi`, and a build's uncompressed layer blobs once their
/// compressed ones are in): `_lock` is the exclusive store lock, so no
/// build, push or pull is running and nothing can come to name a
/// candidate meanwhile. Returns the blobs removed, in the order given.
pub fn remove_unreferenced(
    store: &Store,
    _lock: &StoreLock,
    candidates: &[Digest],
) -> Result<Vec<Digest>> {
    let used = reachable(store)?;
    let mut named = used.blobs;
    for e in store.cache_entries()? {
        if let Some(r) = e.record {
            named.extend(r.layers.values().map(|d| d.digest));
        }
    }
    let mut removed = Vec::new();
    for d in candidates {
        if named.contains(d) || removed.contains(d) {
            continue;
        }
        if store.remove_blob(d)? {
            removed.push(*d);
        }
    }
    Ok(removed)
}

/// Prunes the store; `_lock` is the exclusive store lock.
pub fn prune(store: &Store, _lock: &StoreLock, opts: &PruneOptions) -> Result<PruneReport> {
    let reach = reachable(store)?;
    let blob_sizes: BTreeMap<Digest, u64> = store.list_blobs()?.into_iter().collect();
    let entries = store.cache_entries()?;
    let (drop_keys, kept) = choose_cache_records(&entries, &reach, &blob_sizes, opts);

    let mut keep_blobs = reach.blobs.clone();
    let mut keep_diff_ids = reach.diff_ids.clone();
    for e in &kept {
        if let Some(r) = &e.record {
            keep_blobs.extend(r.layers.values().map(|d| d.digest));
            keep_diff_ids.extend(r.diff_id);
        }
    }

    let mut report = PruneReport {
        classes: Vec::new(),
        dry_run: opts.dry_run,
    };
    let mut push = |class: PruneClass| {
        if !class.items.is_empty() {
            report.classes.push(class);
        }
    };

    // Cache records first: a record must never outlive its blobs.
    let mut records = PruneClass {
        name: "cache records",
        items: Vec::new(),
    };
    for e in entries.iter().filter(|e| drop_keys.contains(&e.key)) {
        if !opts.dry_run {
            store.remove_cache(&e.key)?;
        }
        records.items.push((e.key.hex(), e.file_size));
    }
    push(records);

    let mut blobs = PruneClass {
        name: "blobs",
        items: Vec::new(),
    };
    for (d, size) in &blob_sizes {
        if keep_blobs.contains(d) {
            continue;
        }
        if !opts.dry_run {
            store.remove_blob(d)?;
        }
        blobs.items.push((d.to_string(), *size));
    }
    push(blobs);

    let snapshots = prune_dir(store, Area::Snapshots, "snapshots", opts, |name| {
        let d = format!("sha256:{name}").parse::<Digest>();
        let kept = |set: &BTreeSet<Digest>| d.as_ref().is_ok_and(|d| set.contains(d));
        !kept(&reach.container_diff_ids) && (opts.all || !kept(&keep_diff_ids))
    })?;
    push(snapshots);
    // A layer's recorded source mtimes serve only to make its snapshot:
    // they go with the layer (kept under --all while an image needs it).
    let times = prune_dir(store, Area::SnapshotTimes, "snapshot times", opts, |name| {
        !name
            .strip_suffix(".json")
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            .is_some_and(|d| keep_diff_ids.contains(&d) || reach.container_diff_ids.contains(&d))
    })?;
    push(times);

    if opts.all {
        for (area, name) in [
            (Area::Builds, "build records"),
            (Area::CacheMounts, "cache mounts"),
            (Area::Logs, "logs"),
            (Area::StatCache, "stat caches"),
        ] {
            push(prune_dir(store, area, name, opts, |_| true)?);
        }
    } else {
        // Logs of steps whose record is gone (failed RUN steps included).
        let live: BTreeSet<String> = kept
            .iter()
            .map(|e| format!("{}.log", e.key.hex()))
            .collect();
        push(prune_dir(store, Area::Logs, "logs", opts, |n| {
            !live.contains(n)
        })?);
    }
    // Under the exclusive lock no build, push or pull is writing, and with
    // the index lock no `rmi` is staging an index.json: all of tmp/ is stale.
    let index_lock = store.lock_index()?;
    push(prune_dir(
        store,
        Area::Tmp,
        "temporary files",
        opts,
        |_| true,
    )?);
    drop(index_lock);
    Ok(report)
}

/// Which cache records go; returns (dropped keys, kept entries).
fn choose_cache_records<'a>(
    entries: &'a [CacheEntry],
    reach: &Reachable,
    blob_sizes: &BTreeMap<Digest, u64>,
    opts: &PruneOptions,
) -> (BTreeSet<CacheKey>, Vec<&'a CacheEntry>) {
    let mut drop = BTreeSet::new();
    let mut kept: Vec<&CacheEntry> = Vec::new();
    for e in entries {
        let useful = match &e.record {
            // A record whose blob is gone is a miss anyway.
            Some(r) => r
                .layers
                .values()
                .all(|d| blob_sizes.contains_key(&d.digest)),
            None => false,
        };
        if opts.all || !useful {
            drop.insert(e.key);
        } else {
            kept.push(e);
        }
    }
    let Some(limit) = opts.keep_storage else {
        return (drop, kept);
    };
    // Bytes only the cache keeps alive: blobs no image needs, counted once,
    // plus the record files.
    kept.sort_by_key(|e| (e.modified, e.key));
    let mut refs: BTreeMap<Digest, usize> = BTreeMap::new();
    let mut total: u64 = 0;
    let cache_blobs = |e: &CacheEntry| -> Vec<Digest> {
        let mut v: Vec<Digest> = e
            .record
            .iter()
            .flat_map(|r| r.layers.values().map(|d| d.digest))
            .filter(|d| !reach.blobs.contains(d))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for e in &kept {
        total += e.file_size;
        for d in cache_blobs(e) {
            let n = refs.entry(d).or_insert(0);
            if *n == 0 {
                total += blob_sizes.get(&d).copied().unwrap_or(0);
            }
            *n += 1;
        }
    }
    let mut i = 0;
    while total > limit && i < kept.len() {
        let e = kept[i];
        total -= e.file_size;
        for d in cache_blobs(e) {
            if let Some(n) = refs.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    total -= blob_sizes.get(&d).copied().unwrap_or(0);
                }
            }
        }
        drop.insert(e.key);
        i += 1;
    }
    (drop, kept.split_off(i))
}

/// Removes the entries of one store area that `remove(name)` selects.
fn prune_dir(
    store: &Store,
    area: Area,
    class: &'static str,
    opts: &PruneOptions,
    remove: impl Fn(&str) -> bool,
) -> Result<PruneClass> {
    let dir = store.area_dir(area);
    let mut out = PruneClass {
        name: class,
        items: Vec::new(),
    };
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.at("reading", &dir)?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let text = name.to_string_lossy().into_owned();
        if !remove(&text) {
            continue;
        }
        let p = dir.join(&name);
        let size = disk_usage(&p);
        if !opts.dry_run {
            remove_path(&p)?;
        }
        out.items.push((text, size));
    }
    Ok(out)
}

/// Apparent size of a file or tree (symlinks not followed).
fn disk_usage(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn remove_path(p: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
    };
    let r = if meta.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CacheRecord, Descriptor};
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(n: u8, age: u64, blobs: &[Digest]) -> CacheEntry {
        let layers = blobs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    format!("c{i}"),
                    Descriptor::new(media_type::OCI_LAYER, *d, 0),
                )
            })
            .collect();
        CacheEntry {
            key: CacheKey([n; 32]),
            modified: UNIX_EPOCH + Duration::from_secs(1000 - age),
            file_size: 10,
            record: Some(CacheRecord {
                diff_id: None,
                layers,
                created_by: String::new(),
                size: 0,
            }),
        }
    }

    #[test]
    fn keep_storage_drops_oldest_records_until_under_the_limit() {
        let (a, b, c, img) = (
            Digest::of(b"a"),
            Digest::of(b"b"),
            Digest::of(b"c"),
            Digest::of(b"img"),
        );
        let sizes: BTreeMap<Digest, u64> = [(a, 100), (b, 200), (c, 300), (img, 5000)]
            .into_iter()
            .collect();
        let reach = Reachable {
            blobs: [img].into_iter().collect(),
            ..Default::default()
        };
        // oldest: e1 (a), then e2 (b + the image's blob), newest e3 (c + a).
        let entries = vec![
            entry(1, 30, &[a]),
            entry(2, 20, &[b, img]),
            entry(3, 10, &[c, a]),
        ];
        let opts = |limit| PruneOptions {
            keep_storage: Some(limit),
            ..PruneOptions::default()
        };
        // Everything: 3*10 + 100 + 200 + 300 = 630 (the image blob is free).
        let (d, k) = choose_cache_records(&entries, &reach, &sizes, &opts(630));
        assert!(d.is_empty());
        assert_eq!(k.len(), 3);
        // Dropping e1 frees only its record (blob a is shared with e3): 620.
        let (d, _) = choose_cache_records(&entries, &reach, &sizes, &opts(625));
        assert_eq!(d, [CacheKey([1; 32])].into_iter().collect());
        // Dropping e2 as well frees 210 more: 410.
        let (d, k) = choose_cache_records(&entries, &reach, &sizes, &opts(410));
        assert_eq!(d.len(), 2);
        assert_eq!(k[0].key, CacheKey([3; 32]));
        let (d, k) = choose_cache_records(&entries, &reach, &sizes, &opts(0));
        assert_eq!(d.len(), 3);
        assert!(k.is_empty());
    }

    #[test]
    fn records_with_missing_blobs_or_garbage_are_dropped() {
        let a = Digest::of(b"a");
        let sizes: BTreeMap<Digest, u64> = [(a, 1)].into_iter().collect();
        let mut broken = entry(2, 0, &[]);
        broken.record = None;
        let entries = vec![
            entry(1, 0, &[a]),
            broken,
            entry(3, 0, &[Digest::of(b"gone")]),
        ];
        let (d, k) = choose_cache_records(
            &entries,
            &Reachable::default(),
            &sizes,
            &PruneOptions::default(),
        );
        assert_eq!(
            d,
            [CacheKey([2; 32]), CacheKey([3; 32])].into_iter().collect()
        );
        assert_eq!(k.len(), 1);
        let all = PruneOptions {
            all: true,
            ..PruneOptions::default()
        };
        let (d, _) = choose_cache_records(&entries, &Reachable::default(), &sizes, &all);
        assert_eq!(d.len(), 3);
    }

    /// `rmi` holds no store lock: it stages index.json in tmp/ under the
    /// index lock only. Prune must not empty tmp/ under it (issue 5).
    #[test]
    fn prune_leaves_an_index_write_staged_under_the_index_lock() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let tmp = store.area_dir(Area::Tmp);
        fs::write(tmp.join("file-stale"), b"left by a killed process").unwrap();
        let index = store.lock_index().unwrap();
        let staged = tmp.join("file-staged");
        let bytes = crate::store::to_json(&ImageIndex::default()).unwrap();
        fs::write(&staged, &bytes).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let lock = store.lock_exclusive().unwrap();
                tx.send(prune(&store, &lock, &PruneOptions::default()))
                    .unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(300)).is_err(),
                "prune finished while an index.json write was staged"
            );
            // The writer finishes: its file is still there to rename.
            fs::rename(&staged, t.path().join("index.json")).unwrap();
            drop(index);
            let report = rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
            let removed = report.class("temporary files").unwrap();
            assert_eq!(removed.items, vec![("file-stale".to_string(), 24)]);
        });
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(store.index_entries().unwrap().is_empty());
    }

    /// `snapshot-times/<diff_id>.json` goes with its layer: kept while a
    /// kept cache record (or image) has the layer, removed once it is gone.
    #[test]
    fn prune_removes_the_snapshot_times_of_layers_that_are_gone() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let blob = store.put_blob(b"a layer").unwrap();
        let (kept, gone) = (Digest::of(b"kept tar"), Digest::of(b"gone tar"));
        let record = CacheRecord {
            diff_id: Some(kept),
            layers: [(
                "gzip".to_string(),
                Descriptor::new(media_type::OCI_LAYER_GZIP, blob, 7),
            )]
            .into_iter()
            .collect(),
            created_by: String::new(),
            size: 0,
        };
        store.put_cache(&CacheKey([1; 32]), &record).unwrap();
        let times = store.area_dir(Area::SnapshotTimes);
        fs::create_dir_all(&times).unwrap();
        let file = |d: &Digest| times.join(format!("{}.json", d.hex()));
        for d in [kept, gone] {
            fs::write(file(&d), b"[[\"f\",1]]").unwrap();
        }
        fs::write(times.join("junk"), b"").unwrap();

        let lock = store.lock_exclusive().unwrap();
        let dry = PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        };
        let report = prune(&store, &lock, &dry).unwrap();
        let names: Vec<&str> = (report.class("snapshot times").unwrap().items.iter())
            .map(|(n, _)| n.as_str())
            .collect();
        let gone_name = format!("{}.json", gone.hex());
        assert_eq!(names, [gone_name.as_str(), "junk"]);
        assert!(file(&gone).exists(), "a dry run removed a file");

        prune(&store, &lock, &PruneOptions::default()).unwrap();
        assert!(file(&kept).exists(), "the kept layer lost its source times");
        assert!(!file(&gone).exists());
        assert!(!times.join("junk").exists());

        // --all drops the record, so its layer is gone too.
        let all = PruneOptions {
            all: true,
            ..PruneOptions::default()
        };
        prune(&store, &lock, &all).unwrap();
        assert_eq!(fs::read_dir(&times).unwrap().count(), 0);
    }
}

//! OCI images: the image config, manifests, importing base images (OCI
//! layouts, oci-archives, docker-archives, store tags) and exporting
//! results (OCI layout, oci-archive, docker-archive).
//!
//! Invariants:
//! - Everything it writes uses OCI media types and schemaVersion 2; JSON is
//!   serialized from typed structs with sorted maps, so equal images give
//!   equal digests.
//! - Imported content is verified against its digest before it enters the
//!   store; archive paths are never used to build file system paths except
//!   through a parsed [`Digest`].
//! - It knows nothing about builds: callers pass configs and layer
//!   descriptors that are already in the store.

mod archive;
mod config;
mod dirs;
mod export;
mod image;
mod import;
mod platform;
mod scan;
mod snapshot_tee;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

pub use config::{ContainerConfig, Empty, HealthConfig, History, ImageConfig, RootFs};
pub use dirs::{LayerDirs, layer_dirs, lower_dir, save_layer_dirs};
pub use export::{ExportImage, OutputKind, export};
pub use image::{Image, Manifest, load_image, write_image, write_index};
pub(crate) use import::{adopt_snapshots, import_docker_scan, import_oci_scan};
pub use import::{resolve_base, resolve_base_for};
pub use platform::{
    host_platform, index_platforms, parse_platform, pick_platform, platform_matches, stored_entry,
};
pub(crate) use scan::{ArchiveScan, scan_archive};
pub(crate) use snapshot_tee::{SnapshotTee, Unpacked};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{self, UnpackOptions};
use crate::store::{Descriptor, Store};

/// Unpacks `layers` in order into `dir` (whiteouts applied by `layer`).
/// Owners and device nodes are kept only when running as root.
pub fn unpack_image(store: &Store, layers: &[Descriptor], dir: &Path) -> Result<()> {
    let opts = UnpackOptions::for_current_user();
    for l in layers {
        unpack_layer(store, l, dir, &opts)?;
    }
    Ok(())
}

fn unpack_layer(store: &Store, l: &Descriptor, dir: &Path, opts: &UnpackOptions) -> Result<()> {
    let f = store.open_blob(&l.digest)?;
    let tar = layer::decompress(std::io::BufReader::new(f), &l.media_type)?;
    layer::unpack(tar, dir, opts).map_err(|e| match e {
        Error::Io { what, source } => Error::Io {
            what: format!("unpacking layer {}: {what}", l.digest),
            source,
        },
        other => other,
    })?;
    Ok(())
}

/// How a snapshot shows the mtimes of its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotTimes {
    /// As the layer tar says (a base image's layers: their mtimes are real,
    /// and timestamp-checked caches such as `.pyc` files match them).
    Layer,
    /// A build step's layer, whose mtimes at or after `epoch` were clamped
    /// to it: those files get the time the snapshot is made, so a later
    /// step's make or cargo sees changed sources as newer than what a cache
    /// mount kept from an earlier build (spec/README.md, "Timestamps").
    Step { epoch: u64 },
}

/// The layer unpacked on its own under `snapshots/<diff_id>`, with
/// whiteouts in overlayfs form, ready to be an overlay lowerdir. Made once:
/// unpacked into `tmp/`, then renamed into place, so a killed unpack leaves
/// no half snapshot and two builds making the same one do not collide.
pub fn layer_snapshot(store: &Store, l: &Descriptor, diff_id: &Digest) -> Result<PathBuf> {
    layer_snapshot_with(store, l, diff_id, SnapshotTimes::Layer)
}

/// [`layer_snapshot`] with the mtimes `times` says (when it has to be made).
pub fn layer_snapshot_with(
    store: &Store,
    l: &Descriptor,
    diff_id: &Digest,
    times: SnapshotTimes,
) -> Result<PathBuf> {
    let path = snapshot_path(store, diff_id);
    if path.is_dir() {
        return Ok(path);
    }
    // One unpack per layer at a time in this process: a step that needs a
    // snapshot another thread is making (the prefetch of a base, a
    // parallel stage) waits for it instead of unpacking it again.
    let lock = snapshot_lock(diff_id);
    let _making = lock
        .lock()
        .map_err(|_| Error::msg("a snapshot lock is poisoned"))?;
    if path.is_dir() {
        return Ok(path);
    }
    let tmp = store.temp_dir()?;
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).at("creating", &rootfs)?;
    let restamp = match times {
        SnapshotTimes::Layer => None,
        SnapshotTimes::Step { epoch } => Some(layer::Restamp {
            from: epoch,
            to: now_secs(),
        }),
    };
    let opts = UnpackOptions {
        overlay_whiteouts: true,
        restamp,
        ..UnpackOptions::for_current_user()
    };
    unpack_layer(store, l, &rootfs, &opts)?;
    if restamp.is_some() {
        apply_snapshot_times(store, diff_id, &rootfs)?;
    }
    adopt_snapshot(store, diff_id, &rootfs)
}

/// The mtimes a copy's files had at their source (context file, or the
/// source stage's snapshot), by layer path: what its snapshot shows.
pub fn source_times(entries: &[layer::Entry]) -> Vec<(String, i64)> {
    use std::os::unix::fs::MetadataExt;
    entries
        .iter()
        .filter_map(|e| match &e.kind {
            layer::EntryKind::File { source, .. } => std::fs::symlink_metadata(source)
                .ok()
                .map(|m| (e.path.clone(), m.mtime())),
            _ => None,
        })
        .collect()
}

fn times_path(store: &Store, diff_id: &Digest) -> PathBuf {
    store
        .area_dir(crate::store::Area::SnapshotTimes)
        .join(format!("{}.json", diff_id.hex()))
}

/// Records the source mtimes of the layer `diff_id`'s files (a copy's),
/// for when its snapshot is made.
pub fn save_snapshot_times(store: &Store, diff_id: &Digest, times: &[(String, i64)]) -> Result<()> {
    let path = times_path(store, diff_id);
    if path.exists() || has_snapshot(store, diff_id) {
        return Ok(());
    }
    let parent = store.area_dir(crate::store::Area::SnapshotTimes);
    std::fs::create_dir_all(&parent).at("creating", &parent)?;
    let bytes = serde_json::to_vec(times).map_err(|e| Error::msg(e.to_string()))?;
    store.write_atomic(&path, &bytes)
}

/// Gives the files of a freshly unpacked step snapshot the mtimes their
/// sources had, when recorded: a COPY that changed one file of a tree
/// shows only that file as new to a later make or cargo. Paths come from
/// strata's own record and are set without following symlinks; a path
/// that is not a regular file in the snapshot is skipped.
fn apply_snapshot_times(store: &Store, diff_id: &Digest, rootfs: &Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(times_path(store, diff_id)) else {
        return Ok(());
    };
    let Ok(times) = serde_json::from_slice::<Vec<(String, i64)>>(&bytes) else {
        return Ok(());
    };
    for (rel, mtime) in times {
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            continue;
        }
        let p = rootfs.join(&rel);
        // Only a regular file reached through real directories.
        let mut ok = true;
        let mut cur = rootfs.to_path_buf();
        let comps: Vec<&str> = rel.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            cur.push(c);
            if !std::fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
                ok = false;
                break;
            }
        }
        if !ok || !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
        if let Ok(f) = std::fs::File::options().write(true).open(&p) {
            let _ = f.set_modified(t);
        }
    }
    Ok(())
}

/// The lock of one snapshot's making (per diff_id, for this process).
fn snapshot_lock(diff_id: &Digest) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<Digest, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(*diff_id).or_default().clone()
}

/// Whether the layer `diff_id` has its snapshot already.
pub fn has_snapshot(store: &Store, diff_id: &Digest) -> bool {
    snapshot_path(store, diff_id).is_dir()
}

fn snapshot_path(store: &Store, diff_id: &Digest) -> PathBuf {
    store.root().join("snapshots").join(diff_id.hex())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes `dir` (a directory in the store's `tmp/`, holding the layer
/// `diff_id` in overlay form: a RUN's upper dir, an unpacked layer) the
/// layer's snapshot by renaming it into place. When another build made
/// the snapshot meanwhile, that one stays and `dir` is left to its owner.
pub fn adopt_snapshot(store: &Store, diff_id: &Digest, dir: &Path) -> Result<PathBuf> {
    let path = snapshot_path(store, diff_id);
    if path.is_dir() {
        return Ok(path);
    }
    let parent = store.root().join("snapshots");
    std::fs::create_dir_all(&parent).at("creating", &parent)?;
    match std::fs::rename(dir, &path) {
        Ok(()) => Ok(path),
        // Another build made it meanwhile.
        Err(_) if path.is_dir() => Ok(path),
        Err(e) => Err(Error::io(
            format!("renaming snapshot to {}", path.display()),
            e,
        )),
    }
}

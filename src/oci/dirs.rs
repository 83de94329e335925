//! Which directories each layer holds, with their mode and owner, and what
//! it deletes: enough to know the metadata of an existing directory in an
//! image without unpacking it. COPY uses it so that the parent directories
//! it must list in its layer keep the metadata they already have (`/tmp`
//! stays 1777) instead of being reset.
//!
//! Made once per layer: from the entries when strata writes the layer, else
//! by reading the layer's tar headers; kept as `layerdirs/<diff_id>.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{self, Entry, EntryKind};
use crate::store::{Descriptor, Store};

/// The directories of one layer (path → mode, uid, gid), its whiteouts and
/// opaque directories. Paths are relative, without a trailing `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDirs {
    pub dirs: BTreeMap<String, (u32, u32, u32)>,
    pub whiteouts: BTreeSet<String>,
    pub opaque: BTreeSet<String>,
}

impl LayerDirs {
    pub fn from_entries(entries: &[Entry]) -> LayerDirs {
        let mut d = LayerDirs::default();
        for e in entries {
            match e.kind {
                EntryKind::Dir => {
                    d.dirs
                        .insert(e.path.clone(), (e.mode & 0o7777, e.uid, e.gid));
                }
                EntryKind::Whiteout => {
                    d.whiteouts.insert(e.path.clone());
                }
                EntryKind::Opaque => {
                    d.opaque.insert(e.path.clone());
                }
                _ => {}
            }
        }
        d
    }

    /// From an uncompressed layer tar (headers only; contents are skipped).
    fn from_tar<R: Read>(tar: R) -> Result<LayerDirs> {
        let mut d = LayerDirs::default();
        let mut archive = tar::Archive::new(tar);
        let entries = archive
            .entries()
            .map_err(|e| Error::corrupt("layer", e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::corrupt("layer", e.to_string()))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize(&raw);
            let (parent, base) = match path.rsplit_once('/') {
                Some((p, b)) => (p.to_string(), b.to_string()),
                None => (String::new(), path.clone()),
            };
            if base == layer::OPAQUE_MARKER {
                d.opaque.insert(parent);
            } else if let Some(hidden) = base.strip_prefix(layer::WHITEOUT_PREFIX) {
                d.whiteouts.insert(join(&parent, hidden));
            } else if entry.header().entry_type().is_dir() && !path.is_empty() {
                let h = entry.header();
                let mode = h.mode().unwrap_or(0o755) & 0o7777;
                let uid = h.uid().unwrap_or(0) as u32;
                let gid = h.gid().unwrap_or(0) as u32;
                d.dirs.insert(path, (mode, uid, gid));
            }
        }
        Ok(d)
    }
}

fn normalize(p: &str) -> String {
    p.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn index_path(store: &Store, diff_id: &Digest) -> std::path::PathBuf {
    store
        .root()
        .join("layerdirs")
        .join(format!("{}.json", diff_id.hex()))
}

/// Records `dirs` for the layer `diff_id` (when strata has just written it).
pub fn save_layer_dirs(store: &Store, diff_id: &Digest, dirs: &LayerDirs) -> Result<()> {
    let path = index_path(store, diff_id);
    if path.exists() {
        return Ok(());
    }
    let parent = store.root().join("layerdirs");
    std::fs::create_dir_all(&parent).at("creating", &parent)?;
    let bytes = serde_json::to_vec(dirs).map_err(|e| Error::msg(e.to_string()))?;
    store.write_atomic(&path, &bytes)
}

/// The directory index of a layer, made from its tar the first time.
pub fn layer_dirs(store: &Store, desc: &Descriptor, diff_id: &Digest) -> Result<LayerDirs> {
    let path = index_path(store, diff_id);
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(d) = serde_json::from_slice(&bytes)
    {
        return Ok(d);
    }
    let f = store.open_blob(&desc.digest)?;
    let tar = layer::decompress(std::io::BufReader::new(f), &desc.media_type)?;
    let dirs = LayerDirs::from_tar(tar)?;
    save_layer_dirs(store, diff_id, &dirs)?;
    Ok(dirs)
}

/// The (mode, uid, gid) of directory `path` in the image made of `layers`
/// (bottom first), or None when it does not exist there as a directory.
pub fn lower_dir(
    store: &Store,
    layers: &[(Descriptor, Digest)],
    path: &str,
) -> Result<Option<(u32, u32, u32)>> {
    let path = normalize(path);
    let mut prefixes = Vec::new(); // path and its ancestors
    let mut p = path.as_str();
    loop {
        prefixes.push(p.to_string());
        match p.rsplit_once('/') {
            Some((parent, _)) => p = parent,
            None => break,
        }
    }
    for (desc, diff_id) in layers.iter().rev() {
        let d = layer_dirs(store, desc, diff_id)?;
        if let Some(meta) = d.dirs.get(&path) {
            return Ok(Some(*meta));
        }
        if prefixes.iter().any(|x| d.whiteouts.contains(x)) {
            return Ok(None);
        }
        // An opaque ancestor hides everything below it in lower layers.
        if prefixes.iter().skip(1).any(|x| d.opaque.contains(x)) {
            return Ok(None);
        }
    }
    Ok(None)
}

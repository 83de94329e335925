//! Where blobs are known to live on registries, so a push can ask the
//! registry to mount a blob from another repository instead of uploading
//! it again. Kept in `registry/sources.json` under the store: registry ->
//! digest -> repositories (most recent first, a few per blob). It is only a
//! hint: a wrong entry costs one refused mount request.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Result;
use crate::store::{Store, to_json};

/// Repositories remembered per blob and registry.
const MAX_REPOS: usize = 4;
/// Blobs remembered per registry (oldest entries dropped beyond this).
const MAX_BLOBS: usize = 50_000;

#[derive(Default, Serialize, Deserialize)]
struct Sources {
    #[serde(default)]
    registries: BTreeMap<String, BTreeMap<Digest, Vec<String>>>,
}

fn load(store: &Store) -> Sources {
    // A damaged hint file is ignored, never fatal.
    fs::read(super::state_dir(store).join("sources.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Repositories of `registry` known to hold `digest`.
pub fn known(store: &Store, registry: &str, digest: &Digest) -> Vec<String> {
    load(store)
        .registries
        .get(registry)
        .and_then(|m| m.get(digest))
        .cloned()
        .unwrap_or_default()
}

/// Records that `repo` on `registry` holds each of `digests`.
pub fn record(store: &Store, registry: &str, repo: &str, digests: &[Digest]) -> Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    let (d, lock) = super::lock_state(store, "sources")?;
    let mut s = load(store);
    let blobs = s.registries.entry(registry.to_string()).or_default();
    for digest in digests {
        let repos = blobs.entry(*digest).or_default();
        repos.retain(|r| r != repo);
        repos.insert(0, repo.to_string());
        repos.truncate(MAX_REPOS);
    }
    while blobs.len() > MAX_BLOBS {
        let Some(first) = blobs.keys().next().copied() else {
            break;
        };
        blobs.remove(&first);
    }
    store.write_atomic(&d.join("sources.json"), &to_json(&s)?)?;
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_most_recent_first_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let a = Digest::of(b"a");
        assert!(known(&s, "r:1", &a).is_empty());
        for repo in ["x", "y", "x", "z", "w", "v"] {
            record(&s, "r:1", repo, &[a]).unwrap();
        }
        assert_eq!(known(&s, "r:1", &a), ["v", "w", "z", "x"]);
        assert!(known(&s, "other", &a).is_empty());
        assert!(known(&s, "r:1", &Digest::of(b"b")).is_empty());
        // A damaged file is a hint lost, not an error.
        fs::write(t.path().join("registry/sources.json"), "{").unwrap();
        assert!(known(&s, "r:1", &a).is_empty());
        record(&s, "r:1", "q", &[a]).unwrap();
        assert_eq!(known(&s, "r:1", &a), ["q"]);
    }
}

//! The `RepoDigests` of stored images: `name@sha256:…` of the manifest a
//! registry holds, recorded when an image is pulled or pushed, shown by
//! `inspect` as `docker image inspect` does. Kept in
//! `registry/repo-digests.json` under the store: local manifest digest ->
//! repo digests, most recent first.

use std::collections::BTreeMap;
use std::fs;

use crate::digest::Digest;
use crate::error::Result;
use crate::reference::Reference;
use crate::store::{Store, to_json};

/// Repo digests remembered per manifest.
const MAX_PER_IMAGE: usize = 16;

type Table = BTreeMap<Digest, Vec<String>>;

fn load(store: &Store) -> Table {
    // Damaged or missing: nothing known (it is only shown, never trusted).
    fs::read(super::state_dir(store).join("repo-digests.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// `repository@digest` in Docker's short form (`debian@sha256:…`,
/// `localhost:5000/app@sha256:…`).
pub fn repo_digest(reference: &Reference, remote: &Digest) -> String {
    Reference {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        tag: None,
        digest: Some(*remote),
    }
    .familiar()
}

/// Records that the stored manifest `local` is `entry` on a registry.
pub fn record(store: &Store, local: &Digest, entry: String) -> Result<()> {
    let (d, lock) = super::lock_state(store, "repo-digests")?;
    let mut t = load(store);
    let list = t.entry(*local).or_default();
    list.retain(|e| *e != entry);
    list.insert(0, entry);
    list.truncate(MAX_PER_IMAGE);
    store.write_atomic(&d.join("repo-digests.json"), &to_json(&t)?)?;
    drop(lock);
    Ok(())
}

/// The repo digests recorded for each of `manifests`, each once.
pub fn of(store: &Store, manifests: &[Digest]) -> Vec<String> {
    let t = load(store);
    let mut out: Vec<String> = Vec::new();
    for m in manifests {
        for e in t.get(m).into_iter().flatten() {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_digests_are_listed_once_newest_first() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let m = Digest::of(b"manifest");
        let r = Digest::of(b"remote");
        let hub = Reference::parse("docker.io/library/debian:bookworm").unwrap();
        let local = Reference::parse("localhost:5000/app:1").unwrap();
        assert_eq!(repo_digest(&hub, &r), format!("debian@{r}"));
        record(&store, &m, repo_digest(&hub, &r)).unwrap();
        record(&store, &m, repo_digest(&local, &r)).unwrap();
        record(&store, &m, repo_digest(&hub, &r)).unwrap();
        assert_eq!(
            of(&store, &[m, m]),
            [format!("debian@{r}"), format!("localhost:5000/app@{r}")]
        );
        assert!(of(&store, &[r]).is_empty());
    }
}

//! Local image verbs: listing, naming (`tag`, `rmi`), `history`, `inspect`,
//! `prune`, `save` and `load`. The logic lives here; `cli` only parses flags
//! and renders what these functions return.
//!
//! Invariants:
//! - An image is named by a tag (`name[:tag]`, normalized with `:latest`),
//!   by its ID (the config digest, as docker) or by its manifest digest, each
//!   with or without `sha256:` and as any unambiguous hex prefix.
//! - `rmi` removes tags at once. The blobs of an image that is no longer
//!   tagged are deleted immediately only when nothing else references them
//!   (another image or a cache record) and no build holds the store;
//!   otherwise `prune` reclaims them later.
//! - Nothing here deletes a blob without the exclusive store lock, so a
//!   running build (which holds the shared lock) never loses a blob.
//! - An image a container (running or stopped) was made of keeps its
//!   blobs and snapshots until that container is removed: `rmi` refuses to
//!   untag its last name without `-f` (as docker's "conflict"), and with
//!   `-f` only untags it; `prune` counts containers as roots.

mod format;
mod history;
mod inspect;
mod prune;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{self, Image, Manifest};
use crate::store::{Descriptor, Platform, Store, StoreLock, media_type, normalize_reference};

pub use format::{ago, ellipsis, human_duration, human_size, now_unix, parse_rfc3339, parse_size};
pub use history::{HistoryRow, history};
pub use inspect::{InspectImage, InspectMetadata, InspectRootFs, inspect};
pub use prune::{PruneClass, PruneOptions, PruneReport, prune, remove_unreferenced};
pub use transfer::{ArchiveKind, LoadedImage, load, save};

/// An image in the store with every tag that names it.
#[derive(Clone, Debug)]
pub struct StoredImage {
    pub image: Image,
    /// Normalized tags pointing at this manifest, in index order.
    pub tags: Vec<String>,
    /// When it was found by a tag that names a multi-platform index of
    /// which this is this host's image: every platform of the index
    /// (`linux/arm64`, ...).
    pub platforms: Vec<String>,
    /// The tags among `tags` that name such an index, each with the
    /// platforms it names and those whose images the store holds (a pull
    /// of some platforms keeps the whole index).
    pub indexes: BTreeMap<String, IndexPlatforms>,
}

/// The platforms of a multi-platform index in the store.
#[derive(Clone, Debug, Default)]
pub struct IndexPlatforms {
    /// Every platform it names.
    pub named: Vec<String>,
    /// Those whose images the store holds.
    pub held: Vec<String>,
}

impl StoredImage {
    /// The image ID: the config digest.
    pub fn id(&self) -> Digest {
        self.image.config_digest
    }

    /// Sum of the layer blob sizes.
    pub fn size(&self) -> u64 {
        self.image.layers.iter().map(|l| l.size).sum()
    }

    /// Unix time of the config's `created`, if it has one.
    pub fn created_unix(&self) -> Option<i64> {
        self.image.config.created.as_deref().and_then(parse_rfc3339)
    }
}

/// Every image named by `index.json`, one per manifest, in index order. A
/// tag of a multi-platform index shows as this host's image of it (or
/// its first, when it has none for this host).
pub fn stored_images(store: &Store) -> Result<Vec<StoredImage>> {
    let mut out: Vec<StoredImage> = Vec::new();
    let mut pos: BTreeMap<Digest, usize> = BTreeMap::new();
    for mut entry in store.index_entries()? {
        let mut of_index = None;
        if media_type::is_index(&entry.media_type) {
            match host_entry(store, &entry.digest)? {
                Some((child, platforms)) => {
                    entry.digest = child.digest;
                    of_index = Some(platforms);
                }
                None => continue,
            }
        } else if !media_type::is_manifest(&entry.media_type) {
            continue;
        }
        let i = match pos.get(&entry.digest) {
            Some(&i) => i,
            None => {
                let image = oci::load_image(store, &entry.digest)?;
                out.push(StoredImage {
                    image,
                    tags: Vec::new(),
                    platforms: Vec::new(),
                    indexes: BTreeMap::new(),
                });
                pos.insert(entry.digest, out.len() - 1);
                out.len() - 1
            }
        };
        if let Some(name) = entry.ref_name() {
            out[i].tags.push(name.to_string());
            if let Some(p) = of_index {
                out[i].indexes.insert(name.to_string(), p);
            }
        }
    }
    Ok(out)
}

/// The platforms an image is for: those the store holds of an index it
/// is this host's image of, under tag `tag`; else its own.
fn platforms_under(img: &StoredImage, tag: Option<&str>) -> Vec<String> {
    match tag.and_then(|t| img.indexes.get(t)) {
        Some(p) => p.held.clone(),
        None => vec![img.image.platform().to_string()],
    }
}

/// The image an index has for this host (else its first the store
/// holds), and its platforms.
fn host_entry(store: &Store, index: &Digest) -> Result<Option<(Descriptor, IndexPlatforms)>> {
    let bytes = store.read_blob(index)?;
    let idx: crate::store::ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("index {index}"), e.to_string()))?;
    // A pulled index holds only the images pulled for it.
    let present: Vec<Descriptor> = idx
        .manifests
        .iter()
        .filter(|d| store.has_blob(&d.digest))
        .cloned()
        .collect();
    let host = oci::host_platform();
    let pick = oci::pick_platform(&present, &host).or(present.first());
    let named = |ds: &[Descriptor]| {
        ds.iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect()
    };
    Ok(pick
        .filter(|d| media_type::is_manifest(&d.media_type))
        .map(|d| {
            let platforms = IndexPlatforms {
                named: named(&idx.manifests),
                held: named(&present),
            };
            (d.clone(), platforms)
        }))
}

/// Images whose manifests are in the store but not in `index.json` (base
/// images imported for builds, untagged build results, images whose tags
/// were removed): what `images -a` adds and `prune` removes.
pub fn untagged_images(store: &Store) -> Result<Vec<StoredImage>> {
    let indexed: BTreeSet<Digest> = store.index_entries()?.iter().map(|d| d.digest).collect();
    let mut out = Vec::new();
    for (d, size) in store.list_blobs()? {
        if size > 1 << 20 || indexed.contains(&d) {
            continue;
        }
        let Ok(bytes) = store.read_blob(&d) else {
            continue;
        };
        if bytes.first() != Some(&b'{') {
            continue;
        }
        let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) else {
            continue;
        };
        if m.schema_version != 2
            || !(m.config.media_type == media_type::OCI_CONFIG
                || m.config.media_type == media_type::DOCKER_CONFIG)
        {
            continue;
        }
        if let Ok(image) = oci::load_image(store, &d) {
            out.push(StoredImage {
                image,
                tags: Vec::new(),
                platforms: Vec::new(),
                indexes: BTreeMap::new(),
            });
        }
    }
    Ok(out)
}

/// One row of `strata images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRow {
    /// `<none>` for an untagged image.
    pub repository: String,
    pub tag: String,
    /// The config digest.
    pub id: Digest,
    pub manifest: Digest,
    pub created: Option<i64>,
    /// Sum of the layer blob sizes.
    pub size: u64,
    /// Bytes of this image's layers that another image also uses.
    pub shared_size: u64,
    /// What it is for: its platform, or for a tag of a multi-platform
    /// index the platforms whose images the store holds (the row's other
    /// columns are this host's image of it).
    pub platforms: Vec<String>,
}

/// `repo:tag` -> (`repo`, `tag`); a digest reference has tag `<none>`.
pub fn split_reference(name: &str) -> (String, String) {
    if let Some((repo, _)) = name.split_once('@') {
        return (repo.to_string(), "<none>".to_string());
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (name.to_string(), "<none>".to_string()),
    }
}

/// The rows of `strata images`: one per tag (and one per untagged image in
/// the index); with `all`, also the untagged images among the blobs.
/// Sorted by repository and tag, untagged last.
pub fn list(store: &Store, all: bool) -> Result<Vec<ImageRow>> {
    let mut images = stored_images(store)?;
    if all {
        images.extend(untagged_images(store)?);
    }
    // Which distinct images (by manifest) use each layer blob.
    let mut users: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
    for img in &images {
        for l in &img.image.layers {
            users
                .entry(l.digest)
                .or_default()
                .insert(img.image.manifest.digest);
        }
    }
    let mut rows = Vec::new();
    for img in &images {
        let mut seen = BTreeSet::new();
        let shared_size = img
            .image
            .layers
            .iter()
            .filter(|l| seen.insert(l.digest))
            .filter(|l| users.get(&l.digest).is_some_and(|u| u.len() > 1))
            .map(|l| l.size)
            .sum();
        let row = |repository: String, tag: String, full: Option<&str>| ImageRow {
            repository,
            tag,
            id: img.id(),
            manifest: img.image.manifest.digest,
            created: img.created_unix(),
            size: img.size(),
            shared_size,
            platforms: platforms_under(img, full),
        };
        if img.tags.is_empty() {
            rows.push(row("<none>".into(), "<none>".into(), None));
        }
        for t in &img.tags {
            let (r, tag) = split_reference(t);
            rows.push(row(r, tag, Some(t)));
        }
    }
    rows.sort_by(|a, b| {
        let none = |r: &ImageRow| r.repository == "<none>";
        (none(a), &a.repository, &a.tag, a.id).cmp(&(none(b), &b.repository, &b.tag, b.id))
    });
    Ok(rows)
}

/// How a user's NAME|ID matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matched {
    /// A tag (normalized).
    Tag(String),
    /// An image ID or manifest digest (or a prefix of one).
    Id,
}

/// Finds the image `what` names: a tag, else an ID / manifest digest (full
/// or an unambiguous hex prefix, with or without `sha256:`).
pub fn resolve(store: &Store, what: &str) -> Result<(StoredImage, Matched)> {
    let images = stored_images(store)?;
    let name = normalize_reference(what);
    if let Some(img) = images.iter().find(|i| i.tags.contains(&name)) {
        let mut img = img.clone();
        img.platforms = (img.indexes.get(&name))
            .map(|p| p.named.clone())
            .unwrap_or_default();
        return Ok((img, Matched::Tag(name)));
    }
    let hex = what.strip_prefix("sha256:").unwrap_or(what);
    let is_hex = !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_hex {
        let found: Vec<&StoredImage> = images
            .iter()
            .filter(|i| {
                i.id().hex().starts_with(hex) || i.image.manifest.digest.hex().starts_with(hex)
            })
            .collect();
        // Several manifests can share one config (same ID): that is one
        // image for `rmi`'s purposes only if it is the same manifest.
        match found.as_slice() {
            [] => {}
            [one] => return Ok(((*one).clone(), Matched::Id)),
            many => {
                let ids: BTreeSet<String> = many.iter().map(|i| i.id().to_string()).collect();
                return Err(Error::msg(format!(
                    "`{what}` is ambiguous: it matches {} images ({})",
                    many.len(),
                    ids.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    Err(Error::msg(format!("no such image: {what}")))
}

/// The image `what` names for `platform` (`run --platform`): a tag of an
/// index gives its entry for that platform, whose manifest the store must
/// hold; any other image must be of that platform.
pub fn resolve_for(store: &Store, what: &str, platform: &Platform) -> Result<StoredImage> {
    let name = normalize_reference(what);
    if let Some(d) = store.resolve(&name)?
        && media_type::is_index(&d.media_type)
    {
        let entry = oci::stored_entry(store, &name, &d.digest, platform)?;
        return Ok(StoredImage {
            image: oci::load_image(store, &entry.digest)?,
            tags: vec![name],
            platforms: Vec::new(),
            indexes: BTreeMap::new(),
        });
    }
    let (img, _) = resolve(store, what)?;
    let have = img.image.platform();
    if !oci::platform_matches(platform, &have) {
        return Err(Error::msg(format!(
            "image {what} is for {have}, not for {platform} (it is one image, not a \
             multi-platform index; `strata pull --platform {platform} {what}` gets that \
             platform's image if a registry has one)"
        )));
    }
    Ok(img)
}

/// `strata tag SRC DST`: names the image SRC names as DST; returns the
/// normalized DST.
pub fn tag(store: &Store, src: &str, dst: &str) -> Result<String> {
    let parsed = crate::reference::Reference::parse(dst)
        .map_err(|e| Error::msg(format!("invalid reference `{dst}`: {e}")))?;
    if parsed.digest.is_some() {
        return Err(Error::msg(format!(
            "`{dst}`: a tag cannot contain a digest"
        )));
    }
    let (img, _) = resolve(store, src)?;
    let name = parsed.normalized();
    let mut desc = img.image.manifest.clone();
    desc.annotations = None;
    store.set_tag(&name, &desc)?;
    Ok(name)
}

/// What `rmi` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RmiReport {
    /// Tags removed, in order.
    pub untagged: Vec<String>,
    /// Image IDs no longer named by any tag.
    pub deleted: Vec<Digest>,
    /// Blobs deleted from disk (manifest, config, layers nothing else uses).
    pub blobs_removed: Vec<Digest>,
    /// True when blobs were left for `prune` because a build holds the store.
    pub deferred: bool,
}

/// `strata rmi [-f] NAME|ID...`. A tag is removed; an ID names every tag of
/// its image, and is refused (before anything is removed) when several
/// tags point at it, unless `force`.
pub fn rmi(store: &Store, targets: &[String], force: bool) -> Result<RmiReport> {
    // Decide everything first, so a refusal removes nothing.
    let mut plan: Vec<(String, Digest)> = Vec::new();
    let mut manifests = Vec::new();
    let users = container_users(store)?;
    for t in targets {
        let (img, how) = resolve(store, t)?;
        match how {
            Matched::Tag(name) => {
                let last = img.tags.iter().all(|n| *n == name);
                if let (Some(c), true, false) = (users.get(&img.image.manifest.digest), last, force)
                {
                    return Err(Error::msg(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must \
                         force) - container {c} is using its referenced image {}",
                        short_id(&img.id())
                    )));
                }
                plan.push((name, img.image.manifest.digest))
            }
            Matched::Id => {
                if let (Some(c), false) = (users.get(&img.image.manifest.digest), force) {
                    return Err(Error::msg(format!(
                        "conflict: unable to delete {} (must be forced) - image is being \
                         used by container {c}",
                        short_id(&img.id())
                    )));
                }
                if img.tags.len() > 1 && !force {
                    return Err(Error::msg(format!(
                        "unable to delete {} (must be forced): image is referenced by \
                         several tags ({})",
                        short_id(&img.id()),
                        img.tags.join(", ")
                    )));
                }
                plan.extend(
                    img.tags
                        .iter()
                        .map(|n| (n.clone(), img.image.manifest.digest)),
                );
            }
        }
        manifests.push(img.image.manifest.digest);
    }
    let mut report = RmiReport::default();
    for (name, _) in &plan {
        if report.untagged.contains(name) {
            continue;
        }
        if store.remove_tag(name)?.is_some() {
            report.untagged.push(name.clone());
        }
    }
    // Untagged index entries named by ID go too.
    remove_unnamed_entries(store, &manifests)?;
    let remaining: BTreeSet<Digest> = store.index_entries()?.iter().map(|d| d.digest).collect();
    let mut gone = Vec::new();
    for m in manifests {
        if !remaining.contains(&m) && !gone.contains(&m) {
            gone.push(m);
        }
    }
    // An image a container uses stays (untagged) until the container goes.
    gone.retain(|m| !users.contains_key(m));
    let mut gone_images = Vec::new();
    for m in &gone {
        match oci::load_image(store, m) {
            Ok(img) => {
                if !report.deleted.contains(&img.config_digest) {
                    report.deleted.push(img.config_digest);
                }
                gone_images.push(img);
            }
            Err(_) => continue,
        }
    }
    if gone_images.is_empty() {
        return Ok(report);
    }
    match store.try_lock_exclusive()? {
        Some(lock) => report.blobs_removed = remove_unused_blobs(store, &lock, &gone_images)?,
        None => report.deferred = true,
    }
    Ok(report)
}

/// The manifests containers (running or not) were made of, each with the
/// first such container's short id and name (`3f2a1b0c9d8e (web)`).
fn container_users(store: &Store) -> Result<BTreeMap<Digest, String>> {
    let mut users = BTreeMap::new();
    for c in crate::container::list(store)? {
        if let Ok(d) = c.config.manifest.parse::<Digest>() {
            users
                .entry(d)
                .or_insert_with(|| format!("{} ({})", c.short_id(), c.config.name));
        }
    }
    Ok(users)
}

fn remove_unnamed_entries(store: &Store, manifests: &[Digest]) -> Result<()> {
    let unnamed = store
        .index_entries()?
        .into_iter()
        .any(|e| e.ref_name().is_none() && manifests.contains(&e.digest));
    if unnamed {
        store.remove_index_entries(&|e: &Descriptor| {
            e.ref_name().is_none() && manifests.contains(&e.digest)
        })?;
    }
    Ok(())
}

/// Deletes the blobs of `gone` that no image in the index, no other image
/// blob of `gone` and no cache record still uses. Needs the exclusive lock.
fn remove_unused_blobs(store: &Store, lock: &StoreLock, gone: &[Image]) -> Result<Vec<Digest>> {
    let blobs: Vec<Digest> = (gone.iter())
        .flat_map(|img| {
            [img.manifest.digest, img.config_digest]
                .into_iter()
                .chain(img.layers.iter().map(|l| l.digest))
        })
        .collect();
    prune::remove_unreferenced(store, lock, &blobs)
}

/// The first 12 hex digits of a digest (docker's short image ID).
pub fn short_id(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reference_keeps_registry_ports() {
        assert_eq!(
            split_reference("example/app:1.0"),
            ("example/app".into(), "1.0".into())
        );
        assert_eq!(
            split_reference("host:5000/x:2"),
            ("host:5000/x".into(), "2".into())
        );
        assert_eq!(
            split_reference("host:5000/x"),
            ("host:5000/x".into(), "<none>".into())
        );
        let d = Digest::of(b"x");
        assert_eq!(
            split_reference(&format!("x@{d}")),
            ("x".into(), "<none>".into())
        );
    }
}

//! `strata inspect`: `docker image inspect`'s JSON shape for stored images.

use serde::Serialize;

use crate::error::Result;
use crate::oci::ContainerConfig;
use crate::store::Store;

use super::StoredImage;

/// One element of `strata inspect`'s JSON array (docker's field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectImage {
    /// `sha256:` + the config digest.
    pub id: String,
    pub repo_tags: Vec<String>,
    /// Always empty: nothing local comes from a registry by digest.
    pub repo_digests: Vec<String>,
    pub parent: String,
    /// The config's top-level `comment`.
    pub comment: String,
    pub created: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    /// Sum of the layer blob sizes.
    pub size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: InspectMetadata,
    /// A tag of a multi-platform index: its platforms (this is this
    /// host's image of it). Not in docker's document.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub fs_type: String,
    /// The diff_ids.
    pub layers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// The store keeps no tag times: docker's zero time, as for an image
    /// never tagged.
    pub last_tag_time: String,
}

/// The inspect document of one image. `RepoTags` lists every tag of any
/// manifest with the same config (the same image ID).
pub fn inspect(store: &Store, img: &StoredImage, all: &[StoredImage]) -> Result<InspectImage> {
    let c = &img.image.config;
    // `comment` is not part of the typed config: read it from the raw JSON.
    let raw = store.read_blob(&img.image.config_digest)?;
    let comment = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v.get("comment")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut repo_tags: Vec<String> = Vec::new();
    let same: Vec<crate::digest::Digest> = all
        .iter()
        .filter(|o| o.id() == img.id())
        .map(|o| o.image.manifest.digest)
        .chain([img.image.manifest.digest])
        .collect();
    for other in all.iter().filter(|o| o.id() == img.id()) {
        for t in &other.tags {
            if !repo_tags.contains(t) {
                repo_tags.push(t.clone());
            }
        }
    }
    Ok(InspectImage {
        id: img.id().to_string(),
        repo_tags,
        repo_digests: crate::registry::repo_digests::of(store, &same),
        parent: String::new(),
        comment,
        created: c.created.clone().unwrap_or_default(),
        author: c.author.clone().unwrap_or_default(),
        config: c.config.clone(),
        architecture: c.architecture.clone(),
        variant: c.variant.clone(),
        os: c.os.clone(),
        size: img.size(),
        root_fs: InspectRootFs {
            fs_type: c.rootfs.fs_type.clone(),
            layers: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
        },
        metadata: InspectMetadata {
            last_tag_time: "0001-01-01T00:00:00Z".to_string(),
        },
        platforms: img.platforms.clone(),
    })
}

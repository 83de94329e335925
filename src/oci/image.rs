//! Image manifests: writing an image (config + manifest) to the store and
//! loading one back, validated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::{Descriptor, ImageIndex, Platform, Store, media_type, to_json};

use super::ImageConfig;

/// An image manifest (OCI, or Docker schema 2, which has the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest, config and layers that exist in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub manifest: Descriptor,
    pub config: ImageConfig,
    pub config_digest: Digest,
    pub layers: Vec<Descriptor>,
}

impl Image {
    pub fn platform(&self) -> Platform {
        platform_of(&self.config)
    }
}

pub(crate) fn platform_of(c: &ImageConfig) -> Platform {
    Platform {
        architecture: c.architecture.clone(),
        os: c.os.clone(),
        variant: c.variant.clone(),
    }
}

/// Writes config + manifest (OCI media types, schemaVersion 2) to the store
/// and returns the manifest descriptor (with the image's platform).
pub fn write_image(
    store: &Store,
    config: &ImageConfig,
    layers: &[Descriptor],
) -> Result<Descriptor> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(Error::msg(format!(
            "image config lists {} diff_ids but the manifest has {} layers",
            config.rootfs.diff_ids.len(),
            layers.len()
        )));
    }
    let bytes = to_json(config)?;
    let digest = store.put_blob(&bytes)?;
    let config_desc = Descriptor::new(media_type::OCI_CONFIG, digest, bytes.len() as u64);
    write_manifest(store, config_desc, layers, platform_of(config))
}

/// Writes an OCI manifest for an existing config blob.
pub(crate) fn write_manifest(
    store: &Store,
    config: Descriptor,
    layers: &[Descriptor],
    platform: Platform,
) -> Result<Descriptor> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config,
        layers: layers
            .iter()
            .map(|l| Descriptor {
                platform: None,
                ..l.clone()
            })
            .collect(),
        annotations: None,
    };
    let bytes = to_json(&manifest)?;
    let digest = store.put_blob(&bytes)?;
    let mut desc = Descriptor::new(media_type::OCI_MANIFEST, digest, bytes.len() as u64);
    desc.platform = Some(platform);
    Ok(desc)
}

/// Writes an OCI image index of `manifests` (each with its platform).
pub fn write_index(store: &Store, manifests: &[Descriptor]) -> Result<Descriptor> {
    let index = ImageIndex {
        manifests: manifests.to_vec(),
        ..ImageIndex::default()
    };
    let bytes = to_json(&index)?;
    let digest = store.put_blob(&bytes)?;
    Ok(Descriptor::new(
        media_type::OCI_INDEX,
        digest,
        bytes.len() as u64,
    ))
}

/// Parses and checks a manifest blob already read from `what`.
pub(crate) fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest> {
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(what.to_string(), e.to_string()))?;
    if m.schema_version != 2 {
        return Err(Error::corrupt(
            what.to_string(),
            format!("schemaVersion {} (expected 2)", m.schema_version),
        ));
    }
    if let Some(mt) = &m.media_type
        && !media_type::is_manifest(mt)
    {
        return Err(Error::corrupt(
            what.to_string(),
            format!("media type `{mt}` is not an image manifest"),
        ));
    }
    if m.config.media_type != media_type::OCI_CONFIG
        && m.config.media_type != media_type::DOCKER_CONFIG
    {
        return Err(Error::Unsupported(format!(
            "{what}: config media type `{}`",
            m.config.media_type
        )));
    }
    for l in &m.layers {
        if !media_type::is_layer(&l.media_type) {
            return Err(Error::Unsupported(format!(
                "{what}: layer media type `{}`",
                l.media_type
            )));
        }
    }
    Ok(m)
}

/// Loads the image whose manifest is `manifest` from the store, validating
/// manifest and config (OCI and Docker schema 2 media types).
pub fn load_image(store: &Store, manifest: &Digest) -> Result<Image> {
    let what = format!("manifest {manifest}");
    let bytes = store.read_blob(manifest)?;
    let m = parse_manifest(&bytes, &what)?;
    let config_bytes = store.read_blob(&m.config.digest)?;
    if config_bytes.len() as u64 != m.config.size {
        return Err(Error::corrupt(
            format!("config {}", m.config.digest),
            format!(
                "size {} but the manifest says {}",
                config_bytes.len(),
                m.config.size
            ),
        ));
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::corrupt(format!("config {}", m.config.digest), e.to_string()))?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::corrupt(
            what,
            format!(
                "{} layers but the config lists {} diff_ids",
                m.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let mut desc = Descriptor::new(
        m.media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string()),
        *manifest,
        bytes.len() as u64,
    );
    desc.platform = Some(platform_of(&config));
    Ok(Image {
        manifest: desc,
        config_digest: m.config.digest,
        config,
        layers: m.layers,
    })
}

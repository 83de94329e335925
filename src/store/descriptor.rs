//! OCI content descriptors, platforms and the image index, as they appear in
//! JSON (serde names follow the image-spec).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types strata reads and writes.
pub mod media_type {
    pub const OCI_LAYOUT_VERSION: &str = "1.0.0";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

    /// The OCI `org.opencontainers.image.ref.name` annotation (a tag).
    pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// containerd's full image name annotation.
    pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

    /// Whether `mt` names an image manifest (OCI or Docker schema 2).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// Whether `mt` names an index / manifest list.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// Whether `mt` names a layer strata can unpack.
    pub fn is_layer(mt: &str) -> bool {
        matches!(
            mt,
            OCI_LAYER | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | DOCKER_LAYER | DOCKER_LAYER_GZIP
        )
    }
}

/// An OCI content descriptor: what a blob is, its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: None,
            platform: None,
        }
    }

    /// The value of one annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(media_type::ANNOTATION_REF_NAME)
    }
}

/// The platform an image runs on (OCI names: `amd64`, `arm64`, `linux`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An OCI image index (`index.json` of a layout, or an index blob).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Default for ImageIndex {
    fn default() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
        }
    }
}

impl ImageIndex {
    /// Adds `desc` under the reference `name` (as `ref.name` and
    /// `io.containerd.image.name` annotations), replacing any entry that
    /// already carries that name.
    pub fn set_ref(&mut self, name: &str, desc: &Descriptor) {
        let mut entry = desc.clone();
        let ann = entry.annotations.get_or_insert_with(BTreeMap::new);
        ann.insert(
            media_type::ANNOTATION_REF_NAME.to_string(),
            name.to_string(),
        );
        ann.insert(
            media_type::ANNOTATION_CONTAINERD_NAME.to_string(),
            name.to_string(),
        );
        match self
            .manifests
            .iter()
            .position(|m| m.ref_name() == Some(name))
        {
            Some(i) => self.manifests[i] = entry,
            None => self.manifests.push(entry),
        }
    }

    /// The entry whose `ref.name` is `name`.
    pub fn find_ref(&self, name: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|m| m.ref_name() == Some(name))
    }
}

/// The `oci-layout` file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciLayoutFile {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_json_uses_oci_names_and_omits_empty() {
        let d = Descriptor::new(media_type::OCI_CONFIG, Digest::of(b"x"), 1);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["mediaType"], media_type::OCI_CONFIG);
        assert_eq!(v["size"], 1);
        assert!(v.get("annotations").is_none());
        assert!(v.get("platform").is_none());
        let back: Descriptor = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn set_ref_replaces_same_name_only() {
        let mut idx = ImageIndex::default();
        let a = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"a"), 1);
        let b = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"b"), 1);
        idx.set_ref("x:1", &a);
        idx.set_ref("x:2", &a);
        idx.set_ref("x:1", &b);
        assert_eq!(idx.manifests.len(), 2);
        assert_eq!(idx.find_ref("x:1").unwrap().digest, b.digest);
        assert_eq!(idx.find_ref("x:2").unwrap().digest, a.digest);
        assert!(idx.find_ref("x:3").is_none());
    }
}

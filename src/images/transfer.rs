//! `strata save` and `strata load`: images to and from docker-archive and
//! oci-archive tar files.

use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{self, ArchiveScan, ExportImage, Image, OutputKind};
use crate::store::{Descriptor, ImageIndex, Store, media_type, parse_json};

use super::{Matched, resolve};

/// Writes the images `names` name (tags or IDs) into one archive at `dest`.
/// Tags become the archive's names; an image named by ID is saved unnamed.
pub fn save(store: &Store, names: &[String], kind: OutputKind, dest: &Path) -> Result<()> {
    if names.is_empty() {
        return Err(Error::msg("save: name at least one image"));
    }
    let mut images: Vec<ExportImage> = Vec::new();
    for n in names {
        let (img, how) = resolve(store, n)?;
        let mut manifest = img.image.manifest.clone();
        // A tag of a multi-platform index saves the index (and every
        // image of it), except to a docker archive: this host's image.
        if let Matched::Tag(t) = &how
            && kind != OutputKind::Docker
            && let Some(d) = store.resolve(t)?
            && media_type::is_index(&d.media_type)
        {
            manifest = d;
        }
        manifest.annotations = None;
        let i = match images
            .iter()
            .position(|e| e.manifest.digest == manifest.digest)
        {
            Some(i) => i,
            None => {
                images.push(ExportImage {
                    manifest,
                    names: Vec::new(),
                });
                images.len() - 1
            }
        };
        if let Matched::Tag(t) = how
            && !images[i].names.contains(&t)
        {
            images[i].names.push(t);
        }
    }
    oci::export(store, &images, kind, dest)
}

/// The kind of archive `load` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `oci-layout` + `index.json` (also what newer `docker save` writes
    /// beside `manifest.json`; preferred, as it keeps manifests byte-exact).
    Oci,
    /// `manifest.json` only.
    Docker,
}

/// One image `load` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    pub manifest: Descriptor,
    pub config_digest: Digest,
    /// The tags it now has in the store (normalized).
    pub names: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

/// Imports every image of the docker-archive or oci-archive at `path`
/// (detected by content) and tags each by the names the archive gives it.
/// The archive is read once; its layers are unpacked into their snapshots
/// beside that read, so a build's first RUN need not wait for them.
pub fn load(store: &Store, path: &Path) -> Result<(ArchiveKind, Vec<LoadedImage>)> {
    let mut scan = oci::scan_archive(store, path, true)?;
    let index: Option<ImageIndex> = match &scan.index {
        Some(b) => Some(parse_json(b, &path.join("index.json"))?),
        None => None,
    };
    let docker: Option<Vec<DockerEntry>> = match &scan.docker_manifest {
        Some(b) => Some(parse_json(b, &path.join("manifest.json"))?),
        None => None,
    };
    if scan.oci_layout.is_some()
        && let Some(index) = index
    {
        return Ok((ArchiveKind::Oci, load_oci(store, &mut scan, &index)?));
    }
    if let Some(entries) = docker {
        return Ok((
            ArchiveKind::Docker,
            load_docker(store, &mut scan, &entries)?,
        ));
    }
    Err(Error::msg(format!(
        "{} is neither a docker-archive (no manifest.json) nor an oci-archive \
         (no oci-layout and index.json)",
        path.display()
    )))
}

fn load_oci(store: &Store, scan: &mut ArchiveScan, index: &ImageIndex) -> Result<Vec<LoadedImage>> {
    let path = scan.path.clone();
    if index.manifests.is_empty() {
        return Err(Error::msg(format!("{} contains no image", path.display())));
    }
    // The scan copied every blob of the archive into the store (verified);
    // the first import checks its image, the rest only their manifests.
    let mut out: Vec<LoadedImage> = Vec::new();
    let mut imported = false;
    for entry in &index.manifests {
        let name = entry.ref_name().map(str::to_string);
        let image = if !imported || media_type::is_index(&entry.media_type) {
            if name.is_none() && index.manifests.len() > 1 {
                // import_oci_scan needs a name to pick among several entries.
                import_through_named_sibling(store, scan, index, entry)?
            } else {
                oci::import_oci_scan(store, scan, name.as_deref(), None)?
            }
        } else {
            let image = checked_load(store, &entry.digest)?;
            oci::adopt_snapshots(store, scan, &image)?;
            image
        };
        imported = true;
        record(store, &mut out, image, name.clone())?;
        // A named index whose images all came with the archive stays an
        // index (its tag names it, as it was saved).
        if let Some(n) = name
            && media_type::is_index(&entry.media_type)
            && index_complete(store, &entry.digest)?
        {
            let mut desc = entry.clone();
            desc.annotations = None;
            store.set_tag(&crate::store::normalize_reference(&n), &desc)?;
        }
    }
    Ok(out)
}

/// Whether the store holds an index's blob and every blob of its images.
fn index_complete(store: &Store, index: &Digest) -> Result<bool> {
    if !store.has_blob(index) {
        return Ok(false);
    }
    let idx: ImageIndex = serde_json::from_slice(&store.read_blob(index)?)
        .map_err(|e| Error::corrupt(format!("index {index}"), e.to_string()))?;
    for m in &idx.manifests {
        if !media_type::is_manifest(&m.media_type) || checked_load(store, &m.digest).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// For an unnamed entry among several: import through a named sibling (or
/// fail if there is none), then load the entry from the store.
fn import_through_named_sibling(
    store: &Store,
    scan: &mut ArchiveScan,
    index: &ImageIndex,
    entry: &Descriptor,
) -> Result<Image> {
    let named = index.manifests.iter().find_map(|m| m.ref_name());
    match named {
        Some(n) => {
            oci::import_oci_scan(store, scan, Some(n), None)?;
            if !media_type::is_manifest(&entry.media_type) {
                return Err(Error::Unsupported(format!(
                    "loading an unnamed multi-platform index from {}",
                    scan.path.display()
                )));
            }
            let image = checked_load(store, &entry.digest)?;
            oci::adopt_snapshots(store, scan, &image)?;
            Ok(image)
        }
        None => Err(Error::Unsupported(format!(
            "loading several unnamed images from {}",
            scan.path.display()
        ))),
    }
}

/// `load_image`, plus: every layer blob is present.
fn checked_load(store: &Store, manifest: &Digest) -> Result<Image> {
    let img = oci::load_image(store, manifest)?;
    for l in &img.layers {
        if !store.has_blob(&l.digest) {
            return Err(Error::corrupt(
                format!("image {manifest}"),
                format!("layer {} is missing from the archive", l.digest),
            ));
        }
    }
    Ok(img)
}

fn load_docker(
    store: &Store,
    scan: &mut ArchiveScan,
    entries: &[DockerEntry],
) -> Result<Vec<LoadedImage>> {
    if entries.is_empty() {
        return Err(Error::msg(format!(
            "{} lists no image",
            scan.path.display()
        )));
    }
    let mut out = Vec::new();
    for e in entries {
        let tags: Vec<String> = e.repo_tags.clone().unwrap_or_default();
        let reference = match (tags.first(), entries.len()) {
            (Some(t), _) => Some(t.clone()),
            (None, 1) => None,
            (None, _) => {
                return Err(Error::Unsupported(format!(
                    "loading several images from {} when some have no RepoTags",
                    scan.path.display()
                )));
            }
        };
        let image = oci::import_docker_scan(store, scan, reference.as_deref())?;
        if tags.is_empty() {
            record(store, &mut out, image.clone(), None)?;
        }
        for t in tags {
            record(store, &mut out, image.clone(), Some(t))?;
        }
    }
    Ok(out)
}

/// Tags `image` as `name` (if any) and adds it to `out` (once per manifest).
fn record(
    store: &Store,
    out: &mut Vec<LoadedImage>,
    image: Image,
    name: Option<String>,
) -> Result<()> {
    let mut desc = image.manifest.clone();
    desc.annotations = None;
    let i = match out.iter().position(|l| l.manifest.digest == desc.digest) {
        Some(i) => i,
        None => {
            out.push(LoadedImage {
                manifest: desc.clone(),
                config_digest: image.config_digest,
                names: Vec::new(),
            });
            out.len() - 1
        }
    };
    if let Some(n) = name {
        let n = crate::store::normalize_reference(&n);
        store.set_tag(&n, &desc)?;
        if !out[i].names.contains(&n) {
            out[i].names.push(n);
        }
    } else if store
        .index_entries()?
        .iter()
        .all(|e| e.digest != desc.digest)
    {
        // Keep an unnamed image reachable (docker lists it as <none>).
        store.add_index_entry(&desc)?;
    }
    Ok(())
}

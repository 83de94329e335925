//! `strata save` and `strata load`: images to and from docker-archive and
//! oci-archive tar files.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::ir::BaseRef;
use crate::oci::{self, ExportImage, Image, OutputKind};
use crate::store::{Descriptor, ImageIndex, MAX_SMALL_BLOB, Store, media_type, parse_json};

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

struct Members {
    oci_layout: bool,
    index: Option<ImageIndex>,
    docker_manifest: Option<Vec<DockerEntry>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

fn read_members(path: &Path) -> Result<Members> {
    let mut f = File::open(path).at("opening", path)?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).at("reading", path)?;
    if (n >= 2 && magic[..2] == [0x1f, 0x8b]) || (n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::Unsupported(format!(
            "loading a compressed archive ({}); decompress it first",
            path.display()
        )));
    }
    let f = File::open(path).at("opening", path)?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut m = Members {
        oci_layout: false,
        index: None,
        docker_manifest: None,
    };
    for entry in ar.entries().at("reading", path)? {
        let mut entry = entry.at("reading", path)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
            Err(_) => continue,
        };
        if !matches!(name.as_str(), "oci-layout" | "index.json" | "manifest.json") {
            continue;
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_SMALL_BLOB + 1)
            .read_to_end(&mut bytes)
            .at("reading", path)?;
        let what = path.join(&name);
        match name.as_str() {
            "oci-layout" => m.oci_layout = true,
            "index.json" => m.index = Some(parse_json(&bytes, &what)?),
            _ => m.docker_manifest = Some(parse_json(&bytes, &what)?),
        }
    }
    Ok(m)
}

/// Imports every image of the docker-archive or oci-archive at `path`
/// (detected by content) and tags each by the names the archive gives it.
pub fn load(store: &Store, path: &Path) -> Result<(ArchiveKind, Vec<LoadedImage>)> {
    let m = read_members(path)?;
    let archive = path.to_path_buf();
    if m.oci_layout
        && let Some(index) = m.index
    {
        return Ok((ArchiveKind::Oci, load_oci(store, archive, &index)?));
    }
    if let Some(entries) = m.docker_manifest {
        return Ok((ArchiveKind::Docker, load_docker(store, archive, &entries)?));
    }
    Err(Error::msg(format!(
        "{} is neither a docker-archive (no manifest.json) nor an oci-archive \
         (no oci-layout and index.json)",
        path.display()
    )))
}

fn load_oci(store: &Store, path: PathBuf, index: &ImageIndex) -> Result<Vec<LoadedImage>> {
    if index.manifests.is_empty() {
        return Err(Error::msg(format!("{} contains no image", path.display())));
    }
    // The first import copies every blob of the archive into the store
    // (verified); the rest only need their manifests checked.
    let mut out: Vec<LoadedImage> = Vec::new();
    let mut imported = false;
    for entry in &index.manifests {
        let name = entry.ref_name().map(str::to_string);
        let image = if !imported || media_type::is_index(&entry.media_type) {
            if name.is_none() && index.manifests.len() > 1 {
                // resolve_base needs a name to pick among several entries.
                import_all_blobs_then_load(store, &path, index, entry)?
            } else {
                oci::resolve_base(
                    store,
                    &BaseRef::OciArchive {
                        path: path.clone(),
                        reference: name.clone(),
                    },
                )?
            }
        } else {
            checked_load(store, &entry.digest)?
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
fn import_all_blobs_then_load(
    store: &Store,
    path: &Path,
    index: &ImageIndex,
    entry: &Descriptor,
) -> Result<Image> {
    let named = index.manifests.iter().find_map(|m| m.ref_name());
    match named {
        Some(n) => {
            oci::resolve_base(
                store,
                &BaseRef::OciArchive {
                    path: path.to_path_buf(),
                    reference: Some(n.to_string()),
                },
            )?;
            if !media_type::is_manifest(&entry.media_type) {
                return Err(Error::Unsupported(format!(
                    "loading an unnamed multi-platform index from {}",
                    path.display()
                )));
            }
            checked_load(store, &entry.digest)
        }
        None => Err(Error::Unsupported(format!(
            "loading several unnamed images from {}",
            path.display()
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

fn load_docker(store: &Store, path: PathBuf, entries: &[DockerEntry]) -> Result<Vec<LoadedImage>> {
    if entries.is_empty() {
        return Err(Error::msg(format!("{} lists no image", path.display())));
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
                    path.display()
                )));
            }
        };
        let image = oci::resolve_base(
            store,
            &BaseRef::DockerArchive {
                path: path.clone(),
                reference,
            },
        )?;
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

//! Exporting images from the store: an OCI layout directory, an
//! oci-archive, or a docker-archive (`docker load` / `podman load`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::{
    Descriptor, ImageIndex, OciLayoutFile, Store, media_type, normalize_reference, parse_json,
    sync_dir, to_json,
};

use super::archive::TarOut;
use super::image::{Manifest, parse_manifest};

/// The kind of output `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// An OCI image layout directory (created, or merged into).
    Oci,
    /// The same as a tar file.
    OciArchive,
    /// A docker-archive (`manifest.json` + `repositories` + blobs).
    Docker,
}

/// An image to export and the references to name it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportImage {
    pub manifest: Descriptor,
    pub names: Vec<String>,
}

/// Exports `images` (already in the store) as `kind` to `dest`.
/// An index (a multi-platform image) goes with every manifest it lists;
/// a docker archive, which holds one platform's image, refuses it.
pub fn export(store: &Store, images: &[ExportImage], kind: OutputKind, dest: &Path) -> Result<()> {
    let mut blobs = BTreeSet::new();
    let mut loaded = Vec::new();
    for img in images {
        blobs.insert(img.manifest.digest);
        let bytes = store.read_blob(&img.manifest.digest)?;
        if media_type::is_index(&img.manifest.media_type) {
            if kind == OutputKind::Docker {
                return Err(Error::msg(format!(
                    "{} is a multi-platform index, which a docker archive cannot hold; \
                     use type=oci or type=oci-archive",
                    img.names
                        .first()
                        .map_or(img.manifest.digest.to_string(), String::clone)
                )));
            }
            let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
                Error::corrupt(format!("index {}", img.manifest.digest), e.to_string())
            })?;
            for entry in &index.manifests {
                blobs.insert(entry.digest);
                let child = store.read_blob(&entry.digest)?;
                let m = parse_manifest(&child, &format!("manifest {}", entry.digest))?;
                blobs.insert(m.config.digest);
                blobs.extend(m.layers.iter().map(|l| l.digest));
            }
            loaded.push((img, None));
            continue;
        }
        let m = parse_manifest(&bytes, &format!("manifest {}", img.manifest.digest))?;
        blobs.insert(m.config.digest);
        blobs.extend(m.layers.iter().map(|l| l.digest));
        loaded.push((img, Some(m)));
    }
    for d in &blobs {
        if !store.has_blob(d) {
            return Err(Error::msg(format!("blob {d} is missing from the store")));
        }
    }
    match kind {
        OutputKind::Oci => export_layout(store, &loaded, &blobs, dest),
        OutputKind::OciArchive => write_archive(dest, |t| {
            let index = build_index(ImageIndex::default(), &loaded);
            layout_files(t, &index)?;
            blob_members(store, t, &blobs)
        }),
        OutputKind::Docker => write_archive(dest, |t| {
            let index = build_index(ImageIndex::default(), &loaded);
            layout_files(t, &index)?;
            t.bytes("manifest.json", &docker_manifest(&loaded)?)?;
            t.bytes("repositories", &docker_repositories(&loaded)?)?;
            blob_members(store, t, &blobs)
        }),
    }
}

/// Adds every image under each of its names (or once, unnamed).
fn build_index(mut index: ImageIndex, images: &[(&ExportImage, Option<Manifest>)]) -> ImageIndex {
    for (img, _) in images {
        if img.names.is_empty() {
            let present = index
                .manifests
                .iter()
                .any(|m| m.digest == img.manifest.digest && m.ref_name().is_none());
            if !present {
                index.manifests.push(img.manifest.clone());
            }
        }
        for n in &img.names {
            index.set_ref(&normalize_reference(n), &img.manifest);
        }
    }
    index
}

fn layout_file() -> OciLayoutFile {
    OciLayoutFile {
        image_layout_version: media_type::OCI_LAYOUT_VERSION.to_string(),
    }
}

fn export_layout(
    store: &Store,
    images: &[(&ExportImage, Option<Manifest>)],
    blobs: &BTreeSet<Digest>,
    dest: &Path,
) -> Result<()> {
    let blob_dir = dest.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).at("creating", &blob_dir)?;
    let layout_path = dest.join("oci-layout");
    if layout_path.exists() {
        let l: OciLayoutFile = parse_json(
            &fs::read(&layout_path).at("reading", &layout_path)?,
            &layout_path,
        )?;
        if l.image_layout_version != media_type::OCI_LAYOUT_VERSION {
            return Err(Error::Unsupported(format!(
                "merging into an OCI layout of version `{}` ({})",
                l.image_layout_version,
                dest.display()
            )));
        }
    } else {
        write_file_atomic(dest, &layout_path, &to_json(&layout_file())?)?;
    }
    for d in blobs {
        let target = blob_dir.join(d.hex());
        if target.is_file() {
            continue;
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".strata-tmp-")
            .tempfile_in(dest)
            .at("creating a temp file in", dest)?;
        let mut src = store.open_blob(d)?;
        io::copy(&mut src, &mut tmp).at("writing", tmp.path())?;
        tmp.as_file().sync_all().at("syncing", tmp.path())?;
        tmp.persist(&target)
            .map_err(|e| Error::io(format!("renaming into {}", target.display()), e.error))?;
    }
    sync_dir(&blob_dir)?;
    let index_path = dest.join("index.json");
    let existing = if index_path.exists() {
        parse_json(
            &fs::read(&index_path).at("reading", &index_path)?,
            &index_path,
        )?
    } else {
        ImageIndex::default()
    };
    let index = build_index(existing, images);
    write_file_atomic(dest, &index_path, &to_json(&index)?)
}

fn write_file_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempfile_in(dir)
        .at("creating a temp file in", dir)?;
    tmp.write_all(bytes).at("writing", tmp.path())?;
    tmp.as_file().sync_all().at("syncing", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::io(format!("renaming into {}", path.display()), e.error))?;
    sync_dir(dir)
}

/// Writes a tar to a temp file beside `dest`, then renames it into place.
fn write_archive(
    dest: &Path,
    fill: impl FnOnce(&mut TarOut<BufWriter<&mut File>>) -> Result<()>,
) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempfile_in(dir)
        .at("creating a temp file in", dir)?;
    {
        let mut t = TarOut::new(BufWriter::new(tmp.as_file_mut()), dest);
        fill(&mut t)?;
        let w = t.finish()?;
        w.into_inner()
            .map_err(|e| Error::io(format!("writing {}", dest.display()), e.into_error()))?;
    }
    tmp.as_file().sync_all().at("syncing", tmp.path())?;
    tmp.persist(dest)
        .map_err(|e| Error::io(format!("renaming into {}", dest.display()), e.error))?;
    sync_dir(dir)
}

fn layout_files<W: Write>(t: &mut TarOut<W>, index: &ImageIndex) -> Result<()> {
    t.bytes("oci-layout", &to_json(&layout_file())?)?;
    t.bytes("index.json", &to_json(index)?)
}

fn blob_members<W: Write>(
    store: &Store,
    t: &mut TarOut<W>,
    blobs: &BTreeSet<Digest>,
) -> Result<()> {
    t.dir("blobs/")?;
    t.dir("blobs/sha256/")?;
    for d in blobs {
        let f = store.open_blob(d)?;
        let size = f.metadata().at("reading", &store.blob_path(d))?.len();
        t.file(&format!("blobs/sha256/{}", d.hex()), size, f)?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn docker_manifest(images: &[(&ExportImage, Option<Manifest>)]) -> Result<Vec<u8>> {
    let entries: Vec<DockerManifestEntry> = images
        .iter()
        .filter_map(|(img, m)| Some((img, m.as_ref()?)))
        .map(|(img, m)| DockerManifestEntry {
            config: blob_member(&m.config.digest),
            repo_tags: if img.names.is_empty() {
                None
            } else {
                Some(img.names.iter().map(|n| normalize_reference(n)).collect())
            },
            layers: m.layers.iter().map(|l| blob_member(&l.digest)).collect(),
        })
        .collect();
    to_json(&entries)
}

/// The legacy `repositories` file: repo -> tag -> top layer id.
fn docker_repositories(images: &[(&ExportImage, Option<Manifest>)]) -> Result<Vec<u8>> {
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, m) in images {
        let Some(top) = m.as_ref().and_then(|m| m.layers.last()) else {
            continue;
        };
        for n in &img.names {
            let n = normalize_reference(n);
            if n.contains('@') {
                continue;
            }
            if let Some((repo, tag)) = n.rsplit_once(':')
                && !tag.contains('/')
            {
                repos
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), top.digest.hex());
            }
        }
    }
    to_json(&repos)
}

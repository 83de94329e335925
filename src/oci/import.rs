//! Importing base images into the store: from an OCI layout directory, an
//! oci-archive, a docker-archive, or a tag already in the store.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::ir::BaseRef;
use crate::layer::Compression;
use crate::store::{
    Descriptor, ImageIndex, MAX_SMALL_BLOB, OciLayoutFile, Platform, Store, media_type,
    normalize_reference, parse_json,
};

use super::image::{parse_manifest, platform_of, write_manifest};
use super::scan::{ArchiveScan, scan_archive};
use super::{
    Image, ImageConfig, host_platform, index_platforms, load_image, pick_platform,
    platform_matches, stored_entry, write_image,
};

/// Imports the base image `base` into the store (blobs copied and verified)
/// and returns it. `Scratch` gives the empty image of the host platform.
/// Never touches the network: a registry image must have been pulled.
pub fn resolve_base(store: &Store, base: &BaseRef) -> Result<Image> {
    resolve_base_for(store, base, None)
}

/// [`resolve_base`] for a platform: `Scratch` is the empty image of it, an
/// index gives its entry, and an image of another platform is an error.
/// `None`: any image, and this host's entry of an index.
pub fn resolve_base_for(store: &Store, base: &BaseRef, want: Option<&Platform>) -> Result<Image> {
    let image = match base {
        BaseRef::Scratch => {
            let mut config = ImageConfig::scratch(None);
            if let Some(p) = want {
                config.architecture = p.architecture.clone();
                config.os = p.os.clone();
                config.variant = p.variant.clone();
            }
            let m = write_image(store, &config, &[])?;
            return load_image(store, &m.digest);
        }
        BaseRef::Image { reference } => match store.resolve(reference)? {
            Some(d) if media_type::is_index(&d.media_type) => {
                let src = StoreBlobs {
                    store,
                    archive: Path::new(reference),
                };
                // The entry's manifest must be here (a pull of one platform
                // keeps the whole index).
                let host = host_platform();
                let entry = stored_entry(store, reference, &d.digest, want.unwrap_or(&host))?;
                import_descriptor(store, &src, &entry, Path::new(reference), want, 1)?
            }
            Some(d) => load_image(store, &d.digest)?,
            // Pulling is the build session's explicit step, never a side
            // effect of resolving.
            None if crate::registry::names_registry(reference) => {
                return Err(Error::msg(format!(
                    "image {reference} is not in the store yet (a build pulls it; --dry-run and \
                     graph never touch the network; or run `strata pull {reference}`)"
                )));
            }
            None => {
                return Err(Error::msg(format!(
                    "image {reference} not found in the local store; a build pulls it (--dry-run \
                     and graph never touch the network), or run `strata pull {reference}`, \
                     `strata load` an archive of it, or build it first"
                )));
            }
        },
        BaseRef::OciLayout { path, reference } => {
            let layout = read_layout_file(&path.join("oci-layout"))?;
            check_layout(&layout, path)?;
            let ip = path.join("index.json");
            let index: ImageIndex = parse_json(&read_small_file(&ip)?, &ip)?;
            let src = DirBlobs { dir: path.clone() };
            import_from_index(store, &src, &index, reference.as_deref(), path, want)?
        }
        BaseRef::OciArchive { path, reference } => {
            let mut scan = scan_archive(store, path, false)?;
            import_oci_scan(store, &mut scan, reference.as_deref(), want)?
        }
        BaseRef::DockerArchive { path, reference } => {
            let mut scan = scan_archive(store, path, false)?;
            import_docker_scan(store, &mut scan, reference.as_deref())?
        }
    };
    match want {
        Some(p) if !platform_matches(p, &image.platform()) => Err(Error::msg(format!(
            "the image is for {}, not for {p}, the platform asked for",
            image.platform()
        ))),
        _ => Ok(image),
    }
}

/// Where the blobs of an image being imported come from.
trait BlobSource {
    /// A small blob (manifest, index, config), verified.
    fn read_small(&self, d: &Digest) -> Result<Vec<u8>>;
    /// Makes sure the blob is in the store, verified.
    fn copy_into(&self, store: &Store, d: &Descriptor) -> Result<()>;
}

struct DirBlobs {
    dir: PathBuf,
}

impl DirBlobs {
    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }
}

impl BlobSource for DirBlobs {
    fn read_small(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = read_small_file(&self.path(d))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(Error::corrupt(
                format!("blob {d} in {}", self.dir.display()),
                format!("content has digest {actual}"),
            ));
        }
        Ok(bytes)
    }

    fn copy_into(&self, store: &Store, d: &Descriptor) -> Result<()> {
        if store.has_blob(&d.digest) {
            return Ok(());
        }
        let p = self.path(&d.digest);
        let mut f = File::open(&p).at("opening", &p)?;
        let mut w = store.blob_writer()?;
        io::copy(&mut f, &mut w).at("copying", &p)?;
        let size = w.commit_expect(&d.digest)?;
        if size != d.size {
            return Err(Error::corrupt(
                format!("blob {}", d.digest),
                format!("size {size} but its descriptor says {}", d.size),
            ));
        }
        Ok(())
    }
}

/// An archive whose blobs were already imported into the store.
struct StoreBlobs<'a> {
    store: &'a Store,
    archive: &'a Path,
}

impl BlobSource for StoreBlobs<'_> {
    fn read_small(&self, d: &Digest) -> Result<Vec<u8>> {
        self.copy_into(self.store, &Descriptor::new("", *d, 0))?;
        self.store.read_blob(d)
    }

    fn copy_into(&self, store: &Store, d: &Descriptor) -> Result<()> {
        if store.has_blob(&d.digest) {
            Ok(())
        } else {
            Err(Error::corrupt(
                self.archive.display().to_string(),
                format!("blob {} is missing", d.digest),
            ))
        }
    }
}

fn read_small_file(p: &Path) -> Result<Vec<u8>> {
    let f = File::open(p).at("opening", p)?;
    let mut bytes = Vec::new();
    f.take(MAX_SMALL_BLOB + 1)
        .read_to_end(&mut bytes)
        .at("reading", p)?;
    if bytes.len() as u64 > MAX_SMALL_BLOB {
        return Err(Error::corrupt(p.display().to_string(), "file too large"));
    }
    Ok(bytes)
}

fn read_layout_file(p: &Path) -> Result<OciLayoutFile> {
    parse_json(&read_small_file(p)?, p)
}

fn check_layout(layout: &OciLayoutFile, where_: &Path) -> Result<()> {
    if layout.image_layout_version != media_type::OCI_LAYOUT_VERSION {
        return Err(Error::Unsupported(format!(
            "OCI layout version `{}` in {}",
            layout.image_layout_version,
            where_.display()
        )));
    }
    Ok(())
}

/// Picks the entry of `index` named `reference` (exactly, or normalized
/// with `:latest`), else the only entry, else the host platform's.
fn import_from_index(
    store: &Store,
    src: &dyn BlobSource,
    index: &ImageIndex,
    reference: Option<&str>,
    origin: &Path,
    want: Option<&Platform>,
) -> Result<Image> {
    let host = host_platform();
    let want_or_host = want.unwrap_or(&host);
    let names = || {
        let v: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|m| m.ref_name())
            .collect();
        if v.is_empty() {
            "it has no named images".to_string()
        } else {
            format!("it has: {}", v.join(", "))
        }
    };
    let desc = match reference {
        Some(r) => {
            let norm = normalize_reference(r);
            index
                .manifests
                .iter()
                .find(|m| m.ref_name() == Some(r))
                .or_else(|| index.manifests.iter().find(|m| m.ref_name() == Some(&norm)))
                .ok_or_else(|| {
                    Error::msg(format!(
                        "no image named `{r}` in {}; {}",
                        origin.display(),
                        names()
                    ))
                })?
        }
        None => match index.manifests.as_slice() {
            [] => {
                return Err(Error::msg(format!(
                    "{} contains no image",
                    origin.display()
                )));
            }
            [only] => only,
            many => pick_platform(many, want_or_host).ok_or_else(|| {
                Error::msg(format!(
                    "{} holds several images and none for {want_or_host}; name one ({})",
                    origin.display(),
                    names()
                ))
            })?,
        },
    };
    import_descriptor(store, src, desc, origin, want, 0)
}

fn import_descriptor(
    store: &Store,
    src: &dyn BlobSource,
    desc: &Descriptor,
    origin: &Path,
    want: Option<&Platform>,
    depth: u32,
) -> Result<Image> {
    if media_type::is_index(&desc.media_type) {
        if depth > 4 {
            return Err(Error::corrupt(
                origin.display().to_string(),
                "indexes nested too deeply",
            ));
        }
        let bytes = src.read_small(&desc.digest)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("index {}", desc.digest), e.to_string()))?;
        let host = host_platform();
        let want_or_host = want.unwrap_or(&host);
        let entry = pick_platform(&index.manifests, want_or_host).ok_or_else(|| {
            Error::msg(format!(
                "no image for {want_or_host} in {} (index {}; it has: {})",
                origin.display(),
                desc.digest,
                index_platforms(&index.manifests)
            ))
        })?;
        return import_descriptor(store, src, entry, origin, want, depth + 1);
    }
    if !media_type::is_manifest(&desc.media_type) {
        return Err(Error::Unsupported(format!(
            "importing `{}` from {}",
            desc.media_type,
            origin.display()
        )));
    }
    let bytes = src.read_small(&desc.digest)?;
    let m = parse_manifest(&bytes, &format!("manifest {}", desc.digest))?;
    src.copy_into(store, &m.config)?;
    for l in &m.layers {
        src.copy_into(store, l)?;
    }
    store.put_blob(&bytes)?;
    load_image(store, &desc.digest)
}

/// The index of the oci-archive `scan` read (its `oci-layout` checked).
fn archive_index(scan: &ArchiveScan) -> Result<ImageIndex> {
    let path = &scan.path;
    match &scan.oci_layout {
        Some(b) => check_layout(&parse_json(b, &path.join("oci-layout"))?, path)?,
        None => {
            return Err(Error::corrupt(
                path.display().to_string(),
                "no oci-layout file: not an oci-archive",
            ));
        }
    }
    match &scan.index {
        Some(b) => parse_json(b, &path.join("index.json")),
        None => Err(Error::corrupt(path.display().to_string(), "no index.json")),
    }
}

/// Imports the image of an oci-archive (read in one pass by
/// [`scan_archive`], which stored its blobs) that `reference` names (see
/// [`import_from_index`]), and adopts the snapshots unpacked beside the read.
pub(crate) fn import_oci_scan(
    store: &Store,
    scan: &mut ArchiveScan,
    reference: Option<&str>,
    want: Option<&Platform>,
) -> Result<Image> {
    let index = archive_index(scan)?;
    let path = scan.path.clone();
    let src = StoreBlobs {
        store,
        archive: &path,
    };
    let image = import_from_index(store, &src, &index, reference, &path, want)?;
    adopt_snapshots(store, scan, &image)?;
    Ok(image)
}

/// Makes the layers of `image` that were unpacked during the read their
/// snapshots, after checking every unpacked stream against the config's
/// diff_id (a mismatch is a corrupt archive, and nothing is adopted).
pub(crate) fn adopt_snapshots(store: &Store, scan: &mut ArchiveScan, image: &Image) -> Result<()> {
    let pairs: Vec<(Digest, Digest)> = image
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(l, d)| (l.digest, *d))
        .collect();
    for (blob, diff_id) in &pairs {
        check_unpacked(scan, blob, diff_id)?;
    }
    for (blob, diff_id) in &pairs {
        if let Some(u) = scan.take_unpacked(blob) {
            u.adopt(store, diff_id)?;
        }
    }
    Ok(())
}

/// The uncompressed stream of the layer blob `blob`, if it was unpacked
/// during the read, must hash to `diff_id`.
fn check_unpacked(scan: &mut ArchiveScan, blob: &Digest, diff_id: &Digest) -> Result<()> {
    let path = scan.path.display().to_string();
    match scan.unpacked(blob).and_then(|u| u.diff_id) {
        Some(got) if got != *diff_id => Err(Error::corrupt(
            path,
            format!("layer {blob} holds the tar {got} but the config says {diff_id}"),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Imports one image of a `docker save` archive (read in one pass by
/// [`scan_archive`]): config and layer tars are stored as they are
/// (uncompressed, or gzip/zstd when the member is), only once the config's
/// diff_ids agree with them, and an OCI manifest is written for them.
pub(crate) fn import_docker_scan(
    store: &Store,
    scan: &mut ArchiveScan,
    reference: Option<&str>,
) -> Result<Image> {
    let path = scan.path.clone();
    let what = |detail: &str| Error::corrupt(path.display().to_string(), detail.to_string());
    let bytes = (scan.docker_manifest.as_ref())
        .ok_or_else(|| what("no manifest.json: not a docker-archive"))?;
    let manifest = parse_json::<Vec<DockerManifestEntry>>(bytes, &path.join("manifest.json"))?;
    let entry = match reference {
        Some(r) => {
            let want = normalize_reference(r);
            manifest
                .iter()
                .find(|e| {
                    e.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| normalize_reference(t) == want)
                })
                .ok_or_else(|| Error::msg(format!("no image tagged `{r}` in {}", path.display())))?
        }
        None => match manifest.as_slice() {
            [only] => only,
            [] => return Err(what("manifest.json lists no image")),
            _ => {
                return Err(Error::msg(format!(
                    "{} holds several images; name one",
                    path.display()
                )));
            }
        },
    };
    let config_path = scan.follow(&entry.config)?;
    let layer_paths = entry
        .layers
        .iter()
        .map(|l| scan.follow(l))
        .collect::<Result<Vec<_>>>()?;
    let config_bytes = scan.small_bytes(store, &config_path)?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| what(&format!("image config: {e}")))?;
    if config.rootfs.diff_ids.len() != layer_paths.len() {
        return Err(what(&format!(
            "{} layers but the config lists {} diff_ids",
            layer_paths.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (p, diff_id) in layer_paths.iter().zip(&config.rootfs.diff_ids) {
        let m = scan.member(p)?;
        let (d, size) = (m.digest(), m.size());
        let mt = match &m.head {
            Some(head) => Compression::of_magic(head).media_type(),
            None => sniff_layer_type(&store.blob_path(&d))?,
        };
        if mt == media_type::OCI_LAYER && d != *diff_id {
            return Err(what(&format!(
                "layer `{p}` has digest {d} but the config says {diff_id}"
            )));
        }
        check_unpacked(scan, &d, diff_id)?;
        layers.push(Descriptor::new(mt, d, size));
    }
    let (config_digest, config_size) = scan.commit(store, &config_path)?;
    for p in &layer_paths {
        scan.commit(store, p)?;
    }
    let config_desc = Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size);
    let m = write_manifest(store, config_desc, &layers, platform_of(&config))?;
    let image = load_image(store, &m.digest)?;
    adopt_snapshots(store, scan, &image)?;
    Ok(image)
}

/// gzip, zstd or plain tar, by magic number.
fn sniff_layer_type(p: &Path) -> Result<&'static str> {
    let f = File::open(p).at("opening", p)?;
    let mut magic = Vec::with_capacity(4);
    f.take(4).read_to_end(&mut magic).at("reading", p)?;
    Ok(Compression::of_magic(&magic).media_type())
}

//! OCI images: the image config, manifests, importing base images (OCI
//! layouts, oci-archives, docker-archives, store tags) and exporting
//! results (OCI layout, oci-archive, docker-archive).
//!
//! Invariants:
//! - Everything it writes uses OCI media types and schemaVersion 2; JSON is
//!   serialized from typed structs with sorted maps, so equal images give
//!   equal digests.
//! - Imported content is verified against its digest before it enters the
//!   store; archive paths are never used to build file system paths except
//!   through a parsed [`Digest`].
//! - It knows nothing about builds: callers pass configs and layer
//!   descriptors that are already in the store.

mod archive;
mod config;
mod dirs;
mod export;
mod image;
mod import;

use std::path::{Path, PathBuf};

pub use config::{ContainerConfig, Empty, HealthConfig, History, ImageConfig, RootFs};
pub use dirs::{LayerDirs, layer_dirs, lower_dir, save_layer_dirs};
pub use export::{ExportImage, OutputKind, export};
pub use image::{Image, Manifest, load_image, write_image};
pub use import::resolve_base;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{self, UnpackOptions};
use crate::store::{Descriptor, Platform, Store};

/// The platform of this machine in OCI terms (`linux`, `amd64`/`arm64`/...).
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "loongarch64" => ("loong64", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: variant.map(str::to_string),
    }
}

/// Unpacks `layers` in order into `dir` (whiteouts applied by `layer`).
/// Owners and device nodes are kept only when running as root.
pub fn unpack_image(store: &Store, layers: &[Descriptor], dir: &Path) -> Result<()> {
    let opts = UnpackOptions::for_current_user();
    for l in layers {
        unpack_layer(store, l, dir, &opts)?;
    }
    Ok(())
}

fn unpack_layer(store: &Store, l: &Descriptor, dir: &Path, opts: &UnpackOptions) -> Result<()> {
    let f = store.open_blob(&l.digest)?;
    let tar = layer::decompress(std::io::BufReader::new(f), &l.media_type)?;
    layer::unpack(tar, dir, opts).map_err(|e| match e {
        Error::Io { what, source } => Error::Io {
            what: format!("unpacking layer {}: {what}", l.digest),
            source,
        },
        other => other,
    })?;
    Ok(())
}

/// The layer unpacked on its own under `snapshots/<diff_id>`, with
/// whiteouts in overlayfs form, ready to be an overlay lowerdir. Made once:
/// unpacked into `tmp/`, then renamed into place, so a killed unpack leaves
/// no half snapshot and two builds making the same one do not collide.
pub fn layer_snapshot(store: &Store, l: &Descriptor, diff_id: &Digest) -> Result<PathBuf> {
    let dir = store.root().join("snapshots");
    let path = dir.join(diff_id.hex());
    if path.is_dir() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    let tmp = store.temp_dir()?;
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).at("creating", &rootfs)?;
    let opts = UnpackOptions {
        overlay_whiteouts: true,
        ..UnpackOptions::for_current_user()
    };
    unpack_layer(store, l, &rootfs, &opts)?;
    match std::fs::rename(&rootfs, &path) {
        Ok(()) => Ok(path),
        // Another build made it meanwhile.
        Err(_) if path.is_dir() => Ok(path),
        Err(e) => Err(Error::io(
            format!("renaming snapshot to {}", path.display()),
            e,
        )),
    }
}

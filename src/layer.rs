//! layer (skeleton: filled in by the module's first real commit)
//!
//! TEMPORARY STUB added on the `store` branch so `oci::unpack_image` compiles;
//! the lead drops it when merging the real `layer` module.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

pub struct UnpackOptions {
    pub allow_devices: bool,
    pub preserve_owners: bool,
}

#[derive(Debug, Default)]
pub struct UnpackStats {}

pub fn decompress<'a, R: Read + 'a>(_reader: R, media_type: &str) -> Result<Box<dyn Read + 'a>> {
    Err(Error::Unsupported(format!(
        "decompressing {media_type} (layer stub)"
    )))
}

pub fn unpack<R: Read>(_tar: R, _root: &Path, _opts: &UnpackOptions) -> Result<UnpackStats> {
    Err(Error::Unsupported("unpacking layers (layer stub)".into()))
}

//! Layers: deterministic tar writing, compression, safe extraction.
//!
//! * [`write_layer`] turns a list of [`Entry`] values into a reproducible
//!   layer blob: entries sorted by their tar name (byte order), ustar headers
//!   filled by hand (no host user/group names, no GNU sparse), PAX extended
//!   headers only where ustar cannot say it, the diff_id computed in the same
//!   streaming pass that compresses.
//! * [`entries_from_dir`] reads a directory tree (an overlay upperdir, a test
//!   fixture) into entries, turning overlay whiteouts into OCI ones.
//! * [`merge_paths`] writes a few paths of an image, read from its layers'
//!   snapshots, without laying out the rest.
//! * [`decompress`] picks a decoder from a layer media type.
//! * [`unpack`] applies an untrusted layer onto a root directory with OCI
//!   whiteout semantics and never writes outside that root.
//!
//! Invariants: this module knows nothing about the store, the IR or images;
//! it reads and writes bytes and directory trees. Nothing here keeps a whole
//! file's content in memory.

mod compression;
mod entry;
mod merge;
mod scan;
mod sys;
mod unpack;
mod write;

pub use compression::{Compression, compress_tar, decompress};
pub use entry::{Entry, EntryKind};
pub use merge::{MergeStats, merge_paths};
pub use scan::{Mtimes, entries_from_dir, entries_from_dir_with};
pub use unpack::{Restamp, UnpackOptions, UnpackStats, unpack};
pub use write::{LayerStats, write_layer};

/// The tar name prefix of an OCI whiteout file (`dir/.wh.NAME` deletes `NAME`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The tar name of an OCI opaque marker inside a directory.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Whether `meta` (of a path in a tree unpacked with
/// [`UnpackOptions::overlay_whiteouts`], or an overlay upperdir) is a
/// whiteout: overlay's 0:0 character device.
pub fn is_overlay_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory `path` (in such a tree) is opaque: it hides what
/// lower layers hold below it.
pub fn is_overlay_opaque(path: &std::path::Path) -> std::io::Result<bool> {
    Ok(sys::lgetxattr(path, "trusted.overlay.opaque")?.is_some_and(|v| v == b"y"))
}

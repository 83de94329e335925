//! A cache in a local directory (`type=local`): an OCI image layout whose
//! index tags the cache manifest. Blobs are read verified and written
//! through a temp file renamed into place, like the store.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Sha256Writer};
use crate::error::{Error, IoContext, Result};
use crate::registry::MAX_MANIFEST;
use crate::store::{Descriptor, ImageIndex, OciLayoutFile, Store, media_type};

/// Largest `index.json` read.
const MAX_INDEX: u64 = 16 << 20;

/// An OCI layout directory holding cache artifacts.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blobs(&self) -> PathBuf {
        self.dir.join("blobs").join("sha256")
    }

    /// The blob's path; a parsed [`Digest`] cannot escape `blobs/sha256`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs().join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Reads a blob of at most `cap` bytes, checking its size and digest.
    pub fn read_small(&self, d: &Descriptor, cap: u64) -> Result<Vec<u8>> {
        let what = format!("blob {} in {}", d.digest, self.dir.display());
        if d.size > cap {
            return Err(Error::corrupt(
                what,
                format!("{} bytes is too large", d.size),
            ));
        }
        let p = self.blob_path(&d.digest);
        let f = File::open(&p).at("opening", &p)?;
        let mut bytes = Vec::new();
        f.take(cap + 1).read_to_end(&mut bytes).at("reading", &p)?;
        if bytes.len() as u64 != d.size {
            return Err(Error::corrupt(
                what,
                format!("{} bytes but the descriptor says {}", bytes.len(), d.size),
            ));
        }
        let actual = Digest::of(&bytes);
        if actual != d.digest {
            return Err(Error::corrupt(what, format!("content has digest {actual}")));
        }
        Ok(bytes)
    }

    fn read_index(&self) -> Result<Option<ImageIndex>> {
        let p = self.dir.join("index.json");
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("opening {}", p.display()), e)),
        };
        let mut bytes = Vec::new();
        f.take(MAX_INDEX + 1)
            .read_to_end(&mut bytes)
            .at("reading", &p)?;
        if bytes.len() as u64 > MAX_INDEX {
            return Err(Error::corrupt(p.display().to_string(), "too large"));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(p.display().to_string(), e.to_string()))
    }

    /// The manifest tagged `tag` (its descriptor and verified bytes).
    pub fn manifest(&self, tag: &str) -> Result<Option<(Descriptor, Vec<u8>)>> {
        let Some(index) = self.read_index()? else {
            return Ok(None);
        };
        let Some(desc) = index.find_ref(tag) else {
            return Ok(None);
        };
        let bytes = self.read_small(desc, MAX_MANIFEST)?;
        Ok(Some((desc.clone(), bytes)))
    }

    /// Copies a blob into the store, verifying its size and digest.
    pub fn copy_to_store(&self, store: &Store, d: &Descriptor) -> Result<()> {
        let p = self.blob_path(&d.digest);
        let f = File::open(&p).at("opening", &p)?;
        let mut w = store.blob_writer()?;
        let n = io::copy(&mut f.take(d.size.saturating_add(1)), &mut w).at("reading", &p)?;
        let what = || format!("blob {} in {}", d.digest, self.dir.display());
        if n != d.size {
            return Err(Error::corrupt(
                what(),
                format!("{n} bytes but the descriptor says {}", d.size),
            ));
        }
        w.commit_expect(&d.digest).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::corrupt(what(), detail),
            other => other,
        })?;
        Ok(())
    }

    /// Creates the layout (`oci-layout`, `blobs/sha256`) if it is missing.
    pub fn init(&self) -> Result<()> {
        let blobs = self.blobs();
        fs::create_dir_all(&blobs).at("creating", &blobs)?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            let f = OciLayoutFile {
                image_layout_version: media_type::OCI_LAYOUT_VERSION.to_string(),
            };
            let bytes =
                serde_json::to_vec(&f).map_err(|e| Error::msg(format!("encoding JSON: {e}")))?;
            self.write_atomic(&marker, &mut &bytes[..], None)?;
        }
        Ok(())
    }

    /// Writes a blob from `src` unless it is there; the content must have
    /// digest `d`.
    pub fn put_blob(&self, src: &mut dyn Read, d: &Digest) -> Result<bool> {
        let dest = self.blob_path(d);
        if dest.is_file() {
            return Ok(false);
        }
        self.write_atomic(&dest, src, Some(d))?;
        Ok(true)
    }

    /// Tags `manifest` as `tag` in `index.json` (other entries kept).
    pub fn set_tag(&self, tag: &str, manifest: &Descriptor) -> Result<()> {
        let mut index = self.read_index()?.unwrap_or_default();
        index.set_ref(tag, manifest);
        let bytes =
            serde_json::to_vec(&index).map_err(|e| Error::msg(format!("encoding JSON: {e}")))?;
        self.write_atomic(&self.dir.join("index.json"), &mut &bytes[..], None)
    }

    /// Temp file in the destination's directory, fsynced, renamed.
    fn write_atomic(&self, dest: &Path, src: &mut dyn Read, expect: Option<&Digest>) -> Result<()> {
        let parent = dest.parent().unwrap_or(&self.dir);
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(parent)
            .at("creating a temp file in", parent)?;
        let mut w = Sha256Writer::new(io::BufWriter::new(tmp));
        io::copy(src, &mut w).ctx(|| format!("writing {}", dest.display()))?;
        let (digest, _, buf) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", dest.display()), e.into_error()))?;
        if let Some(want) = expect
            && digest != *want
        {
            return Err(Error::corrupt(
                format!("blob {want}"),
                format!("content has digest {digest}"),
            ));
        }
        tmp.as_file().sync_all().at("syncing", tmp.path())?;
        tmp.persist(dest)
            .map_err(|e| Error::io(format!("renaming to {}", dest.display()), e.error))?;
        File::open(parent)
            .and_then(|f| f.sync_all())
            .at("syncing directory", parent)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_both_ways_and_tags_keep_other_entries() {
        let t = tempfile::tempdir().unwrap();
        let l = Layout::new(&t.path().join("cache"));
        l.init().unwrap();
        let good = Digest::of(b"hello");
        assert!(l.put_blob(&mut &b"hello"[..], &good).unwrap());
        assert!(!l.put_blob(&mut &b"hello"[..], &good).unwrap(), "kept");
        let other = Digest::of(b"other");
        assert!(l.put_blob(&mut &b"tampered"[..], &other).is_err());
        assert!(!l.has_blob(&other), "a wrong blob is not kept");

        let d = Descriptor::new(media_type::OCI_MANIFEST, good, 5);
        assert_eq!(l.read_small(&d, 100).unwrap(), b"hello");
        let short = Descriptor::new(media_type::OCI_MANIFEST, good, 4);
        assert!(l.read_small(&short, 100).is_err());
        assert!(l.read_small(&d, 4).is_err(), "over the cap");

        l.set_tag("a", &d).unwrap();
        let other_desc = Descriptor::new(media_type::OCI_MANIFEST, other, 5);
        l.set_tag("b", &other_desc).unwrap();
        assert_eq!(l.manifest("a").unwrap().unwrap().1, b"hello");
        assert!(l.manifest("c").unwrap().is_none());
        assert!(l.manifest("b").is_err(), "missing blob");

        // A blob changed on disk is refused on the way into a store.
        std::fs::write(l.blob_path(&good), b"jello").unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        assert!(l.copy_to_store(&store, &d).is_err());
        assert!(!store.has_blob(&good));
        assert!(l.read_small(&d, 100).is_err());
    }
}

//! A layer's snapshot made from the bytes being read for its blob (`load`,
//! `pull`): the reader hands each chunk it hashes and writes to a bounded
//! channel, and a thread decompresses, hashes and unpacks the stream into a
//! temp dir under the store's `tmp/`, so the unpack overlaps the reading on
//! another core. The snapshot is adopted only once the caller knows the
//! layer's diff_id and it equals the hash of the stream the thread
//! unpacked; otherwise, or if anything failed, the temp dir is removed and
//! the layer is unpacked later from its blob as usual.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::digest::{Digest, Sha256Writer};
use crate::layer::{self, Compression, UnpackOptions};
use crate::store::Store;

/// Chunks in flight to one unpacker (each as large as the reader's reads).
const DEPTH: usize = 4;

enum Chunk {
    Data(Vec<u8>),
    /// The reader failed: what was sent is not the whole layer.
    Abort,
}

/// One layer being unpacked beside its read. Dropped unfinished, it aborts
/// the unpack and removes its temp dir.
pub(crate) struct SnapshotTee {
    tx: Option<SyncSender<Chunk>>,
    thread: Option<JoinHandle<Unpacked>>,
}

/// What an unpacker made of the stream it was given.
pub(crate) struct Unpacked {
    /// The sha256 of the uncompressed stream, when it was read to its end.
    pub diff_id: Option<Digest>,
    /// The temp dir holding `rootfs/`, when the unpack succeeded.
    dir: Option<tempfile::TempDir>,
}

/// The layer media type that bytes starting with `head` look like (gzip,
/// zstd or a ustar/PAX/GNU tar), if any.
pub(crate) fn sniff_layer(head: &[u8]) -> Option<&'static str> {
    match Compression::of_magic(head) {
        Compression::None if head.len() < 512 || &head[257..262] != b"ustar" => None,
        c => Some(c.media_type()),
    }
}

impl SnapshotTee {
    /// Starts an unpacker for a stream of `media_type`; `None` when the
    /// temp dir or the thread cannot be made (the layer is then unpacked
    /// later, when a build needs it).
    pub(crate) fn start(store: &Store, media_type: &str) -> Option<SnapshotTee> {
        let media_type = media_type.to_string();
        let dir = store.temp_dir().ok()?;
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).ok()?;
        let (tx, rx) = sync_channel(DEPTH);
        let thread = std::thread::Builder::new()
            .name("strata-unpack".into())
            .spawn(move || unpack_stream(rx, &media_type, dir))
            .ok()?;
        Some(SnapshotTee {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Passes the next chunk on (waits while the unpacker is `DEPTH`
    /// chunks behind). Once the unpacker has stopped, chunks are dropped.
    pub(crate) fn feed(&mut self, chunk: Vec<u8>) {
        if let Some(tx) = &self.tx
            && tx.send(Chunk::Data(chunk)).is_err()
        {
            self.tx = None;
        }
    }

    /// Ends the stream and waits for the unpacker.
    pub(crate) fn finish(mut self) -> Unpacked {
        self.tx = None;
        self.join()
    }

    fn join(&mut self) -> Unpacked {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Unpacked::none()),
            None => Unpacked::none(),
        }
    }
}

impl Drop for SnapshotTee {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Chunk::Abort);
        }
        // Joined so that its temp dir is gone when the caller returns.
        drop(self.join());
    }
}

impl Unpacked {
    /// Nothing unpacked.
    pub(crate) fn none() -> Unpacked {
        Unpacked {
            diff_id: None,
            dir: None,
        }
    }

    /// Makes the unpacked layer the snapshot of `diff_id` if it is that
    /// layer (its stream hashed to `diff_id`) and was unpacked whole.
    /// Returns whether the snapshot exists now.
    pub(crate) fn adopt(self, store: &Store, diff_id: &Digest) -> crate::error::Result<bool> {
        match (&self.dir, self.diff_id) {
            (Some(dir), Some(d)) if d == *diff_id => {
                super::adopt_snapshot(store, diff_id, &dir.path().join("rootfs"))?;
                Ok(true)
            }
            _ => Ok(super::has_snapshot(store, diff_id)),
        }
    }
}

/// The unpacker thread: decompress, hash and unpack what arrives, then
/// hash the rest (padding after the tar's end, or what an unpack error
/// left) so the diff_id covers the whole stream.
fn unpack_stream(rx: Receiver<Chunk>, media_type: &str, dir: tempfile::TempDir) -> Unpacked {
    let chunks = ChannelReader {
        rx,
        cur: Vec::new(),
        pos: 0,
    };
    let Ok(decoded) = layer::decompress(chunks, media_type) else {
        return Unpacked::none();
    };
    let mut stream = HashingReader {
        inner: decoded,
        hash: Sha256Writer::new(io::sink()),
    };
    let opts = UnpackOptions {
        overlay_whiteouts: true,
        ..UnpackOptions::for_current_user()
    };
    let unpacked = layer::unpack(&mut stream, &dir.path().join("rootfs"), &opts).is_ok();
    let drained = io::copy(&mut stream, &mut io::sink()).is_ok();
    let (digest, _, _) = stream.hash.finish();
    Unpacked {
        diff_id: drained.then_some(digest),
        dir: unpacked.then_some(dir),
    }
}

/// The chunks of a channel as one stream; an abort is a read error.
struct ChannelReader {
    rx: Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Chunk::Data(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Chunk::Abort) => {
                    return Err(io::Error::other("the layer's read was cut short"));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256Writer<io::Sink>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut self.hash, &buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::media_type;

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_600_000_000);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, p, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("store")).unwrap();
        (d, s)
    }

    #[test]
    fn a_teed_layer_becomes_its_snapshot_with_the_tar_mtimes() {
        let (_d, store) = store();
        let tar = layer_tar(&[("etc/hello", b"hi\n")]);
        let diff_id = Digest::of(&tar);
        assert_eq!(sniff_layer(&tar), Some(media_type::OCI_LAYER));
        let mut tee = SnapshotTee::start(&store, media_type::OCI_LAYER).unwrap();
        for c in tar.chunks(700) {
            tee.feed(c.to_vec());
        }
        let u = tee.finish();
        assert_eq!(u.diff_id, Some(diff_id));
        assert!(u.adopt(&store, &diff_id).unwrap());
        let snap = store.root().join("snapshots").join(diff_id.hex());
        let f = snap.join("etc/hello");
        assert_eq!(std::fs::read(&f).unwrap(), b"hi\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&f).unwrap().mtime(), 1_600_000_000);
    }

    #[test]
    fn a_gzip_layer_hashes_its_uncompressed_stream() {
        use std::io::Write;
        let (_d, store) = store();
        let tar = layer_tar(&[("a", b"a")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let mt = sniff_layer(&gz).unwrap();
        let mut tee = SnapshotTee::start(&store, mt).unwrap();
        tee.feed(gz);
        let u = tee.finish();
        assert_eq!(u.diff_id, Some(Digest::of(&tar)));
    }

    #[test]
    fn a_wrong_diff_id_or_an_aborted_read_leaves_no_snapshot() {
        let (_d, store) = store();
        let tar = layer_tar(&[("a", b"a")]);
        let wrong = Digest::of(b"something else");
        let mut tee = SnapshotTee::start(&store, media_type::OCI_LAYER).unwrap();
        tee.feed(tar.clone());
        assert!(!tee.finish().adopt(&store, &wrong).unwrap());
        assert!(!store.root().join("snapshots").join(wrong.hex()).exists());

        let mut tee = SnapshotTee::start(&store, media_type::OCI_LAYER).unwrap();
        tee.feed(tar[..600].to_vec());
        drop(tee);
        assert!(!store.root().join("snapshots").exists());
        // The temp dirs are gone too.
        let tmp = std::fs::read_dir(store.root().join("tmp")).unwrap().count();
        assert_eq!(tmp, 0);
    }
}

//! Layer compression: the media types, deterministic compressors and the
//! decompressing reader.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::str::FromStr;

use flate2::write::GzEncoder;

use crate::error::{Error, Result};

/// gzip level used for every layer. Level 6 is zlib's default trade-off;
/// what matters for reproducibility is that it is fixed (the bytes are then
/// a function of the input and the flate2/zlib-rs version).
pub(crate) const GZIP_LEVEL: u32 = 6;
/// zstd level used for every layer (zstd's default).
pub(crate) const ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

/// One table for name <-> variant <-> media type, so the maps cannot drift.
const TABLE: [(Compression, &str, &str); 3] = [
    (
        Compression::Gzip,
        "gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        Compression::Zstd,
        "zstd",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ),
    (
        Compression::None,
        "none",
        "application/vnd.oci.image.layer.v1.tar",
    ),
];

impl Compression {
    /// Every variant, in table order.
    pub const ALL: [Compression; 3] = [Compression::Gzip, Compression::Zstd, Compression::None];

    fn row(self) -> &'static (Compression, &'static str, &'static str) {
        match self {
            Compression::Gzip => &TABLE[0],
            Compression::Zstd => &TABLE[1],
            Compression::None => &TABLE[2],
        }
    }

    /// How bytes starting with `head` are compressed, by their magic
    /// number (gzip, zstd); anything else counts as uncompressed.
    pub fn of_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type of a blob compressed this way.
    pub fn media_type(self) -> &'static str {
        self.row().2
    }

    /// The name used in specs and flags: `gzip`, `zstd` or `none`.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The compression of a layer media type (OCI, OCI non-distributable,
    /// Docker schema 2), or `None` for a media type that is not a layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Compression> {
        TABLE
            .iter()
            .find(|(_, name, _)| *name == s)
            .map(|(c, _, _)| *c)
            .ok_or_else(|| {
                Error::msg(format!(
                    "unknown compression `{s}` (expected one of: gzip, zstd, none)"
                ))
            })
    }
}

/// Number of zstd worker threads. Any count >= 1 produces the same bytes
/// (CRATES.md), so this only affects speed.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4) as u32)
        .unwrap_or(1)
        .max(1)
}

/// Uncompressed bytes per gzip member of a layer blob.
pub(crate) const GZIP_MEMBER: usize = 1 << 20;

/// gzip on every core: the input is cut into fixed 1 MiB pieces, each
/// compressed on its own into one gzip member, and the members are written
/// in order. A multi-member stream is plain gzip (RFC 1952; every reader,
/// including Go's and GNU gzip, reads it). The bytes depend only on the
/// input, the level and the piece size, never on the number of threads.
pub(crate) struct ParallelGz<W: Write> {
    out: W,
    piece: Vec<u8>,
    batch: Vec<Vec<u8>>,
    batch_max: usize,
    wrote_any: bool,
}

impl<W: Write> ParallelGz<W> {
    fn new(out: W) -> Self {
        ParallelGz {
            out,
            piece: Vec::with_capacity(GZIP_MEMBER),
            batch: Vec::new(),
            batch_max: rayon::current_num_threads().max(1) * 2,
            wrote_any: false,
        }
    }

    fn member(data: &[u8]) -> io::Result<Vec<u8>> {
        let level = if incompressible(data)? { 0 } else { GZIP_LEVEL };
        let mut e = GzEncoder::new(
            Vec::with_capacity(data.len() / 2 + 64),
            flate2::Compression::new(level),
        );
        e.write_all(data)?;
        e.finish()
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        use rayon::prelude::*;
        let members: Vec<io::Result<Vec<u8>>> =
            self.batch.par_iter().map(|p| Self::member(p)).collect();
        self.batch.clear();
        for m in members {
            self.out.write_all(&m?)?;
            self.wrote_any = true;
        }
        Ok(())
    }

    fn push_piece(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.piece, Vec::with_capacity(GZIP_MEMBER));
        self.batch.push(full);
        if self.batch.len() >= self.batch_max {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.piece.is_empty() || (!self.wrote_any && self.batch.is_empty()) {
            self.push_piece()?;
        }
        self.flush_batch()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(GZIP_MEMBER - self.piece.len());
        self.piece.extend_from_slice(&buf[..n]);
        if self.piece.len() == GZIP_MEMBER {
            self.push_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are cut at fixed offsets only; flushing early would
        // change the bytes. The sink is flushed by `finish`.
        Ok(())
    }
}

/// Whether a piece looks incompressible (already compressed or random
/// data): its first 32 KiB shrink by less than 2% at the layer level.
/// Such pieces are stored (deflate level 0): no slower to read, no bigger
/// than compressing them, and far faster to write. The decision depends
/// only on the bytes, so the output stays reproducible.
fn incompressible(data: &[u8]) -> io::Result<bool> {
    let probe = &data[..data.len().min(32 << 10)];
    if probe.len() < 4096 {
        return Ok(false);
    }
    let mut e = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(probe.len()),
        flate2::Compression::new(GZIP_LEVEL),
    );
    e.write_all(probe)?;
    let out = e.finish()?;
    Ok(out.len() * 100 >= probe.len() * 98)
}

/// A compressing writer; `finish` flushes the trailer and returns the sink.
pub(crate) enum Compressor<W: Write> {
    Gzip(ParallelGz<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> Compressor<W> {
    pub(crate) fn new(compression: Compression, out: W) -> io::Result<Self> {
        Ok(match compression {
            // GzEncoder writes mtime 0, no file name, OS byte 255: no host
            // data enters the header.
            Compression::Gzip => Compressor::Gzip(ParallelGz::new(out)),
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                enc.multithread(zstd_workers())?;
                Compressor::Zstd(enc)
            }
            Compression::None => Compressor::Plain(out),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::Plain(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
            Compressor::Plain(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::Plain(w) => w.flush(),
        }
    }
}

/// A reader that yields the uncompressed tar of a layer blob with the given
/// media type (OCI or Docker; gzip, zstd or plain). Unknown media types are
/// an error.
pub fn decompress<'a, R: Read + 'a>(reader: R, media_type: &str) -> Result<Box<dyn Read + 'a>> {
    let compression = Compression::from_media_type(media_type)
        .ok_or_else(|| Error::Unsupported(format!("layer media type `{media_type}`")))?;
    Ok(match compression {
        // Multi-member gzip streams are valid layers (e.g. concatenated by
        // some registries' tools): read them all.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(reader))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::io("starting zstd decoder", e))?,
        ),
        Compression::None => Box::new(reader),
    })
}

/// Compresses an uncompressed layer tar read from `tar` into `out` with the
/// same deterministic encoder [`crate::layer::write_layer`] uses, so the
/// bytes are those a one-pass write gives.
pub fn compress_tar<R: Read, W: Write>(mut tar: R, compression: Compression, out: W) -> Result<W> {
    let mut c =
        Compressor::new(compression, out).map_err(|e| Error::io("starting compressor", e))?;
    io::copy(&mut tar, &mut c).map_err(|e| Error::io("compressing a layer", e))?;
    c.finish()
        .map_err(|e| Error::io("finishing layer compression", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_gzip_is_independent_of_threads_and_readable() {
        let data: Vec<u8> = (0..(3 * GZIP_MEMBER + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let compress = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = Compressor::new(Compression::Gzip, Vec::new()).unwrap();
                for chunk in data.chunks(7777) {
                    c.write_all(chunk).unwrap();
                }
                c.finish().unwrap()
            })
        };
        let one = compress(1);
        assert_eq!(
            one,
            compress(3),
            "bytes must not depend on the thread count"
        );
        let mut back = Vec::new();
        decompress(&one[..], Compression::Gzip.media_type())
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // random (incompressible) data is stored, and still reads back
        let mut x: u64 = 7;
        let noise: Vec<u8> = (0..(2 * GZIP_MEMBER))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut c = Compressor::new(Compression::Gzip, Vec::new()).unwrap();
        c.write_all(&noise).unwrap();
        let z = c.finish().unwrap();
        assert!(
            z.len() < noise.len() + 1024,
            "stored, not expanded: {}",
            z.len()
        );
        let mut back = Vec::new();
        decompress(&z[..], Compression::Gzip.media_type())
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, noise);
        // an empty input is still a valid gzip stream
        let empty = Compressor::new(Compression::Gzip, Vec::new())
            .unwrap()
            .finish()
            .unwrap();
        let mut back = Vec::new();
        decompress(&empty[..], Compression::Gzip.media_type())
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn names_and_media_types_round_trip() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(Compression::from_media_type(c.media_type()), Some(c));
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!(Compression::default(), Compression::Gzip);
        assert!("gz".parse::<Compression>().is_err());
        assert!("GZIP".parse::<Compression>().is_err());
    }

    #[test]
    fn docker_media_type_is_gzip() {
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
    }

    #[test]
    fn unknown_media_type_is_an_error() {
        let err = decompress(&b""[..], "application/vnd.oci.image.config.v1+json")
            .err()
            .expect("config media type accepted as a layer");
        assert!(err.to_string().contains("media type"), "{err}");
    }

    #[test]
    fn each_compressor_round_trips_through_decompress() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in Compression::ALL {
            let mut enc = Compressor::new(c, Vec::new()).unwrap();
            enc.write_all(&data).unwrap();
            let blob = enc.finish().unwrap();
            let mut out = Vec::new();
            decompress(&blob[..], c.media_type())
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{c}");
            if c != Compression::None {
                assert!(blob.len() < data.len(), "{c} did not compress");
            }
        }
    }
}

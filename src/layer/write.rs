//! Deterministic layer tar writing.
//!
//! Headers are filled by hand: ustar with empty user/group names, octal
//! numbers, and a PAX extended header (`x`, named `././@PaxHeader`) in front
//! of an entry only when ustar cannot hold a value (path or link target
//! longer than 100 bytes, ids, sizes or mtimes too large for their octal
//! field, xattrs). Nothing from the host (names, atime, inode numbers, the
//! order a directory was read in) reaches the output.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use super::compression::{Compression, Compressor};
use super::entry::{Entry, EntryKind};
use crate::digest::{Digest, Sha256Writer};
use crate::error::{Error, IoContext, Result};

const BLOCK: usize = 512;
const COPY_BUF: usize = 128 * 1024;

/// What [`write_layer`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerStats {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Number of entries written (one per [`Entry`]).
    pub entries: usize,
}

/// Sorts entries by path (byte order of their tar names), rejects
/// duplicate/invalid paths, writes a deterministic tar, computes the diff_id
/// in the same pass, compresses into `out`, and returns the stats and `out`.
///
/// Memory does not grow with file sizes: file contents are streamed from
/// their `source`. A file whose size changed since its `Entry` was made is an
/// error ("file changed during build").
///
/// Hard links: each group of entries that link to one another is written
/// with its first member (in output order) as the real entry and the others
/// as links to it, whichever member the caller made the "real" one.
pub fn write_layer<W: Write>(
    entries: Vec<Entry>,
    compression: Compression,
    out: W,
) -> Result<(LayerStats, W)> {
    let mut named: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|e| Ok((e.tar_name()?, e)))
        .collect::<Result<_>>()?;
    named.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::msg(format!(
            "duplicate layer entry path {:?}",
            w[0].1.path
        )));
    }
    let mut entries: Vec<Entry> = named.into_iter().map(|(_, e)| e).collect();
    canonicalize_hardlinks(&mut entries)?;

    let compressor = Compressor::new(compression, out).ctx(|| "starting compressor".into())?;
    let mut tar = Sha256Writer::new(compressor);
    let mut buf = vec![0u8; COPY_BUF];
    for entry in &entries {
        write_entry(&mut tar, entry, &mut buf)?;
    }
    // End of archive: two zero blocks.
    tar.write_all(&[0u8; 2 * BLOCK])
        .ctx(|| "writing layer".into())?;
    let (diff_id, uncompressed_size, compressor) = tar.finish();
    let out = compressor
        .finish()
        .ctx(|| "finishing layer compression".into())?;
    Ok((
        LayerStats {
            diff_id,
            uncompressed_size,
            entries: entries.len(),
        },
        out,
    ))
}

/// Makes every hard link point at the first member of its group in the
/// (sorted) entry order, moving the real content there if needed, so a
/// reader always sees the target before the link.
fn canonicalize_hardlinks(entries: &mut [Entry]) -> Result<()> {
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque))
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    // root index -> members (links), in order.
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..entries.len() {
        let EntryKind::Hardlink { target } = &entries[i].kind else {
            continue;
        };
        // Follow link chains to the real entry.
        let mut seen = 0;
        let mut cur = target.clone();
        let root = loop {
            let j = *index.get(&cur).ok_or_else(|| {
                Error::msg(format!(
                    "hard link {:?} points at {cur:?}, which is not an entry of this layer",
                    entries[i].path
                ))
            })?;
            match &entries[j].kind {
                EntryKind::Hardlink { target } => {
                    seen += 1;
                    if seen > entries.len() {
                        return Err(Error::msg(format!(
                            "hard link {:?} is part of a link cycle",
                            entries[i].path
                        )));
                    }
                    cur = target.clone();
                }
                k if k.is_linkable() => break j,
                _ => {
                    return Err(Error::msg(format!(
                        "hard link {:?} points at {cur:?}, which cannot be hard linked",
                        entries[i].path
                    )));
                }
            }
        };
        groups.entry(root).or_default().push(i);
    }
    for (root, members) in groups {
        let first = members.iter().copied().fold(root, usize::min);
        if first != root {
            let real = std::mem::replace(
                &mut entries[root].kind,
                EntryKind::Hardlink {
                    target: entries[first].path.clone(),
                },
            );
            entries[first].kind = real;
        }
        let target = entries[first].path.clone();
        for m in members.into_iter().filter(|&m| m != first) {
            entries[m].kind = EntryKind::Hardlink {
                target: target.clone(),
            };
        }
    }
    Ok(())
}

fn write_entry<W: Write>(tar: &mut W, e: &Entry, buf: &mut [u8]) -> Result<()> {
    let mut name = e.tar_name()?;
    let (typeflag, size, link, dev) = match &e.kind {
        EntryKind::Dir => {
            name.push('/');
            (b'5', 0, None, None)
        }
        EntryKind::File { size, .. } => (b'0', *size, None, None),
        EntryKind::Symlink { target } => {
            if target.is_empty() || target.contains('\0') {
                return Err(Error::msg(format!(
                    "symlink {:?} has an empty target or one with a NUL byte",
                    e.path
                )));
            }
            (b'2', 0, Some(target.as_str()), None)
        }
        EntryKind::Hardlink { target } => (b'1', 0, Some(target.as_str()), None),
        EntryKind::Whiteout | EntryKind::Opaque => (b'0', 0, None, None),
        EntryKind::CharDevice { major, minor } => (b'3', 0, None, Some((*major, *minor))),
        EntryKind::BlockDevice { major, minor } => (b'4', 0, None, Some((*major, *minor))),
        EntryKind::Fifo => (b'6', 0, None, None),
    };

    let mut header = [0u8; BLOCK];
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    if name.len() <= 100 {
        header[..name.len()].copy_from_slice(name.as_bytes());
    } else {
        header[..100].copy_from_slice(&name.as_bytes()[..100]);
        pax.push(("path".into(), name.clone().into_bytes()));
    }
    put_octal(&mut header[100..108], u64::from(e.mode & 0o7777));
    if !put_octal(&mut header[108..116], u64::from(e.uid)) {
        put_octal(&mut header[108..116], 0);
        pax.push(("uid".into(), e.uid.to_string().into_bytes()));
    }
    if !put_octal(&mut header[116..124], u64::from(e.gid)) {
        put_octal(&mut header[116..124], 0);
        pax.push(("gid".into(), e.gid.to_string().into_bytes()));
    }
    if !put_octal(&mut header[124..136], size) {
        put_octal(&mut header[124..136], 0);
        pax.push(("size".into(), size.to_string().into_bytes()));
    }
    if !put_octal(&mut header[136..148], e.mtime) {
        put_octal(&mut header[136..148], 0);
        pax.push(("mtime".into(), e.mtime.to_string().into_bytes()));
    }
    header[156] = typeflag;
    if let Some(link) = link {
        if link.len() <= 100 {
            header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        } else {
            header[157..257].copy_from_slice(&link.as_bytes()[..100]);
            pax.push(("linkpath".into(), link.as_bytes().to_vec()));
        }
    }
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty.
    let (major, minor) = dev.unwrap_or((0, 0));
    if !put_octal(&mut header[329..337], u64::from(major))
        || !put_octal(&mut header[337..345], u64::from(minor))
    {
        return Err(Error::msg(format!(
            "device numbers {major}:{minor} of {:?} do not fit in a tar header",
            e.path
        )));
    }

    let mut xattrs: Vec<&(String, Vec<u8>)> = e.xattrs.iter().collect();
    xattrs.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in xattrs {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(Error::msg(format!(
                "xattr name {k:?} of {:?} cannot be stored in a tar",
                e.path
            )));
        }
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }

    let what = || format!("writing layer entry {:?}", e.path);
    if !pax.is_empty() {
        write_pax(tar, &pax, e.mtime).ctx(what)?;
    }
    set_checksum(&mut header);
    tar.write_all(&header).ctx(what)?;

    if let EntryKind::File { source, size } = &e.kind {
        copy_file(tar, e, source, *size, buf)?;
        pad(tar, *size).ctx(what)?;
    }
    Ok(())
}

/// Streams exactly `size` bytes of `source` into the tar; any other size is
/// "file changed during build".
fn copy_file<W: Write>(
    tar: &mut W,
    e: &Entry,
    source: &std::path::Path,
    size: u64,
    buf: &mut [u8],
) -> Result<()> {
    let changed = |now: String| {
        Error::msg(format!(
            "file changed during build: {} (layer path {:?}): expected {size} bytes, {now}",
            source.display(),
            e.path
        ))
    };
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(source)
        .at("opening", source)?;
    let meta = f.metadata().at("reading metadata of", source)?;
    if !meta.is_file() {
        return Err(changed("now not a regular file".into()));
    }
    if meta.len() != size {
        return Err(changed(format!("now {} bytes", meta.len())));
    }
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => return Err(changed(format!("ended after {} bytes", size - left))),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(format!("reading {}", source.display()), err)),
        };
        tar.write_all(&buf[..n])
            .ctx(|| format!("writing layer entry {:?}", e.path))?;
        left -= n as u64;
    }
    let mut probe = [0u8; 1];
    if f.read(&mut probe).at("reading", source)? != 0 {
        return Err(changed("it grew while being read".into()));
    }
    Ok(())
}

fn pad<W: Write>(tar: &mut W, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        tar.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// Writes `v` as zero-padded octal filling all but the last byte of
/// `field`, followed by NUL. Returns false (leaving `field` alone) if it
/// does not fit.
fn put_octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn set_checksum(header: &mut [u8; BLOCK]) {
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    // Six octal digits, NUL, space: the traditional layout.
    let s = format!("{sum:06o}");
    header[148..154].copy_from_slice(&s.as_bytes()[s.len() - 6..]);
    header[154] = 0;
    header[155] = b' ';
}

/// One PAX record: `"<len> <key>=<value>\n"` where `<len>` counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    loop {
        let total = base + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    let mut rec = Vec::with_capacity(len);
    rec.extend_from_slice(format!("{len} {key}=").as_bytes());
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

fn write_pax<W: Write>(tar: &mut W, records: &[(String, Vec<u8>)], mtime: u64) -> io::Result<()> {
    let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
    let mut header = [0u8; BLOCK];
    let name = b"././@PaxHeader";
    header[..name.len()].copy_from_slice(name);
    put_octal(&mut header[100..108], 0o644);
    put_octal(&mut header[108..116], 0);
    put_octal(&mut header[116..124], 0);
    put_octal(&mut header[124..136], body.len() as u64);
    if !put_octal(&mut header[136..148], mtime) {
        put_octal(&mut header[136..148], 0);
    }
    header[156] = b'x';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    put_octal(&mut header[329..337], 0);
    put_octal(&mut header[337..345], 0);
    set_checksum(&mut header);
    tar.write_all(&header)?;
    tar.write_all(&body)?;
    pad(tar, body.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: vec![],
        }
    }

    fn tar_of(entries: Vec<Entry>) -> Vec<u8> {
        write_layer(entries, Compression::None, Vec::new())
            .unwrap()
            .1
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(tar);
        ar.entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect()
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", b"abc");
        assert_eq!(r, b"12 path=abc\n");
        // A record whose length crosses a digit boundary.
        let v = vec![b'x'; 90];
        let r = pax_record("path", &v);
        let len: usize = std::str::from_utf8(r.split(|&b| b == b' ').next().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, r.len());
    }

    #[test]
    fn octal_fields_refuse_values_that_do_not_fit() {
        let mut f = [0u8; 8];
        assert!(put_octal(&mut f, 0o7777777));
        assert_eq!(&f, b"7777777\0");
        assert!(!put_octal(&mut f, 0o10000000));
        assert_eq!(&f, b"7777777\0");
    }

    #[test]
    fn header_checksum_is_accepted_by_tar_crate() {
        let tar = tar_of(vec![entry("d", EntryKind::Dir)]);
        assert_eq!(names(&tar), ["d/"]);
        assert_eq!(tar.len(), 3 * BLOCK);
    }

    #[test]
    fn sorted_by_tar_name_and_duplicates_rejected() {
        let tar = tar_of(vec![
            entry("b", EntryKind::Fifo),
            entry("a/x", EntryKind::Whiteout),
            entry("a", EntryKind::Dir),
            entry("a", EntryKind::Opaque),
            entry("a/b", EntryKind::Fifo),
        ]);
        assert_eq!(names(&tar), ["a/", "a/.wh..wh..opq", "a/.wh.x", "a/b", "b"]);
        let err = write_layer(
            vec![entry("a", EntryKind::Dir), entry("a", EntryKind::Fifo)],
            Compression::None,
            Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn hardlink_real_content_moves_to_first_member() {
        let mut fifo_late = entry("z", EntryKind::Fifo);
        fifo_late.mode = 0o600;
        let tar = tar_of(vec![
            fifo_late,
            entry("a", EntryKind::Hardlink { target: "z".into() }),
            entry("m", EntryKind::Hardlink { target: "a".into() }),
        ]);
        let mut ar = tar::Archive::new(&tar[..]);
        let got: Vec<(String, tar::EntryType, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    e.header().entry_type(),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), tar::EntryType::Fifo, None),
                ("m".into(), tar::EntryType::Link, Some("a".into())),
                ("z".into(), tar::EntryType::Link, Some("a".into())),
            ]
        );
    }

    #[test]
    fn hardlink_to_missing_or_directory_is_rejected() {
        for target in ["nope", "d"] {
            let err = write_layer(
                vec![
                    entry("d", EntryKind::Dir),
                    entry(
                        "l",
                        EntryKind::Hardlink {
                            target: target.into(),
                        },
                    ),
                ],
                Compression::None,
                Vec::new(),
            )
            .unwrap_err();
            assert!(err.to_string().contains("hard link"), "{err}");
        }
    }

    #[test]
    fn large_ids_and_long_names_use_pax() {
        let mut e = entry(&format!("{}/f", "d".repeat(150)), EntryKind::Fifo);
        e.uid = 3_000_000_000;
        e.gid = 7;
        e.xattrs = vec![("user.k".into(), b"v\0bin".to_vec())];
        let tar = tar_of(vec![e.clone()]);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut entries = ar.entries().unwrap();
        let mut got = entries.next().unwrap().unwrap();
        assert_eq!(got.path_bytes().as_ref(), e.path.as_bytes());
        assert_eq!(got.header().uid().unwrap(), 3_000_000_000);
        assert_eq!(got.header().gid().unwrap(), 7);
        let exts: Vec<(String, Vec<u8>)> = got
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert!(exts.contains(&("SCHILY.xattr.user.k".into(), b"v\0bin".to_vec())));
        // No user/group names are written.
        assert!(got.header().username_bytes().unwrap_or_default().is_empty());
        assert!(entries.next().is_none());
    }
}

//! One pass over an image archive (docker-archive or oci-archive): every
//! member is read once, in big chunks. `blobs/sha256/<hex>` members are
//! verified against their name and stored as they are read; other regular
//! members are hashed into held blobs (small ones in memory, others as
//! uncommitted temp files) until the archive's manifest, which `docker
//! save` usually writes last, says which are the config and the layers.
//! When asked, each member that looks like a layer is also unpacked, beside
//! its read, into a snapshot candidate (see [`super::snapshot_tee`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::Compression;
use crate::store::{MAX_SMALL_BLOB, PendingBlob, Store};

use super::archive::{member_path, resolve_link};
use super::snapshot_tee::{SnapshotTee, Unpacked, sniff_layer};

/// The size of each read from the archive (and of each chunk teed to an
/// unpacker); members smaller than this are held in memory.
const CHUNK: usize = 1 << 20;

/// How many bytes of small members one scan holds in memory; past it they
/// wait in temp files like big ones (an archive of many small members
/// must not fill the memory).
const SMALL_BUDGET: usize = 64 << 20;

/// What one pass over an archive found.
pub(crate) struct ArchiveScan {
    pub path: PathBuf,
    /// The raw `oci-layout`, `index.json` and `manifest.json` (each read up
    /// to `MAX_SMALL_BLOB + 1` bytes: parsing reports a longer one).
    pub oci_layout: Option<Vec<u8>>,
    pub index: Option<Vec<u8>>,
    pub docker_manifest: Option<Vec<u8>>,
    /// Symlink members, resolved inside the archive.
    links: BTreeMap<String, String>,
    /// Regular members (other than the three above), first of a name wins.
    members: BTreeMap<String, Member>,
    /// Unpacks started while reading, by the digest of the member's bytes.
    tees: HashMap<Digest, Tee>,
}

/// A regular member and where its bytes are.
pub(crate) struct Member {
    /// Its first bytes (up to 4), for telling gzip and zstd from tar;
    /// `None` for a blob that was in the store already (not read).
    pub head: Option<Vec<u8>>,
    held: Held,
}

enum Held {
    Small(Vec<u8>),
    Pending(PendingBlob),
    /// In the store (verified when read, or already there).
    Stored(Digest, u64),
}

enum Tee {
    Running(SnapshotTee),
    Done(Unpacked),
}

impl Member {
    pub(crate) fn digest(&self) -> Digest {
        match &self.held {
            Held::Small(b) => Digest::of(b),
            Held::Pending(p) => p.digest(),
            Held::Stored(d, _) => *d,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        match &self.held {
            Held::Small(b) => b.len() as u64,
            Held::Pending(p) => p.size(),
            Held::Stored(_, s) => *s,
        }
    }
}

/// Reads the archive at `path` once (see the module docs). With `unpack`,
/// layer-like members are unpacked beside their read.
pub(crate) fn scan_archive(store: &Store, path: &Path, unpack: bool) -> Result<ArchiveScan> {
    let f = File::open(path).at("opening", path)?;
    let mut f = io::BufReader::with_capacity(CHUNK, f);
    let magic = io::BufRead::fill_buf(&mut f).at("reading", path)?;
    if Compression::of_magic(magic) != Compression::None {
        return Err(Error::Unsupported(format!(
            "loading a compressed archive ({}); decompress it first",
            path.display()
        )));
    }
    let mut scan = ArchiveScan {
        path: path.to_path_buf(),
        oci_layout: None,
        index: None,
        docker_manifest: None,
        links: BTreeMap::new(),
        members: BTreeMap::new(),
        tees: HashMap::new(),
    };
    let mut ar = tar::Archive::new(f);
    let mut budget = SMALL_BUDGET;
    for entry in ar.entries().at("reading", path)? {
        let mut entry = entry.at("reading", path)?;
        let Some(name) = entry.path().ok().and_then(|p| member_path(&p)) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Some(t) = entry
                .link_name()
                .ok()
                .flatten()
                .and_then(|t| t.to_str().and_then(|t| resolve_link(&name, t)))
            {
                scan.links.insert(name, t);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(slot) = scan.control_slot(&name) {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_SMALL_BLOB + 1)
                .read_to_end(&mut bytes)
                .at("reading", path)?;
            *slot = Some(bytes);
            continue;
        }
        if scan.members.contains_key(&name) {
            continue;
        }
        let named = name
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
        if let Some(d) = named
            && store.has_blob(&d)
        {
            let member = Member {
                head: None,
                held: Held::Stored(d, entry.size()),
            };
            scan.members.insert(name, member);
            continue;
        }
        // A layer whose snapshot exists (known by its name) is not unpacked.
        let hint = name
            .trim_start_matches("blobs/sha256/")
            .trim_end_matches(".tar")
            .trim_end_matches("/layer");
        let tee = unpack
            && !format!("sha256:{hint}")
                .parse::<Digest>()
                .is_ok_and(|d| super::has_snapshot(store, &d));
        let size = entry.size();
        let (mut member, tee) =
            read_member(store, &mut entry, (size, &mut budget), &name, path, tee)?;
        if let Some(d) = named {
            member = store_named(store, member, &d)?;
        }
        if let Some(t) = tee {
            scan.tees.entry(member.digest()).or_insert(Tee::Running(t));
        }
        scan.members.insert(name, member);
    }
    Ok(scan)
}

/// Reads one member of `want` bytes into a held blob (in memory while
/// `budget` lasts), teeing it to an unpacker when asked and its first
/// bytes look like a layer.
fn read_member(
    store: &Store,
    entry: &mut impl Read,
    (want, budget): (u64, &mut usize),
    name: &str,
    path: &Path,
    tee: bool,
) -> Result<(Member, Option<SnapshotTee>)> {
    let reading = || format!("reading {} in {}", name, path.display());
    let first = fill(entry).map_err(|e| Error::io(reading(), e))?;
    let mut tee = if tee {
        sniff_layer(&first).and_then(|mt| SnapshotTee::start(store, mt))
    } else {
        None
    };
    let head = Some(first[..first.len().min(4)].to_vec());
    let mut total = first.len() as u64;
    let held = if first.len() < CHUNK && first.len() <= *budget {
        *budget -= first.len();
        if let Some(t) = tee.as_mut() {
            t.feed(first.clone());
        }
        Held::Small(first)
    } else {
        let mut w = store.blob_writer()?;
        let mut chunk = first;
        loop {
            w.write_all(&chunk)
                .ctx(|| "writing a blob to the store".into())?;
            let full = chunk.len() == CHUNK;
            if let Some(t) = tee.as_mut() {
                t.feed(chunk);
            }
            if !full {
                break;
            }
            chunk = fill(entry).map_err(|e| Error::io(reading(), e))?;
            if chunk.is_empty() {
                break;
            }
            total += chunk.len() as u64;
        }
        Held::Pending(w.finish_pending()?)
    };
    if total != want {
        return Err(Error::corrupt(
            path.display().to_string(),
            format!("member `{name}` is truncated: {total} of its {want} bytes"),
        ));
    }
    Ok((Member { head, held }, tee))
}

/// Up to `CHUNK` bytes (fewer only at the member's end).
fn fill(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    r.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Stores a `blobs/sha256/<hex>` member, which must have digest `d`.
fn store_named(store: &Store, member: Member, d: &Digest) -> Result<Member> {
    let actual = member.digest();
    if actual != *d {
        return Err(Error::corrupt(
            format!("blob {d}"),
            format!("content has digest {actual}"),
        ));
    }
    let size = member.size();
    match member.held {
        Held::Small(b) => {
            store.put_blob(&b)?;
        }
        Held::Pending(p) => {
            p.commit()?;
        }
        Held::Stored(..) => {}
    }
    Ok(Member {
        head: member.head,
        held: Held::Stored(*d, size),
    })
}

impl ArchiveScan {
    fn control_slot(&mut self, name: &str) -> Option<&mut Option<Vec<u8>>> {
        match name {
            "oci-layout" => Some(&mut self.oci_layout),
            "index.json" => Some(&mut self.index),
            "manifest.json" => Some(&mut self.docker_manifest),
            _ => None,
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::corrupt(self.path.display().to_string(), detail)
    }

    /// The member at `p`, symlinks followed (inside the archive).
    pub(crate) fn follow(&self, p: &str) -> Result<String> {
        let mut cur =
            member_path(Path::new(p)).ok_or_else(|| self.corrupt(format!("bad path `{p}`")))?;
        for _ in 0..16 {
            match self.links.get(&cur) {
                Some(next) => cur = next.clone(),
                None => return Ok(cur),
            }
        }
        Err(self.corrupt(format!("symlink loop at `{p}`")))
    }

    pub(crate) fn member(&self, p: &str) -> Result<&Member> {
        self.members
            .get(p)
            .ok_or_else(|| self.corrupt(format!("member `{p}` is missing")))
    }

    /// The bytes of a member that must be small (a config), without
    /// storing it.
    pub(crate) fn small_bytes(&mut self, store: &Store, p: &str) -> Result<Vec<u8>> {
        if let Held::Small(b) = &self.member(p)?.held {
            return Ok(b.clone());
        }
        let (d, _) = self.commit(store, p)?;
        store.read_blob(&d)
    }

    /// Stores the member at `p` (its digest was computed from its bytes).
    pub(crate) fn commit(&mut self, store: &Store, p: &str) -> Result<(Digest, u64)> {
        self.member(p)?;
        let m = self.members.remove(p).expect("checked above");
        let (d, size) = match m.held {
            Held::Small(b) => {
                let size = b.len() as u64;
                (store.put_blob(&b)?, size)
            }
            Held::Pending(pb) => pb.commit()?,
            Held::Stored(d, s) => (d, s),
        };
        let stored = Member {
            head: m.head,
            held: Held::Stored(d, size),
        };
        self.members.insert(p.to_string(), stored);
        Ok((d, size))
    }

    /// What the unpack of the member with digest `d` gave, if one ran
    /// (waits for it to end).
    pub(crate) fn unpacked(&mut self, d: &Digest) -> Option<&Unpacked> {
        let tee = self.tees.get_mut(d)?;
        if matches!(tee, Tee::Running(_))
            && let Tee::Running(t) = std::mem::replace(tee, Tee::Done(Unpacked::none()))
        {
            *tee = Tee::Done(t.finish());
        }
        match tee {
            Tee::Done(u) => Some(u),
            Tee::Running(_) => None,
        }
    }

    /// Takes the unpack of the member with digest `d` (to adopt it).
    pub(crate) fn take_unpacked(&mut self, d: &Digest) -> Option<Unpacked> {
        self.unpacked(d)?;
        match self.tees.remove(d)? {
            Tee::Done(u) => Some(u),
            Tee::Running(_) => None,
        }
    }
}

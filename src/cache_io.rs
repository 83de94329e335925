//! Sharing the build cache through a registry or a directory
//! (`--cache-to`, `--cache-from`).
//!
//! A cache is one OCI artifact ([`artifact`]): a manifest whose config blob
//! is the canonical JSON map `layer key -> CacheRecord` and whose layers are
//! the records' layer blobs. It lives on a registry (`type=registry`) or in
//! an OCI layout directory (`type=local`, [`layout`]).
//!
//! Import is lazy: [`Imports::load`] fetches only manifests and records;
//! planning asks [`Imports::lookup`]; blobs come later, through
//! [`Imports::fetch`], for exactly the layers an image or an executed step
//! needs. Export ([`export`]) runs after a successful build.
//!
//! Invariants:
//! - Nothing imported is trusted: a source whose manifest or records blob
//!   does not verify is skipped with a warning; single bad records are
//!   dropped with a warning; blobs are verified (size, digest, and the
//!   uncompressed diff_id the record claims) before anything uses them.
//! - An imported record enters the local store only once its layer blobs
//!   are local ([`Imports::persist`]).
//! - It knows nothing about build graphs: the build passes records in.

pub mod artifact;
pub mod layout;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use artifact::{CACHE_MEDIA_TYPE, CacheManifest, Records};
pub use layout::Layout;

use crate::digest::{CacheKey, Digest, Sha256Writer};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::{self, Client, Remote};
use crate::store::{CacheRecord, Descriptor, Store};

/// Where a cache lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=registry,ref=REF`.
    Registry(Reference),
    /// `type=local,dest=DIR` / `type=local,src=DIR`, tagged `tag`.
    Local { dir: PathBuf, tag: String },
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{}", r.normalized()),
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
        }
    }
}

/// Which steps an export carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportMode {
    /// Only the layers of the final images.
    Min,
    /// Every step of every stage the targets needed (the default here).
    #[default]
    Max,
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheTo {
    pub location: CacheLocation,
    pub mode: ExportMode,
}

/// `key=value` pairs of a buildx-style cache flag.
fn attributes(s: &str, flag: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("{flag} `{s}`: `{part}` is not key=value"));
        };
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("{flag} `{s}`: `{k}` given twice"));
        }
    }
    Ok(out)
}

fn parse_location(
    s: &str,
    flag: &str,
    dir_key: &str,
    allowed: &[&str],
) -> std::result::Result<(CacheLocation, BTreeMap<String, String>), String> {
    // A bare reference is a registry cache, as in buildx.
    let mut a = if s.contains('=') {
        attributes(s, flag)?
    } else {
        [
            ("type".to_string(), "registry".to_string()),
            ("ref".to_string(), s.to_string()),
        ]
        .into_iter()
        .collect()
    };
    let kind = a
        .remove("type")
        .ok_or_else(|| format!("{flag} `{s}`: type= is required (registry or local)"))?;
    let location = match kind.as_str() {
        "registry" => {
            let r = a
                .remove("ref")
                .ok_or_else(|| format!("{flag} `{s}`: type=registry needs ref=REF"))?;
            let reference =
                Reference::parse(&r).map_err(|e| format!("{flag} `{s}`: `{r}`: {e}"))?;
            if reference.registry.is_none() {
                return Err(format!(
                    "{flag} `{s}`: `{r}` names no registry host (write HOST[:PORT]/NAME:TAG)"
                ));
            }
            CacheLocation::Registry(reference)
        }
        "local" => {
            let dir = a
                .remove(dir_key)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| format!("{flag} `{s}`: type=local needs {dir_key}=DIR"))?;
            let tag = a
                .remove("tag")
                .or_else(|| a.remove("ref"))
                .unwrap_or_else(|| "latest".to_string());
            if tag.is_empty() {
                return Err(format!("{flag} `{s}`: empty tag"));
            }
            CacheLocation::Local {
                dir: PathBuf::from(dir),
                tag,
            }
        }
        other => {
            return Err(format!(
                "{flag} `{s}`: type `{other}` is not supported (registry or local)"
            ));
        }
    };
    if let Some(k) = a.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{flag} `{s}`: unknown attribute `{k}`"));
    }
    Ok((location, a))
}

/// Parses `--cache-to`: `type=registry,ref=REF[,mode=min|max]` or
/// `type=local,dest=DIR[,tag=TAG][,mode=min|max]`.
pub fn parse_cache_to(s: &str) -> std::result::Result<CacheTo, String> {
    let (location, rest) = parse_location(s, "--cache-to", "dest", &["mode"])?;
    let mode = match rest.get("mode").map(String::as_str) {
        None | Some("max") => ExportMode::Max,
        Some("min") => ExportMode::Min,
        Some(other) => {
            return Err(format!(
                "--cache-to `{s}`: mode `{other}` (expected min or max)"
            ));
        }
    };
    Ok(CacheTo { location, mode })
}

/// Parses `--cache-from`: `type=registry,ref=REF`, `type=local,src=DIR[,tag=TAG]`
/// or a bare registry reference.
pub fn parse_cache_from(s: &str) -> std::result::Result<CacheLocation, String> {
    Ok(parse_location(s, "--cache-from", "src", &[])?.0)
}

fn connect(r: &Reference) -> Result<(Client, Remote)> {
    let remote = Remote::new(r);
    let client = Client::connect(
        &remote.registry,
        &registry::Options::from_env(&remote.registry),
    )?;
    Ok((client, remote))
}

// ---------------------------------------------------------------- import

/// Where imported blobs come from.
enum Source {
    Registry {
        client: Box<Client>,
        repo: String,
        name: String,
    },
    Local {
        layout: Layout,
        name: String,
    },
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::Registry { name, .. } | Source::Local { name, .. } => name,
        }
    }

    fn open(location: &CacheLocation) -> Result<(Source, CacheManifest, Vec<u8>)> {
        let name = location.to_string();
        match location {
            CacheLocation::Registry(r) => {
                let (client, remote) = connect(r)?;
                let fetched = client.get_manifest(&remote.repository, &remote.reference)?;
                if let Some(want) = r.digest
                    && fetched.digest != want
                {
                    return Err(Error::corrupt(
                        format!("manifest {name}"),
                        format!("content has digest {}", fetched.digest),
                    ));
                }
                let m = CacheManifest::parse(&fetched.bytes, &format!("manifest {name}"))?;
                let source = Source::Registry {
                    client: Box::new(client),
                    repo: remote.repository,
                    name,
                };
                let records = source.read_small(&m.config)?;
                Ok((source, m, records))
            }
            CacheLocation::Local { dir, tag } => {
                let layout = Layout::new(dir);
                let (_, bytes) = layout
                    .manifest(tag)?
                    .ok_or_else(|| Error::msg(format!("{name}: no cache tagged `{tag}`")))?;
                let m = CacheManifest::parse(&bytes, &format!("manifest {name}"))?;
                let source = Source::Local { layout, name };
                let records = source.read_small(&m.config)?;
                Ok((source, m, records))
            }
        }
    }

    /// The records blob, verified.
    fn read_small(&self, d: &Descriptor) -> Result<Vec<u8>> {
        match self {
            Source::Local { layout, .. } => layout.read_small(d, artifact::MAX_RECORDS),
            Source::Registry {
                client, repo, name, ..
            } => {
                let mut buf = Vec::new();
                download(client, repo, d, &mut buf)?;
                let actual = Digest::of(&buf);
                if actual != d.digest {
                    return Err(Error::corrupt(
                        format!("blob {} from {name}", d.digest),
                        format!("content has digest {actual}"),
                    ));
                }
                Ok(buf)
            }
        }
    }

    /// Copies one blob into the store, verified.
    fn fetch(&self, store: &Store, d: &Descriptor) -> Result<()> {
        match self {
            Source::Local { layout, .. } => layout.copy_to_store(store, d),
            Source::Registry {
                client, repo, name, ..
            } => {
                let mut w = store.blob_writer()?;
                download(client, repo, d, &mut w)?;
                w.commit_expect(&d.digest).map_err(|e| match e {
                    Error::Corrupt { detail, .. } => {
                        Error::corrupt(format!("blob {} from {name}", d.digest), detail)
                    }
                    other => other,
                })?;
                Ok(())
            }
        }
    }
}

/// Streams a registry blob into `out`; exactly `d.size` bytes or an error.
fn download(client: &Client, repo: &str, d: &Descriptor, out: &mut dyn Write) -> Result<()> {
    let mut resp = client.get_blob(repo, &d.digest, d.size)?;
    let mut reader = resp.body_mut().as_reader().take(d.size.saturating_add(1));
    let what = || format!("blob {} from {}/{repo}", d.digest, client.registry);
    let n =
        io::copy(&mut reader, out).map_err(|e| Error::io(format!("downloading {}", what()), e))?;
    if n != d.size {
        return Err(Error::corrupt(
            what(),
            format!("{n} bytes received but the manifest says {}", d.size),
        ));
    }
    Ok(())
}

/// Records imported with `--cache-from`, and where their blobs are.
pub struct Imports {
    store: Store,
    sources: Vec<Source>,
    /// Layer key -> (record, source); the first source naming a key wins.
    records: BTreeMap<CacheKey, (CacheRecord, usize)>,
    /// Blob -> (its descriptor in the manifest, source).
    blobs: HashMap<Digest, (Descriptor, usize)>,
    /// Blobs whose diff_id was checked: digest -> uncompressed digest.
    checked: Mutex<HashMap<Digest, Digest>>,
}

impl std::fmt::Debug for Imports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imports")
            .field(
                "sources",
                &self.sources.iter().map(Source::name).collect::<Vec<_>>(),
            )
            .field("records", &self.records.len())
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

impl Imports {
    /// Fetches the manifest and records of every source (no layer blobs).
    /// A source that cannot be read, or whose records do not verify, is
    /// skipped with a warning; so is each bad record.
    pub fn load(store: &Store, from: &[CacheLocation], warn: &dyn Fn(String)) -> Imports {
        let mut imports = Imports {
            store: store.clone(),
            sources: Vec::new(),
            records: BTreeMap::new(),
            blobs: HashMap::new(),
            checked: Mutex::new(HashMap::new()),
        };
        for loc in from {
            let opened = Source::open(loc).and_then(|(source, m, bytes)| {
                let (records, dropped) = artifact::decode_records(&bytes, &m.layers)?;
                Ok((source, m, records, dropped))
            });
            let (source, manifest, records, dropped) = match opened {
                Ok(x) => x,
                Err(e) => {
                    warn(format!("--cache-from {loc}: ignored: {e}"));
                    continue;
                }
            };
            if dropped.count > 0 {
                warn(format!(
                    "--cache-from {loc}: ignored {} invalid cache record(s) ({})",
                    dropped.count,
                    dropped.first.unwrap_or_default()
                ));
            }
            let i = imports.sources.len();
            imports.sources.push(source);
            for l in manifest.layers {
                imports.blobs.entry(l.digest).or_insert((l, i));
            }
            for (k, r) in records {
                imports.records.entry(k).or_insert((r, i));
            }
        }
        imports
    }

    /// Number of usable imported records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The imported record for `key` (its blobs may not be local yet).
    pub fn lookup(&self, key: &CacheKey) -> Option<CacheRecord> {
        self.records.get(key).map(|(r, _)| r.clone())
    }

    /// Makes the imported blobs among `layers` (descriptor, expected
    /// diff_id) local: each missing one is downloaded and verified, and its
    /// uncompressed digest is checked once against the diff_id the caller
    /// will write into an image. Layers the imports do not know are left to
    /// the caller. Distinct blobs are fetched and checked in parallel, up
    /// to as many at a time as a pull transfers
    /// ([`registry::Options::jobs`]). Returns how many blobs were downloaded.
    pub fn fetch<'a>(
        &self,
        layers: impl IntoIterator<Item = (&'a Descriptor, &'a Digest)>,
    ) -> Result<usize> {
        // One work item per blob, with every diff_id the caller expects of
        // it, in the caller's order.
        let mut work: Vec<(&Descriptor, usize, Vec<&Digest>)> = Vec::new();
        for (d, diff_id) in layers {
            let Some((listed, i)) = self.blobs.get(&d.digest) else {
                continue;
            };
            match work.iter_mut().find(|w| w.0.digest == d.digest) {
                Some(w) => w.2.push(diff_id),
                None => work.push((listed, *i, vec![diff_id])),
            }
        }
        let downloaded = AtomicUsize::new(0);
        let jobs = registry::Options::default().jobs;
        registry::parallel(&work, jobs, |(listed, i, diff_ids)| {
            if !self.store.has_blob(&listed.digest) {
                self.sources[*i].fetch(&self.store, listed)?;
                downloaded.fetch_add(1, Ordering::Relaxed);
            }
            let actual = self.diff_id_of(listed)?;
            if let Some(claimed) = diff_ids.iter().find(|id| ***id != actual) {
                return Err(Error::corrupt(
                    format!("layer {} from {}", listed.digest, self.sources[*i].name()),
                    format!("its diff_id is {actual}, the imported cache record says {claimed}"),
                ));
            }
            Ok(())
        })?;
        Ok(downloaded.into_inner())
    }

    /// The uncompressed digest of a local blob, computed once.
    fn diff_id_of(&self, d: &Descriptor) -> Result<Digest> {
        let known = self
            .checked
            .lock()
            .ok()
            .and_then(|c| c.get(&d.digest).copied());
        if let Some(a) = known {
            return Ok(a);
        }
        let f = self.store.open_blob(&d.digest)?;
        let mut tar = crate::layer::decompress(io::BufReader::new(f), &d.media_type)?;
        let mut w = Sha256Writer::new(io::sink());
        io::copy(&mut tar, &mut w)
            .map_err(|e| Error::io(format!("reading layer {}", d.digest), e))?;
        let a = w.finish().0;
        if let Ok(mut c) = self.checked.lock() {
            c.insert(d.digest, a);
        }
        Ok(a)
    }

    /// Writes into the local store the imported records among `used` that
    /// it lacks, with only the layer entries whose blobs are now local.
    /// Returns how many were written.
    pub fn persist(&self, used: &[(CacheKey, CacheRecord)]) -> Result<usize> {
        let mut n = 0;
        for (key, _) in used {
            let Some((rec, _)) = self.records.get(key) else {
                continue;
            };
            if self.store.get_cache(key)?.is_some() {
                continue;
            }
            // Only blobs that are local and whose diff_id was verified.
            let Some(local) = artifact::filter_layers(rec, |d| {
                self.store.has_blob(&d.digest)
                    && self
                        .checked
                        .lock()
                        .is_ok_and(|c| c.get(&d.digest).copied() == rec.diff_id)
            }) else {
                continue;
            };
            self.store.put_cache(key, &local)?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the imports can provide blob `d`.
    fn knows(&self, d: &Digest) -> bool {
        self.blobs.contains_key(d)
    }
}

// ---------------------------------------------------------------- export

/// One step's record as the build hands it to [`export`].
#[derive(Clone, Debug)]
pub struct ExportRecord {
    pub key: CacheKey,
    pub record: CacheRecord,
    /// The step's layer is part of a final image (what `mode=min` keeps).
    pub in_final_image: bool,
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub manifest: Option<Digest>,
    pub records: usize,
    pub layers: usize,
    /// Blobs sent or copied (the others were there already).
    pub written: usize,
}

/// Exports `records` to `to` as one cache artifact. Layer entries whose
/// blobs are neither local nor obtainable from `imports` are left out.
/// Layer blobs are fetched and sent in parallel, like a push.
pub fn export(
    store: &Store,
    records: &[ExportRecord],
    to: &CacheTo,
    imports: Option<&Imports>,
) -> Result<ExportReport> {
    let available =
        |d: &Descriptor| store.has_blob(&d.digest) || imports.is_some_and(|i| i.knows(&d.digest));
    let mut chosen = Records::new();
    for r in records {
        if to.mode == ExportMode::Min && !r.in_final_image {
            continue;
        }
        if let Some(rec) = artifact::filter_layers(&r.record, available) {
            chosen.insert(r.key, rec);
        }
    }
    // Blobs not local come from the imports when the destination lacks
    // them, checked against the diff_id their records claim.
    let ensure_local = |d: &Descriptor, records: &Records| -> Result<()> {
        if !store.has_blob(&d.digest)
            && let Some(i) = imports
        {
            let diff_ids = records.values().filter_map(|r| {
                let id = r.diff_id.as_ref()?;
                r.layers
                    .values()
                    .any(|l| l.digest == d.digest)
                    .then_some(id)
            });
            for id in diff_ids {
                i.fetch([(d, id)])?;
            }
        }
        Ok(())
    };
    match &to.location {
        CacheLocation::Local { dir, tag } => {
            let jobs = registry::Options::default().jobs;
            let layout = Layout::new(dir);
            layout.init()?;
            // Merged with what is there: records whose blobs the directory
            // still has are kept unless this build has newer ones.
            if let Ok(Some((_, bytes))) = layout.manifest(tag)
                && let Ok(m) = CacheManifest::parse(&bytes, "existing cache")
                && let Ok(old) = layout.read_small(&m.config, artifact::MAX_RECORDS)
                && let Ok((old, _)) = artifact::decode_records(&old, &m.layers)
            {
                for (k, rec) in old {
                    if let Some(rec) = artifact::filter_layers(&rec, |d| layout.has_blob(&d.digest))
                    {
                        chosen.entry(k).or_insert(rec);
                    }
                }
            }
            let (bytes, manifest, layers) = encode(&chosen)?;
            let mut report = ExportReport {
                records: chosen.len(),
                layers: manifest.layers.len(),
                ..Default::default()
            };
            let written = AtomicUsize::new(0);
            registry::parallel(&layers, jobs, |l| {
                if layout.has_blob(&l.digest) {
                    return Ok(());
                }
                ensure_local(l, &chosen)?;
                let mut f = store.open_blob(&l.digest)?;
                if layout.put_blob(&mut f, &l.digest)? {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })?;
            report.written = written.into_inner();
            layout.put_blob(&mut &bytes[..], &manifest.config.digest)?;
            let mbytes = manifest.to_bytes()?;
            let mdigest = Digest::of(&mbytes);
            layout.put_blob(&mut &mbytes[..], &mdigest)?;
            let mut desc = Descriptor::new(
                crate::store::media_type::OCI_MANIFEST,
                mdigest,
                mbytes.len() as u64,
            );
            desc.annotations = None;
            layout.set_tag(tag, &desc)?;
            report.manifest = Some(mdigest);
            Ok(report)
        }
        CacheLocation::Registry(r) => {
            if r.digest.is_some() {
                return Err(Error::msg(format!(
                    "--cache-to {}: a cache is pushed to a tag, not a digest",
                    r.normalized()
                )));
            }
            let (bytes, manifest, layers) = encode(&chosen)?;
            let (client, remote) = connect(r)?;
            let repo = remote.repository.as_str();
            let mut report = ExportReport {
                records: chosen.len(),
                layers: manifest.layers.len(),
                ..Default::default()
            };
            let opts = registry::Options::from_env(&remote.registry);
            let written = AtomicUsize::new(0);
            registry::parallel(&layers, opts.jobs, |l| {
                if client.has_blob(repo, &l.digest)? {
                    return Ok(());
                }
                ensure_local(l, &chosen)?;
                let mut f = store.open_blob(&l.digest)?;
                let loc = client.start_upload(repo)?;
                client.upload(repo, loc, &mut f, &l.digest, opts.chunk_size, &|_| {})?;
                written.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })?;
            report.written = written.into_inner();
            if !client.has_blob(repo, &manifest.config.digest)? {
                let loc = client.start_upload(repo)?;
                client.upload(
                    repo,
                    loc,
                    &mut &bytes[..],
                    &manifest.config.digest,
                    opts.chunk_size,
                    &|_| {},
                )?;
                report.written += 1;
            }
            let mbytes = manifest.to_bytes()?;
            let mdigest = Digest::of(&mbytes);
            let reported = client.put_manifest(
                repo,
                &remote.reference,
                crate::store::media_type::OCI_MANIFEST,
                &mbytes,
            )?;
            if let Some(d) = reported
                && d != mdigest
            {
                return Err(Error::corrupt(
                    format!("registry {}", remote.registry),
                    format!("it stored cache manifest {mdigest} as {d}"),
                ));
            }
            report.manifest = Some(mdigest);
            Ok(report)
        }
    }
}

/// Records blob, manifest, and the layer descriptors to transfer.
fn encode(records: &Records) -> Result<(Vec<u8>, CacheManifest, Vec<Descriptor>)> {
    let bytes = artifact::encode_records(records)?;
    let layers: Vec<Descriptor> = records
        .values()
        .flat_map(|r| r.layers.values().cloned())
        .collect();
    let manifest = CacheManifest::new(&bytes, &layers);
    let layers = manifest.layers.clone();
    Ok((bytes, manifest, layers))
}

#[cfg(test)]
mod tests;

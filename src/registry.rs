//! Pushing images to and pulling them from OCI distribution registries.
//!
//! The client speaks the distribution API over `ureq` ([`client`]): `GET
//! /v2/`, Basic or Bearer-token authentication with credentials from the
//! Docker config ([`auth`]), blob `HEAD` before upload, cross-repository
//! mounts for blobs the store knows to be in another repository of the same
//! registry ([`sources`]), chunked uploads, manifests and indexes in OCI and
//! Docker schema 2 media types.
//!
//! Invariants:
//! - Nothing a registry sends is trusted: manifests are capped at
//!   [`client::MAX_MANIFEST`] and hashed; blobs stream into
//!   [`Store::blob_writer`] and are kept only when size and digest match the
//!   manifest (`commit_expect`). An image is tagged only after all of it is
//!   in the store and [`load_image`] accepts it, so a failed pull tags
//!   nothing.
//! - Plain HTTP is used only for loopback registries or with `insecure`.
//! - It prints nothing: progress goes to a caller-supplied sink.

pub mod auth;
pub mod client;
pub mod conf;
pub mod login;
pub mod repo_digests;
pub mod sources;

/// Where the store keeps what it learned from registries (blob sources,
/// RepoDigests).
fn state_dir(store: &Store) -> std::path::PathBuf {
    store.root().join("registry")
}

/// The registry state dir, created, and its `NAME.lock` held exclusively
/// (a read-modify-write of `NAME.json` is safe under it).
fn lock_state(store: &Store, name: &str) -> Result<(std::path::PathBuf, File)> {
    use crate::error::IoContext;
    let d = state_dir(store);
    std::fs::create_dir_all(&d).at("creating", &d)?;
    let lock_path = d.join(format!("{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .at("opening", &lock_path)?;
    lock.lock().at("locking", &lock_path)?;
    Ok((d, lock))
}

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use client::{Client, FetchedManifest, MAX_MANIFEST};
pub use conf::RegistriesConf;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{
    Image, Manifest, SnapshotTee, Unpacked, host_platform, index_platforms, load_image,
    pick_platform, platform_matches,
};
use crate::reference::Reference;
use crate::store::{Descriptor, ImageIndex, Platform, Store, media_type};

/// How to talk to registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// Plain HTTP (and so no TLS) even for non-loopback registries.
    pub insecure: bool,
    /// Bytes per `PATCH` of a chunked upload.
    pub chunk_size: usize,
    /// Blobs transferred at the same time.
    pub jobs: usize,
    /// The platform to pull from an index (`None`: this host's); an image
    /// that is not an index must then be of this platform.
    pub platform: Option<Platform>,
    /// Further platforms to pull from an index; the tag then names the
    /// index (with the images of these platforms in the store).
    pub also: Vec<Platform>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure: false,
            chunk_size: 16 << 20,
            jobs: 4,
            platform: None,
            also: Vec::new(),
        }
    }
}

impl Options {
    /// Defaults, with `insecure` set when `registry` is listed in the
    /// comma-separated `STRATA_INSECURE_REGISTRIES` (used for pulls a build
    /// makes on its own).
    pub fn from_env(registry: &str) -> Options {
        let insecure = std::env::var("STRATA_INSECURE_REGISTRIES")
            .map(|v| v.split(',').any(|r| r.trim() == registry))
            .unwrap_or(false);
        Options {
            insecure,
            ..Options::default()
        }
    }
}

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to the registry.
    Uploaded,
    /// The registry had it already.
    Exists,
    /// The registry linked it from another repository.
    Mounted { from: String },
    /// Fetched from the registry.
    Downloaded,
    /// Already in the local store.
    Cached,
}

/// Progress of a push or pull, for the CLI to render.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A blob transfer starts (or is checked).
    Start { digest: Digest, size: u64 },
    /// `done` bytes of the blob have moved.
    Bytes { digest: Digest, done: u64 },
    /// The blob is finished.
    Done { digest: Digest, outcome: Outcome },
    /// A manifest (or index) was sent or resolved.
    Manifest {
        reference: String,
        digest: Digest,
        media_type: String,
    },
}

/// A sink for [`Progress`] events (called from several threads).
pub type ProgressSink<'a> = &'a (dyn Fn(Progress) + Sync);

/// A no-op sink.
pub fn no_progress(_: Progress) {}

/// Where an image lives on a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// As written (`localhost:5000`), `docker.io` when none was.
    pub registry: String,
    /// The repository on that registry (`library/` added for Docker Hub).
    pub repository: String,
    /// A tag (`latest` when none) or a digest.
    pub reference: String,
}

impl Remote {
    /// Where `r` lives: its registry, Docker Hub when it names none.
    pub fn new(r: &Reference) -> Remote {
        Remote::on(r, r.registry.as_deref().unwrap_or(conf::DEFAULT_REGISTRY))
    }

    /// `r` on `registry` (for an unqualified name and a search registry).
    pub fn on(r: &Reference, registry: &str) -> Remote {
        let registry = registry.to_string();
        let repository = if matches!(registry.as_str(), "docker.io" | "index.docker.io")
            && !r.repository.contains('/')
        {
            format!("library/{}", r.repository)
        } else {
            r.repository.clone()
        };
        let reference = match (&r.digest, &r.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        Remote {
            registry,
            repository,
            reference,
        }
    }
}

/// Whether `reference` names a registry host (`host.name/x`, `host:5000/x`,
/// `localhost/x`), so a build may pull it when the store lacks it.
pub fn names_registry(reference: &str) -> bool {
    Reference::parse(reference).is_ok_and(|r| r.registry.is_some())
}

/// Pulls a base image a build names (no progress output; plain HTTP for
/// loopback hosts and `STRATA_INSECURE_REGISTRIES`).
pub fn pull_base(store: &Store, reference: &str) -> Result<Image> {
    let r = Reference::parse(reference)
        .map_err(|e| Error::msg(format!("image reference `{reference}`: {e}")))?;
    let opts = Options::from_env(r.registry.as_deref().unwrap_or("docker.io"));
    pull(store, &r, &opts, &no_progress)
}

fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest> {
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(what.to_string(), e.to_string()))?;
    if m.schema_version != 2 {
        return Err(Error::corrupt(
            what.to_string(),
            format!("schemaVersion {} (expected 2)", m.schema_version),
        ));
    }
    for l in &m.layers {
        if !media_type::is_layer(&l.media_type) {
            return Err(Error::Unsupported(format!(
                "{what}: layer media type `{}`",
                l.media_type
            )));
        }
    }
    Ok(m)
}

/// Runs `work` over `items` on up to `jobs` threads; the first error wins
/// (items not started yet are then skipped).
pub(crate) fn parallel<T: Sync>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    if let Err(e) = work(item)
                        && let Ok(mut slot) = first_error.lock()
                        && slot.is_none()
                    {
                        *slot = Some(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => Err(Error::msg("a transfer thread panicked")),
    }
}

// ---------------------------------------------------------------- pull

/// Pulls `reference` into the store and tags it as the reference
/// normalized (`host/repo:tag`). From an index, the host platform's image is
/// taken. Returns the image (its manifest descriptor carries the digest).
///
/// Where it is pulled from follows [`conf::RegistriesConf`]: an unqualified
/// name is looked up in the search registries (Docker Hub by default), and
/// a registry's mirrors are tried before it. A mirror that fails is
/// skipped; the registry's own error is the one returned when every place
/// fails.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &Options,
    progress: ProgressSink,
) -> Result<Image> {
    let conf = RegistriesConf::load()?;
    let registries = match &reference.registry {
        Some(r) => vec![r.clone()],
        None => conf.search_registries(),
    };
    let mut errors = Vec::new();
    for registry in &registries {
        let remote = Remote::on(reference, registry);
        let endpoints = conf.endpoints(
            &remote.registry,
            &remote.repository,
            reference.digest.is_some(),
        )?;
        for ep in endpoints {
            let mut o = opts.clone();
            o.insecure |= ep.insecure || conf.is_insecure(&ep.registry);
            let at = Remote {
                registry: ep.registry.clone(),
                repository: ep.repository.clone(),
                reference: remote.reference.clone(),
            };
            match pull_from(store, reference, &at, &o, progress) {
                Ok(image) => return Ok(image),
                Err(e) => errors.push(format!("{}/{}: {e}", ep.registry, ep.repository)),
            }
        }
    }
    match errors.len() {
        1 => Err(Error::msg(format!(
            "pulling {}: {}",
            reference.normalized(),
            errors.remove(0)
        ))),
        _ => Err(Error::msg(format!(
            "pulling {} failed everywhere it was looked for:\n  {}",
            reference.normalized(),
            errors.join("\n  ")
        ))),
    }
}

/// Pulls `reference` from one place (`remote`, a registry or a mirror).
fn pull_from(
    store: &Store,
    reference: &Reference,
    remote: &Remote,
    opts: &Options,
    progress: ProgressSink,
) -> Result<Image> {
    let client = Client::connect(&remote.registry, opts)?;
    let repo = remote.repository.as_str();
    let mut fetched = client.get_manifest(repo, &remote.reference)?;
    if let Some(want) = &reference.digest
        && fetched.digest != *want
    {
        return Err(Error::corrupt(
            format!("manifest {}", reference.normalized()),
            format!("content has digest {}", fetched.digest),
        ));
    }
    progress(Progress::Manifest {
        reference: reference.normalized(),
        digest: fetched.digest,
        media_type: fetched.media_type.clone(),
    });
    // What the registry serves under the name: the index, for a multi-platform image.
    let top = fetched.digest;
    let want = opts.platform.clone().unwrap_or_else(host_platform);
    // The index the tag keeps when several platforms are wanted.
    let mut kept_index = None;
    let mut blobs = Vec::new();
    let mut depth = 0;
    while media_type::is_index(&fetched.media_type) {
        depth += 1;
        if depth > 2 {
            return Err(Error::corrupt(
                format!("index {}", fetched.digest),
                "indexes nested too deeply",
            ));
        }
        let index: ImageIndex = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| Error::corrupt(format!("index {}", fetched.digest), e.to_string()))?;
        let pick = |p: &Platform| {
            pick_platform(&index.manifests, p).ok_or_else(|| {
                Error::msg(format!(
                    "{} has no image for {p} (it has: {})",
                    reference.normalized(),
                    index_platforms(&index.manifests)
                ))
            })
        };
        let entry = pick(&want)?;
        // A tag that already names this index keeps it: the image pulled
        // now joins the platforms pulled before.
        let tagged = || {
            store
                .resolve(&reference.normalized())
                .is_ok_and(|d| d.is_some_and(|d| d.digest == fetched.digest))
        };
        if depth == 1 && (!opts.also.is_empty() || tagged()) {
            for p in &opts.also {
                let other = child_manifest(&client, repo, reference, pick(p)?, progress)?;
                blobs.extend(fetch_image(&client, store, repo, &other, opts, progress)?.1);
            }
            kept_index = Some(fetched.clone());
        }
        fetched = child_manifest(&client, repo, reference, entry, progress)?;
    }
    let (image, own) = fetch_image(&client, store, repo, &fetched, opts, progress)?;
    blobs.extend(own);
    if opts.platform.is_some() && !platform_matches(&want, &image.platform()) {
        return Err(Error::msg(format!(
            "{} is an image for {}, not for the platform asked for ({want})",
            reference.normalized(),
            image.platform()
        )));
    }
    match kept_index {
        Some(index) => {
            let digest = store.put_blob(&index.bytes)?;
            let desc = Descriptor::new(index.media_type, digest, index.bytes.len() as u64);
            store.set_tag(&reference.normalized(), &desc)?;
        }
        None => store.set_tag(&reference.normalized(), &image.manifest)?,
    }
    repo_digests::record(
        store,
        &image.manifest.digest,
        repo_digests::repo_digest(reference, &top),
    )?;
    sources::record(store, &remote.registry, repo, &blobs)?;
    Ok(image)
}

/// The manifest an index entry names, verified.
fn child_manifest(
    client: &Client,
    repo: &str,
    reference: &Reference,
    entry: &Descriptor,
    progress: ProgressSink,
) -> Result<FetchedManifest> {
    let child = client.get_manifest(repo, &entry.digest.to_string())?;
    if child.digest != entry.digest {
        return Err(Error::corrupt(
            format!("manifest {}", entry.digest),
            format!("content has digest {}", child.digest),
        ));
    }
    progress(Progress::Manifest {
        reference: format!("{}@{}", reference.normalized(), child.digest),
        digest: child.digest,
        media_type: child.media_type.clone(),
    });
    Ok(child)
}

/// Downloads a manifest's config and layers and stores the manifest: the
/// image, and the blobs it needs.
fn fetch_image(
    client: &Client,
    store: &Store,
    repo: &str,
    fetched: &FetchedManifest,
    opts: &Options,
    progress: ProgressSink,
) -> Result<(Image, Vec<Digest>)> {
    if !media_type::is_manifest(&fetched.media_type) {
        return Err(Error::Unsupported(format!(
            "pulling `{}` ({})",
            fetched.media_type, fetched.digest
        )));
    }
    let what = format!("manifest {}", fetched.digest);
    let m = parse_manifest(&fetched.bytes, &what)?;
    let mut blobs = vec![m.config.clone()];
    blobs.extend(m.layers.iter().cloned());
    let unpacked: Mutex<Vec<(Digest, Unpacked)>> = Mutex::new(Vec::new());
    parallel(&blobs, opts.jobs, |d| {
        if let Some(u) = download(client, store, repo, d, progress)?
            && let Ok(mut v) = unpacked.lock()
        {
            v.push((d.digest, u));
        }
        Ok(())
    })?;
    let digest = store.put_blob(&fetched.bytes)?;
    let mut image = load_image(store, &digest)?;
    // The layers unpacked beside their download become their snapshots
    // if their streams hashed to the config's diff_ids (else they are
    // dropped, and a build unpacks the blob when it needs it).
    let mut unpacked = unpacked.into_inner().unwrap_or_default();
    for (l, diff_id) in image.layers.iter().zip(&image.config.rootfs.diff_ids) {
        if let Some(i) = unpacked.iter().position(|(d, _)| *d == l.digest) {
            unpacked.swap_remove(i).1.adopt(store, diff_id)?;
        }
    }
    image.manifest.media_type = fetched.media_type.clone();
    Ok((image, blobs.iter().map(|d| d.digest).collect()))
}

/// Downloads the blob `d` into the store (verified). A layer is also
/// unpacked beside its download: what that gave is returned, for the
/// caller to adopt once it knows the layer's diff_id.
fn download(
    client: &Client,
    store: &Store,
    repo: &str,
    d: &Descriptor,
    progress: ProgressSink,
) -> Result<Option<Unpacked>> {
    progress(Progress::Start {
        digest: d.digest,
        size: d.size,
    });
    if store.has_blob(&d.digest) {
        progress(Progress::Done {
            digest: d.digest,
            outcome: Outcome::Cached,
        });
        return Ok(None);
    }
    let mut resp = client.get_blob(repo, &d.digest, d.size)?;
    let mut reader = resp.body_mut().as_reader().take(d.size.saturating_add(1));
    let mut w = store.blob_writer()?;
    let mut tee = crate::layer::Compression::from_media_type(&d.media_type)
        .and_then(|_| SnapshotTee::start(store, &d.media_type));
    let mut done: u64 = 0;
    let what = || format!("blob {} from {}/{repo}", d.digest, client.registry);
    loop {
        // Reads gathered into chunks of up to 1 MiB, each written and
        // handed to the unpacker whole.
        let mut chunk = vec![0u8; 1 << 20];
        let mut filled = 0;
        while filled < chunk.len() {
            let n = match reader.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("downloading {}", what()), e)),
            };
            filled += n;
            done += n as u64;
            progress(Progress::Bytes {
                digest: d.digest,
                done,
            });
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        w.write_all(&chunk)
            .map_err(|e| Error::io("writing a blob to the store", e))?;
        if let Some(t) = tee.as_mut() {
            t.feed(chunk);
        }
    }
    if done != d.size {
        return Err(Error::corrupt(
            what(),
            format!("{done} bytes received but the manifest says {}", d.size),
        ));
    }
    w.commit_expect(&d.digest).map_err(|e| match e {
        Error::Corrupt { detail, .. } => Error::corrupt(what(), detail),
        other => other,
    })?;
    progress(Progress::Done {
        digest: d.digest,
        outcome: Outcome::Downloaded,
    });
    Ok(tee.map(SnapshotTee::finish))
}

// ---------------------------------------------------------------- push

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the manifest (or index) pushed.
    pub digest: Option<Digest>,
    pub uploaded: usize,
    pub existing: usize,
    pub mounted: usize,
}

/// Pushes the store image tagged `source` to `dest` (blobs the registry
/// has are not sent again; blobs known in another repository of the same
/// registry are mounted). An index is pushed with the manifests of it that
/// are in the store.
pub fn push(
    store: &Store,
    source: &str,
    dest: &Reference,
    opts: &Options,
    progress: ProgressSink,
) -> Result<PushReport> {
    let desc = store.resolve(source)?.ok_or_else(|| {
        Error::msg(format!(
            "image {source} is not in the store (build or pull it first)"
        ))
    })?;
    let remote = Remote::new(dest);
    let client = Client::connect(&remote.registry, opts)?;
    let counts = Mutex::new(PushReport::default());
    let target = &remote.reference;
    if let Some(d) = &dest.digest
        && *d != desc.digest
    {
        return Err(Error::msg(format!(
            "{source} has digest {} but the destination names {d}",
            desc.digest
        )));
    }
    if media_type::is_index(&desc.media_type) {
        let bytes = store.read_blob(&desc.digest)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(format!("index {}", desc.digest), e.to_string()))?;
        // A build or pull of some platforms keeps the whole index.
        let absent: Vec<String> = (index.manifests.iter())
            .filter(|m| !store.has_blob(&m.digest))
            .map(|m| {
                m.platform
                    .as_ref()
                    .map_or(m.digest.to_string(), |p| p.to_string())
            })
            .collect();
        if !absent.is_empty() {
            return Err(Error::msg(format!(
                "{source} is an index whose images for {} are not in the store: \
                 `strata pull --platform P {source}` each of them first",
                absent.join(", ")
            )));
        }
        for m in &index.manifests {
            if !media_type::is_manifest(&m.media_type) {
                return Err(Error::Unsupported(format!(
                    "pushing an index entry of type `{}`",
                    m.media_type
                )));
            }
            push_manifest(
                store,
                &client,
                &remote,
                &m.digest,
                &m.digest.to_string(),
                opts,
                progress,
                &counts,
            )?;
        }
        let mt = index
            .media_type
            .clone()
            .unwrap_or_else(|| desc.media_type.clone());
        put_manifest(
            &client,
            &remote,
            target,
            &mt,
            &bytes,
            &desc.digest,
            progress,
        )?;
    } else {
        push_manifest(
            store,
            &client,
            &remote,
            &desc.digest,
            target,
            opts,
            progress,
            &counts,
        )?;
    }
    let mut report = counts
        .into_inner()
        .map_err(|_| Error::msg("a transfer thread panicked"))?;
    report.digest = Some(desc.digest);
    repo_digests::record(
        store,
        &desc.digest,
        repo_digests::repo_digest(dest, &desc.digest),
    )?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn push_manifest(
    store: &Store,
    client: &Client,
    remote: &Remote,
    digest: &Digest,
    target: &str,
    opts: &Options,
    progress: ProgressSink,
    counts: &Mutex<PushReport>,
) -> Result<()> {
    let bytes = store.read_blob(digest)?;
    let what = format!("manifest {digest}");
    // load_image validates manifest and config as the build would read them.
    load_image(store, digest)?;
    let m = parse_manifest(&bytes, &what)?;
    let mut blobs = vec![m.config.clone()];
    blobs.extend(m.layers.iter().cloned());
    let repo = remote.repository.as_str();
    parallel(&blobs, opts.jobs, |d| {
        let outcome = push_blob(store, client, repo, d, opts, progress)?;
        if let Ok(mut c) = counts.lock() {
            match outcome {
                Outcome::Uploaded => c.uploaded += 1,
                Outcome::Mounted { .. } => c.mounted += 1,
                _ => c.existing += 1,
            }
        }
        progress(Progress::Done {
            digest: d.digest,
            outcome,
        });
        Ok(())
    })?;
    let digests: Vec<Digest> = blobs.iter().map(|d| d.digest).collect();
    sources::record(store, &client.registry, repo, &digests)?;
    let mt = m
        .media_type
        .clone()
        .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string());
    put_manifest(client, remote, target, &mt, &bytes, digest, progress)
}

fn put_manifest(
    client: &Client,
    remote: &Remote,
    target: &str,
    media_type: &str,
    bytes: &[u8],
    digest: &Digest,
    progress: ProgressSink,
) -> Result<()> {
    let reported = client.put_manifest(&remote.repository, target, media_type, bytes)?;
    if let Some(r) = reported
        && r != *digest
    {
        return Err(Error::corrupt(
            format!("registry {}", client.registry),
            format!("it stored manifest {digest} as {r}"),
        ));
    }
    progress(Progress::Manifest {
        reference: format!("{}/{}:{target}", remote.registry, remote.repository),
        digest: *digest,
        media_type: media_type.to_string(),
    });
    Ok(())
}

fn push_blob(
    store: &Store,
    client: &Client,
    repo: &str,
    d: &Descriptor,
    opts: &Options,
    progress: ProgressSink,
) -> Result<Outcome> {
    progress(Progress::Start {
        digest: d.digest,
        size: d.size,
    });
    if client.has_blob(repo, &d.digest)? {
        return Ok(Outcome::Exists);
    }
    let mut location = None;
    if let Some(from) = sources::known(store, &client.registry, &d.digest)
        .into_iter()
        .find(|r| r != repo)
    {
        // A refused mount is not an error: the blob is uploaded instead.
        match client.mount_blob(repo, &d.digest, &from) {
            Ok(client::Mount::Mounted) => return Ok(Outcome::Mounted { from }),
            Ok(client::Mount::Upload(loc)) => location = Some(loc),
            Err(_) => {}
        }
    }
    let location = match location {
        Some(l) => l,
        None => client.start_upload(repo)?,
    };
    let path = store.blob_path(&d.digest);
    let mut f =
        File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let digest = d.digest;
    client.upload(
        repo,
        location,
        &mut f,
        &d.digest,
        opts.chunk_size,
        &|done| progress(Progress::Bytes { digest, done }),
    )?;
    Ok(Outcome::Uploaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> Remote {
        Remote::new(&Reference::parse(s).unwrap())
    }

    #[test]
    fn remotes_fill_docker_hub_defaults() {
        let r = remote("busybox");
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("docker.io", "library/busybox", "latest")
        );
        let r = remote("docker.io/me/app:2");
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("me/app", "2")
        );
        let r = remote("localhost:5000/app");
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("localhost:5000", "app", "latest")
        );
        let d = Digest::of(b"x");
        let r = remote(&format!("reg.example.com/a/b:1@{d}"));
        assert_eq!(r.reference, d.to_string());
    }

    #[test]
    fn registry_names() {
        assert!(names_registry("localhost:5000/app:1"));
        assert!(names_registry("localhost/app"));
        assert!(names_registry("ghcr.io/a/b"));
        assert!(!names_registry("busybox:1"));
        assert!(!names_registry("library/busybox"));
        assert!(!names_registry("Not A Ref"));
    }

    #[test]
    fn parallel_reports_the_first_error_and_runs_all_otherwise() {
        let seen = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        parallel(&items, 3, |_| {
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 20);
        let e = parallel(&items, 3, |i| {
            if *i == 5 {
                Err(Error::msg("five"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "five");
        parallel(&[] as &[u32], 4, |_| Err(Error::msg("never"))).unwrap();
    }
}

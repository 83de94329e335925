//! RUN mounts: secrets, caches, tmpfs, binds of the context or a stage.

use std::path::{Path, PathBuf};

use petgraph::stable_graph::NodeIndex;

use crate::context::{CopyItem, ItemKind};
use crate::error::{Error, IoContext, Result};
use crate::ir::{BuildGraph, Mount, MountKind, Sharing};
use crate::oci;
use crate::sandbox::SandboxMount;
use crate::store::{Descriptor, Store};

use super::super::layers::{Results, chain_blobs};
use super::super::plan::{BIND_DEST, Plan, bind_source};
use super::super::{BuildOptions, SecretSource, step_error};

/// A secret mount: the value in a 0400 file bind-mounted read-only at the
/// target (and/or exported as an env variable). A missing secret is an
/// error when `required`, otherwise the mount is left out.
pub(super) fn secret_mount(
    graph: &BuildGraph,
    n: NodeIndex,
    m: &Mount,
    opts: &BuildOptions,
    dir: &Path,
    env: &mut Vec<(String, String)>,
) -> Result<Option<SandboxMount>> {
    let id = m.id.clone().unwrap_or_default();
    let value = match opts.secrets.get(&id).map(SecretSource::read) {
        Some(Ok(v)) => v,
        Some(Err(why)) => {
            return Err(step_error(
                graph,
                n,
                format!("secret `{id}`: {why}"),
                "this RUN step",
            ));
        }
        None if m.required => {
            return Err(step_error(
                graph,
                n,
                format!(
                    "secret `{id}` is required but was not given (use --secret id={id},src=FILE)"
                ),
                "this RUN step",
            ));
        }
        None => return Ok(None),
    };
    if let Some(var) = &m.env {
        env.retain(|(k, _)| k != var);
        env.push((var.clone(), String::from_utf8_lossy(&value).into_owned()));
    }
    let file = dir.join(blake3::hash(id.as_bytes()).to_hex().as_str());
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(m.mode.unwrap_or(0o400))
            .open(&file)
            .map_err(|e| Error::io("writing a secret file", e))?;
        f.write_all(&value)
            .map_err(|e| Error::io("writing a secret file", e))?;
    }
    if m.uid.is_some() || m.gid.is_some() {
        std::os::unix::fs::chown(&file, m.uid, m.gid)
            .map_err(|e| Error::io("setting a secret file's owner", e))?;
    }
    if m.env.is_some() && m.target.is_empty() {
        return Ok(None);
    }
    Ok(Some(SandboxMount::Bind {
        source: file,
        target: m.target.clone(),
        readonly: true,
    }))
}

/// What a RUN step's mounts need kept alive until the step ends: unpacked
/// stage trees, private cache dirs, cache locks.
#[derive(Default)]
pub(super) struct MountHold {
    dirs: Vec<tempfile::TempDir>,
    locks: Vec<std::fs::File>,
}

/// `path` inside `root`, refusing anything that resolves outside it.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let p = std::fs::canonicalize(root.join(rel.trim_start_matches('/'))).ok()?;
    p.starts_with(&root).then_some(p)
}

/// A RUN mount as the sandbox takes it.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_mount(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    n: NodeIndex,
    m: &Mount,
    bind: Option<&[CopyItem]>,
    hold: &mut MountHold,
) -> Result<SandboxMount> {
    let fail = |msg: String| step_error(graph, n, msg, "this RUN step");
    match m.kind {
        MountKind::Tmpfs => Ok(SandboxMount::Tmpfs {
            target: m.target.clone(),
            size: m.size,
        }),
        MountKind::Cache if m.from.is_none() => {
            let id = m.id.clone().unwrap_or_else(|| m.target.clone());
            let base = store.root().join("mounts/cache");
            let name = blake3::hash(id.as_bytes()).to_hex().to_string();
            let dir = base.join(&name);
            std::fs::create_dir_all(&base)
                .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
            match std::fs::create_dir(&dir) {
                Ok(()) => new_cache_dir(&dir, m)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
            }
            let lock_path = base.join(format!("{name}.lock"));
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
            let source = match m.sharing.unwrap_or(Sharing::Shared) {
                Sharing::Shared => dir,
                // One step at a time: later ones wait.
                Sharing::Locked => {
                    lock.lock()
                        .map_err(|e| Error::io(format!("locking cache `{id}`"), e))?;
                    hold.locks.push(lock);
                    dir
                }
                // The cache if nobody else uses it now, else a fresh empty one.
                Sharing::Private => match lock.try_lock() {
                    Ok(()) => {
                        hold.locks.push(lock);
                        dir
                    }
                    Err(_) => {
                        let t = store.temp_dir()?;
                        let p = t.path().to_path_buf();
                        new_cache_dir(&p, m)?;
                        hold.dirs.push(t);
                        p
                    }
                },
            };
            Ok(SandboxMount::Bind {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
            })
        }
        MountKind::Bind if m.from.is_none() => {
            // A private copy of exactly the files the key digested: the step
            // sees its writes to a read-write bind, the checkout never does.
            let items =
                bind.ok_or_else(|| Error::msg("internal: a context bind was not planned"))?;
            let dir = store.temp_dir()?;
            materialize(items, dir.path(), m.readonly)?;
            let root = dir.path().join(BIND_DEST.trim_matches('/'));
            let source = bind_root(items, &root, &bind_source(m));
            hold.dirs.push(dir);
            Ok(SandboxMount::Bind {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
            })
        }
        MountKind::Bind => {
            // A stage's filesystem, unpacked for this step; writes to a
            // read-write bind are thrown away, as in Docker.
            let from = m.from.clone().unwrap_or_default();
            // The stage of that name this step reads (in a build for
            // several platforms, each has its own).
            let sources = graph.sources_of(n);
            let named = || graph.stages.iter().filter(|s| s.name == from);
            let node = named()
                .map(|s| s.last)
                .find(|l| sources.contains(l))
                .or_else(|| named().map(|s| s.last).next())
                .ok_or_else(|| fail(format!("unknown stage `{from}` in a bind mount")))?;
            // The stage's layers unpacked from their blobs (a pending one
            // waited for).
            let layers: Vec<Descriptor> = chain_blobs(graph, plan, results, node)?
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            let dir = store.temp_dir()?;
            oci::unpack_image(store, &layers, dir.path())?;
            let rel = m.source.clone().unwrap_or_default();
            let source = inside(dir.path(), &rel)
                .ok_or_else(|| fail(format!("`{rel}` does not exist in stage `{from}`")))?;
            hold.dirs.push(dir);
            Ok(SandboxMount::Bind {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
            })
        }
        kind => Err(fail(
            format!("{kind:?} mounts on RUN are not supported yet").to_lowercase(),
        )),
    }
}

/// A cache directory just made: the mount's `mode` (default 0755), `uid`
/// and `gid` (default 0), as BuildKit gives a new cache. A cache that
/// exists keeps what it has.
fn new_cache_dir(dir: &Path, m: &Mount) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir,
        std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755) & 0o7777),
    )
    .at("setting the mode of", dir)?;
    std::os::unix::fs::chown(dir, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
        .map_err(|e| Error::io(format!("setting the owner of {}", dir.display()), e))
}

/// Writes `items` (context files planned for a bind) under `dir`: files
/// copied with their modes, directories, symlinks; owned by root, like
/// context files a COPY writes. For a read-only bind, a file that already
/// has the mode and owner the step must see is hard linked instead of
/// copied (the mount cannot write, chmod or chown it, and nothing below
/// changes its metadata), so a big local package repository costs no copy.
fn materialize(items: &[CopyItem], dir: &Path, readonly: bool) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for it in items {
        let p = dir.join(it.dest.trim_start_matches('/'));
        match &it.kind {
            ItemKind::Dir => std::fs::create_dir_all(&p).at("creating", &p)?,
            ItemKind::File { path, .. } => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).at("creating", parent)?;
                }
                let linkable = readonly
                    && std::fs::symlink_metadata(path).is_ok_and(|m| {
                        m.is_file()
                            && m.uid() == 0
                            && m.gid() == 0
                            && m.mode() & 0o7777 == it.mode & 0o7777
                    });
                if linkable && std::fs::hard_link(path, &p).is_ok() {
                    continue;
                }
                std::fs::copy(path, &p).at("copying", path)?;
            }
            ItemKind::Symlink { target } => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).at("creating", parent)?;
                }
                std::os::unix::fs::symlink(target, &p).at("creating", &p)?;
            }
        }
        if !matches!(it.kind, ItemKind::Symlink { .. }) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(it.mode & 0o7777))
                .at("setting the mode of", &p)?;
        }
        // Only root can give files away; RUN steps need root anyway.
        let _ = std::os::unix::fs::lchown(&p, Some(0), Some(0));
    }
    Ok(())
}

/// What the mount shows: the copied file for a file source, else the
/// copied directory.
fn bind_root(items: &[CopyItem], root: &Path, source: &str) -> PathBuf {
    let file = items
        .iter()
        .find(|it| it.source == source && !matches!(it.kind, ItemKind::Dir));
    match file {
        Some(it) => root.parent().map_or_else(
            || root.to_path_buf(),
            |d| d.join(it.dest.trim_start_matches('/')),
        ),
        None => root.to_path_buf(),
    }
}

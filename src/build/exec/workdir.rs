//! WORKDIR: the layer that creates the working directory.
//!
//! As BuildKit's Dockerfile frontend (`dispatchWorkdir`: a `Mkdir` with
//! parents, mode 0755, as the image's `USER`), a WORKDIR of any path but
//! `/` writes a layer holding the directories it creates: the path and its
//! missing parents, 0755, owned by the step's user (root when unset). The
//! path is resolved in the parent image, its symlinks followed, as
//! `mkdir -p` would; an existing directory gives an empty layer.

use petgraph::stable_graph::NodeIndex;

use crate::error::Result;
use crate::ir::{BuildGraph, WorkdirOp};
use crate::layer::{Entry, EntryKind};
use crate::store::{CacheRecord, Store};

use super::super::layers::{Results, chain_layers, lower_dir};
use super::super::plan::Plan;
use super::super::{BuildOptions, step_error};
use super::copy::owner_in_parent;
use super::dest::{Found, ImageFs};
use super::write_layer_record;

/// The layer of a WORKDIR step.
pub(super) fn run_workdir(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    n: NodeIndex,
    w: &WorkdirOp,
    results: &Results,
    opts: &BuildOptions,
) -> Result<CacheRecord> {
    let lower = match graph.parent(n) {
        Some(p) => chain_layers(graph, plan, results, p, None)?,
        None => Vec::new(),
    };
    let image = ImageFs::new(store, &lower)?;
    let mkdir = mkdir_p(&image, w.path.trim_matches('/'))
        .map_err(|m| step_error(graph, n, format!("WORKDIR {}: {m}", w.path), "this WORKDIR"))?;
    let (uid, gid) = match (&w.user, mkdir.created.is_empty()) {
        (Some(u), false) => {
            let (user, group) = match u.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (u.as_str(), None),
            };
            owner_in_parent(store, graph, plan, results, n, user, group).map_err(|m| {
                step_error(
                    graph,
                    n,
                    format!("WORKDIR {} as USER {m}", w.path),
                    "this WORKDIR",
                )
            })?
        }
        _ => (0, 0),
    };
    let dir = |path: String, (mode, uid, gid): (u32, u32, u32)| Entry {
        path,
        kind: EntryKind::Dir,
        mode,
        uid,
        gid,
        mtime: opts.epoch,
        xattrs: Vec::new(),
    };
    let mut entries = Vec::new();
    for p in mkdir.parents {
        let meta = lower_dir(store, &lower, &p)?.unwrap_or((0o755, 0, 0));
        entries.push(dir(p, meta));
    }
    for p in mkdir.created {
        entries.push(dir(p, (0o755, uid, gid)));
    }
    write_layer_record(store, graph, n, entries, opts)
}

/// What `mkdir -p` of a path does in an image.
#[derive(Debug, Default, PartialEq, Eq)]
struct Mkdir {
    /// The existing directories above the first one created (relative,
    /// parents first): the layer lists them with the metadata they have,
    /// or its unpacking would make them anew and hide the image's.
    parents: Vec<String>,
    /// The directories created (relative, parents first).
    created: Vec<String>,
}

/// What `mkdir -p` of `path` (relative) creates in `image`: its symlinks
/// are followed inside the image, so a link to a directory is not
/// replaced. Err when a component is not a directory.
fn mkdir_p(image: &ImageFs, path: &str) -> std::result::Result<Mkdir, String> {
    let mut out = Mkdir::default();
    if path.is_empty() {
        return Ok(out);
    }
    let (real, found) = image.resolve(path).map_err(|e| e.to_string())?;
    if found == Found::Dir {
        return Ok(out);
    }
    let mut prefix = String::new();
    for component in real.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(component);
        if !out.created.is_empty() {
            out.created.push(prefix.clone());
            continue;
        }
        match image.lookup(&prefix).map_err(|e| e.to_string())? {
            Found::Dir => out.parents.push(prefix.clone()),
            Found::Missing => out.created.push(prefix.clone()),
            Found::Symlink(_) | Found::Other => {
                return Err(format!("/{prefix} exists and is not a directory"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(
        dirs: &[&str],
        files: &[&str],
        links: &[(&str, &str)],
    ) -> (tempfile::TempDir, ImageFs) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("l0");
        std::fs::create_dir(&root).unwrap();
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in files {
            std::fs::write(root.join(f), "x").unwrap();
        }
        for (l, target) in links {
            std::os::unix::fs::symlink(target, root.join(l)).unwrap();
        }
        let fs = ImageFs::from_dirs(vec![root]);
        (t, fs)
    }

    #[test]
    fn mkdir_p_creates_only_what_is_missing() {
        let (_t, fs) = image(&["etc", "usr/lib"], &["etc/passwd"], &[("lib", "usr/lib")]);
        let made = |p: &str| mkdir_p(&fs, p).unwrap();
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(made("etc"), Mkdir::default());
        assert_eq!(made(""), Mkdir::default());
        assert_eq!(made("a/b/c").created, strs(&["a", "a/b", "a/b/c"]));
        assert_eq!(made("a/b/c").parents, strs(&[]));
        let m = made("etc/app/x");
        assert_eq!(
            (m.parents, m.created),
            (strs(&["etc"]), strs(&["etc/app", "etc/app/x"]))
        );
        // A symlink to a directory is followed, never replaced.
        let m = made("lib/x");
        assert_eq!(
            (m.parents, m.created),
            (strs(&["usr", "usr/lib"]), strs(&["usr/lib/x"]))
        );
        assert_eq!(made("lib"), Mkdir::default());
        let err = mkdir_p(&fs, "etc/passwd/x").unwrap_err();
        assert!(
            err.contains("/etc/passwd exists and is not a directory"),
            "{err}"
        );
    }
}

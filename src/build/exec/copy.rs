//! COPY and ADD: context, stage or image files into a layer.

use std::path::Path;

use petgraph::stable_graph::NodeIndex;

use crate::context::{CopyItem, ItemKind, Tree};
use crate::error::{Error, Result};
use crate::ir::{BaseRef, BuildGraph, CopyFrom, CopyOp};
use crate::layer::{self, Compression, Entry, EntryKind};
use crate::oci;
use crate::store::{CacheRecord, Store};

use super::super::layers::{ChainLayer, Results, chain_layers, lower_dir};
use super::super::plan::{Plan, copy_error, copy_request};
use super::super::{BuildOptions, step_error};
use super::dest::{ImageFs, complete_ancestors, place};
use super::write_layer_record;

/// The owner `--chown` asks for: see [`owner_in_parent`].
fn copy_owner(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    n: NodeIndex,
    c: &CopyOp,
) -> std::result::Result<Option<(u32, u32)>, String> {
    let Some(ch) = &c.chown else { return Ok(None) };
    owner_in_parent(
        store,
        graph,
        plan,
        results,
        n,
        &ch.user,
        ch.group.as_deref(),
    )
    .map(Some)
    .map_err(|e| format!("--chown={e}"))
}

/// The owner `user[:group]` names for a file step (COPY --chown, WORKDIR):
/// numeric ids as written (a lone uid is also the gid, as Docker documents
/// and BuildKit does), names looked up in the parent image's /etc/passwd
/// and /etc/group. An error starts with the spec (`app: no such user`).
pub(super) fn owner_in_parent(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &Results,
    n: NodeIndex,
    user: &str,
    group: Option<&str>,
) -> std::result::Result<(u32, u32), String> {
    let uid = user.parse::<u32>().ok();
    let gid = match group {
        Some(g) => g.parse::<u32>().ok().map(Some),
        None => Some(None),
    };
    if let (Some(uid), Some(gid)) = (uid, gid) {
        return Ok((uid, gid.unwrap_or(uid)));
    }
    // Names: read the parent's /etc/passwd and /etc/group.
    let layers = match graph.parent(n) {
        Some(p) => chain_layers(graph, plan, results, p, None).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let read = |path: &str| -> std::result::Result<String, String> {
        read_from_layers(store, &layers, path)
            .map_err(|e| e.to_string())
            .map(|o| o.unwrap_or_default())
    };
    let spec = match group {
        Some(g) => format!("{user}:{g}"),
        None => user.to_string(),
    };
    crate::sandbox::resolve_user(&spec, &read("etc/passwd")?, &read("etc/group")?)
        .map_err(|e| format!("{spec}: {e}"))
}

/// The content of the regular file at `path` (relative) in the image made
/// of `layers`, looking through each layer's snapshot from the top; a
/// whiteout hides it.
fn read_from_layers(store: &Store, layers: &[ChainLayer], path: &str) -> Result<Option<String>> {
    use std::os::unix::fs::FileTypeExt;
    for l in layers.iter().rev() {
        let dir = l.snapshot(store)?;
        let p = dir.join(path);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return Ok(None),
            Ok(m) if m.is_file() => {
                let text = std::fs::read(&p)
                    .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
                return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The layer of a copy step.
pub(super) fn run_copy(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    n: NodeIndex,
    c: &CopyOp,
    results: &Results,
    opts: &BuildOptions,
) -> Result<CacheRecord> {
    if c.add.is_some() {
        // Local files and tar archives work; remote sources do not yet.
        for s in &c.sources {
            if s.contains("://") || s.starts_with("git@") {
                return Err(step_error(
                    graph,
                    n,
                    format!("ADD of a remote source (`{s}`) is not supported yet"),
                    "this step",
                ));
            }
        }
    }
    let owner = copy_owner(store, graph, plan, results, n, c)
        .map_err(|m| step_error(graph, n, m, "this step"))?;
    let np = &plan.nodes[&n];
    // Items from the context were computed while planning; items from a
    // stage or image need its filesystem.
    let mut _rootfs = None;
    let mut items = match &c.from {
        CopyFrom::Context => np.items.clone().unwrap_or_default(),
        CopyFrom::Stage(_) | CopyFrom::Image(_) => {
            let dir = source_files(store, graph, plan, n, c, results, opts.epoch)?;
            let tree = Tree::rootfs(dir.path());
            let items = tree
                .plan_copy(&copy_request(c, false))
                .map_err(|e| copy_error(graph, n, e))?;
            _rootfs = Some(dir);
            items
        }
    };
    // Text sources (heredocs) are files of a temp dir, kept until written.
    let mut _texts = None;
    if !c.contents.is_empty() {
        let dir = store.temp_dir()?;
        add_contents(&mut items, c, dir.path())?;
        _texts = Some(dir);
    }
    let from_context = c.from == CopyFrom::Context;
    let unpack = from_context && c.add.as_ref().is_some_and(|a| a.unpack);
    // Directories the layer must list but does not copy (the destination's
    // parents, and the destination of a directory copy) keep the metadata
    // they already have in the parent image; new ones are 0755, owned by
    // root or the --chown owner. A `link` copy does not look at its parent.
    let lower = match graph.parent(n) {
        Some(p) if !c.link => chain_layers(graph, plan, results, p, None)?,
        _ => Vec::new(),
    };
    let (items, dest_root) = place_in_parent(store, &lower, items, &c.dest, unpack)?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut extracted = Vec::new(); // keeps the unpacked archives until written
    for it in items {
        // As BuildKit: a directory's own mode and owner are not copied to
        // the destination its contents go into, nor is --chmod applied.
        let structural = it.kind == ItemKind::Dir && (it.source.is_empty() || it.dest == dest_root);
        if structural {
            let existing = if lower.is_empty() {
                None
            } else {
                lower_dir(store, &lower, &it.dest)?
            };
            let (mode, uid, gid) = existing.unwrap_or_else(|| {
                let (u, g) = owner.unwrap_or((0, 0));
                (0o755, u, g)
            });
            entries.push(Entry {
                path: it.dest,
                kind: EntryKind::Dir,
                mode,
                uid,
                gid,
                mtime: opts.epoch,
                xattrs: Vec::new(),
            });
            continue;
        }
        if let (true, ItemKind::File { path, .. }) = (unpack, &it.kind)
            && let Some(reader) = tar_archive(path)?
        {
            // ADD unpacks a local tar archive into the destination
            // directory; its owners are kept unless --chown.
            let dir = if c.dest.ends_with('/') {
                it.dest
                    .rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default()
            } else {
                it.dest.clone()
            };
            let tmp = store.temp_dir()?;
            layer::unpack(
                reader,
                tmp.path(),
                &layer::UnpackOptions::for_current_user(),
            )
            .map_err(|e| {
                step_error(
                    graph,
                    n,
                    format!("unpacking `{}`: {e}", it.source),
                    "this ADD",
                )
            })?;
            if !dir.is_empty() && !entries.iter().any(|e: &Entry| e.path == dir) {
                entries.push(Entry {
                    path: dir.clone(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid: owner.map_or(0, |o| o.0),
                    gid: owner.map_or(0, |o| o.1),
                    mtime: opts.epoch,
                    xattrs: Vec::new(),
                });
            }
            let under = |p: &str| {
                if dir.is_empty() {
                    p.to_string()
                } else {
                    format!("{dir}/{p}")
                }
            };
            // The archive's mtimes are content: clamped, as a RUN's.
            let clamp = layer::Mtimes::Clamp(opts.epoch);
            for mut e in layer::entries_from_dir_with(tmp.path(), clamp)? {
                e.path = under(&e.path);
                if let EntryKind::Hardlink { target } = &e.kind {
                    e.kind = EntryKind::Hardlink {
                        target: under(target),
                    };
                }
                if let Some((uid, gid)) = owner {
                    (e.uid, e.gid) = (uid, gid);
                }
                entries.retain(|x| x.path != e.path);
                entries.push(e);
            }
            extracted.push(tmp);
            continue;
        }
        entries.push(to_entry(it, owner, from_context, c.chmod, opts.epoch));
    }
    let record = write_layer_record(store, graph, n, entries, opts);
    drop(extracted);
    record
}

/// Adds the copy's text sources (heredocs) to `items`: each a file `NAME`
/// (0644) written under `dir`, copied as a source of that name would be
/// (BuildKit makes each a file of a scratch state and copies it): to
/// `dest/NAME` when the destination is a directory (a trailing `/`, or
/// several sources), else to the destination itself (or into it, when the
/// image has a directory there). The destination's missing parents are
/// listed as the context's planning lists them.
fn add_contents(items: &mut Vec<CopyItem>, c: &CopyOp, dir: &Path) -> Result<()> {
    let root = c.dest.trim_matches('/');
    let into_dir = c.dest.ends_with('/') || c.sources.len() + c.contents.len() > 1;
    for (name, text) in &c.contents {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::msg(format!("bad heredoc name `{name}`")));
        }
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        let (dest, lone) = match (into_dir, root.is_empty()) {
            (true, true) => (name.clone(), None),
            (true, false) => (format!("{root}/{name}"), None),
            (false, _) => (root.to_string(), Some(name.clone())),
        };
        items.push(CopyItem {
            dest,
            source: format!("<<{name}"),
            kind: ItemKind::File {
                path,
                size: text.len() as u64,
                hash: None,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            name: lone,
            hardlink_of: None,
        });
    }
    complete_ancestors(items);
    Ok(())
}

/// The copy's items where they land in the parent image made of `lower`
/// (empty for a `link` copy or a first step: nothing to look at), and the
/// destination root they now have: see [`super::dest`].
fn place_in_parent(
    store: &Store,
    lower: &[ChainLayer],
    items: Vec<CopyItem>,
    dest: &str,
    unpack: bool,
) -> Result<(Vec<CopyItem>, String)> {
    let dest_root = dest.trim_matches('/').to_string();
    if lower.is_empty() {
        return Ok((items, dest_root));
    }
    let image = ImageFs::new(store, lower)?;
    // An ADD archive is unpacked into the destination, never renamed.
    let keeps_dest = |it: &CopyItem| -> Result<bool> {
        Ok(match &it.kind {
            ItemKind::File { path, .. } if unpack => tar_archive(path)?.is_some(),
            _ => false,
        })
    };
    place(items, &dest_root, &image, keeps_dest)
}

/// The files a copy from a stage or an image reads, and only those: the
/// source paths (their literal part, for globs) with their subtrees,
/// merged from the layers' snapshots into a temp dir (files hard linked),
/// for `Tree::rootfs` to plan the copy over. A layer without a snapshot is
/// unpacked into one first, once per store.
fn source_files(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    n: NodeIndex,
    c: &CopyOp,
    results: &Results,
    epoch: u64,
) -> Result<tempfile::TempDir> {
    let layers: Vec<ChainLayer> = match &c.from {
        CopyFrom::Image(r) => {
            let img = oci::resolve_base(
                store,
                &BaseRef::Image {
                    reference: r.clone(),
                },
            )?;
            if img.layers.len() != img.config.rootfs.diff_ids.len() {
                return Err(Error::corrupt(
                    format!("image {}", img.manifest.digest),
                    "the config's diff_ids do not match the manifest's layers",
                ));
            }
            img.layers
                .into_iter()
                .zip(img.config.rootfs.diff_ids)
                .map(|(desc, diff_id)| ChainLayer::Stored {
                    desc,
                    diff_id,
                    times: oci::SnapshotTimes::Layer,
                })
                .collect()
        }
        _ => {
            let src =
                graph.sources_of(n).into_iter().next().ok_or_else(|| {
                    Error::msg("internal: copy from a stage without a source edge")
                })?;
            chain_layers(graph, plan, results, src, Some(epoch))?
        }
    };
    let mut snapshots = Vec::with_capacity(layers.len());
    for l in &layers {
        snapshots.push(l.snapshot(store)?);
    }
    let dir = store.temp_dir()?;
    layer::merge_paths(&snapshots, &c.sources, dir.path())?;
    Ok(dir)
}

/// A reader of the tar inside `path` when it is a tar archive (plain, gzip
/// or zstd compressed, recognized by content, not name); None otherwise.
fn tar_archive(path: &Path) -> Result<Option<Box<dyn std::io::Read>>> {
    use std::io::Read;
    let open = || {
        std::fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
    };
    let mut magic = [0u8; 4];
    let n = open()?
        .read(&mut magic)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let media = Compression::of_magic(&magic[..n.min(4)]).media_type();
    // A tar header has "ustar" at offset 257.
    let mut head = vec![0u8; 512];
    let mut r = layer::decompress(std::io::BufReader::new(open()?), media)?;
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(_) => return Ok(None),
        }
    }
    if got < 512 || &head[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(layer::decompress(
        std::io::BufReader::new(open()?),
        media,
    )?))
}

fn to_entry(
    it: CopyItem,
    owner: Option<(u32, u32)>,
    from_context: bool,
    chmod: Option<u32>,
    epoch: u64,
) -> Entry {
    // Context files belong to root unless --chown; files from a stage keep
    // their owners. Created parent directories are root's.
    let (uid, gid) = match owner {
        Some(o) => o,
        None if from_context => (0, 0),
        None => (it.uid, it.gid),
    };
    let kind = match (it.kind, it.hardlink_of) {
        (ItemKind::File { .. }, Some(target)) => EntryKind::Hardlink { target },
        (ItemKind::Dir, _) => EntryKind::Dir,
        (ItemKind::File { path, size, .. }, None) => EntryKind::File { source: path, size },
        (ItemKind::Symlink { target }, _) => EntryKind::Symlink { target },
    };
    let mode = match (chmod, &kind) {
        (_, EntryKind::Symlink { .. }) => 0o777,
        (Some(m), _) => m,
        (None, _) => it.mode,
    };
    Entry {
        path: it.dest,
        kind,
        mode,
        uid,
        gid,
        mtime: epoch,
        xattrs: Vec::new(),
    }
}

//! The plan: every needed step's key and whether it is cached, computed
//! before anything runs. Planning reads the store and the context; it runs
//! no step, pulls nothing and writes nothing but the stat cache.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

use crate::context::{ContextOptions, CopyError, CopyItem, CopyRequest, ItemKind, Tree};
use crate::digest::CacheKey;
use crate::error::{Error, Result, SourceDiagnostic};
use crate::ir::{BaseRef, BuildGraph, CopyFrom, CopyOp, Mount, MountKind, Op};
use crate::oci::{self, Image};
use crate::store::{CacheRecord, Store};

use super::key::{KeyInput, canonical_op, step_keys};
use super::record::{BuildRecord, RecordedStep, StepInputs, explain, record_name};
use super::{BuildOptions, step_error};

/// How a step was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its layer is in the cache.
    Cached,
    /// Must run.
    Run,
    /// Config-only or base: nothing to run.
    Free,
}

/// The decision for one step.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedStep {
    #[serde(skip)]
    pub node: NodeIndex,
    /// `stage/index`, stable across edits that do not reorder the stage.
    pub id: String,
    pub name: String,
    pub key: CacheKey,
    pub status: Status,
    /// Why it must run (for `Status::Run`).
    pub reason: Option<String>,
}

/// Everything `plan` found out.
pub struct Plan {
    pub steps: Vec<PlannedStep>,
    pub(super) nodes: HashMap<NodeIndex, NodePlan>,
    pub(super) bases: HashMap<NodeIndex, Option<Image>>,
    pub(super) targets: Vec<NodeIndex>,
    pub(super) record: BuildRecord,
    /// The store's name for `record` (spec and targets).
    pub(super) record_name: String,
    /// `--cache-from` imports, for blobs fetched on demand (`chain_layers`).
    pub(super) imports: Option<std::sync::Arc<crate::cache_io::Imports>>,
}

impl Plan {
    pub fn hits(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Cached)
            .count()
    }

    /// The build record, encoded for the store.
    pub(super) fn record_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.record)
            .map_err(|e| Error::msg(format!("internal: encoding the build record: {e}")))
    }

    pub fn misses(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Run)
            .count()
    }
}

/// What planning learned about one node.
pub(super) struct NodePlan {
    pub(super) id: String,
    /// Identity of the node's result (filesystem + config chain).
    pub(super) key: CacheKey,
    /// Key of the node's layer in the cache (differs from `key` for `link` copies).
    pub(super) layer_key: CacheKey,
    /// Context items of a context copy (computed once, reused when it runs).
    pub(super) items: Option<Vec<CopyItem>>,
    /// For each RUN mount in order: the context files a context bind
    /// mount shows (what its key digested), None for other mounts.
    pub(super) binds: Vec<Option<Vec<CopyItem>>>,
    pub(super) cached: Option<CacheRecord>,
    pub(super) inputs: StepInputs,
}

/// Step ids: `stage/N`, N counting the stage's own steps from 0; the
/// stage as the step names it (in a build for several platforms, a step of
/// one platform only says which).
pub(super) fn step_ids(graph: &BuildGraph) -> HashMap<NodeIndex, String> {
    let mut ids = HashMap::new();
    for stage in &graph.stages {
        let Some(first) = stage.first else { continue };
        let chain = graph.chain(stage.last);
        let start = chain.iter().position(|n| *n == first).unwrap_or(0);
        for (i, n) in chain[start..].iter().enumerate() {
            ids.entry(*n)
                .or_insert_with(|| format!("{}/{}", graph.graph[*n].stage, i));
        }
    }
    for n in graph.graph.node_indices() {
        ids.entry(n)
            .or_insert_with(|| format!("{}/{}", graph.graph[n].stage, n.index()));
    }
    ids
}

/// Computes every needed step's key and whether it is cached, without
/// running anything. Imports base images that are local files into the store.
pub fn plan(store: &Store, graph: &BuildGraph, opts: &BuildOptions) -> Result<Plan> {
    let targets: Vec<NodeIndex> = graph.targets.iter().map(|t| t.node).collect();
    let order = graph.needed(&targets);
    let ids = step_ids(graph);
    // The last build's record is read only when a miss needs explaining.
    let record_name = record_name(opts, graph, &targets);
    let previous_record = std::cell::OnceCell::new();
    let previous = || -> &BuildRecord {
        previous_record.get_or_init(|| {
            store
                .get_build_record(&record_name)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        })
    };

    // The context is scanned only if some needed step copies from it.
    let needs_context = order.iter().any(|n| match &graph.graph[*n].op {
        Op::Copy(c) => c.from == CopyFrom::Context,
        Op::Run(r) => r.mounts.iter().any(is_context_bind),
        _ => false,
    });
    let context = if needs_context {
        Some(Tree::context(
            &opts.context_dir,
            &ContextOptions {
                ignore_file: opts.ignore_file.clone(),
                stat_cache: Some(store.stat_cache_path(&opts.context_dir)),
            },
        )?)
    } else {
        None
    };

    let mut nodes: HashMap<NodeIndex, NodePlan> = HashMap::new();
    let mut bases: HashMap<NodeIndex, Option<Image>> = HashMap::new();
    let mut steps = Vec::new();
    let mut errors = Vec::new();

    for &n in &order {
        let step = &graph.graph[n];
        let id = ids[&n].clone();
        let parent = graph.parent(n).and_then(|p| nodes.get(&p)).map(|p| p.key);
        let mut input = KeyInput {
            parent,
            ..KeyInput::default()
        };
        let mut recorded = StepInputs {
            parent: parent.map(|k| k.hex()),
            ..Default::default()
        };
        let mut items = None;
        let mut binds = Vec::new();
        match &step.op {
            Op::Base(b) => match &b.base {
                BaseRef::Scratch if b.platform.is_none() => {
                    bases.insert(n, None);
                }
                other => match base_for(store, other, b.platform.as_deref()) {
                    Ok(img) => {
                        input.image = Some(img.manifest.digest);
                        recorded
                            .bases
                            .insert(base_label(other, opts), img.manifest.digest.to_string());
                        bases.insert(n, Some(img));
                    }
                    Err(e) => {
                        errors.push(step_error(
                            graph,
                            n,
                            format!("cannot use base image: {e}"),
                            "this base",
                        ));
                        continue;
                    }
                },
            },
            Op::Copy(c) => {
                input.epoch = Some(opts.epoch);
                match &c.from {
                    CopyFrom::Context => {
                        let Some(tree) = &context else { continue };
                        let remote = c
                            .sources
                            .iter()
                            .find(|s| s.contains("://") || s.starts_with("git@"));
                        if let (Some(_), Some(s)) = (&c.add, remote) {
                            errors.push(step_error(
                                graph,
                                n,
                                format!("ADD of a remote source (`{s}`) is not supported yet"),
                                "this ADD",
                            ));
                            continue;
                        }
                        match tree.plan_copy(&copy_request(c, true)) {
                            Ok(list) => {
                                input.context = Some(crate::context::items_digest(&list));
                                for it in &list {
                                    if let ItemKind::File { hash: Some(h), .. } = &it.kind {
                                        recorded.files.insert(it.source.clone(), hex::encode(h));
                                    }
                                }
                                items = Some(list);
                            }
                            Err(e) => {
                                errors.push(copy_error(graph, n, e));
                                continue;
                            }
                        }
                    }
                    CopyFrom::Stage(_) => {}
                    CopyFrom::Image(r) => {
                        match oci::resolve_base(
                            store,
                            &BaseRef::Image {
                                reference: r.clone(),
                            },
                        ) {
                            Ok(img) => {
                                input.image = Some(img.manifest.digest);
                                recorded
                                    .bases
                                    .insert(r.clone(), img.manifest.digest.to_string());
                            }
                            Err(e) => {
                                errors.push(step_error(
                                    graph,
                                    n,
                                    format!("cannot copy from image `{r}`: {e}"),
                                    "this step",
                                ));
                                continue;
                            }
                        }
                    }
                }
            }
            Op::Run(r) => {
                input.epoch = Some(opts.epoch);
                recorded.env = r.env.iter().cloned().collect();
                let mut failed = false;
                for m in &r.mounts {
                    if !is_context_bind(m) {
                        binds.push(None);
                        continue;
                    }
                    let Some(tree) = &context else { continue };
                    let source = [bind_source(m)];
                    match tree.plan_copy(&bind_request(&source)) {
                        Ok(list) => {
                            input
                                .binds
                                .push((m.target.clone(), crate::context::items_digest(&list)));
                            let files = recorded.binds.entry(source[0].clone()).or_default();
                            for it in &list {
                                if let ItemKind::File { hash: Some(h), .. } = &it.kind {
                                    files.insert(it.source.clone(), hex::encode(h));
                                }
                            }
                            binds.push(Some(list));
                        }
                        Err(e) => {
                            errors.push(copy_error(graph, n, e));
                            failed = true;
                        }
                    }
                }
                if failed {
                    continue;
                }
            }
            Op::Workdir(_) => input.epoch = Some(opts.epoch),
            Op::Meta(_) => {}
        }
        let mut missing_source = false;
        for s in graph.sources_of(n) {
            match nodes.get(&s) {
                Some(p) => {
                    input.sources.push(p.key);
                    recorded
                        .stages
                        .insert(graph.graph[s].stage.clone(), p.key.hex());
                }
                None => missing_source = true,
            }
        }
        if missing_source || (graph.parent(n).is_some() && parent.is_none()) {
            // A dependency failed to plan; its error is already reported.
            continue;
        }
        recorded.epoch = input.epoch;
        recorded.op = blake3::hash(&canonical_op(&step.op)?).to_hex().to_string();
        let (layer_key, key) = step_keys(&step.op, &input)?;

        let layered = matches!(step.op, Op::Copy(_) | Op::Run(_) | Op::Workdir(_));
        let cached = if layered && !opts.no_cache {
            let usable = |r: &CacheRecord| {
                r.diff_id.is_none() || r.layers.contains_key(opts.compression.name())
            };
            store.get_cache(&layer_key)?.filter(usable).or_else(|| {
                // cache_io: an imported record counts as a hit; no blob yet.
                let i = opts.cache_from.as_ref()?;
                i.lookup(&layer_key).filter(usable)
            })
        } else {
            None
        };
        let (status, reason) = if !layered {
            (Status::Free, None)
        } else if cached.is_some() {
            (Status::Cached, None)
        } else if opts.no_cache {
            (Status::Run, Some("--no-cache".to_string()))
        } else {
            (
                Status::Run,
                Some(explain(previous(), &id, &recorded, &ids, graph, n)),
            )
        };
        steps.push(PlannedStep {
            node: n,
            id: id.clone(),
            name: graph.describe(n),
            key,
            status,
            reason,
        });
        nodes.insert(
            n,
            NodePlan {
                id,
                key,
                layer_key,
                items,
                binds,
                cached,
                inputs: recorded,
            },
        );
    }
    if !errors.is_empty() {
        return Err(gather(graph, errors));
    }
    if let Some(tree) = &context {
        tree.save_stat_cache()?;
    }
    let record = BuildRecord {
        steps: nodes
            .values()
            .map(|p| {
                (
                    p.id.clone(),
                    RecordedStep {
                        key: p.key,
                        inputs: p.inputs.clone(),
                    },
                )
            })
            .collect(),
    };
    Ok(Plan {
        steps,
        nodes,
        bases,
        targets,
        record,
        record_name,
        imports: opts.cache_from.clone(),
    })
}

/// Several errors become one `Diagnostics` when they all have spans.
/// A stage's base on its platform (`None`: any image, this host's from an
/// index); `scratch` on a platform is the empty image of it.
fn base_for(store: &Store, base: &BaseRef, platform: Option<&str>) -> Result<oci::Image> {
    let want = platform
        .map(oci::parse_platform)
        .transpose()
        .map_err(Error::msg)?;
    oci::resolve_base_for(store, base, want.as_ref())
}

fn gather(graph: &BuildGraph, errors: Vec<Error>) -> Error {
    let mut diags = Vec::new();
    let mut others = Vec::new();
    for e in errors {
        match e {
            Error::Source(d) => diags.push(*d),
            other => others.push(other),
        }
    }
    if let Some(first) = others.into_iter().next() {
        return first;
    }
    let name = graph
        .sources
        .first()
        .map(|s| s.name.as_str())
        .unwrap_or("build");
    if diags.len() == 1 {
        return diags.remove(0).into();
    }
    crate::error::Diagnostics::new(name, diags).into()
}

pub(super) fn copy_request(c: &CopyOp, hash: bool) -> CopyRequest<'_> {
    CopyRequest {
        sources: &c.sources,
        dest: &c.dest,
        exclude: &c.exclude,
        parents: c.parents,
        hash,
    }
}

pub(super) fn copy_error(graph: &BuildGraph, n: NodeIndex, e: CopyError) -> Error {
    match e {
        CopyError::SourceMissing {
            pattern,
            ignored_by: Some(rule),
        } => {
            let d = match graph.graph[n].span {
                Some(span) => SourceDiagnostic::at(
                    &graph.sources,
                    span,
                    format!("`{pattern}` is excluded from the build context"),
                    "this copy",
                ),
                None => return Error::msg(format!("`{pattern}` is excluded by {rule}")),
            };
            d.with_help(format!("it is excluded by {rule}")).into()
        }
        CopyError::SourceMissing { pattern, .. } => step_error(
            graph,
            n,
            format!("`{pattern}` not found in the build context"),
            "copied here",
        ),
        CopyError::OutsideRoot { pattern } => step_error(
            graph,
            n,
            format!("`{pattern}` points outside the build context"),
            "copied here",
        ),
        CopyError::Io(e) => e,
    }
}

/// A bind mount of the build context (not of a stage).
pub(super) fn is_context_bind(m: &Mount) -> bool {
    m.kind == MountKind::Bind && m.from.is_none()
}

/// The context path a bind mount selects (`.` for the whole context).
pub(super) fn bind_source(m: &Mount) -> String {
    match m.source.as_deref().map(|s| s.trim_matches('/')) {
        None | Some("") => ".".to_string(),
        Some(s) => s.to_string(),
    }
}

/// Where the files of a context bind land in its private copy: under
/// `bind/` (a file source as `bind/NAME`, a directory's content as `bind/`).
pub(super) const BIND_DEST: &str = "/bind/";

pub(super) fn bind_request(sources: &[String]) -> CopyRequest<'_> {
    CopyRequest {
        sources,
        dest: BIND_DEST,
        exclude: &[],
        parents: false,
        hash: true,
    }
}

/// A base as the user would name it in explanations: paths relative to the
/// context when they are inside it.
fn base_label(base: &BaseRef, opts: &BuildOptions) -> String {
    let path = match base {
        BaseRef::Image { reference } => return reference.clone(),
        BaseRef::Scratch => return "scratch".to_string(),
        BaseRef::OciLayout { path, .. }
        | BaseRef::OciArchive { path, .. }
        | BaseRef::DockerArchive { path, .. } => path,
    };
    let ctx = std::path::absolute(&opts.context_dir).unwrap_or_else(|_| opts.context_dir.clone());
    match path.strip_prefix(&ctx) {
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

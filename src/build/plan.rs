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
    let record_name = record_name(opts, graph, &targets);
    let mut planner = Planner {
        store,
        graph,
        opts,
        ids: step_ids(graph),
        context: scan_context(store, graph, &order, opts)?,
        previous: Previous::new(store, record_name),
        nodes: HashMap::new(),
        bases: HashMap::new(),
        steps: Vec::new(),
        errors: Vec::new(),
    };
    for &n in &order {
        planner.node(n)?;
    }
    planner.finish(targets)
}

/// The build context, scanned only if some needed step copies from it (a
/// context copy or a context bind mount).
fn scan_context(
    store: &Store,
    graph: &BuildGraph,
    order: &[NodeIndex],
    opts: &BuildOptions,
) -> Result<Option<Tree>> {
    let needs_context = order.iter().any(|n| match &graph.graph[*n].op {
        Op::Copy(c) => c.from == CopyFrom::Context,
        Op::Run(r) => r.mounts.iter().any(is_context_bind),
        _ => false,
    });
    if !needs_context {
        return Ok(None);
    }
    let tree = Tree::context(
        &opts.context_dir,
        &ContextOptions {
            ignore_file: opts.ignore_file.clone(),
            stat_cache: Some(store.stat_cache_path(&opts.context_dir)),
        },
    )?;
    Ok(Some(tree))
}

/// The last build's record, read only when a miss needs explaining.
struct Previous<'a> {
    store: &'a Store,
    /// The store's name for the record (spec and targets).
    name: String,
    record: std::cell::OnceCell<BuildRecord>,
}

impl<'a> Previous<'a> {
    fn new(store: &'a Store, name: String) -> Self {
        Previous {
            store,
            name,
            record: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &BuildRecord {
        self.record.get_or_init(|| {
            self.store
                .get_build_record(&self.name)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        })
    }
}

/// What one step's key reads besides its op, and what the record shows of it.
#[derive(Default)]
struct Inputs {
    key: KeyInput,
    recorded: StepInputs,
    /// A context copy's items.
    items: Option<Vec<CopyItem>>,
    /// A RUN's context bind mounts' items, one entry per mount.
    binds: Vec<Option<Vec<CopyItem>>>,
}

/// Planning state, node by node in dependency order. Each concern has its
/// method: a base ([`Planner::base`]), a copy's sources
/// ([`Planner::context_copy`], [`Planner::image_copy`]), a RUN's bind
/// mounts ([`Planner::run_binds`]), the keys of the stages read
/// ([`Planner::sources`]), the cache lookup ([`Planner::cached`]) and
/// the decision ([`Planner::decide`]). A step whose inputs cannot be known
/// records its error and is left out; so are the steps after it.
struct Planner<'a> {
    store: &'a Store,
    graph: &'a BuildGraph,
    opts: &'a BuildOptions,
    ids: HashMap<NodeIndex, String>,
    context: Option<Tree>,
    previous: Previous<'a>,
    nodes: HashMap<NodeIndex, NodePlan>,
    bases: HashMap<NodeIndex, Option<Image>>,
    steps: Vec<PlannedStep>,
    errors: Vec<Error>,
}

impl Planner<'_> {
    /// Plans node `n`: its inputs, keys, cache record and status.
    fn node(&mut self, n: NodeIndex) -> Result<()> {
        let graph = self.graph;
        let step = &graph.graph[n];
        let parent = graph
            .parent(n)
            .and_then(|p| self.nodes.get(&p))
            .map(|p| p.key);
        let mut inputs = Inputs::default();
        inputs.key.parent = parent;
        inputs.recorded.parent = parent.map(|k| k.hex());
        let known = match &step.op {
            Op::Base(b) => self.base(n, &b.base, b.platform.as_deref(), &mut inputs),
            Op::Copy(c) => {
                inputs.key.epoch = Some(self.opts.epoch);
                match &c.from {
                    CopyFrom::Context => self.context_copy(n, c, &mut inputs),
                    CopyFrom::Stage(_) => true,
                    CopyFrom::Image(r) => self.image_copy(n, r, &mut inputs),
                }
            }
            Op::Run(r) => {
                inputs.key.epoch = Some(self.opts.epoch);
                inputs.recorded.env = r.env.iter().cloned().collect();
                self.run_binds(n, &r.mounts, &mut inputs)
            }
            Op::Workdir(_) => {
                inputs.key.epoch = Some(self.opts.epoch);
                true
            }
            Op::Meta(_) => true,
        };
        if !known
            || !self.sources(n, &mut inputs)
            || (graph.parent(n).is_some() && parent.is_none())
        {
            // This step's error, or a dependency's, is already reported.
            return Ok(());
        }
        let Inputs {
            key: input,
            mut recorded,
            items,
            binds,
        } = inputs;
        recorded.epoch = input.epoch;
        recorded.op = blake3::hash(&canonical_op(&step.op)?).to_hex().to_string();
        let (layer_key, key) = step_keys(&step.op, &input)?;
        let layered = matches!(step.op, Op::Copy(_) | Op::Run(_) | Op::Workdir(_));
        let cached = if layered {
            self.cached(&layer_key)?
        } else {
            None
        };
        let id = self.ids[&n].clone();
        let (status, reason) = self.decide(n, &id, layered, cached.is_some(), &recorded);
        self.steps.push(PlannedStep {
            node: n,
            id: id.clone(),
            name: graph.describe(n),
            key,
            status,
            reason,
        });
        self.nodes.insert(
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
        Ok(())
    }

    /// A base on its platform: scratch, or an image resolved in the store
    /// (importing a local layout or archive; an index gives the platform's
    /// entry). False when it cannot be used.
    fn base(
        &mut self,
        n: NodeIndex,
        base: &BaseRef,
        platform: Option<&str>,
        inputs: &mut Inputs,
    ) -> bool {
        if *base == BaseRef::Scratch && platform.is_none() {
            self.bases.insert(n, None);
            return true;
        }
        match base_for(self.store, base, platform) {
            Ok(img) => {
                inputs.key.image = Some(img.manifest.digest);
                (inputs.recorded.bases)
                    .insert(base_label(base, self.opts), img.manifest.digest.to_string());
                self.bases.insert(n, Some(img));
                true
            }
            Err(e) => {
                let message = format!("cannot use base image: {e}");
                self.errors
                    .push(step_error(self.graph, n, message, "this base"));
                false
            }
        }
    }

    /// A copy from the context: the files it selects, hashed.
    fn context_copy(&mut self, n: NodeIndex, c: &CopyOp, inputs: &mut Inputs) -> bool {
        let Some(tree) = &self.context else {
            return false;
        };
        let remote = (c.sources.iter()).find(|s| s.contains("://") || s.starts_with("git@"));
        if let (Some(_), Some(s)) = (&c.add, remote) {
            let message = format!("ADD of a remote source (`{s}`) is not supported yet");
            self.errors
                .push(step_error(self.graph, n, message, "this ADD"));
            return false;
        }
        match tree.plan_copy(&copy_request(c, true)) {
            Ok(list) => {
                inputs.key.context = Some(crate::context::items_digest(&list));
                for it in &list {
                    if let ItemKind::File { hash: Some(h), .. } = &it.kind {
                        (inputs.recorded.files).insert(it.source.clone(), hex::encode(h));
                    }
                }
                inputs.items = Some(list);
                true
            }
            Err(e) => {
                self.errors.push(copy_error(self.graph, n, e));
                false
            }
        }
    }

    /// A copy from an image: the image, resolved in the store.
    fn image_copy(&mut self, n: NodeIndex, r: &str, inputs: &mut Inputs) -> bool {
        let image = BaseRef::Image {
            reference: r.to_string(),
        };
        match oci::resolve_base(self.store, &image) {
            Ok(img) => {
                inputs.key.image = Some(img.manifest.digest);
                (inputs.recorded.bases).insert(r.to_string(), img.manifest.digest.to_string());
                true
            }
            Err(e) => {
                let message = format!("cannot copy from image `{r}`: {e}");
                self.errors
                    .push(step_error(self.graph, n, message, "this step"));
                false
            }
        }
    }

    /// A RUN's context bind mounts: the files each shows, hashed. Every
    /// mount is looked at (so all their errors are reported).
    fn run_binds(&mut self, n: NodeIndex, mounts: &[Mount], inputs: &mut Inputs) -> bool {
        let mut ok = true;
        for m in mounts {
            if !is_context_bind(m) {
                inputs.binds.push(None);
                continue;
            }
            let Some(tree) = &self.context else { continue };
            let source = [bind_source(m)];
            match tree.plan_copy(&bind_request(&source)) {
                Ok(list) => {
                    let digest = crate::context::items_digest(&list);
                    inputs.key.binds.push((m.target.clone(), digest));
                    let files = inputs.recorded.binds.entry(source[0].clone()).or_default();
                    for it in &list {
                        if let ItemKind::File { hash: Some(h), .. } = &it.kind {
                            files.insert(it.source.clone(), hex::encode(h));
                        }
                    }
                    inputs.binds.push(Some(list));
                }
                Err(e) => {
                    self.errors.push(copy_error(self.graph, n, e));
                    ok = false;
                }
            }
        }
        ok
    }

    /// The keys of the stages `n` reads (copy/mount `from`); false when
    /// one of them could not be planned.
    fn sources(&self, n: NodeIndex, inputs: &mut Inputs) -> bool {
        let mut all = true;
        for s in self.graph.sources_of(n) {
            match self.nodes.get(&s) {
                Some(p) => {
                    inputs.key.sources.push(p.key);
                    let stage = self.graph.graph[s].stage.clone();
                    inputs.recorded.stages.insert(stage, p.key.hex());
                }
                None => all = false,
            }
        }
        all
    }

    /// A layered step's cache record, from the store or from the
    /// `--cache-from` imports, when it has the layer in the build's
    /// compression; none under `--no-cache`.
    fn cached(&self, layer_key: &CacheKey) -> Result<Option<CacheRecord>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        let opts = self.opts;
        let usable =
            |r: &CacheRecord| r.diff_id.is_none() || r.layers.contains_key(opts.compression.name());
        Ok(self.store.get_cache(layer_key)?.filter(usable).or_else(|| {
            // cache_io: an imported record counts as a hit; no blob yet.
            let i = opts.cache_from.as_ref()?;
            i.lookup(layer_key).filter(usable)
        }))
    }

    /// The status of a step, and why it must run when it must.
    fn decide(
        &self,
        n: NodeIndex,
        id: &str,
        layered: bool,
        cached: bool,
        recorded: &StepInputs,
    ) -> (Status, Option<String>) {
        if !layered {
            (Status::Free, None)
        } else if cached {
            (Status::Cached, None)
        } else if self.opts.no_cache {
            (Status::Run, Some("--no-cache".to_string()))
        } else {
            let why = explain(self.previous.get(), id, recorded, &self.ids, self.graph, n);
            (Status::Run, Some(why))
        }
    }

    /// The plan, or every error found; saves the stat cache.
    fn finish(self, targets: Vec<NodeIndex>) -> Result<Plan> {
        if !self.errors.is_empty() {
            return Err(gather(self.graph, self.errors));
        }
        if let Some(tree) = &self.context {
            tree.save_stat_cache()?;
        }
        let record = BuildRecord {
            steps: (self.nodes.values())
                .map(|p| {
                    let step = RecordedStep {
                        key: p.key,
                        inputs: p.inputs.clone(),
                    };
                    (p.id.clone(), step)
                })
                .collect(),
        };
        Ok(Plan {
            steps: self.steps,
            nodes: self.nodes,
            bases: self.bases,
            targets,
            record,
            record_name: self.previous.name,
            imports: self.opts.cache_from.clone(),
        })
    }
}

/// Several errors become one `Diagnostics` when they all have spans.
/// A stage's base on its platform (`None`: any image, this host's from an
/// index); `scratch` on a platform is the empty image of it.
fn base_for(store: &Store, base: &BaseRef, platform: Option<&str>) -> Result<Image> {
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

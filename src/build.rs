//! Planning (cache keys, hits and misses, explanations) and the parallel
//! scheduler.
//!
//! A build is two phases. `plan` computes every needed step's cache key from
//! the keys of its inputs only, so what is cached and what must run is known
//! before anything runs (`--dry-run`). `execute` then runs the misses on a
//! rayon pool, a step as soon as its dependencies are done, and assembles
//! the target images.
//!
//! Invariants:
//! - A key depends only on `IR_VERSION`, the step's canonical op (no spans,
//!   no stage names), its parent's key, and its inputs (context file
//!   digests, source stage keys, base manifest digests, the epoch). Never on
//!   mtimes, paths of the checkout, or the host's owners.
//! - A step's result is stored (blob, then cache record) before the step
//!   counts as finished, so a build killed at any point resumes from the last
//!   finished step.
//! - After the first failure no new step starts; running steps finish.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use petgraph::stable_graph::NodeIndex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::context::{ContextOptions, CopyError, CopyItem, CopyRequest, ItemKind, Tree};
use crate::digest::{CacheKey, Digest};
use crate::error::{Error, Result, SourceDiagnostic};
use crate::ir::{
    BaseInfo, BaseRef, BaseResolver, BuildGraph, CopyFrom, CopyOp, IR_VERSION, Mount, MountKind,
    Op, RunOp, Sharing, Target,
};
use crate::layer::{self, Compression, Entry, EntryKind};
use crate::oci::{self, ExportImage, History, Image, ImageConfig, OutputKind};
use crate::sandbox::{self, SandboxMount, SandboxSpec, Stream};
use crate::store::{CacheRecord, Descriptor, Store};

/// What the user asked for, after flag parsing.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub context_dir: PathBuf,
    /// Name the build record is filed under (the spec file's path).
    pub spec_id: String,
    pub no_cache: bool,
    pub jobs: usize,
    pub compression: Compression,
    /// Every mtime in layers and every `created` time; `SOURCE_DATE_EPOCH`, 0 when unset.
    pub epoch: u64,
    /// A `.dockerignore`-syntax file; None = `CONTEXT/.dockerignore` if present.
    pub ignore_file: Option<PathBuf>,
    /// `--secret id=…`: where each secret's value comes from. Values are read
    /// only when a RUN step mounts them, never enter a key, a log or the store.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--cache-from`: imported records, consulted when the store has none.
    pub cache_from: Option<std::sync::Arc<crate::cache_io::Imports>>,
    /// `--cache-to`: where the cache goes after a successful build.
    pub cache_to: Vec<crate::cache_io::CacheTo>,
}

/// Where a build secret's value is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    fn read(&self) -> std::result::Result<Vec<u8>, String> {
        match self {
            SecretSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
            }
            SecretSource::Env(v) => std::env::var_os(v)
                .map(|s| s.into_encoded_bytes())
                .ok_or_else(|| format!("environment variable {v} is not set")),
        }
    }
}

/// One thing the build reports while it runs; the CLI renders them.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan, once known.
    Plan {
        steps: usize,
        cached: usize,
        to_run: usize,
    },
    Started {
        id: String,
        name: String,
        time: f64,
    },
    Cached {
        id: String,
        name: String,
        time: f64,
    },
    Finished {
        id: String,
        name: String,
        time: f64,
        seconds: f64,
    },
    Failed {
        id: String,
        name: String,
        time: f64,
        error: String,
    },
    Warning {
        message: String,
        time: f64,
    },
    /// A line a RUN step printed.
    Log {
        id: String,
        stream: &'static str,
        line: String,
        time: f64,
    },
}

/// A sink for events; called from worker threads.
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

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
    nodes: HashMap<NodeIndex, NodePlan>,
    bases: HashMap<NodeIndex, Option<Image>>,
    targets: Vec<NodeIndex>,
    record: BuildRecord,
    /// The store's name for `record` (spec and targets).
    record_name: String,
    /// `--cache-from` imports, for blobs fetched on demand (`chain_layers`).
    imports: Option<std::sync::Arc<crate::cache_io::Imports>>,
}

impl Plan {
    pub fn hits(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Cached)
            .count()
    }

    pub fn misses(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Run)
            .count()
    }
}

/// What planning learned about one node.
struct NodePlan {
    id: String,
    /// Identity of the node's result (filesystem + config chain).
    key: CacheKey,
    /// Key of the node's layer in the cache (differs from `key` for `link` copies).
    layer_key: CacheKey,
    /// Context items of a context copy (computed once, reused when it runs).
    items: Option<Vec<CopyItem>>,
    cached: Option<CacheRecord>,
    inputs: StepInputs,
}

/// What a step's key was made of, kept so a later miss can be explained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StepInputs {
    /// blake3 of the canonical op.
    op: String,
    parent: Option<String>,
    /// Context files: source path -> content digest (hex).
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Source stages / base images: what they resolved to.
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BuildRecord {
    steps: BTreeMap<String, RecordedStep>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RecordedStep {
    key: CacheKey,
    inputs: StepInputs,
}

/// Resolves base images from the store for the frontends.
pub struct StoreResolver<'a> {
    pub store: &'a Store,
    /// Relative base paths (`from = { oci = "dir" }`) are relative to this.
    pub spec_dir: PathBuf,
    cache: Mutex<HashMap<String, std::result::Result<BaseInfo, String>>>,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a Store, spec_dir: &Path) -> Self {
        StoreResolver {
            store,
            spec_dir: spec_dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// A base whose file paths are made absolute against `dir` (the spec's directory).
pub fn absolute_base(base: &BaseRef, dir: &Path) -> BaseRef {
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        }
    };
    match base {
        BaseRef::OciLayout { path, reference } => BaseRef::OciLayout {
            path: abs(path),
            reference: reference.clone(),
        },
        BaseRef::OciArchive { path, reference } => BaseRef::OciArchive {
            path: abs(path),
            reference: reference.clone(),
        },
        BaseRef::DockerArchive { path, reference } => BaseRef::DockerArchive {
            path: abs(path),
            reference: reference.clone(),
        },
        other => other.clone(),
    }
}

/// Makes every base path in the graph absolute (see [`absolute_base`]).
pub fn absolutize(graph: &mut BuildGraph, spec_dir: &Path) {
    for n in graph.graph.node_indices().collect::<Vec<_>>() {
        if let Op::Base(b) = &mut graph.graph[n].op {
            b.base = absolute_base(&b.base, spec_dir);
        }
    }
}

impl BaseResolver for StoreResolver<'_> {
    fn resolve(&self, base: &BaseRef) -> std::result::Result<BaseInfo, String> {
        if *base == BaseRef::Scratch {
            return Ok(BaseInfo::scratch());
        }
        let base = &absolute_base(base, &self.spec_dir);
        let id = serde_json::to_string(base).unwrap_or_default();
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return r;
        }
        let r = oci::resolve_base(self.store, base)
            .map(|img| base_info(&img.config))
            .map_err(|e| e.to_string());
        if let Ok(mut c) = self.cache.lock() {
            c.insert(id, r.clone());
        }
        r
    }
}

/// The config values a frontend builds on.
pub fn base_info(config: &ImageConfig) -> BaseInfo {
    let c = &config.config;
    BaseInfo {
        env: c
            .env
            .iter()
            .flatten()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        user: c.user.clone().filter(|u| !u.is_empty()),
        workdir: c.working_dir.clone().filter(|w| !w.is_empty()),
        shell: c.shell.clone(),
        onbuild: c.on_build.clone().unwrap_or_default(),
    }
}

/// The canonical, versioned struct a cache key hashes. Field order is the
/// encoding order; maps are sorted; nothing comes from `Debug` output.
#[derive(Serialize)]
struct KeyInput<'a> {
    ir_version: u32,
    kind: &'a str,
    op: serde_json::Value,
    parent: Option<String>,
    inputs: Vec<String>,
}

fn hash_key(input: &KeyInput) -> CacheKey {
    // serde_json of a struct of strings/values is deterministic; values
    // come from `canonical_op`, which never holds a HashMap.
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    blake3::hash(&bytes).into()
}

/// The keys of a step: (layer key, node key). They are equal except for a
/// `link` copy, whose layer key leaves out the parent so that its layer is
/// reused whatever it is applied to; the node key (what later steps chain
/// on) still includes the parent.
fn step_keys(op: &Op, parent: Option<CacheKey>, inputs: Vec<String>) -> (CacheKey, CacheKey) {
    let link = matches!(op, Op::Copy(c) if c.link);
    let layer_key = hash_key(&KeyInput {
        ir_version: IR_VERSION,
        kind: op_kind(op),
        op: canonical_op(op),
        parent: if link { None } else { parent.map(|k| k.hex()) },
        inputs,
    });
    let key = if link {
        hash_key(&KeyInput {
            ir_version: IR_VERSION,
            kind: "link",
            op: json!(layer_key.hex()),
            parent: parent.map(|k| k.hex()),
            inputs: vec![],
        })
    } else {
        layer_key
    };
    (layer_key, key)
}

/// The op as it enters the key: no spans, no stage names (a source stage
/// enters through its key instead).
fn canonical_op(op: &Op) -> serde_json::Value {
    match op {
        Op::Copy(c) => {
            let mut c = c.clone();
            if let CopyFrom::Stage(_) = c.from {
                c.from = CopyFrom::Stage(String::new());
            }
            json!({ "copy": c })
        }
        Op::Run(r) => {
            let mut r = r.clone();
            for m in &mut r.mounts {
                if m.from.is_some() {
                    m.from = Some(String::new());
                }
            }
            json!({ "run": r })
        }
        other => serde_json::to_value(other).unwrap_or_default(),
    }
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Base(_) => "base",
        Op::Copy(_) => "copy",
        Op::Run(_) => "run",
        Op::Meta(_) => "meta",
    }
}

/// Step ids: `stage/N`, N counting the stage's own steps from 0.
fn step_ids(graph: &BuildGraph) -> HashMap<NodeIndex, String> {
    let mut ids = HashMap::new();
    for stage in &graph.stages {
        let Some(first) = stage.first else { continue };
        let chain = graph.chain(stage.last);
        let start = chain.iter().position(|n| *n == first).unwrap_or(0);
        for (i, n) in chain[start..].iter().enumerate() {
            ids.entry(*n)
                .or_insert_with(|| format!("{}/{}", stage.name, i));
        }
    }
    for n in graph.graph.node_indices() {
        ids.entry(n)
            .or_insert_with(|| format!("{}/{}", graph.graph[n].stage, n.index()));
    }
    ids
}

/// A diagnostic pointing at the step, or a plain error when it has no span.
fn step_error(graph: &BuildGraph, node: NodeIndex, message: String, label: &str) -> Error {
    match graph.graph[node].span {
        Some(span) => SourceDiagnostic::at(&graph.sources, span, message, label).into(),
        None => Error::msg(message),
    }
}

fn record_name(opts: &BuildOptions, graph: &BuildGraph, targets: &[NodeIndex]) -> String {
    let names: Vec<&str> = graph
        .targets
        .iter()
        .filter(|t| targets.contains(&t.node))
        .map(|t| t.name.as_str())
        .collect();
    format!("{}#{}", opts.spec_id, names.join(","))
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
    let needs_context = order
        .iter()
        .any(|n| matches!(&graph.graph[*n].op, Op::Copy(c) if c.from == CopyFrom::Context));
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
    let epoch = opts.epoch.to_string();

    for &n in &order {
        let step = &graph.graph[n];
        let id = ids[&n].clone();
        let parent = graph.parent(n).and_then(|p| nodes.get(&p)).map(|p| p.key);
        let mut inputs = Vec::new();
        let mut recorded = StepInputs {
            parent: parent.map(|k| k.hex()),
            ..Default::default()
        };
        let mut items = None;
        match &step.op {
            Op::Base(b) => match &b.base {
                BaseRef::Scratch => {
                    bases.insert(n, None);
                }
                other => match oci::resolve_base(store, other) {
                    Ok(img) => {
                        inputs.push(img.manifest.digest.to_string());
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
                inputs.push(format!("epoch:{epoch}"));
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
                                inputs.push(hex::encode(crate::context::items_digest(&list)));
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
                            Ok(img) => inputs.push(img.manifest.digest.to_string()),
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
            Op::Run(_) | Op::Meta(_) => {}
        }
        let mut missing_source = false;
        for s in graph.sources_of(n) {
            match nodes.get(&s) {
                Some(p) => inputs.push(format!("stage:{}", p.key.hex())),
                None => missing_source = true,
            }
        }
        if missing_source || (graph.parent(n).is_some() && parent.is_none()) {
            // A dependency failed to plan; its error is already reported.
            continue;
        }
        recorded.sources = inputs
            .iter()
            .filter(|i| !i.starts_with("epoch:") && i.len() != 64)
            .cloned()
            .collect();
        recorded.op = blake3::hash(canonical_op(&step.op).to_string().as_bytes())
            .to_hex()
            .to_string();
        let (layer_key, key) = step_keys(&step.op, parent, inputs);

        let layered = matches!(step.op, Op::Copy(_) | Op::Run(_));
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

fn copy_request(c: &CopyOp, hash: bool) -> CopyRequest<'_> {
    CopyRequest {
        sources: &c.sources,
        dest: &c.dest,
        exclude: &c.exclude,
        parents: c.parents,
        hash,
    }
}

fn copy_error(graph: &BuildGraph, n: NodeIndex, e: CopyError) -> Error {
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

/// Names the input that changed since the last build of this step.
fn explain(
    previous: &BuildRecord,
    id: &str,
    now: &StepInputs,
    ids: &HashMap<NodeIndex, String>,
    graph: &BuildGraph,
    n: NodeIndex,
) -> String {
    let Some(old) = previous.steps.get(id) else {
        return "not built before".to_string();
    };
    let old = &old.inputs;
    if old.op != now.op {
        return "the step's definition changed".to_string();
    }
    if old.parent != now.parent {
        let p = graph
            .parent(n)
            .and_then(|p| ids.get(&p))
            .cloned()
            .unwrap_or_default();
        return format!("its parent step {p} changed");
    }
    if old.files != now.files {
        let mut changes = Vec::new();
        for (path, h) in &now.files {
            match old.files.get(path) {
                None => changes.push(format!("added {path}")),
                Some(o) if o != h => changes.push(format!("changed {path}")),
                _ => {}
            }
        }
        for path in old.files.keys() {
            if !now.files.contains_key(path) {
                changes.push(format!("removed {path}"));
            }
        }
        let more = changes.len().saturating_sub(5);
        changes.truncate(5);
        let mut s = format!("context files: {}", changes.join(", "));
        if more > 0 {
            s.push_str(&format!(" (and {more} more)"));
        }
        return s;
    }
    if old.sources != now.sources {
        return "a source stage or image changed".to_string();
    }
    "its layer is no longer in the cache".to_string()
}

/// The result of one node.
#[derive(Clone, Debug)]
struct NodeResult {
    /// Layer blob and diff_id (None: no layer).
    layer: Option<(Descriptor, Digest)>,
}

/// One built target.
#[derive(Clone, Debug, Serialize)]
pub struct BuiltImage {
    pub target: String,
    pub manifest: Descriptor,
    pub config_digest: Digest,
    pub names: Vec<String>,
}

/// What a build did.
pub struct BuildReport {
    pub images: Vec<BuiltImage>,
    pub hits: usize,
    pub misses: usize,
    pub steps: Vec<PlannedStep>,
}

/// Runs the plan: every miss on the pool, at most `jobs` at a time.
pub fn execute(
    store: &Store,
    graph: &BuildGraph,
    plan: Plan,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<BuildReport> {
    progress(Event::Plan {
        steps: plan.steps.len(),
        cached: plan.hits(),
        to_run: plan.misses(),
    });
    let results: Mutex<HashMap<NodeIndex, NodeResult>> = Mutex::new(HashMap::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("strata-step-{i}"))
        .build()
        .map_err(|e| Error::msg(format!("cannot start worker threads: {e}")))?;

    // Dependencies of each planned node, among planned nodes.
    let planned: Vec<NodeIndex> = plan.steps.iter().map(|s| s.node).collect();
    let mut waiting: HashMap<NodeIndex, usize> = HashMap::new();
    let mut dependents: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for &n in &planned {
        let mut deps: Vec<NodeIndex> = graph.sources_of(n);
        deps.extend(graph.parent(n));
        deps.retain(|d| plan.nodes.contains_key(d));
        deps.sort();
        deps.dedup();
        waiting.insert(n, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(n);
        }
    }
    let status: HashMap<NodeIndex, &PlannedStep> = plan.steps.iter().map(|s| (s.node, s)).collect();

    let (tx, rx) = mpsc::channel::<(NodeIndex, Result<NodeResult>)>();
    let mut failures: Vec<Error> = Vec::new();
    let plan_ref = &plan;
    pool.in_place_scope(|scope| {
        let mut ready: Vec<NodeIndex> = planned
            .iter()
            .copied()
            .filter(|n| waiting[n] == 0)
            .collect();
        let mut running = 0usize;
        let mut done = 0usize;
        let total = planned.len();
        loop {
            if failures.is_empty() {
                // Spawn in plan order so `--jobs 1` is deterministic.
                ready.sort_by_key(|n| planned.iter().position(|p| p == n));
                for n in ready.drain(..) {
                    let tx = tx.clone();
                    let step = status[&n];
                    let results = &results;
                    running += 1;
                    scope.spawn(move |_| {
                        let r = run_node(store, graph, plan_ref, step, results, opts, progress);
                        let _ = tx.send((n, r));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((n, r)) = rx.recv() else { break };
            running -= 1;
            done += 1;
            match r {
                Ok(res) => {
                    if let Ok(mut m) = results.lock() {
                        m.insert(n, res);
                    }
                    for d in dependents.get(&n).into_iter().flatten() {
                        if let Some(w) = waiting.get_mut(d) {
                            *w -= 1;
                            if *w == 0 {
                                ready.push(*d);
                            }
                        }
                    }
                }
                Err(e) => failures.push(e),
            }
            if done == total {
                break;
            }
        }
    });
    if !failures.is_empty() {
        return Err(failures.remove(0));
    }
    let results = results
        .into_inner()
        .map_err(|_| Error::msg("internal: a worker panicked"))?;

    let mut images = Vec::new();
    for t in &graph.targets {
        if !plan.targets.contains(&t.node) {
            continue;
        }
        let (config, layers) = assemble(graph, &plan, &results, t, opts)?;
        if let Some(i) = &opts.cache_from {
            // cache_io: imported layers the image needs
            i.fetch(layers.iter().zip(&config.rootfs.diff_ids))?;
        }
        let manifest = oci::write_image(store, &config, &layers)?;
        for name in &t.tags {
            store.set_tag(name, &manifest)?;
        }
        let config_digest = oci::load_image(store, &manifest.digest)?.config_digest;
        images.push(BuiltImage {
            target: t.name.clone(),
            manifest,
            config_digest,
            names: t.tags.clone(),
        });
    }
    store.put_build_record(
        &plan.record_name,
        &serde_json::to_vec(&plan.record).unwrap_or_default(),
    )?;
    share_cache(store, graph, &plan, opts)?;
    Ok(BuildReport {
        hits: plan.hits(),
        misses: plan.misses(),
        images,
        steps: plan.steps,
    })
}

fn created(epoch: u64) -> String {
    rfc3339(epoch)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC), without a date crate.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The config and layers of the image a node's chain produces.
fn assemble(
    graph: &BuildGraph,
    plan: &Plan,
    results: &HashMap<NodeIndex, NodeResult>,
    target: &Target,
    opts: &BuildOptions,
) -> Result<(ImageConfig, Vec<Descriptor>)> {
    let chain = graph.chain(target.node);
    let mut config = ImageConfig::scratch(Some(created(opts.epoch)));
    // An image from scratch has the default PATH, as with BuildKit.
    config.config.env = Some(vec![format!("PATH={}", crate::ir::DEFAULT_PATH)]);
    let mut layers = Vec::new();
    // ONBUILD triggers are for the direct children of an image: a stage
    // drops the OnBuild of its base (image or stage), as Docker does; a
    // Dockerfile frontend has run them at the start of the stage.
    let mut stage: Option<&str> = None;
    for n in chain {
        let step = &graph.graph[n];
        if stage.is_some_and(|s| s != step.stage) {
            config.config.on_build = None;
        }
        stage = Some(&step.stage);
        match &step.op {
            Op::Base(_) => {
                if let Some(Some(img)) = plan.bases.get(&n) {
                    config = img.config.clone();
                    config.created = Some(created(opts.epoch));
                    config.config.on_build = None;
                    layers = img.layers.clone();
                }
            }
            Op::Meta(m) => {
                config.apply(m);
                config.history.push(history(graph, n, opts, true));
            }
            Op::Copy(_) | Op::Run(_) => {
                let r = results.get(&n).ok_or_else(|| {
                    Error::msg(format!("internal: no result for {}", graph.describe(n)))
                })?;
                match &r.layer {
                    Some((desc, diff_id)) => {
                        layers.push(desc.clone());
                        config.rootfs.diff_ids.push(*diff_id);
                        config.history.push(history(graph, n, opts, false));
                    }
                    None => config.history.push(history(graph, n, opts, true)),
                }
            }
        }
    }
    // A target stage without steps of its own ends on its base stage's node.
    if stage.is_some_and(|s| s != target.stage) {
        config.config.on_build = None;
    }
    Ok((config, layers))
}

fn history(graph: &BuildGraph, n: NodeIndex, opts: &BuildOptions, empty: bool) -> History {
    History {
        created: Some(created(opts.epoch)),
        created_by: Some(graph.describe(n)),
        author: None,
        comment: Some("strata".to_string()),
        empty_layer: empty,
    }
}

/// Runs (or reuses) one node.
fn run_node(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    step: &PlannedStep,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<NodeResult> {
    let n = step.node;
    let np = &plan.nodes[&n];
    match step.status {
        Status::Free => {
            return Ok(NodeResult { layer: None });
        }
        Status::Cached => {
            progress(Event::Cached {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
            });
            let rec = np
                .cached
                .as_ref()
                .ok_or_else(|| Error::msg("internal: cached step without a record"))?;
            return Ok(NodeResult {
                layer: layer_of(rec, opts),
            });
        }
        Status::Run => {}
    }
    progress(Event::Started {
        id: step.id.clone(),
        name: step.name.clone(),
        time: now(),
    });
    let start = Instant::now();
    let r = match &graph.graph[n].op {
        Op::Copy(c) => run_copy(store, graph, plan, n, c, results, opts),
        Op::Run(r) => run_run(store, graph, plan, step, r, results, opts, progress),
        _ => Err(Error::msg("internal: nothing to run")),
    };
    match r {
        Ok(rec) => {
            store.put_cache(&np.layer_key, &rec)?;
            progress(Event::Finished {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
                seconds: start.elapsed().as_secs_f64(),
            });
            Ok(NodeResult {
                layer: layer_of(&rec, opts),
            })
        }
        Err(e) => {
            progress(Event::Failed {
                id: step.id.clone(),
                name: step.name.clone(),
                time: now(),
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

fn layer_of(rec: &CacheRecord, opts: &BuildOptions) -> Option<(Descriptor, Digest)> {
    let diff_id = rec.diff_id?;
    let desc = rec.layers.get(opts.compression.name())?.clone();
    Some((desc, diff_id))
}

/// Lines of a step's output: streamed as events, all kept for the store's
/// log, the last ones kept for the error message.
struct StepLog<'a> {
    id: &'a str,
    progress: Progress<'a>,
    pending: [Vec<u8>; 2],
    all: Vec<u8>,
    tail: std::collections::VecDeque<String>,
}

impl StepLog<'_> {
    const TAIL: usize = 20;

    fn push(&mut self, stream: Stream, bytes: &[u8]) {
        let i = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        self.all.extend_from_slice(bytes);
        self.pending[i].extend_from_slice(bytes);
        while let Some(pos) = self.pending[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending[i].drain(..=pos).collect();
            self.emit(i, &line[..line.len() - 1]);
        }
    }

    fn emit(&mut self, i: usize, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if self.tail.len() == Self::TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        (self.progress)(Event::Log {
            id: self.id.to_string(),
            stream: if i == 0 { "stdout" } else { "stderr" },
            line,
            time: now(),
        });
    }

    fn flush(&mut self) {
        for i in 0..2 {
            if !self.pending[i].is_empty() {
                let rest = std::mem::take(&mut self.pending[i]);
                self.emit(i, &rest);
            }
        }
    }
}

/// Runs a RUN step in the sandbox over its parent's layers; its changes
/// become the step's layer.
#[allow(clippy::too_many_arguments)]
fn run_run(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    step: &PlannedStep,
    r: &RunOp,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<CacheRecord> {
    let n = step.node;
    if let Err(why) = sandbox::available() {
        return Err(step_error(
            graph,
            n,
            format!("cannot run this step here: {why}"),
            "this RUN step",
        ));
    }
    let parent = graph
        .parent(n)
        .ok_or_else(|| Error::msg("internal: RUN without a parent"))?;
    let mut lowerdirs = Vec::new();
    for (desc, diff_id) in chain_layers(graph, plan, results, parent)? {
        lowerdirs.push(oci::layer_snapshot(store, &desc, &diff_id)?);
    }
    lowerdirs.reverse(); // overlay wants the top layer first
    let mut mounts = Vec::new();
    let mut hold = MountHold::default();
    let mut env = r.env.clone();
    // Secrets live in a private temp dir outside the store (tmpfs when the
    // host has /dev/shm) for this step only.
    let secret_dir = tempfile::Builder::new()
        .prefix("strata-secrets-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        })
        .map_err(|e| Error::io("creating a secrets directory", e))?;
    for m in &r.mounts {
        if m.kind == MountKind::Secret {
            if let Some(mount) = secret_mount(graph, n, m, opts, secret_dir.path(), &mut env)? {
                mounts.push(mount);
            }
            continue;
        }
        mounts.push(run_mount(
            store, graph, plan, results, n, m, opts, &mut hold,
        )?);
    }
    let work = store.temp_dir()?;
    let upper = work.path().join("upper");
    let ovl_work = work.path().join("work");
    for d in [&upper, &ovl_work] {
        std::fs::create_dir(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let spec = SandboxSpec {
        lowerdirs,
        upperdir: upper.clone(),
        workdir: ovl_work.clone(),
        argv: r.command.argv(),
        env,
        cwd: r.workdir.clone(),
        user: r.user.clone(),
        network: r.network,
        hostname: String::new(),
        mounts,
    };
    let mut log = StepLog {
        id: &step.id,
        progress,
        pending: [Vec::new(), Vec::new()],
        all: Vec::new(),
        tail: Default::default(),
    };
    let result = sandbox::run(&spec, &mut |stream, bytes| log.push(stream, bytes));
    drop(hold);
    log.flush();
    let logs = store.root().join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let _ = std::fs::write(
        logs.join(format!("{}.log", plan.nodes[&n].layer_key.hex())),
        &log.all,
    );
    let code = result.map_err(|e| {
        step_error(
            graph,
            n,
            format!("the sandbox failed: {e}"),
            "this RUN step",
        )
    })?;
    if code != 0 {
        let tail: Vec<String> = log.tail.iter().cloned().collect();
        let d = match graph.graph[n].span {
            Some(span) => SourceDiagnostic::at(
                &graph.sources,
                span,
                format!(
                    "RUN failed with exit code {code}: {}",
                    r.command.argv().join(" ")
                ),
                format!("exit code {code}"),
            ),
            None => return Err(Error::msg(format!("RUN failed with exit code {code}"))),
        };
        let help = if tail.is_empty() {
            "it printed nothing".to_string()
        } else {
            format!(
                "last {} lines of its output:\n{}",
                tail.len(),
                tail.join("\n")
            )
        };
        return Err(d.with_help(help).into());
    }
    // The overlay work dir holds a root-only dir; it is not part of the diff.
    let _ = std::fs::remove_dir_all(&ovl_work);
    let entries = layer::entries_from_dir(&upper, opts.epoch)?;
    if entries.is_empty() {
        return Ok(CacheRecord {
            diff_id: None,
            layers: BTreeMap::new(),
            created_by: graph.describe(n),
            size: 0,
        });
    }
    write_layer_record(store, graph, n, entries, opts)
}

/// A secret mount: the value in a 0400 file bind-mounted read-only at the
/// target (and/or exported as an env variable). A missing secret is an
/// error when `required`, otherwise the mount is left out.
fn secret_mount(
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
struct MountHold {
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
fn run_mount(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    n: NodeIndex,
    m: &Mount,
    opts: &BuildOptions,
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
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
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
            let rel = m.source.clone().unwrap_or_default();
            match inside(&opts.context_dir, &rel) {
                Some(p) => Ok(SandboxMount::Bind {
                    source: p,
                    target: m.target.clone(),
                    readonly: m.readonly,
                }),
                None => Err(fail(format!(
                    "bind mount source `{rel}` is not in the build context"
                ))),
            }
        }
        MountKind::Bind => {
            // A stage's filesystem, unpacked for this step; writes to a
            // read-write bind are thrown away, as in Docker.
            let from = m.from.clone().unwrap_or_default();
            let node = graph
                .stage(&from)
                .map(|s| s.last)
                .ok_or_else(|| fail(format!("unknown stage `{from}` in a bind mount")))?;
            let layers: Vec<Descriptor> = chain_layers(graph, plan, results, node)?
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

/// Writes a layer of `entries` to the store and makes its cache record.
fn write_layer_record(
    store: &Store,
    graph: &BuildGraph,
    n: NodeIndex,
    entries: Vec<Entry>,
    opts: &BuildOptions,
) -> Result<CacheRecord> {
    let dirs = oci::LayerDirs::from_entries(&entries);
    let mut writer = store.blob_writer()?;
    let (stats, _) = layer::write_layer(entries, opts.compression, &mut writer)?;
    let (digest, size) = writer.commit()?;
    oci::save_layer_dirs(store, &stats.diff_id, &dirs)?;
    let mut layers = BTreeMap::new();
    layers.insert(
        opts.compression.name().to_string(),
        Descriptor {
            media_type: opts.compression.media_type().to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        },
    );
    Ok(CacheRecord {
        diff_id: Some(stats.diff_id),
        layers,
        created_by: graph.describe(n),
        size: stats.uncompressed_size,
    })
}

/// The owner `--chown` asks for: numeric ids as written (a lone uid is
/// also the gid, as Docker documents), names looked up in the parent
/// image's /etc/passwd and /etc/group.
fn copy_owner(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    n: NodeIndex,
    c: &CopyOp,
) -> std::result::Result<Option<(u32, u32)>, String> {
    let Some(ch) = &c.chown else { return Ok(None) };
    let uid = ch.user.parse::<u32>().ok();
    let gid = match &ch.group {
        Some(g) => g.parse::<u32>().ok().map(Some),
        None => Some(None),
    };
    if let (Some(uid), Some(gid)) = (uid, gid) {
        return Ok(Some((uid, gid.unwrap_or(uid))));
    }
    // Names: read the parent's /etc/passwd and /etc/group.
    let layers = match graph.parent(n) {
        Some(p) => chain_layers(graph, plan, results, p).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let read = |path: &str| -> std::result::Result<String, String> {
        read_from_layers(store, &layers, path)
            .map_err(|e| e.to_string())
            .map(|o| o.unwrap_or_default())
    };
    let spec = match &ch.group {
        Some(g) => format!("{}:{g}", ch.user),
        None => ch.user.clone(),
    };
    crate::sandbox::resolve_user(&spec, &read("etc/passwd")?, &read("etc/group")?)
        .map(Some)
        .map_err(|e| format!("--chown={spec}: {e}"))
}

/// The content of the regular file at `path` (relative) in the image made
/// of `layers`, looking through each layer's snapshot from the top; a
/// whiteout hides it.
fn read_from_layers(
    store: &Store,
    layers: &[(Descriptor, Digest)],
    path: &str,
) -> Result<Option<String>> {
    use std::os::unix::fs::FileTypeExt;
    for (desc, diff_id) in layers.iter().rev() {
        let dir = oci::layer_snapshot(store, desc, diff_id)?;
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
fn run_copy(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    n: NodeIndex,
    c: &CopyOp,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
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
    let items = match &c.from {
        CopyFrom::Context => np.items.clone().unwrap_or_default(),
        CopyFrom::Stage(_) | CopyFrom::Image(_) => {
            let layers = match &c.from {
                CopyFrom::Image(r) => {
                    oci::resolve_base(
                        store,
                        &BaseRef::Image {
                            reference: r.clone(),
                        },
                    )?
                    .layers
                }
                _ => {
                    let src = graph.sources_of(n).into_iter().next().ok_or_else(|| {
                        Error::msg("internal: copy from a stage without a source edge")
                    })?;
                    chain_layers(graph, plan, results, src)?
                        .into_iter()
                        .map(|(d, _)| d)
                        .collect()
                }
            };
            let dir = store.temp_dir()?;
            oci::unpack_image(store, &layers, dir.path())?;
            let tree = Tree::rootfs(dir.path());
            let items = tree
                .plan_copy(&copy_request(c, false))
                .map_err(|e| copy_error(graph, n, e))?;
            _rootfs = Some(dir);
            items
        }
    };
    let from_context = c.from == CopyFrom::Context;
    let unpack = from_context && c.add.as_ref().is_some_and(|a| a.unpack);
    // Directories the layer must list but does not copy (the destination's
    // parents, and the destination of a directory copy) keep the metadata
    // they already have in the parent image; new ones are 0755, owned by
    // root or the --chown owner. A `link` copy does not look at its parent.
    let lower = match graph.parent(n) {
        Some(p) if !c.link => chain_layers(graph, plan, results, p)?,
        _ => Vec::new(),
    };
    let dest_root = c.dest.trim_matches('/').to_string();
    let mut entries: Vec<Entry> = Vec::new();
    let mut extracted = Vec::new(); // keeps the unpacked archives until written
    for it in items {
        let structural = it.kind == ItemKind::Dir && (it.source.is_empty() || it.dest == dest_root);
        if structural {
            let existing = if lower.is_empty() {
                None
            } else {
                oci::lower_dir(store, &lower, &it.dest)?
            };
            if it.source.is_empty() || existing.is_some() {
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
            for mut e in layer::entries_from_dir(tmp.path(), opts.epoch)? {
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
    let media = match &magic[..n.min(4)] {
        [0x1f, 0x8b, ..] => Compression::Gzip.media_type(),
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd.media_type(),
        _ => Compression::None.media_type(),
    };
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

/// Layers of the image at `node` (its chain's base layers and step layers).
fn chain_layers(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    node: NodeIndex,
) -> Result<Vec<(Descriptor, Digest)>> {
    let layers = chain_layers_known(graph, plan, results, node)?;
    if let Some(i) = &plan.imports {
        i.fetch(layers.iter().map(|(d, id)| (d, id)))?; // cache_io: parents of executed steps
    }
    Ok(layers)
}

fn chain_layers_known(
    graph: &BuildGraph,
    plan: &Plan,
    results: &Mutex<HashMap<NodeIndex, NodeResult>>,
    node: NodeIndex,
) -> Result<Vec<(Descriptor, Digest)>> {
    let results = results
        .lock()
        .map_err(|_| Error::msg("internal: a worker panicked"))?;
    let mut layers = Vec::new();
    for n in graph.chain(node) {
        if let Some(Some(img)) = plan.bases.get(&n) {
            if img.layers.len() != img.config.rootfs.diff_ids.len() {
                return Err(Error::corrupt(
                    format!("image {}", img.manifest.digest),
                    "the config's diff_ids do not match the manifest's layers",
                ));
            }
            layers = img
                .layers
                .iter()
                .cloned()
                .zip(img.config.rootfs.diff_ids.iter().copied())
                .collect();
        }
        if let Some(NodeResult {
            layer: Some((d, diff_id)),
        }) = results.get(&n)
        {
            layers.push((d.clone(), *diff_id));
        }
    }
    Ok(layers)
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
    let kind = match it.kind {
        ItemKind::Dir => EntryKind::Dir,
        ItemKind::File { path, size, .. } => EntryKind::File { source: path, size },
        ItemKind::Symlink { target } => EntryKind::Symlink { target },
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

/// cache_io: writes the imported records now backed by local blobs into
/// the store, then exports every layered step's record to `--cache-to`.
fn share_cache(store: &Store, graph: &BuildGraph, plan: &Plan, opts: &BuildOptions) -> Result<()> {
    if opts.cache_from.is_none() && opts.cache_to.is_empty() {
        return Ok(());
    }
    let finals: std::collections::HashSet<NodeIndex> =
        plan.targets.iter().flat_map(|t| graph.chain(*t)).collect();
    let mut records = Vec::new();
    for s in plan.steps.iter().filter(|s| s.status != Status::Free) {
        let np = &plan.nodes[&s.node];
        let record = match &np.cached {
            Some(r) if s.status == Status::Cached => Some(r.clone()),
            _ => store.get_cache(&np.layer_key)?,
        };
        if let Some(record) = record {
            records.push(crate::cache_io::ExportRecord {
                key: np.layer_key,
                record,
                in_final_image: finals.contains(&s.node),
            });
        }
    }
    if let Some(i) = &opts.cache_from {
        let used: Vec<_> = records.iter().map(|r| (r.key, r.record.clone())).collect();
        i.persist(&used)?;
    }
    for to in &opts.cache_to {
        crate::cache_io::export(store, &records, to, opts.cache_from.as_deref())
            .map_err(|e| Error::msg(format!("--cache-to {}: {e}", to.location)))?;
    }
    Ok(())
}

/// Where a build's images go besides the store.
pub struct Output {
    pub kind: OutputKind,
    pub dest: PathBuf,
}

/// Writes the built images to an output.
pub fn export(store: &Store, report: &BuildReport, output: &Output) -> Result<()> {
    let images: Vec<ExportImage> = report
        .images
        .iter()
        .map(|i| ExportImage {
            manifest: i.manifest.clone(),
            names: i.names.clone(),
        })
        .collect();
    oci::export(store, &images, output.kind, &output.dest)
}

/// The JSON written by `--metadata-file`.
pub fn metadata(report: &BuildReport) -> serde_json::Value {
    let image = |i: &BuiltImage| {
        json!({
            "target": i.target,
            "digest": i.manifest.digest.to_string(),
            "size": i.manifest.size,
            "config": { "digest": i.config_digest.to_string() },
            "names": i.names,
        })
    };
    json!({
        "image": report.images.first().map(image),
        "images": report.images.iter().map(image).collect::<Vec<_>>(),
        "cache": { "hits": report.hits, "misses": report.misses },
        "steps": report.steps,
    })
}

/// Path used to file a spec's build records: its canonical path.
pub fn spec_id(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::MetaOp;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn copy(from: CopyFrom, link: bool) -> Op {
        Op::Copy(CopyOp {
            sources: vec!["src/".into()],
            dest: "/app/".into(),
            from,
            chown: None,
            chmod: Some(0o755),
            link,
            exclude: vec![],
            parents: false,
            add: None,
        })
    }

    // These pin the canonical encoding: if one changes, every user's cache
    // is invalidated, so bump IR_VERSION and update the values on purpose.
    #[test]
    fn key_of_a_meta_step_is_pinned() {
        let (layer, key) = step_keys(&Op::Meta(MetaOp::Workdir("/app".into())), None, vec![]);
        assert_eq!(layer, key);
        assert_eq!(
            key.hex(),
            "df432160ed4b3da58a311715004f49d88e216e293f4130b3d107b8e50df4bb2c"
        );
    }

    #[test]
    fn key_of_a_context_copy_is_pinned() {
        let parent = CacheKey([7; 32]);
        let (_, key) = step_keys(
            &copy(CopyFrom::Context, false),
            Some(parent),
            vec!["epoch:0".into(), "ab".repeat(32)],
        );
        assert_eq!(
            key.hex(),
            "b8209c020a36b5e0d43ecd43914107f8db678b3dd07f80afa5109d9ce7cebdd2"
        );
    }

    #[test]
    fn stage_names_and_spans_do_not_enter_keys() {
        let a = step_keys(&copy(CopyFrom::Stage("build".into()), false), None, vec![]);
        let b = step_keys(
            &copy(CopyFrom::Stage("compile".into()), false),
            None,
            vec![],
        );
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_changes_the_key() {
        let p1 = Some(CacheKey([1; 32]));
        let p2 = Some(CacheKey([2; 32]));
        let base = step_keys(&copy(CopyFrom::Context, false), p1, vec!["x".into()]).1;
        assert_ne!(
            base,
            step_keys(&copy(CopyFrom::Context, false), p2, vec!["x".into()]).1
        );
        assert_ne!(
            base,
            step_keys(&copy(CopyFrom::Context, false), p1, vec!["y".into()]).1
        );
        let mut other = copy(CopyFrom::Context, false);
        if let Op::Copy(c) = &mut other {
            c.chmod = Some(0o700);
        }
        assert_ne!(base, step_keys(&other, p1, vec!["x".into()]).1);
    }

    #[test]
    fn a_link_copy_layer_does_not_depend_on_its_parent() {
        let p1 = Some(CacheKey([1; 32]));
        let p2 = Some(CacheKey([2; 32]));
        let (l1, k1) = step_keys(&copy(CopyFrom::Context, true), p1, vec!["x".into()]);
        let (l2, k2) = step_keys(&copy(CopyFrom::Context, true), p2, vec!["x".into()]);
        assert_eq!(l1, l2, "the layer is reused across parents");
        assert_ne!(k1, k2, "but the chain identity follows the parent");
    }
}

//! The build graph: one IR for every frontend.
//!
//! Nodes are steps (`Base`, `Copy`, `Run`, `Workdir`, `Meta`); edges point from a
//! dependency to the step that needs it. Every node but a `Base` has exactly
//! one `Parent` edge (the filesystem and config it applies to); a step that
//! reads another stage's result (`COPY --from`, a `from` mount) has a
//! `Source` edge from that stage's last node.
//!
//! Invariants:
//! - Fully resolved: build args and env references are expanded by the
//!   frontend; a `Run` carries its complete environment, user, workdir.
//! - No text of the source file is needed to build: spans only serve
//!   diagnostics, and never enter a cache key.
//! - Stage names serve display and `--target`; they never enter a cache key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{Dfs, EdgeRef, NodeIndexable, Reversed};
use serde::{Deserialize, Serialize};

pub mod history;

/// Bumped whenever the meaning of an op or the canonical key encoding changes.
pub const IR_VERSION: u32 = 4;

/// A byte range in one of the graph's source files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub source: usize,
    pub offset: usize,
    pub len: usize,
}

/// A file a frontend read (spec or Dockerfile), kept for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Edge {
    /// The filesystem/config the step applies to.
    Parent,
    /// A stage whose result the step reads.
    Source,
}

/// One step of a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Name of the stage this step belongs to (display only).
    pub stage: String,
    pub op: Op,
    /// Where the step was written.
    pub span: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Base(BaseOp),
    Copy(CopyOp),
    Run(RunOp),
    Workdir(WorkdirOp),
    Meta(MetaOp),
}

/// Where a stage starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseRef {
    /// The empty filesystem.
    Scratch,
    /// An image by name (`busybox:1`): looked up in the local store.
    Image { reference: String },
    /// A local OCI image layout directory, optionally one tag of it.
    OciLayout {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A `docker save` archive.
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseOp {
    pub base: BaseRef,
    /// `os/arch[/variant]`, when the user asked for one.
    pub platform: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyFrom {
    /// The build context.
    Context,
    /// Another stage's result (its last node is linked with a `Source` edge).
    Stage(String),
    /// An image by reference (`COPY --from=alpine:3`).
    Image(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    pub user: String,
    pub group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOp {
    /// Source paths or glob patterns, relative to the context or stage root.
    pub sources: Vec<String>,
    /// Files given as text (a Dockerfile's heredocs), (name, content),
    /// copied after `sources` as if they were files `name` of mode 0644.
    pub contents: Vec<(String, String)>,
    /// Absolute destination (already resolved against the workdir); a
    /// trailing `/` means "into this directory".
    pub dest: String,
    /// The destination as the step wrote it (expanded, maybe relative):
    /// the history shows it, as BuildKit's does.
    pub dest_written: String,
    pub from: CopyFrom,
    pub chown: Option<Chown>,
    /// Permission bits for every copied entry.
    pub chmod: Option<u32>,
    /// The layer does not depend on the parent's content (`COPY --link`).
    pub link: bool,
    /// Patterns excluded from the sources (`COPY --exclude`).
    pub exclude: Vec<String>,
    /// Keep the source's parent directories (`COPY --parents`).
    pub parents: bool,
    /// `ADD` semantics (archive extraction, URLs, checksum).
    pub add: Option<AddOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOptions {
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// Extract local tar archives (Dockerfile default: true).
    pub unpack: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Shell form: run `shell... script`.
    Shell { shell: Vec<String>, script: String },
    /// Exec form: run argv as is.
    Exec(Vec<String>),
}

impl Command {
    /// The argv that runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell { shell, script } => {
                let mut v = shell.clone();
                v.push(script.clone());
                v
            }
            Command::Exec(v) => v.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Default,
    None,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A mount for one RUN step. Fields not meaningful for a kind are `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    pub target: String,
    /// Path in the context or `from` stage (bind, cache), or secret file.
    pub source: Option<String>,
    /// Stage or image the bind/cache is seeded from.
    pub from: Option<String>,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub readonly: bool,
    pub required: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as this environment variable.
    pub env: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOp {
    pub command: Command,
    /// Complete environment of the process, in order (image env, then
    /// build args in scope that are not overridden by env).
    pub env: Vec<(String, String)>,
    /// `user[:group]`; None means the image's user (root when unset).
    pub user: Option<String>,
    /// Absolute working directory.
    pub workdir: String,
    pub network: Network,
    pub mounts: Vec<Mount>,
    /// The build args in scope, in declaration order, each with the value
    /// the step sees (the env's when the env sets the name; empty when
    /// unset): BuildKit's history shows them as `RUN |N K=V ... cmd`.
    pub build_args: Vec<(String, String)>,
}

/// `WORKDIR` of a path other than `/`: sets the config's working directory
/// and, as BuildKit does, writes a layer that creates the directory and
/// its missing parents (0755, owned by `user`); the layer is empty when
/// the directory exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkdirOp {
    /// Absolute path.
    pub path: String,
    /// The image's `USER` at this step (`user[:group]`, names looked up in
    /// the parent image), or root when unset.
    pub user: Option<String>,
}

/// Durations are nanoseconds, as in the Docker image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u32>,
}

/// A change to the image config only: no filesystem change, no layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetaOp {
    /// Set variables (later ones win).
    Env(Vec<(String, String)>),
    /// Absolute path; a config change only (`WORKDIR /`, which has nothing
    /// to create; any other path is an [`Op::Workdir`]).
    Workdir(String),
    User(String),
    Shell(Vec<String>),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    /// `port/proto`, e.g. `8080/tcp`.
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// Dockerfile instructions recorded for images built FROM this one.
    OnBuild(Vec<String>),
    /// The image's `author` (Dockerfile `MAINTAINER`, deprecated).
    Maintainer(String),
    /// A build arg declared in a stage; it changes no config, but is kept
    /// so history and `convert` can show it.
    Arg(Vec<(String, Option<String>)>),
}

/// A stage: a named chain of steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    /// First node of the stage (a `Base`, or the first step of a stage that
    /// starts from another stage; `None` for a stage with no own steps).
    pub first: Option<NodeIndex>,
    /// The node whose result is the stage's image.
    pub last: NodeIndex,
    pub span: Option<Span>,
}

/// An image to produce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Name the user selects it by (`--target`).
    pub name: String,
    pub stage: String,
    pub node: NodeIndex,
    /// `name:tag` references to tag the result with.
    pub tags: Vec<String>,
    /// The platform it is built for, in a build for several (targets of
    /// one name then make one index); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The platforms the spec asks for it (TOML `platforms`, normalized;
    /// empty: the build's). The build session lowers once per platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// The IR. Built by a frontend, then only read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildGraph {
    pub graph: StableDiGraph<Step, Edge>,
    pub stages: Vec<Stage>,
    pub targets: Vec<Target>,
    pub sources: Vec<SourceFile>,
    /// Build args and their final values (after `--build-arg`), for display.
    pub args: BTreeMap<String, String>,
    /// Problems that do not stop the build (e.g. an unused `--build-arg`).
    pub warnings: Vec<String>,
}

impl BuildGraph {
    pub fn add_step(&mut self, step: Step) -> NodeIndex {
        self.graph.add_node(step)
    }

    pub fn add_edge(&mut self, from: NodeIndex, to: NodeIndex, edge: Edge) {
        self.graph.add_edge(from, to, edge);
    }

    pub fn step(&self, n: NodeIndex) -> &Step {
        &self.graph[n]
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The node a step applies to.
    pub fn parent(&self, n: NodeIndex) -> Option<NodeIndex> {
        self.graph
            .edges_directed(n, Direction::Incoming)
            .find(|e| *e.weight() == Edge::Parent)
            .map(|e| e.source())
    }

    /// Stage results a step reads, in edge order.
    pub fn sources_of(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .filter(|e| *e.weight() == Edge::Source)
            .map(|e| e.source())
            .collect();
        v.sort();
        v
    }

    /// The chain from the root to `n` (inclusive), root first.
    pub fn chain(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v = vec![n];
        let mut cur = n;
        while let Some(p) = self.parent(cur) {
            v.push(p);
            cur = p;
        }
        v.reverse();
        v
    }

    /// Every node the given nodes need (themselves included), in a
    /// topological order (dependencies first, ties by node index).
    pub fn needed(&self, roots: &[NodeIndex]) -> Vec<NodeIndex> {
        let rev = Reversed(&self.graph);
        // Indexed by node: a set of 200,000 steps is one bit vector here,
        // not a tree of allocations (issue 9).
        let mut seen = vec![false; self.graph.node_bound()];
        for &r in roots {
            let mut dfs = Dfs::new(rev, r);
            while let Some(n) = dfs.next(rev) {
                seen[n.index()] = true;
            }
        }
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        order.into_iter().filter(|n| seen[n.index()]).collect()
    }

    /// A one-line description of a step, used as history `created_by` and
    /// in progress output. Derived from the op, never from source text.
    pub fn describe(&self, n: NodeIndex) -> String {
        describe_op(&self.graph[n].op)
    }
}

fn quote_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `K="v" L="w"`: each value as a JSON string, into one buffer.
fn kv_list(v: &[(String, String)]) -> String {
    let mut out = Vec::with_capacity(v.iter().map(|(k, val)| k.len() + val.len() + 4).sum());
    for (i, (k, val)) in v.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, val);
    }
    // Keys are strings and serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// See [`BuildGraph::describe`].
pub fn describe_op(op: &Op) -> String {
    match op {
        Op::Base(b) => match &b.base {
            BaseRef::Scratch => "FROM scratch".to_string(),
            BaseRef::Image { reference } => format!("FROM {reference}"),
            BaseRef::OciLayout { path, reference } => {
                format!("FROM oci:{}{}", path.display(), opt_ref(reference))
            }
            BaseRef::OciArchive { path, reference } => {
                format!("FROM oci-archive:{}{}", path.display(), opt_ref(reference))
            }
            BaseRef::DockerArchive { path, reference } => {
                format!(
                    "FROM docker-archive:{}{}",
                    path.display(),
                    opt_ref(reference)
                )
            }
        },
        Op::Copy(c) => {
            let mut s = String::from(if c.add.is_some() { "ADD" } else { "COPY" });
            match &c.from {
                CopyFrom::Context => {}
                CopyFrom::Stage(x) | CopyFrom::Image(x) => s.push_str(&format!(" --from={x}")),
            }
            if let Some(ch) = &c.chown {
                s.push_str(&format!(" --chown={}", ch.user));
                if let Some(g) = &ch.group {
                    s.push_str(&format!(":{g}"));
                }
            }
            if let Some(m) = c.chmod {
                s.push_str(&format!(" --chmod={m:o}"));
            }
            if c.link {
                s.push_str(" --link");
            }
            if c.parents {
                s.push_str(" --parents");
            }
            for e in &c.exclude {
                s.push_str(&format!(" --exclude={e}"));
            }
            for src in &c.sources {
                s.push(' ');
                s.push_str(src);
            }
            for (name, _) in &c.contents {
                s.push_str(&format!(" <<{name}"));
            }
            s.push(' ');
            s.push_str(&c.dest);
            s
        }
        Op::Run(r) => {
            let mut s = String::from("RUN");
            for m in &r.mounts {
                s.push_str(
                    &format!(" --mount=type={:?},target={}", m.kind, m.target).to_lowercase(),
                );
            }
            if r.network != Network::Default {
                s.push_str(&format!(" --network={:?}", r.network).to_lowercase());
            }
            match &r.command {
                Command::Shell { shell, script } => {
                    format!("{s} {} {script}", shell.join(" "))
                }
                Command::Exec(argv) => format!("{s} {}", quote_list(argv)),
            }
        }
        Op::Workdir(w) => format!("WORKDIR {}", w.path),
        Op::Meta(m) => match m {
            MetaOp::Env(v) => format!("ENV {}", kv_list(v)),
            MetaOp::Workdir(w) => format!("WORKDIR {w}"),
            MetaOp::User(u) => format!("USER {u}"),
            MetaOp::Maintainer(m) => format!("MAINTAINER {m}"),
            MetaOp::Shell(v) => format!("SHELL {}", quote_list(v)),
            MetaOp::Cmd(v) => format!("CMD {}", quote_list(v)),
            MetaOp::Entrypoint(v) => format!("ENTRYPOINT {}", quote_list(v)),
            MetaOp::Expose(v) => format!("EXPOSE {}", v.join(" ")),
            MetaOp::Label(v) => format!("LABEL {}", kv_list(v)),
            MetaOp::Volume(v) => format!("VOLUME {}", quote_list(v)),
            MetaOp::StopSignal(s) => format!("STOPSIGNAL {s}"),
            MetaOp::Healthcheck(h) => format!("HEALTHCHECK {}", quote_list(&h.test)),
            MetaOp::OnBuild(v) => format!("ONBUILD {}", v.join("; ")),
            MetaOp::Arg(v) => format!(
                "ARG {}",
                v.iter()
                    .map(|(k, d)| match d {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        },
    }
}

fn opt_ref(r: &Option<String>) -> String {
    r.as_ref().map(|r| format!(":{r}")).unwrap_or_default()
}

/// What a frontend needs to know about a base image while lowering: the
/// config values later steps build on (e.g. `ENV PATH=$PATH:/x`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseInfo {
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub shell: Option<Vec<String>>,
    pub onbuild: Vec<String>,
}

/// The PATH an image built from `scratch` gets, as BuildKit sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl BaseInfo {
    /// What `scratch` provides: no files, and the default PATH.
    pub fn scratch() -> BaseInfo {
        BaseInfo {
            env: vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
            ..BaseInfo::default()
        }
    }
}

/// Looks up base images for a frontend. The build supplies one backed by the
/// store; tests supply a fixed table.
pub trait BaseResolver {
    /// `Err` is a user-facing message (e.g. "image `x` is not in the store").
    /// `platform`: the stage's (`os/arch[/variant]`, normalized), or `None`
    /// for this host's.
    fn resolve(&self, base: &BaseRef, platform: Option<&str>) -> Result<BaseInfo, String>;
}

/// A resolver that knows no images: `scratch` is itself, every other base
/// has an empty config. Useful for `graph` and tests.
pub struct EmptyResolver;

impl BaseResolver for EmptyResolver {
    fn resolve(&self, base: &BaseRef, _platform: Option<&str>) -> Result<BaseInfo, String> {
        Ok(match base {
            BaseRef::Scratch => BaseInfo::scratch(),
            _ => BaseInfo::default(),
        })
    }
}

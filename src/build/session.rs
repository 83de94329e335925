//! A build session, the library entry point the CLI calls:
//! load -> pull -> plan -> execute -> export.
//!
//! Only `pull` touches the network. Loading lowers the spec with a
//! store-only resolver that records the registry bases it could not find;
//! `pull` fetches those (or every registry image, when asked to) and lowers
//! again, so the frontends see the bases' real configs. `graph` and
//! `--dry-run` stop before `pull`.

use std::path::{Path, PathBuf};

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, Result};
use crate::ir::{BaseInfo, BaseRef, BaseResolver, BuildGraph, CopyFrom, Op, Target};
use crate::oci;
use crate::reference::Reference;
use crate::registry::{self, ProgressSink};
use crate::spec::LowerOptions;
use crate::store::{Platform, Store};

use super::assemble::write_targets;
use super::event::{Event, Progress};
use super::exec::run_node;
use super::output::{BuildReport, Output, export, share_cache};
use super::plan::{Plan, plan};
use super::resolve::{StoreResolver, absolutize, is_unpulled, registry_images};
use super::{BuildOptions, schedule, step_error};

/// Which frontend reads a spec file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// A strata spec (`strata.toml`).
    Toml,
    /// A Dockerfile (or Containerfile, or any other name).
    Dockerfile,
}

impl Frontend {
    /// By file name, as BuildKit takes `-f`: `*.toml` is a strata spec,
    /// every other file (`Dockerfile`, `Dockerfile.*`, `*.dockerfile`,
    /// `Containerfile`, any name) a Dockerfile.
    pub fn for_path(path: &Path) -> Frontend {
        let toml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if toml {
            Frontend::Toml
        } else {
            Frontend::Dockerfile
        }
    }
}

/// The files a context is searched for when no `-f` is given, in order.
pub const DEFAULT_SPEC_NAMES: [&str; 3] = ["strata.toml", "Containerfile", "Dockerfile"];

/// The spec of a context without `-f`: the first of [`DEFAULT_SPEC_NAMES`]
/// that exists there, or `None`.
pub fn default_spec(context: &Path) -> Option<PathBuf> {
    DEFAULT_SPEC_NAMES
        .iter()
        .map(|n| context.join(n))
        .find(|p| p.is_file())
}

/// A spec file as read.
#[derive(Clone, Debug)]
pub struct SpecFile {
    pub path: PathBuf,
    pub text: String,
    pub frontend: Frontend,
}

impl SpecFile {
    /// Is it read as a Dockerfile?
    pub fn is_dockerfile(&self) -> bool {
        self.frontend == Frontend::Dockerfile
    }

    /// The directory relative base paths are resolved against.
    fn dir(&self) -> PathBuf {
        std::path::absolute(&self.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// `NAME.dockerignore` next to a Dockerfile `NAME`, when it exists.
    pub fn dockerignore(&self) -> Option<PathBuf> {
        if !self.is_dockerfile() {
            return None;
        }
        let mut name = self.path.file_name()?.to_os_string();
        name.push(".dockerignore");
        let p = self.path.with_file_name(name);
        p.exists().then_some(p)
    }
}

/// One build of one spec against one store.
pub struct Session<'a> {
    store: &'a Store,
    spec: SpecFile,
    lower: LowerOptions,
    graph: BuildGraph,
    unpulled: Vec<String>,
}

impl<'a> Session<'a> {
    /// Parses and lowers the spec, resolving bases from the store only.
    pub fn load(store: &'a Store, spec: SpecFile, lower: LowerOptions) -> Result<Session<'a>> {
        let (graph, unpulled) = lower_spec(store, &spec, &lower)?;
        Ok(Session {
            store,
            spec,
            lower,
            graph,
            unpulled,
        })
    }

    pub fn graph(&self) -> &BuildGraph {
        &self.graph
    }

    pub fn spec(&self) -> &SpecFile {
        &self.spec
    }

    /// Registry bases the store lacked while lowering: their configs (env,
    /// user, workdir) are not known until they are pulled.
    pub fn unpulled(&self) -> &[String] {
        &self.unpulled
    }

    /// Pulls the registry images the graph needs and the store lacks (every
    /// registry image with `always`, so a moved tag is seen), then lowers
    /// again if anything was pulled. Returns how many were pulled.
    pub fn pull(&mut self, always: bool, progress: ProgressSink) -> Result<usize> {
        let refs: Vec<(String, Vec<Option<Platform>>)> = registry_images(&self.graph)
            .into_iter()
            .map(|r| {
                let p = self.platforms_of(&r);
                (r, p)
            })
            .filter(|(r, ps)| {
                always
                    || is_unpulled(self.store, r)
                    || ps.iter().any(|p| !has_platform(self.store, r, p))
            })
            .collect();
        for (r, platforms) in &refs {
            let reference = Reference::parse(r)
                .map_err(|e| self.at_image(r, format!("image reference `{r}`: {e}")))?;
            let had = matches!(self.store.resolve(r), Ok(Some(_)));
            let mut opts =
                registry::Options::from_env(reference.registry.as_deref().unwrap_or("docker.io"));
            // Several platforms: the tag keeps the index, with each image.
            opts.platform = platforms[0].clone();
            opts.also = platforms[1..].iter().flatten().cloned().collect();
            registry::pull(self.store, &reference, &opts, progress).map_err(|e| {
                let message = if had {
                    format!("cannot pull {r} again (--pull): {e}")
                } else {
                    format!(
                        "image {r} is not in the store and pulling it failed: {e}\n\
                         (build it first, `strata pull` it, or `strata load` it from an archive)"
                    )
                };
                self.at_image(r, message)
            })?;
        }
        if !refs.is_empty() {
            let (graph, unpulled) = lower_spec(self.store, &self.spec, &self.lower)?;
            self.graph = graph;
            self.unpulled = unpulled;
        }
        Ok(refs.len())
    }

    /// The platforms image `r` is wanted for, each once: those of the
    /// stages based on it (a stage that names none: the build's; `None`:
    /// this host's, unchecked).
    fn platforms_of(&self, r: &str) -> Vec<Option<Platform>> {
        let mut out: Vec<Option<Platform>> = Vec::new();
        for n in self.graph.graph.node_indices() {
            let Op::Base(b) = &self.graph.graph[n].op else {
                continue;
            };
            if !matches!(&b.base, BaseRef::Image { reference } if reference == r) {
                continue;
            }
            let p = match &b.platform {
                Some(p) => oci::parse_platform(p).ok(),
                None => self.lower.platform.clone(),
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            out.push(self.lower.platform.clone());
        }
        out
    }

    /// An error at the first step naming image `r`.
    fn at_image(&self, r: &str, message: String) -> Error {
        let names = |n: &NodeIndex| match &self.graph.graph[*n].op {
            Op::Base(b) => matches!(&b.base, BaseRef::Image { reference } if reference == r),
            Op::Copy(c) => matches!(&c.from, CopyFrom::Image(x) if x == r),
            _ => false,
        };
        match self.graph.graph.node_indices().find(names) {
            Some(n) => step_error(&self.graph, n, message, "this image"),
            None => Error::msg(message),
        }
    }

    /// The options a build of this spec starts from: its record name and
    /// ignore file (the caller sets the rest).
    pub fn options(&self, context_dir: &Path) -> BuildOptions {
        BuildOptions::new(
            context_dir,
            super::spec_id(&self.spec.path),
            self.spec.dockerignore(),
        )
    }

    /// Every needed step's key and status; nothing runs.
    pub fn plan(&self, opts: &BuildOptions) -> Result<Plan> {
        plan(self.store, &self.graph, opts)
    }

    /// Runs the plan's misses and writes the target images.
    pub fn execute(
        &self,
        plan: Plan,
        opts: &BuildOptions,
        progress: Progress,
    ) -> Result<BuildReport> {
        execute(self.store, &self.graph, plan, opts, progress)
    }

    /// Writes the built images to an output.
    pub fn export(&self, report: &BuildReport, output: &Output) -> Result<()> {
        export(self.store, report, output)
    }
}

/// Whether the store holds image `r` for `platform`: an image of it, or
/// an index whose entry for it has its manifest here (a pull of one
/// platform keeps the whole index). `None` takes any image, and this
/// host's entry of an index.
fn has_platform(store: &Store, r: &str, platform: &Option<Platform>) -> bool {
    match (store.resolve(r), platform) {
        (Ok(Some(d)), _) if crate::store::media_type::is_index(&d.media_type) => {
            let want = platform.clone().unwrap_or_else(oci::host_platform);
            oci::stored_entry(store, r, &d.digest, &want).is_ok()
        }
        (Ok(Some(_)), None) => true,
        (Ok(Some(d)), Some(want)) => oci::load_image(store, &d.digest)
            .is_ok_and(|img| oci::platform_matches(want, &img.platform())),
        _ => false,
    }
}

/// Lowers the spec for its platform, or once per platform of several and
/// merges the graphs (build::platforms). `--platform` decides for every
/// image; without it, each image's `platforms` (TOML) does, and an image
/// that names none is built for this host.
fn lower_spec(
    store: &Store,
    spec: &SpecFile,
    lower: &LowerOptions,
) -> Result<(BuildGraph, Vec<String>)> {
    if lower.platforms.len() > 1 {
        let every = |_: &Target, _: &Platform| true;
        return lower_each(store, spec, lower, &lower.platforms, every);
    }
    let mut one = lower.clone();
    one.platform = lower.platforms.first().cloned().or(one.platform);
    let by_image = lower.platforms.is_empty()
        && !spec.is_dockerfile()
        && crate::spec::names_platforms(&spec.text);
    if !by_image {
        return lower_one(store, spec, &one, false);
    }
    // A first lowering reads (and checks) the selected images' platforms;
    // its bases need not exist for this host's platform.
    let (graph, _) = lower_one(store, spec, &one, true)?;
    if graph.targets.iter().all(|t| t.platforms.is_empty()) {
        return lower_one(store, spec, &one, false);
    }
    let default = one.platform.clone().unwrap_or_else(oci::host_platform);
    let platforms = super::platforms::wanted(&graph.targets, &default);
    let wants = |t: &Target, p: &Platform| super::platforms::of_target(t, &default).contains(p);
    if let [only] = platforms.as_slice() {
        one.platform = Some(only.clone());
        return lower_one(store, spec, &one, false);
    }
    lower_each(store, spec, lower, &platforms, wants)
}

/// Lowers the spec once per platform, each graph with the targets `keep`
/// says are wanted on it, and merges them.
fn lower_each(
    store: &Store,
    spec: &SpecFile,
    lower: &LowerOptions,
    platforms: &[Platform],
    keep: impl Fn(&Target, &Platform) -> bool,
) -> Result<(BuildGraph, Vec<String>)> {
    let mut graphs = Vec::new();
    let mut unpulled: Vec<String> = Vec::new();
    for p in platforms {
        let one = LowerOptions {
            platform: Some(p.clone()),
            platforms: Vec::new(),
            ..lower.clone()
        };
        let (mut g, u) = lower_one(store, spec, &one, false)?;
        g.targets.retain(|t| keep(t, p));
        for r in u {
            if !unpulled.contains(&r) {
                unpulled.push(r);
            }
        }
        graphs.push((p.to_string(), g));
    }
    Ok((super::platforms::merge(graphs)?, unpulled))
}

/// Lowers the spec once. `lenient`: a base that cannot be resolved is
/// taken as empty (for a pass that only reads the images' platforms).
fn lower_one(
    store: &Store,
    spec: &SpecFile,
    lower: &LowerOptions,
    lenient: bool,
) -> Result<(BuildGraph, Vec<String>)> {
    let dir = spec.dir();
    let store_resolver = StoreResolver::new(store, &dir);
    let lenient_resolver = Lenient(&store_resolver);
    let resolver: &dyn BaseResolver = if lenient {
        &lenient_resolver
    } else {
        &store_resolver
    };
    let name = spec.path.display().to_string();
    let loaded = if spec.is_dockerfile() {
        crate::dockerfile::load(&name, &spec.text, lower, resolver)
    } else {
        crate::spec::load(&name, &spec.text, lower, resolver)
    };
    let mut graph = loaded?;
    absolutize(&mut graph, &dir);
    Ok((graph, store_resolver.unpulled()))
}

/// A resolver that takes a base it cannot resolve as an empty image.
struct Lenient<'r>(&'r dyn BaseResolver);

impl BaseResolver for Lenient<'_> {
    fn resolve(
        &self,
        base: &BaseRef,
        platform: Option<&str>,
    ) -> std::result::Result<BaseInfo, String> {
        Ok(self.0.resolve(base, platform).unwrap_or_default())
    }
}

/// Runs the plan: every miss on the pool, at most `jobs` at a time; then
/// assembles and tags the targets, files the build record and shares the
/// cache.
pub fn execute(
    store: &Store,
    graph: &BuildGraph,
    plan: Plan,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<BuildReport> {
    super::emulation::check(graph, &plan)?;
    progress(Event::Plan {
        steps: plan.steps.len(),
        cached: plan.hits(),
        to_run: plan.misses(),
    });
    let order: Vec<NodeIndex> = plan.steps.iter().map(|s| s.node).collect();
    let steps: std::collections::HashMap<NodeIndex, &super::plan::PlannedStep> =
        plan.steps.iter().map(|s| (s.node, s)).collect();
    let deps = |n: NodeIndex| {
        let mut d = graph.sources_of(n);
        d.extend(graph.parent(n));
        d
    };
    // Layers are compressed beside the steps (build::compress).
    let background = super::compress::Background::start(store, opts.compression, opts.jobs);
    if let Some(bg) = &background {
        bg.background()
            .export_only(super::compress::exported_nodes(graph, &plan));
    }
    // Base layers are unpacked into snapshots beside the first steps; a
    // RUN's layer tar is written beside the steps after it
    // (build::pending).
    let tars = super::pending::Tars::new();
    let results = std::thread::scope(|scope| {
        super::layers::prefetch_base_snapshots(scope, store, graph, &plan, opts.jobs);
        tars.start(scope, store, graph, opts, opts.jobs, progress);
        let panicked = |n: NodeIndex, message: String| {
            let what = format!(
                "internal error: the worker building {} panicked: {message}",
                steps[&n].name
            );
            step_error(graph, n, what, "this step")
        };
        let r = schedule::run(opts.jobs, &order, deps, panicked, |n, done| {
            run_node(store, graph, &plan, steps[&n], done, opts, &tars, progress)
        });
        // The scope waits for the layer workers to finish the queue.
        tars.close();
        r
    });
    // Every layer written: the pending snapshots take their names (also
    // after a failure: the finished steps' records name their layers).
    let results = match results {
        Ok(mut r) => tars.settle(store, &mut r).map(|()| r),
        Err(e) => {
            let _ = tars.settle(store, &mut Default::default());
            Err(e)
        }
    };
    let (results, uncompressed) = match (results, &background) {
        (Ok(mut r), Some(bg)) => {
            let needed = super::compress::image_layers(graph, &plan, &r);
            let made = bg.background().finish(&mut r, &needed)?;
            (r, made)
        }
        (Ok(mut r), None) => {
            let needed = super::compress::image_layers(graph, &plan, &r);
            super::compress::compress_deferred(store, opts.compression, &mut r, &needed)?;
            (r, Vec::new())
        }
        (Err(e), bg) => {
            if let Some(bg) = bg {
                let _ = bg
                    .background()
                    .finish(&mut Default::default(), &Default::default());
            }
            return Err(e);
        }
    };
    drop(background);
    super::compress::refile_compressed(store, &plan, &results, opts.compression)?;
    let images = write_targets(store, graph, &plan, &results, opts)?;
    store.put_build_record(&plan.record_name, &plan.record_bytes()?)?;
    share_cache(store, graph, &plan, opts)?;
    Ok(BuildReport {
        hits: plan.hits(),
        misses: plan.misses(),
        images,
        steps: plan.steps,
        uncompressed,
    })
}

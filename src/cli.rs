//! The command line: parses flags, calls the library, renders results.
//!
//! The only module that prints or picks exit codes: 0 success, 1 a build or
//! input error, 2 a usage error (bad flags).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::build::{self, BuildOptions, Event, Output, Status, StoreResolver};
use crate::error::{Error, Result};
use crate::ir::{BuildGraph, Edge};
use crate::layer::Compression;
use crate::oci::OutputKind;
use crate::spec::{self, LowerOptions};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Build container images from strata.toml specs, without a daemon"
)]
struct Cli {
    /// Store directory (an OCI image layout plus caches).
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build images from a spec.
    Build(BuildArgs),
    /// Print the build graph of a spec.
    Graph(GraphArgs),
    /// Print the JSON Schema of strata.toml.
    Schema,
    /// Convert a Dockerfile to a strata.toml.
    Convert(ConvertArgs),
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// The Dockerfile to convert.
    #[arg(default_value = "Dockerfile")]
    dockerfile: PathBuf,
    /// Write the spec here instead of to stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Auto,
    Tty,
    Plain,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// Build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
    /// Spec file (default: CONTEXT/strata.toml).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Name and tag the image (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    tags: Vec<String>,
    /// Build only this image or stage (and what it needs); repeatable.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// Set a build arg (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Steps that may run at the same time (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Print what is cached and what would run, then stop.
    #[arg(long)]
    dry_run: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Also write the images: type=oci|oci-archive|docker,dest=PATH.
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// Write build metadata (digests, cache hits) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Print only the image digest.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Text,
    Dot,
}

#[derive(clap::Args, Debug)]
struct GraphArgs {
    /// Build context directory (where strata.toml is looked for).
    #[arg(default_value = ".")]
    context: PathBuf,
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: GraphFormat,
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match &cli.command {
        Command::Build(args) => cmd_build(&cli, args),
        Command::Graph(args) => cmd_graph(&cli, args),
        Command::Convert(args) => cmd_convert(args),
        Command::Schema => {
            // Byte-identical to the checked-in schema/strata.schema.json.
            let s = serde_json::to_string_pretty(&spec::json_schema()).unwrap_or_default();
            println!("{s}");
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(CliError::Usage(m)) => {
            eprintln!("error: {m}");
            2
        }
        Err(CliError::Failed(e)) => {
            eprintln!("{}", render_error(&e));
            1
        }
    }
}

enum CliError {
    Usage(String),
    Failed(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Failed(e)
    }
}

/// A miette rendering, with colour only on a terminal.
pub fn render_error(e: &Error) -> String {
    let theme = if std::io::stderr().is_terminal() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, e).is_err() {
        out = e.to_string();
    }
    out
}

fn open_store(cli: &Cli) -> Result<Store> {
    let root = cli.root.clone().unwrap_or_else(Store::default_root);
    Store::open(&root)
}

fn parse_build_args(raw: &[String]) -> std::result::Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for a in raw {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                // Docker ignores a bare KEY that is not in the environment.
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(CliError::Usage(format!(
                "--build-arg `{a}`: expected KEY=VALUE"
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn spec_path(context: &Path, file: &Option<PathBuf>) -> PathBuf {
    match file {
        Some(f) => f.clone(),
        None => default_spec(context),
    }
}

/// `CONTEXT/strata.toml`, or `CONTEXT/Dockerfile` when only that exists.
fn default_spec(context: &Path) -> PathBuf {
    let toml = context.join("strata.toml");
    let dockerfile = context.join("Dockerfile");
    if !toml.exists() && dockerfile.exists() {
        dockerfile
    } else {
        toml
    }
}

/// Is the spec a Dockerfile (by its file name)?
fn is_dockerfile(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(crate::dockerfile::is_dockerfile_name)
}

/// The frontend the spec's file name asks for.
fn load_frontend(
    name: &str,
    path: &Path,
    text: &str,
    opts: &LowerOptions,
    resolver: &dyn crate::ir::BaseResolver,
) -> std::result::Result<BuildGraph, crate::error::Diagnostics> {
    if is_dockerfile(path) {
        crate::dockerfile::load(name, text, opts, resolver)
    } else {
        spec::load(name, text, opts, resolver)
    }
}

/// `NAME.dockerignore` next to a Dockerfile `NAME`, when it exists.
fn dockerignore_for(path: &Path) -> Option<PathBuf> {
    if !is_dockerfile(path) {
        return None;
    }
    let mut name = path.file_name()?.to_os_string();
    name.push(".dockerignore");
    let p = path.with_file_name(name);
    p.exists().then_some(p)
}

fn cmd_convert(args: &ConvertArgs) -> std::result::Result<(), CliError> {
    let text = read_spec(&args.dockerfile)?;
    let name = args.dockerfile.display().to_string();
    let (toml, warnings) =
        crate::dockerfile::convert(&name, &text).map_err(|d| CliError::Failed(d.into()))?;
    for w in warnings {
        eprintln!("{}", render_error(&Error::from(w)));
    }
    match &args.output {
        Some(out) => std::fs::write(out, toml)
            .map_err(|e| CliError::Failed(Error::io(format!("writing {}", out.display()), e))),
        None => {
            print!("{toml}");
            Ok(())
        }
    }
}

fn read_spec(path: &Path) -> std::result::Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Usage(format!(
                "no spec at {} (pass -f FILE, or run in a directory with a strata.toml)",
                path.display()
            ))
        } else {
            CliError::Failed(Error::io(format!("reading {}", path.display()), e))
        }
    })
}

fn load_graph(
    store: &Store,
    path: &Path,
    opts: &LowerOptions,
) -> std::result::Result<BuildGraph, CliError> {
    let text = read_spec(path)?;
    let spec_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let resolver = StoreResolver::new(store, &spec_dir);
    let name = path.display().to_string();
    let mut graph = load_frontend(&name, path, &text, opts, &resolver)
        .map_err(|d| CliError::Failed(d.into()))?;
    build::absolutize(&mut graph, &spec_dir);
    Ok(graph)
}

fn parse_output(s: &str) -> std::result::Result<Output, CliError> {
    let mut kind = None;
    let mut dest = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => {
                kind = Some(match t {
                    "oci" => OutputKind::Oci,
                    "oci-archive" => OutputKind::OciArchive,
                    "docker" | "docker-archive" => OutputKind::Docker,
                    other => {
                        return Err(CliError::Usage(format!(
                            "--output type `{other}`: expected oci, oci-archive or docker"
                        )));
                    }
                })
            }
            Some(("dest", d)) => dest = Some(PathBuf::from(d)),
            _ => {
                return Err(CliError::Usage(format!(
                    "--output `{s}`: expected type=oci|oci-archive|docker,dest=PATH"
                )));
            }
        }
    }
    match (kind, dest) {
        (Some(kind), Some(dest)) => Ok(Output { kind, dest }),
        _ => Err(CliError::Usage(format!(
            "--output `{s}`: both type= and dest= are required"
        ))),
    }
}

fn source_date_epoch() -> std::result::Result<u64, CliError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| {
            CliError::Usage(format!(
                "SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"
            ))
        }),
        _ => Ok(0),
    }
}

/// Ctrl-C / SIGTERM: kill every running RUN sandbox (their processes and
/// mounts go with them); the build then fails like any failed step, after
/// finished steps are stored. A second signal ends the process at once.
extern "C" fn on_interrupt(sig: libc::c_int) {
    crate::sandbox::kill_all();
    // SAFETY: resetting a handler is async-signal-safe.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { libc::signal(sig, on_interrupt as *const () as libc::sighandler_t) };
    }
}

fn cmd_build(cli: &Cli, args: &BuildArgs) -> std::result::Result<(), CliError> {
    install_interrupt_handler();
    let outputs = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let build_args = parse_build_args(&args.build_args)?;
    if args.jobs == Some(0) {
        return Err(CliError::Usage("--jobs must be at least 1".into()));
    }
    if !args.context.is_dir() {
        return Err(CliError::Usage(format!(
            "build context {} is not a directory",
            args.context.display()
        )));
    }
    let epoch = source_date_epoch()?;
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let path = spec_path(&args.context, &args.file);
    let graph = load_graph(
        &store,
        &path,
        &LowerOptions {
            build_args,
            targets: args.targets.clone(),
            tags: args.tags.clone(),
        },
    )?;
    let opts = BuildOptions {
        context_dir: args.context.clone(),
        spec_id: build::spec_id(&path),
        no_cache: args.no_cache,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
        epoch,
        ignore_file: dockerignore_for(&path),
    };
    let mode = match args.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    };
    let renderer = Renderer::new(mode);
    for w in &graph.warnings {
        renderer.event(Event::Warning {
            message: w.clone(),
            time: 0.0,
        });
    }
    let plan = build::plan(&store, &graph, &opts)?;
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        for s in &plan.steps {
            let status = match s.status {
                Status::Cached => "CACHED",
                Status::Run => "RUN",
                Status::Free => "-",
            };
            let _ = write!(out, "{status:<7} {:<16} {}", s.id, s.name);
            if let Some(r) = &s.reason {
                let _ = write!(out, "\n        because {r}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{} cached, {} to run", plan.hits(), plan.misses());
        return Ok(());
    }
    let sink = |e: Event| renderer.event(e);
    let report = build::execute(&store, &graph, plan, &opts, &sink);
    renderer.finish();
    let report = report?;
    for o in &outputs {
        build::export(&store, &report, o)?;
    }
    if let Some(f) = &args.metadata_file {
        let text = serde_json::to_string_pretty(&build::metadata(&report)).unwrap_or_default();
        std::fs::write(f, text + "\n")
            .map_err(|e| Error::io(format!("writing {}", f.display()), e))?;
    }
    for img in &report.images {
        if args.quiet {
            println!("{}", img.manifest.digest);
        } else {
            let names = if img.names.is_empty() {
                String::new()
            } else {
                format!(" {}", img.names.join(" "))
            };
            println!("{} {}{}", img.target, img.manifest.digest, names);
        }
    }
    Ok(())
}

fn cmd_graph(cli: &Cli, args: &GraphArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let path = spec_path(&args.context, &args.file);
    let graph = load_graph(
        &store,
        &path,
        &LowerOptions {
            build_args: parse_build_args(&args.build_args)?,
            targets: args.targets.clone(),
            tags: Vec::new(),
        },
    )?;
    let text = match args.format {
        GraphFormat::Text => graph_text(&graph),
        GraphFormat::Dot => graph_dot(&graph),
    };
    print!("{text}");
    Ok(())
}

/// One line a needed node: `index stage: description  <- dependencies`.
pub fn graph_text(graph: &BuildGraph) -> String {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    let mut out = String::new();
    for n in graph.needed(&roots) {
        let step = graph.step(n);
        out.push_str(&format!(
            "{:>3} {}: {}",
            n.index(),
            step.stage,
            graph.describe(n)
        ));
        let mut deps = Vec::new();
        if let Some(p) = graph.parent(n) {
            deps.push(format!("parent {}", p.index()));
        }
        for s in graph.sources_of(n) {
            deps.push(format!("source {}", s.index()));
        }
        if !deps.is_empty() {
            out.push_str(&format!("  <- {}", deps.join(", ")));
        }
        out.push('\n');
    }
    for t in &graph.targets {
        out.push_str(&format!(
            "target {} = {} ({})",
            t.name,
            t.node.index(),
            t.stage
        ));
        if !t.tags.is_empty() {
            out.push_str(&format!(" tags {}", t.tags.join(" ")));
        }
        out.push('\n');
    }
    out
}

/// Graphviz: solid edges are parents, dashed edges sources.
pub fn graph_dot(graph: &BuildGraph) -> String {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    let needed = graph.needed(&roots);
    let mut out =
        String::from("digraph strata {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n");
    for &n in &needed {
        let label = format!("{}: {}", graph.step(n).stage, graph.describe(n));
        out.push_str(&format!(
            "  n{} [label={}];\n",
            n.index(),
            serde_json::to_string(&label).unwrap_or_default()
        ));
    }
    for e in graph.graph.edge_indices() {
        if let Some((a, b)) = graph.graph.edge_endpoints(e)
            && needed.contains(&a)
            && needed.contains(&b)
        {
            let style = if graph.graph[e] == Edge::Source {
                " [style=dashed]"
            } else {
                ""
            };
            out.push_str(&format!("  n{} -> n{}{};\n", a.index(), b.index(), style));
        }
    }
    out.push_str("}\n");
    out
}

/// Renders build events on stderr.
struct Renderer {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Renderer {
    fn new(mode: ProgressMode) -> Self {
        Renderer {
            mode,
            multi: (mode == ProgressMode::Tty).then(MultiProgress::new),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, s: String) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    fn event(&self, e: Event) {
        if self.mode == ProgressMode::Json {
            if let Ok(s) = serde_json::to_string(&e) {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{s}");
            }
            return;
        }
        match e {
            Event::Plan {
                steps,
                cached,
                to_run,
            } => self.line(format!(
                "=> plan: {steps} steps, {cached} cached, {to_run} to run"
            )),
            Event::Started { id, name, .. } => {
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} [{prefix}] {wide_msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(id.clone());
                    bar.set_message(name);
                    bar.enable_steady_tick(Duration::from_millis(100));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(id, bar);
                    }
                } else {
                    self.line(format!("=> [{id}] {name}"));
                }
            }
            Event::Cached { id, name, .. } => self.line(format!("=> [{id}] CACHED {name}")),
            Event::Finished {
                id, name, seconds, ..
            } => {
                self.remove_bar(&id);
                self.line(format!("=> [{id}] DONE {seconds:.2}s {name}"));
            }
            Event::Failed { id, name, .. } => {
                self.remove_bar(&id);
                self.line(format!("=> [{id}] FAILED {name}"));
            }
            Event::Warning { message, .. } => self.line(format!("warning: {message}")),
            Event::Log { id, line, .. } => self.line(format!("   [{id}] {line}")),
        }
    }

    fn remove_bar(&self, id: &str) {
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(id)
        {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut b) = self.bars.lock() {
            for (_, bar) in std::mem::take(&mut *b) {
                bar.finish_and_clear();
            }
        }
    }
}

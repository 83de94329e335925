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
use crate::images;
use crate::ir::{BaseRef, BuildGraph, CopyFrom, Edge, Op};
use crate::layer::Compression;
use crate::oci::OutputKind;
use crate::reference::Reference;
use crate::registry::{self, Outcome, Progress};
use crate::spec::{self, LowerOptions};
use crate::store::Store;

mod login;

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
    /// List images.
    Images(ImagesArgs),
    /// Name an image: `strata tag SRC DST`.
    Tag(TagArgs),
    /// Remove image tags (and the images nothing else names).
    Rmi(RmiArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Show images as JSON (docker image inspect's shape).
    Inspect(InspectArgs),
    /// Remove unused blobs, cache records, snapshots and temporary files.
    Prune(PruneArgs),
    /// Write images to a docker-archive or oci-archive.
    Save(SaveArgs),
    /// Load images from a docker-archive or oci-archive.
    Load(LoadArgs),
    /// Run a command in a container of an image (exit status: the command's).
    Run(RunArgs),
    /// Push an image from the store to a registry.
    Push(PushArgs),
    /// Log in to a registry (credentials go where `docker login` keeps them).
    Login(login::LoginArgs),
    /// Forget a registry's credentials.
    Logout(login::LogoutArgs),
    /// Pull an image from a registry into the store.
    Pull(PullArgs),
    /// Convert a Dockerfile to a strata.toml.
    Convert(ConvertArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NetworkArg {
    Host,
    None,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass yours).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User (name or id, `user[:group]`) inside the container.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Network: the host's, or none (only loopback).
    #[arg(long, value_enum, default_value = "host")]
    network: NetworkArg,
    /// Keep the container's changes as a new image named NAME.
    #[arg(long, value_name = "NAME")]
    commit: Option<String>,
    /// Image name, ID or digest.
    image: String,
    /// Command and arguments (default: the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ImagesArgs {
    /// Also show untagged images (imported bases, untagged build results).
    #[arg(short, long)]
    all: bool,
    /// Show manifest digests.
    #[arg(long)]
    digests: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct TagArgs {
    /// Source image (NAME[:TAG], ID or digest).
    src: String,
    /// New name (NAME[:TAG]).
    dst: String,
}

#[derive(clap::Args, Debug)]
struct RmiArgs {
    /// Remove every tag of an image named by ID, even when it has several.
    #[arg(short, long)]
    force: bool,
    /// Images (NAME[:TAG], ID or digest).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct HistoryArgs {
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show layer IDs.
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

#[derive(clap::Args, Debug)]
struct InspectArgs {
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct PruneArgs {
    /// Also remove every cache record, build record, snapshot, cache mount
    /// and log: only what tagged images need survives.
    #[arg(short, long)]
    all: bool,
    /// Remove cache records, oldest first, until the cache uses at most SIZE
    /// (e.g. 500MB, 1GB, 2GiB).
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SaveFormat {
    Docker,
    Oci,
}

#[derive(clap::Args, Debug)]
struct SaveArgs {
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    format: SaveFormat,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// Read from FILE instead of standard input.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print nothing.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct PushArgs {
    /// The image in the store (`name[:tag]`).
    name: String,
    /// Where to push it (`host[:port]/repo[:tag]`); default: NAME.
    dest: Option<String>,
    /// Use plain HTTP (no TLS) for this registry.
    #[arg(long)]
    insecure: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,
    /// Bytes per upload chunk.
    #[arg(long, hide = true, value_name = "BYTES")]
    chunk_size: Option<usize>,
}

#[derive(clap::Args, Debug)]
struct PullArgs {
    /// The image (`host[:port]/repo[:tag|@digest]`).
    reference: String,
    /// Use plain HTTP (no TLS) for this registry.
    #[arg(long)]
    insecure: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,
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
    /// A secret for RUN steps: `id=ID,src=FILE` or `id=ID,env=VAR` (`id=ID`
    /// alone reads the variable ID). Never stored in the image or the cache.
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    secrets: Vec<String>,
    /// Pull registry images the spec names again, even when the store has
    /// them (a moved tag then changes the cache keys).
    #[arg(long)]
    pull: bool,
    /// Export the build cache after the build: `type=registry,ref=REF` or
    /// `type=local,dest=DIR[,tag=TAG]`, with `,mode=min` for the final
    /// images' layers only (default `max`: every step); repeatable.
    #[arg(long = "cache-to", value_name = "type=TYPE,...")]
    cache_to: Vec<String>,
    /// Use a shared build cache: `type=registry,ref=REF`,
    /// `type=local,src=DIR[,tag=TAG]` or a plain REF; repeatable. Layers are
    /// downloaded only when needed.
    #[arg(long = "cache-from", value_name = "type=TYPE,...")]
    cache_from: Vec<String>,
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
        Command::Push(args) => cmd_push(&cli, args),
        Command::Login(args) => login::cmd_login(args),
        Command::Logout(args) => login::cmd_logout(args),
        Command::Pull(args) => cmd_pull(&cli, args),
        Command::Convert(args) => cmd_convert(args),
        Command::Schema => {
            // Byte-identical to the checked-in schema/strata.schema.json.
            let s = serde_json::to_string_pretty(&spec::json_schema()).unwrap_or_default();
            println!("{s}");
            Ok(())
        }
        Command::Images(args) => cmd_images(&cli, args),
        Command::Tag(args) => cmd_tag(&cli, args),
        Command::Rmi(args) => cmd_rmi(&cli, args),
        Command::History(args) => cmd_history(&cli, args),
        Command::Inspect(args) => cmd_inspect(&cli, args),
        Command::Prune(args) => cmd_prune(&cli, args),
        Command::Save(args) => cmd_save(&cli, args),
        Command::Load(args) => cmd_load(&cli, args),
        Command::Run(args) => cmd_run(&cli, args),
    };
    match result {
        Ok(()) => 0,
        Err(CliError::Exit(code)) => code,
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
    /// End with this status, nothing more to say (`strata run`).
    Exit(i32),
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

fn parse_secrets(
    raw: &[String],
) -> std::result::Result<BTreeMap<String, build::SecretSource>, CliError> {
    let mut out = BTreeMap::new();
    for s in raw {
        let (mut id, mut src) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(build::SecretSource::File(v.into())),
                Some(("env", v)) => src = Some(build::SecretSource::Env(v.to_string())),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(CliError::Usage(format!(
                        "--secret `{s}`: expected id=ID,src=FILE or id=ID,env=VAR"
                    )));
                }
            }
        }
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Err(CliError::Usage(format!("--secret `{s}`: id= is required")));
        };
        let src = src.unwrap_or_else(|| build::SecretSource::Env(id.clone()));
        out.insert(id, src);
    }
    Ok(out)
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
    let secrets = parse_secrets(&args.secrets)?;
    let cache_to = (args.cache_to.iter())
        .map(|s| crate::cache_io::parse_cache_to(s).map_err(CliError::Usage))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let cache_from = (args.cache_from.iter())
        .map(|s| crate::cache_io::parse_cache_from(s).map_err(CliError::Usage))
        .collect::<std::result::Result<Vec<_>, _>>()?;
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
    let lower = LowerOptions {
        build_args,
        targets: args.targets.clone(),
        tags: args.tags.clone(),
    };
    let mut graph = load_graph(&store, &path, &lower)?;
    if args.pull {
        let refs = registry_images(&graph);
        if !refs.is_empty() {
            let view = TransferView::new(progress_mode(args.progress), args.quiet);
            let sink = |p: Progress| view.event(p);
            for r in &refs {
                let reference = parse_reference(r)?;
                let opts =
                    registry::Options::from_env(reference.registry.as_deref().unwrap_or_default());
                let pulled = registry::pull(&store, &reference, &opts, &sink);
                if pulled.is_err() {
                    view.finish();
                }
                pulled?;
            }
            view.finish();
            // Lower again: the frontends read the (maybe new) base configs.
            graph = load_graph(&store, &path, &lower)?;
        }
    }
    let mut opts = BuildOptions {
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
        secrets,
        cache_from: None,
        cache_to,
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
    if !cache_from.is_empty() && !args.no_cache {
        let warn = |message| renderer.event(Event::Warning { message, time: 0.0 });
        let imports = crate::cache_io::Imports::load(&store, &cache_from, &warn);
        opts.cache_from = Some(std::sync::Arc::new(imports));
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

/// The registry references a graph builds on (`from` and copies from images).
fn registry_images(graph: &BuildGraph) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in graph.graph.node_indices() {
        let r = match &graph.graph[n].op {
            Op::Base(b) => match &b.base {
                BaseRef::Image { reference } => reference,
                _ => continue,
            },
            Op::Copy(c) => match &c.from {
                CopyFrom::Image(r) => r,
                _ => continue,
            },
            _ => continue,
        };
        if registry::names_registry(r) && !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
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

fn parse_reference(s: &str) -> std::result::Result<Reference, CliError> {
    Reference::parse(s).map_err(|e| CliError::Usage(format!("`{s}`: {e}")))
}

fn progress_mode(m: ProgressMode) -> ProgressMode {
    match m {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    }
}

fn cmd_push(cli: &Cli, args: &PushArgs) -> std::result::Result<(), CliError> {
    let dest = parse_reference(args.dest.as_deref().unwrap_or(&args.name))?;
    parse_reference(&args.name)?;
    if args.chunk_size == Some(0) {
        return Err(CliError::Usage("--chunk-size must be at least 1".into()));
    }
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let mut opts = registry::Options {
        insecure: args.insecure,
        ..registry::Options::default()
    };
    if let Some(c) = args.chunk_size {
        opts.chunk_size = c;
    }
    let view = TransferView::new(progress_mode(args.progress), args.quiet);
    let sink = |p: Progress| view.event(p);
    let report = registry::push(&store, &args.name, &dest, &opts, &sink);
    view.finish();
    let report = report?;
    let digest = report.digest.map(|d| d.to_string()).unwrap_or_default();
    if args.quiet {
        println!("{digest}");
    } else {
        println!(
            "pushed {} {digest} ({} uploaded, {} already present, {} mounted)",
            dest.normalized(),
            report.uploaded,
            report.existing,
            report.mounted
        );
    }
    Ok(())
}

fn cmd_pull(cli: &Cli, args: &PullArgs) -> std::result::Result<(), CliError> {
    let reference = parse_reference(&args.reference)?;
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let opts = registry::Options {
        insecure: args.insecure,
        ..registry::Options::default()
    };
    let view = TransferView::new(progress_mode(args.progress), args.quiet);
    let sink = |p: Progress| view.event(p);
    let image = registry::pull(&store, &reference, &opts, &sink);
    view.finish();
    let image = image?;
    if args.quiet {
        println!("{}", image.manifest.digest);
    } else {
        println!(
            "pulled {} {} ({})",
            reference.normalized(),
            image.manifest.digest,
            image.platform()
        );
    }
    Ok(())
}

fn short(d: &crate::digest::Digest) -> String {
    let h = d.hex();
    h[..12.min(h.len())].to_string()
}

/// Renders push/pull progress on stderr: bars on a terminal, a line per
/// blob otherwise, JSON lines with `--progress json`.
struct TransferView {
    mode: ProgressMode,
    quiet: bool,
    console: Console,
    bars: Mutex<BTreeMap<crate::digest::Digest, ProgressBar>>,
}

/// Where progress lines go: stderr, or above the bars on a terminal.
struct Console {
    multi: Option<MultiProgress>,
}

impl Console {
    fn new(mode: ProgressMode) -> Self {
        Console {
            multi: (mode == ProgressMode::Tty).then(MultiProgress::new),
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
}

impl TransferView {
    fn new(mode: ProgressMode, quiet: bool) -> Self {
        TransferView {
            mode,
            quiet,
            console: Console::new(mode),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, s: String) {
        self.console.line(s);
    }

    fn event(&self, p: Progress) {
        if self.quiet {
            return;
        }
        if self.mode == ProgressMode::Json {
            let v = match &p {
                Progress::Start { digest, size } => {
                    serde_json::json!({"event": "start", "digest": digest, "size": size})
                }
                Progress::Bytes { .. } => return,
                Progress::Done { digest, outcome } => {
                    serde_json::json!({"event": "done", "digest": digest, "outcome": format!("{outcome:?}")})
                }
                Progress::Manifest {
                    reference,
                    digest,
                    media_type,
                } => serde_json::json!({
                    "event": "manifest", "reference": reference,
                    "digest": digest, "mediaType": media_type
                }),
            };
            eprintln!("{v}");
            return;
        }
        match p {
            Progress::Start { digest, size } => {
                if let Some(m) = &self.console.multi {
                    let bar = m.add(ProgressBar::new(size));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(short(&digest));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(digest, bar);
                    }
                }
            }
            Progress::Bytes { digest, done } => {
                if let Ok(b) = self.bars.lock()
                    && let Some(bar) = b.get(&digest)
                {
                    bar.set_position(done);
                }
            }
            Progress::Done { digest, outcome } => {
                if let Ok(mut b) = self.bars.lock()
                    && let Some(bar) = b.remove(&digest)
                {
                    bar.finish_and_clear();
                    if let Some(m) = &self.console.multi {
                        m.remove(&bar);
                    }
                }
                let what = match outcome {
                    Outcome::Uploaded => "uploaded".to_string(),
                    Outcome::Exists => "already present".to_string(),
                    Outcome::Mounted { from } => format!("mounted from {from}"),
                    Outcome::Downloaded => "downloaded".to_string(),
                    Outcome::Cached => "already in the store".to_string(),
                };
                self.line(format!("=> blob {} {what}", short(&digest)));
            }
            Progress::Manifest {
                reference, digest, ..
            } => self.line(format!("=> manifest {reference} {digest}")),
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

/// Columns padded to their widest cell plus three spaces (docker's table).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cmd_images(cli: &Cli, args: &ImagesArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let rows = images::list(&store, args.all)?;
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id)) {
            println!("{}", images::short_id(&r.id));
        }
        return Ok(());
    }
    let now = images::now_unix();
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE", "SHARED SIZE"]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.repository.clone(), r.tag.clone()];
            if args.digests {
                v.push(r.manifest.to_string());
            }
            v.extend([
                images::short_id(&r.id),
                images::ago(r.created, now),
                images::human_size(r.size),
                images::human_size(r.shared_size),
            ]);
            v
        })
        .collect();
    print!("{}", table(&header, &cells));
    Ok(())
}

fn cmd_tag(cli: &Cli, args: &TagArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    images::tag(&store, &args.src, &args.dst)?;
    Ok(())
}

fn cmd_rmi(cli: &Cli, args: &RmiArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let report = images::rmi(&store, &args.images, args.force)?;
    for t in &report.untagged {
        println!("Untagged: {t}");
    }
    for d in &report.deleted {
        println!("Deleted: {d}");
    }
    for d in report
        .blobs_removed
        .iter()
        .filter(|d| !report.deleted.contains(d))
    {
        println!("Deleted: {d}");
    }
    if report.deferred {
        eprintln!(
            "note: another strata process (a build, push or pull) is using the store; run `strata prune` later to reclaim the blobs"
        );
    }
    Ok(())
}

fn cmd_history(cli: &Cli, args: &HistoryArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let (img, _) = images::resolve(&store, &args.image)?;
    let rows = images::history(&store, &img.image)?;
    let id = |r: &images::HistoryRow| match (&r.layer, args.no_trunc) {
        (Some(d), true) => d.to_string(),
        (Some(d), false) => images::short_id(d),
        (None, _) => "<missing>".to_string(),
    };
    if args.quiet {
        for r in &rows {
            println!("{}", id(r));
        }
        return Ok(());
    }
    let now = images::now_unix();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let by = if args.no_trunc {
                r.created_by.clone()
            } else {
                images::ellipsis(&r.created_by, 45)
            };
            vec![
                id(r),
                images::ago(r.created, now),
                by,
                images::human_size(r.size),
                r.comment.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &cells
        )
    );
    Ok(())
}

fn cmd_run(cli: &Cli, args: &RunArgs) -> std::result::Result<(), CliError> {
    install_interrupt_handler();
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let (img, _) = images::resolve(&store, &args.image)?;
    let outcome = crate::container::run(
        &store,
        &img.image,
        &crate::container::RunOptions {
            command: args.command.clone(),
            env: args.env.clone(),
            workdir: args.workdir.clone(),
            user: args.user.clone(),
            network: match args.network {
                NetworkArg::Host => crate::ir::Network::Host,
                NetworkArg::None => crate::ir::Network::None,
            },
            commit: args.commit.clone(),
        },
    )?;
    if let (Some(m), Some(name)) = (&outcome.committed, &args.commit) {
        eprintln!("committed {name} {}", m.digest);
    }
    match outcome.exit_code {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

fn cmd_inspect(cli: &Cli, args: &InspectArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let all = images::stored_images(&store)?;
    let mut docs = Vec::new();
    for name in &args.images {
        let (img, _) = images::resolve(&store, name)?;
        docs.push(images::inspect(&store, &img, &all)?);
    }
    let text = serde_json::to_string_pretty(&docs)
        .map_err(|e| Error::msg(format!("encoding JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn cmd_prune(cli: &Cli, args: &PruneArgs) -> std::result::Result<(), CliError> {
    let keep_storage = match &args.keep_storage {
        Some(s) => Some(
            images::parse_size(s).map_err(|e| CliError::Usage(format!("--keep-storage {e}")))?,
        ),
        None => None,
    };
    if !args.force && !args.dry_run {
        let what = if args.all {
            "every blob, cache record, snapshot, cache mount and log that tagged images do not need"
        } else {
            "every blob, snapshot and temporary file nothing uses"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let store = open_store(cli)?;
    let lock = match store.try_lock_exclusive()? {
        Some(l) => l,
        None => {
            eprintln!("waiting for running builds, pushes and pulls to finish...");
            store.lock_exclusive()?
        }
    };
    let report = images::prune(
        &store,
        &lock,
        &images::PruneOptions {
            all: args.all,
            keep_storage,
            dry_run: args.dry_run,
        },
    )?;
    drop(lock);
    let verb = if args.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    for c in &report.classes {
        println!(
            "{verb} {} {}: {}",
            c.items.len(),
            c.name,
            images::human_size(c.bytes())
        );
    }
    let total = images::human_size(report.total());
    if args.dry_run {
        println!("Total reclaimable space: {total}");
    } else {
        println!("Total reclaimed space: {total}");
    }
    Ok(())
}

fn cmd_save(cli: &Cli, args: &SaveArgs) -> std::result::Result<(), CliError> {
    let kind = match args.format {
        SaveFormat::Docker => OutputKind::Docker,
        SaveFormat::Oci => OutputKind::OciArchive,
    };
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    match &args.output {
        Some(f) => images::save(&store, &args.images, kind, f)?,
        None => {
            if std::io::stdout().is_terminal() {
                return Err(CliError::Usage(
                    "refusing to write an archive to a terminal; use -o FILE or redirect".into(),
                ));
            }
            let dir = store.temp_dir()?;
            let f = dir.path().join("archive.tar");
            images::save(&store, &args.images, kind, &f)?;
            let mut src = std::fs::File::open(&f)
                .map_err(|e| Error::io(format!("opening {}", f.display()), e))?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut src, &mut out)
                .and_then(|_| out.flush())
                .map_err(|e| Error::io("writing the archive to standard output", e))?;
        }
    }
    Ok(())
}

fn cmd_load(cli: &Cli, args: &LoadArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let tmp;
    let path = match &args.input {
        Some(p) => p.clone(),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CliError::Usage(
                    "no archive: use -i FILE or pipe one into standard input".into(),
                ));
            }
            tmp = store.temp_dir()?;
            let p = tmp.path().join("archive.tar");
            let mut f = std::fs::File::create(&p)
                .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f)
                .map_err(|e| Error::io("reading the archive from standard input", e))?;
            p
        }
    };
    let (_, loaded) = images::load(&store, &path)?;
    if !args.quiet {
        for l in &loaded {
            if l.names.is_empty() {
                println!("Loaded image ID: {}", l.config_digest);
            }
            for n in &l.names {
                println!("Loaded image: {n}");
            }
        }
    }
    Ok(())
}

/// Renders build events on stderr.
struct Renderer {
    mode: ProgressMode,
    console: Console,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Renderer {
    fn new(mode: ProgressMode) -> Self {
        Renderer {
            mode,
            console: Console::new(mode),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, s: String) {
        self.console.line(s);
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
                if let Some(m) = &self.console.multi {
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
            if let Some(m) = &self.console.multi {
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

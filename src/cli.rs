//! The command line: parses flags, calls the library, renders results.
//!
//! The only module that prints or picks exit codes: 0 success, 1 a build or
//! input error, 2 a usage error (bad flags), 130 interrupted (Ctrl-C or
//! SIGTERM). The container verbs (`run`, `exec`, `start`) end with the
//! command's status, else as Docker's: 125 strata's own failure, 126 the
//! command cannot be executed, 127 it was not found. A closed output pipe
//! ends strata quietly (see `cli/pipe.rs`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

/// `println!` that ends strata quietly on a closed pipe (see `cli::pipe`).
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::pipe::stdout(format_args!($($t)*), true) };
}
/// `print!`, as [`outln!`].
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::pipe::stdout(format_args!($($t)*), false) };
}
/// `eprintln!`, as [`outln!`].
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::pipe::stderr(format_args!($($t)*), true) };
}
/// `eprint!`, as [`outln!`].
macro_rules! err {
    ($($t:tt)*) => { $crate::cli::pipe::stderr(format_args!($($t)*), false) };
}

use crate::error::{Error, Result};
use crate::images;
use crate::reference::Reference;
use crate::registry::{self, Progress};
use crate::spec;
use crate::store::Store;

mod build;
mod container;
mod login;
mod pipe;
mod progress;
mod table;

pub use container::stays_outside_userns;

use crate::oci::OutputKind;

use build::{cmd_build, cmd_graph, install_interrupt_handler};
use progress::{TransferView, progress_mode};
use table::table;

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
    Build(Box<BuildArgs>),
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
    /// Run a command in a new container of an image (exit status: the command's).
    Run(container::RunArgs),
    /// List containers.
    Ps(container::PsArgs),
    /// Print a container's output.
    Logs(container::LogsArgs),
    /// Stop running containers (SIGTERM, then SIGKILL).
    Stop(container::StopArgs),
    /// Send a signal to running containers.
    Kill(container::KillArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Run a command in a running container.
    Exec(container::ExecArgs),
    /// Start stopped containers again.
    Start(container::StartArgs),
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
    /// Docker's grouped image verbs: `strata image ls|tag|inspect|...`.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Docker's grouped container verbs: `strata container ls|rm|...`.
    Container {
        #[command(subcommand)]
        command: ContainerCommand,
    },
}

/// `strata image VERB`: the same commands as the top-level verbs.
#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// List images (`strata images`).
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Build an image (`strata build`).
    Build(Box<BuildArgs>),
    /// Name an image (`strata tag`).
    Tag(TagArgs),
    /// Show images as JSON (`strata inspect`).
    Inspect(InspectArgs),
    /// Show an image's history (`strata history`).
    History(HistoryArgs),
    /// Push an image (`strata push`).
    Push(PushArgs),
    /// Pull an image (`strata pull`).
    Pull(PullArgs),
    /// Remove images (`strata rmi`).
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Remove what nothing uses (`strata prune`).
    Prune(PruneArgs),
    /// Write images to an archive (`strata save`).
    Save(SaveArgs),
    /// Load images from an archive (`strata load`).
    Load(LoadArgs),
}

/// `strata container VERB`: the same commands as the top-level verbs.
#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// List containers (`strata ps`).
    #[command(visible_aliases = ["list", "ps"])]
    Ls(container::PsArgs),
    /// Run a new container (`strata run`).
    Run(container::RunArgs),
    /// Print a container's output (`strata logs`).
    Logs(container::LogsArgs),
    /// Stop containers (`strata stop`).
    Stop(container::StopArgs),
    /// Signal containers (`strata kill`).
    Kill(container::KillArgs),
    /// Remove containers (`strata rm`).
    #[command(visible_alias = "remove")]
    Rm(container::RmArgs),
    /// Run a command in a running container (`strata exec`).
    Exec(container::ExecArgs),
    /// Start stopped containers (`strata start`).
    Start(container::StartArgs),
    /// Remove every stopped container.
    Prune(container::ContainerPruneArgs),
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
    /// The platform to pull from a multi-platform image (default: this
    /// machine's), e.g. `linux/arm64`.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform_arg)]
    platform: Option<crate::store::Platform>,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_platform_arg(s: &str) -> std::result::Result<crate::store::Platform, String> {
    crate::oci::parse_platform(s)
}

/// `--platform A,B`: the platforms, in order.
#[derive(Clone, Debug)]
struct PlatformList(Vec<crate::store::Platform>);

/// Comma-separated platforms, each once.
fn parse_platforms_arg(s: &str) -> std::result::Result<PlatformList, String> {
    let mut out: Vec<crate::store::Platform> = Vec::new();
    for p in s.split(',') {
        let p = crate::oci::parse_platform(p)?;
        if out.contains(&p) {
            return Err(format!("{p} is named twice"));
        }
        out.push(p);
    }
    Ok(PlatformList(out))
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// The Dockerfile to convert.
    #[arg(default_value = "Dockerfile")]
    dockerfile: PathBuf,
    /// Write the spec here instead of to stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Tags of the image (the last stage), written to its `[image.NAME]` table.
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    tags: Vec<String>,
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

/// `--frontend`: how to read the spec file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FrontendArg {
    /// A strata spec.
    Toml,
    /// A Dockerfile.
    Dockerfile,
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// Build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
    /// Spec file: `*.toml` is a strata spec, any other file a Dockerfile
    /// (default: the context's strata.toml, Containerfile or Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Read the spec file as this, whatever its name.
    #[arg(long, value_enum, value_name = "toml|dockerfile")]
    frontend: Option<FrontendArg>,
    /// Name and tag the image (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    tags: Vec<String>,
    /// Build only this image or stage (and what it needs); repeatable.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// Set a build arg (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Build for these platforms (default: each image's `platforms` in a
    /// TOML spec, else this machine's; this overrides them), e.g.
    /// `linux/arm64` or `linux/amd64,linux/arm64` (an index of both); RUN
    /// steps of another architecture run through qemu-user (binfmt_misc).
    #[arg(long, value_name = "OS/ARCH[,...]", value_parser = parse_platforms_arg)]
    platform: Option<PlatformList>,
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
    /// Print only the image ID (the config digest, as `images` and
    /// `inspect` show it), one line per image, as `docker build -q` does.
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
    /// Read the spec file as this, whatever its name.
    #[arg(long, value_enum, value_name = "toml|dockerfile")]
    frontend: Option<FrontendArg>,
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    #[arg(long, value_name = "OS/ARCH[,...]", value_parser = parse_platforms_arg)]
    platform: Option<PlatformList>,
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
            outln!("{s}");
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
        Command::Run(args) => container::cmd_run(&cli, args),
        Command::Ps(args) => container::cmd_ps(&cli, args),
        Command::Logs(args) => container::cmd_logs(&cli, args),
        Command::Stop(args) => container::cmd_stop(&cli, args),
        Command::Kill(args) => container::cmd_kill(&cli, args),
        Command::Rm(args) => container::cmd_rm(&cli, args),
        Command::Exec(args) => container::cmd_exec(&cli, args),
        Command::Start(args) => container::cmd_start(&cli, args),
        Command::Image { command } => match command {
            ImageCommand::Ls(args) => cmd_images(&cli, args),
            ImageCommand::Build(args) => cmd_build(&cli, args),
            ImageCommand::Tag(args) => cmd_tag(&cli, args),
            ImageCommand::Inspect(args) => cmd_inspect(&cli, args),
            ImageCommand::History(args) => cmd_history(&cli, args),
            ImageCommand::Push(args) => cmd_push(&cli, args),
            ImageCommand::Pull(args) => cmd_pull(&cli, args),
            ImageCommand::Rm(args) => cmd_rmi(&cli, args),
            ImageCommand::Prune(args) => cmd_prune(&cli, args),
            ImageCommand::Save(args) => cmd_save(&cli, args),
            ImageCommand::Load(args) => cmd_load(&cli, args),
        },
        Command::Container { command } => match command {
            ContainerCommand::Ls(args) => container::cmd_ps(&cli, args),
            ContainerCommand::Run(args) => container::cmd_run(&cli, args),
            ContainerCommand::Logs(args) => container::cmd_logs(&cli, args),
            ContainerCommand::Stop(args) => container::cmd_stop(&cli, args),
            ContainerCommand::Kill(args) => container::cmd_kill(&cli, args),
            ContainerCommand::Rm(args) => container::cmd_rm(&cli, args),
            ContainerCommand::Exec(args) => container::cmd_exec(&cli, args),
            ContainerCommand::Start(args) => container::cmd_start(&cli, args),
            ContainerCommand::Prune(args) => container::cmd_container_prune(&cli, args),
        },
    };
    match result {
        Ok(()) => 0,
        Err(CliError::Exit(code)) if !build::interrupted() => code,
        Err(CliError::Exit(_)) => {
            errln!("interrupted");
            130
        }
        Err(CliError::Usage(m)) => {
            errln!("error: {m}");
            2
        }
        Err(CliError::Failed(_)) if build::interrupted() => {
            errln!("interrupted");
            130
        }
        Err(CliError::Failed(e)) => {
            errln!("{}", render_error(&e));
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
    let render = |d: &dyn miette::Diagnostic| {
        let mut out = String::new();
        if handler.render_report(&mut out, d).is_err() {
            out = d.to_string();
        }
        out
    };
    // Each problem of a file with its own header, not under a summary
    // header (miette would print `× FILE: N errors`, then `Error:` each).
    match e {
        Error::Diagnostics(d) if !d.errors.is_empty() => {
            let mut out: String = d
                .errors
                .iter()
                .map(|x| render(x))
                .collect::<Vec<_>>()
                .join("\n");
            if d.errors.len() > 1 {
                out.push_str(&d.summary);
                out.push('\n');
            }
            out
        }
        _ => render(e),
    }
}

fn open_store(cli: &Cli) -> Result<Store> {
    let root = cli.root.clone().unwrap_or_else(Store::default_root);
    Store::open(&root)
}

fn cmd_convert(args: &ConvertArgs) -> std::result::Result<(), CliError> {
    let text = read_spec(&args.dockerfile)?;
    let name = args.dockerfile.display().to_string();
    let opts = crate::frontend::dockerfile::ConvertOptions {
        tags: args.tags.clone(),
    };
    let (toml, warnings) = crate::frontend::dockerfile::convert_with(&name, &text, &opts)
        .map_err(|d| CliError::Failed(d.into()))?;
    for w in warnings {
        errln!("{}", render_error(&Error::from(w)));
    }
    match &args.output {
        Some(out) => std::fs::write(out, toml)
            .map_err(|e| CliError::Failed(Error::io(format!("writing {}", out.display()), e))),
        None => {
            out!("{toml}");
            Ok(())
        }
    }
}

fn read_spec(path: &Path) -> std::result::Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Usage(format!(
                "no spec at {} (pass -f FILE, or run in a directory with a strata.toml, \
                 Containerfile or Dockerfile)",
                path.display()
            ))
        } else {
            CliError::Failed(Error::io(format!("reading {}", path.display()), e))
        }
    })
}

fn parse_reference(s: &str) -> std::result::Result<Reference, CliError> {
    Reference::parse(s).map_err(|e| CliError::Usage(format!("`{s}`: {e}")))
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
        outln!("{digest}");
    } else {
        outln!(
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
        platform: args.platform.clone(),
        ..registry::Options::default()
    };
    let view = TransferView::new(progress_mode(args.progress), args.quiet);
    let sink = |p: Progress| view.event(p);
    let image = registry::pull(&store, &reference, &opts, &sink);
    view.finish();
    let image = image?;
    if args.quiet {
        outln!("{}", image.manifest.digest);
    } else {
        outln!(
            "pulled {} {} ({})",
            reference.normalized(),
            image.manifest.digest,
            image.platform()
        );
    }
    Ok(())
}

fn cmd_images(cli: &Cli, args: &ImagesArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let rows = images::list(&store, args.all)?;
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id)) {
            outln!("{}", images::short_id(&r.id));
        }
        return Ok(());
    }
    let now = images::now_unix();
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "PLATFORM"]);
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
                r.platforms.join(","),
            ]);
            v
        })
        .collect();
    out!("{}", table(&header, &cells));
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
        outln!("Untagged: {t}");
    }
    for d in &report.deleted {
        outln!("Deleted: {d}");
    }
    for d in report
        .blobs_removed
        .iter()
        .filter(|d| !report.deleted.contains(d))
    {
        outln!("Deleted: {d}");
    }
    if report.deferred {
        errln!(
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
            outln!("{}", id(r));
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
    out!(
        "{}",
        table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &cells
        )
    );
    Ok(())
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
    outln!("{text}");
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
        err!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
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
            errln!("waiting for running builds, pushes and pulls to finish...");
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
        outln!(
            "{verb} {} {}: {}",
            c.items.len(),
            c.name,
            images::human_size(c.bytes())
        );
    }
    let total = images::human_size(report.total());
    if args.dry_run {
        outln!("Total reclaimable space: {total}");
    } else {
        outln!("Total reclaimed space: {total}");
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
                .map_err(|e| {
                    pipe::check(&e);
                    Error::io("writing the archive to standard output", e)
                })?;
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
                outln!("Loaded image ID: {}", l.config_digest);
            }
            for n in &l.names {
                outln!("Loaded image: {n}");
            }
        }
    }
    Ok(())
}

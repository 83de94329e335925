//! `strata build` and `strata graph`: flags -> a build session -> output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::build::{
    DEFAULT_SPEC_NAMES, Event, Frontend, Output, Session, SpecFile, Status, default_spec,
};
use crate::error::Error;
use crate::layer::Compression;
use crate::oci::OutputKind;
use crate::registry::Progress;
use crate::spec::LowerOptions;
use crate::store::Store;

use super::progress::{Renderer, TransferView, progress_mode};
use super::table::{write_graph_dot, write_graph_text};
use super::{
    BuildArgs, Cli, CliError, CompressionArg, FrontendArg, GraphArgs, GraphFormat, open_store,
    read_spec,
};

pub(super) fn parse_build_args(
    raw: &[String],
) -> std::result::Result<BTreeMap<String, String>, CliError> {
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

/// The spec file and its frontend: `-f FILE` (by its name, or as
/// `--frontend` says), else the first of strata.toml, Containerfile and
/// Dockerfile in the context.
fn spec_path(
    context: &Path,
    file: &Option<PathBuf>,
    frontend: Option<FrontendArg>,
) -> std::result::Result<(PathBuf, Frontend), CliError> {
    let path = match file {
        Some(f) => f.clone(),
        None => default_spec(context).ok_or_else(|| {
            CliError::Usage(format!(
                "no spec in {}: looked for {} (pass -f FILE)",
                context.display(),
                DEFAULT_SPEC_NAMES.join(", ")
            ))
        })?,
    };
    let frontend = match frontend {
        Some(FrontendArg::Toml) => Frontend::Toml,
        Some(FrontendArg::Dockerfile) => Frontend::Dockerfile,
        None => Frontend::for_path(&path),
    };
    Ok((path, frontend))
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
) -> std::result::Result<BTreeMap<String, crate::build::SecretSource>, CliError> {
    let mut out = BTreeMap::new();
    for s in raw {
        let (mut id, mut src) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => {
                    src = Some(crate::build::SecretSource::File(v.into()))
                }
                Some(("env", v)) => src = Some(crate::build::SecretSource::Env(v.to_string())),
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
        let src = src.unwrap_or_else(|| crate::build::SecretSource::Env(id.clone()));
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
pub(super) extern "C" fn on_interrupt(sig: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    crate::sandbox::kill_all();
    // SAFETY: resetting a handler is async-signal-safe.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Set by the first Ctrl-C / SIGTERM: the command then ends with
/// "interrupted" and status 130, whatever failed because of it.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

pub(super) fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { libc::signal(sig, on_interrupt as *const () as libc::sighandler_t) };
    }
}

fn compression(c: CompressionArg) -> Compression {
    match c {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
        CompressionArg::None => Compression::None,
    }
}

/// Reads the spec and lowers it (bases from the store only).
fn load_session<'a>(
    store: &'a Store,
    (path, frontend): (PathBuf, Frontend),
    lower: LowerOptions,
) -> std::result::Result<Session<'a>, CliError> {
    let spec = SpecFile {
        text: read_spec(&path)?,
        path,
        frontend,
    };
    Ok(Session::load(store, spec, lower)?)
}

pub(super) fn cmd_build(cli: &Cli, args: &BuildArgs) -> std::result::Result<(), CliError> {
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
    let lock = store.lock_shared()?;
    let path = spec_path(&args.context, &args.file, args.frontend)?;
    let lower = LowerOptions {
        build_args,
        targets: args.targets.clone(),
        tags: args.tags.clone(),
        platform: None,
        platforms: args.platform.clone().map(|p| p.0).unwrap_or_default(),
    };
    let mut session = load_session(&store, path, lower)?;
    // --dry-run never touches the network: an unpulled base fails to plan.
    if !args.dry_run {
        let view = TransferView::new(progress_mode(args.progress), args.quiet);
        let sink = |p: Progress| view.event(p);
        let pulled = session.pull(args.pull, &sink);
        view.finish();
        pulled?;
    }
    let mut opts = session.options(&args.context);
    opts.no_cache = args.no_cache;
    if let Some(j) = args.jobs {
        opts.jobs = j;
    }
    opts.compression = compression(args.compression);
    opts.epoch = epoch;
    opts.secrets = secrets;
    opts.cache_to = cache_to;
    let renderer = Renderer::new(progress_mode(args.progress));
    // -q: only the image ID, on stdout; errors still go to stderr.
    let show = |e: Event| {
        if !args.quiet {
            renderer.event(e)
        }
    };
    for w in &session.graph().warnings {
        show(Event::Warning {
            message: w.clone(),
            time: 0.0,
        });
    }
    if !cache_from.is_empty() && !args.no_cache {
        let warn = |message| show(Event::Warning { message, time: 0.0 });
        let imports = crate::cache_io::Imports::load(&store, &cache_from, &warn);
        opts.cache_from = Some(std::sync::Arc::new(imports));
    }
    let plan = session.plan(&opts)?;
    if args.dry_run {
        print_plan(&plan);
        return Ok(());
    }
    let sink = |e: Event| show(e);
    let report = session.execute(plan, &opts, &sink);
    renderer.finish();
    let report = report?;
    for o in &outputs {
        session.export(&report, o)?;
    }
    if let Some(f) = &args.metadata_file {
        let text =
            serde_json::to_string_pretty(&crate::build::metadata(&report)).unwrap_or_default();
        std::fs::write(f, text + "\n")
            .map_err(|e| Error::io(format!("writing {}", f.display()), e))?;
    }
    for img in &report.images {
        if args.quiet {
            outln!("{}", img.config_digest);
        } else if img.names.is_empty() {
            outln!(
                "built {} (untagged) {}",
                target_label(&img.target),
                img.manifest.digest
            );
        } else {
            outln!("built {} {}", img.names.join(", "), img.manifest.digest);
        }
    }
    // Its uncompressed layer blobs go if no other build holds the store
    // now (which needs this one's lock released) and nothing names them.
    drop(lock);
    crate::build::remove_uncompressed(&store, &report.uncompressed);
    Ok(())
}

/// A build target as a person reads it: Dockerfile stages without a name
/// are numbered (`stage 0`), named targets keep their name.
fn target_label(target: &str) -> String {
    if target.bytes().all(|b| b.is_ascii_digit()) {
        format!("stage {target}")
    } else {
        target.to_string()
    }
}

/// `--dry-run`: what is cached, what would run and why.
fn print_plan(plan: &crate::build::Plan) {
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
}

pub(super) fn cmd_graph(cli: &Cli, args: &GraphArgs) -> std::result::Result<(), CliError> {
    let store = open_store(cli)?;
    let path = spec_path(&args.context, &args.file, args.frontend)?;
    let lower = LowerOptions {
        build_args: parse_build_args(&args.build_args)?,
        targets: args.targets.clone(),
        tags: Vec::new(),
        platform: None,
        platforms: args.platform.clone().map(|p| p.0).unwrap_or_default(),
    };
    // Never touches the network: an unpulled base is shown with its
    // config unknown, and said so.
    let session = load_session(&store, path, lower)?;
    for r in session.unpulled() {
        errln!(
            "warning: {r} is not in the store, so its config (env, user, workdir) is not known here; `strata pull {r}` fetches it"
        );
    }
    // Buffered, written as it is made (see `write_graph_text`); a closed
    // pipe ends strata quietly, as every print does (`pipe`).
    let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = match args.format {
        GraphFormat::Text => write_graph_text(session.graph(), &mut w),
        GraphFormat::Dot => write_graph_dot(session.graph(), &mut w),
    }
    .and_then(|()| w.flush());
    if let Err(e) = written {
        super::pipe::check(&e);
    }
    // The process ends right after this: freeing a graph of 200,000 steps
    // one allocation at a time took 7-10% of `strata graph` (issue 9), and
    // the kernel takes the memory back at once. The session holds only
    // memory (its store is borrowed; no files, locks or temp dirs).
    std::mem::forget(session);
    Ok(())
}

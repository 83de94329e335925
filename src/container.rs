//! Containers: `strata run` and the verbs around it (`ps`, `logs`,
//! `stop`, `kill`, `rm`, `exec`, `start`). The image's layers (unpacked
//! once each into snapshots) are the read-only lower layers; each
//! container has its own overlayfs upper layer, its copy-on-write layer,
//! kept in its state directory (`container/state.rs`) until `rm` (or at
//! once with `--rm`). `commit` turns it into a new image layer on top of
//! the image.
//!
//! No daemon: a foreground `run` supervises its container itself; `-d`
//! forks a supervisor (`container/supervise.rs`) that waits for the command
//! and records how it ended. `exec` enters a running container's
//! namespaces with `nsenter(1)` (`container/exec.rs`).
//!
//! Invariant: the image itself is never modified; `commit` writes a new
//! manifest and config and moves only the named tag.

mod exec;
mod signals;
mod state;
mod supervise;
mod tty;

use std::io::Write;
use std::os::fd::OwnedFd;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::Network;
use crate::layer::{self, Compression};
use crate::oci::{self, History, Image};
use crate::sandbox::{self, SandboxMount, SandboxSpec, Stream};
use crate::store::{Descriptor, Store};

pub use exec::{ExecOptions, exec};
pub use signals::{PROXIED, forward as forward_signal};
pub use state::{Container, ContainerConfig, ContainerState, Status, Volume, find, list};
pub use supervise::{SUPERVISE_ARG, start_detached, supervise_main};

/// What `strata run` was asked for.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replaces the image's Cmd (Entrypoint still applies).
    pub command: Vec<String>,
    /// Replaces the image's Entrypoint (and drops its Cmd); `Some("")`
    /// clears it.
    pub entrypoint: Option<String>,
    /// `KEY=VALUE` (or `KEY` to pass the caller's value) added to the image's env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network: Network,
    pub volumes: Vec<Volume>,
    /// The container's name (default: `strata-` and the id's start).
    pub name: Option<String>,
    /// Remove the container when its command ends.
    pub auto_remove: bool,
    /// The command reads our stdin (`-i`).
    pub interactive: bool,
    /// The command runs on a new terminal (`-t`) relayed to ours.
    pub tty: bool,
    /// Tag the image made of the container's changes with this name.
    pub commit: Option<String>,
}

/// How a container ended.
pub struct RunOutcome {
    pub exit_code: i32,
    /// The committed image's manifest, with `--commit`.
    pub committed: Option<Descriptor>,
}

/// Docker's exit status for a container that did not run its command: 127
/// when the command was not found, 126 when it exists but cannot be
/// executed, 125 for every other failure (strata's own). Read from the
/// sandbox's exec error, the one place these are told apart.
pub fn failure_status(e: &Error) -> i32 {
    let m = e.to_string();
    let exec = m.contains("sandbox: exec ");
    if m.contains("executable file not found in $PATH")
        || (exec && m.contains("No such file or directory"))
    {
        127
    } else if exec
        && ["Permission denied", "Exec format error", "Is a directory"]
            .iter()
            .any(|w| m.contains(w))
    {
        126
    } else {
        125
    }
}

/// The argv the container runs: Entrypoint + (the given command or Cmd).
pub fn argv(image: &Image, command: &[String]) -> Vec<String> {
    argv_with(image, None, command)
}

/// [`argv`] with `--entrypoint`: it replaces the image's Entrypoint, and
/// the image's Cmd no longer applies (as with Docker).
pub fn argv_with(image: &Image, entrypoint: Option<&str>, command: &[String]) -> Vec<String> {
    let c = &image.config.config;
    let (mut v, cmd) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (
            c.entrypoint.clone().unwrap_or_default(),
            c.cmd.clone().unwrap_or_default(),
        ),
    };
    if command.is_empty() {
        v.extend(cmd);
    } else {
        v.extend(command.iter().cloned());
    }
    v
}

/// The container's environment: the image's, then the `-e` values.
pub fn environment(image: &Image, extra: &[String]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| match env.iter_mut().find(|(x, _)| *x == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in image.config.config.env.iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k.to_string(), v.to_string());
    }
    for kv in extra {
        match kv.split_once('=') {
            Some((k, v)) => set(k.to_string(), v.to_string()),
            None => {
                if let Ok(v) = std::env::var(kv) {
                    set(kv.clone(), v);
                }
            }
        }
    }
    env
}

/// Whether containers can run here. An ordinary user without subordinate
/// ids gets an error naming the fix, never a one-id namespace: with only
/// their own id mapped, every file a base image gives another owner (as
/// Debian's `/etc/shadow`, group 42) would be refused or lose its owner.
pub fn available() -> Result<()> {
    sandbox::available().map_err(|why| {
        let why = match crate::userns::outside_reason() {
            Some(reason) => format!(
                "containers need root or a user namespace, and strata could not make one: \
                 {reason}"
            ),
            None => why,
        };
        Error::msg(format!("cannot run containers here: {why}"))
    })
}

/// Records a new container of `image` (named `image_name` by the user).
pub fn create(
    store: &Store,
    image: &Image,
    image_name: &str,
    opts: &RunOptions,
) -> Result<Container> {
    let argv = argv_with(image, opts.entrypoint.as_deref(), &opts.command);
    if argv.is_empty() {
        return Err(Error::msg(
            "the image has no Cmd or Entrypoint: give a command after the image name",
        ));
    }
    for v in &opts.volumes {
        if !v.host.exists() {
            std::fs::create_dir_all(&v.host)
                .map_err(|e| Error::io(format!("creating {} for -v", v.host.display()), e))?;
        }
    }
    let c = &image.config.config;
    Container::create(
        store,
        ContainerConfig {
            id: String::new(),
            name: opts.name.clone().unwrap_or_default(),
            image: image_name.to_string(),
            manifest: image.manifest.digest.to_string(),
            argv,
            env: environment(image, &opts.env),
            cwd: opts
                .workdir
                .clone()
                .or_else(|| c.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".to_string()),
            user: opts
                .user
                .clone()
                .or_else(|| c.user.clone().filter(|u| !u.is_empty())),
            network: opts.network,
            volumes: opts.volumes.clone(),
            auto_remove: opts.auto_remove,
            interactive: opts.interactive,
            tty: opts.tty,
            created: state::now(),
        },
    )
}

/// The image a container was made of.
pub fn image_of(store: &Store, c: &Container) -> Result<Image> {
    let digest: Digest = c.config.manifest.parse().map_err(|_| {
        Error::corrupt(format!("container {}", c.short_id()), "bad manifest digest")
    })?;
    oci::load_image(store, &digest)
}

/// The sandbox that runs container `c`: the image's snapshots under the
/// container's own upper layer.
fn sandbox_spec(store: &Store, c: &Container) -> Result<SandboxSpec> {
    let image = image_of(store, c)?;
    let diff_ids = &image.config.rootfs.diff_ids;
    if diff_ids.len() != image.layers.len() {
        return Err(Error::corrupt(
            format!("image {}", image.manifest.digest),
            "the config's diff_ids do not match the manifest's layers",
        ));
    }
    let mut lowerdirs = Vec::new();
    for (desc, diff_id) in image.layers.iter().zip(diff_ids) {
        lowerdirs.push(oci::layer_snapshot(store, desc, diff_id)?);
    }
    lowerdirs.reverse();
    // Overlay needs an empty work dir; the upper layer is kept.
    let work = c.work();
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| Error::io(format!("creating {}", work.display()), e))?;
    let cfg = &c.config;
    Ok(SandboxSpec {
        lowerdirs,
        upperdir: c.upper(),
        workdir: work,
        argv: cfg.argv.clone(),
        env: cfg.env.clone(),
        cwd: cfg.cwd.clone(),
        user: cfg.user.clone(),
        network: cfg.network,
        hostname: String::new(),
        mounts: cfg
            .volumes
            .iter()
            .map(|v| SandboxMount::Bind {
                source: v.host.clone(),
                target: v.target.clone(),
                readonly: v.readonly,
            })
            .collect(),
    })
}

/// Runs container `c` in this process, recording it as running under our
/// pid and then its exit; every output chunk goes to the log and to
/// `output`. Returns the command's status; `Err` when it could not start
/// (also recorded).
pub fn run_container(
    store: &Store,
    c: &Container,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<i32> {
    let mut log = open_log(c)?;
    run_recorded(store, c, &mut |spec, started| {
        sandbox::run_observed(
            spec,
            &mut |stream, bytes| {
                let _ = log.write_all(bytes);
                output(stream, bytes);
            },
            started,
        )
    })
}

/// Runs `c` as it was created: on a terminal of its own with `-t`, with a
/// stdin with `-i`, else with its output logged and given to `output`. In
/// the `foreground` the terminal and stdin are ours (`-i` alone: our stdio,
/// not logged); detached (a supervisor), the terminal's output goes to the
/// log and its stdin (or `-i`'s) stays open with nothing written, as with
/// `docker run -dit`.
pub fn run_as_created(
    store: &Store,
    c: &Container,
    foreground: bool,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<i32> {
    let cfg = &c.config;
    if cfg.tty {
        let log = open_log(c)?;
        let relay = if foreground {
            tty::Relay::Ours
        } else {
            tty::Relay::LogOnly
        };
        let term = tty::Terminal::open(relay);
        return run_recorded(store, c, &mut |spec, started| {
            let io = term.console(log.try_clone().ok())?;
            sandbox::run_attached(spec, io, started)
        });
    }
    if !cfg.interactive {
        return run_container(store, c, output);
    }
    // Held until the command ends: its stdin never sees end of file.
    let mut keep_open = None;
    run_recorded(store, c, &mut |spec, started| {
        let io = if foreground {
            sandbox::Attached {
                stdin: dup(0)?,
                stdout: dup(1)?,
                stderr: dup(2)?,
                tty: false,
                console: None,
            }
        } else {
            let (r, w) = std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
            keep_open = Some(w);
            let log = OwnedFd::from(open_log(c)?);
            sandbox::Attached {
                stdin: r.into(),
                stdout: log
                    .try_clone()
                    .map_err(|e| Error::io("duplicating the log", e))?,
                stderr: log,
                tty: false,
                console: None,
            }
        };
        sandbox::run_attached(spec, io, started)
    })
}

/// A close-on-exec copy of one of our standard fds.
fn dup(fd: i32) -> Result<OwnedFd> {
    // SAFETY: duplicating one of our standard fds.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Error::io(
            "duplicating stdio",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(new) })
}

fn open_log(c: &Container) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(c.log_path())
        .map_err(|e| Error::io(format!("opening {}", c.log_path().display()), e))
}

type Launch<'a> = dyn FnMut(&SandboxSpec, &mut dyn FnMut(i32)) -> Result<i32> + 'a;

/// Records `c` as running under our pid, runs it with `launch`, records
/// how it ended.
fn run_recorded(store: &Store, c: &Container, launch: &mut Launch<'_>) -> Result<i32> {
    let me = std::process::id() as i32;
    c.update(|s| {
        s.status = Status::Running;
        s.supervisor = Some(me);
        s.supervisor_start = state::process_start(me);
        s.sandbox = None;
        s.exit_code = None;
        s.error = None;
        s.started = Some(state::now());
        s.finished = None;
    })?;
    let result = sandbox_spec(store, c).and_then(|spec| {
        launch(&spec, &mut |pid| {
            signals::set_target(pid);
            let _ = c.update(|s| s.sandbox = Some(pid));
        })
    });
    signals::set_target(0);
    c.update(|s| {
        s.status = Status::Exited;
        s.sandbox = None;
        s.finished = Some(state::now());
        match &result {
            Ok(code) => s.exit_code = Some(*code),
            Err(e) => {
                s.exit_code = Some(failure_status(e));
                s.error = Some(e.to_string());
            }
        }
    })?;
    result
}

/// `strata run` in the foreground: a new container of `image`, its output
/// given to `output` (unless it is interactive: then on our terminal or
/// stdio); kept afterwards (for `start`, `logs`, `rm`) unless
/// `auto_remove`.
pub fn run(
    store: &Store,
    image: &Image,
    image_name: &str,
    opts: &RunOptions,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<RunOutcome> {
    available()?;
    let c = create(store, image, image_name, opts)?;
    let result = run_as_created(store, &c, true, output);
    let outcome = result.and_then(|exit_code| {
        let committed = match &opts.commit {
            Some(name) => Some(commit(store, image, &c.upper(), &c.config.argv, name)?),
            None => None,
        };
        Ok(RunOutcome {
            exit_code,
            committed,
        })
    });
    if opts.auto_remove {
        c.remove()?;
    }
    outcome
}

/// Sends `signal` to everything in a running container (the sandbox's
/// process group: its init forwards it to the command too).
pub fn kill(c: &Container, signal: i32) -> Result<()> {
    let s = c.state()?;
    let Some(pid) = s.sandbox.filter(|_| s.status == Status::Running) else {
        return Err(Error::msg(format!(
            "container {} is not running",
            c.config.name
        )));
    };
    // SAFETY: plain system call.
    if unsafe { libc::kill(-pid, signal) } != 0 {
        return Err(Error::io(
            format!("signalling container {}", c.config.name),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Waits up to `timeout` for `c` to stop running; true when it did.
pub fn wait_exited(c: &Container, timeout: std::time::Duration) -> Result<bool> {
    let until = std::time::Instant::now() + timeout;
    loop {
        if c.state()?.status != Status::Running {
            return Ok(true);
        }
        if std::time::Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `strata stop`: SIGTERM, then SIGKILL after `grace`. A container that
/// is not running is left as it is.
pub fn stop(c: &Container, grace: std::time::Duration) -> Result<()> {
    if c.state()?.status != Status::Running {
        return Ok(());
    }
    if kill(c, libc::SIGTERM).is_ok() && wait_exited(c, grace)? {
        return Ok(());
    }
    let _ = kill(c, libc::SIGKILL);
    if !wait_exited(c, std::time::Duration::from_secs(10))? {
        return Err(Error::msg(format!(
            "container {} did not stop",
            c.config.name
        )));
    }
    Ok(())
}

/// A new image: `image` plus the container's upper layer as one more layer.
fn commit(
    store: &Store,
    image: &Image,
    upper: &std::path::Path,
    argv: &[String],
    name: &str,
) -> Result<Descriptor> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let entries = layer::entries_from_dir(upper, epoch)?;
    let mut config = image.config.clone();
    let mut layers = image.layers.clone();
    let created_by = format!("strata run {}", argv.join(" "));
    let created = Some(crate::build::rfc3339(epoch));
    if entries.is_empty() {
        config.history.push(History {
            created,
            created_by: Some(created_by),
            comment: Some("strata run --commit".into()),
            empty_layer: true,
            ..Default::default()
        });
    } else {
        let compression = Compression::Gzip;
        let mut w = store.blob_writer()?;
        let (stats, _) = layer::write_layer(entries, compression, &mut w)?;
        let (digest, size): (Digest, u64) = w.commit()?;
        layers.push(Descriptor {
            media_type: compression.media_type().to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        });
        config.rootfs.diff_ids.push(stats.diff_id);
        config.history.push(History {
            created,
            created_by: Some(created_by),
            comment: Some("strata run --commit".into()),
            ..Default::default()
        });
    }
    let manifest = oci::write_image(store, &config, &layers)?;
    store.set_tag(name, &manifest)?;
    Ok(manifest)
}

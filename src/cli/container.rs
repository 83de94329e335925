//! The container verbs: `run`, `ps`, `logs`, `stop`, `kill`, `rm`, `exec`,
//! `start`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use clap::ValueEnum;

use crate::container::{self, Container, ExecOptions, RunOptions, Status, Volume};
use crate::error::Error;
use crate::images;

use super::table::table;
use super::{Cli, CliError, build, install_interrupt_handler, open_store, render_error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum NetworkArg {
    Host,
    None,
}

#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// Run in the background and print the container's id; its output is
    /// kept for `strata logs`.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Remove the container when its command ends.
    #[arg(long)]
    rm: bool,
    /// Name the container.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Replace the image's Entrypoint (its Cmd then no longer applies;
    /// `""` clears it).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Bind a host path: `HOST:CONTAINER[:ro]`; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    volumes: Vec<String>,
    /// Give the command strata's stdin.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Run the command on a new terminal relayed to strata's (with its
    /// window size; Ctrl-C goes to the command). Implies -i.
    #[arg(short = 't', long)]
    tty: bool,
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
    /// The platform's image of a multi-platform index (default: this
    /// machine's); another architecture runs through qemu-user.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = super::parse_platform_arg)]
    platform: Option<crate::store::Platform>,
    /// Image name, ID or digest.
    image: String,
    /// Command and arguments (default: the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct PsArgs {
    /// Also show containers that are not running.
    #[arg(short, long)]
    all: bool,
    /// Only show container IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate IDs and commands.
    #[arg(long)]
    no_trunc: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct LogsArgs {
    /// Keep printing new output until the container stops.
    #[arg(short, long)]
    follow: bool,
    container: String,
}

#[derive(clap::Args, Debug)]
pub(super) struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(
        short = 't',
        long = "time",
        default_value = "10",
        value_name = "SECONDS"
    )]
    time: u64,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct KillArgs {
    /// Signal: a name (`TERM`, `SIGHUP`) or a number.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct RmArgs {
    /// Stop running containers first (SIGKILL).
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct ExecArgs {
    /// Give the command strata's stdin (without -t it always has it).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Run the command on a new terminal of the container (`/dev/pts/N`
    /// inside), relayed to strata's, with its window size.
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct StartArgs {
    /// Wait for the container and print its output (default: in the background).
    #[arg(short = 'a', long)]
    attach: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct ContainerPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

type CliResult = std::result::Result<(), CliError>;

/// Whether the command line `args` (without the program name) is `exec`
/// (or `container exec`), which a rootless strata runs outside a user
/// namespace of its own: it joins the container's instead, which only a
/// process in the parent namespace (the user's own) may do. The global
/// `--root DIR` may come first.
pub fn stays_outside_userns(args: &[std::ffi::OsString]) -> bool {
    let mut words = args.iter().map(|a| a.to_string_lossy());
    let mut verb = None;
    while let Some(w) = words.next() {
        if w == "--root" {
            words.next();
        } else if !w.starts_with("--root=") {
            verb = Some(w);
            break;
        }
    }
    match verb.as_deref() {
        Some("exec") => true,
        Some("container") => words.next().as_deref() == Some("exec"),
        _ => false,
    }
}

/// A container verb's failure before its command ran: the error, then
/// Docker's status for it (125, 126 or 127).
fn container_failure(e: CliError) -> CliError {
    match e {
        CliError::Failed(e) if !build::interrupted() => {
            errln!("{}", render_error(&e));
            CliError::Exit(container::failure_status(&e))
        }
        other => other,
    }
}

/// A foreground container's signals: passed on to its command while it
/// runs (see `container/signals.rs`), an interrupt before and after.
extern "C" fn on_run_signal(sig: libc::c_int) {
    if !container::forward_signal(sig) {
        build::on_interrupt(sig);
    }
}

fn install_proxy_handler() {
    for sig in container::PROXIED {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe { libc::signal(sig, on_run_signal as *const () as libc::sighandler_t) };
    }
}

pub(super) fn cmd_run(cli: &Cli, args: &RunArgs) -> CliResult {
    install_proxy_handler();
    run(cli, args).map_err(container_failure)
}

fn run(cli: &Cli, args: &RunArgs) -> CliResult {
    if args.detach && args.commit.is_some() {
        return Err(CliError::Usage("--commit cannot be used with -d".into()));
    }
    let volumes = (args.volumes.iter())
        .map(|v| Volume::parse(v).map_err(CliError::Usage))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    let img = match &args.platform {
        Some(p) => images::resolve_for(&store, &args.image, p)?,
        None => images::resolve(&store, &args.image)?.0,
    };
    // Another architecture's image runs through qemu-user, as a build's
    // RUN steps do: the same check first.
    crate::build::can_run(&img.image.platform()).map_err(crate::error::Error::msg)?;
    let opts = RunOptions {
        command: args.command.clone(),
        entrypoint: args.entrypoint.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        network: match args.network {
            NetworkArg::Host => crate::ir::Network::Host,
            NetworkArg::None => crate::ir::Network::None,
        },
        volumes,
        name: args.name.clone(),
        auto_remove: args.rm,
        interactive: args.interactive,
        tty: args.tty,
        commit: args.commit.clone(),
    };
    if args.detach {
        // Checked first: a container that cannot start is not left behind.
        container::available()?;
        let c = container::create(&store, &img.image, &args.image, &opts)?;
        container::start_detached(&store, &c)?;
        outln!("{}", c.config.id);
        return Ok(());
    }
    let outcome = container::run(&store, &img.image, &args.image, &opts, &mut relay)?;
    if let (Some(m), Some(name)) = (&outcome.committed, &args.commit) {
        errln!("committed {name} {}", m.digest);
    }
    match outcome.exit_code {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

/// A container's output chunk onto ours; a closed pipe (`strata run IMG
/// yes | head -1`) ends strata and the container (see `cli/pipe.rs`).
fn relay(stream: crate::sandbox::Stream, bytes: &[u8]) {
    let r = match stream {
        crate::sandbox::Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        }
        crate::sandbox::Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
    if let Err(e) = r {
        super::pipe::check(&e);
    }
}

/// `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
fn status_text(s: &container::ContainerState, now: i64) -> String {
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            images::human_duration(now.saturating_sub(s.started.unwrap_or(now)).max(0) as u64)
        ),
        Status::Exited => {
            let code = s.exit_code.map_or("unknown".to_string(), |c| c.to_string());
            match s.finished {
                Some(t) => format!("Exited ({code}) {}", images::ago(Some(t), now)),
                None => format!("Exited ({code})"),
            }
        }
    }
}

pub(super) fn cmd_ps(cli: &Cli, args: &PsArgs) -> CliResult {
    let store = open_store(cli)?;
    let now = images::now_unix();
    let mut rows = Vec::new();
    for c in container::list(&store)? {
        // One being removed right now has no state any more.
        let Ok(s) = c.state() else { continue };
        if args.all || s.status == Status::Running {
            rows.push((c, s));
        }
    }
    if args.quiet {
        for (c, _) in &rows {
            outln!(
                "{}",
                if args.no_trunc {
                    &c.config.id
                } else {
                    c.short_id()
                }
            );
        }
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(c, s)| {
            let cmd = shell_words(&c.config.argv);
            vec![
                if args.no_trunc {
                    c.config.id.clone()
                } else {
                    c.short_id().to_string()
                },
                c.config.image.clone(),
                if args.no_trunc {
                    cmd
                } else {
                    images::ellipsis(&cmd, 30)
                },
                images::ago(Some(c.config.created), now),
                status_text(s, now),
                c.config.name.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "NAMES"
            ],
            &cells
        )
    );
    Ok(())
}

/// `argv` as one quoted string (`"sh -c 'echo hi'"`), as `ps` shows it.
fn shell_words(argv: &[String]) -> String {
    let word = |w: &String| {
        if !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
        {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    format!(
        "\"{}\"",
        argv.iter().map(word).collect::<Vec<_>>().join(" ")
    )
}

pub(super) fn cmd_logs(cli: &Cli, args: &LogsArgs) -> CliResult {
    let store = open_store(cli)?;
    let c = container::find(&store, &args.container)?;
    let path = c.log_path();
    let mut f = std::fs::File::open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = std::io::stdout();
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n > 0 {
            if let Err(e) = out.write_all(&buf[..n]).and_then(|_| out.flush()) {
                super::pipe::check(&e);
            }
            continue;
        }
        if !args.follow || c.state()?.status != Status::Running {
            // One more read: output written just before the exit.
            let pos = f.stream_position().unwrap_or(0);
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            if pos >= len {
                return Ok(());
            }
            let _ = f.seek(SeekFrom::Start(pos));
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` for each named container, reporting each failure and going on
/// (as docker does); prints each name that succeeded.
fn each(
    cli: &Cli,
    names: &[String],
    mut f: impl FnMut(&Container) -> crate::error::Result<()>,
) -> CliResult {
    let store = open_store(cli)?;
    let mut failed = false;
    for n in names {
        match container::find(&store, n).and_then(|c| f(&c)) {
            Ok(()) => outln!("{n}"),
            Err(e) => {
                errln!("{}", render_error(&e));
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Exit(1))
    } else {
        Ok(())
    }
}

pub(super) fn cmd_stop(cli: &Cli, args: &StopArgs) -> CliResult {
    let grace = Duration::from_secs(args.time);
    each(cli, &args.containers, |c| container::stop(c, grace))
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    Some(match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

pub(super) fn cmd_kill(cli: &Cli, args: &KillArgs) -> CliResult {
    let sig = parse_signal(&args.signal)
        .ok_or_else(|| CliError::Usage(format!("unknown signal `{}`", args.signal)))?;
    each(cli, &args.containers, |c| container::kill(c, sig))
}

pub(super) fn cmd_rm(cli: &Cli, args: &RmArgs) -> CliResult {
    each(cli, &args.containers, |c| {
        if c.state()?.status == Status::Running {
            if !args.force {
                return Err(Error::msg(format!(
                    "container {} is running: stop it first, or use rm -f",
                    c.config.name
                )));
            }
            let _ = container::kill(c, libc::SIGKILL);
            if !container::wait_exited(c, Duration::from_secs(10))? {
                return Err(Error::msg(format!(
                    "container {} did not stop",
                    c.config.name
                )));
            }
        }
        c.remove()
    })
}

pub(super) fn cmd_exec(cli: &Cli, args: &ExecArgs) -> CliResult {
    let run = || -> CliResult {
        let store = open_store(cli)?;
        let c = container::find(&store, &args.container)?;
        let code = container::exec(
            &c,
            &ExecOptions {
                command: args.command.clone(),
                env: args.env.clone(),
                workdir: args.workdir.clone(),
                user: args.user.clone(),
                interactive: args.interactive,
                tty: args.tty,
            },
        )?;
        match code {
            0 => Ok(()),
            code => Err(CliError::Exit(code)),
        }
    };
    run().map_err(container_failure)
}

pub(super) fn cmd_start(cli: &Cli, args: &StartArgs) -> CliResult {
    install_interrupt_handler();
    let store = open_store(cli)?;
    let _lock = store.lock_shared()?;
    if args.attach {
        install_proxy_handler();
        let [name] = args.containers.as_slice() else {
            return Err(CliError::Usage("start -a takes one container".into()));
        };
        let c = container::find(&store, name)?;
        if c.state()?.status == Status::Running {
            return Err(CliError::Usage(format!(
                "container {name} is already running"
            )));
        }
        let code = container::run_as_created(&store, &c, true, &mut relay)
            .map_err(|e| container_failure(e.into()))?;
        return match code {
            0 => Ok(()),
            code => Err(CliError::Exit(code)),
        };
    }
    drop(_lock);
    each(cli, &args.containers, |c| {
        if c.state()?.status == Status::Running {
            return Ok(());
        }
        container::start_detached(&store, c)
    })
}

/// `strata container prune`: removes every container that is not running
/// (their layers and logs), as `docker container prune` does.
pub(super) fn cmd_container_prune(cli: &Cli, args: &ContainerPruneArgs) -> CliResult {
    if !args.force {
        err!(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to \
             continue? [y/N] "
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let store = open_store(cli)?;
    let mut removed = Vec::new();
    let mut bytes = 0;
    for c in container::list(&store)? {
        // One being removed right now has no state any more.
        let Ok(s) = c.state() else { continue };
        if s.status == Status::Running {
            continue;
        }
        let size = c.disk_usage();
        c.remove()?;
        bytes += size;
        removed.push(c.config.id.clone());
    }
    if !removed.is_empty() {
        outln!("Deleted Containers:");
        for id in &removed {
            outln!("{id}");
        }
        outln!("");
    }
    outln!("Total reclaimed space: {}", images::human_size(bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stays_outside_userns;

    #[test]
    fn only_exec_stays_outside_the_user_namespace() {
        let outside = |line: &str| {
            let args: Vec<std::ffi::OsString> = line.split_whitespace().map(Into::into).collect();
            stays_outside_userns(&args)
        };
        assert!(outside("exec box sh"));
        assert!(outside("--root /s exec -it box sh"));
        assert!(outside("--root=/s container exec box id"));
        assert!(!outside("run -it img exec"));
        assert!(!outside("container run img"));
        assert!(!outside("--root exec build ."));
        assert!(!outside(""));
    }
}

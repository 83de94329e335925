//! `strata exec`: a command in a running container, through `nsenter(1)`:
//! it enters the container init's mount, UTS, IPC, network and pid
//! namespaces, takes its root, and runs the command there with the
//! container's environment, working directory and user. Its stdin, stdout
//! and stderr are ours; with `-t` they are a new pty of the container's
//! devpts (`/dev/pts/N` inside, as docker gives), relayed to our terminal
//! (`container/tty.rs`), our stdin only with `-i`.
//!
//! A rootless container (see `userns`) lives in the user namespace its
//! `run` made; `exec` stays out of one of its own (`main` asks
//! [`crate::cli::stays_outside_userns`]) and joins that one first, which
//! its owner may.
//!
//! Limits: the command keeps nsenter's capabilities (all of root's, not the
//! container's reduced set).

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

use super::state::{Container, Status};
use super::tty::{Relay, Terminal};
use crate::error::{Error, Result};

/// What `strata exec` was asked for.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// `KEY=VALUE` added to the container's environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// Our stdin goes to the command (with `tty`; without, it always does).
    pub interactive: bool,
    /// The command gets a new terminal of the container's devpts.
    pub tty: bool,
}

/// The first child of `pid`: the sandbox helper's is the container's init
/// (pid 1 inside), init's is the command.
fn first_child(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Whether process `pid`'s namespace `ns` (`net`, `user`, ...) is not ours.
fn other_namespace(pid: i32, ns: &str) -> bool {
    let link = |p: String| std::fs::read_link(p).ok();
    link(format!("/proc/{pid}/ns/{ns}")) != link(format!("/proc/self/ns/{ns}"))
}

/// The init of running container `c`, waiting a little for one that has
/// just started: its helper is recorded before it forks init, and init
/// sets up the root, cwd and hostname before it forks the command, so an
/// init with a child is one an exec can join.
fn running_init(c: &Container) -> Result<i32> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = c.state()?;
        let helper = s.sandbox.filter(|_| s.status == Status::Running);
        let init = helper.and_then(first_child);
        if let Some(pid) = init.filter(|&i| first_child(i).is_some()) {
            return Ok(pid);
        }
        if helper.is_none() || std::time::Instant::now() >= until {
            return Err(Error::msg(format!(
                "container {} is not running",
                c.config.name
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs `opts.command` in the running container `c`; returns its status
/// (126/127 from nsenter when it cannot be executed or is not found).
pub fn exec(c: &Container, opts: &ExecOptions) -> Result<i32> {
    if opts.command.is_empty() {
        return Err(Error::msg("exec needs a command"));
    }
    let init = running_init(c)?;
    let root = format!("/proc/{init}/root");
    let read = |p: &str| std::fs::read_to_string(format!("{root}{p}")).unwrap_or_default();
    let user = opts.user.as_ref().or(c.config.user.as_ref());
    let (uid, gid) = match user {
        Some(u) => crate::sandbox::resolve_user(u, &read("/etc/passwd"), &read("/etc/group"))
            .map_err(|e| Error::msg(format!("user `{u}`: {e}")))?,
        None => (0, 0),
    };
    let mut env = c.config.env.clone();
    for kv in &opts.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.retain(|(x, _)| x != k);
        env.push((k.to_string(), v.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), crate::sandbox::DEFAULT_PATH.into()));
    }
    let cwd = opts.workdir.clone().unwrap_or_else(|| c.config.cwd.clone());
    let mut cmd = Command::new("nsenter");
    cmd.arg("--target").arg(init.to_string());
    // Only the namespaces that are the container's own: a rootless exec
    // may not re-enter the host's network namespace, say. A rootless
    // container's user namespace comes first (we own it, from outside), so
    // its other namespaces are ours to join.
    for (ns, flag) in [
        ("user", "--user"),
        ("mnt", "--mount"),
        ("uts", "--uts"),
        ("ipc", "--ipc"),
        ("net", "--net"),
        ("pid", "--pid"),
    ] {
        if other_namespace(init, ns) {
            cmd.arg(flag);
        }
    }
    cmd.arg(format!("--root={root}"))
        .arg(format!("--wdns={cwd}"))
        .arg(format!("--setuid={uid}"))
        .arg(format!("--setgid={gid}"))
        .arg("--")
        .args(&opts.command)
        .env_clear()
        .envs(env);
    let status = if opts.tty {
        on_terminal(&mut cmd, &root, opts.interactive)?
    } else {
        cmd.status()
            .map_err(|e| Error::io("running nsenter (util-linux)", e))?
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    })
}

/// Runs `cmd` (nsenter) on a new pty of the container's devpts (opened
/// through `root`, the container's `/proc/PID/root`) as its controlling
/// terminal, relayed to ours.
fn on_terminal(cmd: &mut Command, root: &str, interactive: bool) -> Result<ExitStatus> {
    let (master, slave) = crate::sandbox::open_pty_in(std::path::Path::new(root))
        .map_err(|e| Error::io("opening a terminal in the container", e))?;
    let relay = if interactive {
        Relay::Ours
    } else {
        Relay::OutputOnly
    };
    let term = Terminal::open(relay);
    // Sized before the command can ask.
    super::tty::copy_window_size(master.as_raw_fd());
    let stdio = || {
        slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| Error::io("duplicating the terminal", e))
    };
    cmd.stdin(stdio()?).stdout(stdio()?).stderr(stdio()?);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    // The relay ends once the command and its children let go of the slave
    // (`cmd` keeps its stdio until they are replaced).
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    drop(slave);
    let mut child = child.map_err(|e| Error::io("running nsenter (util-linux)", e))?;
    term.relay_master(master);
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for nsenter", e));
    drop(term);
    status
}

//! `strata exec`: a command in a running container, through `nsenter(1)`:
//! it enters the container init's mount, UTS, IPC, network and pid
//! namespaces, takes its root, and runs the command there with the
//! container's environment, working directory and user. Its stdin, stdout
//! and stderr are ours (so `exec -it` with a terminal is interactive).
//!
//! Limits: the command keeps nsenter's capabilities (all of root's, not the
//! container's reduced set).

use std::process::Command;

use super::state::{Container, Status};
use crate::error::{Error, Result};

/// What `strata exec` was asked for.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// `KEY=VALUE` added to the container's environment.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// The container's init (pid 1 inside): the sandbox helper's child.
fn init_pid(helper: i32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{helper}/task/{helper}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Runs `opts.command` in the running container `c`; returns its status
/// (126/127 from nsenter when it cannot be executed or is not found).
pub fn exec(c: &Container, opts: &ExecOptions) -> Result<i32> {
    if opts.command.is_empty() {
        return Err(Error::msg("exec needs a command"));
    }
    let s = c.state()?;
    let init = s
        .sandbox
        .filter(|_| s.status == Status::Running)
        .and_then(init_pid)
        .ok_or_else(|| Error::msg(format!("container {} is not running", c.config.name)))?;
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
    cmd.arg("--target")
        .arg(init.to_string())
        .args(["--mount", "--uts", "--ipc", "--net", "--pid"])
        .arg(format!("--root={root}"))
        .arg(format!("--wdns={cwd}"))
        .arg(format!("--setuid={uid}"))
        .arg(format!("--setgid={gid}"))
        .arg("--")
        .args(&opts.command)
        .env_clear()
        .envs(env);
    let status = cmd
        .status()
        .map_err(|e| Error::io("running nsenter (util-linux)", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    })
}

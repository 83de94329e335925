//! `strata login` and `strata logout`, as `docker login`/`logout` behave.

use std::io::{BufRead, IsTerminal, Write};

use super::CliError;
use crate::error::Error;
use crate::registry::auth::{Credentials, docker_config_path};
use crate::registry::conf::DEFAULT_REGISTRY;
use crate::registry::login::{self, Stored};
use crate::registry::{self, RegistriesConf};

#[derive(clap::Args, Debug)]
pub(super) struct LoginArgs {
    /// The registry (`host[:port]`); default: Docker Hub.
    registry: Option<String>,
    /// User name (asked for when omitted on a terminal).
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a flag is visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Use plain HTTP (no TLS) for this registry.
    #[arg(long)]
    insecure: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct LogoutArgs {
    /// The registry (`host[:port]`); default: Docker Hub.
    registry: Option<String>,
}

/// `https://host/…`, `host/` and Docker Hub's spellings all name a host.
fn registry_name(arg: &Option<String>) -> String {
    let Some(r) = arg else {
        return DEFAULT_REGISTRY.to_string();
    };
    let r = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .unwrap_or(r);
    let host = r.split('/').next().unwrap_or(r);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        h => h.to_string(),
    }
}

fn config_path() -> Result<std::path::PathBuf, CliError> {
    docker_config_path().ok_or_else(|| {
        CliError::Usage("no Docker config location: set HOME or DOCKER_CONFIG".into())
    })
}

fn prompt(label: &str) -> Result<String, CliError> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{label}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(Error::io("reading standard input", e)))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal with echo off.
fn prompt_hidden(label: &str) -> Result<String, CliError> {
    use std::os::fd::AsRawFd;
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr on our own stdin with a zeroed struct the
    // call fills in; the old settings are put back before returning.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let have = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = prompt(label);
    if have {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
        errln!("");
    }
    line
}

pub(super) fn cmd_login(args: &LoginArgs) -> Result<(), CliError> {
    let registry = registry_name(&args.registry);
    let tty = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if tty && !args.password_stdin => prompt("Username: ")?,
        None => {
            return Err(CliError::Usage(
                "login needs a user name: pass -u USER (stdin is not a terminal)".into(),
            ));
        }
    };
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .map_err(|e| CliError::Failed(Error::io("reading the password from stdin", e)))?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &args.password {
        errln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if tty {
        prompt_hidden("Password: ")?
    } else {
        return Err(CliError::Usage(
            "login needs a password: pass --password-stdin (stdin is not a terminal)".into(),
        ));
    };
    if username.is_empty() || password.is_empty() {
        return Err(CliError::Usage(
            "user name and password must not be empty".into(),
        ));
    }
    let creds = Credentials { username, password };
    let conf = RegistriesConf::load()?;
    let opts = registry::Options {
        insecure: args.insecure || conf.is_insecure(&registry),
        ..registry::Options::from_env(&registry)
    };
    login::verify(&registry, &creds, &opts)?;
    let path = config_path()?;
    match login::save(&path, &registry, &creds)? {
        Stored::File => errln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            path.display()
        ),
        Stored::Helper(h) => errln!("Credentials stored with docker-credential-{h}."),
    }
    outln!("Login Succeeded");
    Ok(())
}

pub(super) fn cmd_logout(args: &LogoutArgs) -> Result<(), CliError> {
    let registry = registry_name(&args.registry);
    let path = config_path()?;
    if login::erase(&path, &registry)? {
        outln!("Removing login credentials for {registry}");
    } else {
        outln!("Not logged in to {registry}");
    }
    Ok(())
}

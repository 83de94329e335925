//! `strata run -d`: a supervisor process (`strata __strata-supervise ROOT
//! ID`, forked and in its own session) runs the container, writes its
//! output to the log and records how it ended; the CLI returns once the
//! container is running.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::state::{Container, Status};
use crate::error::{Error, Result};
use crate::store::Store;

/// The first argument that makes the strata binary a container supervisor.
pub const SUPERVISE_ARG: &str = "__strata-supervise";

/// Forks a supervisor for the created container `c` and waits until it is
/// running (or has already ended).
pub fn start_detached(store: &Store, c: &Container) -> Result<()> {
    super::available()?;
    // A stopped container's old `exited` must not be taken for this run's.
    c.update(|s| {
        s.status = Status::Created;
        s.error = None;
    })?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(SUPERVISE_ARG)
        .arg(store.root())
        .arg(&c.config.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; a new session keeps the terminal's
    // Ctrl-C and hang-up away from the supervisor.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| Error::io("starting the container supervisor", e))?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.state()?;
        match s.status {
            Status::Running if s.sandbox.is_some() => return Ok(()),
            Status::Exited => {
                return match s.error {
                    Some(e) => Err(Error::msg(e)),
                    None => Ok(()),
                };
            }
            _ if Instant::now() >= until => {
                return Err(Error::msg(format!(
                    "container {} did not start within 30 s",
                    c.config.name
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Entry point of the supervisor process. Never returns.
pub fn supervise_main() -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
    let code = match args.as_slice() {
        [root, id] => match supervise(&PathBuf::from(root), &id.to_string_lossy()) {
            Ok(()) => 0,
            Err(_) => 125,
        },
        _ => {
            eprintln!("strata: {SUPERVISE_ARG} is internal (usage: {SUPERVISE_ARG} ROOT ID)");
            2
        }
    };
    std::process::exit(code)
}

fn supervise(root: &std::path::Path, id: &str) -> Result<()> {
    let store = Store::open(root)?;
    let c = Container::open(&super::state::containers_dir(&store).join(id))?;
    // How it ended is in the state either way.
    let _ = super::run_as_created(&store, &c, false, &mut |_, _| {});
    if c.config.auto_remove {
        c.remove()?;
    }
    Ok(())
}

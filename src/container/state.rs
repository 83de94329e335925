//! A container's state directory in the store, one per container:
//!
//! ```text
//! STORE/containers/ID/
//!   config.json   what to run (image, argv, env, mounts, ...); written once
//!   state.json    status, supervisor and sandbox pids, exit code, times
//!   log           the command's stdout and stderr, in arrival order
//!   upper/ work/  the container's copy-on-write layer (overlay upper/work)
//!   lock          flock'ed around every change of state.json
//! ```
//!
//! There is no daemon: whoever runs the container (the CLI in the
//! foreground, a forked supervisor with `-d`) records `running` with its own
//! pid and then the exit. A record that says `running` whose supervisor is
//! gone (killed, host rebooted) reads as exited with an unknown status.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Store;

/// `-v HOST:CTR[:ro]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: PathBuf,
    pub target: String,
    pub readonly: bool,
}

impl Volume {
    /// Parses `HOST:CTR[:ro|rw]`; HOST must be an absolute or `./` path
    /// (named volumes are not supported); a missing one is made a
    /// directory when the container is created, as docker does.
    pub fn parse(s: &str) -> std::result::Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, target, readonly) = match parts.as_slice() {
            [h, t] => (*h, *t, false),
            [h, t, "ro"] => (*h, *t, true),
            [h, t, "rw"] => (*h, *t, false),
            [_, _, o] => return Err(format!("-v `{s}`: unknown option `{o}` (ro or rw)")),
            _ => return Err(format!("-v `{s}`: expected HOST:CONTAINER[:ro]")),
        };
        if !host.starts_with('/') && !host.starts_with('.') {
            return Err(format!(
                "-v `{s}`: `{host}` is not a path (named volumes are not supported; use /abs or ./rel)"
            ));
        }
        if !target.starts_with('/') {
            return Err(format!("-v `{s}`: the container path must be absolute"));
        }
        let host = std::path::absolute(host).map_err(|e| format!("-v `{s}`: {e}"))?;
        Ok(Volume {
            host,
            target: target.to_string(),
            readonly,
        })
    }
}

/// What a container runs; fixed when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its manifest.
    pub image: String,
    pub manifest: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub user: Option<String>,
    pub network: crate::ir::Network,
    pub volumes: Vec<Volume>,
    /// Removed when its command ends (`--rm`).
    pub auto_remove: bool,
    /// Its command reads a stdin kept open (`-i`).
    #[serde(default)]
    pub interactive: bool,
    /// Its command runs on a terminal of its own (`-t`).
    #[serde(default)]
    pub tty: bool,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// How a container is now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: Status,
    /// The process that runs and records it (`strata run` or a supervisor).
    pub supervisor: Option<i32>,
    /// Its start time (clock ticks after boot, `/proc/PID/stat`), so a
    /// reused pid is not taken for it.
    pub supervisor_start: Option<u64>,
    /// The sandbox helper (its process group holds the container).
    pub sandbox: Option<i32>,
    /// The command's status; `None` when it ended unrecorded.
    pub exit_code: Option<i32>,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    /// Why it could not run, when it could not.
    pub error: Option<String>,
}

impl ContainerState {
    fn created() -> Self {
        ContainerState {
            status: Status::Created,
            supervisor: None,
            supervisor_start: None,
            sandbox: None,
            exit_code: None,
            started: None,
            finished: None,
            error: None,
        }
    }
}

/// One container's directory.
#[derive(Clone, Debug)]
pub struct Container {
    pub dir: PathBuf,
    pub config: ContainerConfig,
}

/// Where containers live in a store.
pub fn containers_dir(store: &Store) -> PathBuf {
    store.root().join("containers")
}

fn io(what: impl std::fmt::Display, p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", p.display()), e)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let bytes = fs::read(p).map_err(|e| io("reading", p, e))?;
    crate::store::parse_json(&bytes, p)
}

/// Writes `v` to `p` through a temporary file and a rename.
fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    let tmp = p.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::msg(format!("encoding: {e}")))?;
    fs::write(&tmp, bytes).map_err(|e| io("writing", &tmp, e))?;
    fs::rename(&tmp, p).map_err(|e| io("renaming", &tmp, e))
}

/// 64 random hex digits.
fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(hex::encode(b))
}

/// Unix seconds now.
pub fn now() -> i64 {
    crate::images::now_unix()
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

impl Container {
    /// Makes the directory of a new container (status `created`); the
    /// config's `id` is filled in, `name` too when empty.
    pub fn create(store: &Store, mut config: ContainerConfig) -> Result<Container> {
        let root = containers_dir(store);
        fs::create_dir_all(&root).map_err(|e| io("creating", &root, e))?;
        let lock = lock_dir(&root)?;
        config.id = new_id()?;
        if config.name.is_empty() {
            config.name = format!("strata-{}", &config.id[..8]);
        }
        if !valid_name(&config.name) {
            return Err(Error::msg(format!(
                "invalid container name `{}` (letters, digits, `_`, `.`, `-`; starting with a letter or digit)",
                config.name
            )));
        }
        if list(store)?.iter().any(|c| c.config.name == config.name) {
            return Err(Error::msg(format!(
                "the container name `{}` is already in use (`strata rm {}` frees it)",
                config.name, config.name
            )));
        }
        let dir = root.join(&config.id);
        for d in [dir.clone(), dir.join("upper"), dir.join("work")] {
            fs::create_dir_all(&d).map_err(|e| io("creating", &d, e))?;
        }
        write_json(&dir.join("config.json"), &config)?;
        write_json(&dir.join("state.json"), &ContainerState::created())?;
        File::create(dir.join("log")).map_err(|e| io("creating", &dir.join("log"), e))?;
        drop(lock);
        Ok(Container { dir, config })
    }

    /// Reads a container's directory.
    pub fn open(dir: &Path) -> Result<Container> {
        Ok(Container {
            dir: dir.to_path_buf(),
            config: read_json(&dir.join("config.json"))?,
        })
    }

    pub fn short_id(&self) -> &str {
        &self.config.id[..12]
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The recorded state, with a dead supervisor's `running` read as
    /// exited (status unknown).
    pub fn state(&self) -> Result<ContainerState> {
        let mut s: ContainerState = read_json(&self.dir.join("state.json"))?;
        let alive = s
            .supervisor
            .is_some_and(|p| process_start(p) == s.supervisor_start);
        if s.status == Status::Running && !alive {
            s.status = Status::Exited;
            s.exit_code = None;
        }
        Ok(s)
    }

    /// Changes the state under the container's lock.
    pub fn update(&self, f: impl FnOnce(&mut ContainerState)) -> Result<ContainerState> {
        let _lock = lock_dir(&self.dir)?;
        let mut s = self.state()?;
        f(&mut s);
        write_json(&self.dir.join("state.json"), &s)?;
        Ok(s)
    }

    /// Bytes its directory holds (the copy-on-write layer and the log).
    pub fn disk_usage(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = fs::symlink_metadata(p) else {
                return 0;
            };
            if !m.is_dir() {
                return m.len();
            }
            (fs::read_dir(p).into_iter().flatten().flatten())
                .map(|e| walk(&e.path()))
                .sum()
        }
        walk(&self.dir)
    }

    /// Removes the directory (the caller made sure it is not running).
    pub fn remove(&self) -> Result<()> {
        fs::remove_dir_all(&self.dir).map_err(|e| io("removing", &self.dir, e))
    }
}

/// When process `pid` started (clock ticks after boot), `None` when there
/// is no such process.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// An exclusive flock on `DIR/lock`, released when dropped.
fn lock_dir(dir: &Path) -> Result<File> {
    let p = dir.join("lock");
    let f = File::create(&p).map_err(|e| io("creating", &p, e))?;
    f.lock().map_err(|e| io("locking", &p, e))?;
    Ok(f)
}

/// Every container, oldest first.
pub fn list(store: &Store) -> Result<Vec<Container>> {
    let root = containers_dir(store);
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading", &root, e)),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        // A directory being created or removed has no config yet or any more.
        if dir.join("config.json").is_file()
            && let Ok(c) = Container::open(&dir)
        {
            out.push(c);
        }
    }
    out.sort_by(|a, b| (a.config.created, &a.config.id).cmp(&(b.config.created, &b.config.id)));
    Ok(out)
}

/// The container named `what`: its name, full id or a unique id prefix.
pub fn find(store: &Store, what: &str) -> Result<Container> {
    let all = list(store)?;
    if let Some(c) = all
        .iter()
        .find(|c| c.config.name == what || c.config.id == what)
    {
        return Ok(c.clone());
    }
    let by_prefix: Vec<&Container> = all
        .iter()
        .filter(|c| !what.is_empty() && c.config.id.starts_with(what))
        .collect();
    match by_prefix.as_slice() {
        [c] => Ok((*c).clone()),
        [] => Err(Error::msg(format!("no such container: {what}"))),
        _ => Err(Error::msg(format!(
            "`{what}` names {} containers: give more of the id",
            by_prefix.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_as_docker_writes_them() {
        let v = Volume::parse("/tmp:/data:ro").unwrap();
        assert_eq!(
            (v.host.as_path(), v.target.as_str(), v.readonly),
            (Path::new("/tmp"), "/data", true)
        );
        assert!(!Volume::parse("/tmp:/data").unwrap().readonly);
        for bad in ["/tmp", "named:/data", "/tmp:rel", "/tmp:/d:xx"] {
            assert!(Volume::parse(bad).is_err(), "{bad}");
        }
        // A missing host path is made when the container is created.
        assert!(Volume::parse("/no/such/dir/x:/d").is_ok());
    }

    #[test]
    fn this_process_has_a_start_time() {
        let me = std::process::id() as i32;
        assert!(process_start(me).is_some());
        assert_eq!(process_start(me), process_start(me));
        assert_eq!(process_start(i32::MAX), None);
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["web", "a1", "my_app.2-x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "a/b", "ä"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

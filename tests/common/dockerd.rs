//! A private dockerd (Debian's docker.io 20.10, with its built-in BuildKit)
//! for the tests, started and stopped by `scripts/dockerd-test.sh`: its own
//! socket, data root and exec root under a fresh temp dir; never
//! /var/run/docker.sock. Dropping the handle stops it and removes the dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::is_root;

/// The docker client that matches Debian's dockerd (a newer client may be
/// first on PATH).
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Dockerd {
    dir: PathBuf,
    script: PathBuf,
}

impl Dockerd {
    /// Starts the daemon; None, after a visible SKIP line, when this host
    /// cannot run it (not root, docker.io not installed). Panics when it is
    /// installed but does not come up.
    pub fn start(test: &str) -> Option<Dockerd> {
        if !is_root() {
            eprintln!("SKIP {test}: a private dockerd needs root");
            return None;
        }
        if !Path::new(DOCKERD).exists() || !Path::new(DOCKER).exists() {
            eprintln!(
                "SKIP {test}: Debian's docker.io is not installed \
                 (apt-get install docker.io containerd)"
            );
            return None;
        }
        // A short path: the daemon's and containerd's unix sockets live
        // under it, and socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("strata-dockerd-")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dockerd-test.sh");
        let d = Dockerd { dir, script };
        let out = Command::new(&d.script)
            .arg("start")
            .arg(&d.dir)
            .output()
            .expect("run scripts/dockerd-test.sh");
        assert!(
            out.status.success(),
            "dockerd did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(d)
    }

    /// `/usr/bin/docker` talking to this daemon, with BuildKit on and a
    /// client config of its own.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}/docker.sock", self.dir.display()),
        )
        .env("DOCKER_CONFIG", self.dir.join("client"))
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("BUILDKIT_PROGRESS");
        c
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let out = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "stopping dockerd in {} failed:\n{}",
                self.dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("stopping dockerd in {}: {e}", self.dir.display()),
        }
    }
}

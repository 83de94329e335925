//! A real OCI registry for tests: Debian's `docker-registry` on a free
//! loopback port, with its access log; killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::TestEnv;

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` on a free loopback port, killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Registry {
    pub fn start(env: &TestEnv, test: &str) -> Option<Registry> {
        Registry::start_with(env, test, "")
    }

    /// A registry whose config gets `extra` (YAML top-level sections, e.g.
    /// an `auth:` block) appended.
    pub fn start_with(env: &TestEnv, test: &str, extra: &str) -> Option<Registry> {
        if !Path::new(REGISTRY).exists() {
            eprintln!("SKIP {test}: {REGISTRY} is missing (apt-get install docker-registry)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = env.path("registry-data");
        let cfg = env.path("registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{extra}",
                data.display()
            ),
        )
        .unwrap();
        let log = env.path("registry.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&cfg)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if matches!(http_status(port, "/v2/"), Some(200 | 401)) {
                return Some(reg);
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start:\n{}",
                std::fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests in the access log whose line contains all of `needles`.
    pub fn count(&self, needles: &[&str]) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("HTTP/1.1\""))
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Blob upload requests so far (PATCH of data, PUT that closes).
    pub fn blob_uploads(&self) -> usize {
        self.count(&["\"PATCH /v2/"]) + self.count(&["\"PUT /v2/", "/blobs/uploads/"])
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

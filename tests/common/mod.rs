//! Helpers shared by the integration tests: a fresh temp dir per test, the
//! real binary, and checks for the external tools tests use.
#![allow(dead_code)]

pub mod built;
pub mod dockerd;
pub mod image_tree;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::Builder::new()
                .prefix("strata-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The JSON blob `digest` (`sha256:...`) of the store at `root`: a
    /// manifest, a config.
    pub fn blob_json(&self, root: &str, digest: &str) -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let p = self.path(root).join("blobs/sha256").join(hex);
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// `strata --root DIR ...` with a clean environment for reproducibility.
    pub fn strata(&self, root: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.path(root));
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env_remove("STRATA_ROOT");
        c
    }

    /// Writes `files` (path, content) under `rel` and returns the dir.
    pub fn write_tree(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.path(rel);
        for (p, content) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        root
    }
}

/// Output of a command that must succeed; on failure prints everything.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    let o = Output::from(out);
    if !o.ok {
        panic!(
            "command failed: {cmd:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            o.code, o.stdout, o.stderr
        );
    }
    o
}

pub fn run(cmd: &mut Command) -> Output {
    Output::from(cmd.output().expect("spawn"))
}

pub struct Output {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(o: std::process::Output) -> Output {
        Output {
            ok: o.status.success(),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// True when `name` runs; otherwise prints a visible SKIP line.
pub fn have_tool(name: &str, test: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP {test}: `{name}` is not installed");
    }
    ok
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `../shared` beside the project, if present.
pub fn shared_dir(test: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIP {test}: ../shared is not present (plain clone)");
        None
    }
}

/// A static busybox binary, if installed (Debian's busybox-static).
pub fn busybox(test: &str) -> Option<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let out = Command::new("file").arg(p).output();
        let p = PathBuf::from(p);
        if p.exists() {
            if let Ok(o) = out
                && String::from_utf8_lossy(&o.stdout).contains("dynamically")
            {
                continue;
            }
            return Some(p);
        }
    }
    eprintln!("SKIP {test}: static busybox not installed (apt-get install busybox-static)");
    None
}

/// Copies a directory tree (symlinks kept).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    std::fs::create_dir_all(to).unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// An example from `examples/` copied into the test dir, with busybox added
/// where the example needs it. None (with a SKIP line) if it cannot be.
pub fn example(env: &TestEnv, name: &str, test: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let dst = env.path(&format!("examples/{name}"));
    std::fs::create_dir_all(&dst).unwrap();
    copy_tree(&src, &dst);
    if name == "hello" {
        let bb = busybox(test)?;
        std::fs::copy(bb, dst.join("busybox")).unwrap();
    }
    Some(dst)
}

/// The hello example (busybox) built into the store `root`; false (with a
/// SKIP line naming `why`) without root or a static busybox.
pub fn built_hello(env: &TestEnv, test: &str, why: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP {test}: {why} need root");
        return false;
    }
    let Some(ctx) = example(env, "hello", test) else {
        return false;
    };
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .args(["--progress", "plain"]),
    );
    true
}

pub fn metadata(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("metadata file")).expect("metadata json")
}

/// Resolves the OCI schemas' relative `$ref`s (whatever base URI they end up
/// under) to the file of the same name.
struct SchemaFiles(PathBuf);

impl jsonschema::Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let s = uri.as_str();
        let s = s.split('#').next().unwrap_or(s);
        let name = s.rsplit('/').next().unwrap_or(s);
        let bytes = std::fs::read(self.0.join(name))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// A validator for one of the OCI image-spec schemas in `dir`.
pub fn oci_validator(dir: &Path, schema: &str) -> jsonschema::Validator {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(schema)).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .with_retriever(SchemaFiles(dir.to_path_buf()))
        .build(&s)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// Asserts that `doc` (JSON bytes) validates against `schema` from `dir`.
pub fn validate_oci_json(dir: &Path, schema: &str, doc: &[u8]) {
    let v = oci_validator(dir, schema);
    let doc: serde_json::Value = serde_json::from_slice(doc).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{doc:#}");
}

/// (id, start, end) of every executed step, from json progress events.
pub fn step_intervals(stderr: &str) -> std::collections::HashMap<String, (f64, f64)> {
    let mut starts = std::collections::HashMap::new();
    let mut out = std::collections::HashMap::new();
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let id = v["id"].as_str().unwrap_or_default().to_string();
        match v["event"].as_str() {
            Some("started") => {
                starts.insert(id, v["time"].as_f64().unwrap());
            }
            Some("finished") => {
                let s = starts[&id];
                out.insert(id, (s, v["time"].as_f64().unwrap()));
            }
            _ => {}
        }
    }
    out
}

//! RUN sandbox tests: real namespaces and overlayfs, so root only. Each test
//! prints `SKIP: reason` and passes where `sandbox::available()` says no.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use strata::ir::Network;
use strata::sandbox::{self, SandboxMount, SandboxSpec, Stream};
use tempfile::TempDir;

/// Sets the helper binary and asks whether the sandbox can run here.
fn ready() -> bool {
    sandbox::set_helper_exe(env!("CARGO_BIN_EXE_strata"));
    match sandbox::available() {
        Ok(()) => true,
        Err(reason) => {
            eprintln!("SKIP: {reason}");
            false
        }
    }
}

/// A tiny rootfs (static busybox, passwd, group) plus upper/work dirs.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("strata-sandbox-test-")
            .tempdir()
            .unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(lower.join("bin")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(lower.join("data")).unwrap();
        fs::copy("/bin/busybox", lower.join("bin/busybox")).unwrap();
        fs::set_permissions(lower.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("busybox", lower.join("bin/sh")).unwrap();
        fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            lower.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        fs::write(lower.join("data/keep"), "keep\n").unwrap();
        fs::write(lower.join("data/change"), "old\n").unwrap();
        fs::write(lower.join("data/remove"), "bye\n").unwrap();
        fs::create_dir(dir.path().join("upper")).unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        Fixture { dir }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    /// A spec running `sh -c script` as root with no network.
    fn spec(&self, script: &str) -> SandboxSpec {
        SandboxSpec {
            lowerdirs: vec![self.dir.path().join("lower")],
            upperdir: self.upper(),
            workdir: self.dir.path().join("work"),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/bin".into())],
            cwd: "/".into(),
            user: None,
            network: Network::None,
            hostname: "sandbox-test".into(),
            mounts: vec![],
        }
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Runs the spec, checking that the host's mount table is unchanged.
fn run(spec: &SandboxSpec) -> Output {
    let before = mountinfo();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = sandbox::run(spec, &mut |s, b| match s {
        Stream::Stdout => stdout.extend_from_slice(b),
        Stream::Stderr => stderr.extend_from_slice(b),
    })
    .unwrap_or_else(|e| panic!("sandbox failed to start: {e}"));
    let after = mountinfo();
    assert_eq!(before, after, "the host mount table changed");
    Output {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Relative paths of everything in `dir`, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn changes_land_in_the_upperdir() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out =
        run(&f.spec("echo new > /data/new && echo changed > /data/change && rm /data/remove"));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let up = f.upper();
    assert_eq!(fs::read_to_string(up.join("data/new")).unwrap(), "new\n");
    assert_eq!(
        fs::read_to_string(up.join("data/change")).unwrap(),
        "changed\n"
    );
    let wh = fs::symlink_metadata(up.join("data/remove")).unwrap();
    assert!(wh.file_type().is_char_device(), "deletion is a whiteout");
    assert_eq!(wh.rdev(), 0);
    assert!(
        !up.join("data/keep").exists(),
        "untouched files stay in the lowerdir"
    );
    assert_eq!(
        tree(&up),
        vec!["data", "data/change", "data/new", "data/remove"]
    );
}

#[test]
fn exit_code_propagates() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    assert_eq!(run(&f.spec("exit 3")).code, 3);
    let f = Fixture::new();
    assert_eq!(run(&f.spec("kill -9 $$")).code, 128 + 9);
}

#[test]
fn stdout_and_stderr_are_separate() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec("echo to-out; echo to-err >&2; echo more-out"));
    assert_eq!(out.stdout, "to-out\nmore-out\n");
    assert_eq!(out.stderr, "to-err\n");
}

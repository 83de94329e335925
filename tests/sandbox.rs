//! RUN sandbox tests: real namespaces and overlayfs, so root only. Each test
//! prints `SKIP: reason` and passes where `sandbox::available()` says no.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};
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

/// The host's mounts that involve `dir` (other programs on the machine may
/// mount and unmount unrelated things while the tests run, e.g. a
/// container engine, so the whole table is not compared).
fn mountinfo(dir: &std::path::Path) -> String {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs the spec, checking that the host's mount table is unchanged.
fn run(spec: &SandboxSpec) -> Output {
    let scope = spec
        .upperdir
        .parent()
        .unwrap_or(&spec.upperdir)
        .to_path_buf();
    let before = mountinfo(&scope);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = sandbox::run(spec, &mut |s, b| match s {
        Stream::Stdout => stdout.extend_from_slice(b),
        Stream::Stderr => stderr.extend_from_slice(b),
    })
    .unwrap_or_else(|e| panic!("sandbox failed to start: {e}"));
    let after = mountinfo(&scope);
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

#[test]
fn env_and_missing_cwd() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("pwd; echo \"$GREETING\"; echo \"$HOME\"; echo \"$PATH\"");
    spec.env.push(("GREETING".into(), "hello world".into()));
    spec.cwd = "/work/sub".into();
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "/work/sub\nhello world\n/root\n/bin\n");
    let made = fs::metadata(f.upper().join("work/sub")).unwrap();
    assert!(made.is_dir());
    assert_eq!(made.mode() & 0o7777, 0o755);
    assert_eq!((made.uid(), made.gid()), (0, 0));
}

#[test]
fn default_path_when_env_has_none() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("");
    spec.env.clear();
    spec.argv = vec!["sh".into(), "-c".into(), "echo \"$PATH\"".into()];
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        out.stdout,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn user_by_name() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("busybox id -u; busybox id -g; busybox id -G");
    spec.user = Some("app".into());
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "1000\n1000\n1000 2000\n");

    let f = Fixture::new();
    let mut spec = f.spec("busybox id -u; busybox id -g");
    spec.user = Some("1000:root".into());
    assert_eq!(run(&spec).stdout, "1000\n0\n");
}

#[test]
fn network_none_has_only_loopback_up() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec("busybox ls /sys/class/net; busybox cat /sys/class/net/lo/flags"));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("lo"));
    let flags = lines.next().unwrap().trim_start_matches("0x");
    let flags = u32::from_str_radix(flags, 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up (IFF_UP)");
    assert_eq!(lines.next(), None);
}

#[test]
fn proc_works_and_command_has_a_low_pid() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec("echo $$; busybox cat /proc/self/stat | busybox cut -d' ' -f1"));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let pids: Vec<u32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(
        pids[0], 2,
        "the command runs as pid 2 under the sandbox init"
    );
    assert!(pids[1] < 10, "{pids:?}");
}

#[test]
fn orphans_are_reaped() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    // Each subshell exits at once, so its `sleep 0` is re-parented to the
    // sandbox init, which must reap it; an unreaped one shows state Z.
    let script = "for i in 1 2 3 4 5; do (busybox sleep 0 &); done; busybox sleep 0.5; \
                  for s in /proc/[0-9]*/stat; do busybox cut -d' ' -f3 $s; done";
    let out = run(&f.spec(script));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(!out.stdout.is_empty());
    assert!(
        !out.stdout.lines().any(|s| s == "Z"),
        "zombies: {}",
        out.stdout
    );
}

#[test]
fn etc_files_are_readable_and_stay_out_of_the_diff() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec(
        "busybox cat /etc/hosts; busybox cat /etc/resolv.conf; busybox cat /etc/hostname; busybox hostname",
    ));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("127.0.0.1\tlocalhost"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("sandbox-test\nsandbox-test\n"),
        "{}",
        out.stdout
    );
    assert!(tree(&f.upper()).is_empty(), "{:?}", tree(&f.upper()));
}

#[test]
fn scratch_rootfs_leaves_an_empty_diff() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("");
    spec.lowerdirs.clear();
    spec.mounts = vec![SandboxMount::Bind {
        source: "/bin/busybox".into(),
        target: "/bin/busybox".into(),
        readonly: true,
    }];
    spec.argv = vec![
        "/bin/busybox".into(),
        "sh".into(),
        "-c".into(),
        "busybox ls /; busybox cat /etc/hostname".into(),
    ];
    spec.env = vec![("PATH".into(), "/bin".into())];
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stdout.contains("proc\n"), "{}", out.stdout);
    assert!(out.stdout.ends_with("sandbox-test\n"), "{}", out.stdout);
    assert!(tree(&f.upper()).is_empty(), "{:?}", tree(&f.upper()));
}

#[test]
fn bind_mounts_are_visible_but_not_in_the_diff() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("input"), "from host\n").unwrap();
    let rw = tempfile::tempdir().unwrap();
    let mut spec = f.spec(
        "busybox cat /mnt/in/input; \
         if busybox touch /mnt/in/nope 2>/dev/null; then echo writable; fi; \
         echo out > /cache/result",
    );
    spec.mounts = vec![
        SandboxMount::Bind {
            source: host.path().to_path_buf(),
            target: "/mnt/in".into(),
            readonly: true,
        },
        SandboxMount::Bind {
            source: rw.path().to_path_buf(),
            target: "/cache".into(),
            readonly: false,
        },
    ];
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "from host\n");
    assert!(!host.path().join("nope").exists());
    assert_eq!(
        fs::read_to_string(rw.path().join("result")).unwrap(),
        "out\n"
    );
    assert!(tree(&f.upper()).is_empty(), "{:?}", tree(&f.upper()));
}

#[test]
fn tmpfs_mount_is_sized_and_not_in_the_diff() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec(
        "echo hi > /data/tmp/small && busybox cat /data/tmp/small; \
         busybox dd if=/dev/zero of=/data/tmp/big bs=1024 count=2048 2>/dev/null || echo full",
    );
    spec.mounts = vec![SandboxMount::Tmpfs {
        target: "/data/tmp".into(),
        size: Some(1024 * 1024),
    }];
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hi\nfull\n");
    assert!(tree(&f.upper()).is_empty(), "{:?}", tree(&f.upper()));
}

#[test]
fn two_sandboxes_run_concurrently() {
    if !ready() {
        return;
    }
    // Each sandbox announces itself in a shared bind mount and waits (up to
    // 20 s) for the other: both succeed only if they run at the same time.
    let shared = tempfile::tempdir().unwrap();
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = [("a", "b"), ("b", "a")]
            .into_iter()
            .map(|(me, other)| {
                let shared = shared.path().to_path_buf();
                s.spawn(move || {
                    let f = Fixture::new();
                    let mut spec = f.spec(&format!(
                        "echo {me} > /data/who; busybox touch /shared/{me}; i=0; \
                         while [ ! -e /shared/{other} ]; do \
                           i=$((i+1)); [ $i -gt 400 ] && exit 1; busybox sleep 0.05; \
                         done; echo $$ {me}"
                    ));
                    spec.mounts = vec![SandboxMount::Bind {
                        source: shared,
                        target: "/shared".into(),
                        readonly: false,
                    }];
                    let out = run(&spec);
                    assert_eq!(
                        fs::read_to_string(f.upper().join("data/who")).unwrap(),
                        format!("{me}\n")
                    );
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!((outs[0].code, outs[0].stdout.as_str()), (0, "2 a\n"));
    assert_eq!((outs[1].code, outs[1].stdout.as_str()), (0, "2 b\n"));
}

#[test]
fn setup_failures_are_errors() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("");
    spec.argv = vec!["no-such-command".into()];
    let e = sandbox::run(&spec, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("executable file not found"), "{e}");

    let f = Fixture::new();
    let mut spec = f.spec("true");
    spec.user = Some("nobody".into());
    let e = sandbox::run(&spec, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("unable to find user nobody"), "{e}");

    let f = Fixture::new();
    let mut spec = f.spec("true");
    spec.lowerdirs = vec!["/nonexistent/layer".into()];
    let e = sandbox::run(&spec, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("overlay"), "{e}");

    let mut spec = f.spec("true");
    spec.cwd = "relative".into();
    assert!(sandbox::run(&spec, &mut |_, _| {}).is_err());
}

/// `kill_all` poisons the process for further sandboxes, so it runs in a
/// child test process (`kill_all_child`).
#[test]
fn kill_all_stops_running_sandboxes() {
    if !ready() {
        return;
    }
    child_test("kill_all_child");
}

/// Runs the ignored test `name` alone in a child process of this test binary.
fn child_test(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// A signal sent to the helper reaches the command (through init).
#[test]
fn signals_are_forwarded() {
    if !ready() {
        return;
    }
    child_test("signal_child");
}

/// Pids of this process's children.
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after_comm = &stat[stat.rfind(')')? + 2..];
            (after_comm.split(' ').nth(1)? == me).then_some(pid)
        })
        .collect()
}

#[test]
#[ignore = "run by signals_are_forwarded in a child process"]
fn signal_child() {
    assert!(ready());
    let f = Fixture::new();
    let spec = f.spec(
        "trap 'echo got-term; exit 7' TERM; echo ready; \
         i=0; while [ $i -lt 300 ]; do i=$((i+1)); busybox sleep 0.1; done; echo timeout",
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let (code, out) = std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut out = Vec::new();
            let code = sandbox::run(&spec, &mut |_, b| {
                out.extend_from_slice(b);
                if b.starts_with(b"ready") {
                    let _ = tx.send(());
                }
            });
            (code, out)
        });
        rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let helpers = children();
        assert_eq!(helpers.len(), 1, "{helpers:?}");
        // SAFETY: plain system call on our own child.
        unsafe { libc::kill(helpers[0], libc::SIGTERM) };
        h.join().unwrap()
    });
    assert_eq!(String::from_utf8_lossy(&out), "ready\ngot-term\n");
    assert_eq!(code.unwrap(), 7);
}

#[test]
#[ignore = "run by kill_all_stops_running_sandboxes in a child process"]
fn kill_all_child() {
    assert!(ready());
    let f = Fixture::new();
    let spec = f.spec("echo started; busybox sleep 30; echo finished");
    let scope = spec.upperdir.parent().unwrap().to_path_buf();
    let before = mountinfo(&scope);
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut out = Vec::new();
            let r = sandbox::run(&spec, &mut |_, b| out.extend_from_slice(b));
            (r, out)
        });
        std::thread::sleep(Duration::from_millis(700));
        sandbox::kill_all();
        h.join().unwrap()
    });
    assert!(start.elapsed() < Duration::from_secs(10));
    let (r, out) = result;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("interrupted"), "{e}");
    assert_eq!(String::from_utf8_lossy(&out), "started\n");
    assert_eq!(before, mountinfo(&scope));
    assert!(sandbox::run(&f.spec("true"), &mut |_, _| {}).is_err());
}

#[test]
fn only_stdio_is_inherited() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    // `ls` opens the listed directory itself, as the highest fd.
    let mut spec = f.spec("");
    spec.argv = vec!["/bin/busybox".into(), "ls".into(), "/proc/self/fd".into()];
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "0\n1\n2\n3\n");
    // stdin is /dev/null: `cat` ends at once.
    spec.argv = vec!["/bin/busybox".into(), "cat".into()];
    let out = run(&spec);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[test]
fn host_network_and_hostname() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("busybox hostname; busybox ls /sys/class/net | busybox wc -l");
    spec.network = Network::Host;
    spec.hostname = "builder".into();
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let host_ifaces = fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(out.stdout, format!("builder\n{host_ifaces}\n"));
}

#[test]
fn many_layers_with_long_and_odd_paths() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let mut spec = f.spec("busybox cat /layers/top; busybox ls /layers | busybox wc -l");
    // 40 layers of ~150-byte paths: more than the one page of mount(2) data.
    let mut layers = Vec::new();
    for i in 0..40 {
        let dir = f
            .dir
            .path()
            .join(format!("layer,{i:02}:{}", "x".repeat(100)));
        fs::create_dir_all(dir.join("layers")).unwrap();
        fs::write(dir.join(format!("layers/{i}")), "").unwrap();
        fs::write(dir.join("layers/top"), format!("{i}\n")).unwrap();
        layers.push(dir);
    }
    // Top first: layer 39 wins.
    layers.reverse();
    layers.append(&mut spec.lowerdirs);
    spec.lowerdirs = layers;
    let out = run(&spec);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "39\n41\n");
}

#[test]
fn root_runs_with_default_capabilities_and_a_guarded_proc() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec(
        "busybox grep -E '^Cap(Bnd|Eff|Inh)' /proc/self/status; \
         busybox mkdir /m; busybox mount -t tmpfs none /m 2>/dev/null && echo mounted; \
         echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo sysctl-written; \
         busybox wc -c < /proc/keys; \
         busybox chown 1000:1000 /data/keep && echo chowned",
    ));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let keep: u64 = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
        .iter()
        .map(|b| 1u64 << b)
        .sum();
    assert_eq!(
        out.stdout,
        format!(
            "CapInh:\t0000000000000000\nCapEff:\t{keep:016x}\nCapBnd:\t{keep:016x}\n0\nchowned\n"
        )
    );
    assert_eq!(
        fs::metadata(f.upper().join("data/keep")).unwrap().uid(),
        1000
    );
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid strings and buffer.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

#[test]
fn replaced_directory_is_opaque() {
    if !ready() {
        return;
    }
    let f = Fixture::new();
    let out = run(&f.spec("busybox rm -rf /data && busybox mkdir /data && echo x > /data/y"));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let data = f.upper().join("data");
    assert_eq!(
        xattr(&data, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(tree(&f.upper()), vec!["data", "data/y"]);
}

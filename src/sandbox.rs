//! Running a RUN step in Linux namespaces over overlayfs.
//!
//! [`run`] never changes the calling process: it re-executes the strata
//! binary as a single-threaded helper (`__strata-sandbox`, see
//! `sandbox/helper.rs` for the process tree and set-up order), sends it the
//! [`SandboxSpec`] as JSON on stdin, streams the command's stdout and stderr
//! back to the caller, and turns the helper's exit status into the command's
//! exit code.
//!
//! Invariants:
//! - The caller's mount table never changes: every mount lives in the
//!   helper's private mount namespace and disappears when it exits.
//! - The upperdir holds exactly what the command changed. Mountpoints the
//!   sandbox needs (`/proc`, `/dev`, `/sys`, `/etc/hosts`, `/etc/resolv.conf`,
//!   `/etc/hostname`, mount targets) come from a throw-away bottom lowerdir
//!   (`sandbox/layout.rs`), so they never reach the diff; the working
//!   directory is the exception on purpose (created 0755 root:root in the
//!   upperdir when missing, like `WORKDIR`).
//! - Overlay is mounted with `redirect_dir=off,metacopy=off,index=off`, so
//!   the upperdir is a plain tree plus whiteouts (0:0 char devices) and
//!   opaque-dir xattrs; copied-up entries may carry other `trusted.overlay.*`
//!   xattrs (e.g. `origin`, `impure`) that a differ must ignore.
//! - Set-up failures are errors (including "executable not found" and an
//!   unknown user); whatever the command does is an exit code.
//! - The command is pid 2 under a pid-1 init that reaps orphans; signals sent
//!   to the helper (SIGTERM, SIGINT, ...) are forwarded to it. It inherits
//!   only stdio (stdin is `/dev/null`) and, even as root, only Docker's
//!   default capabilities; `/proc/sys` and friends are read-only.
//! - The helper binary is `/proc/self/exe` (strata's `main` dispatches on
//!   [`HELPER_ARG`]); test binaries call [`set_helper_exe`] first.

mod console;
mod helper;
mod layout;
mod nosync;
mod sys;
mod user;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

pub use console::{open_pty_in, recv_fd, socket_pair};

/// `user[:group]` (names or ids) resolved against the text of an image's
/// /etc/passwd and /etc/group, as a RUN step's user would be: (uid, gid).
pub fn resolve_user(
    spec: &str,
    passwd: &str,
    group: &str,
) -> std::result::Result<(u32, u32), String> {
    user::resolve(Some(spec), passwd, group).map(|u| (u.uid, u.gid))
}

pub use helper::DEFAULT_PATH;

/// The first argument that makes the strata binary act as the helper.
pub const HELPER_ARG: &str = "__strata-sandbox";

/// Everything a sandboxed command needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Read-only layers, TOP FIRST (overlay lowerdir order). May be empty (scratch).
    pub lowerdirs: Vec<PathBuf>,
    /// Fresh, empty dirs on the same filesystem, created by the caller: the
    /// diff ends up in `upperdir`.
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Absolute; created (0755, in the upperdir, owned by `user`) if missing.
    pub cwd: String,
    /// `user[:group]`, names or ids, resolved from the rootfs /etc/passwd and
    /// /etc/group; None = 0:0. Supplementary groups from /etc/group.
    pub user: Option<String>,
    /// None: new empty net namespace (only lo, up); Host/Default: host network.
    pub network: crate::ir::Network,
    pub hostname: String,
    pub mounts: Vec<SandboxMount>,
}

/// A mount inside the sandbox; it never appears in the upperdir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxMount {
    /// Bind `source` (host path) at `target` in the container.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the caller sends the helper.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    spec: SandboxSpec,
    /// An empty host dir the helper mounts its scratch tmpfs on.
    scratch: PathBuf,
    /// The command gets the caller's stdin, stdout and stderr (see
    /// [`run_attached`]) instead of /dev/null and pipes.
    #[serde(default)]
    attached: bool,
    /// Stdin is a terminal the command takes as its controlling one.
    #[serde(default)]
    tty: bool,
    /// The command's flushes to disk are no-ops (a build step, see
    /// `sandbox/nosync.rs`).
    #[serde(default)]
    nosync: bool,
}

static HELPER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Uses `exe` instead of `/proc/self/exe` as the helper binary; it must call
/// [`helper_main`] when its first argument is [`HELPER_ARG`]. For tests and
/// embedders whose own binary is not strata; set once, before any [`run`].
pub fn set_helper_exe(exe: impl Into<PathBuf>) {
    let _ = HELPER_EXE.set(exe.into());
}

fn helper_exe() -> PathBuf {
    HELPER_EXE
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Process groups of running helpers (0 = free slot). Fixed-size and
/// lock-free so that [`kill_all`] is async-signal-safe.
const SLOTS: usize = 512;
static RUNNING: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
static KILLED: AtomicBool = AtomicBool::new(false);

fn register(pid: i32) -> Option<usize> {
    (0..SLOTS).find(|&i| {
        RUNNING[i]
            .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

/// Kill every running sandbox: the helpers' process groups get SIGKILL, so
/// each pid namespace (and with it every mount) goes away. Sandboxes started
/// afterwards fail. Async-signal-safe.
pub fn kill_all() {
    KILLED.store(true, Ordering::SeqCst);
    for slot in &RUNNING {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: plain system call.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

/// Entry point of the re-exec'ed helper process. Never returns.
pub fn helper_main() -> ! {
    helper::main()
}

/// Whether this host can run the sandbox (root, or root in a user
/// namespace — see `userns` —, namespaces, overlayfs); `Err(reason)` otherwise.
/// Probed once per process (a probe is a helper process of its own: a
/// build with many RUN steps would otherwise pay one per step).
pub fn available() -> std::result::Result<(), String> {
    static PROBED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PROBED.get_or_init(probe_available).clone()
}

fn probe_available() -> std::result::Result<(), String> {
    // SAFETY: plain system call.
    if unsafe { libc::geteuid() } != 0 {
        return Err(match crate::userns::outside_reason() {
            Some(why) => {
                format!("RUN needs root or a user namespace, and strata could not make one: {why}")
            }
            None => "RUN needs root or a user namespace (strata makes one itself when \
                     run as an ordinary user with /etc/subuid ranges; STRATA_ROOTLESS=0 \
                     turns that off)"
                .to_string(),
        });
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-probe-")
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))?;
    let out = Command::new(helper_exe())
        .arg(HELPER_ARG)
        .arg("probe")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", helper_exe().display()))?;
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(helper::PROBE_OK) {
        Ok(())
    } else if out.status.success() {
        Err(format!(
            "{} did not act as the sandbox helper (not the strata binary? see set_helper_exe)",
            helper_exe().display()
        ))
    } else {
        Err(format!(
            "namespace/overlayfs probe failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn check(spec: &SandboxSpec) -> Result<()> {
    let bad = |m: String| Error::msg(format!("sandbox: {m}"));
    if spec.argv.is_empty() {
        return Err(bad("empty command".to_string()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(bad(format!(
            "working directory {:?} is not absolute",
            spec.cwd
        )));
    }
    if !spec.hostname.is_empty() {
        layout::check_hostname(&spec.hostname).map_err(bad)?;
    }
    for m in &spec.mounts {
        let (SandboxMount::Bind { target, .. } | SandboxMount::Tmpfs { target, .. }) = m;
        layout::relative(target).map_err(|e| bad(format!("mount target: {e}")))?;
    }
    for d in [&spec.upperdir, &spec.workdir] {
        if !d.is_dir() {
            return Err(bad(format!("{} is not a directory", d.display())));
        }
    }
    Ok(())
}

/// Runs `spec.argv` in the sandbox, streaming output chunks to `output` as
/// they come; returns the exit code (128+signal when killed). `Err` only
/// for sandbox set-up failures.
pub fn run(spec: &SandboxSpec, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32> {
    run_observed(spec, output, &mut |_| {})
}

/// [`run`] for a build step: the command's `fsync`, `fdatasync`,
/// `sync_file_range`, `syncfs` and `sync` return 0 at once (what a step
/// writes reaches the store as a blob that strata flushes itself; see
/// `sandbox/nosync.rs`). `STRATA_RUN_FSYNC=1` in strata's environment keeps
/// them real.
pub fn run_step(spec: &SandboxSpec, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32> {
    let nosync = std::env::var_os("STRATA_RUN_FSYNC").is_none_or(|v| v != "1");
    let (_scratch, request) = request(spec, false, false, nosync)?;
    run_requested(request, output, &mut |_| {})
}

/// [`run`], calling `started` with the helper's pid (also its process
/// group) once it is spawned: a container supervisor records it so that
/// `strata stop`/`kill`/`exec` can find the container.
pub fn run_observed(
    spec: &SandboxSpec,
    output: &mut dyn FnMut(Stream, &[u8]),
    started: &mut dyn FnMut(i32),
) -> Result<i32> {
    let (_scratch, request) = request(spec, false, false, false)?;
    run_requested(request, output, started)
}

/// Runs the helper on an encoded request with piped output (the scratch dir
/// it names is kept alive by the caller).
fn run_requested(
    request: Vec<u8>,
    output: &mut dyn FnMut(Stream, &[u8]),
    started: &mut dyn FnMut(i32),
) -> Result<i32> {
    let (status_r, status_w) = status_pipe().ctx(|| "creating the status pipe".to_string())?;
    let status_fd = status_w.as_raw_fd();
    let mut cmd = Command::new(helper_exe());
    cmd.arg(HELPER_ARG)
        .arg(status_fd.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            sys::set_cloexec(status_fd, false)?;
            // The calling thread stays in run() until the helper is reaped, so
            // the helper dies exactly when strata does.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    let (mut child, slot) = spawn_registered(&mut cmd)?;
    drop(status_w);
    let pid = child.id() as i32;
    started(pid);
    let guard = KillOnDrop(pid);
    let result = talk(&mut child, &request, output);
    if result.is_ok() {
        std::mem::forget(guard);
    } else {
        drop(guard);
    }

    let status = reap(&mut child, slot);
    result?;
    let status = status?;
    finish(status, status_r)
}

/// The command's standard streams for [`run_attached`].
pub struct Attached {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// `stdin` is a terminal (a pty's slave): the command makes it its
    /// controlling terminal in a new session.
    pub tty: bool,
    /// A console socket (see `sandbox/console.rs`): the command gets a new
    /// pty of the container's devpts as its terminal instead of the three
    /// streams above, and its master is sent back over this socket.
    pub console: Option<OwnedFd>,
}

/// Runs `spec.argv` with `io` as its stdin, stdout and stderr (an
/// interactive container: a pty, or the caller's own streams), calling
/// `started` with the helper's pid; returns the exit code as [`run`] does.
pub fn run_attached(spec: &SandboxSpec, io: Attached, started: &mut dyn FnMut(i32)) -> Result<i32> {
    let (_scratch, request) = request(spec, true, io.tty || io.console.is_some(), false)?;
    let (status_r, status_w) = status_pipe().ctx(|| "creating the status pipe".to_string())?;
    let (spec_r, spec_w) = status_pipe().ctx(|| "creating the spec pipe".to_string())?;
    let (status_fd, spec_fd) = (status_w.as_raw_fd(), spec_r.as_raw_fd());
    let mut cmd = Command::new(helper_exe());
    cmd.arg(HELPER_ARG)
        .arg(status_fd.to_string())
        .arg(spec_fd.to_string())
        .stdin(Stdio::from(io.stdin))
        .stdout(Stdio::from(io.stdout))
        .stderr(Stdio::from(io.stderr))
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            sys::set_cloexec(status_fd, false)?;
            sys::set_cloexec(spec_fd, false)?;
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    let console = io.console;
    if let Some(c) = &console {
        let fd = c.as_raw_fd();
        cmd.arg(fd.to_string());
        // SAFETY: only an async-signal-safe fcntl between fork and exec.
        unsafe { cmd.pre_exec(move || sys::set_cloexec(fd, false)) };
    }
    let (mut child, slot) = spawn_registered(&mut cmd)?;
    drop((status_w, spec_r, console));
    let pid = child.id() as i32;
    started(pid);
    let guard = KillOnDrop(pid);
    // A spec larger than the pipe buffer must not block us before the wait.
    let writer = std::thread::spawn(move || {
        let _ = std::fs::File::from(spec_w).write_all(&request);
    });
    std::mem::forget(guard);
    let status = reap(&mut child, slot)?;
    let _ = writer.join();
    finish(status, status_r)
}

/// The checked spec as the helper reads it, with the scratch dir it names
/// (kept alive by the caller until the helper is done).
fn request(
    spec: &SandboxSpec,
    attached: bool,
    tty: bool,
    nosync: bool,
) -> Result<(tempfile::TempDir, Vec<u8>)> {
    check(spec)?;
    if KILLED.load(Ordering::SeqCst) {
        return Err(Error::msg("sandbox: interrupted"));
    }
    let scratch = tempfile::Builder::new()
        .prefix("strata-sandbox-")
        .tempdir()
        .ctx(|| "creating the sandbox scratch dir".to_string())?;
    let request = serde_json::to_vec(&Request {
        spec: absolute_paths(spec)?,
        scratch: scratch.path().to_path_buf(),
        attached,
        tty,
        nosync,
    })
    .map_err(|e| Error::msg(format!("sandbox: encoding the spec: {e}")))?;
    Ok((scratch, request))
}

/// Spawns the helper and registers its process group for [`kill_all`];
/// a helper spawned after `kill_all` is killed at once.
fn spawn_registered(cmd: &mut Command) -> Result<(std::process::Child, Option<usize>)> {
    let child = cmd
        .spawn()
        .ctx(|| format!("starting the sandbox helper {}", helper_exe().display()))?;
    let pid = child.id() as i32;
    let slot = register(pid);
    if KILLED.load(Ordering::SeqCst) {
        // SAFETY: plain system call on our own child.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    Ok((child, slot))
}

/// Waits for the helper, leaving the registry before reaping it, so
/// [`kill_all`] never hits a reused pid.
fn reap(child: &mut std::process::Child, slot: Option<usize>) -> Result<std::process::ExitStatus> {
    wait_exited_no_reap(child.id() as i32);
    if let Some(i) = slot {
        RUNNING[i].store(0, Ordering::SeqCst);
    }
    child
        .wait()
        .ctx(|| "waiting for the sandbox helper".to_string())
}

/// The command's exit code from the helper's status and report.
fn finish(status: std::process::ExitStatus, status_r: OwnedFd) -> Result<i32> {
    let mut report = Vec::new();
    let _ = std::fs::File::from(status_r).read_to_end(&mut report);
    let (started, message) = match report.split_first() {
        Some((&helper::STARTED, rest)) => (true, rest),
        _ => (false, &report[..]),
    };
    if !message.is_empty() {
        let m = String::from_utf8_lossy(message);
        return Err(Error::msg(format!("sandbox: {}", m.trim_end())));
    }
    if KILLED.load(Ordering::SeqCst) && status.signal() == Some(libc::SIGKILL) {
        return Err(Error::msg("sandbox: interrupted"));
    }
    if !started {
        return Err(Error::msg(format!(
            "sandbox: the helper {} exited ({status}) without starting the command \
             (not the strata binary? see set_helper_exe)",
            helper_exe().display()
        )));
    }
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    })
}

/// Kills the helper's process group unless forgotten: a caller whose output
/// callback panics, or whose pipes fail, must not leave a sandbox running.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: plain system call on our own, not yet reaped child.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// The spec with every host path made absolute (the helper may chdir).
fn absolute_paths(spec: &SandboxSpec) -> Result<SandboxSpec> {
    let abs = |p: &PathBuf| std::path::absolute(p).at("resolving", p);
    let mut s = spec.clone();
    s.lowerdirs = spec.lowerdirs.iter().map(abs).collect::<Result<_>>()?;
    s.upperdir = abs(&spec.upperdir)?;
    s.workdir = abs(&spec.workdir)?;
    for m in &mut s.mounts {
        if let SandboxMount::Bind { source, .. } = m {
            *source = abs(source)?;
        }
    }
    Ok(s)
}

/// Sends the request and forwards output until both streams close.
fn talk(
    child: &mut std::process::Child,
    request: &[u8],
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<()> {
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that dies early closes its stdin: its status says why.
        let _ = stdin.write_all(request);
    }
    let mut streams: [(Stream, Option<std::fs::File>); 2] = [
        (
            Stream::Stdout,
            child.stdout.take().map(|s| OwnedFd::from(s).into()),
        ),
        (
            Stream::Stderr,
            child.stderr.take().map(|s| OwnedFd::from(s).into()),
        ),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    while streams.iter().any(|(_, f)| f.is_some()) {
        let mut pfds: Vec<libc::pollfd> = streams
            .iter()
            .map(|(_, f)| libc::pollfd {
                fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: valid array of pollfd (negative fds are ignored by poll).
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("polling the sandbox output", e));
        }
        for (p, (which, file)) in pfds.iter().zip(streams.iter_mut()) {
            let Some(f) = file.as_mut() else { continue };
            if p.revents == 0 {
                continue;
            }
            match f.read(&mut buf) {
                Ok(0) => *file = None,
                Ok(n) => output(*which, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading the sandbox output", e)),
            }
        }
    }
    Ok(())
}

/// Blocks until `pid` has exited, leaving it a zombie (still ours to reap).
fn wait_exited_no_reap(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data; valid pointer.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// A close-on-exec pipe whose write end is numbered 3 or higher.
fn status_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own.
    let high = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd we own.
    Ok((r, unsafe { OwnedFd::from_raw_fd(high) }))
}

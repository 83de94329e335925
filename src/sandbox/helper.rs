//! The helper process: `strata __strata-sandbox <status-fd>`, spec as JSON on
//! stdin.
//!
//! Process tree (all single-threaded):
//!
//! ```text
//! strata (multi-threaded caller, run())
//!  └─ helper "outer"        host pid ns; unshare(mnt, pid, ipc, uts[, net]); waits
//!      └─ init (pid 1)      mounts, pivot_root, reaps zombies, forwards signals
//!          └─ command (pid 2) setgroups/setgid/setuid, chdir, execve
//! ```
//!
//! Set-up order: mounts private -> tmpfs scratch (mountpoint layer, generated
//! /etc files) -> overlay -> /proc, /dev, /sys -> /etc files -> spec mounts
//! (parents first) -> hostname, lo -> pivot_root -> cwd -> user -> exec.
//!
//! Every path inside the container is resolved with `openat2(RESOLVE_IN_ROOT)`
//! and mounted through its `/proc/self/fd` path, so image symlinks can never
//! redirect a mount to the host.
//!
//! A set-up failure is written as text to the status fd (close-on-exec, so a
//! successful exec closes it) and the process exits with 125; the caller turns
//! the text into an error. All mounts live in the helper's mount namespace and
//! vanish with it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use super::layout::{self, Kind, Mountpoints};
use super::nosync;
use super::sys::{self, SysResult};
use super::{Request, SandboxMount, console, user};
use crate::ir::Network;

/// Printed by a successful probe (a binary that is not strata cannot fake it).
pub const PROBE_OK: &str = "strata-sandbox-probe-ok";

/// Written to the status fd when set-up is done and the command is forked;
/// anything after it is an exec failure.
pub const STARTED: u8 = b'S';

/// Exit code of a helper whose set-up failed (the message is on the status fd).
const SETUP_FAILED: i32 = 125;

/// Hostname when the spec gives none.
pub const DEFAULT_HOSTNAME: &str = "strata";

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capabilities a command keeps (Docker's default set): CHOWN,
/// DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
/// Notably no SYS_ADMIN: a RUN step cannot mount or reach the host's kernel
/// settings.
pub const KEPT_CAPABILITIES: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// `/proc` entries made read-only, and those hidden (files under
/// `/dev/null`, directories under an empty read-only tmpfs), as Docker does.
const PROC_READONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];
const PROC_MASKED: &[&str] = &[
    "acpi",
    "asound",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi",
    "timer_list",
    "timer_stats",
];

/// Signals init passes on to the command.
const FORWARDED: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

pub fn main() -> ! {
    let args: Vec<String> = std::env::args().skip(2).collect();
    if args.first().map(String::as_str) == Some("probe") {
        let code = match probe(args.get(1).map(Path::new)) {
            Ok(()) => {
                println!("{PROBE_OK}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
        std::process::exit(code);
    }
    let status_fd: RawFd = match args.first().and_then(|a| a.parse().ok()) {
        Some(fd) if fd > 2 => fd,
        _ => {
            eprintln!("strata: __strata-sandbox is internal (usage: __strata-sandbox <status-fd>)");
            std::process::exit(2);
        }
    };
    // `attached`: the spec comes on this fd, stdin stays the caller's.
    let spec_fd: Option<RawFd> = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .filter(|&fd| fd > 2);
    // `run -t`: the console socket (see `sandbox/console.rs`).
    let console_fd: Option<RawFd> = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .filter(|&fd| fd > 2);
    // The command inherits only stdio; the status fd closes on a successful exec.
    sys::cloexec_from_3();
    let code = match outer(status_fd, spec_fd, console_fd) {
        Ok(code) => code,
        Err(e) => {
            sys::write_all_fd(status_fd, e.as_bytes());
            SETUP_FAILED
        }
    };
    std::process::exit(code);
}

fn read_request(spec_fd: Option<RawFd>) -> SysResult<Request> {
    let mut buf = Vec::new();
    let read = match spec_fd {
        Some(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: the caller passed us this fd for the spec; we own it now.
            let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
            f.read_to_end(&mut buf)
        }
        None => std::io::stdin().read_to_end(&mut buf),
    };
    read.map_err(|e| format!("reading the sandbox spec: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("decoding the sandbox spec: {e}"))
}

/// The helper outside the new pid namespace: unshare, fork init, wait.
fn outer(status_fd: RawFd, spec_fd: Option<RawFd>, console_fd: Option<RawFd>) -> SysResult<i32> {
    let req = read_request(spec_fd)?;
    if !req.attached {
        sys::stdin_from_dev_null()?;
    }
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if req.spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    sys::unshare(flags)?;
    // Signals sent to the helper (e.g. SIGTERM) go on to init, then the command.
    let (set, old) = block_signals();
    // SAFETY: this process is single-threaded (the re-exec'ed helper).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys::os_err("fork"));
    }
    if pid == 0 {
        // SAFETY: plain system calls; init dies with the outer helper.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        }
        let code = match init(&req, status_fd, console_fd) {
            Ok(code) => code,
            Err(e) => {
                sys::write_all_fd(status_fd, e.as_bytes());
                SETUP_FAILED
            }
        };
        // SAFETY: leave without running the parent's atexit handlers twice.
        unsafe { libc::_exit(code) };
    }
    Ok(reap_until(pid, &set))
}

/// Blocks SIGCHLD and the forwarded signals; returns (blocked set, old mask).
fn block_signals() -> (libc::sigset_t, libc::sigset_t) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset; valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        (set, old)
    }
}

/// Resolves `rel` inside `root` (symlinks confined to it).
fn resolve(root: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    sys::open_in_root(root, rel)
}

fn resolve_or_err(root: &OwnedFd, rel: &str) -> SysResult<OwnedFd> {
    resolve(root, rel).map_err(|e| format!("resolving /{rel} in the container: {e}"))
}

/// pid 1 of the new pid namespace.
fn init(req: &Request, status_fd: RawFd, console_fd: Option<RawFd>) -> SysResult<i32> {
    let spec = &req.spec;
    // SAFETY: plain system call.
    unsafe { libc::umask(0o022) };
    sys::mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;

    // Scratch tmpfs: rootfs mountpoint, mountpoint layer, generated files.
    let scratch = &req.scratch;
    let scratch_s = path_str(scratch)?;
    sys::mount(
        Some("tmpfs"),
        scratch_s,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0700"),
    )?;
    let scratch_fd = sys::open_dir_path(scratch)?;
    for d in ["root", "mp", "files"] {
        sys::mkdirat(&scratch_fd, d, 0o755)?;
    }

    // The mountpoint layer (see layout.rs): bottom lowerdir, never in the diff.
    let mut mps = Mountpoints::new();
    for d in ["/proc", "/dev", "/sys"] {
        mps.add(d, Kind::Dir)?;
    }
    for f in ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] {
        mps.add(f, Kind::File)?;
    }
    for m in &spec.mounts {
        match m {
            SandboxMount::Bind { source, target, .. } => {
                let kind = if source.is_dir() {
                    Kind::Dir
                } else {
                    Kind::File
                };
                mps.add(target, kind)?;
            }
            SandboxMount::Tmpfs { target, .. } => mps.add(target, Kind::Dir)?,
        }
    }
    let mp_fd = sys::open_dir_path(&scratch.join("mp"))?;
    for (rel, kind) in mps.entries() {
        match kind {
            Kind::Dir => sys::mkdirat(&mp_fd, rel, 0o755)?,
            Kind::File => sys::touchat(&mp_fd, rel, 0o644)?,
        }
    }

    // Generated /etc files.
    let hostname = if spec.hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        spec.hostname.as_str()
    };
    layout::check_hostname(hostname)?;
    let host_network = spec.network != Network::None;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").ok();
    let files = scratch.join("files");
    let write = |name: &str, text: &str| {
        std::fs::write(files.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    write("hosts", &layout::hosts(hostname))?;
    write(
        "resolv.conf",
        &layout::resolv_conf(host_network, host_resolv.as_deref()),
    )?;
    write("hostname", &format!("{hostname}\n"))?;

    // The overlay.
    let root_path = scratch.join("root");
    let root_s = path_str(&root_path)?;
    let mut lowers: Vec<&Path> = spec.lowerdirs.iter().map(|p| p.as_path()).collect();
    let mp_path = scratch.join("mp");
    lowers.push(&mp_path);
    match sys::mount_overlay(
        &lowers,
        &spec.upperdir,
        &spec.workdir,
        overlay_options_kv(),
        overlay_flags(),
        root_s,
    ) {
        Ok(()) => {}
        Err(sys::NewMountError::Failed(e)) => {
            return Err(format!("mounting the rootfs overlay: {e}"));
        }
        Err(sys::NewMountError::Unsupported) => {
            let opts = overlay_options(&lowers, &spec.upperdir, &spec.workdir)?;
            sys::mount(Some("overlay"), root_s, Some("overlay"), 0, Some(&opts))
                .map_err(|e| format!("mounting the rootfs overlay: {e}"))?;
        }
    }
    let root = sys::open_dir_path(&root_path)?;

    mount_system(&root)?;

    // /etc files: skipped when the image makes the path unusable (e.g. a
    // dangling symlink), since the command can do without them.
    for name in ["hosts", "resolv.conf", "hostname"] {
        if let Ok(target) = resolve(&root, &format!("etc/{name}")) {
            let src = files.join(name);
            sys::mount(
                Some(path_str(&src)?),
                &sys::fd_path(&target),
                None,
                libc::MS_BIND,
                None,
            )?;
        }
    }

    // Spec mounts, parents before children.
    let mut mounts: Vec<&SandboxMount> = spec.mounts.iter().collect();
    mounts.sort_by_key(|m| {
        let t = match m {
            SandboxMount::Bind { target, .. } | SandboxMount::Tmpfs { target, .. } => target,
        };
        layout::components(t).map(|c| c.len()).unwrap_or(0)
    });
    for m in mounts {
        mount_spec(&root, m)?;
    }

    sys::sethostname(hostname)?;
    if spec.network == Network::None {
        sys::loopback_up()?;
    }

    sys::chdir(root_s)?;
    drop(root);
    drop(mp_fd);
    drop(scratch_fd);
    sys::pivot_to_cwd()?;

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let who = user::resolve(spec.user.as_deref(), &passwd, &group)?;

    // Working directory, created (0755) in the overlay if missing, and, as
    // BuildKit's WORKDIR does, owned by the step's user: `USER app` then
    // `WORKDIR /home/app/x` gives app a directory it can write.
    let cwd_rel = layout::components(&spec.cwd)?;
    let mut cur = String::new();
    for c in &cwd_rel {
        cur.push('/');
        cur.push_str(c);
        let cs = sys::cstring(&cur)?;
        // SAFETY: valid string.
        if unsafe { libc::mkdir(cs.as_ptr(), 0o755) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(format!("creating the working directory {cur}: {e}"));
            }
        } else if (who.uid, who.gid) != (0, 0)
            // SAFETY: valid string; the directory was just made by us.
            && unsafe { libc::lchown(cs.as_ptr(), who.uid, who.gid) } != 0
        {
            return Err(sys::os_err(format_args!(
                "chown of the working directory {cur}"
            )));
        }
    }
    let cwd = if cur.is_empty() { "/".to_string() } else { cur };

    let mut env: Vec<(String, String)> = spec.env.clone();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push((
            "HOME".to_string(),
            who.home.clone().unwrap_or_else(|| "/".to_string()),
        ));
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| sys::cstring(format!("{k}={v}")))
        .collect::<SysResult<_>>()?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(sys::cstring)
        .collect::<SysResult<_>>()?;
    if argv.is_empty() {
        return Err("empty command".to_string());
    }
    let cwd_c = sys::cstring(&cwd)?;

    let terminal = match console_fd {
        Some(fd) => Some(console_terminal(fd, &who)?),
        None => None,
    };

    // Block the signals init handles before the command exists, so none is lost.
    let (set, old) = block_signals();

    sys::write_all_fd(status_fd, &[STARTED]);
    // SAFETY: single-threaded process.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(sys::os_err("fork"));
    }
    if child == 0 {
        if req.tty
            && let Err(e) = take_terminal(terminal.as_ref())
        {
            sys::write_all_fd(status_fd, e.as_bytes());
            // SAFETY: leave the forked child without unwinding.
            unsafe { libc::_exit(125) };
        }
        let err = exec_command(&who, &cwd_c, &argv, &envp, &path_var, &old, req.nosync);
        sys::write_all_fd(status_fd, err.as_bytes());
        // SAFETY: leave the forked child without unwinding.
        unsafe { libc::_exit(127) };
    }
    drop(terminal);
    Ok(reap_until(child, &set))
}

/// `run -t` with a console socket: a pty of the container's own devpts
/// (after pivot_root, so it is `/dev/pts/N` inside), its slave owned by
/// the command's user as a login terminal is; the master goes back to the
/// caller. Returns the slave.
fn console_terminal(sock: RawFd, who: &user::ExecUser) -> SysResult<OwnedFd> {
    use std::os::fd::AsRawFd;
    let (master, slave) =
        console::open_pty().map_err(|e| format!("opening a terminal in the container: {e}"))?;
    // SAFETY: plain system call on an fd we own.
    unsafe { libc::fchown(slave.as_raw_fd(), who.uid, who.gid) };
    console::send_fd(sock, master.as_raw_fd())
        .map_err(|e| format!("sending the terminal to strata: {e}"))?;
    // The caller answers once it has sized the terminal, so the command
    // never sees 0x0; an end of file (it went away) lets us go on too.
    let mut ack = [0u8; 1];
    // SAFETY: reading into a valid one-byte buffer.
    unsafe { libc::read(sock, ack.as_mut_ptr().cast(), 1) };
    Ok(slave)
}

/// In the forked command process of an attached sandbox with a terminal:
/// a new session whose controlling terminal is stdin (the pty, or
/// `console`'s slave, put on stdin, stdout and stderr first), so the
/// command is its foreground job (Ctrl-C, window size reach it).
fn take_terminal(console: Option<&OwnedFd>) -> SysResult<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system calls.
    unsafe {
        if let Some(slave) = console {
            for fd in 0..3 {
                if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                    return Err(sys::os_err("dup2 of the terminal"));
                }
            }
        }
        if libc::setsid() < 0 {
            return Err(sys::os_err("setsid"));
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(sys::os_err("making the terminal the controlling one"));
        }
    }
    Ok(())
}

/// In the forked command process: drop privileges, chdir, exec. Returns only
/// on failure.
fn exec_command(
    who: &user::ExecUser,
    cwd: &CString,
    argv: &[CString],
    envp: &[CString],
    path_var: &str,
    old_mask: &libc::sigset_t,
    nosync: bool,
) -> String {
    // SAFETY: plain system calls on valid data.
    unsafe {
        // Rust ignores SIGPIPE; the command must get the default.
        for s in FORWARDED.iter().chain(&[libc::SIGPIPE, libc::SIGCHLD]) {
            libc::signal(*s, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
        if libc::chdir(cwd.as_ptr()) != 0 {
            return sys::os_err(format_args!("chdir {}", cwd.to_string_lossy()));
        }
    }
    // While CAP_SYS_ADMIN is still ours. A kernel without seccomp keeps
    // the flushes real, which is only slower.
    if nosync {
        let _ = nosync::install();
    }
    if let Err(e) = sys::limit_capabilities(KEPT_CAPABILITIES) {
        return e;
    }
    // SAFETY: plain system calls on valid data.
    unsafe {
        if libc::setgroups(who.groups.len(), who.groups.as_ptr()) != 0 {
            return sys::os_err("setgroups");
        }
        if libc::setgid(who.gid) != 0 {
            return sys::os_err(format_args!("setgid {}", who.gid));
        }
        if libc::setuid(who.uid) != 0 {
            return sys::os_err(format_args!("setuid {}", who.uid));
        }
    }
    let prog = match find_executable(&argv[0], path_var) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let argv_p = sys::ptr_array(argv);
    let envp_p = sys::ptr_array(envp);
    // SAFETY: NULL-terminated arrays of valid strings that outlive the call.
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    sys::os_err(format_args!("exec {}", prog.to_string_lossy()))
}

/// `argv0` as is when it has a `/`, else the first executable in `path_var`.
fn find_executable(argv0: &CString, path_var: &str) -> Result<CString, String> {
    let name = argv0.to_string_lossy();
    if name.contains('/') {
        return Ok(argv0.clone());
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        if let Ok(c) = CString::new(format!("{dir}/{name}"))
            && sys::is_executable(&c)
        {
            return Ok(c);
        }
    }
    Err(format!(
        "executable file not found in $PATH: {name:?} (PATH={path_var})"
    ))
}

/// Reaps every child until `child` is gone; forwards signals to it. Returns
/// the command's exit code (128 + signal when killed).
fn reap_until(child: libc::pid_t, set: &libc::sigset_t) -> i32 {
    let mut code = None;
    loop {
        loop {
            let mut status = 0;
            // SAFETY: valid pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                code = Some(sys::exit_code(status));
            }
        }
        if let Some(code) = code {
            return code;
        }
        // SAFETY: siginfo_t is plain data; valid pointers.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set, &mut info)
        };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: plain system call.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// `/proc`, `/dev` and `/sys` of the container.
fn mount_system(root: &OwnedFd) -> SysResult<()> {
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_fd = resolve_or_err(root, "proc")?;
    sys::mount(
        Some("proc"),
        &sys::fd_path(&proc_fd),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;

    harden_proc(root)?;

    let dev_mp = resolve_or_err(root, "dev")?;
    sys::mount(
        Some("tmpfs"),
        &sys::fd_path(&dev_mp),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev = resolve_or_err(root, "dev")?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        sys::touchat(&dev, node, 0o666)?;
        let target = resolve_or_err(&dev, node)?;
        sys::mount(
            Some(&format!("/dev/{node}")),
            &sys::fd_path(&target),
            None,
            libc::MS_BIND,
            None,
        )?;
    }
    sys::mkdirat(&dev, "pts", 0o755)?;
    let pts = resolve_or_err(&dev, "pts")?;
    sys::mount(
        Some("devpts"),
        &sys::fd_path(&pts),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    sys::symlinkat("pts/ptmx", &dev, "ptmx")?;
    sys::mkdirat(&dev, "shm", 0o1777)?;
    let shm = resolve_or_err(&dev, "shm")?;
    sys::mount(
        Some("shm"),
        &sys::fd_path(&shm),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys::symlinkat(target, &dev, name)?;
    }

    let sys_fd = resolve_or_err(root, "sys")?;
    let ro = nosuid_nodev_noexec | libc::MS_RDONLY;
    if sys::mount(
        Some("sysfs"),
        &sys::fd_path(&sys_fd),
        Some("sysfs"),
        ro,
        None,
    )
    .is_err()
    {
        // Some hosts refuse a new sysfs: fall back to the host's, read-only.
        sys::mount(
            Some("/sys"),
            &sys::fd_path(&sys_fd),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        let again = resolve_or_err(root, "sys")?;
        sys::mount(
            None,
            &sys::fd_path(&again),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | ro,
            None,
        )?;
    }
    Ok(())
}

/// Read-only and masked `/proc` entries (those the kernel has).
fn harden_proc(root: &OwnedFd) -> SysResult<()> {
    for name in PROC_READONLY {
        let rel = format!("proc/{name}");
        let Ok(p) = resolve(root, &rel) else { continue };
        let path = sys::fd_path(&p);
        sys::mount(Some(&path), &path, None, libc::MS_BIND | libc::MS_REC, None)?;
        let again = resolve_or_err(root, &rel)?;
        sys::mount(
            None,
            &sys::fd_path(&again),
            None,
            libc::MS_REMOUNT
                | libc::MS_BIND
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC,
            None,
        )?;
    }
    for name in PROC_MASKED {
        let Ok(p) = resolve(root, &format!("proc/{name}")) else {
            continue;
        };
        let path = sys::fd_path(&p);
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            sys::mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0"),
            )?;
        } else {
            sys::mount(Some("/dev/null"), &path, None, libc::MS_BIND, None)?;
        }
    }
    Ok(())
}

fn mount_spec(root: &OwnedFd, m: &SandboxMount) -> SysResult<()> {
    match m {
        SandboxMount::Bind {
            source,
            target,
            readonly,
        } => {
            let rel = layout::relative(target)?;
            let t = resolve_or_err(root, &rel)?;
            sys::mount(
                Some(path_str(source)?),
                &sys::fd_path(&t),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| format!("bind mount {} at {target}: {e}", source.display()))?;
            if *readonly {
                let again = resolve_or_err(root, &rel)?;
                sys::mount(
                    None,
                    &sys::fd_path(&again),
                    None,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                    None,
                )?;
            }
        }
        SandboxMount::Tmpfs { target, size } => {
            let rel = layout::relative(target)?;
            let t = resolve_or_err(root, &rel)?;
            let mut data = "mode=1777".to_string();
            if let Some(size) = size {
                data.push_str(&format!(",size={size}"));
            }
            sys::mount(
                Some("tmpfs"),
                &sys::fd_path(&t),
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&data),
            )
            .map_err(|e| format!("tmpfs at {target}: {e}"))?;
        }
    }
    Ok(())
}

fn path_str(p: &Path) -> SysResult<&str> {
    p.to_str()
        .ok_or_else(|| format!("path {} is not valid UTF-8", p.display()))
}

/// Keep the upperdir a plain tree plus whiteouts and opaque xattrs: no
/// rename redirects, no metadata-only copy-ups, no inode index.
fn overlay_options_kv() -> &'static [(&'static str, &'static str)] {
    if crate::userns::inside() {
        // `userxattr` refuses `redirect_dir=off`, which still follows
        // redirects; our lower layers hold none, so `nofollow` is the same.
        &[
            ("redirect_dir", "nofollow"),
            ("metacopy", "off"),
            ("index", "off"),
        ]
    } else {
        &[
            ("redirect_dir", "off"),
            ("metacopy", "off"),
            ("index", "off"),
        ]
    }
}

/// Valueless overlay options: in a user namespace (rootless), overlay keeps
/// its whiteout and opaque metadata in `user.overlay.*` xattrs.
fn overlay_flags() -> &'static [&'static str] {
    if crate::userns::inside() {
        &["userxattr"]
    } else {
        &[]
    }
}

/// The `mount(2)` overlay data (kernels without `lowerdir+`). Lowerdirs top first; `:` and `\` escaped.
pub fn overlay_options(lowers: &[&Path], upper: &Path, work: &Path) -> SysResult<String> {
    let esc = |p: &Path| -> SysResult<String> {
        let s = path_str(p)?;
        if s.contains(',') {
            return Err(format!("overlay path {s:?} contains a comma"));
        }
        Ok(s.replace('\\', "\\\\").replace(':', "\\:"))
    };
    let lower = lowers
        .iter()
        .map(|p| esc(p))
        .collect::<SysResult<Vec<_>>>()?
        .join(":");
    let mut opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        esc(upper)?,
        esc(work)?
    );
    for (k, v) in overlay_options_kv() {
        opts.push_str(&format!(",{k}={v}"));
    }
    for f in overlay_flags() {
        opts.push_str(&format!(",{f}"));
    }
    // The kernel takes at most one page of mount data.
    if opts.len() >= 4096 {
        return Err(format!(
            "overlay mount options are {} bytes (more than a page): too many or too long lowerdir paths",
            opts.len()
        ));
    }
    Ok(opts)
}

/// `__strata-sandbox probe DIR`: can this host unshare and mount an overlay?
fn probe(dir: Option<&Path>) -> SysResult<()> {
    let dir = dir.ok_or("probe needs a directory")?;
    sys::unshare(
        libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWNET,
    )?;
    sys::mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    sys::mount(Some("tmpfs"), path_str(dir)?, Some("tmpfs"), 0, None)?;
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(dir.join(d)).map_err(|e| format!("probe mkdir: {e}"))?;
    }
    let opts = overlay_options(&[&dir.join("l")], &dir.join("u"), &dir.join("w"))?;
    sys::mount(
        Some("overlay"),
        path_str(&dir.join("m"))?,
        Some("overlay"),
        0,
        Some(&opts),
    )
    .map_err(|e| format!("overlayfs: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_and_limit() {
        let o = overlay_options(
            &[Path::new("/a:b"), Path::new("/c")],
            Path::new("/u"),
            Path::new("/w"),
        )
        .unwrap();
        assert!(
            o.starts_with("lowerdir=/a\\:b:/c,upperdir=/u,workdir=/w,"),
            "{o}"
        );
        assert!(o.contains("metacopy=off"));
        assert!(overlay_options(&[Path::new("/a,b")], Path::new("/u"), Path::new("/w")).is_err());
        let long = "/x".repeat(1100);
        let many: Vec<&Path> = vec![Path::new(&long); 2];
        assert!(overlay_options(&many, Path::new("/u"), Path::new("/w")).is_err());
    }
}

//! Thin, checked wrappers over the system calls the sandbox needs.
//!
//! Every wrapper returns `Err(String)` naming the operation, its arguments and
//! the OS error, so a set-up failure reads well in the build output.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub type SysResult<T> = Result<T, String>;

/// `"{what}: {last OS error}"`.
pub fn os_err(what: impl std::fmt::Display) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

pub fn cstring(s: impl AsRef<OsStr>) -> SysResult<CString> {
    let s = s.as_ref();
    CString::new(s.as_bytes()).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// The path of an open fd, usable as a mount source or target.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> SysResult<()> {
    let c_source = source.map(cstring).transpose()?;
    let c_target = cstring(target)?;
    let c_fstype = fstype.map(cstring).transpose()?;
    let c_data = data.map(cstring).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string that
    // outlives the call.
    let r = unsafe {
        libc::mount(
            ptr(&c_source),
            c_target.as_ptr(),
            ptr(&c_fstype),
            flags,
            ptr(&c_data).cast(),
        )
    };
    if r != 0 {
        return Err(os_err(format_args!(
            "mount(source={}, target={target}, type={}, data={})",
            source.unwrap_or("none"),
            fstype.unwrap_or("none"),
            data.unwrap_or("")
        )));
    }
    Ok(())
}

pub fn unshare(flags: libc::c_int) -> SysResult<()> {
    // SAFETY: plain system call.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(os_err("unshare"));
    }
    Ok(())
}

/// `openat2(dirfd, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
/// `path` is resolved as if `dirfd` were `/`, symlinks included.
pub fn open_in_root(dirfd: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data; zeroed is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, valid string and struct pointer with their size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Opens a host path with `O_PATH | O_DIRECTORY`.
pub fn open_dir_path(path: &Path) -> SysResult<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: valid string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(os_err(format_args!("opening {}", path.display())));
    }
    // SAFETY: new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dir: &OwnedFd, name: &str, mode: libc::mode_t) -> SysResult<()> {
    let c = cstring(name)?;
    // SAFETY: valid fd and string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(format!("mkdir {name}: {e}"));
        }
    }
    Ok(())
}

/// Creates an empty regular file `name` in `dir` (no-op if it exists).
pub fn touchat(dir: &OwnedFd, name: &str, mode: libc::mode_t) -> SysResult<()> {
    let c = cstring(name)?;
    // SAFETY: valid fd and string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(os_err(format_args!("creating {name}")));
    }
    // SAFETY: new fd we own; dropping closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

pub fn symlinkat(target: &str, dir: &OwnedFd, name: &str) -> SysResult<()> {
    let t = cstring(target)?;
    let n = cstring(name)?;
    // SAFETY: valid strings and fd.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } != 0 {
        return Err(os_err(format_args!("symlink {name} -> {target}")));
    }
    Ok(())
}

pub fn chdir(path: &str) -> SysResult<()> {
    let c = cstring(path)?;
    // SAFETY: valid string.
    if unsafe { libc::chdir(c.as_ptr()) } != 0 {
        return Err(os_err(format_args!("chdir {path}")));
    }
    Ok(())
}

/// `pivot_root(".", ".")` then detach the old root: the current directory
/// becomes `/` and nothing of the host stays reachable. Falls back to
/// `MS_MOVE` + `chroot` where pivot_root is refused (rootfs/initramfs roots).
pub fn pivot_to_cwd() -> SysResult<()> {
    let dot = c".";
    // SAFETY: valid strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if r == 0 {
        // SAFETY: valid string.
        if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(os_err("detaching the old root"));
        }
    } else {
        let pivot_err = io::Error::last_os_error();
        if pivot_err.raw_os_error() != Some(libc::EINVAL) {
            return Err(format!("pivot_root: {pivot_err}"));
        }
        mount(Some("."), "/", None, libc::MS_MOVE, None)?;
        // SAFETY: valid string.
        if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
            return Err(os_err("chroot"));
        }
    }
    chdir("/")
}

pub fn sethostname(name: &str) -> SysResult<()> {
    // SAFETY: pointer and length of a live buffer.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(os_err(format_args!("sethostname {name:?}")));
    }
    Ok(())
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: plain system call.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(os_err("socket for configuring lo"));
    }
    // SAFETY: new fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: valid socket and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(os_err("reading the flags of lo"));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: valid socket and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(os_err("bringing lo up"));
    }
    Ok(())
}

/// Writes `msg` to `fd` (ignoring errors: used to report other errors).
pub fn write_all_fd(fd: RawFd, msg: &[u8]) {
    let mut rest = msg;
    while !rest.is_empty() {
        // SAFETY: pointer and length of a live buffer.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; errors are reported.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every fd from 3 up close-on-exec, so the command inherits only
/// stdio (strata's own parent may have leaked fds to it, e.g. a jobserver).
pub fn cloexec_from_3() {
    // SAFETY: plain system call; only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: walk the open fds.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect();
        for fd in fds {
            let _ = set_cloexec(fd, true);
        }
    }
}

/// Replaces fd 0 with `/dev/null`.
pub fn stdin_from_dev_null() -> SysResult<()> {
    let null = File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
    // SAFETY: valid fds.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(os_err("redirecting stdin"));
    }
    Ok(())
}

/// Exit code of a wait status: the code, or 128 + signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// A C string pointer array (NULL-terminated) over `v`.
pub fn ptr_array(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Whether `path` is an executable regular file for the current user.
pub fn is_executable(path: &CStr) -> bool {
    // SAFETY: valid string; stat is plain data.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::stat(path.as_ptr(), &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
            && libc::access(path.as_ptr(), libc::X_OK) == 0
    }
}

/// Why the new mount API could not mount an overlay.
pub enum NewMountError {
    /// The kernel lacks `fsopen` or `lowerdir+` (before 6.8): use `mount(2)`.
    Unsupported,
    Failed(String),
}

// Stable uapi values from <linux/mount.h>.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// Reads the messages the kernel logged on an fs-context fd.
fn fs_context_log(fsfd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: pointer and length of a live buffer.
        let n = unsafe { libc::read(fsfd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    out.join("; ")
}

/// Mounts an overlay on `target` with the new mount API, one `lowerdir+`
/// per layer: no page-size limit on the layer count, no escaping of `:` or
/// `,` in paths. `options` are further `key=value` string options.
pub fn mount_overlay(
    lowers: &[&Path],
    upper: &Path,
    work: &Path,
    options: &[(&str, &str)],
    flags: &[&str],
    target: &str,
) -> Result<(), NewMountError> {
    let failed = |what: String| NewMountError::Failed(what);
    // SAFETY: valid string.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(NewMountError::Unsupported);
    }
    // SAFETY: a new fd we own.
    let fsfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let set = |key: &str, value: &OsStr| -> io::Result<()> {
        let k = cstring(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let v = cstring(value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: valid fd and strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    for (i, l) in lowers.iter().enumerate() {
        if let Err(e) = set("lowerdir+", l.as_os_str()) {
            if i == 0 && e.raw_os_error() == Some(libc::EINVAL) {
                return Err(NewMountError::Unsupported);
            }
            return Err(failed(format!(
                "lowerdir {}: {e} ({})",
                l.display(),
                fs_context_log(&fsfd)
            )));
        }
    }
    let mut all: Vec<(&str, &OsStr)> = vec![
        ("upperdir", upper.as_os_str()),
        ("workdir", work.as_os_str()),
    ];
    all.extend(options.iter().map(|(k, v)| (*k, OsStr::new(*v))));
    for (k, v) in all {
        set(k, v).map_err(|e| failed(format!("{k}={v:?}: {e} ({})", fs_context_log(&fsfd))))?;
    }
    for f in flags {
        let k = cstring(*f).map_err(failed)?;
        // SAFETY: valid fd and string; a flag takes no value.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                k.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(failed(format!("{f}: {e} ({})", fs_context_log(&fsfd))));
        }
    }
    // SAFETY: valid fd; null key and value as the command requires.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(failed(format!("creating: {e} ({})", fs_context_log(&fsfd))));
    }
    // SAFETY: valid fd.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    if m < 0 {
        return Err(failed(os_err("fsmount")));
    }
    // SAFETY: a new fd we own.
    let mfd = unsafe { OwnedFd::from_raw_fd(m as RawFd) };
    let t = cstring(target).map_err(failed)?;
    // SAFETY: valid fds and strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mfd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(failed(os_err(format_args!("move_mount to {target}"))));
    }
    Ok(())
}

/// Drops every capability not in `keep` from the bounding set and clears the
/// ambient set, so the command (even as root) gets at most `keep` at exec.
pub fn limit_capabilities(keep: &[u32]) -> SysResult<()> {
    for cap in 0..64u32 {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(os_err(format_args!("dropping capability {cap}")));
        }
    }
    // SAFETY: plain prctl; EINVAL on kernels without ambient capabilities.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    // The inheritable set also reaches a root exec (pI & fI): limit it too.
    let mut keep_mask = [0u32; 2];
    for &cap in keep {
        if cap < 64 {
            keep_mask[(cap / 32) as usize] |= 1 << (cap % 32);
        }
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: valid header and two data structs, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(os_err("capget"));
    }
    for (d, m) in data.iter_mut().zip(keep_mask) {
        d.inheritable &= m;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(os_err("capset"));
    }
    Ok(())
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

//! Terminals from the container's own devpts (`/dev/pts` is a new devpts
//! instance in every sandbox): `run -t` and `exec -t` give the command a pty
//! of that instance, so `tty` prints `/dev/pts/0` inside as with docker, and
//! the caller relays its own terminal to the master.
//!
//! `run -t`: the caller hands the helper one end of a socket pair (the
//! "console socket", as runc calls it); init opens `/dev/ptmx` after
//! pivot_root, sends the master back over it (SCM_RIGHTS) and gives the
//! slave to the command once the caller, having sized the terminal, sends
//! one byte back. `exec -t`: the caller opens the container's ptmx
//! itself through `/proc/PID/root`, resolved inside that root.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const DEVPTS_SUPER_MAGIC: libc::c_long = 0x1cd1;

fn last() -> io::Error {
    io::Error::last_os_error()
}

/// A new pty pair from the devpts instance whose `ptmx` is `ptmx` (an fd
/// opened read-write): (master, slave), both close-on-exec and unlocked.
fn pair_from(master: OwnedFd) -> io::Result<(OwnedFd, OwnedFd)> {
    let m = master.as_raw_fd();
    // SAFETY: statfs is plain data; ioctls on an fd we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(m, &mut st) != 0 {
            return Err(last());
        }
        if st.f_type as libc::c_long != DEVPTS_SUPER_MAGIC {
            return Err(io::Error::other("ptmx is not on a devpts file system"));
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(last());
        }
        let s = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(last());
        }
        Ok((master, OwnedFd::from_raw_fd(s)))
    }
}

/// In the sandbox after pivot_root: a pty of its own devpts instance.
pub(super) fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: valid string; a fresh fd on success.
    let m = unsafe {
        libc::open(
            c"/dev/pts/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(last());
    }
    // SAFETY: a fresh fd we own.
    pair_from(unsafe { OwnedFd::from_raw_fd(m) })
}

/// A pty of the devpts instance mounted at `ROOT/dev/pts` (`/proc/PID/root`
/// of a running container), the path resolved inside `root` so the
/// container cannot point it elsewhere.
pub fn open_pty_in(root: &std::path::Path) -> io::Result<(OwnedFd, OwnedFd)> {
    let dir = std::fs::File::open(root)?;
    let path = super::sys::open_in_root(&OwnedFd::from(dir), "dev/pts/ptmx")?;
    let reopen = format!("/proc/self/fd/{}", path.as_raw_fd());
    let c = std::ffi::CString::new(reopen).map_err(io::Error::other)?;
    // SAFETY: valid string; a fresh fd on success.
    let m = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if m < 0 {
        return Err(last());
    }
    // SAFETY: a fresh fd we own; back to blocking reads.
    let master = unsafe {
        let flags = libc::fcntl(m, libc::F_GETFL);
        libc::fcntl(m, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        OwnedFd::from_raw_fd(m)
    };
    pair_from(master)
}

/// Calls `f` with a message of one data byte and room for one fd's
/// `SCM_RIGHTS` control record (what [`send_fd`] and [`recv_fd`] pass).
fn with_fd_message<R>(f: impl FnOnce(&mut libc::msghdr) -> R) -> R {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the pointers set here point at the
    // locals above, which outlive the call to `f`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    f(&mut msg)
}

/// Sends `fd` over the unix socket `sock`.
pub(super) fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    with_fd_message(|msg| {
        // SAFETY: the control buffer has room for one fd (CMSG_SPACE).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
            if libc::sendmsg(sock, msg, 0) < 0 {
                return Err(last());
            }
        }
        Ok(())
    })
}

/// Receives one fd sent with [`send_fd`]; `None` when the other end closed
/// without sending one (the sandbox failed before it made its terminal).
pub fn recv_fd(sock: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    with_fd_message(|msg| {
        // SAFETY: as in send_fd; a received fd is fresh and ours.
        unsafe {
            let n = loop {
                let n = libc::recvmsg(sock.as_raw_fd(), msg, libc::MSG_CMSG_CLOEXEC);
                if n < 0 && last().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break n;
            };
            if n < 0 {
                return Err(last());
            }
            let cmsg = libc::CMSG_FIRSTHDR(msg);
            if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
                return Ok(None);
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            Ok(Some(OwnedFd::from_raw_fd(fd)))
        }
    })
}

/// A connected pair of close-on-exec unix stream sockets.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(last());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

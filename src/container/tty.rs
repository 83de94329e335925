//! `run -t`: the container's command on a new pseudo-terminal, relayed to
//! ours. Our terminal goes raw for the run (so Ctrl-C, Ctrl-D and arrows
//! reach the command's line discipline, as with `docker run -it`) and is
//! restored afterwards; its window size is copied to the pty at the start
//! and on every SIGWINCH.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};
use crate::sandbox::Attached;

/// The pty master SIGWINCH resizes (-1: none).
static MASTER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    copy_window_size(MASTER.load(Ordering::SeqCst));
}

/// Our terminal's size onto `master` (async-signal-safe: two ioctls).
fn copy_window_size(master: RawFd) {
    if master < 0 {
        return;
    }
    // SAFETY: winsize is plain data; ioctls on fds we hold.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0
            || libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0
        {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn os_err(what: &str) -> Error {
    Error::io(what.to_string(), std::io::Error::last_os_error())
}

/// A pty pair, and our terminal's settings to restore.
pub struct Pty {
    master: OwnedFd,
    /// Ours is closed first on drop, so the output relay sees the end.
    slave: Option<OwnedFd>,
    saved: Option<libc::termios>,
    relay: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Pty {
    /// A new pty sized as our terminal; ours goes raw if stdin is one.
    pub fn open() -> Result<Pty> {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: valid out-pointers; null name, termios and winsize.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(os_err("opening a pseudo-terminal"));
        }
        // SAFETY: fresh fds we own.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        for fd in [m, s] {
            // SAFETY: fcntl on fds we own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        copy_window_size(m);
        MASTER.store(m, Ordering::SeqCst);
        // SAFETY: installing a handler that only makes ioctls.
        unsafe { libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t) };
        let saved = make_raw(0);
        Ok(Pty {
            master,
            slave: Some(slave),
            saved,
            relay: std::sync::Mutex::new(None),
        })
    }

    /// The command's stdio (the slave three times) and the relays: our
    /// stdin to the pty, the pty to our stdout and `log`. The output relay
    /// ends when the last holder of the slave (the command) is gone.
    pub fn attach(&self, log: Option<File>) -> Result<Attached> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::io("duplicating the pty", e))
        };
        let slave = self
            .slave
            .as_ref()
            .ok_or_else(|| Error::msg("the pty is closed"))?;
        let io = Attached {
            stdin: dup(slave)?,
            stdout: dup(slave)?,
            stderr: dup(slave)?,
            tty: true,
        };
        let mut input = File::from(dup(&self.master)?);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || input.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut output = File::from(dup(&self.master)?);
        let mut log = log;
        let relay = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut out = std::io::stdout();
            // EIO once no process has the slave open any more.
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = out.write_all(&buf[..n]).and_then(|_| out.flush());
                if let Some(l) = log.as_mut() {
                    let _ = l.write_all(&buf[..n]);
                }
            }
        });
        if let Ok(mut r) = self.relay.lock() {
            *r = Some(relay);
        }
        Ok(io)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        MASTER.store(-1, Ordering::SeqCst);
        drop(self.slave.take());
        if let Some(relay) = self.relay.lock().ok().and_then(|mut r| r.take()) {
            let _ = relay.join();
        }
        if let Some(t) = &self.saved {
            // SAFETY: restoring settings read from the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSADRAIN, t) };
        }
    }
}

/// Puts terminal `fd` in raw mode; returns its previous settings, `None`
/// when it is not a terminal.
fn make_raw(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: termios is plain data; calls on a valid fd.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return None;
        }
        let saved = t;
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(fd, libc::TCSADRAIN, &t);
        Some(saved)
    }
}

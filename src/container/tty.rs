//! `run -t` and `exec -t`: the command on a pty of the container's own
//! devpts (see `sandbox/console.rs`), relayed to our terminal. Ours goes raw
//! for the run (so Ctrl-C, Ctrl-D and arrows reach the command's line
//! discipline, as with `docker run -it`) and is restored afterwards; its
//! window size is copied to the pty at the start and on every SIGWINCH.
//! A detached container (`run -dit`) keeps its master in the supervisor:
//! output goes to the log, and the command's stdin stays open, unwritten.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};
use crate::sandbox::Attached;

/// The pty master SIGWINCH resizes (-1: none).
static MASTER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    copy_window_size(MASTER.load(Ordering::SeqCst));
}

/// Our terminal's size onto `master` (async-signal-safe: two ioctls).
pub(super) fn copy_window_size(master: RawFd) {
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

/// Where the relayed terminal's output and input go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relay {
    /// Our stdin to the command, its output to our stdout (and the log).
    Ours,
    /// Output to our stdout, nothing typed (`exec -t` without `-i`).
    OutputOnly,
    /// Nothing typed; output only to the log (a detached container).
    LogOnly,
}

/// Our side of a container's terminal: our settings to restore and the
/// relay thread, joined on drop (it ends when no process holds the slave).
pub struct Terminal {
    /// The fd whose settings changed, and what they were.
    saved: Option<(RawFd, libc::termios)>,
    relay: Relay,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Terminal {
    /// Ours goes raw if stdin is a terminal (and we relay it).
    pub fn open(relay: Relay) -> Terminal {
        // SAFETY: installing a handler that only makes ioctls.
        unsafe { libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t) };
        let saved = match relay {
            Relay::Ours => make_raw(0, true).map(|t| (0, t)),
            // Only our output: the pty already turned \n into \r\n.
            Relay::OutputOnly => make_raw(1, false).map(|t| (1, t)),
            Relay::LogOnly => None,
        };
        Terminal {
            saved,
            relay,
            thread: std::sync::Mutex::new(None),
        }
    }

    /// The command's side for `run -t`: a console socket over which the
    /// sandbox sends the master of the pty it makes; the relay starts when
    /// it arrives.
    pub fn console(&self, log: Option<File>) -> Result<Attached> {
        let (ours, theirs) = crate::sandbox::socket_pair()
            .map_err(|e| Error::io("creating the console socket", e))?;
        let null = || {
            File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| Error::io("opening /dev/null", e))
        };
        let io = Attached {
            stdin: null()?,
            stdout: null()?,
            stderr: null()?,
            tty: true,
            console: Some(theirs),
        };
        let relay = self.relay;
        self.start(move || {
            // None: the sandbox failed before making the terminal.
            if let Ok(Some(master)) = crate::sandbox::recv_fd(&ours) {
                copy_window_size(master.as_raw_fd());
                // Sized: the command may start (see `sandbox/console.rs`).
                let _ = File::from(ours).write_all(b"1");
                pump(master, relay, log);
            }
        });
        Ok(io)
    }

    /// Relays `master` (`exec -t`: a pty opened in the container).
    pub fn relay_master(&self, master: OwnedFd) {
        let relay = self.relay;
        self.start(move || pump(master, relay, None));
    }

    fn start(&self, f: impl FnOnce() + Send + 'static) {
        let t = std::thread::spawn(f);
        if let Ok(mut slot) = self.thread.lock() {
            *slot = Some(t);
        }
    }
}

/// Copies the master's output to our stdout (with `Relay::Ours`) and
/// `log` until no process holds the slave; our stdin goes to the master
/// from a second thread.
fn pump(master: OwnedFd, relay: Relay, mut log: Option<File>) {
    MASTER.store(master.as_raw_fd(), Ordering::SeqCst);
    copy_window_size(master.as_raw_fd());
    let mut output = File::from(master);
    if relay == Relay::Ours
        && let Ok(mut input) = output.try_clone()
    {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || input.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut buf = [0u8; 4096];
    let mut out = std::io::stdout();
    // EIO once no process has the slave open any more.
    while let Ok(n) = output.read(&mut buf) {
        if n == 0 {
            break;
        }
        if relay != Relay::LogOnly {
            let _ = out.write_all(&buf[..n]).and_then(|_| out.flush());
        }
        if let Some(l) = log.as_mut() {
            let _ = l.write_all(&buf[..n]);
        }
    }
    MASTER.store(-1, Ordering::SeqCst);
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Some((fd, t)) = &self.saved {
            // SAFETY: restoring settings read from the same fd.
            unsafe { libc::tcsetattr(*fd, libc::TCSADRAIN, t) };
        }
    }
}

/// Puts terminal `fd` in raw mode (`all`) or only turns its output
/// processing off; returns its previous settings, `None` when it is not a
/// terminal.
fn make_raw(fd: RawFd, all: bool) -> Option<libc::termios> {
    // SAFETY: termios is plain data; calls on a valid fd.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return None;
        }
        let saved = t;
        if all {
            libc::cfmakeraw(&mut t);
        } else {
            t.c_oflag &= !libc::OPOST;
        }
        libc::tcsetattr(fd, libc::TCSADRAIN, &t);
        Some(saved)
    }
}

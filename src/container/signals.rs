//! A foreground `strata run` passes the signals it is sent on to its
//! container, as `docker run` does (its `--sig-proxy`, on by default):
//! SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 go to the sandbox
//! helper, whose init hands them to the command. The command decides what
//! they mean; when one kills it, strata's status is 128 + the signal (143
//! for SIGTERM), as docker's is.
//!
//! Before the command runs (while the image is resolved or unpacked) and
//! after it ended there is no one to pass a signal to: the caller then
//! treats it as an interrupt.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signals passed on.
pub const PROXIED: [libc::c_int; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The sandbox helper of the container this process runs (0: none).
static HELPER: AtomicI32 = AtomicI32::new(0);

/// Records (or, with 0, forgets) the helper signals go to.
pub(super) fn set_target(pid: i32) {
    HELPER.store(pid, Ordering::SeqCst);
}

/// Sends `sig` to the running container's helper; false when no container
/// is running in this process. Async-signal-safe (one load, one kill).
pub fn forward(sig: libc::c_int) -> bool {
    let pid = HELPER.load(Ordering::SeqCst);
    // SAFETY: plain system call.
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

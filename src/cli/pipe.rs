//! Writing to standard output and error. A closed pipe (`strata build |
//! head -1`) ends strata at once and quietly, as `cat` or `yes` end: running
//! sandboxes are killed and the process dies of SIGPIPE (status 141 in a
//! shell), with no error text. Every line the CLI prints goes through here
//! (the `outln!`/`errln!` macros), from any thread.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` (and a newline) to `w`, flushed; a closed pipe ends the
/// process (see the module docs); other write errors are ignored, as there
/// is nowhere left to report them.
pub(crate) fn write_to(mut w: impl Write, args: fmt::Arguments<'_>, newline: bool) {
    let r = w
        .write_fmt(args)
        .and_then(|_| if newline { w.write_all(b"\n") } else { Ok(()) })
        .and_then(|_| w.flush());
    if let Err(e) = r {
        check(&e);
    }
}

/// Ends the process quietly when `e` says the reader closed the pipe.
pub(crate) fn check(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        closed_pipe();
    }
}

/// The reader went away: stop every sandbox and die of SIGPIPE.
pub(crate) fn closed_pipe() -> ! {
    crate::sandbox::kill_all();
    // SAFETY: restoring the default action and raising a signal are plain
    // libc calls with no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

pub(crate) fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    write_to(io::stdout().lock(), args, newline)
}

pub(crate) fn stderr(args: fmt::Arguments<'_>, newline: bool) {
    write_to(io::stderr().lock(), args, newline)
}

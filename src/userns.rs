//! Rootless: an ordinary user's strata runs inside a user namespace.
//!
//! When strata starts as a user other than root, [`enter`] forks before the
//! CLI does anything: the child unshares a user namespace, the parent maps it
//! through the setuid `newuidmap`/`newgidmap` (inside 0 = the user, inside 1..
//! = the user's ranges in `/etc/subuid` and `/etc/subgid`, as podman's
//! `unshare` does), and the child goes on as the CLI, root inside. From there
//! every part of strata works as it does for root: base layers unpack with
//! their owners, the store holds files owned by subordinate ids (which only a
//! strata inside the namespace may remove: `rmi` and `prune` are), RUN steps
//! run in the sandbox, and layers record the ids as the image sees them, so a
//! rootless build gives the digest a root build gives.
//!
//! Inside the namespace overlayfs keeps its metadata in `user.overlay.*`
//! xattrs (`userxattr`): the sandbox and the snapshot unpacker ask
//! [`inside`] which names to use.
//!
//! The parent only waits: it exits with the child's status, forwards
//! SIGTERM and SIGHUP, and ignores SIGINT and SIGQUIT (a terminal sends
//! those to both processes already; forwarding them would be a second
//! interrupt, which ends a build without storing its finished steps).
//! Without subordinate ranges, or where the kernel or the setuid helpers
//! refuse, strata stays outside (COPY-only builds work; RUN says why it
//! cannot run).

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

/// Set to `0` to keep strata out of a user namespace when not root.
pub const DISABLE_ENV: &str = "STRATA_ROOTLESS";

/// One line of a uid_map or gid_map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The ranges `/etc/subuid`-style text gives `user` (by name or by id), in
/// file order: (first id, count).
pub fn subordinate_ranges(text: &str, user: &str, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != user && who != id {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
            (count > 0).then_some((start, count))
        })
        .collect()
}

/// The mapping for `id` and its subordinate ranges: inside 0 is `id`, the
/// ranges follow from inside 1 on. Empty without ranges.
pub fn mapping(id: u32, ranges: &[(u32, u32)]) -> Vec<IdMap> {
    if ranges.is_empty() {
        return Vec::new();
    }
    let mut out = vec![IdMap {
        inside: 0,
        outside: id,
        count: 1,
    }];
    let mut next = 1u32;
    for &(start, count) in ranges {
        let Some(end) = next.checked_add(count) else {
            break;
        };
        out.push(IdMap {
            inside: next,
            outside: start,
            count,
        });
        next = end;
    }
    out
}

/// Is this process in a user namespace other than the initial one?
pub fn inside() -> bool {
    static INSIDE: OnceLock<bool> = OnceLock::new();
    *INSIDE.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_map(&m))
    })
}

/// The initial namespace's map: every id to itself.
fn is_initial_map(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

/// What [`enter`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Entered {
    /// Root already (or rootless mode turned off): nothing to do.
    NotNeeded,
    /// This process is the child, root inside a mapped user namespace.
    Inside,
    /// Staying outside, for this reason (for a warning or an error later).
    Outside(String),
}

static OUTSIDE_REASON: OnceLock<String> = OnceLock::new();

/// Why a non-root strata is not in a user namespace, if it is not.
pub fn outside_reason() -> Option<&'static str> {
    OUTSIDE_REASON.get().map(|s| s.as_str())
}

/// Moves a non-root strata into a user namespace (see the module docs).
/// Must run first in `main`, while the process has one thread. In the
/// parent, never returns when the namespace was made.
pub fn enter() -> Entered {
    // SAFETY: plain system calls.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 || std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "0") {
        return Entered::NotNeeded;
    }
    let r = match plan(uid, gid) {
        Ok((uids, gids)) => fork_into(&uids, &gids),
        Err(why) => Entered::Outside(why),
    };
    if let Entered::Outside(why) = &r {
        let _ = OUTSIDE_REASON.set(why.clone());
    }
    r
}

/// The uid and gid maps for this user, or why there are none.
fn plan(uid: u32, gid: u32) -> Result<(Vec<IdMap>, Vec<IdMap>), String> {
    let user = user_name(uid).unwrap_or_else(|| uid.to_string());
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let uids = mapping(uid, &subordinate_ranges(&read("/etc/subuid"), &user, uid));
    let group_ranges = subordinate_ranges(&read("/etc/subgid"), &user, uid);
    let gids = mapping(gid, &group_ranges);
    if uids.is_empty() || gids.is_empty() {
        return Err(format!(
            "user {user} has no subordinate ids in /etc/subuid and /etc/subgid \
             (add them, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`)"
        ));
    }
    for tool in ["newuidmap", "newgidmap"] {
        if !on_path(tool) {
            return Err(format!(
                "{tool} is not installed (Debian: apt-get install uidmap)"
            ));
        }
    }
    Ok((uids, gids))
}

/// The name /etc/passwd gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forks; the child unshares and waits for its maps; the parent writes them
/// and waits for the child. Falls back to staying outside on any failure.
fn fork_into(uids: &[IdMap], gids: &[IdMap]) -> Entered {
    let mut ready = [0; 2];
    let mut go = [0; 2];
    // SAFETY: valid arrays of two ints.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        || unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0
    {
        return Entered::Outside(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the process is single-threaded here (start of main), so the
    // child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Entered::Outside(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: closing our copies of the other ends; plain system calls.
        unsafe {
            libc::close(ready[0]);
            libc::close(go[1]);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        }
        // SAFETY: plain system call.
        let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
        let why = if ok {
            String::new()
        } else {
            std::io::Error::last_os_error().to_string()
        };
        let msg = if ok { b"u".to_vec() } else { why.into_bytes() };
        write_all(ready[1], &msg);
        // SAFETY: our fd.
        unsafe { libc::close(ready[1]) };
        let mut b = [0u8; 1];
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(go[0], b.as_mut_ptr().cast(), 1) };
        if !ok || n != 1 || b[0] != b'g' {
            // The parent goes on outside (or died): this child has no job.
            // SAFETY: ending the child without running the parent's atexit.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: our fd. Dropping the user's supplementary groups, which
        // are unmapped in here, is best effort.
        unsafe {
            libc::close(go[0]);
            libc::setgroups(0, std::ptr::null());
        }
        return Entered::Inside;
    }
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(ready[1]);
        libc::close(go[0]);
    }
    let report = read_all(ready[0]);
    let result = if report == b"u" {
        write_maps(pid, uids, gids)
    } else {
        Err(format!(
            "unsharing a user namespace: {}",
            String::from_utf8_lossy(&report)
        ))
    };
    if let Err(why) = result {
        write_all(go[1], b"n");
        // SAFETY: reaping our own child.
        unsafe {
            libc::close(go[1]);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Entered::Outside(why);
    }
    CHILD.store(pid, Ordering::SeqCst);
    // SAFETY: handlers only call kill; SIG_IGN is always valid.
    unsafe {
        for sig in [libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, forward as *const () as libc::sighandler_t);
        }
        for sig in [libc::SIGINT, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    write_all(go[1], b"g");
    // SAFETY: our fd.
    unsafe { libc::close(go[1]) };
    std::process::exit(wait_status(pid))
}

/// Runs `newuidmap PID inside outside count ...` and `newgidmap` for the
/// groups, both at once (each is a setuid exec: their latency adds to every
/// command).
fn write_maps(pid: i32, uids: &[IdMap], gids: &[IdMap]) -> Result<(), String> {
    let spawn = |tool: &str, map: &[IdMap]| {
        let mut cmd = Command::new(tool);
        cmd.arg(pid.to_string());
        for m in map {
            cmd.args([m.inside, m.outside, m.count].map(|n| n.to_string()));
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().map_err(|e| format!("running {tool}: {e}"))
    };
    let children = [
        ("newuidmap", spawn("newuidmap", uids)),
        ("newgidmap", spawn("newgidmap", gids)),
    ];
    let mut result = Ok(());
    for (tool, child) in children {
        let outcome = child.and_then(|c| {
            let out = c
                .wait_with_output()
                .map_err(|e| format!("waiting for {tool}: {e}"))?;
            if out.status.success() {
                return Ok(());
            }
            Err(format!(
                "{tool} refused the mapping: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        });
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}

/// The exit code for the child's end, as a shell gives it.
fn wait_status(pid: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

fn write_all(fd: i32, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

fn read_all(fd: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    out
}

/// The name of the overlay xattr `what` (`opaque`, ...) in this namespace.
pub fn overlay_xattr(what: &str) -> String {
    let ns = if inside() { "user" } else { "trusted" };
    format!("{ns}.overlay.{what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:300000:10\nbob:200000:65536\nalice:400000:0\n";
        assert_eq!(
            subordinate_ranges(text, "alice", 1001),
            vec![(100000, 65536), (300000, 10)]
        );
        assert_eq!(subordinate_ranges(text, "carol", 7), vec![]);
        assert_eq!(subordinate_ranges("junk\n:::\n", "x", 1), vec![]);
    }

    #[test]
    fn mapping_puts_the_user_at_zero_and_ranges_after() {
        assert_eq!(
            mapping(1001, &[(100000, 65536), (300000, 10)]),
            vec![
                IdMap {
                    inside: 0,
                    outside: 1001,
                    count: 1
                },
                IdMap {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                },
                IdMap {
                    inside: 65537,
                    outside: 300000,
                    count: 10
                },
            ]
        );
        assert!(mapping(1001, &[]).is_empty());
    }

    #[test]
    fn the_initial_map_is_recognised() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map(
            "         0       1001          1\n         1     100000      65536\n"
        ));
    }
}

//! A build step's flushes to disk as no-ops: a seccomp filter that makes
//! `fsync`, `fdatasync`, `sync_file_range`, `syncfs` and `sync` return 0
//! without doing anything.
//!
//! Why this is safe for a build step: nothing a RUN writes is kept in place.
//! When the command has exited, strata reads the upper dir into a layer
//! blob, which the store fsyncs itself (`store.rs`); a step cut short by a
//! crash is run again. The command's own flushes only make the machine
//! wait: dpkg alone flushes every file it unpacks (about 1,900 `fsync`s for
//! the python scenario's apt step, `bench/README.md`). Snapshots are a cache
//! of blobs and are never flushed, with or without this filter.
//!
//! Containers (`strata run`) do not get the filter: what they write may be
//! meant to last (a database).
//!
//! The filter needs no `no_new_privs` (which would break setuid programs in
//! a RUN): it is installed while the process still has `CAP_SYS_ADMIN` (in
//! its user namespace), before the capabilities are dropped. Calls of any
//! other architecture or ABI (i386, x32) pass through unchanged.

use super::sys::{SysResult, os_err};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// The system calls that become no-ops.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn flushes() -> Vec<u32> {
    [
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_sync_file_range,
        libc::SYS_syncfs,
        libc::SYS_sync,
    ]
    .into_iter()
    .map(|n| n as u32)
    .collect()
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_eq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The filter program: (arch != ours) -> allow; nr in `calls` -> return 0;
/// else allow.
fn program(arch: u32, calls: &[u32]) -> Vec<libc::sock_filter> {
    // struct seccomp_data: int nr; __u32 arch; ...
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let n = calls.len();
    let mut p = vec![
        stmt(load, ARCH),
        // Not our arch: skip the checks and the "return 0" to "allow".
        jump_eq(arch, 0, (n + 3) as u8),
        stmt(load, NR),
    ];
    for (i, &nr) in calls.iter().enumerate() {
        // Match: jump to the "return 0" after the last check and the skip.
        p.push(jump_eq(nr, (n - i) as u8, 0));
    }
    // No match: skip "return 0" to "allow".
    p.push(stmt(libc::BPF_JMP | libc::BPF_K, 1)); // BPF_JA +1
    p.push(stmt(ret, libc::SECCOMP_RET_ERRNO)); // errno 0: the call returns 0
    p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    p
}

/// Installs the filter on the calling thread (inherited by its children and
/// kept across exec). Call before the capabilities are dropped.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn install() -> SysResult<()> {
    let prog = program(AUDIT_ARCH, &flushes());
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid program that outlives the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(os_err("installing the no-flush seccomp filter"));
    }
    Ok(())
}

/// Other architectures keep their flushes.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn install() -> SysResult<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program over one (arch, nr) the way the kernel would.
    fn eval(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = p[pc];
            let code = ins.code as u32;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc = if ins.k == 0 { nr } else { arch };
                    pc += 1;
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += 1 + if acc == ins.k { ins.jt } else { ins.jf } as usize;
                }
                c if c == libc::BPF_JMP | libc::BPF_K => pc += 1 + ins.k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return ins.k,
                _ => panic!("unexpected instruction {code:#x}"),
            }
        }
    }

    #[test]
    fn only_the_flushes_of_our_arch_return_zero() {
        let calls = [3, 7, 11];
        let p = program(0xAA, &calls);
        for nr in calls {
            assert_eq!(eval(&p, 0xAA, nr), libc::SECCOMP_RET_ERRNO, "nr {nr}");
            assert_eq!(
                eval(&p, 0xBB, nr),
                libc::SECCOMP_RET_ALLOW,
                "other arch {nr}"
            );
        }
        for nr in [0, 2, 4, 8, 12, 1000] {
            assert_eq!(eval(&p, 0xAA, nr), libc::SECCOMP_RET_ALLOW, "nr {nr}");
        }
    }
}

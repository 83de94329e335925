//! Writing and unpacking a 200 MiB file streams: peak memory stays flat.
//! The in-process test measures this process's peak, so it is the only
//! one here that allocates much; the build test measures a child.

mod common;

use std::io::{self, Read, Write};
use std::process::Stdio;

use strata::digest::Sha256Writer;
use strata::layer::{
    Compression, Entry, EntryKind, UnpackOptions, decompress, unpack, write_layer,
};

const SIZE: u64 = 200 * 1024 * 1024;

/// Peak resident set size of this process so far, in KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Counts and drops what it is given.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_200_mib_file_is_written_and_unpacked_in_flat_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(SIZE).unwrap(); // sparse: no disk, but 200 MiB to read
    drop(f);
    let entry = Entry {
        path: "big".into(),
        kind: EntryKind::File {
            source: src.clone(),
            size: SIZE,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: vec![],
    };
    let Some(before) = vm_hwm_kib() else {
        eprintln!("skipping: /proc/self/status has no VmHWM");
        return;
    };

    let (stats, counter) = write_layer(vec![entry], Compression::Gzip, Counter(0)).unwrap();
    let after_write = vm_hwm_kib().unwrap();
    assert_eq!(stats.uncompressed_size, 512 + SIZE + 1024);
    assert!(
        counter.0 > 0 && counter.0 < SIZE / 100,
        "zeros compress: {}",
        counter.0
    );
    let grew = after_write.saturating_sub(before);
    assert!(grew < 64 * 1024, "writing grew peak RSS by {grew} KiB");

    // Write again into a file, then decompress + unpack it, checking the
    // diff_id on the way; still flat.
    let blob_path = tmp.path().join("blob.gz");
    let blob = std::fs::File::create(&blob_path).unwrap();
    let (stats2, _) = write_layer(
        vec![Entry {
            path: "big".into(),
            kind: EntryKind::File {
                source: src.clone(),
                size: SIZE,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        }],
        Compression::Gzip,
        io::BufWriter::new(blob),
    )
    .unwrap();
    assert_eq!(stats2, stats);

    let mut hashed = Sha256Writer::new(io::sink());
    let mut tar = decompress(
        std::fs::File::open(&blob_path).unwrap(),
        Compression::Gzip.media_type(),
    )
    .unwrap();
    io::copy(&mut tar, &mut hashed).unwrap();
    let (diff_id, len, _) = hashed.finish();
    assert_eq!(diff_id, stats.diff_id);
    assert_eq!(len, stats.uncompressed_size);

    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let tar = decompress(
        std::fs::File::open(&blob_path).unwrap(),
        Compression::Gzip.media_type(),
    )
    .unwrap();
    let un = unpack(tar, &root, &UnpackOptions::default()).unwrap();
    assert_eq!(un.bytes, SIZE);
    assert_eq!(std::fs::metadata(root.join("big")).unwrap().len(), SIZE);
    let mut head = [1u8; 16];
    std::fs::File::open(root.join("big"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(head, [0u8; 16]);
    let grew = vm_hwm_kib().unwrap().saturating_sub(before);
    assert!(
        grew < 64 * 1024,
        "write + unpack grew peak RSS by {grew} KiB"
    );
}

/// Runs `cmd` to its end; its exit status and peak resident set size in
/// KiB (the kernel's `ru_maxrss` of the child, its VmHWM when it exited).
#[allow(clippy::zombie_processes)] // reaped by the wait4 below, for its rusage
fn run_peak_rss(cmd: &mut std::process::Command) -> (i32, u64, String) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || io::read_to_string(stderr).unwrap_or_default());
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss as u64, reader.join().unwrap())
}

/// Issue 12: a build that copies a big context file stays under 100 MiB
/// of resident memory (hashing it once mapped all of it: 1 GiB for 1 GiB).
#[test]
fn a_build_copying_a_256_mib_file_stays_under_100_mib_resident() {
    const BIG: u64 = 256 * 1024 * 1024;
    let env = common::TestEnv::new();
    let ctx = env.write_tree("ctx", &[("Dockerfile", "FROM scratch\nCOPY big /big\n")]);
    let f = std::fs::File::create(ctx.join("big")).unwrap();
    f.set_len(BIG).unwrap(); // sparse: no disk, but 256 MiB to read
    drop(f);
    let (code, peak_kib, stderr) = run_peak_rss(
        env.strata("root")
            .args(["build", "--compression", "none", "--progress", "plain"])
            .arg(&ctx),
    );
    assert_eq!(code, 0, "build failed:\n{stderr}");
    eprintln!("peak RSS of the build: {} KiB", peak_kib);
    assert!(
        peak_kib < 100 * 1024,
        "the build's peak RSS was {} MiB",
        peak_kib / 1024
    );
}

//! Writing and unpacking a 200 MiB file streams: peak memory stays flat.
//! One test per binary, so no other test's allocations count.

use std::io::{self, Read, Write};

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

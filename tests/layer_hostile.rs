//! Hostile layer tars, built header by header, must not write outside the
//! unpack root: each case either fails with a clear error or is confined
//! (as documented in `src/layer/unpack.rs`), and the directory tree around
//! the root is byte-for-byte unchanged.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata::layer::{UnpackOptions, unpack};

// ---- raw tar construction -------------------------------------------------

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    assert!(s.len() <= digits, "test value {v} does not fit");
    field[..digits].copy_from_slice(s.as_bytes());
}

/// One raw ustar header. `name` and `link` are copied as is (up to 100
/// bytes), so they can hold anything a hostile archive could.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_600_000_000);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if typeflag == b'3' || typeflag == b'4' {
        octal(&mut h[329..337], 1);
        octal(&mut h[337..345], 3);
    }
    checksum(&mut h);
    h
}

fn checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, name: &[u8], typeflag: u8, data: &[u8], link: &[u8]) -> Self {
        self.0
            .extend_from_slice(&header(name, typeflag, data.len() as u64, link));
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name.as_bytes(), b'0', data, b"")
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'2', b"", target.as_bytes())
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'1', b"", target.as_bytes())
    }
    /// A PAX extended header for the next entry.
    fn pax(mut self, key: &str, value: &[u8]) -> Self {
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len = base + len.to_string().len();
        }
        let mut rec = format!("{len} {key}=").into_bytes();
        rec.extend_from_slice(value);
        rec.push(b'\n');
        self = self.entry(b"././@PaxHeader", b'x', &rec, b"");
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
    fn unfinished(self) -> Vec<u8> {
        self.0
    }
}

// ---- sandbox --------------------------------------------------------------

/// `sandbox/` holds `a/b/sentinel` and `a/b/root/` (the unpack root); any
/// write outside `root` changes the snapshot of the sandbox.
struct Sandbox {
    _tmp: tempfile::TempDir,
    top: PathBuf,
    root: PathBuf,
    sentinel: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().canonicalize().unwrap();
        let b = top.join("a/b");
        std::fs::create_dir_all(b.join("root")).unwrap();
        std::fs::write(b.join("sentinel"), b"keep me").unwrap();
        Sandbox {
            root: b.join("root"),
            sentinel: b.join("sentinel"),
            top,
            _tmp: tmp,
        }
    }

    /// Everything under the sandbox except the root's content: path ->
    /// (type, size, nlink, content or link target).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(&self.top).follow_links(false) {
            let e = e.unwrap();
            if e.path().starts_with(&self.root) && e.path() != self.root {
                continue;
            }
            let m = e.path().symlink_metadata().unwrap();
            let detail = if m.is_file() {
                format!("file {} {:?}", m.nlink(), std::fs::read(e.path()).unwrap())
            } else if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(e.path()).unwrap())
            } else {
                format!("{:o}", m.mode())
            };
            out.insert(e.path().to_path_buf(), detail);
        }
        out
    }

    /// The absolute sandbox path without its leading '/', for building
    /// names that would land in the sandbox if confinement failed.
    fn rel_top(&self) -> String {
        self.top
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }
}

enum Expect {
    /// An error whose message contains this text.
    Error(&'static str),
    /// Success; the check runs against the root.
    Confined(fn(&Path, &Sandbox)),
}

fn run_case(name: &str, build: impl FnOnce(&Sandbox) -> Vec<u8>, expect: Expect) {
    run_case_with(name, build, expect, UnpackOptions::default());
}

fn run_case_with(
    name: &str,
    build: impl FnOnce(&Sandbox) -> Vec<u8>,
    expect: Expect,
    opts: UnpackOptions,
) {
    let sb = Sandbox::new();
    let tar = build(&sb);
    let before = sb.snapshot();
    let result = unpack(&tar[..], &sb.root, &opts);
    let after = sb.snapshot();
    assert_eq!(
        before, after,
        "case {name}: something outside the root changed"
    );
    assert_eq!(
        std::fs::read(&sb.sentinel).unwrap(),
        b"keep me",
        "case {name}: sentinel changed"
    );
    match (expect, result) {
        (Expect::Error(text), Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(text),
                "case {name}: error {msg:?} does not mention {text:?}"
            );
        }
        (Expect::Error(text), Ok(stats)) => {
            panic!("case {name}: expected an error mentioning {text:?}, got {stats:?}")
        }
        (Expect::Confined(check), Ok(_)) => check(&sb.root, &sb),
        (Expect::Confined(_), Err(e)) => panic!("case {name}: expected confinement, got {e}"),
    }
}

// ---- the corpus -------------------------------------------------------------

#[test]
fn dotdot_escape_is_rejected() {
    run_case(
        "../escape",
        |_| RawTar::default().file("../escape", b"x").finish(),
        Expect::Error("`..`"),
    );
}

#[test]
fn nested_dotdot_escape_is_rejected() {
    run_case(
        "a/../../escape",
        |_| {
            RawTar::default()
                .dir("a/")
                .file("a/../../escape", b"x")
                .finish()
        },
        Expect::Error("`..`"),
    );
}

#[test]
fn absolute_path_is_confined() {
    // Points at the sandbox itself: a broken implementation would write
    // next to the sentinel, which the snapshot catches.
    run_case(
        "absolute",
        |sb| {
            let name = format!("{}/a/b/abs-escape", sb.top.display());
            RawTar::default().file(&name, b"x").finish()
        },
        Expect::Confined(|root, sb| {
            let inside = root.join(sb.rel_top()).join("a/b/abs-escape");
            assert_eq!(std::fs::read(inside).unwrap(), b"x");
        }),
    );
}

#[test]
fn symlink_to_root_then_write_through_it_is_confined() {
    run_case(
        "link -> / ; link/...",
        |sb| {
            let name = format!("link{}/a/b/escaped", sb.top.display());
            RawTar::default()
                .symlink("link", "/")
                .file(&name, b"x")
                .finish()
        },
        Expect::Confined(|root, sb| {
            assert!(
                root.join("link")
                    .symlink_metadata()
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            let inside = root.join(sb.rel_top()).join("a/b/escaped");
            assert_eq!(std::fs::read(inside).unwrap(), b"x");
        }),
    );
}

#[test]
fn symlink_to_etc_then_write_passwd_is_an_error() {
    // The classic shape, aimed at a name no real system has. Inside the
    // root, `/etc` is the link itself: a loop, refused.
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            // Only a broken unpack creates it; don't leave it behind.
            let _ = std::fs::remove_file("/etc/strata-hostile-test-passwd");
        }
    }
    let _cleanup = Cleanup;
    run_case(
        "etc -> /etc",
        |_| {
            RawTar::default()
                .symlink("etc", "/etc")
                .file("etc/strata-hostile-test-passwd", b"x")
                .finish()
        },
        Expect::Error("symbolic links"),
    );
    assert!(!Path::new("/etc/strata-hostile-test-passwd").exists());
}

#[test]
fn relative_symlink_climbing_out_is_confined() {
    run_case(
        "link -> ../.. ; link/x",
        |_| {
            RawTar::default()
                .symlink("link", "../..")
                .file("link/x", b"x")
                .finish()
        },
        Expect::Confined(|root, _| {
            assert_eq!(std::fs::read(root.join("x")).unwrap(), b"x");
        }),
    );
}

#[test]
fn hardlink_with_dotdot_is_rejected() {
    run_case(
        "hardlink ../../etc/passwd",
        |_| RawTar::default().hardlink("l", "../../etc/passwd").finish(),
        Expect::Error("`..`"),
    );
}

#[test]
fn hardlink_to_absolute_path_stays_inside() {
    // The absolute target names the real sentinel; confined, it names a
    // file inside the root that does not exist.
    run_case(
        "hardlink /.../sentinel",
        |sb| {
            RawTar::default()
                .hardlink("l", sb.sentinel.to_str().unwrap())
                .finish()
        },
        Expect::Error("does not exist"),
    );
}

#[test]
fn hardlink_through_planted_symlink_stays_inside() {
    run_case(
        "link -> / ; hardlink link/.../sentinel",
        |sb| {
            let target = format!("link{}", sb.sentinel.display());
            RawTar::default()
                .symlink("link", "/")
                .hardlink("l", &target)
                .finish()
        },
        Expect::Error("does not exist"),
    );
}

#[test]
fn whiteout_of_dotdot_is_rejected() {
    run_case(
        ".wh...",
        |_| RawTar::default().dir("d/").file("d/.wh...", b"").finish(),
        Expect::Error("whiteout"),
    );
}

#[test]
fn whiteout_of_dot_is_rejected() {
    run_case(
        ".wh..",
        |_| RawTar::default().file(".wh..", b"").finish(),
        Expect::Error("whiteout"),
    );
}

#[test]
fn whiteout_through_absolute_symlink_cannot_delete_outside() {
    run_case(
        "link -> sandbox ; link/.wh.sentinel",
        |sb| {
            let target = format!("{}/a/b", sb.top.display());
            RawTar::default()
                .symlink("link", &target)
                .file("link/.wh.sentinel", b"")
                .finish()
        },
        Expect::Confined(|root, _| {
            assert!(root.join("link").symlink_metadata().is_ok());
        }),
    );
}

#[test]
fn opaque_through_symlink_cannot_clear_outside() {
    run_case(
        "link -> ../.. ; link/.wh..wh..opq",
        |_| {
            RawTar::default()
                .file("keep", b"k")
                .symlink("link", "../..")
                .file("link/.wh..wh..opq", b"")
                .finish()
        },
        // Resolves to the root itself; `keep` and `link` are this layer's.
        Expect::Confined(|root, _| {
            assert_eq!(std::fs::read(root.join("keep")).unwrap(), b"k");
        }),
    );
}

#[test]
fn size_larger_than_the_stream_is_an_error() {
    run_case(
        "huge size",
        |_| {
            let mut h = header(b"big", b'0', 0, b"");
            octal(&mut h[124..136], 0o77777777777);
            checksum(&mut h);
            RawTar::default().raw(&h).raw(&[7u8; 100]).unfinished()
        },
        Expect::Error("truncated"),
    );
}

#[test]
fn huge_pax_size_is_an_error() {
    run_case(
        "pax size",
        |_| {
            RawTar::default()
                .pax("size", b"18446744073709551615")
                .file("big", b"")
                .finish()
        },
        Expect::Error("layer"),
    );
}

#[test]
fn archive_cut_inside_a_header_is_an_error() {
    run_case(
        "truncated header",
        |_| {
            let full = RawTar::default()
                .file("a", b"aaaa")
                .file("b", b"bbbb")
                .unfinished();
            full[..512 * 2 + 200].to_vec()
        },
        Expect::Error("corrupt layer"),
    );
}

#[test]
fn archive_cut_inside_file_data_is_an_error() {
    run_case(
        "truncated data",
        |_| {
            let full = RawTar::default().file("a", &[1u8; 3000]).unfinished();
            full[..512 + 1000].to_vec()
        },
        Expect::Error("truncated"),
    );
}

#[test]
fn device_node_is_refused_unless_allowed() {
    run_case(
        "char device",
        |_| RawTar::default().entry(b"null", b'3', b"", b"").finish(),
        Expect::Error("device node"),
    );
    run_case(
        "block device",
        |_| RawTar::default().entry(b"sda", b'4', b"", b"").finish(),
        Expect::Error("device node"),
    );
}

#[test]
fn nul_in_pax_path_is_rejected() {
    run_case(
        "NUL path",
        |_| {
            RawTar::default()
                .pax("path", b"a\0../../escape")
                .file("placeholder", b"x")
                .finish()
        },
        Expect::Error("NUL"),
    );
}

#[test]
fn empty_path_is_rejected() {
    run_case(
        "empty path",
        |_| RawTar::default().file("", b"x").finish(),
        Expect::Error("empty"),
    );
}

#[test]
fn symlink_loop_in_parent_is_an_error() {
    run_case(
        "a -> b -> a",
        |_| {
            RawTar::default()
                .symlink("a", "b")
                .symlink("b", "a")
                .file("a/x", b"x")
                .finish()
        },
        Expect::Error("resolving"),
    );
}

#[test]
fn file_replacing_a_symlink_does_not_write_through_it() {
    run_case(
        "f -> sentinel ; f",
        |sb| {
            RawTar::default()
                .symlink("f", sb.sentinel.to_str().unwrap())
                .file("f", b"overwritten")
                .finish()
        },
        Expect::Confined(|root, _| {
            let m = root.join("f").symlink_metadata().unwrap();
            assert!(m.is_file());
            assert_eq!(std::fs::read(root.join("f")).unwrap(), b"overwritten");
        }),
    );
}

#[test]
fn bad_header_checksum_is_an_error() {
    run_case(
        "checksum",
        |_| {
            let mut h = header(b"a", b'0', 0, b"");
            h[0] = b'b'; // changes the name after the checksum was taken
            RawTar::default().raw(&h).finish()
        },
        Expect::Error("checksum"),
    );
}

#[test]
fn file_under_a_regular_file_is_an_error() {
    run_case(
        "f ; f/x",
        |_| RawTar::default().file("f", b"1").file("f/x", b"2").finish(),
        Expect::Error("not a directory"),
    );
}

#[test]
fn gnu_sparse_is_unsupported() {
    run_case(
        "sparse",
        |_| RawTar::default().entry(b"s", b'S', b"", b"").finish(),
        Expect::Error("sparse"),
    );
}

//! Applying an untrusted layer tar onto a directory.
//!
//! Confinement rules (the tests in `tests/layer_hostile.rs` pin them):
//! * Entry names with a `..` component, an empty name or a NUL byte are
//!   rejected. A leading `/` (and `.` components) are ignored: absolute names
//!   are confined to the root, as every OCI implementation treats them.
//! * Every file system call is relative to a directory fd and names one
//!   component. The last component of an entry is never followed.
//! * Symlinks met while resolving a parent directory (including ones this
//!   layer planted) are resolved *inside* the root, as if the root were `/`
//!   (the semantics of `openat2(RESOLVE_IN_ROOT)`, done component by
//!   component in user space so it also works where `openat2` is filtered):
//!   `..` stops at the root and absolute targets restart at the root, so
//!   `lib -> usr/lib` keeps working and `link -> /` cannot lead outside.
//! * Hard link targets are resolved the same way, so they are inside the root.
//! * Device nodes only when [`UnpackOptions::allow_devices`]; GNU sparse
//!   entries are not supported; truncated data or archives are errors.
//!
//! Whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) apply only to
//! content of lower layers: directory entries this layer itself created (or
//! merged into, for directories) are kept, whichever order the layer lists
//! them in and however it spells their path. They are recorded as
//! (device, parent directory inode, name), so a path reached through a
//! symlink is recognised too.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::sys;
use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::error::{Error, IoContext, Result};

/// Limit on symlinks followed while resolving one path (as Linux's 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// How [`unpack`] treats privileged content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Create character/block device nodes (true only when running as root);
    /// otherwise a device entry is an error.
    pub allow_devices: bool,
    /// chown entries to the uid/gid in the tar (only as root); otherwise
    /// everything belongs to the current user.
    pub preserve_owners: bool,
    /// Unpack one layer on its own as an overlayfs lower layer: a whiteout
    /// becomes overlay's 0:0 character device and an opaque marker the
    /// `trusted.overlay.opaque` xattr (`user.overlay.opaque` in a user
    /// namespace), instead of deleting lower content (there is none). Needs
    /// root, or root in a user namespace.
    pub overlay_whiteouts: bool,
    /// Entries whose tar mtime is at or after `from` get the mtime `to`
    /// instead: a build step's snapshot shows the files a step wrote (whose
    /// real mtimes the layer clamped to the epoch) with the time the
    /// snapshot was made, so mtime-based tools in later steps see changed
    /// files as new (see spec/README.md, "Timestamps").
    pub restamp: Option<Restamp>,
}

/// See [`UnpackOptions::restamp`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restamp {
    pub from: u64,
    pub to: u64,
}

impl UnpackOptions {
    /// Both privileges on when the process runs as root, off otherwise.
    pub fn for_current_user() -> UnpackOptions {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        UnpackOptions {
            allow_devices: root,
            preserve_owners: root,
            overlay_whiteouts: false,
            restamp: None,
        }
    }
}

/// What [`unpack`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar members applied (whiteouts and markers included, PAX global
    /// headers not).
    pub entries: usize,
    /// File content bytes written.
    pub bytes: u64,
}

/// Applies one uncompressed layer tar onto `root` (an existing directory)
/// with OCI semantics: whiteouts delete, opaque markers clear the
/// directory's lower content, later entries replace earlier ones. Never
/// writes outside `root` (see the module docs for the exact rules). Sets
/// modes, mtimes, symlink targets, owners (if asked) and xattrs (best effort,
/// `user.*` and `security.*` only).
pub fn unpack<R: Read>(tar: R, root: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let root_fd = sys::open_dir_path(root).at("opening unpack root", root)?;
    let mut u = Unpacker {
        root: root_fd,
        opts: *opts,
        created: HashSet::new(),
        dirs: BTreeMap::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 128 * 1024],
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("reading archive: {e}")))?;
    for item in entries {
        let mut entry = item.map_err(|e| {
            corrupt(format!(
                "reading entry header after {} entries: {e}",
                u.stats.entries
            ))
        })?;
        u.apply(&mut entry)?;
    }
    u.finish()?;
    Ok(u.stats)
}

fn corrupt(detail: String) -> Error {
    Error::corrupt("layer", detail)
}

/// Splits an entry name into components: leading `/` and `.` components
/// dropped, `..`, NUL and empty names refused.
fn components(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.contains(&0) {
        return Err("NUL byte in name");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("`..` component"),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn name_c(comp: &[u8]) -> io::Result<CString> {
    sys::cstring(comp)
}

/// What a tar member becomes.
enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// Per-entry metadata read from the header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// A directory entry: (st_dev, st_ino of the directory, name).
type DirEntryId = (u64, u64, Vec<u8>);

fn dir_entry_id(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<DirEntryId> {
    let st = sys::fstat(dir)?;
    Ok((st.st_dev, st.st_ino, name.to_vec()))
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    /// Directory entries this layer created: (st_dev, parent st_ino, name).
    created: HashSet<DirEntryId>,
    /// Directory modes and mtimes, applied at the end (children first) so
    /// that later entries neither bump the mtime nor hit a read-only dir.
    dirs: BTreeMap<Vec<u8>, (u32, u64)>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker {
    /// Resolves `comps` to a directory inside the root, following symlinks
    /// as if the root were `/`. Missing directories are created when
    /// `create`, else the result is `None`.
    fn resolve(&self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<OwnedFd>> {
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = queue.pop_front() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur: BorrowedFd<'_> = stack.last().map_or(self.root.as_fd(), |f| f.as_fd());
            let name = name_c(&comp)?;
            let st = match sys::lstatat_opt(cur, &name)? {
                Some(st) => st,
                None if create => {
                    match sys::mkdirat(cur, &name, 0o755) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                        _ => {}
                    }
                    sys::lstatat(cur, &name)?
                }
                None => return Ok(None),
            };
            match sys::file_type(&st) {
                libc::S_IFDIR => {
                    let fd = sys::openat(
                        cur,
                        &name,
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    stack.push(fd);
                }
                libc::S_IFLNK => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlinkat(cur, &name)?;
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        queue.push_front(c.to_vec());
                    }
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("`{}` is not a directory", String::from_utf8_lossy(&comp)),
                    ));
                }
            }
        }
        match stack.pop() {
            Some(fd) => Ok(Some(fd)),
            None => {
                sys::openat(self.root.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0).map(Some)
            }
        }
    }

    fn apply<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let etype = e.header().entry_type();
        if etype.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |why: String| corrupt(format!("entry {shown:?}: {why}"));
        let comps = components(&raw).map_err(|w| bad(w.to_string()))?;
        let kind = match etype {
            tar::EntryType::Directory => Kind::Dir,
            // Old tars mark directories with a trailing slash only.
            tar::EntryType::Regular | tar::EntryType::Continuous if raw.ends_with(b"/") => {
                Kind::Dir
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::GNUSparse => {
                return Err(Error::Unsupported(format!(
                    "GNU sparse tar entry ({shown:?})"
                )));
            }
            other => {
                return Err(bad(format!(
                    "unsupported tar entry type {:?}",
                    other.as_byte() as char
                )));
            }
        };
        let mut meta = read_meta(e).map_err(|err| bad(err.to_string()))?;
        if let Some(r) = self.opts.restamp
            && meta.mtime >= r.from
        {
            meta.mtime = r.to;
        }
        self.stats.entries += 1;

        let Some((base, parent)) = comps.split_last() else {
            // The root itself (`./`): its metadata belongs to the caller.
            return match kind {
                Kind::Dir => Ok(()),
                _ => Err(bad("names the root directory".into())),
            };
        };
        let io_err =
            |verb: &str, err: io::Error| Error::io(format!("{verb} layer entry {shown:?}"), err);

        if base.as_slice() == OPAQUE_MARKER.as_bytes() {
            return self.opaque(parent).map_err(|err| io_err("applying", err));
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(bad("whiteout of an invalid name".into()));
            }
            return self
                .whiteout(parent, hidden)
                .map_err(|err| io_err("applying", err));
        }

        let path = join(&comps);
        let parent_fd = self
            .resolve(parent, true)
            .map_err(|err| io_err("resolving the parent of", err))?
            .ok_or_else(|| bad("parent directory could not be created".into()))?;
        let pfd = parent_fd.as_fd();
        let name = name_c(base).map_err(|err| io_err("naming", err))?;

        match kind {
            Kind::Dir => {
                let exists =
                    replace_existing(pfd, &name, true).map_err(|err| io_err("replacing", err))?;
                if !exists {
                    sys::mkdirat(pfd, &name, 0o700).map_err(|err| io_err("creating", err))?;
                }
                let fd = sys::openat(
                    pfd,
                    &name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(|err| io_err("opening", err))?;
                if self.opts.preserve_owners {
                    sys::fchown(fd.as_fd(), meta.uid, meta.gid)
                        .map_err(|err| io_err("chowning", err))?;
                }
                set_xattrs(fd.as_fd(), &meta.xattrs);
                self.dirs.insert(path.clone(), (meta.mode, meta.mtime));
            }
            Kind::File => {
                replace_existing(pfd, &name, false).map_err(|err| io_err("replacing", err))?;
                let fd = sys::openat(
                    pfd,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|err| io_err("creating", err))?;
                let mut file = File::from(fd);
                let size = e.size();
                let mut written = 0u64;
                loop {
                    let n = match e.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(bad(format!("reading file data: {err}"))),
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(|err| io_err("writing", err))?;
                    written += n as u64;
                }
                if written != size {
                    return Err(bad(format!(
                        "truncated archive: header says {size} bytes, only {written} present"
                    )));
                }
                self.stats.bytes += written;
                let fd = file.as_fd();
                if self.opts.preserve_owners {
                    sys::fchown(fd, meta.uid, meta.gid).map_err(|err| io_err("chowning", err))?;
                }
                // chmod after chown: chown clears setuid/setgid.
                sys::fchmod(fd, meta.mode).map_err(|err| io_err("chmoding", err))?;
                set_xattrs(fd, &meta.xattrs);
                sys::futimes(fd, meta.mtime).map_err(|err| io_err("setting mtime of", err))?;
            }
            Kind::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(bad("symlink with an empty target or a NUL byte".into()));
                }
                let target = sys::cstring(&target).map_err(|err| io_err("linking", err))?;
                replace_existing(pfd, &name, false).map_err(|err| io_err("replacing", err))?;
                sys::symlinkat(&target, pfd, &name).map_err(|err| io_err("creating", err))?;
                if self.opts.preserve_owners {
                    sys::lchownat(pfd, &name, meta.uid, meta.gid)
                        .map_err(|err| io_err("chowning", err))?;
                }
                sys::lutimesat(pfd, &name, meta.mtime)
                    .map_err(|err| io_err("setting mtime of", err))?;
            }
            Kind::Hardlink => {
                let target = e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let tcomps =
                    components(&target).map_err(|w| bad(format!("hard link target: {w}")))?;
                let Some((tbase, tparent)) = tcomps.split_last() else {
                    return Err(bad("hard link to the root directory".into()));
                };
                let shown_target = String::from_utf8_lossy(&target).into_owned();
                let missing = || {
                    bad(format!(
                        "hard link target {shown_target:?} does not exist in the layer root"
                    ))
                };
                let tparent_fd = self
                    .resolve(tparent, false)
                    .map_err(|err| io_err("resolving the hard link target of", err))?
                    .ok_or_else(missing)?;
                let tname = name_c(tbase).map_err(|err| io_err("naming", err))?;
                let st = sys::lstatat_opt(tparent_fd.as_fd(), &tname)
                    .map_err(|err| io_err("resolving the hard link target of", err))?
                    .ok_or_else(missing)?;
                if sys::file_type(&st) == libc::S_IFDIR {
                    return Err(bad(format!(
                        "hard link target {shown_target:?} is a directory"
                    )));
                }
                if join(&tcomps) != path {
                    replace_existing(pfd, &name, false).map_err(|err| io_err("replacing", err))?;
                    sys::linkat(tparent_fd.as_fd(), &tname, pfd, &name)
                        .map_err(|err| io_err("linking", err))?;
                }
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let ftype = match kind {
                    Kind::Char => libc::S_IFCHR,
                    Kind::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = if ftype == libc::S_IFIFO {
                    0
                } else {
                    if !self.opts.allow_devices {
                        return Err(Error::msg(format!(
                            "layer entry {shown:?} is a device node; device nodes are only \
                             created when unpacking as root (allow_devices)"
                        )));
                    }
                    let h = e.header();
                    let major = h
                        .device_major()
                        .map_err(|err| bad(err.to_string()))?
                        .unwrap_or(0);
                    let minor = h
                        .device_minor()
                        .map_err(|err| bad(err.to_string()))?
                        .unwrap_or(0);
                    libc::makedev(major, minor)
                };
                replace_existing(pfd, &name, false).map_err(|err| io_err("replacing", err))?;
                sys::mknodat(pfd, &name, ftype | meta.mode, dev)
                    .map_err(|err| io_err("creating", err))?;
                if self.opts.preserve_owners {
                    sys::lchownat(pfd, &name, meta.uid, meta.gid)
                        .map_err(|err| io_err("chowning", err))?;
                }
                sys::fchmodat(pfd, &name, meta.mode).map_err(|err| io_err("chmoding", err))?;
                sys::lutimesat(pfd, &name, meta.mtime)
                    .map_err(|err| io_err("setting mtime of", err))?;
            }
        }
        let id = dir_entry_id(pfd, base).map_err(|err| io_err("recording", err))?;
        self.created.insert(id);
        Ok(())
    }

    /// `.wh.NAME` in `parent`: removes NAME unless this layer created it.
    fn whiteout(&mut self, parent: &[Vec<u8>], hidden: &[u8]) -> io::Result<()> {
        if self.opts.overlay_whiteouts {
            let Some(dir) = self.resolve(parent, true)? else {
                return Ok(());
            };
            let name = name_c(hidden)?;
            if sys::lstatat_opt(dir.as_fd(), &name)?.is_some() {
                // This layer also created NAME: the entry wins.
                return Ok(());
            }
            return sys::mknodat(dir.as_fd(), &name, libc::S_IFCHR, 0);
        }
        let Some(dir) = self.resolve(parent, false)? else {
            return Ok(());
        };
        if self.created.contains(&dir_entry_id(dir.as_fd(), hidden)?) {
            return Ok(());
        }
        sys::remove_all_at(dir.as_fd(), &name_c(hidden)?)
    }

    /// `.wh..wh..opq` in `dir`: removes everything in it this layer did not
    /// create.
    fn opaque(&mut self, dir: &[Vec<u8>]) -> io::Result<()> {
        let Some(fd) = self.resolve(dir, true)? else {
            return Ok(());
        };
        if self.opts.overlay_whiteouts {
            // `fd` is an O_PATH descriptor: set the xattr through its
            // /proc/self/fd link, which names exactly that directory.
            let link = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            return sys::setxattr_path(&link, &crate::userns::overlay_xattr("opaque"), b"y");
        }
        for child in sys::read_dir_names(fd.as_fd())? {
            if !self
                .created
                .contains(&dir_entry_id(fd.as_fd(), child.to_bytes())?)
            {
                sys::remove_all_at(fd.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    /// Applies the deferred directory modes and mtimes, deepest first.
    fn finish(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, (mode, mtime)) in dirs.iter().rev() {
            let comps: Vec<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
            let Some((base, parent)) = comps.split_last() else {
                continue;
            };
            let shown = String::from_utf8_lossy(path);
            let io_err = |err: io::Error| {
                Error::io(
                    format!("setting mode and mtime of directory {shown:?}"),
                    err,
                )
            };
            let Some(pfd) = self.resolve(parent, false).map_err(io_err)? else {
                continue;
            };
            let name = name_c(base).map_err(io_err)?;
            match sys::lstatat_opt(pfd.as_fd(), &name).map_err(io_err)? {
                Some(st) if sys::file_type(&st) == libc::S_IFDIR => {}
                _ => continue, // replaced by a later entry or whited out
            }
            sys::fchmodat(pfd.as_fd(), &name, *mode).map_err(io_err)?;
            sys::lutimesat(pfd.as_fd(), &name, *mtime).map_err(io_err)?;
        }
        Ok(())
    }
}

/// Makes room for a new entry called `name`: an existing directory stays if
/// the new entry is one too (returns true: merge), anything else is removed.
fn replace_existing(dir: BorrowedFd<'_>, name: &CString, new_is_dir: bool) -> io::Result<bool> {
    match sys::lstatat_opt(dir, name)? {
        None => Ok(false),
        Some(st) if sys::file_type(&st) == libc::S_IFDIR => {
            if new_is_dir {
                Ok(true)
            } else {
                sys::remove_all_at(dir, name)?;
                Ok(false)
            }
        }
        Some(_) => {
            sys::unlinkat(dir, name, false)?;
            Ok(false)
        }
    }
}

/// Best effort: only `user.*` and `security.*`; failures (no xattr support,
/// no privilege) are ignored.
fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(String, Vec<u8>)]) {
    for (k, v) in xattrs {
        if k.starts_with("user.") || k.starts_with("security.") {
            let _ = sys::fsetxattr(fd, k, v);
        }
    }
}

fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = e.header();
    let too_big =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what} too large"));
    let mode = h.mode()? & 0o7777;
    let uid = u32::try_from(h.uid()?).map_err(|_| too_big("uid"))?;
    let gid = u32::try_from(h.gid()?).map_err(|_| too_big("gid"))?;
    let mut mtime = h.mtime()?;
    let mut xattrs = Vec::new();
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                // "seconds[.fraction]", possibly negative: keep whole
                // seconds, clamp before the epoch to 0.
                let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                let whole = v.split('.').next().unwrap_or("");
                mtime = whole.parse::<i64>().map(|s| s.max(0) as u64).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad PAX mtime {v:?}"))
                })?;
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.")
                && let Ok(name) = std::str::from_utf8(name)
            {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_rules() {
        let c = |s: &str| components(s.as_bytes());
        assert_eq!(c("/etc/x").unwrap(), vec![b"etc".to_vec(), b"x".to_vec()]);
        assert_eq!(c("./a//b/").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(c("./").unwrap().is_empty());
        assert!(c("").is_err());
        assert!(c("a/../b").is_err());
        assert!(c("..").is_err());
        assert!(components(b"a\0b").is_err());
        assert_eq!(c("...").unwrap(), vec![b"...".to_vec()]);
    }
}

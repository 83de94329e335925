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
//! * Resolved parent directories are kept open, by component, for the next
//!   entries (tar entries come grouped by directory): a path is walked once,
//!   not once per entry. The cache is dropped whenever an entry removes or
//!   replaces a name, so it never names a directory that changed.
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
use std::rc::Rc;

use super::sys;
use super::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::error::{Error, IoContext, Result};

/// Limit on symlinks followed while resolving one path (as Linux's 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// How many directory levels the parent cache keeps open (deeper parents
/// are resolved from the deepest cached level each time).
const MAX_CACHED_DEPTH: usize = 64;

/// Read-ahead on the layer tar: headers and small files come out of one
/// buffer instead of a read per 8 KiB.
const READ_BUFFER: usize = 1 << 20;

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
    let st = sys::fstat(root_fd.as_fd()).at("opening unpack root", root)?;
    let mut u = Unpacker {
        root: Rc::new(Dir {
            fd: root_fd,
            dev: st.st_dev,
            ino: st.st_ino,
        }),
        cache: Vec::new(),
        opts: *opts,
        created: HashSet::new(),
        dirs: BTreeMap::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let mut archive = tar::Archive::new(io::BufReader::with_capacity(READ_BUFFER, tar));
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

/// A directory inside the root: a handle usable as the `dirfd` of `*at`
/// calls, and its identity.
struct Dir {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
}

impl Dir {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn entry_id(&self, name: &[u8]) -> DirEntryId {
        (self.dev, self.ino, name.to_vec())
    }
}

/// One level of the parent cache: an entry-name component and the real
/// directory it resolved to.
struct Level {
    name: Vec<u8>,
    dir: Rc<Dir>,
}

struct Unpacker {
    root: Rc<Dir>,
    /// The directories the last resolved path went through, by component,
    /// while each component was a real directory (not a symlink): tar
    /// entries come grouped by directory, so most parents are found here
    /// without a system call. A cached resolution depends only on names
    /// that existed when it was made; creating names cannot change it, so
    /// the cache is dropped only when an entry removes or replaces a name
    /// ([`Unpacker::forget`]).
    cache: Vec<Level>,
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
    /// `create`, else the result is `None`. Starts from the deepest cached
    /// level `comps` shares with the last resolution and caches the levels
    /// it passes until it meets a symlink.
    fn resolve(&mut self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<Rc<Dir>>> {
        let shared = self
            .cache
            .iter()
            .zip(comps)
            .take_while(|(level, c)| level.name == **c)
            .count();
        self.cache.truncate(shared);
        let mut stack: Vec<Rc<Dir>> = self.cache.iter().map(|l| l.dir.clone()).collect();
        let mut queue: VecDeque<Vec<u8>> = comps[shared..].iter().cloned().collect();
        // True while every component so far named a real directory, so
        // the stack is the cache (names from a symlink target are not
        // components of the entry's path).
        let mut caching = true;
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
            let cur = stack.last().unwrap_or(&self.root).clone();
            let name = name_c(&comp)?;
            let st = match sys::lstatat_opt(cur.fd(), &name)? {
                Some(st) => st,
                None if create => {
                    match sys::mkdirat(cur.fd(), &name, 0o755) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                        _ => {}
                    }
                    sys::lstatat(cur.fd(), &name)?
                }
                None => return Ok(None),
            };
            match sys::file_type(&st) {
                libc::S_IFDIR => {
                    let fd = sys::openat(
                        cur.fd(),
                        &name,
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    let dir = Rc::new(Dir {
                        fd,
                        dev: st.st_dev,
                        ino: st.st_ino,
                    });
                    if caching && self.cache.len() < MAX_CACHED_DEPTH {
                        self.cache.push(Level {
                            name: comp,
                            dir: dir.clone(),
                        });
                    } else {
                        caching = false;
                    }
                    stack.push(dir);
                }
                libc::S_IFLNK => {
                    caching = false;
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlinkat(cur.fd(), &name)?;
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
        Ok(Some(stack.pop().unwrap_or_else(|| self.root.clone())))
    }

    /// Drops the parent cache: a name is about to be removed or replaced,
    /// and a cached level may have gone through it.
    fn forget(&mut self) {
        self.cache.clear();
    }

    /// Runs `create` (which makes `name` in `dir`); if `name` exists, makes
    /// room for it ([`replace_existing`]) and runs it again. Returns true
    /// when `new_is_dir` and an existing directory stays (merge; `create`
    /// is not run again).
    fn create_or_replace(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CString,
        new_is_dir: bool,
        mut create: impl FnMut() -> io::Result<()>,
    ) -> io::Result<bool> {
        match create() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => return other.map(|()| false),
        }
        let st = sys::lstatat(dir, name)?;
        if new_is_dir && sys::file_type(&st) == libc::S_IFDIR {
            return Ok(true);
        }
        self.forget();
        replace_existing(dir, name)?;
        create().map(|()| false)
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
        let parent_dir = self
            .resolve(parent, true)
            .map_err(|err| io_err("resolving the parent of", err))?
            .ok_or_else(|| bad("parent directory could not be created".into()))?;
        let pfd = parent_dir.fd();
        let name = name_c(base).map_err(|err| io_err("naming", err))?;

        match kind {
            Kind::Dir => {
                self.create_or_replace(pfd, &name, true, || sys::mkdirat(pfd, &name, 0o700))
                    .map_err(|err| io_err("creating", err))?;
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
                // Its entries usually come next: cache it as the level
                // below its parent (when the parent is the cache's end).
                if self.cache.len() == parent.len() && self.cache.len() < MAX_CACHED_DEPTH {
                    let st = sys::fstat(fd.as_fd()).map_err(|err| io_err("opening", err))?;
                    self.cache.push(Level {
                        name: base.clone(),
                        dir: Rc::new(Dir {
                            fd,
                            dev: st.st_dev,
                            ino: st.st_ino,
                        }),
                    });
                }
            }
            Kind::File => {
                let mut fd = None;
                self.create_or_replace(pfd, &name, false, || {
                    fd = Some(sys::openat(
                        pfd,
                        &name,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                        0o600,
                    )?);
                    Ok(())
                })
                .map_err(|err| io_err("creating", err))?;
                let fd = fd.ok_or_else(|| bad("file was not created".into()))?;
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
                self.create_or_replace(pfd, &name, false, || sys::symlinkat(&target, pfd, &name))
                    .map_err(|err| io_err("creating", err))?;
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
                let tparent_dir = self
                    .resolve(tparent, false)
                    .map_err(|err| io_err("resolving the hard link target of", err))?
                    .ok_or_else(missing)?;
                let tname = name_c(tbase).map_err(|err| io_err("naming", err))?;
                let st = sys::lstatat_opt(tparent_dir.fd(), &tname)
                    .map_err(|err| io_err("resolving the hard link target of", err))?
                    .ok_or_else(missing)?;
                if sys::file_type(&st) == libc::S_IFDIR {
                    return Err(bad(format!(
                        "hard link target {shown_target:?} is a directory"
                    )));
                }
                if join(&tcomps) != path {
                    self.create_or_replace(pfd, &name, false, || {
                        sys::linkat(tparent_dir.fd(), &tname, pfd, &name)
                    })
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
                self.create_or_replace(pfd, &name, false, || {
                    sys::mknodat(pfd, &name, ftype | meta.mode, dev)
                })
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
        self.created.insert(parent_dir.entry_id(base));
        Ok(())
    }

    /// `.wh.NAME` in `parent`: removes NAME unless this layer created it.
    fn whiteout(&mut self, parent: &[Vec<u8>], hidden: &[u8]) -> io::Result<()> {
        if self.opts.overlay_whiteouts {
            let Some(dir) = self.resolve(parent, true)? else {
                return Ok(());
            };
            let name = name_c(hidden)?;
            if sys::lstatat_opt(dir.fd(), &name)?.is_some() {
                // This layer also created NAME: the entry wins.
                return Ok(());
            }
            return sys::mknodat(dir.fd(), &name, libc::S_IFCHR, 0);
        }
        let Some(dir) = self.resolve(parent, false)? else {
            return Ok(());
        };
        if self.created.contains(&dir.entry_id(hidden)) {
            return Ok(());
        }
        self.forget();
        sys::remove_all_at(dir.fd(), &name_c(hidden)?)
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
            let link = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.fd().as_raw_fd()));
            return sys::setxattr_path(&link, &crate::userns::overlay_xattr("opaque"), b"y");
        }
        for child in sys::read_dir_names(fd.fd())? {
            if !self.created.contains(&fd.entry_id(child.to_bytes())) {
                self.forget();
                sys::remove_all_at(fd.fd(), &child)?;
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
            match sys::lstatat_opt(pfd.fd(), &name).map_err(io_err)? {
                Some(st) if sys::file_type(&st) == libc::S_IFDIR => {}
                _ => continue, // replaced by a later entry or whited out
            }
            sys::fchmodat(pfd.fd(), &name, *mode).map_err(io_err)?;
            sys::lutimesat(pfd.fd(), &name, *mtime).map_err(io_err)?;
        }
        Ok(())
    }
}

/// Makes room for a new entry called `name`: whatever is there is removed
/// (a directory with its content).
fn replace_existing(dir: BorrowedFd<'_>, name: &CString) -> io::Result<()> {
    match sys::lstatat_opt(dir, name)? {
        None => Ok(()),
        Some(st) if sys::file_type(&st) == libc::S_IFDIR => sys::remove_all_at(dir, name),
        Some(_) => sys::unlinkat(dir, name, false),
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

    /// A tar of (name, type, data or link target) entries.
    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_mtime(1);
            h.set_uid(0);
            h.set_gid(0);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_size(0);
                h.set_link_name(data).unwrap();
                b.append_data(&mut h, name, io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn plain() -> UnpackOptions {
        UnpackOptions {
            allow_devices: false,
            preserve_owners: false,
            overlay_whiteouts: false,
            restamp: None,
        }
    }

    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    // In these two, `a/b/up -> ..` reaches `a` from inside the cached
    // `a/b`, so an entry can replace `a/b` while it is the cache's end.

    #[test]
    fn a_cached_parent_replaced_through_a_symlink_is_resolved_again() {
        let root = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("a/b/", D, ""),
            ("a/b/up", L, ".."),
            ("a/c/", D, ""),
            ("a/b/f", F, "f"),
            ("a/b/up/b", L, "c"),
            ("a/b/z", F, "z"),
        ]);
        unpack(&tar[..], root.path(), &plain()).unwrap();
        let r = root.path();
        assert!(r.join("a/b").symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(r.join("a/c/z")).unwrap(), "z");
        assert!(!r.join("a/c/f").exists());
    }

    #[test]
    fn a_cached_parent_removed_by_a_whiteout_is_made_again() {
        let root = tempfile::tempdir().unwrap();
        let lower = tar_of(&[("a/b/", D, ""), ("a/b/up", L, ".."), ("a/b/f", F, "f")]);
        unpack(&lower[..], root.path(), &plain()).unwrap();
        // `a/b/g` caches a and a/b; the whiteout removes that a/b; `a/b/h`
        // must land in a new a/b, not in the removed one.
        let upper = tar_of(&[
            ("a/b/g", F, "g"),
            ("a/b/up/.wh.b", F, ""),
            ("a/b/h", F, "h"),
        ]);
        unpack(&upper[..], root.path(), &plain()).unwrap();
        let r = root.path();
        assert_eq!(std::fs::read_to_string(r.join("a/b/h")).unwrap(), "h");
        assert!(!r.join("a/b/f").exists());
        assert!(!r.join("a/b/g").exists());
    }

    #[test]
    fn parents_deeper_than_the_cache_still_resolve() {
        let root = tempfile::tempdir().unwrap();
        let deep = vec!["n"; MAX_CACHED_DEPTH + 6].join("/");
        let (a, b) = (format!("{deep}/a"), format!("{deep}/b"));
        let tar = tar_of(&[(a.as_str(), F, "a"), ("lnk", L, "n"), (b.as_str(), F, "b")]);
        unpack(&tar[..], root.path(), &plain()).unwrap();
        let r = root.path();
        assert_eq!(std::fs::read_to_string(r.join(&a)).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(r.join(&b)).unwrap(), "b");
    }
}

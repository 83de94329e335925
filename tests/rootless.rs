//! Rootless builds (issue 15): an ordinary user with /etc/subuid ranges
//! builds, runs and prunes, and gets the digest root gets. The harness makes
//! its own users (`useradd`), so it needs root; it skips with a visible
//! message where it cannot run (not root, no newuidmap, no useradd).

#[path = "buildkit/cases.rs"]
mod cases;
mod common;
#[path = "buildkit/setup.rs"]
mod setup;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::image_tree;
use common::*;

/// A user with subordinate ranges, and one without.
const USER: &str = "strata-rootless";
const NO_RANGES: &str = "strata-noranges";
/// The ranges this harness gives USER (away from the usual 100000).
const RANGE: &str = "400000-465535";

/// Exercises what a rootless namespace must get right: owners other than
/// root, a setuid bit, a whiteout, an opaque directory, a cache mount, a
/// secret, and a stage built on a stage (its snapshot unpacked with owners).
/// No RUN may write what the clock gives (see
/// `the_rootless_dockerfile_gives_one_digest_whenever_its_snapshots_were_made`).
const DOCKERFILE: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /gone/sub /home/app && echo a > /gone/sub/f && echo rm > /rm \
 && echo hi > /x && chown 1000:1000 /x /home/app && chmod 4755 /x && chown 65000:65001 /gone/sub/f

FROM base
RUN rm /rm && rm -rf /gone && mkdir /gone && echo b > /gone/new
RUN --mount=type=cache,target=/c,id=rl echo cached > /c/f && cat /c/f > /from-cache
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secret-len
RUN stat -c '%n %u %g %a' /x /home/app > /owners && id -u > /build-uid
"#;

fn tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates the harness's users once (idempotent, one test at a time);
/// false (with a SKIP line) when this machine cannot.
fn users(test: &str) -> bool {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        eprintln!("SKIP {test}: making test users needs root");
        return false;
    }
    for t in ["useradd", "usermod", "runuser", "newuidmap", "newgidmap"] {
        if !tool(t) {
            eprintln!("SKIP {test}: `{t}` is not installed (packages passwd, util-linux, uidmap)");
            return false;
        }
    }
    // A system user gets no subordinate ids from useradd; an ordinary one
    // may get a range (login.defs SUB_UID_COUNT); USER gets ours below.
    for (u, kind) in [(USER, "--no-create-home"), (NO_RANGES, "--system")] {
        let exists = Command::new("id").arg(u).output().unwrap().status.success();
        if !exists {
            let ok = Command::new("useradd")
                .args([kind, "--shell", "/bin/sh", u])
                .status()
                .unwrap()
                .success();
            assert!(ok, "useradd {u}");
        }
    }
    let has_range = std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{USER}:")));
    if !has_range {
        let ok = Command::new("usermod")
            .args(["--add-subuids", RANGE, "--add-subgids", RANGE, USER])
            .status()
            .unwrap()
            .success();
        assert!(ok, "usermod --add-subuids");
    }
    true
}

/// The test dir made usable by the test users: the binary copied in, every
/// file theirs to read, the dir theirs to write.
struct Setup {
    env: TestEnv,
    exe: PathBuf,
    ctx: PathBuf,
    secret: PathBuf,
}

fn setup(test: &str) -> Option<Setup> {
    if !users(test) {
        return None;
    }
    let bb = busybox(test)?;
    let env = TestEnv::new();
    let ctx = env.write_tree("ctx", &[("Dockerfile", DOCKERFILE)]);
    std::fs::copy(bb, ctx.join("busybox")).unwrap();
    let exe = env.path("strata");
    std::fs::copy(env!("CARGO_BIN_EXE_strata"), &exe).unwrap();
    let secret = env.path("tok");
    std::fs::write(&secret, "s3cret").unwrap();
    let dir = env.dir.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ok = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    Some(Setup {
        env,
        exe,
        ctx,
        secret,
    })
}

impl Setup {
    /// `strata --root STORE ARGS` as `user` (None: as root).
    fn strata(&self, user: Option<&str>, store: &str, args: &[&str]) -> Output {
        let mut c = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&self.exe);
                // runuser keeps root's environment; the user has no home.
                c.env("HOME", self.env.dir.path());
                c
            }
            None => Command::new(&self.exe),
        };
        c.arg("--root").arg(self.env.path(store)).args(args);
        c.env_remove("SOURCE_DATE_EPOCH").env_remove("STRATA_ROOT");
        c.env_remove("STRATA_ROOTLESS");
        // The sandbox and temp files must not land in root's private dirs.
        c.env("TMPDIR", self.env.dir.path());
        c.current_dir(self.env.dir.path());
        run(&mut c)
    }

    fn build(&self, user: Option<&str>, store: &str, ctx: &Path) -> String {
        let secret = format!("id=tok,src={}", self.secret.display());
        let args = [ctx.to_str().unwrap(), "--secret", &secret, "-t", "rl/test"];
        self.try_build(user, store, &args)
            .unwrap_or_else(|e| panic!("build as {user:?} failed:\n{e}"))
    }

    /// `strata build ARGS --progress plain`: the image digest, or the output.
    fn try_build(&self, user: Option<&str>, store: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        let out = self.strata(user, store, &all);
        let digest = out
            .stdout
            .split_whitespace()
            .find(|w| w.starts_with("sha256:"));
        match digest {
            Some(d) if out.ok => Ok(d.to_string()),
            _ => Err(format!("{}\n{}", out.stdout, out.stderr)),
        }
    }
}

/// Paths under `dir` not owned by `uid`.
fn foreign_files(dir: &Path, uid: u32) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() != uid))
        .map(|e| e.path().to_path_buf())
        .collect()
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// What differs between the `rl/test` images of `stores` (each built as
/// its user): the inspects (layer digests), the paths whose type, mode,
/// owner, size or content differ (umoci unpack, as root), and both texts
/// of each small file that differs.
fn explain(s: &Setup, stores: &[(Option<&str>, &str); 2]) -> String {
    let mut out = String::new();
    for (user, store) in stores {
        let inspect = s.strata(*user, store, &["inspect", "rl/test"]).stdout;
        out += &format!("{store} ({user:?}):\n{inspect}\n");
    }
    if !have_tool("umoci", "explain") {
        return out;
    }
    let [a, b] = stores.map(|(_, store)| {
        let bundle = s.env.path(&format!("explain-{store}"));
        image_tree::unpack(&s.env.path(store), "rl/test:latest", &bundle)
    });
    let (an, bn) = (stores[0].1, stores[1].1);
    let diffs = image_tree::diff_trees(an, &image_tree::tree(&a), bn, &image_tree::tree(&b));
    for d in diffs {
        out += &format!("rootfs {d}\n");
        let path = d
            .split(':')
            .next()
            .unwrap_or_default()
            .trim_start_matches('/');
        let text = |root: &Path| {
            std::fs::read(root.join(path))
                .ok()
                .filter(|t| t.len() <= 4096)
                .map(|t| String::from_utf8_lossy(&t).into_owned())
        };
        if let (Some(x), Some(y)) = (text(&a), text(&b)) {
            out += &format!("  {an}: {x:?}\n  {bn}: {y:?}\n");
        }
    }
    out
}

/// Sets every mtime under `dir` (links themselves, not their targets).
fn touch_all(dir: &Path, when: &str) {
    let ok = Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d", when, "{}", "+"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "touch {}", dir.display());
}

/// The flake of issue 15: `rootless_build_run_and_prune_match_root` gave
/// two digests under load. Its Dockerfile wrote `ls -ln /x /home` into the
/// image, and `ls -l` prints mtimes to the minute: the second stage sees
/// the base stage's snapshot, whose files show when that build wrote them
/// (spec/README.md, Timestamps: a RUN that stores its inputs' mtimes makes
/// a layer that depends on when the snapshots were made). When the root
/// and the rootless build ran in different minutes, which a loaded machine
/// makes likely, the last layer differed. Here a second store gets the base
/// stage first, its snapshots are dated 2001, and the whole image must
/// still have the first store's digest: a RUN that reads those times fails
/// this test every time instead of the other one now and then.
#[test]
fn the_rootless_dockerfile_gives_one_digest_whenever_its_snapshots_were_made() {
    let test = "the_rootless_dockerfile_gives_one_digest_whenever_its_snapshots_were_made";
    let Some(s) = setup(test) else { return };
    let now = s.build(None, "now-store", &s.ctx);
    let secret = format!("id=tok,src={}", s.secret.display());
    let ctx = s.ctx.to_str().unwrap();
    let base = [
        "--target", "base", ctx, "--secret", &secret, "-t", "rl/base",
    ];
    s.try_build(None, "old-store", &base)
        .unwrap_or_else(|e| panic!("base stage:\n{e}"));
    touch_all(&s.env.path("old-store/snapshots"), "2001-01-01 00:00:00");
    let old = s.build(None, "old-store", &s.ctx);
    if old != now {
        panic!(
            "the image depends on its snapshots' mtimes: {old} vs {now}\n{}",
            explain(&s, &[(None, "now-store"), (None, "old-store")])
        );
    }
}

#[test]
fn rootless_build_run_and_prune_match_root() {
    let test = "rootless_build_run_and_prune_match_root";
    let Some(s) = setup(test) else { return };
    let root_digest = s.build(None, "root-store", &s.ctx);
    let user_digest = s.build(Some(USER), "user-store", &s.ctx);
    if user_digest != root_digest {
        panic!(
            "a rootless build must give the root build's digest: {user_digest} vs {root_digest}\n{}",
            explain(&s, &[(None, "root-store"), (Some(USER), "user-store")])
        );
    }
    // The store holds files of subordinate ids (the chown'ed /x)...
    let store = s.env.path("user-store");
    let uid = uid_of(USER);
    assert!(
        !foreign_files(&store, uid).is_empty(),
        "expected files owned by subordinate ids in the rootless store"
    );
    // ...a container sees the image's owners, and runs as root inside.
    let out = s.strata(
        Some(USER),
        "user-store",
        &[
            "run",
            "--rm",
            "rl/test",
            "sh",
            "-c",
            "stat -c '%u:%g %a' /x; cat /owners /from-cache /secret-len /build-uid",
        ],
    );
    assert!(out.ok, "run failed:\n{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1000:1000 4755"), "{}", out.stdout);
    assert!(out.stdout.contains(" 1000 1000 "), "{}", out.stdout);
    assert!(out.stdout.contains("cached\n6\n0\n"), "{}", out.stdout);
    // rmi and prune remove what the user's builds made, subordinate ids too
    // (the container went with --rm: one kept would keep its image).
    let out = s.strata(Some(USER), "user-store", &["rmi", "rl/test"]);
    assert!(out.ok, "{}", out.stderr);
    let out = s.strata(Some(USER), "user-store", &["prune", "--all", "--force"]);
    assert!(out.ok, "{}", out.stderr);
    let left = foreign_files(&store, uid);
    assert!(left.is_empty(), "prune left files of other ids: {left:?}");
}

#[test]
fn rootless_examples_match_root() {
    let test = "rootless_examples_match_root";
    let Some(s) = setup(test) else { return };
    let Some(hello) = example(&s.env, "hello", test) else {
        return;
    };
    let ok = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(s.env.dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let root = s.build(None, "root-store", &hello);
    let user = s.build(Some(USER), "user-store", &hello);
    assert_eq!(user, root);
}

#[test]
fn without_subordinate_ids_run_says_what_to_add() {
    let test = "without_subordinate_ids_run_says_what_to_add";
    let Some(s) = setup(test) else { return };
    let listed = std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{NO_RANGES}:")));
    if listed {
        eprintln!("SKIP {test}: /etc/subuid gives {NO_RANGES} a range here");
        return;
    }
    let out = s.strata(
        Some(NO_RANGES),
        "noranges-store",
        &["build", s.ctx.to_str().unwrap(), "--progress", "plain"],
    );
    assert!(!out.ok, "a RUN without a user namespace must fail");
    assert!(
        out.stderr.contains("no subordinate ids") && out.stderr.contains("--add-subuids"),
        "the error must say what to add:\n{}",
        out.stderr
    );
    // Nothing half-built is tagged.
    let out = s.strata(Some(NO_RANGES), "noranges-store", &["images"]);
    assert!(!out.stdout.contains("rl/test"), "{}", out.stdout);
}

/// Every BuildKit differential Dockerfile (`tests/buildkit/**`) built as
/// root and rootless, from the same inputs: the same digest, or the same
/// refusal.
#[test]
fn rootless_buildkit_cases_match_root() {
    let test = "rootless_buildkit_cases_match_root";
    let Some(s) = setup(test) else { return };
    let Some(bb) = busybox(test) else { return };
    let dir = s.env.path("bk");
    setup::write_inputs(&dir, &bb);
    // The cases' own copies, next to their inputs; given to the user, so
    // that it reads them with their modes unchanged.
    let cases = cases::all_cases();
    for case in &cases {
        let to = dir.join("cases").join(format!("{case}.Dockerfile"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(cases::cases_dir().join(format!("{case}.Dockerfile")), to).unwrap();
    }
    let ok = Command::new("chown")
        .args(["-R", USER])
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown -R {USER}");
    let base = dir.join("base");
    let base_file = base.join("Dockerfile");
    let base_args = [
        base.to_str().unwrap(),
        "-f",
        base_file.to_str().unwrap(),
        "-t",
        setup::BASE,
    ];
    let root = s.try_build(None, "root-store", &base_args).unwrap();
    let user = s.try_build(Some(USER), "user-store", &base_args).unwrap();
    assert_eq!(user, root, "the cases' base");

    let mut differ = Vec::new();
    let mut built = 0;
    for case in &cases {
        let file = dir.join("cases").join(format!("{case}.Dockerfile"));
        let o = cases::options(&std::fs::read_to_string(&file).unwrap());
        if o.expect_error {
            continue;
        }
        let ctx = dir.join(o.context.as_deref().unwrap_or("ctx"));
        let mut args: Vec<String> = vec![ctx.display().to_string(), "-f".into()];
        args.push(file.display().to_string());
        if let Some(t) = &o.target {
            args.extend(["--target".into(), t.clone()]);
        }
        for a in &o.build_args {
            args.extend(["--build-arg".into(), a.clone()]);
        }
        for id in &o.secrets {
            let src = setup::secret_file(&dir, id);
            args.extend(["--secret".into(), format!("id={id},src={}", src.display())]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (root, user) = std::thread::scope(|t| {
            let r = t.spawn(|| s.try_build(None, "root-store", &args));
            let u = s.try_build(Some(USER), "user-store", &args);
            (r.join().unwrap(), u)
        });
        match (&root, &user) {
            (Ok(r), Ok(u)) if r == u => built += 1,
            (Err(_), Err(_)) => {}
            _ => differ.push(format!("{case}:\n  root: {root:?}\n  rootless: {user:?}")),
        }
    }
    eprintln!("{built} BuildKit differential cases: the same digest rootless and as root");
    assert!(built >= 60, "only {built} cases built");
    assert!(
        differ.is_empty(),
        "rootless differs from root:\n{}",
        differ.join("\n")
    );
}

/// A rootless container's life: `run -d`, `exec` (it joins the user
/// namespace the container's `run` made, from outside, as its owner),
/// `exec -u`, `logs`, `stop`, `rm`; and `run -t` gets a terminal.
#[test]
fn rootless_containers_detach_exec_log_stop_and_go() {
    let test = "rootless_containers_detach_exec_log_stop_and_go";
    let Some(s) = setup(test) else { return };
    s.build(Some(USER), "user-store", &s.ctx);
    let strata = |args: &[&str]| s.strata(Some(USER), "user-store", args);
    let out = strata(&[
        "run",
        "-d",
        "--name",
        "bg",
        "rl/test",
        "sh",
        "-c",
        "echo up; i=0; while [ $i -lt 600 ]; do busybox sleep 0.1; i=$((i+1)); done",
    ]);
    if !out.ok && out.stderr.contains("could not make one") {
        eprintln!("SKIP {test}: no user namespace here: {}", out.stderr);
        return;
    }
    assert!(out.ok, "run -d:\n{}", out.stderr);
    let ps = strata(&["ps"]);
    assert!(
        ps.stdout.contains(" bg\n") && ps.stdout.contains("Up "),
        "{}",
        ps.stdout
    );
    let out = strata(&[
        "exec",
        "bg",
        "sh",
        "-c",
        "id -u; cat /proc/1/cmdline; stat -c %u /x",
    ]);
    assert!(out.ok, "exec:\n{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{}", out.stdout);
    assert!(
        out.stdout.contains("__strata-sandbox"),
        "its pid 1: {}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("1000\n"),
        "the image's owners: {}",
        out.stdout
    );
    let out = strata(&["exec", "-u", "1234", "bg", "id", "-u"]);
    assert_eq!(out.stdout, "1234\n", "{}", out.stderr);
    let out = strata(&["exec", "bg", "sh", "-c", "exit 6"]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    let logs = strata(&["logs", "bg"]);
    assert_eq!(logs.stdout, "up\n", "{}", logs.stderr);
    let out = strata(&["stop", "-t", "2", "bg"]);
    assert!(out.ok, "{}", out.stderr);
    let all = strata(&["ps", "-a"]);
    assert!(all.stdout.contains("Exited (143)"), "{}", all.stdout);
    assert!(strata(&["rm", "bg"]).ok);
    assert!(!strata(&["ps", "-a"]).stdout.contains(" bg\n"));

    if have_tool("script", test) {
        let line = format!(
            "runuser -u {USER} -- {} --root {} run -t --rm rl/test sh -c tty",
            s.exe.display(),
            s.env.path("user-store").display()
        );
        let out = run(Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("TMPDIR", s.env.dir.path())
            .current_dir(s.env.dir.path())
            .stdin(std::process::Stdio::null()));
        assert!(
            out.stdout.contains("/dev/pts/0"),
            "{:?} {}",
            out.stdout,
            out.stderr
        );
    }
}

/// Without subordinate ids strata does not fall back to a one-id user
/// namespace (every file a base gives another owner would be refused or
/// lose its owner): a COPY-only image still builds, and `run`, `run -d`
/// say what to add, with status 125, leaving no container behind.
#[test]
fn without_subordinate_ids_containers_are_refused_clearly() {
    let test = "without_subordinate_ids_containers_are_refused_clearly";
    let Some(s) = setup(test) else { return };
    let listed = std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(&format!("{NO_RANGES}:")));
    if listed {
        eprintln!("SKIP {test}: /etc/subuid gives {NO_RANGES} a range here");
        return;
    }
    let ctx = s.env.write_tree(
        "copy-only",
        &[("Dockerfile", "FROM scratch\nCOPY busybox /bin/sh\n")],
    );
    std::fs::copy(s.ctx.join("busybox"), ctx.join("busybox")).unwrap();
    let ok = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&ctx)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let strata = |args: &[&str]| s.strata(Some(NO_RANGES), "noranges-store", args);
    let out = strata(&[
        "build",
        "-t",
        "copy:1",
        ctx.to_str().unwrap(),
        "--progress",
        "plain",
    ]);
    assert!(out.ok, "a COPY-only build works: {}", out.stderr);
    for args in [
        &["run", "copy:1", "/bin/sh", "-c", "echo hi"][..],
        &["run", "-d", "copy:1"],
    ] {
        let out = strata(args);
        assert_eq!(out.code, 125, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("containers need root or a user namespace")
                && out.stderr.contains("no subordinate ids")
                && out.stderr.contains("--add-subuids"),
            "{}",
            out.stderr
        );
    }
    let ps = strata(&["ps", "-a", "-q"]);
    assert_eq!(ps.stdout, "", "no container is left behind");
}

//! One store, several strata processes at once (issue 5): two builds, a
//! push and a prune started together never corrupt the store nor delete
//! what a running build or push needs. Checked afterwards: every tagged
//! image exports and unpacks, every pushed image is whole on the registry,
//! every blob's content matches its name, and nothing is left in `tmp/` or
//! mounted.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::*;
use sha2::{Digest as _, Sha256};

/// Shared by both builds: busybox, its links, and a few MiB of data.
const BASE: &str = r#"
[stage.base]
from = "scratch"
steps = [
  { copy = ["busybox"], to = "/bin/busybox", chmod = "0755" },
  { run = ["/bin/busybox", "--install", "-s", "/bin"] },
  { copy = ["shared/"], to = "/shared/" },
]
"#;

/// One build's own stage on top of BASE: it copies `round.txt` first, so
/// everything after it runs again in every round.
fn image_spec(who: &str) -> String {
    format!(
        r#"{BASE}
[stage.{who}]
from = "base"
steps = [
  {{ copy = ["round.txt"], to = "/round.txt" }},
  {{ copy = ["{who}/"], to = "/{who}/" }},
  {{ run = "sleep 1 && cat /shared/* /{who}/* /round.txt | md5sum > /{who}.sum && cp /{who}/f0.bin /{who}/again.bin" }},
  {{ copy = ["{who}-late.txt"], to = "/late.txt" }},
  {{ env = {{ WHO = "{who}" }} }},
]

[image.{who}]
stage = "{who}"
tags = ["conc/{who}:1"]
"#
    )
}

/// Deterministic bytes that do not compress (xorshift).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes (or rewrites, for a new round) the build context.
fn write_context(ctx: &Path, round: u64) {
    for (dir, files, seed) in [
        ("shared", 2, 1),
        ("a", 3, 100 + round),
        ("b", 3, 200 + round),
    ] {
        let d = ctx.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..files {
            std::fs::write(
                d.join(format!("f{i}.bin")),
                random_bytes(1 << 20, seed * 10 + i),
            )
            .unwrap();
        }
    }
    std::fs::write(ctx.join("round.txt"), format!("round {round}\n")).unwrap();
    std::fs::write(ctx.join("a-late.txt"), "late a\n").unwrap();
    std::fs::write(ctx.join("b-late.txt"), "late b\n").unwrap();
    std::fs::write(ctx.join("a.toml"), image_spec("a")).unwrap();
    std::fs::write(ctx.join("b.toml"), image_spec("b")).unwrap();
}

/// Re-hashes every file in `blobs/sha256`; returns how many there are.
fn assert_blobs_match_their_names(root: &Path) -> usize {
    let dir = root.join("blobs/sha256");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut f = std::fs::File::open(entry.path()).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = f.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
        }
        assert_eq!(
            hex::encode(h.finalize()),
            name,
            "blob content differs from its name"
        );
        n += 1;
    }
    n
}

/// Nothing in `tmp/`, no leftover mount below the store.
fn assert_nothing_left_behind(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in tmp/: {left:?}");
    let canon = std::fs::canonicalize(root).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let under: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(canon.to_str().unwrap()))
        .collect();
    assert!(under.is_empty(), "mounts left below the store: {under:?}");
}

/// The tags of a store's `index.json`.
fn store_tags(root: &Path) -> Vec<(String, String)> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
            Some((name.to_string(), m["digest"].as_str()?.to_string()))
        })
        .collect()
}

fn can_umoci(test: &str) -> bool {
    have_tool("umoci", test) && is_root()
}

/// Saves every tagged image and (with umoci) unpacks it; returns the
/// unpacked root file systems by tag.
fn assert_tagged_images_are_whole(
    env: &TestEnv,
    root: &str,
    label: &str,
    umoci: bool,
) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (i, (tag, _)) in store_tags(&env.path(root)).iter().enumerate() {
        let archive = env.path(&format!("{label}-{i}.tar"));
        run_ok(
            env.strata(root)
                .args(["save", "--format", "oci", "-o"])
                .arg(&archive)
                .arg(tag),
        );
        assert!(std::fs::metadata(&archive).unwrap().len() > 1 << 20);
        if umoci {
            let bundle = env.path(&format!("{label}-{i}-bundle"));
            run_ok(
                Command::new("umoci")
                    .arg("unpack")
                    .arg("--image")
                    .arg(format!("{}:{tag}", env.path(root).display()))
                    .arg(&bundle),
            );
            out.push((tag.clone(), bundle.join("rootfs")));
        }
    }
    out
}

/// One command of a round: what ran, how it ended, and when (seconds
/// from the round's start).
struct Ran {
    what: String,
    out: Output,
    start: f64,
    end: f64,
}

/// Runs `cmds` at once, each after its own delay; waits for all.
fn run_together(cmds: Vec<(String, u64, Command)>) -> Vec<Ran> {
    let barrier = Barrier::new(cmds.len());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = cmds
            .into_iter()
            .map(|(what, delay_ms, mut cmd)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    std::thread::sleep(Duration::from_millis(delay_ms));
                    let start = t0.elapsed().as_secs_f64();
                    let out = run(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
                    let end = t0.elapsed().as_secs_f64();
                    Ran {
                        what,
                        out,
                        start,
                        end,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn build_cmd(env: &TestEnv, ctx: &Path, who: &str, meta: &Path) -> Command {
    let mut c = env.strata("root");
    c.arg("build")
        .arg(ctx)
        .arg("-f")
        .arg(ctx.join(format!("{who}.toml")))
        .args(["--progress", "plain", "--metadata-file"])
        .arg(meta);
    c
}

fn image_digest(meta: &Path) -> String {
    metadata(meta)["image"]["digest"]
        .as_str()
        .expect("digest in metadata")
        .to_string()
}

#[test]
fn builds_push_and_prune_at_once_leave_a_whole_store() {
    const T: &str = "builds_push_and_prune_at_once_leave_a_whole_store";
    if !is_root() {
        eprintln!("SKIP {T}: RUN steps need root");
        return;
    }
    let Some(bb) = busybox(T) else {
        return;
    };
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, T) else {
        return;
    };
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&bb, ctx.join("busybox")).unwrap();
    write_context(&ctx, 0);

    // Round 0, alone: both images exist before anything pushes them.
    let mut digests_of_a = BTreeSet::new();
    for who in ["a", "b"] {
        let meta = env.path(&format!("meta-{who}-0.json"));
        run_ok(&mut build_cmd(&env, &ctx, who, &meta));
        if who == "a" {
            digests_of_a.insert(image_digest(&meta));
        }
    }

    // (build a, build b, push, prune, rmi) delays in ms: together,
    // staggered both ways, prune first, prune in the middle of the builds.
    let offsets: [[u64; 5]; 6] = [
        [0, 0, 0, 0, 0],
        [0, 150, 50, 300, 100],
        [250, 0, 400, 100, 250],
        [30, 30, 30, 0, 10],
        [0, 0, 0, 600, 300],
        [500, 100, 0, 200, 0],
    ];
    let mut pushes = Vec::new();
    let mut waited = 0;
    for (r, delays) in offsets.iter().enumerate() {
        let round = r as u64 + 1;
        write_context(&ctx, round);
        // A tag for rmi to remove while the others run.
        let extra = format!("conc/extra:{round}");
        run_ok(env.strata("root").args(["tag", "conc/b:1", &extra]));
        let meta_a = env.path(&format!("meta-a-{round}.json"));
        let meta_b = env.path(&format!("meta-b-{round}.json"));
        let dest = format!("{}/conc/a:r{round}", reg.host());
        let mut push = env.strata("root");
        push.args(["push", "conc/a:1", &dest, "-q", "--chunk-size", "65536"]);
        let mut prune = env.strata("root");
        prune.args(["prune", "-f", "--all"]);
        let mut rmi = env.strata("root");
        rmi.args(["rmi", &extra]);
        let ran = run_together(vec![
            (
                "build a".into(),
                delays[0],
                build_cmd(&env, &ctx, "a", &meta_a),
            ),
            (
                "build b".into(),
                delays[1],
                build_cmd(&env, &ctx, "b", &meta_b),
            ),
            ("push".into(), delays[2], push),
            ("prune".into(), delays[3], prune),
            ("rmi".into(), delays[4], rmi),
        ]);
        for x in &ran {
            eprintln!(
                "round {round}: {:8} {:6.2}s .. {:6.2}s exit {}",
                x.what, x.start, x.end, x.out.code
            );
            assert!(
                x.out.ok,
                "round {round}: {} failed ({})\nstdout:\n{}\nstderr:\n{}",
                x.what, x.out.code, x.out.stdout, x.out.stderr
            );
        }
        if ran[3].out.stderr.contains("waiting") {
            waited += 1;
        }
        let pushed = ran[2].out.stdout.trim().to_string();
        let before = digests_of_a.clone();
        digests_of_a.insert(image_digest(&meta_a));
        // The push took conc/a:1 as it was before or after this round's build.
        assert!(
            digests_of_a.contains(&pushed),
            "round {round}: pushed {pushed}, conc/a:1 was {before:?}"
        );
        pushes.push((dest, pushed));

        // The round's last writers tagged what they built; rmi's tag is gone.
        let tags = store_tags(&env.path("root"));
        assert!(tags.iter().all(|(t, _)| *t != extra), "{tags:?}");
        assert_eq!(tags.len(), 2, "{tags:?}");
        for (who, meta) in [("a", &meta_a), ("b", &meta_b)] {
            let got = tags.iter().find(|(t, _)| *t == format!("conc/{who}:1"));
            assert_eq!(
                got.map(|(_, d)| d.clone()),
                Some(image_digest(meta)),
                "round {round}: conc/{who}:1"
            );
        }
        assert_blobs_match_their_names(&env.path("root"));
        assert_nothing_left_behind(&env.path("root"));
    }
    eprintln!(
        "note {T}: prune waited for other processes in {waited} of {} rounds",
        offsets.len()
    );

    // Every tagged image exports and unpacks, with the last round's files.
    let umoci = can_umoci(T);
    let unpacked = assert_tagged_images_are_whole(&env, "root", "final", umoci);
    for (tag, rootfs) in &unpacked {
        let who = if tag.starts_with("conc/a") { "a" } else { "b" };
        assert_eq!(
            std::fs::read_to_string(rootfs.join("round.txt")).unwrap(),
            format!("round {}\n", offsets.len())
        );
        assert_eq!(
            std::fs::read(rootfs.join(format!("{who}/again.bin"))).unwrap(),
            std::fs::read(ctx.join(format!("{who}/f0.bin"))).unwrap(),
            "{tag}: the RUN step's output"
        );
        assert!(rootfs.join(format!("{who}.sum")).is_file(), "{tag}");
        assert!(rootfs.join("shared/f1.bin").is_file(), "{tag}");
    }
    if !umoci {
        eprintln!("SKIP {T} (umoci part): umoci unpack needs umoci and root");
    }

    // Every push is whole on the registry: skopeo reads it and a pull into
    // a fresh store verifies every blob and gives the same digest.
    let skopeo = have_tool("skopeo", T);
    for (i, (dest, digest)) in pushes.iter().enumerate() {
        if skopeo {
            let o = run_ok(Command::new("skopeo").args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{dest}"),
            ]));
            let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
            assert_eq!(v["Digest"], digest.as_str(), "{dest}");
        }
        let fresh = format!("pulled-{i}");
        let out = run_ok(env.strata(&fresh).args(["pull", dest, "-q"]));
        assert_eq!(out.stdout.trim(), digest, "{dest}");
        assert_blobs_match_their_names(&env.path(&fresh));
    }

    // A last prune leaves the same images whole.
    run_ok(env.strata("root").args(["prune", "-f", "--all"]));
    assert_tagged_images_are_whole(&env, "root", "pruned", umoci);
    assert_blobs_match_their_names(&env.path("root"));
    assert_nothing_left_behind(&env.path("root"));
}

/// Polls `cond` every few ms for up to `secs`; whether it became true.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A push is a use of the image: even when its tag is removed meanwhile,
/// prune waits for the push to finish before deleting the blobs.
#[test]
fn prune_waits_for_a_push_whose_image_was_untagged() {
    const T: &str = "prune_waits_for_a_push_whose_image_was_untagged";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, T) else {
        return;
    };
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("big")).unwrap();
    for i in 0..4 {
        std::fs::write(
            ctx.join(format!("big/f{i}.bin")),
            random_bytes(3 << 20, 7 + i),
        )
        .unwrap();
    }
    std::fs::write(
        ctx.join("strata.toml"),
        "[stage.s]\nfrom = \"scratch\"\nsteps = [{ copy = [\"big/\"], to = \"/big/\" }]\n\
         [image.s]\nstage = \"s\"\ntags = [\"conc/solo:1\"]\n",
    )
    .unwrap();
    let meta = env.path("meta.json");
    run_ok(
        env.strata("root")
            .arg("build")
            .arg(&ctx)
            .arg("--metadata-file")
            .arg(&meta),
    );
    let digest = image_digest(&meta);
    let root = env.path("root");
    let blobs_before = assert_blobs_match_their_names(&root);

    // Small chunks make the push take a while.
    let dest = format!("{}/conc/solo:1", reg.host());
    let mut push = env
        .strata("root")
        .args(["push", "conc/solo:1", &dest, "-q", "--chunk-size", "8192"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the push is sending data.
    let sending = wait_for(30, || {
        reg.count(&["\"PATCH /v2/conc/solo/blobs/uploads/"]) > 0
    });
    let running = push.try_wait().unwrap().is_none();
    let rmi = run_ok(env.strata("root").args(["rmi", "conc/solo:1"]));
    let prune = run(env.strata("root").args(["prune", "-f", "--all"]));
    let push_out = push.wait_with_output().unwrap();
    assert!(
        push_out.status.success(),
        "push failed:\n{}",
        String::from_utf8_lossy(&push_out.stderr)
    );
    assert!(prune.ok, "{}", prune.stderr);
    assert_eq!(String::from_utf8_lossy(&push_out.stdout).trim(), digest);
    if sending && running {
        assert!(
            rmi.stderr.contains("using the store"),
            "rmi removed blobs under a running push: {}",
            rmi.stdout
        );
        assert!(prune.stderr.contains("waiting"), "{}", prune.stderr);
    } else {
        eprintln!("note {T}: the push finished before rmi and prune started");
    }
    // The registry has the whole image.
    let out = run_ok(env.strata("fresh").args(["pull", &dest, "-q"]));
    assert_eq!(out.stdout.trim(), digest);
    assert_blobs_match_their_names(&env.path("fresh"));
    if have_tool("skopeo", T) {
        let o = run_ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ]));
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["Digest"], digest.as_str());
    }
    // Once the push was done, prune removed the untagged image's blobs.
    assert!(store_tags(&root).is_empty());
    assert_eq!(
        assert_blobs_match_their_names(&root),
        0,
        "of {blobs_before}"
    );
    assert_nothing_left_behind(&root);
}

//! BuildKit differential (issue 11): every `tests/buildkit/SECTION/NAME.Dockerfile`
//! is built by BuildKit (a private dockerd from Debian's docker.io 20.10,
//! `DOCKER_BUILDKIT=1 docker build --network none`) and by strata, from the
//! same context and the same busybox base, and the two images are compared:
//! - the root file system (umoci unpack of both): every path's type, mode,
//!   owner, size, content digest, link target, hardlink group and xattrs;
//!   mtimes ignored;
//! - the whole config as `docker save` gives it (every key of `config`, and
//!   `author`), with absent, null, "", [] and {} all meaning unset;
//! - the history (`created_by`, `empty_layer`) and the number of layers.
//!   Each tool's own marker is not compared: BuildKit's `comment`
//!   (`buildkit.dockerfile.v0`) and the ` # buildkit` it appends to the
//!   `created_by` of COPY, ADD and RUN.
//!
//! A case is either identical, or listed in `LISTED` (in `expected.rs`) with
//! its category and the exact differences. The test fails when an unlisted
//! case differs, when a listed case's differences change, and when a listed
//! case matches (so the list stays honest). It prints a table of outcomes.
//!
//! A case may carry options, as comment lines that are not parser
//! directives: `# bkdiff-target: STAGE`, `# bkdiff-build-arg: K=V`,
//! `# bkdiff-context: NAME` (a context other than the shared one),
//! `# bkdiff-secret: ID` (a secret file with known content),
//! `# bkdiff-expect: error` (both must refuse the Dockerfile).
//!
//! `BKDIFF_CASES=a,b` runs only the cases whose names contain one of the
//! words; `BKDIFF_JOBS=N` sets how many cases build at once (default 3);
//! `BKDIFF_WRITE=FILE` writes every case's differences there as JSON.

mod common;

#[path = "buildkit/cases.rs"]
mod cases;
#[path = "buildkit/expected.rs"]
mod expected;
#[path = "buildkit/setup.rs"]
mod setup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cases::{Options, all_cases, cases_dir, options};
use common::dockerd::Dockerd;
use common::image_tree::{self, diff_trees, tree};
use common::{busybox, have_tool, run, run_ok};
use expected::{Category, LISTED};
use serde_json::Value;
use setup::BASE;

const TEST: &str = "buildkit_differential";

/// What one tool made of a case.
struct Built {
    rootfs: PathBuf,
    /// The whole image config JSON (`config`, `history`, `rootfs`, ...).
    image: Value,
}

struct Harness {
    dir: PathBuf,
    dockerd: Dockerd,
}

impl Harness {
    fn strata(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.dir.join("strata-store"));
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env_remove("STRATA_ROOT");
        c
    }

    fn context(&self, o: &Options) -> PathBuf {
        self.dir.join(o.context.as_deref().unwrap_or("ctx"))
    }

    fn out(&self, case: &str, what: &str) -> PathBuf {
        self.dir.join("out").join(case.replace('/', "-")).join(what)
    }

    fn secret_file(&self, id: &str) -> PathBuf {
        setup::secret_file(&self.dir, id)
    }

    /// docker build + docker save; Err(last error lines) when it fails.
    fn build_docker(&self, case: &str, file: &Path, o: &Options) -> Result<Built, String> {
        let tag = tag(case);
        let mut c = self.dockerd.docker();
        c.args([
            "build",
            "--network",
            "none",
            "--progress",
            "plain",
            "-t",
            &tag,
        ]);
        c.arg("-f").arg(file);
        if let Some(t) = &o.target {
            c.args(["--target", t]);
        }
        for a in &o.build_args {
            c.args(["--build-arg", a]);
        }
        for id in &o.secrets {
            c.arg("--secret")
                .arg(format!("id={id},src={}", self.secret_file(id).display()));
        }
        c.arg(self.context(o));
        let out = run(&mut c);
        if !out.ok {
            return Err(last_error(&out.stderr));
        }
        let archive = self.out(case, "docker.tar");
        std::fs::create_dir_all(archive.parent().expect("parent")).expect("mkdir");
        must(
            self.dockerd
                .docker()
                .args(["save", "-o"])
                .arg(&archive)
                .arg(&tag),
        );
        let image = docker_archive_config(&archive);
        let layout = self.out(case, "docker-oci");
        let _ = std::fs::remove_dir_all(&layout);
        must(
            Command::new("skopeo")
                .args(["copy", "--quiet"])
                .arg(format!("docker-archive:{}", archive.display()))
                .arg(format!("oci:{}:img", layout.display())),
        );
        let rootfs = image_tree::unpack(&layout, "img", &self.out(case, "docker-bundle"));
        Ok(Built { rootfs, image })
    }

    /// `strata build` of `file` (a Dockerfile or a TOML spec) into the OCI
    /// layout `out`; Err(error lines) when it fails.
    fn strata_build(
        &self,
        file: &Path,
        o: &Options,
        layout: &Path,
        tag: &str,
    ) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(layout);
        let mut c = self.strata();
        c.arg("build").arg(self.context(o)).arg("-f").arg(file);
        c.args(["-t", tag]);
        c.args(["--progress", "plain", "-j", "1", "-o"])
            .arg(format!("type=oci,dest={}", layout.display()));
        if let Some(t) = &o.target {
            c.args(["--target", t]);
        }
        for a in &o.build_args {
            c.args(["--build-arg", a]);
        }
        for id in &o.secrets {
            c.arg("--secret")
                .arg(format!("id={id},src={}", self.secret_file(id).display()));
        }
        let out = run(&mut c);
        if out.ok {
            Ok(())
        } else {
            Err(last_error(&out.stderr))
        }
    }

    /// strata build -o type=oci; Err(error lines) when it fails.
    fn build_strata(&self, case: &str, file: &Path, o: &Options) -> Result<Built, String> {
        let layout = self.out(case, "strata-oci");
        self.strata_build(file, o, &layout, &tag(case))?;
        let image = oci_layout_config(&layout);
        let rootfs = image_tree::unpack(
            &layout,
            &image_ref(&layout),
            &self.out(case, "strata-bundle"),
        );
        Ok(Built { rootfs, image })
    }

    /// `strata convert` of the case, and a build of the TOML it gives: the
    /// same image as the Dockerfile's (the two frontends lower to one IR).
    /// The differences, if any, as lines.
    fn check_convert(&self, case: &str, file: &Path, o: &Options) -> Vec<String> {
        let toml = self.out(case, "converted.toml");
        let out = run(self.strata().arg("convert").arg(file).arg("-o").arg(&toml));
        if !out.ok {
            return vec![format!("convert failed: {}", last_error(&out.stderr))];
        }
        let layout = self.out(case, "strata-toml-oci");
        if let Err(e) = self.strata_build(&toml, o, &layout, &format!("{}-toml", tag(case))) {
            return vec![format!("converted TOML failed to build: {e}")];
        }
        let digest = |l: &Path| read_json(&l.join("index.json"))["manifests"][0]["digest"].clone();
        let (from_toml, from_dockerfile) = (digest(&layout), digest(&self.out(case, "strata-oci")));
        if from_toml == from_dockerfile {
            Vec::new()
        } else {
            vec![format!(
                "converted TOML builds {from_toml}, the Dockerfile {from_dockerfile}"
            )]
        }
    }
}

/// The tag both tools give a case's image.
fn tag(case: &str) -> String {
    format!("localhost/bkdiff-{}:1", case.replace('/', "-"))
}

/// Runs a command that must succeed, panicking with its output otherwise.
fn must(c: &mut Command) {
    common::run_ok(c);
}

/// The error of a failed build, in one line: miette's `×` lines (strata)
/// or else the last line that says error or failed (docker).
fn last_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let miette: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix('×').map(str::trim))
        .collect();
    let line = if miette.is_empty() {
        lines
            .iter()
            .rev()
            .find(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("error") || l.contains("failed")
            })
            .copied()
            .unwrap_or(stderr.trim())
            .to_string()
    } else {
        miette.join(" / ")
    };
    // No checkout path in what the table records.
    let line = line.replace(concat!(env!("CARGO_MANIFEST_DIR"), "/"), "");
    line.chars().take(300).collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
        .unwrap_or_else(|e| panic!("{p:?}: {e}"))
}

/// The image config of the only image in a docker-archive, as `docker
/// save` wrote it.
fn docker_archive_config(archive: &Path) -> Value {
    let dir = archive.with_extension("x");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    must(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xf")
            .arg(archive)
            .arg("manifest.json"),
    );
    let manifest = read_json(&dir.join("manifest.json"));
    let config = manifest[0]["Config"].as_str().expect("Config").to_string();
    must(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xf")
            .arg(archive)
            .arg(&config),
    );
    read_json(&dir.join(config))
}

fn oci_blob(layout: &Path, d: &Value) -> PathBuf {
    let d = d.as_str().expect("digest");
    layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"))
}

/// The image config of the only image in an OCI layout.
fn oci_layout_config(layout: &Path) -> Value {
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "one image in {layout:?}");
    let manifest = read_json(&oci_blob(layout, &manifests[0]["digest"]));
    read_json(&oci_blob(layout, &manifest["config"]["digest"]))
}

/// The reference name of the only image in an OCI layout.
fn image_ref(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("ref.name annotation")
        .to_string()
}

fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(v) if !unset(v) => v.to_string(),
        _ => "unset".to_string(),
    }
}

/// The differences of two images, one line each: rootfs, then config,
/// then history and layers.
fn compare(docker: &Built, strata: &Built) -> Vec<String> {
    let mut diffs: Vec<String> = diff_trees(
        "buildkit",
        &tree(&docker.rootfs),
        "strata",
        &tree(&strata.rootfs),
    )
    .into_iter()
    .map(|d| format!("rootfs {d}"))
    .collect();

    let (dc, sc) = (&docker.image["config"], &strata.image["config"]);
    let mut keys: Vec<&String> = dc
        .as_object()
        .into_iter()
        .chain(sc.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (a, b) = (dc.get(k), sc.get(k));
        if show(a) != show(b) {
            diffs.push(format!(
                "config {k}: buildkit {} | strata {}",
                show(a),
                show(b)
            ));
        }
    }
    for k in ["author", "architecture", "os"] {
        let (a, b) = (docker.image.get(k), strata.image.get(k));
        if show(a) != show(b) {
            diffs.push(format!("{k}: buildkit {} | strata {}", show(a), show(b)));
        }
    }

    let history = |img: &Value| -> Vec<String> {
        img["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        let by = e["created_by"].as_str().unwrap_or("");
                        let by = by.strip_suffix(" # buildkit").unwrap_or(by);
                        let empty = e["empty_layer"].as_bool().unwrap_or(false);
                        format!("{by}{}", if empty { " [empty layer]" } else { "" })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (dh, sh) = (history(&docker.image), history(&strata.image));
    for i in 0..dh.len().max(sh.len()) {
        let (a, b) = (dh.get(i), sh.get(i));
        if a != b {
            diffs.push(format!(
                "history[{i}]: buildkit {} | strata {}",
                a.map_or("none", String::as_str),
                b.map_or("none", String::as_str)
            ));
        }
    }
    let layers = |img: &Value| img["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    let (dl, sl) = (layers(&docker.image), layers(&strata.image));
    if dl != sl {
        diffs.push(format!("layers: buildkit {dl} | strata {sl}"));
    }
    diffs
}

/// Writes the cases' inputs, builds the base with strata and loads it into
/// dockerd; both must then hold the same image config.
fn prepare(h: &Harness, bb: &Path) {
    setup::write_inputs(&h.dir, bb);
    let base = h.dir.join("base");
    must(
        h.strata()
            .arg("build")
            .arg(&base)
            .arg("-f")
            .arg(base.join("Dockerfile"))
            .args(["--progress", "plain", "-t", BASE]),
    );
    let archive = h.dir.join("base.tar");
    must(h.strata().args(["save", "-o"]).arg(&archive).arg(BASE));
    let load = run(h.dockerd.docker().args(["load", "-i"]).arg(&archive));
    assert!(
        load.ok,
        "docker load of strata's base failed: {}\n{}\ndockerd log:\n{}",
        load.stdout,
        load.stderr,
        h.dockerd.log()
    );
    // docker's image ID is the config digest: the same image in both.
    let dir = h.dir.join("base-archive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    must(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xf")
            .arg(&archive)
            .arg("manifest.json"),
    );
    let manifest = read_json(&dir.join("manifest.json"));
    let config = manifest[0]["Config"].as_str().expect("Config");
    let hex = config
        .trim_start_matches("blobs/sha256/")
        .trim_end_matches(".json");
    let id = run_ok(
        h.dockerd
            .docker()
            .args(["image", "inspect", "--format", "{{.Id}}", BASE]),
    );
    assert_eq!(
        id.stdout.trim(),
        format!("sha256:{hex}"),
        "base image ID in dockerd"
    );
}

/// The outcome of one case: its difference lines (empty: identical).
fn run_case(h: &Harness, case: &str) -> Vec<String> {
    let file = cases_dir().join(format!("{case}.Dockerfile"));
    let text = std::fs::read_to_string(&file).expect("read case");
    let o = options(&text);
    let d = h.build_docker(case, &file, &o);
    let s = h.build_strata(case, &file, &o);
    match (d, s) {
        (Ok(d), Ok(s)) if !o.expect_error => {
            let mut diffs = compare(&d, &s);
            diffs.extend(h.check_convert(case, &file, &o));
            diffs
        }
        (Err(d), Ok(_)) if !o.expect_error => {
            let mut diffs = vec![format!("buildkit failed: {d}")];
            diffs.extend(h.check_convert(case, &file, &o));
            diffs
        }
        (Err(_), Err(_)) if o.expect_error => Vec::new(),
        (Ok(_), Ok(_)) => vec!["both built it; the case expects both to refuse it".into()],
        (Err(d), Err(s)) => vec![format!("both failed: buildkit: {d} | strata: {s}")],
        (Err(d), Ok(_)) => vec![format!("buildkit failed: {d}")],
        (Ok(_), Err(s)) => vec![format!("strata failed: {s}")],
    }
}

/// What the listed entry for `case` says, compared with what was seen:
/// None when they agree, else the problem.
fn verdict(case: &str, diffs: &[String]) -> Option<String> {
    let listed = LISTED.iter().find(|l| l.case == case);
    let fmt = |d: &[String]| {
        d.iter()
            .map(|l| format!("            {l:?},"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match listed {
        None if diffs.is_empty() => None,
        None => Some(format!(
            "{case}: differs from BuildKit and is not listed:\n{}",
            fmt(diffs)
        )),
        Some(_) if diffs.is_empty() => Some(format!(
            "{case}: listed as {:?} but now identical to BuildKit: remove it from LISTED",
            listed.map(|l| l.category)
        )),
        Some(l) => {
            let want: Vec<String> = l.diffs.iter().map(|s| s.to_string()).collect();
            (want != diffs).then(|| {
                format!(
                    "{case}: listed as {:?}, but the differences changed.\n  listed:\n{}\n  seen:\n{}",
                    l.category,
                    fmt(&want),
                    fmt(diffs)
                )
            })
        }
    }
}

#[test]
fn buildkit_differential() {
    for tool in ["umoci", "skopeo", "tar"] {
        if !have_tool(tool, TEST) {
            return;
        }
    }
    let Some(bb) = busybox(TEST) else {
        return;
    };
    let Some(dockerd) = Dockerd::start(TEST) else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("buildkit-differential");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let h = Harness { dir, dockerd };
    prepare(&h, &bb);

    let filter: Vec<String> = std::env::var("BKDIFF_CASES")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let cases: Vec<String> = all_cases()
        .into_iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.contains(f.as_str())))
        .collect();
    let jobs: usize = std::env::var("BKDIFF_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(3);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let diffs = run_case(&h, case);
                    results.lock().expect("results").insert(case.clone(), diffs);
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    drop(h);
    // `BKDIFF_WRITE=FILE` keeps every case's differences as JSON, to
    // review and update `tests/buildkit/expected.rs` from one run.
    if let Ok(out) = std::env::var("BKDIFF_WRITE") {
        let json = serde_json::to_string_pretty(&results).expect("results as JSON");
        std::fs::write(&out, json).expect("write BKDIFF_WRITE");
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (case, diffs) in &results {
        let listed = LISTED.iter().find(|l| l.case == case);
        let category = listed.map_or("identical", |l| l.category.name());
        let problem = verdict(case, diffs);
        let mark = if problem.is_some() { "FAIL" } else { "ok" };
        eprintln!("{mark:4} {case:40} {category}");
        // A deliberate difference says why, with the table.
        if let Some(l) = listed.filter(|l| l.category.deliberate()) {
            eprintln!("     why: {}", l.reason);
        }
        *counts.entry(category).or_default() += 1;
        problems.extend(problem);
    }
    eprintln!("{} cases: {counts:?}", results.len());
    assert!(
        problems.is_empty(),
        "{} of {} cases disagree with the listed expectations:\n\n{}",
        problems.len(),
        results.len(),
        problems.join("\n\n")
    );
}

/// The cases on disk and the table agree, and there are enough of them.
#[test]
fn listed_cases_exist() {
    let cases = all_cases();
    for l in LISTED {
        assert!(
            cases.iter().any(|c| c == l.case),
            "LISTED names {} which has no Dockerfile",
            l.case
        );
        assert!(
            !l.diffs.is_empty(),
            "{}: a listed case lists its differences",
            l.case
        );
        if l.category.deliberate() {
            assert!(
                !l.reason.is_empty(),
                "{}: a deliberate difference ({}) has a reason",
                l.case,
                l.category.name()
            );
        }
        // A reference that builds the case but is too old names the change
        // of a later BuildKit that strata follows.
        let refused = l.diffs.iter().all(|d| d.starts_with("buildkit failed"));
        if l.category == Category::ReferenceTooOld && !refused {
            assert!(
                !l.reason.is_empty(),
                "{}: a reference too old that builds the case says why",
                l.case
            );
        }
    }
    assert!(cases.len() >= 60, "{} cases", cases.len());
}

//! Lowering tests: a spec -> facts about the IR.

use std::collections::BTreeMap;

use petgraph::stable_graph::NodeIndex;

use super::*;
use crate::ir::{
    BaseInfo, BaseRef, Command, CopyFrom, Edge, MetaOp, MountKind, Network, Op, Sharing,
};

/// A resolver with one known image.
struct Fixed;

impl BaseResolver for Fixed {
    fn resolve(&self, base: &BaseRef, _platform: Option<&str>) -> Result<BaseInfo, String> {
        match base {
            BaseRef::Scratch => Ok(BaseInfo::default()),
            BaseRef::Image { reference } if reference == "busybox:1" => Ok(BaseInfo {
                env: vec![
                    ("PATH".into(), "/bin".into()),
                    ("HOME".into(), "/root".into()),
                ],
                user: None,
                workdir: Some("/home".into()),
                shell: Some(vec!["/bin/ash".into(), "-c".into()]),
                onbuild: vec![],
            }),
            BaseRef::Image { reference } => Err(format!("image `{reference}` is not in the store")),
            _ => Ok(BaseInfo::default()),
        }
    }
}

fn lower_ok(text: &str, opts: &LowerOptions) -> BuildGraph {
    match load("strata.toml", text, opts, &Fixed) {
        Ok(g) => g,
        Err(d) => panic!(
            "unexpected errors: {:#?}",
            d.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
        ),
    }
}

fn errors(text: &str, opts: &LowerOptions) -> Vec<String> {
    match load("strata.toml", text, opts, &Fixed) {
        Ok(_) => Vec::new(),
        Err(d) => d.errors.iter().map(|e| e.message.clone()).collect(),
    }
}

/// The ops of a stage's own nodes, first to last.
fn stage_ops(g: &BuildGraph, name: &str) -> Vec<(NodeIndex, Op)> {
    let st = g.stage(name).expect("stage exists");
    let mut v: Vec<(NodeIndex, Op)> = g
        .chain(st.last)
        .into_iter()
        .filter(|n| g.step(*n).stage == name)
        .map(|n| (n, g.step(n).op.clone()))
        .collect();
    v.dedup_by_key(|(n, _)| *n);
    v
}

fn runs(g: &BuildGraph, stage: &str) -> Vec<crate::ir::RunOp> {
    stage_ops(g, stage)
        .into_iter()
        .filter_map(|(_, op)| match op {
            Op::Run(r) => Some(r),
            _ => None,
        })
        .collect()
}

const FULL: &str = r#"
[args]
VERSION = "1.2.3"
MODE = {}

[stage.build]
from = "busybox:1"
args = ["VERSION", "MODE"]
steps = [
  { env = { PATH = "/usr/local/bin:${PATH}", GREETING = "hi $HOME" } },
  { workdir = "src" },
  { copy = ["app/"], to = "./", chmod = "0755", chown = "1000:1000" },
  { run = "make VERSION=${VERSION}", network = "none", mounts = [{ type = "cache", target = "cache", id = "x", sharing = "locked" }] },
  { arg = "LOCAL", default = "v-${VERSION}" },
  { run = ["/bin/true"] },
]

[stage.app]
from = "scratch"
steps = [
  { copy = ["/src/out/app"], from = "build", to = "/app" },
  { copy = ["/etc/ssl"], image = "alpine:3", to = "/etc/ssl/" },
]
cmd = "serve"
expose = ["8080", "53/udp"]
labels = { "org.example.version" = "${VERSION}" }

[image.app]
tags = ["example/app:${VERSION}", "example/app"]
"#;

#[test]
fn run_env_is_base_env_then_env_steps_then_args() {
    let g = lower_ok(FULL, &LowerOptions::default());
    let r = runs(&g, "build");
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0].env,
        vec![
            ("PATH".to_string(), "/usr/local/bin:/bin".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("GREETING".to_string(), "hi /root".to_string()),
            ("VERSION".to_string(), "1.2.3".to_string()),
        ],
        "MODE has no value and is left out"
    );
    // The run command is not expanded: the shell does it.
    assert_eq!(
        r[0].command,
        Command::Shell {
            shell: vec!["/bin/ash".into(), "-c".into()],
            script: "make VERSION=${VERSION}".into()
        }
    );
    assert_eq!(r[0].workdir, "/home/src");
    assert_eq!(r[0].network, Network::None);
    assert_eq!(r[0].mounts[0].kind, MountKind::Cache);
    assert_eq!(r[0].mounts[0].target, "/home/src/cache");
    assert_eq!(r[0].mounts[0].sharing, Some(Sharing::Locked));
    // The stage-local arg joins the environment of later runs.
    assert_eq!(
        r[1].env.last(),
        Some(&("LOCAL".to_string(), "v-1.2.3".to_string()))
    );
    assert_eq!(r[1].command, Command::Exec(vec!["/bin/true".into()]));
    assert_eq!(r[1].network, Network::Default);
}

#[test]
fn build_arg_overrides_and_unused_ones_warn() {
    let mut opts = LowerOptions::default();
    opts.build_args.insert("VERSION".into(), "2.0".into());
    opts.build_args.insert("MODE".into(), "fast".into());
    opts.build_args.insert("NOPE".into(), "x".into());
    let g = lower_ok(FULL, &opts);
    let r = runs(&g, "build");
    assert!(
        r[0].env
            .contains(&("VERSION".to_string(), "2.0".to_string()))
    );
    assert!(r[0].env.contains(&("MODE".to_string(), "fast".to_string())));
    assert_eq!(g.args.get("VERSION").map(String::as_str), Some("2.0"));
    assert_eq!(
        g.warnings,
        vec!["build arg NOPE was not consumed by any stage".to_string()]
    );
    assert_eq!(
        g.targets[0].tags,
        vec![
            "example/app:2.0".to_string(),
            "example/app:latest".to_string()
        ]
    );
}

#[test]
fn copy_dest_chmod_chown_and_sources() {
    let g = lower_ok(FULL, &LowerOptions::default());
    let ops = stage_ops(&g, "build");
    let copy = ops
        .iter()
        .find_map(|(_, op)| match op {
            Op::Copy(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a copy");
    assert_eq!(copy.dest, "/home/src/");
    assert_eq!(copy.chmod, Some(0o755));
    assert_eq!(
        copy.chown
            .as_ref()
            .map(|c| (c.user.as_str(), c.group.as_deref())),
        Some(("1000", Some("1000")))
    );
    assert_eq!(copy.from, CopyFrom::Context);

    let app = stage_ops(&g, "app");
    let build_last = g.stage("build").expect("build").last;
    let (n, op) = &app[1];
    match op {
        Op::Copy(c) => {
            assert_eq!(c.from, CopyFrom::Stage("build".into()));
            assert_eq!(c.dest, "/app");
        }
        other => panic!("expected a copy, got {other:?}"),
    }
    assert_eq!(g.sources_of(*n), vec![build_last]);
    match &app[2].1 {
        Op::Copy(c) => {
            assert_eq!(c.from, CopyFrom::Image("alpine:3".into()));
            assert_eq!(c.dest, "/etc/ssl/");
        }
        other => panic!("expected a copy, got {other:?}"),
    }
    assert!(g.sources_of(app[2].0).is_empty());
}

#[test]
fn stage_config_order_and_shell_wrapping() {
    let g = lower_ok(FULL, &LowerOptions::default());
    let metas: Vec<MetaOp> = stage_ops(&g, "app")
        .into_iter()
        .filter_map(|(_, op)| match op {
            Op::Meta(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(
        metas,
        vec![
            MetaOp::Label(vec![("org.example.version".into(), "1.2.3".into())]),
            MetaOp::Expose(vec!["8080/tcp".into(), "53/udp".into()]),
            MetaOp::Cmd(vec!["/bin/sh".into(), "-c".into(), "serve".into()]),
        ]
    );
}

#[test]
fn default_targets_are_images_and_spans_point_into_the_file() {
    let g = lower_ok(FULL, &LowerOptions::default());
    assert_eq!(g.sources.len(), 1);
    assert_eq!(g.targets.len(), 1);
    let t = &g.targets[0];
    assert_eq!((t.name.as_str(), t.stage.as_str()), ("app", "app"));
    assert_eq!(t.node, g.stage("app").expect("app").last);
    for n in g.graph.node_indices() {
        let span = g.step(n).span.expect("every step has a span");
        assert_eq!(span.source, 0);
        assert!(span.offset + span.len <= FULL.len());
        assert!(span.len > 0);
    }
    // Every non-base node has exactly one parent.
    for n in g.graph.node_indices() {
        let parents = g
            .graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .filter(|e| *e.weight() == Edge::Parent)
            .count();
        let is_base = matches!(g.step(n).op, Op::Base(_));
        assert_eq!(parents, usize::from(!is_base), "node {n:?}");
    }
}

#[test]
fn target_selection_and_cli_tags() {
    let opts = LowerOptions {
        targets: vec!["build".into()],
        tags: vec!["me/build:dev".into()],
        ..Default::default()
    };
    let g = lower_ok(FULL, &opts);
    assert_eq!(g.targets.len(), 1);
    assert_eq!(g.targets[0].stage, "build");
    assert_eq!(g.targets[0].tags, vec!["me/build:dev".to_string()]);

    let opts = LowerOptions {
        targets: vec!["nope".into()],
        ..Default::default()
    };
    assert_eq!(
        errors(FULL, &opts),
        vec!["unknown --target `nope`".to_string()]
    );

    let opts = LowerOptions {
        targets: vec!["build".into(), "app".into()],
        tags: vec!["x:1".into()],
        ..Default::default()
    };
    let e = errors(FULL, &opts);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("-t/--tag given, but 2 targets"), "{e:?}");
}

#[test]
fn without_images_the_last_stage_is_the_target() {
    let g = lower_ok(
        "[stage.a]\nfrom = \"scratch\"\n[stage.b]\nfrom = \"a\"\n",
        &LowerOptions::default(),
    );
    assert_eq!(g.targets.len(), 1);
    assert_eq!(g.targets[0].name, "b");
    // A stage from another stage with no steps ends at that stage's node.
    assert_eq!(g.stage("b").expect("b").last, g.stage("a").expect("a").last);
    assert_eq!(g.stage("b").expect("b").first, None);
}

#[test]
fn stage_from_stage_inherits_state_but_not_args() {
    let text = r#"
[args]
V = "1"
[stage.base]
from = "busybox:1"
args = ["V"]
steps = [{ env = { A = "a" } }, { workdir = "/w" }, { user = "app" }, { shell = ["/bin/bash", "-c"] }]
[stage.child]
from = "base"
steps = [{ run = "echo" }]
entrypoint = "start"
"#;
    let g = lower_ok(text, &LowerOptions::default());
    let child = stage_ops(&g, "child");
    let r = runs(&g, "child").remove(0);
    assert_eq!(r.workdir, "/w");
    assert_eq!(r.user.as_deref(), Some("app"));
    assert_eq!(r.env.last(), Some(&("A".to_string(), "a".to_string())));
    assert!(
        !r.env.iter().any(|(k, _)| k == "V"),
        "args do not cross stages"
    );
    assert_eq!(
        r.command,
        Command::Shell {
            shell: vec!["/bin/bash".into(), "-c".into()],
            script: "echo".into()
        }
    );
    // The child's first step hangs off the base stage's last node; no Base node.
    let base_last = g.stage("base").expect("base").last;
    assert_eq!(g.parent(child[0].0), Some(base_last));
    assert_eq!(g.stage("child").expect("child").first, Some(child[0].0));
    assert!(!child.iter().any(|(_, op)| matches!(op, Op::Base(_))));
    assert_eq!(
        child.last().map(|(_, op)| op.clone()),
        Some(Op::Meta(MetaOp::Entrypoint(vec![
            "/bin/bash".into(),
            "-c".into(),
            "start".into()
        ])))
    );
}

#[test]
fn stages_are_lowered_in_dependency_order() {
    let text = r#"
[stage.app]
from = "scratch"
steps = [{ copy = ["/x"], from = "tools", to = "/x" }, { run = "true", mounts = [{ type = "bind", target = "/m", from = "data" }] }]
[stage.tools]
from = "scratch"
steps = [{ copy = ["x"], to = "/x" }]
[stage.data]
from = "tools"
"#;
    let g = lower_ok(text, &LowerOptions::default());
    let app = stage_ops(&g, "app");
    let run = app.last().expect("run").0;
    assert_eq!(g.sources_of(run), vec![g.stage("data").expect("data").last]);
    assert_eq!(
        g.sources_of(app[1].0),
        vec![g.stage("tools").expect("tools").last]
    );
    match &g.step(run).op {
        Op::Run(r) => assert_eq!(r.mounts[0].from.as_deref(), Some("data")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn semantic_errors_are_all_reported() {
    let text = r#"
[stage.a]
from = "b"
steps = [
  { copy = ["x"], to = "/x", chmod = "999" },
  { run = "x", network = "cloud" },
  { volume = ["data"] },
  { expose = ["http"] },
  { healthcheck = { test = "true", interval = "30 s" } },
  { workdir = "$NOPE" },
]
[stage.b]
from = "a"
"#;
    let e = errors(text, &LowerOptions::default());
    let expect = [
        "dependency cycle between stages: a -> b -> a",
        "bad chmod `999`",
        "unknown network mode `cloud`",
        "relative volume path `data`",
        "bad expose `http`",
        "bad duration `30 s`",
        "undefined variable `NOPE`",
    ];
    for x in expect {
        assert!(e.iter().any(|m| m == x), "missing {x:?} in {e:#?}");
    }
    assert_eq!(e.len(), expect.len(), "{e:#?}");
}

#[test]
fn base_images_are_resolved_and_unknown_ones_reported() {
    let e = errors("[stage.a]\nfrom = \"alpine:3\"\n", &LowerOptions::default());
    assert_eq!(e, vec!["image `alpine:3` is not in the store".to_string()]);
    let g = lower_ok(
        "[stage.a]\nfrom = { oci = \"./layout\", ref = \"v1\" }\nplatform = \"linux/arm64/v8\"\n",
        &LowerOptions::default(),
    );
    match &g.step(g.stage("a").expect("a").last).op {
        Op::Base(b) => {
            assert_eq!(
                b.base,
                BaseRef::OciLayout {
                    path: "./layout".into(),
                    reference: Some("v1".into())
                }
            );
            // Normalized as containerd does: arm64's only variant is v8.
            assert_eq!(b.platform.as_deref(), Some("linux/arm64"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn add_options() {
    let text = r#"
[stage.a]
from = "scratch"
steps = [{ add = ["a.tar.gz"], to = "/opt/", checksum = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", unpack = false }]
"#;
    let g = lower_ok(text, &LowerOptions::default());
    match &g.step(g.stage("a").expect("a").last).op {
        Op::Copy(c) => {
            let add = c.add.as_ref().expect("add options");
            assert!(!add.unpack);
            assert!(!add.keep_git_dir);
            assert!(
                add.checksum
                    .as_deref()
                    .is_some_and(|s| s.starts_with("sha256:0123"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn helpers() {
    use crate::frontend::values::{
        normalize_port, parse_duration, parse_octal, resolve_dest, resolve_path,
    };
    assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
    assert_eq!(parse_duration("500ms"), Some(500_000_000));
    assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
    assert_eq!(parse_duration("0"), Some(0));
    for bad in ["", "s", "10", "1x", "-1s", "1.5s", "99999999999999999999s"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    assert_eq!(parse_octal("0755"), Some(0o755));
    assert_eq!(parse_octal("4755"), Some(0o4755));
    for bad in ["", "8", "0o755", "17777", "rwx"] {
        assert_eq!(parse_octal(bad), None, "{bad}");
    }
    assert_eq!(resolve_path("/a/b", "../c/./d"), "/a/c/d");
    assert_eq!(resolve_path("/a", "/x/.."), "/");
    assert_eq!(resolve_dest("/a", "."), "/a/");
    assert_eq!(resolve_dest("/a", "b/"), "/a/b/");
    assert_eq!(resolve_dest("/", "/"), "/");
    assert_eq!(normalize_port("80").as_deref(), Some("80/tcp"));
    assert_eq!(
        normalize_port("8000-8010/udp").as_deref(),
        Some("8000-8010/udp")
    );
    // The protocol in any case, as a Dockerfile's EXPOSE takes it.
    assert_eq!(normalize_port("80/TCP").as_deref(), Some("80/tcp"));
    for bad in ["0", "65536", "80/http", "10-5", ""] {
        assert_eq!(normalize_port(bad), None, "{bad}");
    }
}

#[test]
fn key_tables_match_the_schema() {
    let schema = json_schema();
    let props = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let sorted = |v: &[&str]| -> Vec<String> {
        let mut k: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(props(&schema), sorted(model::DOCUMENT_KEYS));
    assert_eq!(
        props(&schema["definitions"]["StageSpec"]),
        sorted(model::STAGE_KEYS)
    );
    assert_eq!(
        props(&schema["definitions"]["ImageSpec"]),
        sorted(model::IMAGE_KEYS)
    );
    let mut step_keys: Vec<&str> = model::VERBS.iter().map(|(v, _)| *v).collect();
    for (_, o) in model::VERBS {
        step_keys.extend(o.iter().copied());
    }
    step_keys.sort();
    step_keys.dedup();
    assert_eq!(
        props(&schema["definitions"]["StepSpec"]),
        sorted(&step_keys)
    );
}

#[test]
fn unused_map_is_sorted() {
    // BuildGraph.args is a BTreeMap: deterministic display order.
    let g = lower_ok(
        "[args]\nB = \"2\"\nA = \"1\"\n[stage.s]\nfrom = \"scratch\"\n",
        &LowerOptions::default(),
    );
    let keys: Vec<&String> = g.args.keys().collect();
    assert_eq!(keys, vec!["A", "B"]);
    let _: &BTreeMap<String, String> = &g.args;
}

#[test]
fn first_node_of_a_stage_with_only_config() {
    let g = lower_ok(
        "[stage.a]\nfrom = \"scratch\"\n[stage.b]\nfrom = \"a\"\ncmd = [\"/x\"]\n",
        &LowerOptions::default(),
    );
    let b = g.stage("b").expect("b");
    assert_eq!(b.first, Some(b.last));
    assert_eq!(g.parent(b.last), Some(g.stage("a").expect("a").last));
    let a = g.stage("a").expect("a");
    assert_eq!(
        a.first,
        Some(a.last),
        "a stage of only a base starts and ends at it"
    );
}

/// A readable dump of the whole graph: one line per node, with its edges
/// and, for a RUN, everything it runs with.
fn dump(g: &BuildGraph) -> String {
    let mut out = String::new();
    for n in g.graph.node_indices() {
        let step = g.step(n);
        let parent = g
            .parent(n)
            .map(|p| format!(" <- n{}", p.index()))
            .unwrap_or_default();
        let sources: Vec<String> = g
            .sources_of(n)
            .iter()
            .map(|s| format!("n{}", s.index()))
            .collect();
        let sources = if sources.is_empty() {
            String::new()
        } else {
            format!(" + sources [{}]", sources.join(", "))
        };
        out.push_str(&format!(
            "n{} [{}] {}{parent}{sources}\n",
            n.index(),
            step.stage,
            g.describe(n)
        ));
        if let Op::Run(r) = &step.op {
            out.push_str(&format!(
                "    argv {:?}\n    env {:?}\n    user {:?} workdir {:?}\n",
                r.command.argv(),
                r.env,
                r.user,
                r.workdir
            ));
        }
        if let Op::Meta(MetaOp::Healthcheck(h)) = &step.op {
            out.push_str(&format!("    {h:?}\n"));
        }
    }
    for s in &g.stages {
        out.push_str(&format!(
            "stage {} first {:?} last n{}\n",
            s.name,
            s.first.map(|f| f.index()),
            s.last.index()
        ));
    }
    for t in &g.targets {
        out.push_str(&format!(
            "target {} stage {} node n{} tags {:?}\n",
            t.name,
            t.stage,
            t.node.index(),
            t.tags
        ));
    }
    out.push_str(&format!("args {:?}\nwarnings {:?}\n", g.args, g.warnings));
    out
}

/// Golden test: the spec using every feature lowers to this graph.
#[test]
fn everything_spec_lowers_to_the_golden_graph() {
    let text = include_str!("../../../tests/good-specs/everything.toml");
    let mut opts = LowerOptions::default();
    opts.build_args.insert("DEBUG".into(), "1".into());
    let g = lower_ok(text, &opts);
    insta::with_settings!({ snapshot_path => "../../../tests/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("lowered-everything", dump(&g));
    });
}

/// The TOML expander against BuildKit's shell-lexer tables: every case a
/// spec string can spell (no quotes or escapes, each `$` starting a name
/// or `${`) expands to what BuildKit gives, except where a spec refuses an
/// undefined name (then the case leaves that name unset).
#[test]
fn expansion_operators_agree_with_buildkit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/buildkit-shell");
    if !root.exists() {
        eprintln!("SKIP: {} is absent", root.display());
        return;
    }
    /// Input, variables, BuildKit's result (`None`: an error).
    type Case = (String, Vec<(String, String)>, Option<String>);
    let mut cases: Vec<Case> = Vec::new();
    let env_var_test_env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let text = std::fs::read_to_string(root.join("envVarTest")).expect("envVarTest");
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        if line.starts_with('#') || f.len() != 3 || f[0] == "W" {
            continue;
        }
        let want = (f[2] != "error").then(|| f[2].to_string());
        cases.push((f[1].to_string(), env_var_test_env.clone(), want));
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("process-word-cases.json")).expect("cases"),
    )
    .expect("json");
    for group in [
        "process_word_with_matches",
        "mandatory_env_vars",
        "platform_template",
    ] {
        for c in json[group].as_array().expect("array") {
            if c["not_guaranteed"].as_bool() == Some(true) {
                continue;
            }
            let env: Vec<(String, String)> = c["envs"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let want = c["expected"].as_str().map(str::to_string);
            cases.push((c["input"].as_str().expect("input").to_string(), env, want));
        }
    }
    let spellable = |s: &str| {
        !s.contains(['\'', '"', '\\'])
            && s.match_indices('$').all(|(i, _)| {
                let rest = s[i + 1..].strip_prefix('{').unwrap_or(&s[i + 1..]);
                rest.chars()
                    .next()
                    .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            })
    };
    let (mut same, mut refused) = (0, 0);
    let mut failed = Vec::new();
    for (input, env, want) in cases.iter().filter(|c| spellable(&c.0)) {
        let lookup = |n: &str| {
            env.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| Some(v.clone()))
        };
        let got = super::expand::expand(input, &lookup);
        // The name refused is one the case leaves unset.
        let unset_seen = got.as_ref().err().is_some_and(|e| {
            let name = e.message.split('`').nth(1).unwrap_or("");
            !env.iter().any(|(k, _)| k == name)
        });
        match (&got, want) {
            (Ok(g), Some(w)) if g == w => same += 1,
            (Err(_), None) => same += 1,
            (Err(e), Some(_)) if e.message.starts_with("undefined variable") && unset_seen => {
                refused += 1
            }
            _ => failed.push(format!(
                "{input:?} with {env:?}: got {got:?}, BuildKit {want:?}"
            )),
        }
    }
    eprintln!("{same} cases as BuildKit, {refused} refused for an undefined name");
    // The tables are pinned (see their README): every case a spec can
    // spell is compared.
    assert_eq!((same, refused), (92, 10), "cases compared");
    assert!(
        failed.is_empty(),
        "{} differ:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A mount value written as a template is read once expanded; every bad
/// one of a mount is reported, each saying what it should be.
#[test]
fn mount_templates_are_read_once_expanded() {
    let spec = |u: &str, s: &str, r: &str| {
        format!(
            r#"
[args]
U = "{u}"
S = "{s}"
R = "{r}"
[stage.a]
from = "scratch"
steps = [{{ run = "x", mounts = [{{ type = "cache", target = "/c", uid = "${{U}}", gid = 70000, sharing = "${{S}}", readonly = "${{R}}" }}] }}]
"#
        )
    };
    let g = lower_ok(&spec("7", "locked", "false"), &LowerOptions::default());
    let ops = stage_ops(&g, "a");
    let Some(Op::Run(r)) = ops.last().map(|o| &o.1) else {
        panic!("not a run: {ops:?}")
    };
    let m = &r.mounts[0];
    assert_eq!((m.uid, m.gid), (Some(7), Some(70000)));
    assert_eq!((m.sharing, m.readonly), (Some(Sharing::Locked), false));
    assert_eq!(
        errors(
            &spec("4294967296", "bogus", "maybe"),
            &LowerOptions::default()
        ),
        [
            // At the mount (a flag's template has no span of its own).
            "bad readonly `maybe` in mount: expected true or false",
            "bad uid `4294967296` in mount: not a number",
            "bad sharing `bogus` in mount: expected shared, private or locked",
        ]
    );
}

/// A mount value of the wrong type or out of range is refused, saying
/// what the key takes (serde's wording, in TOML's terms).
#[test]
fn mount_values_of_the_wrong_type_are_refused() {
    let spec = |kv: &str| {
        format!(
            "[stage.a]\nfrom = \"scratch\"\nsteps = [{{ run = \"x\", mounts = [{{ type = \"cache\", target = \"/c\", {kv} }}] }}]\n"
        )
    };
    let cases = [
        "uid = 4294967296",
        "uid = -1",
        "uid = true",
        "gid = 18446744073709551615",
        "readonly = 1",
        "sharing = 1",
        "sharing = \"bogus\"",
        "sharing = \"Locked\"",
    ];
    let got: Vec<Vec<String>> = cases
        .iter()
        .map(|kv| errors(&spec(kv), &LowerOptions::default()))
        .collect();
    let want = [
        "bad uid `4294967296` in mount: not a number",
        "-1 is negative: expected a non-negative integer or a string",
        "wrong type: boolean `true`, expected a non-negative integer or a string",
        "bad gid `18446744073709551615` in mount: not a number",
        "wrong type: integer `1`, expected a boolean or a string",
        "wrong type: integer `1`, expected a string",
        "unknown value `bogus`, expected one of `shared`, `private`, `locked`",
        "unknown value `Locked`, expected one of `shared`, `private`, `locked`",
    ];
    assert_eq!(got, want.map(|w| vec![w.to_string()]));
}

//! Dockerfiles through the instruction model and the one lowering (issue
//! 9): BuildKit's meaning where it differs from a TOML spec's, and
//! diagnostics that point into the Dockerfile.

use strata::frontend::LowerOptions;
use strata::frontend::dockerfile;
use strata::ir::{
    BaseInfo, BaseRef, BaseResolver, BuildGraph, CopyFrom, EmptyResolver, MetaOp, Op,
};

/// Every image but scratch has this env.
struct WithEnv;
impl BaseResolver for WithEnv {
    fn resolve(&self, base: &BaseRef, _platform: Option<&str>) -> Result<BaseInfo, String> {
        if matches!(base, BaseRef::Scratch) {
            return Ok(BaseInfo::default());
        }
        Ok(BaseInfo {
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("VERSION".into(), "7".into()),
            ],
            ..BaseInfo::default()
        })
    }
}

fn load(text: &str, build_args: &[(&str, &str)], r: &dyn BaseResolver) -> BuildGraph {
    let mut opts = LowerOptions::default();
    for (k, v) in build_args {
        opts.build_args.insert(k.to_string(), v.to_string());
    }
    dockerfile::load("Dockerfile", text, &opts, r)
        .unwrap_or_else(|d| panic!("{text}\n{:?}", miette::Report::new(d)))
}

fn ops(g: &BuildGraph) -> Vec<&Op> {
    let mut v: Vec<_> = g.graph.node_indices().collect();
    v.sort();
    v.into_iter().map(|i| &g.graph[i].op).collect()
}

/// The value ENV gave `name` last.
fn env(g: &BuildGraph, name: &str) -> Option<String> {
    ops(g).into_iter().rev().find_map(|op| match op {
        Op::Meta(MetaOp::Env(vars)) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        _ => None,
    })
}

#[test]
fn a_mount_uid_may_be_a_variable() {
    let text =
        "FROM scratch\nARG UID=1000\nRUN --mount=type=cache,target=/c,uid=$UID,gid=${UID} true\n";
    let uid = |g: &BuildGraph| {
        ops(g).into_iter().find_map(|op| match op {
            Op::Run(r) => r.mounts.first().map(|m| (m.uid, m.gid)),
            _ => None,
        })
    };
    assert_eq!(
        uid(&load(text, &[], &EmptyResolver)),
        Some((Some(1000), Some(1000)))
    );
    assert_eq!(
        uid(&load(text, &[("UID", "5")], &EmptyResolver)),
        Some((Some(5), Some(5)))
    );
    let mut opts = LowerOptions::default();
    opts.build_args.insert("UID".into(), "app".into());
    let e = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect_err("uid=app");
    assert!(
        e.errors
            .iter()
            .any(|e| e.message == "bad uid `app` in mount: not a number"),
        "{:?}",
        e.errors
    );
}

/// A global arg a stage does not declare is unset there: a word sees the
/// base image's variable of that name, or nothing.
#[test]
fn an_undeclared_global_arg_leaves_the_base_env_visible() {
    let text = "ARG VERSION=1\nFROM img\nENV V=$VERSION W=${VERSION:-none}\n";
    let g = load(text, &[], &WithEnv);
    assert_eq!(env(&g, "V").as_deref(), Some("7"));
    assert_eq!(env(&g, "W").as_deref(), Some("7"));
    let g = load(&text.replace("img", "scratch"), &[], &WithEnv);
    assert_eq!(env(&g, "V").as_deref(), Some(""));
    assert_eq!(env(&g, "W").as_deref(), Some("none"));
    // Declared in the stage: the global's value (the env still wins).
    let g = load(
        "ARG VERSION=1\nFROM scratch\nARG VERSION\nENV V=$VERSION\n",
        &[],
        &WithEnv,
    );
    assert_eq!(env(&g, "V").as_deref(), Some("1"));
}

#[test]
fn pattern_operators_see_the_base_env() {
    let text = "FROM img\nENV P=${PATH%%:*} Q=${PATH#*:} R=${PATH/bin/sbin}\n";
    let g = load(text, &[], &WithEnv);
    assert_eq!(env(&g, "P").as_deref(), Some("/usr/bin"));
    assert_eq!(env(&g, "Q").as_deref(), Some("/bin"));
    assert_eq!(env(&g, "R").as_deref(), Some("/usr/sbin:/bin"));
    let g = load(&text.replace("img", "scratch"), &[], &WithEnv);
    assert_eq!(env(&g, "P").as_deref(), Some(""));
}

#[test]
fn copy_from_a_variable_may_name_a_stage() {
    let text = "ARG SRC=build\nFROM scratch AS build\nFROM scratch\nCOPY --from=$SRC /a /b\n";
    let from = |g: &BuildGraph| {
        ops(g).into_iter().find_map(|op| match op {
            Op::Copy(c) => Some(c.from.clone()),
            _ => None,
        })
    };
    let g = load(text, &[], &EmptyResolver);
    assert_eq!(from(&g), Some(CopyFrom::Stage("build".into())));
    assert_eq!(
        g.graph.edge_count(),
        1 + 1,
        "the parent edge and the source edge"
    );
    let g = load(text, &[("SRC", "busybox")], &EmptyResolver);
    assert_eq!(from(&g), Some(CopyFrom::Image("busybox:latest".into())));
}

/// The lowering's checks point at the Dockerfile and name the
/// instruction as a Dockerfile user writes it.
#[test]
fn shared_checks_point_into_the_dockerfile() {
    let cases = [
        (
            "FROM scratch\nRUN []\n",
            "empty RUN (`run`) command",
            "RUN []",
        ),
        (
            "FROM scratch\nUSER :x\n",
            "USER (`user`) needs a user name or id",
            ":x",
        ),
        (
            "FROM scratch\nWORKDIR /a\nVOLUME data\n",
            "relative volume path `data`",
            "data",
        ),
        (
            "FROM scratch AS a\nFROM --platform=linux/amd64 a\n",
            "a platform (FROM --platform, `platform`) only applies to a stage that starts from an image",
            "--platform",
        ),
        (
            "FROM scratch\nRUN --mount=type=cache true\n",
            "a cache mount needs a target (`target`)",
            "--mount",
        ),
    ];
    for (text, message, at) in cases {
        let e = dockerfile::load("Dockerfile", text, &LowerOptions::default(), &EmptyResolver)
            .expect_err(text);
        let found = e.errors.iter().find(|e| e.message == message);
        let Some(d) = found else {
            panic!("{text}: no `{message}` in {:?}", e.errors);
        };
        let o = d.span.offset();
        assert_eq!(&text[o..o + d.span.len()], at, "{text}");
    }
}

#[test]
fn a_target_names_a_stage_in_any_case() {
    let text = "FROM scratch AS Build\nFROM scratch\n";
    let opts = LowerOptions {
        targets: vec!["BUILD".into()],
        ..LowerOptions::default()
    };
    let g = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect("load");
    let names: Vec<&str> = g.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["build"]);
}

/// The mounts of the graph's RUNs, in order.
fn mounts(g: &BuildGraph) -> Vec<&strata::ir::Mount> {
    ops(g)
        .into_iter()
        .filter_map(|op| match op {
            Op::Run(r) => Some(r.mounts.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// BuildKit expands ENV and LABEL names (`ENV $K=v`), as their values.
#[test]
fn env_and_label_names_may_be_variables() {
    let text = "FROM scratch\nARG K=FOO\nENV $K=1 ${K}_B=2\nLABEL \"l.$K\"=v\n";
    let g = load(text, &[], &EmptyResolver);
    assert_eq!(env(&g, "FOO").as_deref(), Some("1"));
    assert_eq!(env(&g, "FOO_B").as_deref(), Some("2"));
    let labels: Vec<(String, String)> = ops(&g)
        .into_iter()
        .find_map(|op| match op {
            Op::Meta(MetaOp::Label(l)) => Some(l.clone()),
            _ => None,
        })
        .expect("label");
    assert_eq!(labels, vec![("l.FOO".to_string(), "v".to_string())]);
    let g = load(text, &[("K", "BAR")], &EmptyResolver);
    assert_eq!(env(&g, "BAR").as_deref(), Some("1"));
    // A name that expands to nothing is refused, at the value.
    let bad = "FROM scratch\nENV $NOPE=1\n";
    let e = dockerfile::load("Dockerfile", bad, &LowerOptions::default(), &EmptyResolver)
        .expect_err("empty name");
    assert!(e.errors[0].message.contains("bad variable name"), "{e:?}");
}

/// BuildKit expands every `--mount` value: `readonly`, `rw`, `required`
/// and `sharing` too, read once expanded (Go's ParseBool: `True`, `t`, `0`
/// ...; sharing in any case).
#[test]
fn mount_options_may_be_variables() {
    let text = "FROM scratch\nARG RO=false\nARG RW=True\nARG S=LOCKED\nARG REQ=t\n\
        RUN --mount=type=cache,target=/c,sharing=$S,readonly=$RO true\n\
        RUN --mount=type=bind,target=/b,rw=$RW true\n\
        RUN --mount=type=secret,id=x,required=$REQ true\n";
    let g = load(text, &[], &EmptyResolver);
    let m = mounts(&g);
    assert_eq!(
        (m[0].readonly, m[0].sharing),
        (false, Some(strata::ir::Sharing::Locked))
    );
    assert!(!m[1].readonly, "rw=True");
    assert!(m[2].required);
    let g = load(
        text,
        &[("RW", "0"), ("RO", "1"), ("S", "private")],
        &EmptyResolver,
    );
    let m = mounts(&g);
    assert!(m[0].readonly && m[1].readonly);
    assert_eq!(m[0].sharing, Some(strata::ir::Sharing::Private));
    // A value that is not one, once expanded: refused at the mount.
    let mut opts = LowerOptions::default();
    opts.build_args.insert("RO".into(), "maybe".into());
    opts.build_args.insert("S".into(), "everyone".into());
    let e = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect_err("bad values");
    let msgs: Vec<&str> = e.errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("bad readonly `maybe`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("bad sharing `everyone`")),
        "{msgs:?}"
    );
    let at = e.errors[0].span.offset();
    assert!(
        text[at..].starts_with("--mount=type=cache"),
        "{}",
        &text[at..]
    );
}

/// The same in a TOML spec: names and mount options are templates.
#[test]
fn toml_names_and_mount_options_are_expanded() {
    let spec = "[args]\nK = \"FOO\"\nRO = \"false\"\nS = \"shared\"\n\
        [stage.a]\nfrom = \"scratch\"\nsteps = [\n\
        { env = { \"${K}\" = \"1\", \"a$$b\" = \"2\" } },\n\
        { run = \"true\", mounts = [{ type = \"cache\", target = \"/c\", readonly = \"${RO}\", sharing = \"${S}\" }] },\n\
        { run = \"true\", mounts = [{ type = \"bind\", target = \"/b\", rw = true }] },\n]\n";
    let g = strata::frontend::toml::load("s.toml", spec, &LowerOptions::default(), &EmptyResolver)
        .unwrap_or_else(|d| panic!("{:?}", miette::Report::new(d)));
    assert_eq!(env(&g, "FOO").as_deref(), Some("1"));
    assert_eq!(env(&g, "a$b").as_deref(), Some("2"));
    let m = mounts(&g);
    assert!(!m[0].readonly && !m[1].readonly);
    assert_eq!(m[0].sharing, Some(strata::ir::Sharing::Shared));
    let both = spec.replace("rw = true", "rw = true, readonly = true");
    let e = strata::frontend::toml::load("s.toml", &both, &LowerOptions::default(), &EmptyResolver)
        .expect_err("both");
    assert!(
        e.errors
            .iter()
            .any(|e| e.message.contains("both `readonly` and `rw`")),
        "{e:?}"
    );
    let bad = spec.replace("\"${S}\"", "\"everyone\"");
    let e = strata::frontend::toml::load("s.toml", &bad, &LowerOptions::default(), &EmptyResolver)
        .expect_err("bad sharing");
    assert!(
        e.errors.iter().any(|e| e
            .message
            .contains("`everyone`, expected one of `shared`, `private`, `locked`")),
        "{e:?}"
    );
}

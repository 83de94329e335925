//! `convert` round trip: for every Dockerfile we know, the Dockerfile
//! frontend and the TOML frontend (on `convert`'s output) build the same IR.

use std::path::{Path, PathBuf};

use strata::frontend::LowerOptions;
use strata::frontend::dockerfile;
use strata::frontend::toml as spec;
use strata::ir::EmptyResolver;

fn dockerfiles() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in ["examples", "../shared/bench/scenarios"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            eprintln!("SKIP: {dir} is absent");
            continue;
        };
        for e in rd.flatten() {
            let p = e.path().join("Dockerfile");
            if p.exists() {
                v.push(p);
            }
        }
    }
    for e in std::fs::read_dir(root.join("tests/dockerfiles"))
        .expect("fixtures")
        .flatten()
    {
        v.push(e.path());
    }
    v.sort();
    v
}

/// The graph without what legitimately differs (spans, sources, warnings).
fn comparable(g: &strata::ir::BuildGraph) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("span");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(g).expect("serialize");
    if let Some(m) = v.as_object_mut() {
        m.remove("sources");
        m.remove("warnings");
    }
    strip(&mut v);
    v
}

/// Every Dockerfile the tests, examples and bench scenarios have: the
/// fixtures above, the BuildKit differential cases (`tests/buildkit/**`)
/// and the buildah differential's.
fn all_dockerfiles() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                walk(&p, out);
            } else if name == "Dockerfile" || name.ends_with(".Dockerfile") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = dockerfiles();
    for dir in ["tests/buildkit", "tests/differential"] {
        walk(&root.join(dir), &mut v);
    }
    v.sort();
    v.dedup();
    v
}

/// The build options a BuildKit case's comment lines give
/// (`# bkdiff-build-arg: K=V`, `# bkdiff-target: STAGE`), as its harness
/// builds it; whether it expects both builders to refuse it.
fn case_options(text: &str) -> (LowerOptions, bool) {
    let mut opts = LowerOptions::default();
    let mut expect_error = false;
    for line in text.lines().filter(|l| l.starts_with('#')) {
        let Some((k, v)) = line.trim_start_matches('#').trim().split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "bkdiff-build-arg" => {
                if let Some((a, b)) = v.split_once('=') {
                    opts.build_args.insert(a.to_string(), b.to_string());
                }
            }
            "bkdiff-target" => opts.targets.push(v.to_string()),
            "bkdiff-expect" => expect_error = v == "error",
            _ => {}
        }
    }
    (opts, expect_error)
}

/// A base image as the BuildKit cases have it (busybox: a PATH), so that
/// references the base's env may define are resolved both ways; with
/// `onbuild`, an image with ONBUILD triggers (which a Dockerfile FROM runs,
/// and the converted `base-onbuild = true` too).
struct Busybox {
    onbuild: bool,
}
impl strata::ir::BaseResolver for Busybox {
    fn resolve(
        &self,
        b: &strata::ir::BaseRef,
        _: Option<&str>,
    ) -> Result<strata::ir::BaseInfo, String> {
        if matches!(b, strata::ir::BaseRef::Scratch) {
            return Ok(Default::default());
        }
        let onbuild = match self.onbuild {
            true => vec!["LABEL from=base".into(), "ENV FROM_BASE=1".into()],
            false => Vec::new(),
        };
        Ok(strata::ir::BaseInfo {
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            onbuild,
            ..Default::default()
        })
    }
}

/// The round trip, strong form (issue 9): for every Dockerfile we have,
/// the Dockerfile's own lowering (IR A) and the lowering of the TOML
/// `convert` prints for it (IR B) are the same graph, with the build args
/// and target its test builds it with, over a base with an env and over
/// none. Prints how many convert and every refusal with its reason; a
/// Dockerfile `build` accepts must convert. (A case that expects an error
/// may fail only when built, e.g. a missing source: it still converts.)
#[test]
fn convert_gives_the_same_ir() {
    let files = all_dockerfiles();
    assert!(files.len() >= 100, "{}", files.len());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut converted, mut refused) = (0, Vec::new());
    for p in &files {
        let text = std::fs::read_to_string(p).expect("read");
        let name = p.strip_prefix(root).unwrap_or(p).display().to_string();
        let (opts, expect_error) = case_options(&text);
        let built = dockerfile::load(&name, &text, &opts, &EmptyResolver);
        let toml = match dockerfile::convert(&name, &text) {
            Ok((toml, _warnings)) => toml,
            Err(d) => {
                let reason = d
                    .errors
                    .first()
                    .map_or(String::new(), |e| e.message.clone());
                assert!(
                    built.is_err() || expect_error,
                    "{name}: build accepts it but convert refuses: {:?}",
                    miette::Report::new(d)
                );
                refused.push((name, reason));
                continue;
            }
        };
        converted += 1;
        let resolvers: [&dyn strata::ir::BaseResolver; 3] = [
            &EmptyResolver,
            &Busybox { onbuild: false },
            &Busybox { onbuild: true },
        ];
        for resolver in resolvers {
            let g1 = dockerfile::load(&name, &text, &opts, resolver)
                .unwrap_or_else(|d| panic!("{name}: {:?}", miette::Report::new(d)));
            let g2 = spec::load("converted.toml", &toml, &opts, resolver)
                .unwrap_or_else(|d| panic!("{name}:\n{toml}\n{:?}", miette::Report::new(d)));
            assert_eq!(comparable(&g1), comparable(&g2), "{name}:\n{toml}");
            assert!(!g1.targets.is_empty(), "{name}");
        }
    }
    eprintln!(
        "convert round trip: {converted} of {} Dockerfiles convert to the same IR; {} refused:",
        files.len(),
        refused.len()
    );
    for (name, reason) in &refused {
        eprintln!("  refused {name}: {reason}");
    }
    // Refused only where `build` refuses too (the error cases).
    assert!(converted + refused.len() == files.len());
}

#[test]
fn convert_output_validates_with_the_schema() {
    let schema = spec::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema");
    for p in dockerfiles() {
        let text = std::fs::read_to_string(&p).expect("read");
        let (toml, _) = dockerfile::convert("Dockerfile", &text).expect("convert");
        let value: toml::Value = toml::from_str(&toml).expect("toml");
        let json = serde_json::to_value(value).expect("json");
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}:\n{toml}\n{errors:?}", p.display());
    }
}

/// Truncated and mutated fixtures never panic `load` or `convert`.
#[test]
fn mutated_dockerfiles_do_not_panic() {
    let opts = LowerOptions::default();
    for p in dockerfiles() {
        let text = std::fs::read_to_string(&p).expect("read");
        let mut cuts: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        cuts.retain(|i| i % 3 == 0 || *i == text.len());
        for i in cuts {
            let t = &text[..i];
            let _ = dockerfile::load("Dockerfile", t, &opts, &EmptyResolver);
            let _ = dockerfile::convert("Dockerfile", t);
            for insert in ["\\", "\"", "'", "${", "<<X", "[", "--", "\n", "$"] {
                let m = format!("{t}{insert}{}", &text[i..]);
                let _ = dockerfile::load("Dockerfile", &m, &opts, &EmptyResolver);
                let _ = dockerfile::convert("Dockerfile", &m);
            }
        }
    }
}

/// A global ARG used in a stage that does not declare it expands as unset,
/// as in Docker: `convert` keeps that meaning and warns at each use.
#[test]
fn convert_warns_about_global_args_out_of_scope() {
    let text = "ARG V=1\nFROM scratch\nLABEL a=$V b=${V:-x}\nRUN echo $V\nARG V\nLABEL c=$V\n";
    let (toml, warnings) = dockerfile::convert("Dockerfile", text).expect("convert");
    let got: Vec<(String, String)> = warnings
        .iter()
        .map(|w| {
            let at = w.span.offset();
            (w.to_string(), text[at..at + w.span.len()].to_string())
        })
        .collect();
    let want = [
        ("global arg V is unset in this stage, as in Docker", "$V"),
        (
            "global arg V is unset in this stage, as in Docker",
            "${V:-x}",
        ),
        (
            "global arg V is not in this RUN's environment, as in Docker",
            "$V",
        ),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(m, s)| (m.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want, "{toml}");
    assert!(warnings.iter().all(|w| {
        w.help
            .as_deref()
            .is_some_and(|h| h.contains("declare `ARG V` in the stage"))
    }));
    assert!(
        toml.contains("{ label = { a = \"\", b = \"x\" } }")
            && toml.contains("{ label = { c = \"${V}\" } }"),
        "{toml}"
    );
    // Same meaning: the two frontends give the same graph.
    let opts = LowerOptions::default();
    let g1 = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect("load");
    let g2 = spec::load("converted.toml", &toml, &opts, &EmptyResolver).expect("load toml");
    assert_eq!(comparable(&g1), comparable(&g2), "{toml}");
}

/// Every error of a failed load or convert: message, label, help and the
/// text it points at.
fn errors_of(
    d: &strata::error::Diagnostics,
    text: &str,
) -> Vec<(String, String, Option<String>, String)> {
    d.errors
        .iter()
        .map(|e| {
            let at = e.span.offset().min(text.len());
            let end = (at + e.span.len()).min(text.len());
            (
                e.message.clone(),
                e.label.clone(),
                e.help.clone(),
                text[at..end].to_string(),
            )
        })
        .collect()
}

/// `convert` refuses exactly what `build` refuses, with the same
/// diagnostics; among them the inputs `convert` once turned into a
/// different build (issue 9): a cache mount owned by `app` became
/// `uid = 0`, `--link=yes` became `link = true`, `--retries=abc` became
/// `retries = 0`, an unknown HEALTHCHECK type was read as CMD.
#[test]
fn convert_rejects_what_build_rejects_with_the_same_diagnostics() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM scratch\nRUN --mount=type=cache,target=/x,uid=app true\n",
            "bad uid `app` in mount: not a number",
        ),
        (
            "FROM scratch\nCOPY --link=yes a /b\n",
            "--link takes true or false",
        ),
        (
            "FROM scratch\nHEALTHCHECK --retries=abc CMD true\n",
            "bad retries `abc`",
        ),
        (
            "FROM scratch\nHEALTHCHECK CMDX true\n",
            "unknown HEALTHCHECK type `CMDX`",
        ),
        (
            "FROM scratch\nRUN --mount='type=cache,\"target=/a,b\",uid=x' true\n",
            "bad uid `x` in mount: not a number",
        ),
        (
            "FROM scratch\nRUN --mount=type=tmpfs,target=/t,sharing=locked true\n",
            "`sharing` is not an option of a tmpfs mount",
        ),
        ("FROM scratch\nEXPOSE 80/http\n", "bad expose `80/http`"),
        (
            "FROM scratch\nSTOPSIGNAL sigterm\n",
            "bad stop signal `sigterm`",
        ),
        ("FROM scratch\nCOPY --chown=:1 a /b\n", "bad chown `:1`"),
        ("FROM --platform=linux scratch\n", "bad platform `linux`"),
        (
            "FROM scratch\nCOPY --from=later a /b\nFROM scratch AS later\n",
            "defined after",
        ),
        (
            "FROM scratch\nRUN --network=bridge true\n",
            "unknown network mode `bridge`",
        ),
        ("FROM scratch\nBOGUS x\n", "unknown instruction `BOGUS`"),
        (
            "FROM scratch\nRUN --mount=type=volume,target=/x true\n",
            "unknown mount type `volume`",
        ),
    ];
    let opts = LowerOptions::default();
    for (text, want) in cases {
        let built = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver)
            .err()
            .unwrap_or_else(|| panic!("build accepted:\n{text}"));
        let converted = dockerfile::convert("Dockerfile", text)
            .err()
            .unwrap_or_else(|| panic!("convert accepted:\n{text}"));
        let b = errors_of(&built, text);
        assert_eq!(b, errors_of(&converted, text), "{text}");
        assert!(
            b.iter().any(|e| e.0.contains(want)),
            "{text}: expected `{want}` in {b:?}"
        );
    }
}

/// Nested `${...}` (and ONBUILD chains) in untrusted input: deeper than
/// the limit is the same error in `build` and `convert` (100,000 levels
/// once overflowed the stack); at the limit, even in the form whose template doubles its
/// levels (a pattern on a name the base image may define), the
/// conversion parses back to the same build.
#[test]
fn nesting_past_the_limit_is_refused_alike_and_at_the_limit_round_trips() {
    let opts = LowerOptions::default();
    for n in [17, 100_000] {
        let text = format!(
            "FROM scratch\nENV A={}x{}\n",
            "${X:-".repeat(n),
            "}".repeat(n)
        );
        let built = dockerfile::load("Dockerfile", &text, &opts, &EmptyResolver)
            .expect_err("build accepted a word nested too deep");
        let converted = dockerfile::convert("Dockerfile", &text)
            .expect_err("convert accepted a word nested too deep");
        let b = errors_of(&built, &text);
        assert_eq!(b, errors_of(&converted, &text));
        assert!(
            b.iter().any(|e| e.0.contains("nest deeper than 16")),
            "{b:?}"
        );
    }
    // A chain of ONBUILD triggers (parsed recursively once) likewise.
    let text = format!("FROM scratch\n{}RUN true\n", "ONBUILD ".repeat(100_000));
    let built = dockerfile::load("Dockerfile", &text, &opts, &EmptyResolver)
        .expect_err("build accepted ONBUILD ONBUILD");
    let converted =
        dockerfile::convert("Dockerfile", &text).expect_err("convert accepted ONBUILD ONBUILD");
    let b = errors_of(&built, &text);
    assert_eq!(b, errors_of(&converted, &text));
    assert!(
        b.iter()
            .any(|e| e.0.contains("ONBUILD is not allowed as an ONBUILD trigger")),
        "{b:?}"
    );
    // PATH may come from the base: each level is written `${PATH+...}`.
    let text = format!(
        "FROM busybox\nENV A={}x{}\n",
        "${PATH#${PATH:-".repeat(8),
        "}}".repeat(8)
    );
    let (toml, _) = dockerfile::convert("Dockerfile", &text).expect("convert");
    let g1 = dockerfile::load("Dockerfile", &text, &opts, &EmptyResolver).expect("load");
    let g2 = spec::load("converted.toml", &toml, &opts, &EmptyResolver).expect("load toml");
    assert_eq!(comparable(&g1), comparable(&g2), "{toml}");
}

/// Quoted mount fields keep their commas in `convert` too. (The parser
/// removes one level of quotes from a flag, as BuildKit's does: the field
/// quotes survive inside single quotes.)
#[test]
fn convert_splits_mount_fields_as_build_does() {
    let text = "FROM scratch\nRUN --mount='type=cache,\"target=/a,b\",uid=7' true\n";
    let (toml, _) = dockerfile::convert("Dockerfile", text).expect("convert");
    assert!(toml.contains("target = \"/a,b\""), "{toml}");
    assert!(toml.contains("uid = 7"), "{toml}");
    let opts = LowerOptions::default();
    let g1 = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect("load");
    let g2 = spec::load("converted.toml", &toml, &opts, &EmptyResolver).expect("load toml");
    assert_eq!(comparable(&g1), comparable(&g2), "{toml}");
}

/// A name the file does not define may come from the base image: the
/// conversion keeps the reference (`ENV PATH=/opt/bin:$PATH`), and a
/// pattern operator applies to the base's value when there is one.
#[test]
fn convert_keeps_references_the_base_image_may_define() {
    let text = "FROM busybox\nENV PATH=/opt/bin:$PATH FIRST=${PATH%%:*}\n";
    let (toml, _) = dockerfile::convert("Dockerfile", text).expect("convert");
    assert!(toml.contains("/opt/bin:${PATH:-}"), "{toml}");
    struct WithPath;
    impl strata::ir::BaseResolver for WithPath {
        fn resolve(
            &self,
            _: &strata::ir::BaseRef,
            _: Option<&str>,
        ) -> Result<strata::ir::BaseInfo, String> {
            Ok(strata::ir::BaseInfo {
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                ..Default::default()
            })
        }
    }
    let opts = LowerOptions::default();
    let g1 = dockerfile::load("Dockerfile", text, &opts, &WithPath).expect("load");
    let g2 = spec::load("converted.toml", &toml, &opts, &WithPath).expect("load toml");
    assert_eq!(comparable(&g1), comparable(&g2), "{toml}");
}

/// Same IR for the Dockerfile and its conversion, lowered with `opts`.
fn same_ir(text: &str, opts: &LowerOptions) -> String {
    let (toml, _) = dockerfile::convert("Dockerfile", text).expect("convert");
    let g1 = dockerfile::load("Dockerfile", text, opts, &EmptyResolver).expect("load");
    let g2 = spec::load("converted.toml", &toml, opts, &EmptyResolver)
        .unwrap_or_else(|d| panic!("{toml}\n{:?}", miette::Report::new(d)));
    assert_eq!(comparable(&g1), comparable(&g2), "{toml}");
    toml
}

/// A global default that refers to an earlier global arg is expanded in
/// the TOML too (`expand = true`), so a `--build-arg` reaches it; a plain
/// one becomes a literal (`$$` a `$`).
#[test]
fn expanded_global_defaults_follow_build_args() {
    let text = "ARG V=1\nARG W=${V}-x\nARG L=a\\$b\nFROM scratch\nARG W\nARG L\nLABEL w=$W l=$L\n";
    let toml = same_ir(text, &LowerOptions::default());
    assert!(
        toml.contains("W = { default = \"${V}-x\", expand = true }")
            && toml.contains("L = \"a$b\""),
        "{toml}"
    );
    let mut opts = LowerOptions::default();
    opts.build_args.insert("V".into(), "2".into());
    same_ir(text, &opts);
    let g = dockerfile::load("Dockerfile", text, &opts, &EmptyResolver).expect("load");
    assert_eq!(g.args.get("W").map(String::as_str), Some("2-x"));
}

/// `COPY --from=$X`: a stage under the defaults becomes a copy `from` (an
/// override naming an image is then an error in the TOML, never a copy of
/// something else); an image stays an `image`, with a warning at it.
#[test]
fn copy_from_a_variable_keeps_its_meaning_or_says_so() {
    let text = "ARG S=a\nFROM scratch AS a\nFROM scratch\nCOPY --from=${S} /x /y\n";
    let toml = same_ir(text, &LowerOptions::default());
    assert!(toml.contains("from = \"${S}\""), "{toml}");
    let mut opts = LowerOptions::default();
    opts.build_args.insert("S".into(), "busybox".into());
    let e = spec::load("converted.toml", &toml, &opts, &EmptyResolver).expect_err("refused");
    assert!(
        e.errors
            .iter()
            .any(|e| e.message.contains("unknown stage `busybox`")),
        "{e:?}"
    );

    let text = "ARG IMG=busybox\nFROM scratch AS a\nFROM scratch\nCOPY --from=${IMG} /x /y\n";
    let toml = same_ir(text, &LowerOptions::default());
    assert!(toml.contains("image = \"${IMG}\""), "{toml}");
    let (_, warnings) = dockerfile::convert("Dockerfile", text).expect("convert");
    let w: Vec<(String, &str)> = warnings
        .iter()
        .map(|w| {
            (
                w.to_string(),
                &text[w.span.offset()..w.span.offset() + w.span.len()],
            )
        })
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].0.contains("names an image under the defaults"),
        "{w:?}"
    );
    // At the flag (the model's span of a `--from` value).
    assert!(w[0].1.starts_with("--from"), "{w:?}");
}

/// Out-of-scope global args in every operator and in nested words: the
/// conversion resolves them as unset, keeps the rest symbolic, and builds
/// the same IR, whatever `--build-arg` gives them.
#[test]
fn out_of_scope_globals_resolve_as_unset() {
    let text = "ARG G=g\nFROM scratch\nARG A=a\n\
        ENV E1=${G:-d}/${A} E2=${G+set}x E3=${G#p} E4=${A:-${G:-n}} E5=${G/*/r} E6=${G-$A} E7=${G//x/$A}\n\
        WORKDIR /w/${G:-dir}\nRUN --mount=type=cache,target=/c/${G:-t},uid=${G:-7} true\n\
        COPY <<EOF /h\n$G ${G:-d} \"$A\"\nEOF\n";
    let toml = same_ir(text, &LowerOptions::default());
    for want in [
        "E1 = \"d/${A}\"",
        "E2 = \"x\"",
        "E3 = \"\"",
        "E4 = \"${A:-n}\"",
        "E5 = \"r\"",
        "E6 = \"${A}\"",
        "E7 = \"\"",
        "workdir = \"/w/dir\"",
        "target = \"/c/t\"",
        "uid = \"7\"",
        // An unquoted heredoc's body is a template too.
        "content = { EOF = \" d \\\"${A}\\\"\\n\" }",
    ] {
        assert!(toml.contains(want), "{want} in\n{toml}");
    }
    let mut opts = LowerOptions::default();
    opts.build_args.insert("G".into(), "other".into());
    same_ir(text, &opts);
    // A pattern with a variable: the Dockerfile's own template tests the
    // name first (`${G+...}`), so an unset G needs no pattern.
    let toml = same_ir("ARG G=g\nFROM scratch\nARG A=a\nENV X=${G/$A/r}\n", &opts);
    assert!(toml.contains("X = \"\""), "{toml}");
}

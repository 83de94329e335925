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

#[test]
fn convert_gives_the_same_ir() {
    let files = dockerfiles();
    assert!(files.len() >= 3, "{files:?}");
    for p in files {
        let text = std::fs::read_to_string(&p).expect("read");
        let name = p.display().to_string();
        let opts = LowerOptions::default();
        let g1 = dockerfile::load(&name, &text, &opts, &EmptyResolver)
            .unwrap_or_else(|d| panic!("{name}: {:?}", miette::Report::new(d)));
        let (toml, _warnings) = dockerfile::convert(&name, &text)
            .unwrap_or_else(|d| panic!("{name}: {:?}", miette::Report::new(d)));
        let g2 = spec::load("converted.toml", &toml, &opts, &EmptyResolver)
            .unwrap_or_else(|d| panic!("{name}:\n{toml}\n{:?}", miette::Report::new(d)));
        assert_eq!(comparable(&g1), comparable(&g2), "{name}:\n{toml}");
        assert!(!g1.targets.is_empty(), "{name}");
    }
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

//! Printer tests: the round trip over every spec and converted Dockerfile
//! we have (parse -> print -> parse is the same model and lowers to the
//! same IR; printing is idempotent; the text validates with the JSON
//! Schema), generated strings, and targeted cases.

use std::path::{Path, PathBuf};

use super::model::{Layout, Sp, StepSpec, StrOr};
use super::parse;
use super::print::PrintOptions;
use super::same::same_model;
use crate::frontend::diag::Sink;
use crate::frontend::model::Parsed;
use crate::frontend::{LowerOptions, dockerfile};
use crate::ir::{EmptyResolver, SourceFile};

/// Prints a model of the TOML dialect (every model these tests make).
fn print(doc: &Parsed, opts: &PrintOptions) -> String {
    super::print::print(doc, opts).expect("a TOML-dialect model prints")
}

fn parse_ok(name: &str, text: &str) -> Parsed {
    let file = SourceFile {
        name: name.to_string(),
        text: text.to_string(),
    };
    let mut sink = Sink::new(&file);
    let parsed = parse::parse(text, &mut sink);
    match sink.into_result(parsed) {
        Ok(Some(p)) => p,
        Ok(None) => panic!("{name}: not TOML:\n{text}"),
        Err(d) => panic!("{name}:\n{text}\n{:?}", miette::Report::new(d)),
    }
}

/// The lowered graph without what legitimately differs between two files
/// (spans, the source text, warnings), or the error messages.
fn lowered(name: &str, text: &str) -> Result<serde_json::Value, Vec<String>> {
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
    let g = super::load(name, text, &LowerOptions::default(), &EmptyResolver)
        .map_err(|d| d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let mut v = serde_json::to_value(&g).expect("serialize");
    if let Some(m) = v.as_object_mut() {
        m.remove("sources");
        m.remove("warnings");
    }
    strip(&mut v);
    Ok(v)
}

/// parse -> print -> parse: the same model, the same IR, and a second
/// print gives the same text. Returns the printed text.
fn round_trip(name: &str, text: &str) -> String {
    let m1 = parse_ok(name, text);
    let p1 = print(&m1, &PrintOptions::default());
    let m2 = parse_ok(&format!("{name} (printed)"), &p1);
    if let Err(e) = same_model(&m1, &m2) {
        panic!("{name}: the printed model differs: {e}\n--- printed:\n{p1}");
    }
    let p2 = print(&m2, &PrintOptions::default());
    assert_eq!(p1, p2, "{name}: printing is not idempotent");
    let schema = super::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let value: toml::Value = toml::from_str(&p1).expect("toml");
    let json = serde_json::to_value(value).expect("json");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{name}:\n{p1}\n{errors:?}");
    assert_eq!(
        lowered(name, text),
        lowered("printed.toml", &p1),
        "{name}: the printed file lowers differently\n--- printed:\n{p1}"
    );
    p1
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose name ends with `suffix`; a
/// visible skip when `dir` is absent.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = root().join(dir);
    if !dir.exists() {
        eprintln!("SKIP: {} is absent", dir.display());
        return Vec::new();
    }
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .flatten()
        .map(|e| e.into_path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn specs_round_trip() {
    let mut specs = files("tests/good-specs", ".toml");
    specs.extend(files("examples", "strata.toml"));
    assert!(specs.len() >= 5, "{specs:?}");
    for p in specs {
        let text = std::fs::read_to_string(&p).expect("read");
        round_trip(&p.display().to_string(), &text);
    }
}

#[test]
fn converted_dockerfiles_round_trip() {
    let mut dockerfiles = files("tests/dockerfiles", "Dockerfile");
    dockerfiles.extend(files("tests/buildkit", "Dockerfile"));
    dockerfiles.extend(files("examples", "Dockerfile"));
    dockerfiles.extend(files("../shared/bench/scenarios", "Dockerfile"));
    let (mut done, mut refused) = (0, 0);
    for p in &dockerfiles {
        let name = p.display().to_string();
        let text = std::fs::read_to_string(p).expect("read");
        match dockerfile::convert(&name, &text) {
            Ok((toml, _)) => {
                round_trip(&name, &toml);
                done += 1;
            }
            // Not convertible (a heredoc COPY, a bad file on purpose).
            Err(_) => {
                eprintln!("SKIP: convert refuses {name}");
                refused += 1;
            }
        }
    }
    eprintln!("{done} converted Dockerfiles round-tripped, {refused} refused by convert");
    assert!(done >= 100, "{done} of {}", dockerfiles.len());
}

// ---- targeted cases ----

/// A document with one stage of `steps`, as the Dockerfile side builds it
/// (spans are whatever; layouts set).
fn doc_with_steps(steps: Vec<StepSpec>) -> Parsed {
    let text = "[stage.s]\nfrom = \"scratch\"\n";
    let mut doc = parse_ok("doc", text);
    let stage = doc.stages[0].spec.as_mut().expect("stage");
    stage.steps = steps
        .into_iter()
        .map(|s| Sp(toml::Spanned::new(0..0, s)))
        .collect();
    doc
}

fn run_step(script: &str, layout: Layout) -> StepSpec {
    StepSpec {
        run: Some(Sp(toml::Spanned::new(0..0, StrOr::Str(script.to_string())))),
        layout,
        ..StepSpec::default()
    }
}

/// The command of the first step of `text`'s stage `s`.
fn first_run(text: &str) -> String {
    let doc = parse_ok("printed", text);
    let step = &doc.stages[0].spec.as_ref().expect("stage").steps[0];
    match step.get().run.as_ref().map(|r| r.get()) {
        Some(StrOr::Str(s)) => s.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_continued_run_keeps_its_lines_and_its_string() {
    // RUN apt-get update && \
    //     apt-get install -y \
    //     curl
    let script = "apt-get update &&     apt-get install -y     curl";
    let layout = Layout {
        comments: vec![],
        breaks: vec![18, 41],
    };
    let doc = doc_with_steps(vec![run_step(script, layout)]);
    let out = print(&doc, &PrintOptions::default());
    assert_eq!(first_run(&out), script, "{out}");
    let run_lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("run = "))
        .take_while(|l| !l.starts_with(']'))
        .collect();
    assert_eq!(run_lines.len(), 3, "{out}");
    assert!(run_lines[0].ends_with("apt-get update &&     \\"), "{out}");
    assert_eq!(run_lines[2].trim(), "curl\"\"\" },", "{out}");
    // Printing the parsed file again loses the breaks (TOML keeps no
    // layout) but not the command.
    let again = print(&parse_ok("printed", &out), &PrintOptions::default());
    assert_eq!(first_run(&again), script);
}

#[test]
fn a_heredoc_run_prints_as_lines() {
    let script = "cat <<EOF > /x\nline \"one\"\n\ttabbed \\ back\nEOF\n";
    let doc = doc_with_steps(vec![run_step(script, Layout::default())]);
    let out = print(&doc, &PrintOptions::default());
    assert!(
        out.contains("run = \"\"\"\ncat <<EOF > /x\nline \"one\"\n\ttabbed \\\\ back\nEOF\n\"\"\""),
        "{out}"
    );
    assert_eq!(first_run(&out), script);
}

#[test]
fn comments_go_before_their_step_and_stage() {
    let mut doc = doc_with_steps(vec![
        StepSpec {
            workdir: Some(Sp(toml::Spanned::new(0..0, "/src".to_string()))),
            layout: Layout {
                comments: vec!["where it builds".into(), " indented".into(), "".into()],
                breaks: vec![],
            },
            ..StepSpec::default()
        },
        run_step("make", Layout::default()),
    ]);
    let stage = doc.stages[0].spec.as_mut().expect("stage");
    stage.layout.comments = vec!["The build stage.".into(), "two\nlines".into()];
    let opts = PrintOptions {
        header: vec!["Converted by a test.".into()],
        final_image_tags: None,
    };
    let out = print(&doc, &opts);
    let want = "# Converted by a test.\nversion = 1\n\n# The build stage.\n# two\n# lines\n[stage.s]\nfrom = \"scratch\"\nsteps = [\n  # where it builds\n  # indented\n  #\n  { workdir = \"/src\" },\n  { run = \"make\" },\n]\n";
    assert_eq!(out, want);
}

#[test]
fn mounts_one_per_line_when_several_or_long() {
    let one = "[stage.s]\nfrom = \"scratch\"\nsteps = [{ run = \"make\", mounts = [{ type = \"cache\", target = \"/c\" }] }]\n";
    let out = round_trip("one mount", one);
    assert!(
        out.contains(
            "steps = [{ run = \"make\", mounts = [{ type = \"cache\", target = \"/c\" }] }]\n"
        ),
        "{out}"
    );
    let many = "[stage.s]\nfrom = \"scratch\"\nsteps = [{ run = \"make\", network = \"none\", mounts = [{ type = \"cache\", target = \"/c\", id = \"x\", sharing = \"locked\", uid = 1, gid = 2, mode = \"0700\" }, { target = \"/t\", type = \"tmpfs\", size = 64 }, { type = \"secret\", id = \"t\", env = \"T\", required = true }] }]\n";
    let out = round_trip("three mounts", many);
    let want = "steps = [\n  { run = \"make\", network = \"none\", mounts = [\n      { type = \"cache\", target = \"/c\", id = \"x\", sharing = \"locked\", mode = \"0700\", uid = 1, gid = 2 },\n      { type = \"tmpfs\", target = \"/t\", size = 64 },\n      { type = \"secret\", id = \"t\", env = \"T\", required = true },\n  ] },\n]\n";
    assert!(out.contains(want), "{out}");
}

#[test]
fn awkward_strings_survive() {
    // `"`, `\`, a tab, control characters, `'''`, `$$` and templates.
    let values = [
        "say \"hi\"",
        "C:\\path\\",
        "a\tb",
        "bell\u{7}del\u{7f}nul\u{1}",
        "'''",
        "\"\"\"",
        "cost $$5 for ${NAME:-x} and $HOME",
        "é ünïcode ✓",
        "",
    ];
    for v in values {
        let mut steps = vec![run_step(v, Layout::default())];
        // The same string broken in the middle, where it can be.
        let mid = (1..v.len()).find(|&i| v.is_char_boundary(i) && i >= v.len() / 2);
        steps.push(run_step(
            v,
            Layout {
                comments: vec![],
                breaks: mid.into_iter().collect(),
            },
        ));
        steps.push(StepSpec {
            env: Some(Sp(toml::Spanned::new(
                0..0,
                super::model::OrderedMap(vec![(
                    v.to_string(),
                    Sp(toml::Spanned::new(0..0, v.to_string())),
                )]),
            ))),
            ..StepSpec::default()
        });
        let doc = doc_with_steps(steps);
        let out = print(&doc, &PrintOptions::default());
        let back = parse_ok("printed", &out);
        if let Err(e) = same_model(&doc, &back) {
            panic!("{v:?}: {e}\n{out}");
        }
        // `$` is printed as the model holds it, never escaped again.
        assert_eq!(
            out.matches('$').count(),
            4 * v.matches('$').count(),
            "{out}"
        );
    }
}

#[test]
fn stages_follow_the_stages_they_use() {
    let text = "[stage.app]\nfrom = \"base\"\nsteps = [{ copy = [\"/out\"], from = \"build\", to = \"/\" }]\n\n[stage.build]\nfrom = \"base\"\nsteps = [{ run = \"make\", mounts = [{ type = \"bind\", from = \"tools\", target = \"/t\" }] }]\n\n[stage.base]\nfrom = \"scratch\"\n\n[stage.tools]\nfrom = \"scratch\"\n\n[image.app]\ntags = [\"app:1\"]\n";
    let out = round_trip("out of order", text);
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("[stage."))
        .collect();
    assert_eq!(order, ["base]", "tools]", "build]", "app]"], "{out}");
    // Without an image the last stage is the default target: it stays
    // last, and the file order is kept.
    let no_image = text.replace("\n[image.app]\ntags = [\"app:1\"]\n", "");
    let doc = parse_ok("no image", &no_image);
    let out = print(&doc, &PrintOptions::default());
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("[stage."))
        .collect();
    assert_eq!(order, ["app]", "build]", "base]", "tools]"], "{out}");
}

#[test]
fn the_final_image_gets_the_tags() {
    let text = "[stage.build]\nfrom = \"scratch\"\n\n[stage.final]\nfrom = \"build\"\n";
    let doc = parse_ok("two stages", text);
    let opts = PrintOptions {
        header: vec![],
        final_image_tags: Some(vec!["app:1".into(), "app:latest".into()]),
    };
    let out = print(&doc, &opts);
    assert!(
        out.ends_with("\n[image.final]\ntags = [\"app:1\", \"app:latest\"]\n"),
        "{out}"
    );
    // An image that already builds the last stage gets them, once.
    let with_image = format!("{text}\n[image.site]\nstage = \"final\"\ntags = [\"app:1\"]\n");
    let out = print(&parse_ok("with image", &with_image), &opts);
    assert!(
        out.ends_with("\n[image.site]\nstage = \"final\"\ntags = [\"app:1\", \"app:latest\"]\n"),
        "{out}"
    );
    assert_eq!(out.matches("[image.").count(), 1, "{out}");
    // The stage's name is taken by an image of another stage.
    let taken = format!("{text}\n[image.final]\nstage = \"build\"\n");
    let out = print(&parse_ok("taken", &taken), &opts);
    assert!(
        out.ends_with(
            "\n[image.final-final]\nstage = \"final\"\ntags = [\"app:1\", \"app:latest\"]\n"
        ),
        "{out}"
    );
    parse_ok("printed", &out);
}

#[test]
fn no_empty_steps_and_long_lists_broken() {
    let labels: Vec<String> = (0..6)
        .map(|i| format!("\"org.example.label-{i}\" = \"value number {i}\""))
        .collect();
    let text = format!(
        "[stage.s]\nfrom = {{ oci = \"./layout\", ref = \"1\" }}\nsteps = []\nlabels = {{ {} }}\nexpose = [\"8080\"]\nhealthcheck = {{ test = [\"CMD\", \"/app\", \"health\"], interval = \"30s\", timeout = \"5s\", start-period = \"1m30s\", retries = 3 }}\n",
        labels.join(", ")
    );
    let out = round_trip("long labels", &text);
    assert!(!out.contains("steps"), "{out}");
    assert!(
        out.contains("from = { oci = \"./layout\", ref = \"1\" }\n"),
        "{out}"
    );
    assert!(
        out.contains("\n[stage.s.labels]\n\"org.example.label-0\" = \"value number 0\"\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\n[stage.s.healthcheck]\ntest = [\"CMD\", \"/app\", \"health\"]\ninterval = \"30s\"\ntimeout = \"5s\"\nstart-period = \"1m30s\"\nretries = 3\n"),
        "{out}"
    );
    let tags: Vec<String> = (0..8)
        .map(|i| format!("\"registry.example.com/team/app:{i}\""))
        .collect();
    let text = format!(
        "[stage.s]\nfrom = \"scratch\"\n\n[image.s]\ntags = [{}]\n",
        tags.join(", ")
    );
    let out = round_trip("many tags", &text);
    assert!(
        out.contains("tags = [\n  \"registry.example.com/team/app:0\",\n"),
        "{out}"
    );
}

#[test]
fn repeated_keys_print_once_with_the_last_value() {
    // `ENV A=1 B=2 A=3` as the Dockerfile side may hold it.
    let sp = |s: &str| Sp(toml::Spanned::new(0..0, s.to_string()));
    let pairs = vec![
        ("A".to_string(), sp("1")),
        ("B".to_string(), sp("2")),
        ("A".to_string(), sp("3")),
    ];
    let map = super::model::OrderedMap(pairs);
    let doc = doc_with_steps(vec![
        StepSpec {
            env: Some(Sp(toml::Spanned::new(0..0, map.clone()))),
            ..StepSpec::default()
        },
        StepSpec {
            label: Some(Sp(toml::Spanned::new(0..0, map))),
            ..StepSpec::default()
        },
    ]);
    let out = print(&doc, &PrintOptions::default());
    assert!(out.contains("{ env = { A = \"3\", B = \"2\" } }"), "{out}");
    assert!(
        out.contains("{ label = { A = \"3\", B = \"2\" } }"),
        "{out}"
    );
    parse_ok("printed", &out);
}

#[test]
fn control_characters_in_comments_stay_comments() {
    let mut doc = doc_with_steps(vec![StepSpec {
        workdir: Some(Sp(toml::Spanned::new(0..0, "/".to_string()))),
        layout: Layout {
            comments: vec!["bell\u{7} del\u{7f} tab\tend\r\nnext".into()],
            breaks: vec![],
        },
        ..StepSpec::default()
    }]);
    doc.stages[0].spec.as_mut().expect("stage").layout.comments = vec!["nul\u{0}".into()];
    let out = print(&doc, &PrintOptions::default());
    assert!(out.contains("# nul\\u0000\n[stage.s]\n"), "{out}");
    assert!(
        out.contains(
            "  # bell\\u0007 del\\u007F tab\tend\n  #\n  # next\n  { workdir = \"/\" },\n"
        ),
        "{out}"
    );
    parse_ok("printed", &out);
}

/// Every shell-form RUN of the Dockerfile corpus, with the breaks its
/// continuation lines give: printed on one line per source line that
/// holds some of the command, and read back as exactly the command.
#[test]
fn corpus_runs_keep_their_continuation_lines() {
    use crate::frontend::dockerfile::continuation::{breaks, continuation_pieces};
    let mut dockerfiles = files("tests/dockerfiles", "Dockerfile");
    dockerfiles.extend(files("tests/buildkit", "Dockerfile"));
    dockerfiles.extend(files("examples", "Dockerfile"));
    dockerfiles.extend(files("../shared/bench/scenarios", "Dockerfile"));
    let (mut runs, mut continued) = (0, 0);
    for p in &dockerfiles {
        let text = std::fs::read_to_string(p).expect("read");
        let Ok(ast) = dockerfile::parse("Dockerfile", &text) else {
            continue;
        };
        for n in &ast.children {
            if n.keyword != "run" || n.json || !n.heredocs.is_empty() {
                continue;
            }
            let script = n.args.first().cloned().unwrap_or_default();
            let pieces = continuation_pieces(&text[n.span.clone()], ast.escape);
            let Some(b) = breaks(&script, &pieces) else {
                panic!("{}: {script:?} is not the end of {pieces:?}", p.display());
            };
            // Source lines holding a non-blank part of the command.
            let skip = pieces.concat().len() - script.len();
            let mut at = 0;
            let mut want = 0;
            for piece in &pieces {
                let (start, end) = (at.max(skip), at + piece.len());
                if end > start && !script[start - skip..end - skip].trim().is_empty() {
                    want += 1;
                }
                at = end;
            }
            let doc = doc_with_steps(vec![run_step(
                &script,
                Layout {
                    comments: vec![],
                    breaks: b,
                },
            )]);
            let out = print(&doc, &PrintOptions::default());
            assert_eq!(first_run(&out), script, "{}:\n{out}", p.display());
            let value = &out[out.find("run = ").expect("run")..];
            let value = &value[..value.find(" }").expect("end of step")];
            assert_eq!(
                value.lines().count(),
                want.max(1),
                "{}:\n{out}",
                p.display()
            );
            runs += 1;
            continued += usize::from(want > 1);
        }
    }
    eprintln!("{runs} RUNs printed, {continued} of them on several lines");
    assert!(continued >= 2, "{continued}");
}

/// Strings made of what TOML quoting must get right, in every place the
/// printer writes a string (names, keys, values, runs broken anywhere,
/// comments): the printed text always parses back to the same model.
#[test]
fn generated_strings_round_trip() {
    const ALPHABET: &[char] = &[
        'a', ' ', '\t', '"', '\'', '\\', '$', '{', '}', '#', '=', '.', '[', ']', '\n', '\r',
        '\u{0}', '\u{1b}', '\u{7f}', 'é', '✓',
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let sp = |s: String| Sp(toml::Spanned::new(0..0, s));
    for round in 0..300 {
        let mut word = || -> String {
            let len = next(8);
            (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect()
        };
        let (name, value, script, comment) = (word(), word(), word(), word());
        let run_breaks: Vec<usize> = (0..=script.len()).collect();
        let doc_text =
            "[args]\nA = \"\"\n[stage.s]\nfrom = \"scratch\"\n[image.i]\nstage = \"s\"\n";
        let mut doc = parse_ok("doc", doc_text);
        doc.args[0].name = name.clone();
        doc.args[0].default = Some(value.clone());
        doc.stages[0].name = name.clone();
        doc.images[0].name = value.clone();
        let image = doc.images[0].spec.as_mut().expect("image");
        image.stage = Some(sp(name.clone()));
        image.tags = vec![sp(value.clone()), sp(script.clone())];
        let stage = doc.stages[0].spec.as_mut().expect("stage");
        stage.from = Sp(toml::Spanned::new(0..0, StrOr::Str(value.clone())));
        stage.platform = Some(sp(script.clone()));
        stage.layout.comments = vec![comment.clone()];
        let pair =
            |k: &String, v: &String| super::model::OrderedMap(vec![(k.clone(), sp(v.clone()))]);
        stage.labels = Some(Sp(toml::Spanned::new(0..0, pair(&name, &value))));
        stage.steps = vec![
            Sp(toml::Spanned::new(
                0..0,
                run_step(
                    &script,
                    Layout {
                        comments: vec![comment.clone(), name.clone()],
                        breaks: run_breaks,
                    },
                ),
            )),
            Sp(toml::Spanned::new(
                0..0,
                StepSpec {
                    env: Some(Sp(toml::Spanned::new(0..0, pair(&value, &name)))),
                    ..StepSpec::default()
                },
            )),
            Sp(toml::Spanned::new(
                0..0,
                StepSpec {
                    copy: Some(Sp(toml::Spanned::new(
                        0..0,
                        vec![sp(name.clone()), sp(script.clone())],
                    ))),
                    to: Some(sp(value.clone())),
                    from: Some(sp(comment.clone())),
                    ..StepSpec::default()
                },
            )),
        ];
        let out = print(&doc, &PrintOptions::default());
        let back = parse_ok(&format!("round {round}"), &out);
        if let Err(e) = same_model(&doc, &back) {
            panic!("round {round}: {e}\n{out}");
        }
        // Without layouts (as parsed), a second print changes nothing.
        let p2 = print(&back, &PrintOptions::default());
        let p3 = print(&parse_ok("again", &p2), &PrintOptions::default());
        assert_eq!(p2, p3, "round {round}");
    }
}

#[test]
fn reprint_prints_a_spec_or_reports_its_errors() {
    let opts = PrintOptions {
        header: vec!["Re-printed.".into()],
        final_image_tags: None,
    };
    let text = "# dropped: TOML keeps no comments\n[stage.app]\nsteps = [\n  { run = \"make\" },\n]\nfrom = \"scratch\"\n";
    let out = super::reprint("strata.toml", text, &opts).expect("valid");
    assert_eq!(
        out,
        "# Re-printed.\nversion = 1\n\n[stage.app]\nfrom = \"scratch\"\nsteps = [{ run = \"make\" }]\n"
    );
    let bad = super::reprint("strata.toml", "[stage.app]\nfrom = 1\n", &opts).expect_err("bad");
    assert!(
        bad.errors
            .iter()
            .any(|e| e.to_string().starts_with("wrong type")),
        "{bad:?}"
    );
    assert!(super::reprint("strata.toml", "[stage", &opts).is_err());
}

#[test]
fn a_model_with_dockerfile_rules_is_not_printed() {
    let doc = Parsed {
        dialect: crate::frontend::model::Dialect {
            scoped_globals: true,
            ..Default::default()
        },
        ..Parsed::default()
    };
    let e = super::print::print(&doc, &PrintOptions::default()).expect_err("refused");
    assert!(e.contains("scoped_globals: true"), "{e}");
}

//! Conformance tests against BuildKit's parser and shell-lexer tables
//! (`../shared/conformance`), and unit tests of each layer.

use std::path::{Path, PathBuf};

use super::directives;
use super::parser::{self, Ast, Node, parse_heredoc};

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent", p.display());
        None
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn buildkit_parser_positive_cases() {
    let Some(dir) = shared("conformance/buildkit-parser/testfiles") else {
        return;
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testfiles")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    let mut failed = Vec::new();
    for c in &cases {
        let text = read(&c.join("Dockerfile"));
        let expected = read(&c.join("result"));
        match parser::parse(&text) {
            Ok(ast) => {
                let got = dump(&ast);
                if got != expected {
                    failed.push(format!(
                        "{}:\n--- got\n{got}--- expected\n{expected}",
                        c.display()
                    ));
                }
            }
            Err(e) => failed.push(format!("{}: error {e:?}", c.display())),
        }
    }
    assert_eq!(cases.len(), 33);
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn buildkit_parser_negative_cases() {
    let Some(dir) = shared("conformance/buildkit-parser/testfiles-negative") else {
        return;
    };
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("read dir") {
        let p = e.expect("entry").path().join("Dockerfile");
        let text = read(&p);
        assert!(parser::parse(&text).is_err(), "{} parsed", p.display());
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn buildkit_line_numbers() {
    let Some(p) = shared("conformance/buildkit-parser/extra/testfile-line/Dockerfile") else {
        return;
    };
    let ast = parser::parse(&read(&p)).expect("parse");
    let lines: Vec<(usize, usize)> = ast
        .children
        .iter()
        .map(|c| (c.start_line, c.end_line))
        .collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn buildkit_heredocs() {
    let Some(dir) = shared("conformance/buildkit-parser/extra/heredoc") else {
        return;
    };
    let ast = parser::parse(&read(&dir.join("Dockerfile"))).expect("parse");
    let exp = json(&dir.join("expected-heredocs.json"));
    let cases = exp["expected"].as_array().expect("array");
    assert_eq!(cases.len(), 27);
    for c in cases {
        let i = c["ast_child_index"].as_u64().expect("index") as usize;
        let node = &ast.children[i];
        let got: Vec<serde_json::Value> = node
            .heredocs
            .iter()
            .map(|h| {
                serde_json::json!({
                    "Name": h.name, "FileDescriptor": h.fd, "Expand": h.expand,
                    "Chomp": h.chomp, "Content": h.content,
                })
            })
            .collect();
        let want = match &c["heredocs"] {
            serde_json::Value::Null => Vec::new(),
            v => v.as_array().expect("array").clone(),
        };
        assert_eq!(got, want, "child {i} ({})", c["instruction_line"]);
        assert_eq!(
            node.start_line as u64,
            c["start_line"].as_u64().expect("line"),
            "child {i}"
        );
    }
}

#[test]
fn buildkit_heredoc_words() {
    let Some(p) = shared("conformance/buildkit-parser/extra/heredoc/heredoc-words.json") else {
        return;
    };
    let v = json(&p);
    let w = &v["parse_heredoc_word"];
    for s in w["valid_name_is_EOF"].as_array().expect("array") {
        let s = s.as_str().expect("str");
        let h = parse_heredoc(s).expect("valid").expect("a heredoc");
        assert_eq!(h.name, "EOF", "{s}");
    }
    for s in w["invalid_must_error"].as_array().expect("array") {
        let s = s.as_str().expect("str");
        assert!(parse_heredoc(s).is_err(), "{s}");
    }
    for s in w["not_a_heredoc"].as_array().expect("array") {
        let s = s.as_str().expect("str");
        assert_eq!(parse_heredoc(s), Ok(None), "{s}");
    }
    for c in v["heredocs_from_line"].as_array().expect("array") {
        let line = c["line"].as_str().expect("line");
        let names: Vec<String> = parser::heredocs_from_line(line)
            .expect("ok")
            .into_iter()
            .map(|h| h.name)
            .collect();
        let want: Vec<String> = match &c["heredoc_names"] {
            serde_json::Value::Null => Vec::new(),
            v => serde_json::from_value(v.clone()).expect("names"),
        };
        assert_eq!(names, want, "{line}");
    }
    let j = &v["json_form_never_heredoc"];
    let ast = parser::parse(j["dockerfile"].as_str().expect("str")).expect("parse");
    for c in &ast.children[1..] {
        assert!(c.heredocs.is_empty() && c.json, "{}", c.original);
    }
}

#[test]
fn buildkit_directives() {
    let Some(p) = shared("conformance/buildkit-parser/extra/directives/cases.json") else {
        return;
    };
    let v = json(&p);
    let mut n = 0;
    for c in v["parse_all_escape"].as_array().expect("array") {
        let input = c["input"].as_str().expect("input");
        let input = format!("{input}FROM x\n");
        let ast = parser::parse(&input).expect("parse");
        let got: Vec<serde_json::Value> = ast
            .directives
            .iter()
            .map(|d| serde_json::json!({"name": d.name, "value": d.value}))
            .collect();
        assert_eq!(&serde_json::Value::Array(got), &c["directives"], "{input}");
        n += 1;
    }
    for (group, key, any_format) in [
        ("detect_syntax", "syntax", true),
        ("parse_directive_check", "check", false),
    ] {
        for c in v[group].as_array().expect("array") {
            let mut input = String::new();
            if let Some(hex) = c["input_hex_prefix"].as_str() {
                assert_eq!(hex, "efbbbf", "only a BOM prefix is expected");
                input.push('\u{feff}');
            }
            input.push_str(c["input"].as_str().expect("input"));
            let got = directives::find(&input, key, any_format);
            if key == "syntax" {
                assert_eq!(got, directives::detect_syntax(&input), "{input:?}");
            }
            let ok = c["ok"].as_bool().expect("ok");
            assert_eq!(got.is_some(), ok, "{group}: {input:?}: {got:?}");
            let field = |name: &str, got: String| {
                if let Some(want) = c.get(name) {
                    let want = match want {
                        serde_json::Value::Number(n) => n.to_string(),
                        w => w.as_str().expect("string").to_string(),
                    };
                    assert_eq!(got, want, "{group} {name}: {input:?}");
                }
            };
            let g = got.clone();
            field(
                "ref",
                g.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
            );
            field(
                "cmdline",
                g.as_ref().map(|f| f.cmdline.clone()).unwrap_or_default(),
            );
            field("line", g.map(|f| f.line.to_string()).unwrap_or_default());
            if let Some(f) = &got {
                assert!(input.get(f.span.clone()).is_some(), "{input:?}: {f:?}");
            }
            n += 1;
        }
    }
    assert_eq!(n, 17);
}

#[test]
fn buildkit_json_arrays() {
    let Some(p) = shared("conformance/buildkit-parser/extra/json-arrays/cases.json") else {
        return;
    };
    let v = json(&p);
    let mut n = 0;
    for c in v["valid_string_arrays"].as_array().expect("array") {
        let input = c["input"].as_str().expect("input");
        let ast = parser::parse(&format!("CMD {input}")).expect("parse");
        let want: Vec<String> = serde_json::from_value(c["expected"].clone()).expect("expected");
        assert_eq!(ast.children[0].args, want, "{input}");
        assert!(ast.children[0].json || want.is_empty(), "{input}");
        n += 1;
    }
    for (k, c) in v.as_object().expect("object") {
        if k == "valid_string_arrays" || !c.is_array() {
            continue;
        }
        for c in c.as_array().expect("array") {
            let input = c["input"].as_str().or(c.as_str()).expect("input");
            assert!(parser::parse(&format!("CMD {input}")).is_err(), "{input}");
            n += 1;
        }
    }
    assert_eq!(n, 16);
}

/// The environment of every `envVarTest` row.
fn env_var_test_env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A Dockerfile word as the frontend expands it: a template (names in
/// `env` declared, the rest unset), then the model's expansion.
fn expand_word(word: &str, env: &[(String, String)]) -> Result<String, String> {
    use super::template::{Name, template};
    let scope = |n: &str| match env.iter().any(|(k, _)| k == n) {
        true => Name::Known,
        false => Name::Unset,
    };
    let t = template(word, '\\', &scope)?;
    let lookup = |n: &str| {
        env.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| Some(v.clone()))
    };
    crate::frontend::toml::expand::expand(&t, &lookup).map_err(|e| e.message)
}

#[test]
fn buildkit_shell_env_var_test() {
    let Some(p) = shared("conformance/buildkit-shell/envVarTest") else {
        return;
    };
    let env = env_var_test_env();
    let mut failed = Vec::new();
    let mut n = 0;
    for line in read(&p).lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(f.len(), 3, "{line}");
        if f[0] == "W" {
            continue;
        }
        n += 1;
        let got = expand_word(f[1], &env).unwrap_or_else(|_| "error".to_string());
        if got != f[2] {
            failed.push(format!("{}: got {got:?}, want {:?}", f[1], f[2]));
        }
    }
    assert_eq!(n, 228);
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// BuildKit's word-splitting table, for the lines without references:
/// how the heredoc finder splits a line.
#[test]
fn buildkit_shell_words_test() {
    let Some(p) = shared("conformance/buildkit-shell/wordsTest") else {
        return;
    };
    let lex = super::words::Lex::new('\\');
    let (mut n, mut failed) = (0, Vec::new());
    for line in read(&p).lines() {
        if line.starts_with('#') || line.starts_with("ENV ") || line.contains('$') {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 2, "{line}");
        n += 1;
        let want: Vec<String> = f[1]
            .trim_start_matches(' ')
            .split(',')
            .map(str::to_string)
            .collect();
        let got = lex
            .words(f[0].trim())
            .unwrap_or_else(|_| vec!["error".into()]);
        if got != want {
            failed.push(format!("{}: got {got:?}, want {want:?}", f[0]));
        }
    }
    assert!(n >= 10, "only {n} cases without references");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

fn envs_of(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// BuildKit's `ProcessWord` cases, through the frontend's expansion. The
/// one form a template cannot say (a literal `}` inside `${...}`) is
/// refused, never expanded differently.
#[test]
fn buildkit_shell_process_word_cases() {
    let Some(p) = shared("conformance/buildkit-shell/process-word-cases.json") else {
        return;
    };
    let v = json(&p);
    let (mut n, mut refused, mut failed) = (0, 0, Vec::new());
    for group in [
        "process_word_with_matches",
        "mandatory_env_vars",
        "platform_template",
    ] {
        for c in v[group].as_array().expect("array") {
            if c["not_guaranteed"].as_bool() == Some(true) {
                continue;
            }
            n += 1;
            let input = c["input"].as_str().expect("input");
            let got = expand_word(input, &envs_of(&c["envs"]));
            let error =
                c["expected_error"].as_bool() == Some(true) || c["error_contains"].is_string();
            match (&got, c["expected"].as_str()) {
                (Ok(g), Some(want)) if !error && g == want => {}
                (Err(e), _) if error => {
                    let part = c["error_contains"].as_str().unwrap_or("");
                    if !e.contains(part) {
                        failed.push(format!("{input}: error {e:?}, want one with {part:?}"));
                    }
                }
                (Err(e), _) if e.contains("strata cannot express") => refused += 1,
                _ => failed.push(format!("{input}: got {got:?}, case {c}")),
            }
        }
    }
    assert!(n >= 50, "{n} cases");
    assert_eq!(refused, 1, "refused more than the `}}` form");
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Lowers `text`; the warnings, or the error messages.
fn lower_warnings(text: &str) -> Result<Vec<String>, Vec<String>> {
    let opts = crate::frontend::LowerOptions::default();
    match super::load("Dockerfile", text, &opts, &crate::ir::EmptyResolver) {
        Ok(g) => Ok(g.warnings),
        Err(d) => Err(d.errors.iter().map(|e| e.message.clone()).collect()),
    }
}

#[test]
fn syntax_directive_other_than_the_dockerfile_frontend_is_reported() {
    let w = lower_warnings("# syntax=docker/dockerfile:1\nFROM scratch\n").expect("lower");
    assert_eq!(w, Vec::<String>::new());
    let w = lower_warnings("#!/usr/bin/env x\n# syntax = acme/frontend:2 // opts\nFROM scratch\n")
        .expect("lower");
    assert_eq!(
        w,
        [
            "Dockerfile:2: the syntax directive names the frontend `acme/frontend:2`, which strata does not run: it reads the file with its own Dockerfile frontend"
        ]
    );
}

#[test]
fn check_directive_skips_or_fails_check_warnings() {
    let body = "FROM scratch\nMAINTAINER me\nLABEL a=b \\\n\n  c=d\n";
    let w = lower_warnings(body).expect("lower");
    assert_eq!(
        w,
        [
            "Dockerfile:4: NoEmptyContinuation: empty continuation line (a future version may treat it as the end of the instruction)",
            "Dockerfile:2: MaintainerDeprecated: MAINTAINER is deprecated; it sets the image's `author` (use LABEL maintainer=...)",
        ]
    );
    let w = lower_warnings(&format!("# check=skip=MaintainerDeprecated\n{body}")).expect("lower");
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("NoEmptyContinuation"), "{w:?}");
    let w = lower_warnings(&format!("# check=skip=all\n{body}")).expect("lower");
    assert_eq!(w, Vec::<String>::new());
    let e = lower_warnings(&format!("# check=error=true\n{body}")).expect_err("fails");
    assert_eq!(
        e,
        ["check warnings fail the build: MaintainerDeprecated, NoEmptyContinuation"]
    );
    // In `//` form the directive is not one: the first line is an instruction.
    assert!(lower_warnings(&format!("//check=skip=all\n{body}")).is_err());
    let w = lower_warnings(&format!("# check=skip\n{body}")).expect("lower");
    assert_eq!(
        w[0],
        "Dockerfile:1: check directive ignored: `skip` is not key=value"
    );
}

/// The model of a Dockerfile: stage names (lower-cased `AS`, an unnamed
/// stage by its index), the last stage as the image, comments before
/// instructions and where a RUN's continuations were joined.
#[test]
fn the_model_keeps_names_comments_and_breaks() {
    use crate::frontend::diag::Sink;
    use crate::frontend::model::StrOr;
    let text = "# syntax=docker/dockerfile:1\n# base\nFROM scratch\nFROM scratch AS Build\n# build it\n# twice\nRUN make \\\n    all &&\\\n  make install\n";
    let f = crate::frontend::diag::source_file("Dockerfile", text);
    let ast = super::parse("Dockerfile", text).expect("parse");
    let mut sink = Sink::new(&f);
    let mut checks = super::checks::BuildChecks::new(&f, &ast);
    let m = super::to_model::to_model(&ast, &mut sink, &mut checks);
    assert!(sink.errors.is_empty(), "{:?}", sink.errors);
    let names: Vec<&str> = m.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["0", "build"]);
    assert_eq!(m.images.len(), 1);
    assert_eq!(m.images[0].name, "build");
    let first = m.stages[0].spec.as_ref().expect("stage 0");
    assert_eq!(first.layout.comments, ["base"]);
    let build = m.stages[1].spec.as_ref().expect("stage build");
    let run = build.steps[0].get();
    assert_eq!(run.layout.comments, ["build it", "twice"]);
    let Some(StrOr::Str(script)) = run.run.as_ref().map(|r| r.get()) else {
        panic!("{run:?}");
    };
    assert_eq!(script, "make     all &&  make install");
    let pieces: Vec<&str> = {
        let mut at = 0;
        let mut v = Vec::new();
        for &b in &run.layout.breaks {
            v.push(&script[at..b]);
            at = b;
        }
        v.push(&script[at..]);
        v
    };
    assert_eq!(pieces, ["make ", "    all &&", "  make install"]);
}

/// BuildKit's `Node.Dump()` of the whole file, one line per instruction.
fn dump(ast: &Ast) -> String {
    let mut out = String::new();
    for c in &ast.children {
        out.push('(');
        out.push_str(&dump_node(c));
        out.push_str(")\n");
    }
    out
}

fn dump_node(n: &Node) -> String {
    let mut s = n.keyword.clone();
    if !n.flags.is_empty() {
        let f: Vec<String> = n.flags.iter().map(|f| crate::gofmt::go_quote(f)).collect();
        s.push_str(&format!(" [{}]", f.join(" ")));
    }
    if let Some(sub) = &n.sub {
        s.push_str(&format!(" ({})", dump_node(sub)));
    }
    for a in &n.args {
        s.push(' ');
        s.push_str(&crate::gofmt::go_quote(a));
    }
    s.trim().to_string()
}

//! Golden tests of the spec frontend's diagnostics: every file in
//! `tests/bad-specs/` is rejected, and its rendered report (file, line,
//! column, labelled span, help) matches an insta snapshot in
//! `tests/snapshots/`. Review changes with `cargo insta review`.

use std::path::{Path, PathBuf};

use strata::error::Diagnostics;
use strata::frontend::LowerOptions;
use strata::frontend::toml::load;
use strata::ir::EmptyResolver;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn specs(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

fn render(d: &Diagnostics) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    handler.render_report(&mut out, d).expect("render");
    // Trailing spaces are not part of what a reader sees.
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

fn reject(name: &str, text: &str, opts: &LowerOptions) -> String {
    match load(name, text, opts, &EmptyResolver) {
        Ok(_) => panic!("{name} was accepted, but it is a bad spec"),
        Err(d) => {
            assert!(!d.errors.is_empty());
            render(&d)
        }
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("spec")
        .to_string()
}

#[test]
fn bad_specs_render_as_in_snapshots() {
    let files = specs("tests/bad-specs");
    assert!(
        files.len() >= 20,
        "expected at least 20 bad specs, found {}",
        files.len()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let name = format!("{}.toml", stem(&f));
        let rendered = reject(&name, &text, &LowerOptions::default());
        // Every report names the file with a line and column.
        assert!(
            rendered.contains(&format!("[{name}:")),
            "{name}: no location in\n{rendered}"
        );
        insta::assert_snapshot!(stem(&f), rendered);
    }
}

const TWO_IMAGES: &str = r#"[stage.app]
from = "scratch"

[stage.debug]
from = "app"

[image.app]
tags = ["example/app:1"]

[image.debug]
tags = ["example/app:debug"]
"#;

#[test]
fn tag_flag_with_several_targets() {
    let opts = LowerOptions {
        tags: vec!["me/app:dev".into()],
        ..Default::default()
    };
    insta::assert_snapshot!(
        "cli-tag-with-several-targets",
        reject("strata.toml", TWO_IMAGES, &opts)
    );
}

#[test]
fn unknown_target_flag() {
    let opts = LowerOptions {
        targets: vec!["release".into()],
        ..Default::default()
    };
    insta::assert_snapshot!(
        "cli-unknown-target",
        reject("strata.toml", TWO_IMAGES, &opts)
    );
}

#[test]
fn unused_build_arg_is_a_warning() {
    let mut opts = LowerOptions::default();
    opts.build_args.insert("VERSION".into(), "2".into());
    let g =
        load("strata.toml", TWO_IMAGES, &opts, &EmptyResolver).expect("a warning is not an error");
    assert_eq!(
        g.warnings,
        vec!["build arg VERSION was not consumed by any stage".to_string()]
    );
}

/// A small deterministic generator (no dependency needed for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

/// Truncated and mutated versions of every fixture never make `load` panic.
#[test]
fn mutated_specs_never_panic() {
    let mut files = specs("tests/bad-specs");
    files.extend(specs("tests/good-specs"));
    let inserts = [
        "\"", "'", "[", "]", "{", "}", "=", "$", "${", "\n", ",", "\\", "é", "0", "[[", "#", ".",
    ];
    let mut rng = Lcg(7);
    let opts = LowerOptions {
        targets: vec!["app".into()],
        tags: vec!["x:1".into()],
        ..Default::default()
    };
    let mut runs = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let mut variants: Vec<String> = Vec::new();
        // Every truncation.
        for &b in &bounds {
            variants.push(text[..b].to_string());
        }
        // Random deletions, insertions and swaps of a region.
        for _ in 0..300 {
            let a = bounds[rng.next() % bounds.len()];
            let b = bounds[rng.next() % bounds.len()];
            let (a, b) = (a.min(b), a.max(b));
            let ins = inserts[rng.next() % inserts.len()];
            variants.push(match rng.next() % 3 {
                0 => format!("{}{}", &text[..a], &text[b..]),
                1 => format!("{}{}{}", &text[..a], ins, &text[a..]),
                _ => format!("{}{}{}", &text[..a], &text[b..], &text[a..b]),
            });
        }
        for v in variants {
            let _ = load("fuzz.toml", &v, &LowerOptions::default(), &EmptyResolver);
            let _ = load("fuzz.toml", &v, &opts, &EmptyResolver);
            runs += 1;
        }
    }
    assert!(runs > 1000, "only {runs} inputs were tried");
}

/// Pathological nesting is an error, not a stack overflow.
#[test]
fn deep_nesting_is_rejected_without_crashing() {
    for n in [1_000usize, 50_000] {
        let arrays = format!(
            "[stage.a]\nfrom = \"scratch\"\nsteps = {}{}\n",
            "[".repeat(n),
            "]".repeat(n)
        );
        assert!(
            load(
                "deep.toml",
                &arrays,
                &LowerOptions::default(),
                &EmptyResolver
            )
            .is_err()
        );
        let tables = format!(
            "[stage.a]\nfrom = \"scratch\"\nx = {}{}\n",
            "{ a = ".repeat(n),
            "}".repeat(n)
        );
        assert!(
            load(
                "deep.toml",
                &tables,
                &LowerOptions::default(),
                &EmptyResolver
            )
            .is_err()
        );
    }
}

//! The checked-in JSON Schema is current, and it accepts the good specs and
//! examples and rejects invalid ones (checked with the independent
//! `jsonschema` crate).

use std::path::{Path, PathBuf};

const SCHEMA: &str = "schema/strata.schema.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> String {
    let mut s = serde_json::to_string_pretty(&strata::frontend::toml::json_schema())
        .expect("schema serializes");
    s.push('\n');
    s
}

#[test]
fn checked_in_schema_is_current() {
    let path = root().join(SCHEMA);
    let want = generated();
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write schema");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{SCHEMA} is stale. Regenerate it with `cargo run -- schema > {SCHEMA}` \
         or `STRATA_BLESS=1 cargo test --test spec_schema`."
    );
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&strata::frontend::toml::json_schema())
        .expect("the schema is a valid draft-07 schema")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

fn as_json(text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).expect("valid TOML");
    serde_json::to_value(v).expect("TOML converts to JSON")
}

#[test]
fn good_specs_and_examples_match_the_schema() {
    let v = validator();
    let mut files = toml_files(&root().join("tests/good-specs"));
    let n_good = files.len();
    assert!(n_good >= 3, "expected good specs in tests/good-specs");
    files.extend(
        toml_files(&root().join("examples"))
            .into_iter()
            // Every spec of the examples (a Cargo manifest is not a spec).
            .filter(|p| p.file_name().is_some_and(|n| n != "Cargo.toml")),
    );
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read spec");
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text))
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not match the schema:\n{}",
            f.display(),
            errors.join("\n")
        );
        // And the frontend accepts it.
        if let Err(d) = strata::frontend::toml::load(
            "strata.toml",
            &text,
            &Default::default(),
            &strata::ir::EmptyResolver,
        ) {
            panic!(
                "{} is rejected: {:?}",
                f.display(),
                d.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn schema_rejects_invalid_specs() {
    let v = validator();
    let bad = [
        ("unknown top-level key", "stages = {}"),
        (
            "unknown stage key",
            "[stage.a]\nfrom = \"scratch\"\nstpes = []",
        ),
        ("stage without from", "[stage.a]\nsteps = []"),
        ("from of wrong type", "[stage.a]\nfrom = 3"),
        (
            "unknown step key",
            "[stage.a]\nfrom = \"scratch\"\nsteps = [{ copy = [\"a\"], to = \"/\", mode = \"x\" }]",
        ),
        (
            "copy not a list",
            "[stage.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"a\", to = \"/\" }]",
        ),
        (
            "bad mount type",
            "[stage.a]\nfrom = \"scratch\"\nsteps = [{ run = \"x\", mounts = [{ type = \"nfs\", target = \"/x\" }] }]",
        ),
        ("arg of wrong type", "[args]\nA = 1"),
        ("tags not a list", "[image.a]\ntags = \"x\""),
        ("unknown version", "version = 2"),
        (
            "healthcheck without test",
            "[stage.a]\nfrom = \"scratch\"\nhealthcheck = { interval = \"1s\" }",
        ),
    ];
    for (what, text) in bad {
        assert!(
            !v.is_valid(&as_json(text)),
            "the schema accepts an invalid spec: {what}"
        );
    }
}

/// The complete example of spec/README.md is a valid spec.
#[test]
fn readme_example_is_valid() {
    let readme = std::fs::read_to_string(root().join("spec/README.md")).expect("spec/README.md");
    let section = readme
        .split("## A complete example")
        .nth(1)
        .expect("the example section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    assert!(
        validator().is_valid(&as_json(block)),
        "the README example does not match the schema"
    );
    let g = strata::frontend::toml::load(
        "strata.toml",
        block,
        &Default::default(),
        &strata::ir::EmptyResolver,
    )
    .unwrap_or_else(|d| {
        panic!(
            "{:?}",
            d.errors.iter().map(|e| &e.message).collect::<Vec<_>>()
        )
    });
    assert_eq!(g.targets.len(), 1);
    assert_eq!(
        g.targets[0].tags,
        vec![
            "example/app:1.2.3".to_string(),
            "example/app:latest".to_string()
        ]
    );
}

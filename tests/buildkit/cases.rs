//! The BuildKit differential's cases: `tests/buildkit/SECTION/NAME.Dockerfile`
//! and the options their leading comments give. Shared by the differential
//! (`buildkit_differential.rs`) and the rootless digest check (`rootless.rs`).

use std::path::{Path, PathBuf};

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/buildkit")
}

/// Every case, as "SECTION/NAME", sorted.
pub fn all_cases() -> Vec<String> {
    let mut out = Vec::new();
    for section in std::fs::read_dir(cases_dir())
        .expect("tests/buildkit")
        .flatten()
    {
        if !section.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(section.path())
            .expect("section")
            .flatten()
        {
            let name = f.file_name().to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(".Dockerfile") {
                out.push(format!("{}/{stem}", section.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// The options a case's leading comments give.
#[derive(Default)]
pub struct Options {
    pub target: Option<String>,
    pub build_args: Vec<String>,
    pub context: Option<String>,
    pub secrets: Vec<String>,
    pub expect_error: bool,
}

pub fn options(text: &str) -> Options {
    let mut o = Options::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# bkdiff-") else {
            continue;
        };
        let (k, v) = rest.split_once(':').expect("`# bkdiff-KEY: VALUE`");
        let v = v.trim().to_string();
        match k {
            "target" => o.target = Some(v),
            "build-arg" => o.build_args.push(v),
            "context" => o.context = Some(v),
            "secret" => o.secrets.push(v),
            "expect" if v == "error" => o.expect_error = true,
            _ => panic!("unknown case option `{line}`"),
        }
    }
    o
}

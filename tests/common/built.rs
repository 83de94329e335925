//! A build run with json progress and a metadata file, and what it tells.

use std::path::Path;

use super::{Output, TestEnv, metadata, run_ok};

pub struct Built {
    pub out: Output,
    pub meta: serde_json::Value,
}

impl Built {
    /// The image's manifest digest.
    pub fn digest(&self) -> &str {
        self.meta["image"]["digest"].as_str().unwrap_or_default()
    }

    /// `cache.hits` or `cache.misses` of the metadata file.
    pub fn count(&self, key: &str) -> u64 {
        self.meta["cache"][key].as_u64().unwrap_or(u64::MAX)
    }

    pub fn misses(&self) -> u64 {
        self.count("misses")
    }

    /// Ids of the steps that started (json progress events).
    pub fn started(&self) -> Vec<String> {
        self.events("started", "id")
    }

    pub fn warnings(&self) -> Vec<String> {
        self.events("warning", "message")
    }

    fn events(&self, event: &str, field: &str) -> Vec<String> {
        self.out
            .stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .map(|v| v[field].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// `strata --root ROOT build CTX --progress json --metadata-file ... EXTRA`,
/// which must succeed.
pub fn build(env: &TestEnv, root: &str, ctx: &Path, extra: &[&str]) -> Built {
    let meta = env.path(&format!("{root}-meta.json"));
    let _ = std::fs::remove_file(&meta);
    let out = run_ok(
        env.strata(root)
            .arg("build")
            .arg(ctx)
            .args(["--progress", "json", "--metadata-file"])
            .arg(&meta)
            .args(extra),
    );
    Built {
        meta: metadata(&meta),
        out,
    }
}

//! What the user asked a build for, after flag parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::layer::Compression;

/// What the user asked for, after flag parsing.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub context_dir: PathBuf,
    /// Name the build record is filed under (the spec file's path).
    pub spec_id: String,
    pub no_cache: bool,
    pub jobs: usize,
    pub compression: Compression,
    /// Every mtime in layers and every `created` time; `SOURCE_DATE_EPOCH`, 0 when unset.
    pub epoch: u64,
    /// A `.dockerignore`-syntax file; None = `CONTEXT/.dockerignore` if present.
    pub ignore_file: Option<PathBuf>,
    /// `--secret id=…`: where each secret's value comes from. Values are read
    /// only when a RUN step mounts them, never enter a key, a log or the store.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--cache-from`: imported records, consulted when the store has none.
    pub cache_from: Option<std::sync::Arc<crate::cache_io::Imports>>,
    /// `--cache-to`: where the cache goes after a successful build.
    pub cache_to: Vec<crate::cache_io::CacheTo>,
}

impl BuildOptions {
    /// Defaults for a build of `spec_id` in `context_dir`: cache on, one job
    /// per core, gzip, epoch 0, no secrets, no shared cache.
    pub fn new(context_dir: &Path, spec_id: String, ignore_file: Option<PathBuf>) -> Self {
        BuildOptions {
            context_dir: context_dir.to_path_buf(),
            spec_id,
            no_cache: false,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            compression: Compression::Gzip,
            epoch: 0,
            ignore_file,
            secrets: BTreeMap::new(),
            cache_from: None,
            cache_to: Vec::new(),
        }
    }
}

/// Where a build secret's value is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    pub(super) fn read(&self) -> std::result::Result<Vec<u8>, String> {
        match self {
            SecretSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
            }
            SecretSource::Env(v) => std::env::var_os(v)
                .map(|s| s.into_encoded_bytes())
                .ok_or_else(|| format!("environment variable {v} is not set")),
        }
    }
}

/// Path used to file a spec's build records: its canonical path.
pub fn spec_id(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

//! Base images for the frontends while lowering: looked up in the store
//! only. A registry image the store lacks is recorded, not pulled; pulling
//! is an explicit step of the build session.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;
use crate::ir::{BaseInfo, BaseRef, BaseResolver, BuildGraph, CopyFrom, Op};
use crate::oci::{self, ImageConfig};
use crate::store::{ImageIndex, Platform, Store, media_type};

/// Resolves base images from the store for the frontends, never touching
/// the network. A registry image the store lacks resolves to an empty
/// config and is recorded in [`StoreResolver::unpulled`]; the session pulls
/// those and lowers again.
pub struct StoreResolver<'a> {
    pub store: &'a Store,
    /// Relative base paths (`from = { oci = "dir" }`) are relative to this.
    pub spec_dir: PathBuf,
    /// Bases resolved so far (a spec names few).
    cache: Mutex<Vec<(Based, std::result::Result<BaseInfo, String>)>>,
    unpulled: Mutex<Vec<String>>,
}

impl<'a> StoreResolver<'a> {
    pub fn new(store: &'a Store, spec_dir: &Path) -> Self {
        StoreResolver {
            store,
            spec_dir: spec_dir.to_path_buf(),
            cache: Mutex::new(Vec::new()),
            unpulled: Mutex::new(Vec::new()),
        }
    }

    /// Registry images asked for that the store does not have, in the
    /// order they were first asked for.
    pub fn unpulled(&self) -> Vec<String> {
        self.unpulled.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

/// A base whose file paths are made absolute against `dir` (the spec's directory).
pub fn absolute_base(base: &BaseRef, dir: &Path) -> BaseRef {
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        }
    };
    match base {
        BaseRef::OciLayout { path, reference } => BaseRef::OciLayout {
            path: abs(path),
            reference: reference.clone(),
        },
        BaseRef::OciArchive { path, reference } => BaseRef::OciArchive {
            path: abs(path),
            reference: reference.clone(),
        },
        BaseRef::DockerArchive { path, reference } => BaseRef::DockerArchive {
            path: abs(path),
            reference: reference.clone(),
        },
        other => other.clone(),
    }
}

/// Makes every base path in the graph absolute (see [`absolute_base`]).
pub fn absolutize(graph: &mut BuildGraph, spec_dir: &Path) {
    for step in graph.graph.node_weights_mut() {
        if let Op::Base(b) = &mut step.op {
            b.base = absolute_base(&b.base, spec_dir);
        }
    }
}

/// A base on a platform (`None`: the host's).
type Based = (BaseRef, Option<String>);

impl BaseResolver for StoreResolver<'_> {
    fn resolve(
        &self,
        base: &BaseRef,
        platform: Option<&str>,
    ) -> std::result::Result<BaseInfo, String> {
        if *base == BaseRef::Scratch {
            return Ok(BaseInfo::scratch());
        }
        let want = platform.map(oci::parse_platform).transpose()?;
        let based = (
            absolute_base(base, &self.spec_dir),
            platform.map(str::to_string),
        );
        let known =
            |c: &Vec<(Based, _)>| c.iter().find(|(b, _)| *b == based).map(|(_, r)| r).cloned();
        if let Some(r) = self.cache.lock().ok().and_then(|c| known(&c)) {
            return r;
        }
        let r = match &based.0 {
            BaseRef::Image { reference }
                if is_unpulled(self.store, reference)
                    || lacks_entry(self.store, reference, want.as_ref()) =>
            {
                if let Ok(mut u) = self.unpulled.lock()
                    && !u.contains(reference)
                {
                    u.push(reference.clone());
                }
                Ok(BaseInfo::default())
            }
            base => oci::resolve_base_for(self.store, base, want.as_ref())
                .map(|img| base_info(&img.config))
                .map_err(|e| e.to_string()),
        };
        if let Ok(mut c) = self.cache.lock() {
            c.push((based, r.clone()));
        }
        r
    }
}

/// The config values a frontend builds on.
pub fn base_info(config: &ImageConfig) -> BaseInfo {
    let c = &config.config;
    BaseInfo {
        env: c
            .env
            .iter()
            .flatten()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        user: c.user.clone().filter(|u| !u.is_empty()),
        workdir: c.working_dir.clone().filter(|w| !w.is_empty()),
        shell: c.shell.clone(),
        onbuild: c.on_build.clone().unwrap_or_default(),
    }
}

/// An image name the store has no tag for, so a build pulls it. As with
/// Docker, any valid name may be pulled: `debian:bookworm` is Docker Hub's
/// `library/debian` (or whatever `registries.conf` makes of an unqualified
/// name), `host:5000/app` that registry's.
pub fn is_unpulled(store: &Store, reference: &str) -> bool {
    pullable(reference) && matches!(store.resolve(reference), Ok(None))
}

/// Whether the store's tag `reference` names an index with an image for
/// `platform` (`None`: this host's) whose manifest is not here (a pull of
/// other platforms kept the whole index): a build pulls it, as if the
/// store had no such tag.
pub fn lacks_entry(store: &Store, reference: &str, platform: Option<&Platform>) -> bool {
    let Ok(Some(d)) = store.resolve(reference) else {
        return false;
    };
    if !pullable(reference) || !media_type::is_index(&d.media_type) {
        return false;
    }
    let Ok(index) = store.read_blob(&d.digest).and_then(|b| {
        serde_json::from_slice::<ImageIndex>(&b).map_err(|e| Error::msg(e.to_string()))
    }) else {
        return false;
    };
    let want = platform.cloned().unwrap_or_else(oci::host_platform);
    oci::pick_platform(&index.manifests, &want).is_some_and(|e| !store.has_blob(&e.digest))
}

/// A name a registry could serve (a valid reference).
fn pullable(reference: &str) -> bool {
    crate::reference::Reference::parse(reference).is_ok()
}

/// The image names a graph builds on (bases and copies from
/// images), each once, in node order.
pub fn registry_images(graph: &BuildGraph) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in graph.graph.node_indices() {
        let r = match &graph.graph[n].op {
            Op::Base(b) => match &b.base {
                BaseRef::Image { reference } => reference,
                _ => continue,
            },
            Op::Copy(c) => match &c.from {
                CopyFrom::Image(r) => r,
                _ => continue,
            },
            _ => continue,
        };
        if pullable(r) && !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

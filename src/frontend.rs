//! The frontends: text -> [`crate::ir::BuildGraph`].
//!
//! - [`toml`]: `strata.toml` specs;
//! - [`dockerfile`]: Dockerfiles, and `strata convert` (Dockerfile -> TOML).
//!
//! Both produce one instruction model (`model`: stages and typed steps
//! with spans, strings as templates), and one lowering (`lower`) turns it
//! into the IR. What else they share lives here, once: value checks
//! ([`values`]), variables in scope ([`vars`]), RUN mount options
//! ([`mount`]), the expansion operators ([`expand`]) and diagnostics
//! ([`diag`]). The frontends know nothing of the file system or the
//! store: base images are looked up through a [`crate::ir::BaseResolver`].

use std::collections::BTreeMap;

pub(crate) mod diag;
pub mod dockerfile;
pub mod expand;
pub(crate) mod lower;
pub(crate) mod model;
pub(crate) mod mount;
pub(crate) mod normalize;
pub(crate) mod state;
pub(crate) mod tags;
pub mod toml;
pub(crate) mod values;
pub(crate) mod vars;

/// What the command line adds to a spec or Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target NAME` (image or stage names); empty = default targets.
    pub targets: Vec<String>,
    /// `-t NAME:TAG`, added to the single target (an error with several).
    pub tags: Vec<String>,
    /// `--platform`: the platform to build for (`None`: this host's). It
    /// is the TARGET* args, and the platform of every stage that names none.
    pub platform: Option<crate::store::Platform>,
    /// `--platform` with several: the build session lowers the spec once
    /// per platform (`platform` set to each) and merges the graphs.
    pub platforms: Vec<crate::store::Platform>,
}

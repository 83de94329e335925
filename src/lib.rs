//! strata: a daemonless, declarative container-image build engine.
//!
//! The modules follow the data (see ARCHITECTURE.md):
//! `frontend` (`toml`, `dockerfile`) -> `ir` -> `build` (plan, cache keys, scheduler) ->
//! `context` / `layer` / `store` / `oci` -> outputs. `cli` is the only
//! module that prints, parses flags or picks exit codes.

pub mod build;
pub mod cache_io;
pub mod cli;
pub mod container;
pub mod context;
pub mod digest;
pub mod error;
pub mod frontend;
pub mod gofmt;
pub mod images;
pub mod ir;
pub mod layer;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod sandbox;
pub mod store;
pub mod userns;

// The frontends by their older paths, for callers outside `frontend`.
pub use frontend::dockerfile;
pub use frontend::toml as spec;

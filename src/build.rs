//! The build: plan (cache keys, hits and misses, explanations), schedule,
//! execute, assemble, output — each concern in its own module, and a
//! [`Session`] that the CLI drives (load -> pull -> plan -> execute ->
//! export).
//!
//! | module | owns |
//! | --- | --- |
//! | `key` | the canonical key encoding (the only place that hashes a key) |
//! | `record` | build records and explanations; never affect keys |
//! | `resolve` | store-only base lookup for the frontends |
//! | `plan` | the plan, sealed before execution: nothing runs while planning |
//! | `schedule` | the generic dependency-counting runner |
//! | `exec` | COPY, RUN, mounts: the only side effects |
//! | `emulation` | RUN steps of other architectures: the binfmt_misc check |
//! | `layers` | layer chains of a node |
//! | `assemble` | image config, history, tags |
//! | `output` | exports, metadata, the shared cache |
//! | `platforms` | several target platforms: per-platform graphs merged, shared steps once |
//! | `session` | the order of the phases, pulls |

mod assemble;
mod compress;
mod emulation;
mod event;
mod exec;
mod key;
mod layers;
mod options;
mod output;
mod pending;
mod plan;
mod platforms;
mod record;
mod resolve;
mod schedule;
mod session;

pub use assemble::rfc3339;
pub use compress::remove_uncompressed;
pub use emulation::can_run;
pub use event::{Event, Progress};
pub use options::{BuildOptions, SecretSource, spec_id};
pub use output::{BuildReport, BuiltImage, Output, metadata};
pub use plan::{Plan, PlannedStep, Status, plan};
pub use resolve::{StoreResolver, absolute_base, absolutize, base_info, registry_images};
pub use session::{DEFAULT_SPEC_NAMES, Frontend, Session, SpecFile, default_spec, execute};

use petgraph::stable_graph::NodeIndex;

use crate::error::{Error, SourceDiagnostic};
use crate::ir::BuildGraph;

/// A diagnostic pointing at the step, or a plain error when it has no span.
fn step_error(graph: &BuildGraph, node: NodeIndex, message: String, label: &str) -> Error {
    match graph.graph[node].span {
        Some(span) => SourceDiagnostic::at(&graph.sources, span, message, label).into(),
        None => Error::msg(message),
    }
}

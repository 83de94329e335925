//! Progress events a build reports while it runs; the CLI renders them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One thing the build reports while it runs; the CLI renders them.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan, once known.
    Plan {
        steps: usize,
        cached: usize,
        to_run: usize,
    },
    Started {
        id: String,
        name: String,
        time: f64,
        /// Why it runs: the input that changed (see `build::record`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Cached {
        id: String,
        name: String,
        time: f64,
    },
    Finished {
        id: String,
        name: String,
        time: f64,
        seconds: f64,
    },
    /// A RUN's layer blob and cache record are in the store: written beside
    /// the build (build::pending), after the step finished; `seconds` it
    /// took to scan, write and hash.
    Layer {
        id: String,
        name: String,
        time: f64,
        seconds: f64,
        diff_id: String,
        size: u64,
    },
    Failed {
        id: String,
        name: String,
        time: f64,
        error: String,
    },
    Warning {
        message: String,
        time: f64,
    },
    /// A line a RUN step printed.
    Log {
        id: String,
        stream: &'static str,
        line: String,
        time: f64,
    },
}

/// A sink for events; called from worker threads.
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

pub(super) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

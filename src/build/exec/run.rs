//! RUN: a command in the sandbox over its parent's layers; its changes
//! become the step's layer.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result, SourceDiagnostic};
use crate::ir::{BuildGraph, MountKind, RunOp};
use crate::sandbox::{self, SandboxSpec, Stream};
use crate::store::Store;

use super::super::event::{Event, Progress, now};
use super::super::layers::{Results, chain_layers};
use super::super::pending::{PendingLayer, Tars};
use super::super::plan::{Plan, PlannedStep};
use super::super::{BuildOptions, step_error};
use super::mounts::{MountHold, run_mount, secret_mount};

/// Lines of a step's output: streamed as events, all kept for the store's
/// log, the last ones kept for the error message.
struct StepLog<'a> {
    id: &'a str,
    progress: Progress<'a>,
    pending: [Vec<u8>; 2],
    all: Vec<u8>,
    tail: std::collections::VecDeque<String>,
}

impl StepLog<'_> {
    const TAIL: usize = 20;

    fn push(&mut self, stream: Stream, bytes: &[u8]) {
        let i = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        self.all.extend_from_slice(bytes);
        self.pending[i].extend_from_slice(bytes);
        while let Some(pos) = self.pending[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending[i].drain(..=pos).collect();
            self.emit(i, &line[..line.len() - 1]);
        }
    }

    fn emit(&mut self, i: usize, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if self.tail.len() == Self::TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        (self.progress)(Event::Log {
            id: self.id.to_string(),
            stream: if i == 0 { "stdout" } else { "stderr" },
            line,
            time: now(),
        });
    }

    fn flush(&mut self) {
        for i in 0..2 {
            if !self.pending[i].is_empty() {
                let rest = std::mem::take(&mut self.pending[i]);
                self.emit(i, &rest);
            }
        }
    }
}

/// Runs a RUN step in the sandbox over its parent's layers; its changes
/// become the step's layer, pending: its upper dir is the snapshot the
/// next steps stack at once, while `tars` writes its blob and record.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_run(
    store: &Store,
    graph: &BuildGraph,
    plan: &Plan,
    step: &PlannedStep,
    r: &RunOp,
    results: &Results,
    opts: &BuildOptions,
    tars: &Tars,
    progress: Progress,
) -> Result<Arc<PendingLayer>> {
    let n = step.node;
    if let Err(why) = sandbox::available() {
        return Err(step_error(
            graph,
            n,
            format!("cannot run this step here: {why}"),
            "this RUN step",
        ));
    }
    let parent = graph
        .parent(n)
        .ok_or_else(|| Error::msg("internal: RUN without a parent"))?;
    let mut lowerdirs = Vec::new();
    for l in chain_layers(graph, plan, results, parent, Some(opts.epoch))? {
        lowerdirs.push(l.snapshot(store)?);
    }
    lowerdirs.reverse(); // overlay wants the top layer first
    let stubs = super::stubs::missing(&lowerdirs);
    let mut mounts = Vec::new();
    let mut hold = MountHold::default();
    let mut env = run_env(&r.env, opts.epoch);
    // Secrets live in a private temp dir outside the store (tmpfs when the
    // host has /dev/shm) for this step only.
    let secret_dir = tempfile::Builder::new()
        .prefix("strata-secrets-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        })
        .map_err(|e| Error::io("creating a secrets directory", e))?;
    for (i, m) in r.mounts.iter().enumerate() {
        if m.kind == MountKind::Secret {
            if let Some(mount) = secret_mount(graph, n, m, opts, secret_dir.path(), &mut env)? {
                mounts.push(mount);
            }
            continue;
        }
        let bind = plan.nodes[&n].binds.get(i).and_then(|b| b.as_deref());
        mounts.push(run_mount(
            store, graph, plan, results, n, m, bind, &mut hold,
        )?);
    }
    let work = store.temp_dir()?;
    let upper = work.path().join("upper");
    let ovl_work = work.path().join("work");
    for d in [&upper, &ovl_work] {
        std::fs::create_dir(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let spec = SandboxSpec {
        lowerdirs,
        upperdir: upper.clone(),
        workdir: ovl_work.clone(),
        argv: r.command.argv(),
        env,
        cwd: r.workdir.clone(),
        user: r.user.clone(),
        network: r.network,
        hostname: String::new(),
        mounts,
    };
    let mut log = StepLog {
        id: &step.id,
        progress,
        pending: [Vec::new(), Vec::new()],
        all: Vec::new(),
        tail: Default::default(),
    };
    let result = sandbox::run_step(&spec, &mut |stream, bytes| log.push(stream, bytes));
    drop(hold);
    log.flush();
    let logs = store.root().join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let _ = std::fs::write(
        logs.join(format!("{}.log", plan.nodes[&n].layer_key.hex())),
        &log.all,
    );
    let code = result.map_err(|e| {
        step_error(
            graph,
            n,
            format!("the sandbox failed: {e}"),
            "this RUN step",
        )
    })?;
    if code != 0 {
        let tail: Vec<String> = log.tail.iter().cloned().collect();
        let d = match graph.graph[n].span {
            Some(span) => SourceDiagnostic::at(
                &graph.sources,
                span,
                format!(
                    "RUN failed with exit code {code}: {}",
                    r.command.argv().join(" ")
                ),
                format!("exit code {code}"),
            ),
            None => return Err(Error::msg(format!("RUN failed with exit code {code}"))),
        };
        let help = if tail.is_empty() {
            "it printed nothing".to_string()
        } else {
            format!(
                "last {} lines of its output:\n{}",
                tail.len(),
                tail.join("\n")
            )
        };
        return Err(d.with_help(help).into());
    }
    // The overlay work dir holds a root-only dir; it is not part of the diff.
    let _ = std::fs::remove_dir_all(&ovl_work);
    super::stubs::add(&upper, &stubs)?;
    // The upper dir is the layer in overlay form: it is the snapshot the
    // next steps stack, with the mtimes the command gave its files, from
    // now on. Its tar (files the command wrote get the epoch; older ones, a
    // package's files, keep their mtimes) is written beside the build. A
    // command that changes nothing still makes a layer (an empty one), as
    // with BuildKit: every RUN is a layer in the image's history.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(0o755));
    }
    tars.submit(
        n,
        (&step.id, &step.name),
        plan.nodes[&n].layer_key,
        work,
        upper,
    )
}

/// The environment of a RUN: its own, plus `SOURCE_DATE_EPOCH` (the build's
/// epoch) unless it sets that itself, so that toolchains write reproducible
/// output (Python then writes hash-checked `.pyc` files, which stay valid
/// whatever the files' mtimes).
pub(super) fn run_env(env: &[(String, String)], epoch: u64) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| k == "SOURCE_DATE_EPOCH") {
        env.push(("SOURCE_DATE_EPOCH".to_string(), epoch.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::run_env;

    #[test]
    fn source_date_epoch_is_exported_unless_set() {
        let env = vec![("PATH".to_string(), "/bin".to_string())];
        assert_eq!(
            run_env(&env, 1700000000),
            [
                ("PATH".to_string(), "/bin".to_string()),
                ("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string())
            ]
        );
        let own = vec![("SOURCE_DATE_EPOCH".to_string(), "5".to_string())];
        assert_eq!(run_env(&own, 0), own);
    }
}

//! The config state a step of a stage sees while lowering, how a stage
//! starts from a base image's config, how a step joins the graph, and the
//! order stages are lowered in.

use std::ops::Range;

use petgraph::stable_graph::NodeIndex;

use super::values::resolve_path;
use super::vars::{Args, Env};
use crate::ir::{BaseInfo, BuildGraph, Edge, Op, Span, Step};

/// The shell of shell forms when neither the base image nor a SHELL step set one.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// What a step sees.
#[derive(Clone, Debug)]
pub struct State {
    pub env: Env,
    pub user: Option<String>,
    /// Absolute.
    pub workdir: String,
    pub shell: Vec<String>,
    /// Args in scope for RUN, in declaration order.
    pub args: Args,
    /// The stage's last node so far.
    pub last: Option<NodeIndex>,
}

impl State {
    pub fn empty() -> Self {
        State {
            env: Env::default(),
            user: None,
            workdir: "/".into(),
            shell: DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            args: Args::default(),
            last: None,
        }
    }

    /// A stage that starts from an image with this config: its env and
    /// user, its workdir (made absolute) and shell when set.
    pub fn from_base(info: BaseInfo) -> Self {
        let mut state = Self::empty();
        state.env = Env::from_vec(info.env);
        state.user = info.user;
        if let Some(w) = info.workdir.filter(|w| !w.is_empty()) {
            state.workdir = resolve_path("/", &w);
        }
        if let Some(sh) = info.shell.filter(|s| !s.is_empty()) {
            state.shell = sh;
        }
        state
    }

    /// Adds a step after the stage's last node (a `Parent` edge) and makes
    /// it the last.
    pub fn add(
        &mut self,
        graph: &mut BuildGraph,
        stage: &str,
        op: Op,
        span: &Range<usize>,
    ) -> NodeIndex {
        let n = graph.add_step(Step {
            stage: stage.to_string(),
            op,
            span: Some(span_of(span)),
        });
        if let Some(p) = self.last {
            graph.add_edge(p, n, Edge::Parent);
        }
        self.last = Some(n);
        n
    }
}

/// A byte range of the (only) source file as an IR span.
pub fn span_of(r: &Range<usize>) -> Span {
    Span {
        source: 0,
        offset: r.start,
        len: r.end.saturating_sub(r.start),
    }
}

/// Lowering order: dependencies first, ties in file order. Stages in
/// `skip` (on or behind a reported cycle), and stages that depend on them
/// or on themselves, come after the rest, in file order.
pub fn order(deps: &[Vec<usize>], skip: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut done = vec![false; deps.len()];
    let mut out = Vec::new();
    while let Some(i) = (0..deps.len())
        .find(|&i| !done[i] && !skip.contains(&i) && deps[i].iter().all(|&d| d != i && done[d]))
    {
        done[i] = true;
        out.push(i);
    }
    let rest = (0..deps.len()).filter(|&i| !done[i]).collect();
    (out, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_first_then_file_order() {
        let deps = vec![vec![2], vec![], vec![1], vec![3]];
        assert_eq!(order(&deps, &[]), (vec![1, 2, 0], vec![3]));
        assert_eq!(order(&deps, &[1]), (vec![], vec![0, 1, 2, 3]));
    }

    #[test]
    fn a_stage_starts_from_its_base_config() {
        let s: State = State::from_base(BaseInfo {
            env: vec![("A".into(), "1".into())],
            user: Some("app".into()),
            workdir: Some("srv/../app".into()),
            shell: Some(vec![]),
            onbuild: vec![],
        });
        assert_eq!(s.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(s.user.as_deref(), Some("app"));
        assert_eq!(s.workdir, "/app");
        assert_eq!(s.shell, DEFAULT_SHELL);
    }
}

//! One build for several platforms (`--platform linux/amd64,linux/arm64`):
//! the spec is lowered once per platform and the graphs are merged into
//! one. A step that is the same in several of them (the same op, span and
//! inputs: a `FROM --platform=$BUILDPLATFORM` builder up to the first
//! step that reads a TARGET* arg) is kept once, so it runs once and serves
//! every platform; the scheduler's `--jobs` bounds them all. Each target
//! then has one node per platform, and assembly writes an index of them.
//! Without `--platform`, each TOML image's `platforms` says which
//! platforms it is built for (an image without them: this host's).

use std::collections::HashMap;

use petgraph::Direction;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;

use crate::error::{Error, Result};
use crate::ir::{BuildGraph, Edge, Stage, Target};
use crate::oci::parse_platform;
use crate::store::Platform;

/// Merges per-platform graphs (platform, graph) into one. Targets carry
/// their platform; steps of one platform only show it in their stage name.
pub fn merge(graphs: Vec<(String, BuildGraph)>) -> Result<BuildGraph> {
    let mut merged = BuildGraph::default();
    let several = graphs.len() > 1;
    // A step's identity: its op, span and (edge, merged input) pairs.
    let mut known: HashMap<Vec<u8>, NodeIndex> = HashMap::new();
    // Which platforms use each merged node.
    let mut users: HashMap<NodeIndex, Vec<usize>> = HashMap::new();
    for (i, (platform, g)) in graphs.iter().enumerate() {
        if i == 0 {
            merged.sources = g.sources.clone();
            merged.args = g.args.clone();
        }
        for w in &g.warnings {
            if !merged.warnings.contains(w) {
                merged.warnings.push(w.clone());
            }
        }
        let order = petgraph::algo::toposort(&g.graph, None)
            .map_err(|_| Error::msg("internal: a cycle in the build graph"))?;
        let mut map: HashMap<NodeIndex, NodeIndex> = HashMap::with_capacity(order.len());
        for n in order {
            let mut inputs: Vec<(bool, usize)> = g
                .graph
                .edges_directed(n, Direction::Incoming)
                .map(|e| (*e.weight() == Edge::Parent, map[&e.source()].index()))
                .collect();
            inputs.sort_unstable();
            let step = &g.graph[n];
            let identity = serde_json::to_vec(&(&step.op, &step.span, &inputs))
                .map_err(|e| Error::msg(format!("internal: encoding a step: {e}")))?;
            let m = match known.get(&identity) {
                Some(&m) => m,
                None => {
                    let m = merged.add_step(step.clone());
                    for &(parent, src) in &inputs {
                        let edge = if parent { Edge::Parent } else { Edge::Source };
                        merged.add_edge(NodeIndex::new(src), m, edge);
                    }
                    known.insert(identity, m);
                    m
                }
            };
            users.entry(m).or_default().push(i);
            map.insert(n, m);
        }
        for s in &g.stages {
            merged.stages.push(Stage {
                name: s.name.clone(),
                first: s.first.map(|f| map[&f]),
                last: map[&s.last],
                span: s.span,
            });
        }
        for t in &g.targets {
            merged.targets.push(Target {
                node: map[&t.node],
                platform: Some(platform.clone()),
                ..t.clone()
            });
        }
    }
    if several {
        for (m, used) in users {
            if let [only] = used.as_slice() {
                let step = &mut merged.graph[m];
                step.stage = format!("{} {}", step.stage, graphs[*only].0);
            }
        }
    }
    Ok(merged)
}

/// The platforms a target is built for: its own (a TOML image's
/// `platforms`), else `default` (this host's).
pub(super) fn of_target(t: &Target, default: &Platform) -> Vec<Platform> {
    if t.platforms.is_empty() {
        return vec![default.clone()];
    }
    (t.platforms.iter())
        .filter_map(|p| parse_platform(p).ok())
        .collect()
}

/// Every platform some target is built for, each once, in order.
pub(super) fn wanted(targets: &[Target], default: &Platform) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for p in targets.iter().flat_map(|t| of_target(t, default)) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BaseOp, BaseRef, MetaOp, Op, Step};

    /// A builder stage on `build` and a final stage on `target` that
    /// reads the builder.
    fn graph(build: &str, target: &str) -> BuildGraph {
        let mut g = BuildGraph::default();
        let step = |stage: &str, op| Step {
            stage: stage.into(),
            op,
            span: None,
        };
        let base = |reference: &str, p: &str| {
            Op::Base(BaseOp {
                base: BaseRef::Image {
                    reference: reference.into(),
                },
                platform: Some(p.into()),
            })
        };
        let b0 = g.add_step(step("builder", base("sdk", build)));
        let b1 = g.add_step(step(
            "builder",
            Op::Meta(MetaOp::Env(vec![("A".into(), "1".into())])),
        ));
        g.add_edge(b0, b1, Edge::Parent);
        let b2 = g.add_step(step(
            "builder",
            Op::Meta(MetaOp::Env(vec![("T".into(), target.into())])),
        ));
        g.add_edge(b1, b2, Edge::Parent);
        let f0 = g.add_step(step("app", base("runtime", target)));
        let f1 = g.add_step(step(
            "app",
            Op::Meta(MetaOp::Env(vec![("B".into(), "2".into())])),
        ));
        g.add_edge(f0, f1, Edge::Parent);
        g.add_edge(b2, f1, Edge::Source);
        g.stages.push(Stage {
            name: "app".into(),
            first: Some(f0),
            last: f1,
            span: None,
        });
        g.targets.push(Target {
            name: "app".into(),
            stage: "app".into(),
            node: f1,
            tags: vec!["app:1".into()],
            platform: None,
            platforms: Vec::new(),
        });
        g
    }

    #[test]
    fn each_target_is_built_for_its_own_platforms() {
        let p = |s| parse_platform(s).unwrap();
        let mut g = graph("linux/amd64", "linux/amd64");
        let mut other = g.targets[0].clone();
        g.targets[0].platforms = vec!["linux/arm64".into(), "linux/amd64".into()];
        other.name = "plain".into();
        g.targets.push(other);
        let host = p("linux/s390x");
        assert_eq!(
            of_target(&g.targets[0], &host),
            [p("linux/arm64"), p("linux/amd64")]
        );
        assert_eq!(of_target(&g.targets[1], &host), vec![host.clone()]);
        assert_eq!(
            wanted(&g.targets, &host),
            [p("linux/arm64"), p("linux/amd64"), host]
        );
    }

    #[test]
    fn shared_steps_are_kept_once() {
        let a = graph("linux/amd64", "linux/amd64");
        let b = graph("linux/amd64", "linux/arm64");
        let m = merge(vec![("linux/amd64".into(), a), ("linux/arm64".into(), b)]).unwrap();
        // The builder's first two steps are shared; the rest is per platform.
        assert_eq!(m.graph.node_count(), 2 + 2 * 3);
        assert_eq!(m.targets.len(), 2);
        assert_ne!(m.targets[0].node, m.targets[1].node);
        assert_eq!(m.targets[1].platform.as_deref(), Some("linux/arm64"));
        let stages: Vec<&str> = m.graph.node_weights().map(|s| s.stage.as_str()).collect();
        assert_eq!(stages.iter().filter(|s| **s == "builder").count(), 2);
        assert!(stages.contains(&"app linux/arm64"), "{stages:?}");
        // Each final step reads its own platform's builder.
        let src = |t: &Target| m.sources_of(t.node)[0];
        assert_ne!(src(&m.targets[0]), src(&m.targets[1]));
        assert_eq!(
            m.parent(m.parent(src(&m.targets[0])).unwrap()),
            m.parent(m.parent(src(&m.targets[1])).unwrap())
        );
    }
}

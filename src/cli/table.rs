//! Tables and graph renderings for the terminal.

use crate::ir::{BuildGraph, Edge};

/// One line a needed node: `index stage: description  <- dependencies`.
pub fn graph_text(graph: &BuildGraph) -> String {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    let mut out = String::new();
    for n in graph.needed(&roots) {
        let step = graph.step(n);
        out.push_str(&format!(
            "{:>3} {}: {}",
            n.index(),
            step.stage,
            graph.describe(n)
        ));
        let mut deps = Vec::new();
        if let Some(p) = graph.parent(n) {
            deps.push(format!("parent {}", p.index()));
        }
        for s in graph.sources_of(n) {
            deps.push(format!("source {}", s.index()));
        }
        if !deps.is_empty() {
            out.push_str(&format!("  <- {}", deps.join(", ")));
        }
        out.push('\n');
    }
    for t in &graph.targets {
        out.push_str(&format!(
            "target {} = {} ({})",
            t.name,
            t.node.index(),
            t.stage
        ));
        if !t.tags.is_empty() {
            out.push_str(&format!(" tags {}", t.tags.join(" ")));
        }
        out.push('\n');
    }
    out
}

/// Graphviz: solid edges are parents, dashed edges sources.
pub fn graph_dot(graph: &BuildGraph) -> String {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    let needed = graph.needed(&roots);
    let mut out =
        String::from("digraph strata {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n");
    for &n in &needed {
        let label = format!("{}: {}", graph.step(n).stage, graph.describe(n));
        out.push_str(&format!(
            "  n{} [label={}];\n",
            n.index(),
            serde_json::to_string(&label).unwrap_or_default()
        ));
    }
    for e in graph.graph.edge_indices() {
        if let Some((a, b)) = graph.graph.edge_endpoints(e)
            && needed.contains(&a)
            && needed.contains(&b)
        {
            let style = if graph.graph[e] == Edge::Source {
                " [style=dashed]"
            } else {
                ""
            };
            out.push_str(&format!("  n{} -> n{}{};\n", a.index(), b.index(), style));
        }
    }
    out.push_str("}\n");
    out
}

/// Columns padded to their widest cell plus three spaces (docker's table).
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

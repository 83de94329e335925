//! Tables and graph renderings for the terminal.

use std::io::{self, Write};

use petgraph::visit::NodeIndexable;

use crate::ir::{BuildGraph, Edge};

/// One line a needed node: `index stage: description  <- dependencies`,
/// then one line a target. Written straight to `w` (a buffered stdout):
/// a graph of 200,000 steps is 20 MB of text, which need not be held.
pub fn write_graph_text(graph: &BuildGraph, w: &mut impl Write) -> io::Result<()> {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    for n in graph.needed(&roots) {
        let step = graph.step(n);
        write!(w, "{:>3} {}: ", n.index(), step.stage)?;
        w.write_all(graph.describe(n).as_bytes())?;
        let mut sep = "  <- ";
        if let Some(p) = graph.parent(n) {
            write!(w, "{sep}parent {}", p.index())?;
            sep = ", ";
        }
        for s in graph.sources_of(n) {
            write!(w, "{sep}source {}", s.index())?;
            sep = ", ";
        }
        w.write_all(b"\n")?;
    }
    for t in &graph.targets {
        write!(w, "target {} = {} ({})", t.name, t.node.index(), t.stage)?;
        if !t.tags.is_empty() {
            write!(w, " tags {}", t.tags.join(" "))?;
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Graphviz: solid edges are parents, dashed edges sources.
pub fn write_graph_dot(graph: &BuildGraph, w: &mut impl Write) -> io::Result<()> {
    let roots: Vec<_> = graph.targets.iter().map(|t| t.node).collect();
    let needed = graph.needed(&roots);
    let mut is_needed = vec![false; graph.graph.node_bound()];
    for n in &needed {
        is_needed[n.index()] = true;
    }
    w.write_all(b"digraph strata {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n")?;
    for &n in &needed {
        let label = format!("{}: {}", graph.step(n).stage, graph.describe(n));
        writeln!(
            w,
            "  n{} [label={}];",
            n.index(),
            serde_json::to_string(&label).unwrap_or_default()
        )?;
    }
    for e in graph.graph.edge_indices() {
        if let Some((a, b)) = graph.graph.edge_endpoints(e)
            && is_needed[a.index()]
            && is_needed[b.index()]
        {
            let style = if graph.graph[e] == Edge::Source {
                " [style=dashed]"
            } else {
                ""
            };
            writeln!(w, "  n{} -> n{}{};", a.index(), b.index(), style)?;
        }
    }
    w.write_all(b"}\n")
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

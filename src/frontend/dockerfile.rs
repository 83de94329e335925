//! The Dockerfile frontend: `Dockerfile` -> [`BuildGraph`], and
//! `strata convert` (Dockerfile -> `strata.toml`).
//!
//! Layers, as in BuildKit:
//! - [`parser`]: text -> nodes with byte spans (directives, continuations,
//!   JSON/shell forms, flags, heredocs; heredoc markers are found in a
//!   line's words as BuildKit's lexer splits them, `words`);
//! - `checks`: what only a Dockerfile checks (keywords and their flags,
//!   ONBUILD triggers, the `syntax`/`check` directives, build-check
//!   warnings);
//! - `to_model`: nodes -> the instruction model (`frontend::model`), words
//!   as templates (`template`), then the one lowering (`frontend::lower`)
//!   shared with the TOML frontend. A template expands as BuildKit's
//!   shell lexer expands the word (`$VAR`, `${VAR:-x}`, ...); the tests
//!   check this against BuildKit's lexer tables.
//!
//! [`convert`] writes a `strata.toml` from a Dockerfile: its model, put in
//! the TOML dialect by `frontend::normalize`, printed by the TOML printer
//! (`frontend::toml::print`). The module knows
//! nothing of the file system: base images come from a [`BaseResolver`].

use super::LowerOptions;
use super::diag::{Sink, diagnostic, source_file};
use super::model::Parsed;
use super::normalize::normalize;
use super::toml::print::{PrintOptions, print};
use crate::error::{Diagnostics, SourceDiagnostic};
use crate::ir::{BaseResolver, BuildGraph, EmptyResolver, SourceFile};
use checks::BuildChecks;

mod checks;
pub(crate) mod continuation;
pub mod directives;
pub mod parser;
mod template;
mod to_model;
mod words;

pub(crate) use to_model::base_triggers;

pub use parser::{Ast, Heredoc, Node};

/// Layer 1: text -> nodes with spans.
pub fn parse(file_name: &str, text: &str) -> Result<Ast, Diagnostics> {
    parser::parse(text).map_err(|e| {
        let f = source_file(file_name, text);
        let len = e.span.end.saturating_sub(e.span.start);
        Diagnostics::new(
            file_name,
            vec![SourceDiagnostic::new(
                &f,
                e.span.start,
                len,
                e.message,
                "here",
            )],
        )
    })
}

/// Parse + checks + model + the one lowering, with the same contract as
/// [`crate::frontend::toml::load`].
pub fn load(
    file_name: &str,
    text: &str,
    opts: &LowerOptions,
    resolver: &dyn BaseResolver,
) -> Result<BuildGraph, Diagnostics> {
    let ast = parse(file_name, text)?;
    let f = source_file(file_name, text);
    model_and_graph(&f, ast, opts, resolver).map(|(_, graph)| graph)
}

/// The model of a Dockerfile and its lowering (all errors of either).
/// The nodes are dropped once the model is made, before the lowering
/// allocates the graph (a lower peak with many instructions, issue 9).
fn model_and_graph(
    f: &SourceFile,
    ast: Ast,
    opts: &LowerOptions,
    resolver: &dyn BaseResolver,
) -> Result<(Parsed, BuildGraph), Diagnostics> {
    let mut sink = Sink::new(f);
    let mut build_checks = BuildChecks::new(f, &ast);
    let parsed = to_model::to_model(&ast, &mut sink, &mut build_checks);
    drop(ast);
    // Stage names are lower-case, so `--target Build` is stage `build`.
    let opts = LowerOptions {
        targets: opts.targets.iter().map(|t| t.to_lowercase()).collect(),
        ..opts.clone()
    };
    let mut graph = crate::frontend::lower::lower(&parsed, &opts, resolver, &mut sink);
    let mut warnings = build_checks.finish(&mut sink);
    warnings.append(&mut graph.warnings);
    graph.warnings = warnings;
    sink.into_result((parsed, graph))
}

/// What `strata convert` adds to the Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// `-t NAME:TAG`: the tags of the image (the last stage).
    pub tags: Vec<String>,
}

/// Dockerfile -> `strata.toml` text, with warnings for what carries over
/// only under the defaults.
pub fn convert(
    file_name: &str,
    text: &str,
) -> Result<(String, Vec<SourceDiagnostic>), Diagnostics> {
    convert_with(file_name, text, &ConvertOptions::default())
}

/// [`convert`] with options (`strata convert -t`): the model, validated
/// by the one lowering (so `convert` refuses what `build` refuses, with
/// the same diagnostics; base images unknown, as `graph` sees them
/// without a store; `-t` checked as `build -t`), normalized to the TOML
/// dialect ([`normalize`]), printed ([`print`]).
pub fn convert_with(
    file_name: &str,
    text: &str,
    opts: &ConvertOptions,
) -> Result<(String, Vec<SourceDiagnostic>), Diagnostics> {
    let ast = parse(file_name, text)?;
    let f = source_file(file_name, text);
    let lower_opts = LowerOptions {
        tags: opts.tags.clone(),
        ..LowerOptions::default()
    };
    let (parsed, graph) = model_and_graph(&f, ast, &lower_opts, &EmptyResolver)?;
    let tags = graph
        .targets
        .first()
        .map(|t| t.tags.clone())
        .unwrap_or_default();
    let mut sink = Sink::new(&f);
    let (model, warnings) = normalize(parsed, &mut sink);
    let model = sink.into_result(model)?;
    let print_opts = PrintOptions {
        header: vec!["Converted from a Dockerfile by `strata convert`.".to_string()],
        final_image_tags: Some(tags),
    };
    let toml = print(&model, &print_opts)
        .map_err(|e| Diagnostics::new(file_name, vec![diagnostic(&f, 0..0, e, "in this file")]))?;
    Ok((toml, warnings))
}

#[cfg(test)]
mod tests;

//! The TOML frontend: `strata.toml` -> [`BuildGraph`].
//!
//! - [`parse`]: text -> the instruction model (`frontend::model`, which
//!   is also the serde model of the file), piece by piece so that every
//!   syntax, unknown-key and type error of the file is reported;
//! - the one lowering, `frontend::lower`, shared with the Dockerfile
//!   frontend: semantic checks and the IR (strings expanded with
//!   [`expand`], paths resolved, stages ordered);
//! - [`json_schema`]: the JSON Schema, generated from the model types;
//! - [`print`]: model -> text ([`text`] writes the TOML values), what
//!   [`reprint`] and `convert` write.
//!
//! The module knows nothing of the file system or the store: base images
//! are looked up through a [`BaseResolver`]. `spec/README.md` is the
//! normative description of the format.

use super::diag::{Sink, source_file};
use crate::error::Diagnostics;
use crate::ir::{BaseResolver, BuildGraph};

pub(crate) mod expand;
mod parse;
pub(crate) mod print;
#[cfg(test)]
mod same;
pub(crate) mod text;

/// The model lives beside the frontends; this is its serde (TOML) face.
use super::model;

pub use super::LowerOptions;
pub use print::PrintOptions;

/// Parse + validate + lower. All errors in the file are gathered in one
/// [`Diagnostics`]; warnings that do not stop the build are in
/// [`BuildGraph::warnings`].
pub fn load(
    file_name: &str,
    text: &str,
    opts: &LowerOptions,
    resolver: &dyn BaseResolver,
) -> Result<BuildGraph, Diagnostics> {
    let file = source_file(file_name, text);
    let mut sink = Sink::new(&file);
    let Some(parsed) = parse::parse(text, &mut sink) else {
        return sink.into_result(BuildGraph::default());
    };
    let graph = super::lower::lower(&parsed, opts, resolver, &mut sink);
    sink.into_result(graph)
}

/// Whether an `[image.*]` table of the spec has a `platforms` key (the
/// build session then lowers it per platform). False for a file that does
/// not parse: its lowering reports why.
pub fn names_platforms(text: &str) -> bool {
    let file = source_file("", text);
    let mut sink = Sink::new(&file);
    parse::parse(text, &mut sink).is_some_and(|p| {
        (p.images.iter()).any(|i| i.spec.as_ref().is_some_and(|s| s.platforms.is_some()))
    })
}

/// Parse + print: `text` in the printer's layout ([`print`]). The TOML
/// parser keeps no comments, so the result has none but `opts.header`.
/// Fails with the parse errors `load` would report (not the lowering's).
pub fn reprint(file_name: &str, text: &str, opts: &PrintOptions) -> Result<String, Diagnostics> {
    let file = source_file(file_name, text);
    let mut sink = Sink::new(&file);
    let Some(parsed) = parse::parse(text, &mut sink) else {
        return sink.into_result(String::new());
    };
    // A parsed spec is always in the TOML dialect, so it always prints.
    let out = print::print(&parsed, opts).unwrap_or_default();
    sink.into_result(out)
}

/// The draft-07 JSON Schema of the spec, generated from the model types.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<model::Document>();
    let mut value = schema.to_value();
    drop_null(&mut value);
    value
}

/// TOML has no null (an optional key is simply absent): remove the `null`
/// alternatives schemars adds for `Option` fields.
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(alts)) = map.get_mut("anyOf") {
                alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
                if alts.len() == 1 {
                    let only = alts.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(inner) = only {
                        for (k, x) in inner {
                            map.entry(k).or_insert(x);
                        }
                    }
                }
            }
            for x in map.values_mut() {
                drop_null(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

#[cfg(test)]
mod print_tests;
#[cfg(test)]
mod tests;

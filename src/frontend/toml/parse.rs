//! Text -> model: parse the TOML into a spanned raw table, then deserialize
//! each stage, step and image on its own so that one bad piece does not
//! hide the errors in the others.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::model::{
    ArgDecl, DOCUMENT_KEYS, IMAGE_KEYS, ImageDecl, ImageSpec, Parsed, STAGE_KEYS, Sp, StageDecl,
    StageSpec, StepSpec, VERBS,
};
use crate::frontend::diag::{Sink, did_you_mean};

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses `text`; every problem goes to `sink`. Returns `None` only when the
/// TOML itself is malformed.
pub fn parse(text: &str, sink: &mut Sink) -> Option<Parsed> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            sink.error(
                span,
                format!("TOML syntax error: {}", e.message().trim()),
                "here",
            );
        }
        return None;
    }
    let doc = doc.into_inner();
    let mut parsed = Parsed::default();
    for (key, value) in doc {
        let span = key.span();
        match key.get_ref().as_ref() {
            "$schema" => {
                if !value.get_ref().is_str() {
                    type_error(sink, &value, "a string");
                }
            }
            "version" => match value.get_ref() {
                DeValue::Integer(i) if i.as_str() == "1" => {}
                DeValue::Integer(i) => sink.error_help(
                    value.span(),
                    format!("unknown format version {}", i.as_str()),
                    "this version of strata reads format version 1",
                    "write `version = 1` or leave the key out",
                ),
                _ => type_error(sink, &value, "an integer"),
            },
            "args" => parse_args(value, sink, &mut parsed.args),
            "stage" => {
                for (name, v) in named_tables(value, "stage", sink) {
                    let spec = parse_stage(v, sink);
                    parsed.stages.push(StageDecl {
                        name: name.get_ref().to_string(),
                        span: name.span(),
                        spec,
                    });
                }
            }
            "image" => {
                for (name, v) in named_tables(value, "image", sink) {
                    let spec = parse_table::<ImageSpec>(v, IMAGE_KEYS, "image", sink);
                    parsed.images.push(ImageDecl {
                        name: name.get_ref().to_string(),
                        span: name.span(),
                        spec,
                    });
                }
            }
            other => unknown_key(sink, span, other, DOCUMENT_KEYS, "at the top level"),
        }
    }
    Some(parsed)
}

fn type_error(sink: &mut Sink, value: &Value, expected: &str) {
    sink.error(
        value.span(),
        format!(
            "wrong type: expected {expected}, found {}",
            value.get_ref().type_str()
        ),
        format!("expected {expected}"),
    );
}

fn unknown_key(sink: &mut Sink, span: Range<usize>, key: &str, known: &[&str], place: &str) {
    let help = match did_you_mean(key, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("known keys {place}: {}", known.join(", ")),
    };
    sink.error_help(
        span,
        format!("unknown key `{key}` {place}"),
        "unknown key",
        help,
    );
}

/// The entries of a table of named tables (`[stage.NAME]`, `[image.NAME]`).
fn named_tables<'i>(
    value: Value<'i>,
    what: &str,
    sink: &mut Sink,
) -> Vec<(Spanned<String>, Value<'i>)> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(t) => t
            .into_iter()
            .map(|(k, v)| (Spanned::new(k.span(), k.into_inner().into_owned()), v))
            .collect(),
        other => {
            sink.error(
                span,
                format!(
                    "wrong type: `{what}` must be a table of named {what}s, found {}",
                    other.type_str()
                ),
                format!("write [{what}.NAME] sections"),
            );
            Vec::new()
        }
    }
}

fn parse_args(value: Value, sink: &mut Sink, out: &mut Vec<ArgDecl>) {
    let span = value.span();
    let DeValue::Table(t) = value.into_inner() else {
        sink.error(
            span,
            "wrong type: `args` must be a table",
            "expected a table of NAME = \"default\"",
        );
        return;
    };
    for (k, v) in t {
        let mut default_span = v.span();
        let (default, expand) = match v.get_ref() {
            DeValue::String(s) => (Some(s.to_string()), false),
            DeValue::Table(t) if t.is_empty() => (None, false),
            DeValue::Table(t) => match expanded_default(t) {
                Some((d, span)) => {
                    default_span = span;
                    (Some(d), true)
                }
                None => {
                    sink.error_help(
                        v.span(),
                        format!(
                            "bad table for arg `{}`: expected {{}} or {{ default = \"...\", expand = true }}",
                            k.get_ref()
                        ),
                        "not an arg value",
                        "write NAME = \"default\" (literal), NAME = {} (no default), or NAME = { default = \"${A}-x\", expand = true } (expanded with the args above)",
                    );
                    continue;
                }
            },
            _ => {
                sink.error_help(
                    v.span(),
                    format!(
                        "wrong type for arg `{}`: expected a string or {{}}, found {}",
                        k.get_ref(),
                        v.get_ref().type_str()
                    ),
                    "expected a string or {}",
                    "write NAME = \"default\", or NAME = {} for an arg without a default",
                );
                continue;
            }
        };
        out.push(ArgDecl {
            name: k.get_ref().to_string(),
            span: k.span(),
            default,
            expand,
            default_span,
        });
    }
}

/// `{ default = "...", expand = true }`: the template and its span.
fn expanded_default(t: &DeTable) -> Option<(String, Range<usize>)> {
    if t.len() != 2 {
        return None;
    }
    let mut default = None;
    let mut expand = false;
    for (k, v) in t {
        match (k.get_ref().as_ref(), v.get_ref()) {
            ("default", DeValue::String(s)) => default = Some((s.to_string(), v.span())),
            ("expand", DeValue::Boolean(true)) => expand = true,
            _ => return None,
        }
    }
    default.filter(|_| expand)
}

/// Reports unknown keys (and drops them), then deserializes the rest.
fn parse_table<T: for<'de> Deserialize<'de>>(
    value: Value,
    known: &[&str],
    what: &str,
    sink: &mut Sink,
) -> Option<T> {
    let span = value.span();
    let table = match value.into_inner() {
        DeValue::Table(t) => t,
        other => {
            sink.error(
                span,
                format!(
                    "wrong type: {what} must be a table, found {}",
                    other.type_str()
                ),
                "expected a table",
            );
            return None;
        }
    };
    let place = format!("in {what}");
    let table: DeTable = table
        .into_iter()
        .filter(|(k, _)| {
            let ok = known.contains(&k.get_ref().as_ref());
            if !ok {
                unknown_key(sink, k.span(), k.get_ref(), known, &place);
            }
            ok
        })
        .collect();
    deserialize(Spanned::new(span, DeValue::Table(table)), sink)
}

fn deserialize<T: for<'de> Deserialize<'de>>(value: Value, sink: &mut Sink) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = e.span().unwrap_or(span);
            let (message, label) = serde_message(e.message().trim());
            sink.error(at, message, label);
            None
        }
    }
}

fn parse_stage(value: Value, sink: &mut Sink) -> Option<StageSpec> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        sink.error(
            span,
            "wrong type: a stage must be a table",
            "expected a table",
        );
        return None;
    };
    // Steps are read one by one; the rest of the stage in one piece.
    let mut raw_steps = None;
    let table: DeTable = table
        .into_iter()
        .filter_map(|(k, v)| {
            if k.get_ref() == "steps" {
                raw_steps = Some(v);
                None
            } else {
                Some((k, v))
            }
        })
        .collect();
    let mut steps = Vec::new();
    if let Some(raw) = raw_steps {
        let s = raw.span();
        match raw.into_inner() {
            DeValue::Array(items) => {
                for item in items {
                    if let Some(step) = parse_step(item, sink) {
                        steps.push(step);
                    }
                }
            }
            other => sink.error(
                s,
                format!(
                    "wrong type: `steps` must be an array of tables, found {}",
                    other.type_str()
                ),
                "expected an array",
            ),
        }
    }
    let mut stage: StageSpec = parse_table(
        Spanned::new(span, DeValue::Table(table)),
        STAGE_KEYS,
        "a stage",
        sink,
    )?;
    stage.steps = steps;
    Some(stage)
}

fn all_step_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = VERBS.iter().map(|(v, _)| *v).collect();
    for (_, opts) in VERBS {
        for o in *opts {
            if !keys.contains(o) {
                keys.push(o);
            }
        }
    }
    keys
}

fn parse_step(value: Value, sink: &mut Sink) -> Option<Sp<StepSpec>> {
    let span = value.span();
    let table = match value.get_ref() {
        DeValue::Table(t) => t,
        other => {
            sink.error_help(
                span,
                format!(
                    "wrong type: a step must be a table, found {}",
                    other.type_str()
                ),
                "expected a table",
                "write a step as { verb = ..., options... }, e.g. { run = \"make\" }",
            );
            return None;
        }
    };
    let known = all_step_keys();
    let mut ok = true;
    let mut verbs: Vec<(&str, Range<usize>)> = Vec::new();
    for (k, _) in table.iter() {
        let key: &str = k.get_ref();
        if let Some((verb, _)) = VERBS.iter().find(|(v, _)| *v == key) {
            verbs.push((verb, k.span()));
        } else if !known.contains(&key) {
            unknown_key(sink, k.span(), key, &known, "in a step");
            ok = false;
        }
    }
    match verbs.as_slice() {
        [] => {
            let names: Vec<&str> = VERBS.iter().map(|(v, _)| *v).collect();
            sink.error_help(
                span,
                "step has no verb",
                "this step does nothing",
                format!("a step has exactly one of: {}", names.join(", ")),
            );
            return None;
        }
        [(verb, _)] => {
            let opts = VERBS
                .iter()
                .find(|(v, _)| v == verb)
                .map(|(_, o)| *o)
                .unwrap_or(&[]);
            for (k, _) in table.iter() {
                let key: &str = k.get_ref();
                if key != *verb && known.contains(&key) && !opts.contains(&key) {
                    let help = if opts.is_empty() {
                        format!("`{verb}` takes no options")
                    } else {
                        format!("options of `{verb}`: {}", opts.join(", "))
                    };
                    sink.error_help(
                        k.span(),
                        format!("`{key}` is not an option of `{verb}`"),
                        format!("not valid with `{verb}`"),
                        help,
                    );
                    ok = false;
                }
            }
        }
        [(first, _), rest @ ..] => {
            for (v, s) in rest {
                sink.error_help(
                    s.clone(),
                    format!("step has two verbs: `{first}` and `{v}`"),
                    "second verb",
                    "split this into two steps",
                );
            }
            return None;
        }
    }
    if !ok {
        return None;
    }
    let step: StepSpec = deserialize(value, sink)?;
    Some(Sp(Spanned::new(span, step)))
}

/// Serde's wording, in the spec's terms (TOML has arrays, tables and keys).
fn serde_message(m: &str) -> (String, &'static str) {
    let m = m
        .replace("invalid type: ", "wrong type: ")
        .replace("a sequence", "an array")
        .replace("a map", "a table")
        .replace("missing field", "missing key")
        .replace("unknown field", "unknown key")
        .replace("unknown variant", "unknown value");
    let label = if m.starts_with("wrong type") {
        "wrong type"
    } else if m.starts_with("missing key") {
        "in this table"
    } else if m.starts_with("unknown key") {
        "unknown key"
    } else if m.starts_with("unknown value") {
        "unknown value"
    } else {
        "here"
    };
    (m, label)
}

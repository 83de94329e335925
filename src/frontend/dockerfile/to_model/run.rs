//! RUN: the command (heredocs, where continuations were joined), the
//! network and `--mount` values.

use super::super::continuation::{breaks, continuation_pieces};
use super::super::parser::{self, Heredoc, Node};
use std::ops::Range;

use super::{Flag, ToModel, has_reference};
use crate::frontend::model::{Lit, MountSpec, Sp, StepSpec, StrOr};
use crate::frontend::mount;
use crate::frontend::values::parse_size;
use crate::ir::MountKind;

/// The script of a shell-form RUN with heredocs: a command that is just
/// one heredoc runs its body; otherwise the shell gets the heredocs after
/// the command line, as it would in a script.
fn heredoc_script(script: &str, heredocs: &[Heredoc]) -> String {
    match heredocs {
        [] => script.to_string(),
        [h] if script
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .starts_with("<<")
            && parser::heredocs_from_line(script.trim()).map(|v| v.len()) == Ok(1)
            && script.split_whitespace().count() == 1 =>
        {
            h.body()
        }
        docs => {
            let mut s = script.to_string();
            s.push('\n');
            for h in docs {
                s.push_str(&h.content);
                s.push_str(&h.name);
                s.push('\n');
            }
            s
        }
    }
}

impl ToModel<'_, '_> {
    pub(super) fn run(&mut self, n: &Node) -> Option<StepSpec> {
        let errors = self.sink.errors.len();
        let span = self.span(n.span.clone());
        let mut s = StepSpec::default();
        let command = if n.json {
            StrOr::Other(n.args.clone())
        } else {
            let script = n.args.first().cloned().unwrap_or_default();
            if n.heredocs.is_empty() && self.at.is_none() {
                let source = self.text().get(n.span.clone()).unwrap_or("");
                s.layout.breaks =
                    breaks(&script, &continuation_pieces(source, self.escape)).unwrap_or_default();
            }
            StrOr::Str(heredoc_script(&script, &n.heredocs))
        };
        s.run = Some(Sp::new(span, command));
        let mut mounts = Vec::new();
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            match f.name.as_str() {
                "network" => s.network = self.t(n, &v).map(|t| Box::new(Sp::new(f.span, t))),
                "mount" => mounts.extend(self.mount(n, &f)),
                _ => {
                    let message = format!("RUN --{} is not supported", f.name);
                    self.error(f.span, message, "unsupported flag");
                }
            }
        }
        if !mounts.is_empty() {
            s.mounts = Some(mounts);
        }
        self.unless_errors(errors, s)
    }

    /// A `--mount` value: fields split as BuildKit splits them (quotes
    /// keep commas), values templates.
    fn mount(&mut self, n: &Node, f: &Flag) -> Option<Sp<MountSpec>> {
        let errors = self.sink.errors.len();
        let raw = f.value.clone().unwrap_or_default();
        let at = f.span.clone();
        let mut kind = MountKind::Bind;
        let mut kv: Vec<(String, Option<String>)> = Vec::new();
        for field in mount::fields(&raw) {
            if field.key != "type" {
                kv.push((field.key, field.value));
                continue;
            }
            let value = field.value.unwrap_or_default();
            kind = match mount::parse_kind(&value) {
                Some(k) => k,
                None => {
                    self.sink.error_help(
                        at,
                        format!("unknown mount type `{value}`"),
                        "in this mount",
                        "type is bind, cache, tmpfs, secret or ssh",
                    );
                    return None;
                }
            };
        }
        let kind_name = mount::kind_name(kind);
        let allowed = mount::options(kind);
        let mut m = MountSpec {
            kind: Sp::new(at.clone(), kind),
            target: None,
            source: None,
            from: None,
            id: None,
            sharing: None,
            readonly: None,
            rw: None,
            required: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
        };
        for (k, v) in kv {
            let key = mount::canonical_key(&k);
            let known = key == "target"
                || (key == "rw" && allowed.contains(&"readonly"))
                || allowed.contains(&key);
            if !known {
                self.sink.error_help(
                    at.clone(),
                    format!("`{k}` is not an option of a {kind_name} mount"),
                    "in this mount",
                    format!(
                        "options of a {kind_name} mount: type, target, {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            let shown = v.clone().unwrap_or_default();
            match key {
                "readonly" | "rw" | "required" => {
                    let literal = mount::parse_bool(v.as_deref());
                    let what = "expected true or false";
                    let Some(flag) = self.mount_value(n, &at, (&k, &shown), literal, what) else {
                        continue;
                    };
                    match (key, flag) {
                        ("required", f) => m.required = Some(f),
                        ("rw", Lit::Value(b)) => m.readonly = Some(Lit::Value(!b)),
                        ("rw", f) => m.rw = Some(f),
                        (_, f) => m.readonly = Some(f),
                    }
                }
                "sharing" => {
                    let literal = v.as_deref().and_then(mount::parse_sharing);
                    let what = "expected shared, private or locked";
                    let Some(x) = self.mount_value(n, &at, (&k, &shown), literal, what) else {
                        continue;
                    };
                    m.sharing = Some(Sp::new(at.clone(), x));
                }
                "uid" | "gid" | "size" => {
                    let (literal, what) = if key == "size" {
                        (parse_size(&shown), "not a size")
                    } else {
                        (shown.parse::<u32>().ok().map(u64::from), "not a number")
                    };
                    let Some(x) = self.mount_value(n, &at, (&k, &shown), literal, what) else {
                        continue;
                    };
                    let number = Some(Sp::new(at.clone(), x));
                    match key {
                        "uid" => m.uid = number,
                        "gid" => m.gid = number,
                        _ => m.size = number,
                    }
                }
                "from" => {
                    let Some(t) = self.tg(n, &shown) else {
                        continue;
                    };
                    match self.stage_named(&t) {
                        Some(s) => {
                            self.check_order(s, &t, at.clone());
                            m.from = Some(Sp::new(at.clone(), self.names[s].clone()));
                        }
                        None if has_reference(&t) => m.from = Some(Sp::new(at.clone(), t)),
                        None => {
                            self.sink.error_help(
                                at.clone(),
                                format!("unknown stage `{t}` in mount from"),
                                "in this mount",
                                "mounting an image is not supported; name a stage of this file",
                            );
                        }
                    }
                }
                _ => {
                    let Some(t) = self.t(n, &shown) else {
                        continue;
                    };
                    let t = Some(Sp::new(at.clone(), t));
                    match key {
                        "target" => m.target = t,
                        "source" => m.source = t,
                        "id" => m.id = t,
                        "env" => m.env = t,
                        _ => m.mode = t,
                    }
                }
            }
        }
        self.unless_errors(errors, Sp::new(at, m))
    }

    /// A `--mount` value: `literal` when it reads as one, else a template
    /// when it has a variable (BuildKit expands every value; the lowering
    /// reads it once expanded); `None`, reported, when that template is
    /// bad or the value is neither (`what` says what it should be).
    fn mount_value<T>(
        &mut self,
        n: &Node,
        at: &Range<usize>,
        (k, shown): (&str, &str),
        literal: Option<T>,
        what: &str,
    ) -> Option<Lit<T>> {
        match literal {
            Some(x) => Some(Lit::Value(x)),
            None if shown.contains('$') => self.t(n, shown).map(Lit::Template),
            None => {
                let message = format!("bad {k} `{shown}` in mount: {what}");
                self.error(at.clone(), message, "in this mount");
                None
            }
        }
    }
}

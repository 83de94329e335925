//! Layer 2: nodes -> the instruction model ([`Parsed`]), which the one
//! lowering (`frontend::lower`) turns into the IR.
//!
//! Each instruction becomes one step in file order (`ARG a b` one per
//! name), global ARGs become global args, each FROM a stage, the last
//! stage the image. Stage names are lower-cased, as BuildKit does; an
//! unnamed stage is named by its index (`0`, `1`, ...), which is also how
//! `--from` refers to it. Words become templates ([`super::template`]):
//! quotes and escapes resolved, references kept. Where BuildKit's meaning
//! is not one a value can carry, the model's [`Dialect`] says it (global
//! args scoped to stages that declare them, `--from` values that may name
//! a stage); global defaults are marked expanded and a stage from an
//! image runs the image's ONBUILD triggers (`base_onbuild`). A stage from a
//! stage of this file runs that stage's ONBUILD triggers first: they are
//! its first steps here.
//!
//! What the model cannot hold (an instruction's shape, a flag value a
//! Dockerfile writes differently) is checked here, with BuildKit's
//! wording; everything else is checked by the lowering.

use std::ops::Range;

use super::checks::{self, BuildChecks};
use super::parser::{self, Ast, Node};
use super::template::{Name, literal, template};
use crate::frontend::diag::Sink;
use crate::frontend::model::{
    ArgDecl, Dialect, FromTable, ImageDecl, ImageSpec, Layout, Parsed, Sp, StageDecl, StageSpec,
    StepSpec, StrOr,
};
use crate::frontend::vars::{FastHash, platform_args};

/// A set of variable names, filled once per ENV or ARG line.
type Names = std::collections::HashSet<String, FastHash>;

mod run;
mod steps;

/// The Dockerfile's meaning of the model (BuildKit's).
pub const DOCKERFILE: Dialect = Dialect {
    scoped_globals: true,
    image_may_name_stage: true,
};

/// A parsed `--name[=value]` flag.
struct Flag {
    name: String,
    value: Option<String>,
    span: Range<usize>,
}

struct ToModel<'a, 'f> {
    sink: &'a mut Sink<'f>,
    escape: char,
    /// Stage names in file order.
    names: Vec<String>,
    /// The stage being read (`names.len()` for an image's triggers).
    stage: usize,
    /// Global arg names declared so far.
    globals: Names,
    /// Names the current stage defines: its ENV names (a base stage's
    /// too) and its ARG names.
    env: Names,
    args: Names,
    /// Per stage: the ENV names at its end, and its own ONBUILD triggers.
    stage_env: Vec<Names>,
    triggers: Vec<Vec<Node>>,
    /// Every span points here (an image's ONBUILD triggers: its FROM).
    at: Option<Range<usize>>,
}

/// The model of a Dockerfile. Nodes the checks refuse are left out (their
/// errors reported); the build checks see every instruction.
pub fn to_model(ast: &Ast, sink: &mut Sink, build_checks: &mut BuildChecks) -> Parsed {
    let mut names = Vec::new();
    for n in ast.children.iter().filter(|n| n.keyword == "from") {
        names.push(match n.args.as_slice() {
            [_, kw, name] if kw.eq_ignore_ascii_case("as") => name.to_lowercase(),
            _ => names.len().to_string(),
        });
    }
    let mut m = ToModel::new(sink, ast.escape, names);
    let mut parsed = Parsed {
        dialect: DOCKERFILE,
        ..Parsed::default()
    };
    for (at, n) in ast.children.iter().enumerate() {
        let ok = checks::keyword(m.sink, n);
        if n.keyword == "from" {
            let mut decl = m.stage_decl(n, parsed.stages.len(), ok);
            if let Some(spec) = &mut decl.spec {
                // One step per instruction, mostly: no regrowing a long stage.
                let body = ast.children[at + 1..].iter();
                spec.steps
                    .reserve(body.take_while(|n| n.keyword != "from").count());
            }
            parsed.stages.push(decl);
            continue;
        }
        if !ok {
            continue;
        }
        if let Some(stage) = parsed.stages.last_mut() {
            build_checks.instruction(m.sink.file, n);
            let mut none = Vec::new();
            let out = match &mut stage.spec {
                Some(spec) => &mut spec.steps,
                None => &mut none,
            };
            m.steps(n, out);
            m.declare(n);
        } else if n.keyword == "arg" {
            m.global_args(n, &mut parsed.args);
        } else {
            let at = n.first_line(&m.sink.file.text);
            m.sink.error_help(
                at,
                format!("{} before the first FROM", n.keyword.to_uppercase()),
                "no stage yet",
                "only ARG may come before the first FROM",
            );
        }
    }
    match parsed.stages.last() {
        None => m.sink.error_help(
            0..0,
            "no FROM instruction",
            "in this file",
            "a Dockerfile starts a stage with `FROM image` (or `FROM scratch`)",
        ),
        // The image a Dockerfile builds: its last stage.
        Some(last) => parsed.images.push(ImageDecl {
            name: last.name.clone(),
            span: last.span.clone(),
            spec: Some(ImageSpec {
                stage: None,
                tags: Vec::new(),
                platforms: None,
            }),
        }),
    }
    parsed
}

/// The ONBUILD triggers of a base image as steps of the stage that starts
/// from it (`names`: the file's stages); their diagnostics point at `at`,
/// the stage's FROM.
pub fn base_triggers(
    onbuild: &[String],
    at: Range<usize>,
    names: &[&str],
    sink: &mut Sink,
) -> Vec<Sp<StepSpec>> {
    let names = names.iter().map(|s| s.to_string()).collect();
    let mut m = ToModel::new(sink, '\\', names);
    m.stage = m.names.len();
    m.at = Some(at.clone());
    let mut out = Vec::new();
    for t in onbuild {
        match parser::parse(t) {
            Ok(ast) => {
                for mut n in ast.children {
                    n.span = at.clone();
                    if checks::keyword(m.sink, &n) {
                        m.steps(&n, &mut out);
                        m.declare(&n);
                    }
                }
            }
            Err(e) => m.sink.error(
                at.clone(),
                format!("ONBUILD trigger `{t}` of the base image: {}", e.message),
                "base image",
            ),
        }
    }
    out
}

fn comments(n: &Node) -> Vec<String> {
    n.comments
        .iter()
        .filter(|c| {
            !parser::directive_parts(&format!("#{c}")).is_some_and(|(k, _)| {
                matches!(
                    k.to_ascii_lowercase().as_str(),
                    "syntax" | "escape" | "check"
                )
            })
        })
        .cloned()
        .collect()
}

/// The name of an ARG word (`NAME` or `NAME=default`) and its default.
fn arg_word(w: &str) -> (&str, Option<&str>) {
    match w.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (w, None),
    }
}

/// Does a template refer to a variable (rather than only `$$`)?
fn has_reference(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'$', Some(b'$')) => i += 2,
            (b'$', _) => return true,
            _ => i += 1,
        }
    }
    false
}

impl<'a, 'f> ToModel<'a, 'f> {
    /// Reading the first stage of a file with these stages.
    fn new(sink: &'a mut Sink<'f>, escape: char, names: Vec<String>) -> Self {
        let stages = names.len();
        ToModel {
            sink,
            escape,
            names,
            stage: 0,
            globals: Names::default(),
            env: Names::default(),
            args: Names::default(),
            stage_env: vec![Names::default(); stages],
            triggers: vec![Vec::new(); stages],
            at: None,
        }
    }

    fn text(&self) -> &str {
        &self.sink.file.text
    }

    fn span(&self, r: Range<usize>) -> Range<usize> {
        self.at.clone().unwrap_or(r)
    }

    fn locate(&self, n: &Node, word: &str) -> Range<usize> {
        self.span(n.locate(self.text(), word))
    }

    fn first_line(&self, n: &Node) -> Range<usize> {
        self.span(n.first_line(self.text()))
    }

    fn sp<T>(&self, r: Range<usize>, v: T) -> Sp<T> {
        Sp::new(self.span(r), v)
    }

    /// `v`, unless an error was reported since the sink held `errors`
    /// (an instruction with a bad part is left out of the model).
    fn unless_errors<T>(&self, errors: usize, v: T) -> Option<T> {
        (self.sink.errors.len() == errors).then_some(v)
    }

    fn error(&mut self, at: Range<usize>, message: impl Into<String>, label: &str) {
        self.sink.error(at, message, label);
    }

    fn flags(&self, n: &Node) -> Vec<Flag> {
        n.flags
            .iter()
            .map(|f| {
                let (name, value) = match f.split_once('=') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (f.as_str(), None),
                };
                let name = name.trim_start_matches('-').to_string();
                Flag {
                    span: self.locate(n, &format!("--{name}")),
                    name,
                    value,
                }
            })
            .collect()
    }

    /// A template of `word`, or its error reported at the word.
    fn report(&mut self, n: &Node, word: &str, r: Result<String, String>) -> Option<String> {
        r.map_err(|e| {
            let at = self.locate(n, word);
            self.error(at, e, "in this word");
        })
        .ok()
    }

    /// A name in a word of a stage instruction: one the stage defines is
    /// known; any other may come from the base image's env.
    fn stage_scope(&self, name: &str) -> Name {
        if self.env.contains(name) || self.args.contains(name) {
            Name::Known
        } else {
            Name::Maybe
        }
    }

    /// A name in a word that sees the global args (and the predefined
    /// ones): FROM, `--from`, a mount's `from`, a global ARG's default.
    fn global_scope(&self, name: &str) -> Name {
        let platform = || platform_args(None).into_iter().any(|(k, _)| k == name);
        if self.globals.contains(name) || platform() {
            Name::Known
        } else {
            Name::Unset
        }
    }

    /// A word of a stage instruction as a template ([`Self::stage_scope`]).
    fn t(&mut self, n: &Node, word: &str) -> Option<String> {
        let r = template(word, self.escape, &|name| self.stage_scope(name));
        self.report(n, word, r)
    }

    /// A word that sees the global args as a template ([`Self::global_scope`]).
    fn tg(&mut self, n: &Node, word: &str) -> Option<String> {
        let r = template(word, self.escape, &|name| self.global_scope(name));
        self.report(n, word, r)
    }

    /// The stage a `--from` or FROM value names: a stage name (any case)
    /// or a stage index; `None` for an image or a value with variables.
    fn stage_named(&self, t: &str) -> Option<usize> {
        if has_reference(t) {
            return None;
        }
        let lower = t.to_lowercase();
        self.names
            .iter()
            .position(|s| *s == lower)
            .or_else(|| t.parse::<usize>().ok().filter(|&i| i < self.names.len()))
    }

    /// A stage an instruction reads must come before it (else reported).
    fn check_order(&mut self, s: usize, name: &str, at: Range<usize>) {
        if s == self.stage {
            let message = format!("stage `{name}` reads itself");
            self.error(at, message, "dependency cycle");
        } else if s > self.stage && self.stage < self.names.len() {
            self.sink.error_help(
                at,
                format!("stage `{name}` is defined after this instruction"),
                "a later stage",
                "a stage can only use stages defined before it",
            );
        }
    }

    fn global_args(&mut self, n: &Node, out: &mut Vec<ArgDecl>) {
        for w in &n.args {
            let (name, default) = arg_word(w);
            let default = match default {
                // Earlier global args and the predefined platform args.
                Some(d) => match self.tg(n, d) {
                    Some(t) => Some((t, self.locate(n, d))),
                    None => continue,
                },
                None => None,
            };
            let span = self.locate(n, name);
            out.push(ArgDecl {
                name: name.to_string(),
                default_span: default.as_ref().map_or(span.clone(), |d| d.1.clone()),
                default: default.map(|d| d.0),
                expand: true,
                span,
            });
            self.globals.insert(name.to_string());
        }
    }

    /// A FROM: the stage's name, base and platform; the state it starts
    /// with (a base stage's ENV names and ONBUILD triggers).
    fn stage_decl(&mut self, n: &Node, i: usize, ok: bool) -> StageDecl {
        let name = self.names.get(i).cloned().unwrap_or_else(|| i.to_string());
        // The stage before ends: a stage from it starts with its ENV names.
        if let Some(e) = i.checked_sub(1).and_then(|p| self.stage_env.get_mut(p)) {
            *e = std::mem::take(&mut self.env);
        }
        self.stage = i;
        self.env.clear();
        self.args.clear();
        let named = n.args.len() == 3 && n.args[1].eq_ignore_ascii_case("as");
        let span = if named {
            self.locate(n, &n.args[2])
        } else {
            self.first_line(n)
        };
        if n.args.is_empty() || (n.args.len() != 1 && n.args.len() != 3) {
            let at = self.first_line(n);
            self.sink.error_help(
                at,
                "FROM takes an image and an optional `AS name`",
                "malformed FROM",
                "e.g. `FROM alpine:3 AS build`",
            );
        } else if n.args.len() == 3 && !named {
            let at = self.locate(n, &n.args[1]);
            self.error(at, format!("expected `AS`, found `{}`", n.args[1]), "here");
        }
        if self.names[..i.min(self.names.len())].contains(&name) {
            let at = self.locate(n, n.args.get(2).map_or("", |s| s.as_str()));
            self.error(
                at,
                format!("duplicate stage name `{name}`"),
                "defined before",
            );
        }
        let mut spec = None;
        if ok && let Some(image) = n.args.first() {
            spec = self.stage_spec(n, image);
        }
        StageDecl { name, span, spec }
    }

    fn stage_spec(&mut self, n: &Node, image: &str) -> Option<StageSpec> {
        let at = self.locate(n, image);
        let from = self.tg(n, image)?;
        let mut base = None;
        let from = if !has_reference(&from) && from.eq_ignore_ascii_case("scratch") {
            StrOr::Str("scratch".to_string())
        } else if let Some(s) = self
            .names
            .iter()
            .position(|s| !has_reference(&from) && s.eq_ignore_ascii_case(&from))
        {
            if s >= self.stage {
                self.error(
                    at,
                    format!("stage `{from}` is not defined before this FROM"),
                    "not an earlier stage",
                );
                return None;
            }
            base = Some(s);
            StrOr::Str(self.names[s].clone())
        } else if let Some(rest) = from.strip_prefix("oci-layout://") {
            let (path, reference) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => (p, Some(t)),
                _ => (rest, None),
            };
            StrOr::Other(FromTable {
                oci: Some(self.sp(at.clone(), path.to_string())),
                oci_archive: None,
                docker_archive: None,
                reference: reference.map(|r| self.sp(at.clone(), r.to_string())),
            })
        } else {
            StrOr::Str(from)
        };
        let mut platform = None;
        for f in self.flags(n) {
            if f.name == "platform" {
                let v = f.value.clone().unwrap_or_default();
                platform = Some(Sp::new(f.span, self.tg(n, &v)?));
            }
        }
        // An image's ONBUILD triggers run first (a name with a variable
        // may be an image: the lowering decides).
        let base_onbuild =
            (base.is_none() && from != StrOr::Str("scratch".to_string())).then_some(true);
        let mut steps = Vec::new();
        if let Some(b) = base {
            self.env = self.stage_env[b].clone();
            for t in self.triggers[b].clone() {
                let first = steps.len();
                self.steps(&t, &mut steps);
                self.declare(&t);
                // Said where a printer writes them as steps.
                if let Some(step) = steps.get_mut(first) {
                    let note = format!("ONBUILD trigger of stage {}", self.names[b]);
                    step.0.get_mut().layout.comments.insert(0, note);
                }
            }
        }
        Some(StageSpec {
            from: self.sp(at, from),
            platform,
            args: None,
            steps,
            cmd: None,
            entrypoint: None,
            expose: None,
            labels: None,
            volumes: None,
            stopsignal: None,
            healthcheck: None,
            onbuild: None,
            base_onbuild,
            layout: Layout {
                comments: comments(n),
                breaks: Vec::new(),
            },
        })
    }

    /// Names an instruction defines from here on, and the triggers a
    /// stage from this one runs.
    fn declare(&mut self, n: &Node) {
        match n.keyword.as_str() {
            "arg" => {
                for w in &n.args {
                    self.args.insert(arg_word(w).0.to_string());
                }
            }
            "env" => {
                for t in n.args.chunks(3) {
                    if let Some(k) = t.first() {
                        self.env.insert(k.clone());
                    }
                }
            }
            "onbuild" => {
                if let (Some(t), Some(sub)) = (self.triggers.get_mut(self.stage), &n.sub) {
                    t.push((**sub).clone());
                }
            }
            _ => {}
        }
    }
}

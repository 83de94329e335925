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
//! args scoped to stages that declare them, predefined platform args,
//! expanded global defaults, base-image ONBUILD triggers). A stage from a
//! stage of this file runs that stage's ONBUILD triggers first: they are
//! its first steps here.
//!
//! What the model cannot hold (an instruction's shape, a flag value a
//! Dockerfile writes differently) is checked here, with BuildKit's
//! wording; everything else is checked by the lowering.

use std::collections::HashSet;
use std::ops::Range;

use super::checks::{self, BuildChecks};
use super::parser::{self, Ast, Heredoc, Node};
use super::template::{Name, literal, template};
use super::toml_text::continuation_pieces;
use crate::frontend::diag::Sink;
use crate::frontend::model::{
    ArgDecl, Dialect, FromTable, HealthcheckSpec, ImageDecl, ImageSpec, Layout, MountSpec,
    MountType, Number, OrderedMap, Parsed, SharingSpec, Sp, StageDecl, StageSpec, StepSpec, StrOr,
};
use crate::frontend::mount;
use crate::frontend::values::{parse_flag_bool, parse_retries, parse_size};
use crate::frontend::vars::platform_args;
use crate::ir::MountKind;

/// The Dockerfile's meaning of the model (BuildKit's).
pub const DOCKERFILE: Dialect = Dialect {
    scoped_globals: true,
    platform_args: true,
    expanded_arg_defaults: true,
    base_onbuild: true,
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
    globals: HashSet<String>,
    /// Names the current stage defines (its ENV and ARG names, and the
    /// ENV names of a base stage).
    known: HashSet<String>,
    /// Per stage: the ENV names at its end, and its own ONBUILD triggers.
    stage_env: Vec<HashSet<String>>,
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
    let stages = names.len();
    let mut m = ToModel {
        sink,
        escape: ast.escape,
        names,
        stage: 0,
        globals: HashSet::new(),
        known: HashSet::new(),
        stage_env: vec![HashSet::new(); stages],
        triggers: vec![Vec::new(); stages],
        at: None,
    };
    let mut parsed = Parsed {
        dialect: DOCKERFILE,
        ..Parsed::default()
    };
    for n in &ast.children {
        let ok = checks::keyword(m.sink, n);
        if n.keyword == "from" {
            let decl = m.stage_decl(n, parsed.stages.len(), ok);
            parsed.stages.push(decl);
            continue;
        }
        if !ok {
            continue;
        }
        if let Some(stage) = parsed.stages.last_mut() {
            build_checks.instruction(m.sink.file, n);
            let steps = m.steps(n);
            m.declare(n);
            if let Some(spec) = &mut stage.spec {
                spec.steps.extend(steps);
            }
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
    let mut m = ToModel {
        sink,
        escape: '\\',
        names: names.iter().map(|s| s.to_string()).collect(),
        stage: names.len(),
        globals: HashSet::new(),
        known: HashSet::new(),
        stage_env: Vec::new(),
        triggers: Vec::new(),
        at: Some(at.clone()),
    };
    let mut out = Vec::new();
    for t in onbuild {
        match parser::parse(t) {
            Ok(ast) => {
                for mut n in ast.children {
                    n.span = at.clone();
                    if checks::keyword(m.sink, &n) {
                        out.extend(m.steps(&n));
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

/// The script of a shell-form RUN with heredocs: a command that is just
/// one heredoc runs its body; otherwise the shell gets the heredocs after
/// the command line, as it would in a script.
pub(crate) fn heredoc_script(script: &str, heredocs: &[Heredoc]) -> String {
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

/// Where the parser joined a continued line, as byte offsets in `script`
/// (the end of the joined logical line).
fn breaks(source: &str, escape: char, script: &str) -> Vec<usize> {
    let pieces = continuation_pieces(source, escape);
    let joined: usize = pieces.iter().map(String::len).sum();
    let Some(skip) = joined.checked_sub(script.len()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = 0;
    for p in &pieces {
        at += p.len();
        if at > skip && at - skip < script.len() {
            out.push(at - skip);
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
    t.replace("$$", "").contains('$')
}

impl ToModel<'_, '_> {
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

    /// `word` as a template, the names in `scope`; errors at the word.
    fn translate(&mut self, n: &Node, word: &str, scope: &dyn Fn(&str) -> Name) -> Option<String> {
        match template(word, self.escape, scope) {
            Ok(t) => Some(t.text),
            Err(e) => {
                let at = self.locate(n, word);
                self.error(at, e, "in this word");
                None
            }
        }
    }

    /// A word of a stage instruction: names the stage defines are known;
    /// any other may come from the base image's env.
    fn t(&mut self, n: &Node, word: &str) -> Option<String> {
        let known = std::mem::take(&mut self.known);
        let scope = |name: &str| {
            if known.contains(name) {
                Name::Known
            } else {
                Name::Maybe
            }
        };
        let r = self.translate(n, word, &scope);
        self.known = known;
        r
    }

    /// A word that sees the global args (and the predefined ones): FROM,
    /// `--from`, a mount's `from`.
    fn tg(&mut self, n: &Node, word: &str) -> Option<String> {
        let globals = std::mem::take(&mut self.globals);
        let platform = platform_args();
        let scope = |name: &str| {
            if globals.contains(name) || platform.iter().any(|(k, _)| k == name) {
                Name::Known
            } else {
                Name::Unset
            }
        };
        let r = self.translate(n, word, &scope);
        self.globals = globals;
        r
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

    /// A stage an instruction reads must come before it.
    fn check_order(&mut self, s: usize, name: &str, at: Range<usize>) -> bool {
        if s == self.stage {
            self.error(
                at,
                format!("stage `{name}` reads itself"),
                "dependency cycle",
            );
            false
        } else if s > self.stage && self.stage < self.names.len() {
            self.sink.error_help(
                at,
                format!("stage `{name}` is defined after this instruction"),
                "a later stage",
                "a stage can only use stages defined before it",
            );
            false
        } else {
            true
        }
    }

    fn global_args(&mut self, n: &Node, out: &mut Vec<ArgDecl>) {
        for w in &n.args {
            let (name, default) = arg_word(w);
            let default = match default {
                Some(d) => {
                    let globals = &self.globals;
                    let names: HashSet<String> = globals.clone();
                    let scope = |k: &str| {
                        if names.contains(k) {
                            Name::Known
                        } else {
                            Name::Unset
                        }
                    };
                    let Some(t) = self.translate(n, d, &scope) else {
                        continue;
                    };
                    Some((t, self.locate(n, d)))
                }
                None => None,
            };
            let span = self.locate(n, name);
            out.push(ArgDecl {
                name: name.to_string(),
                default_span: default.as_ref().map_or(span.clone(), |d| d.1.clone()),
                default: default.map(|d| d.0),
                span,
            });
            self.globals.insert(name.to_string());
        }
    }

    /// A FROM: the stage's name, base and platform; the state it starts
    /// with (a base stage's ENV names and ONBUILD triggers).
    fn stage_decl(&mut self, n: &Node, i: usize, ok: bool) -> StageDecl {
        let name = self.names.get(i).cloned().unwrap_or_else(|| i.to_string());
        self.stage = i;
        self.known.clear();
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
        let mut steps = Vec::new();
        if let Some(b) = base {
            self.known = self.stage_env[b].clone();
            for t in self.triggers[b].clone() {
                steps.extend(self.steps(&t));
                self.declare(&t);
            }
        }
        if let Some(e) = self.stage_env.get_mut(self.stage) {
            e.clone_from(&self.known);
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
                    self.known.insert(arg_word(w).0.to_string());
                }
            }
            "env" => {
                for t in n.args.chunks(3) {
                    if let Some(k) = t.first() {
                        self.known.insert(k.clone());
                        if let Some(e) = self.stage_env.get_mut(self.stage) {
                            e.insert(k.clone());
                        }
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

    /// The steps of one instruction (none when it is refused).
    fn steps(&mut self, n: &Node) -> Vec<Sp<StepSpec>> {
        let span = self.span(n.span.clone());
        let step = |s: StepSpec| Sp::new(span.clone(), s);
        let mut out: Vec<Sp<StepSpec>> = match n.keyword.as_str() {
            "arg" => {
                let mut v = Vec::new();
                for w in &n.args {
                    let (name, default) = arg_word(w);
                    let default = match default {
                        Some(d) => match self.t(n, d) {
                            Some(t) => Some(self.sp(n.locate(self.text(), d), t)),
                            None => continue,
                        },
                        None => None,
                    };
                    let arg = self.sp(n.locate(self.text(), name), name.to_string());
                    // Each name is in scope for the next one's default.
                    self.known.insert(name.to_string());
                    v.push(step(StepSpec {
                        arg: Some(arg),
                        default,
                        ..StepSpec::default()
                    }));
                }
                v
            }
            "env" | "label" => self
                .pairs(n)
                .map(|m| {
                    let m = Sp::new(span.clone(), m);
                    step(if n.keyword == "env" {
                        StepSpec {
                            env: Some(m),
                            ..StepSpec::default()
                        }
                    } else {
                        StepSpec {
                            label: Some(m),
                            ..StepSpec::default()
                        }
                    })
                })
                .into_iter()
                .collect(),
            "maintainer" => {
                let v = n.args.first().cloned().unwrap_or_default();
                let label = OrderedMap(vec![(
                    "maintainer".into(),
                    self.sp(span.clone(), literal(&v)),
                )]);
                vec![step(StepSpec {
                    label: Some(Sp::new(span.clone(), label)),
                    ..StepSpec::default()
                })]
            }
            "workdir" | "user" | "stopsignal" => self.single(n).map(step).into_iter().collect(),
            "shell" => {
                if !n.json || n.args.is_empty() {
                    let at = self.first_line(n);
                    self.sink.error_help(
                        at,
                        "SHELL needs a non-empty JSON array",
                        "not a JSON array",
                        "e.g. SHELL [\"/bin/bash\", \"-c\"]",
                    );
                    Vec::new()
                } else {
                    vec![step(StepSpec {
                        shell: Some(Sp::new(span.clone(), n.args.clone())),
                        ..StepSpec::default()
                    })]
                }
            }
            "cmd" | "entrypoint" => {
                let c = if n.json {
                    StrOr::Other(n.args.clone())
                } else {
                    StrOr::Str(n.args.first().cloned().unwrap_or_default())
                };
                let c = Some(Sp::new(span.clone(), c));
                vec![step(if n.keyword == "cmd" {
                    StepSpec {
                        cmd: c,
                        ..StepSpec::default()
                    }
                } else {
                    StepSpec {
                        entrypoint: c,
                        ..StepSpec::default()
                    }
                })]
            }
            "expose" | "volume" => {
                let mut v = Vec::new();
                for a in &n.args {
                    if let Some(t) = self.t(n, a) {
                        v.push(self.sp(n.locate(self.text(), a), t));
                    }
                }
                let v = Some(Sp::new(span.clone(), v));
                vec![step(if n.keyword == "expose" {
                    StepSpec {
                        expose: v,
                        ..StepSpec::default()
                    }
                } else {
                    StepSpec {
                        volume: v,
                        ..StepSpec::default()
                    }
                })]
            }
            "healthcheck" => self
                .healthcheck(n)
                .map(|h| {
                    step(StepSpec {
                        healthcheck: Some(Sp::new(span.clone(), h)),
                        ..StepSpec::default()
                    })
                })
                .into_iter()
                .collect(),
            "onbuild" => {
                let trigger = n
                    .sub
                    .as_ref()
                    .map(|s| s.original.trim().to_string())
                    .unwrap_or_default();
                vec![step(StepSpec {
                    onbuild: Some(Sp::new(span.clone(), vec![Sp::new(span.clone(), trigger)])),
                    ..StepSpec::default()
                })]
            }
            "run" => self.run(n).map(step).into_iter().collect(),
            "copy" | "add" => self.copy(n).map(step).into_iter().collect(),
            _ => Vec::new(),
        };
        if let Some(first) = out.first_mut() {
            first.0.get_mut().layout.comments = comments(n);
        }
        out
    }

    /// ENV and LABEL: `key=value` pairs, the values templates.
    fn pairs(&mut self, n: &Node) -> Option<OrderedMap> {
        let what = if n.keyword == "env" {
            "ENV needs at least one NAME=value"
        } else {
            "LABEL needs at least one key=value"
        };
        if n.args.is_empty() {
            let at = self.first_line(n);
            self.error(at, what, "empty");
            return None;
        }
        let mut out = Vec::new();
        for t in n.args.chunks(3) {
            let (Some(k), Some(v)) = (t.first(), t.get(1)) else {
                continue;
            };
            let (Some(kt), Some(vt)) = (self.t(n, k), self.t(n, v)) else {
                continue;
            };
            if has_reference(&kt) {
                let at = self.locate(n, k);
                self.error(
                    at,
                    format!("`{k}`: a name with variables is not supported"),
                    "expanded name",
                );
                continue;
            }
            let value = self.sp(n.locate(self.text(), v), vt);
            out.push((kt.replace("$$", "$"), value));
        }
        Some(OrderedMap(out))
    }

    /// WORKDIR, USER, STOPSIGNAL: one word.
    fn single(&mut self, n: &Node) -> Option<StepSpec> {
        let Some(w) = n.args.first() else {
            let what = match n.keyword.as_str() {
                "workdir" => "WORKDIR needs a path",
                "user" => "USER needs a user name or id",
                _ => "STOPSIGNAL needs a signal",
            };
            let at = self.first_line(n);
            self.error(at, what, "empty");
            return None;
        };
        let v = self.t(n, w)?;
        let v = Some(self.sp(n.locate(self.text(), w), v));
        Some(match n.keyword.as_str() {
            "workdir" => StepSpec {
                workdir: v,
                ..StepSpec::default()
            },
            "user" => StepSpec {
                user: v,
                ..StepSpec::default()
            },
            _ => StepSpec {
                stopsignal: v,
                ..StepSpec::default()
            },
        })
    }

    fn healthcheck(&mut self, n: &Node) -> Option<HealthcheckSpec> {
        let at = self.first_line(n);
        let Some(kind) = n.args.first() else {
            self.error(at, "HEALTHCHECK needs CMD or NONE", "empty");
            return None;
        };
        let test = match kind.to_uppercase().as_str() {
            "NONE" if n.args.len() > 1 => {
                self.error(at, "HEALTHCHECK NONE takes no arguments", "here");
                return None;
            }
            "NONE" => vec!["NONE".to_string()],
            "CMD" => {
                let rest = &n.args[1..];
                if rest.is_empty() || rest[0].is_empty() {
                    self.error(at, "HEALTHCHECK CMD needs a command", "empty");
                    return None;
                }
                if n.json {
                    let mut v = vec!["CMD".to_string()];
                    v.extend(rest.iter().cloned());
                    v
                } else {
                    vec!["CMD-SHELL".to_string(), rest[0].clone()]
                }
            }
            other => {
                let at = self.locate(n, kind);
                self.sink.error_help(
                    at,
                    format!("unknown HEALTHCHECK type `{other}`"),
                    "here",
                    "HEALTHCHECK takes CMD or NONE",
                );
                return None;
            }
        };
        let mut h = HealthcheckSpec {
            test: self.sp(n.span.clone(), StrOr::Other(test)),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        };
        let mut ok = true;
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            if f.name == "retries" {
                match parse_retries(&v) {
                    Some(r) => h.retries = Some(r),
                    None => {
                        self.error(f.span, format!("bad retries `{v}`"), "not a number");
                        ok = false;
                    }
                }
                continue;
            }
            let d = Some(Sp::new(f.span, v));
            match f.name.as_str() {
                "interval" => h.interval = d,
                "timeout" => h.timeout = d,
                "start-period" => h.start_period = d,
                _ => h.start_interval = d,
            }
        }
        ok.then_some(h)
    }

    fn run(&mut self, n: &Node) -> Option<StepSpec> {
        let span = self.span(n.span.clone());
        let mut s = StepSpec::default();
        let command = if n.json {
            StrOr::Other(n.args.clone())
        } else {
            let script = n.args.first().cloned().unwrap_or_default();
            if n.heredocs.is_empty() && self.at.is_none() {
                let source = self.text().get(n.span.clone()).unwrap_or("");
                s.layout.breaks = breaks(source, self.escape, &script);
            }
            StrOr::Str(heredoc_script(&script, &n.heredocs))
        };
        s.run = Some(Sp::new(span, command));
        let mut ok = true;
        let mut mounts = Vec::new();
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            match f.name.as_str() {
                "network" => match self.t(n, &v) {
                    Some(t) => s.network = Some(Sp::new(f.span, t)),
                    None => ok = false,
                },
                "mount" => match self.mount(n, &f) {
                    Some(m) => mounts.push(m),
                    None => ok = false,
                },
                _ => {
                    self.error(
                        f.span,
                        format!("RUN --{} is not supported", f.name),
                        "unsupported flag",
                    );
                    ok = false;
                }
            }
        }
        if !mounts.is_empty() {
            s.mounts = Some(mounts);
        }
        ok.then_some(s)
    }

    /// A `--mount` value: fields split as BuildKit splits them (quotes
    /// keep commas), values templates.
    fn mount(&mut self, n: &Node, f: &Flag) -> Option<Sp<MountSpec>> {
        let raw = f.value.clone().unwrap_or_default();
        let at = f.span.clone();
        let mut kind = MountType::Bind;
        let mut kv: Vec<(String, Option<String>)> = Vec::new();
        for field in mount::fields(&raw) {
            if field.key != "type" {
                kv.push((field.key, field.value));
                continue;
            }
            let value = field.value.unwrap_or_default();
            kind = match mount::parse_kind(&value) {
                Some(MountKind::Bind) => MountType::Bind,
                Some(MountKind::Cache) => MountType::Cache,
                Some(MountKind::Tmpfs) => MountType::Tmpfs,
                Some(MountKind::Secret) => MountType::Secret,
                Some(MountKind::Ssh) => MountType::Ssh,
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
        let ir_kind = match kind {
            MountType::Bind => MountKind::Bind,
            MountType::Cache => MountKind::Cache,
            MountType::Tmpfs => MountKind::Tmpfs,
            MountType::Secret => MountKind::Secret,
            MountType::Ssh => MountKind::Ssh,
        };
        let kind_name = mount::kind_name(ir_kind);
        let allowed = mount::options(ir_kind);
        let mut m = MountSpec {
            kind: Sp::new(at.clone(), kind),
            target: None,
            source: None,
            from: None,
            id: None,
            sharing: None,
            readonly: None,
            required: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
        };
        let mut ok = true;
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
                ok = false;
                continue;
            }
            let shown = v.clone().unwrap_or_default();
            let mut bad = |this: &mut Self, what: &str| {
                this.error(
                    at.clone(),
                    format!("bad {k} `{shown}` in mount: {what}"),
                    "in this mount",
                );
                ok = false;
            };
            match key {
                "readonly" | "rw" | "required" => match mount::parse_bool(v.as_deref()) {
                    Some(b) if key == "required" => m.required = Some(b),
                    Some(b) => m.readonly = Some(if key == "rw" { !b } else { b }),
                    None => bad(self, "expected true or false"),
                },
                "sharing" => match v.as_deref().and_then(mount::parse_sharing) {
                    Some(crate::ir::Sharing::Shared) => {
                        m.sharing = Some(Sp::new(at.clone(), SharingSpec::Shared))
                    }
                    Some(crate::ir::Sharing::Private) => {
                        m.sharing = Some(Sp::new(at.clone(), SharingSpec::Private))
                    }
                    Some(crate::ir::Sharing::Locked) => {
                        m.sharing = Some(Sp::new(at.clone(), SharingSpec::Locked))
                    }
                    None => bad(self, "expected shared, private or locked"),
                },
                "uid" | "gid" | "size" => {
                    let value = if key == "size" {
                        parse_size(&shown)
                    } else {
                        shown.parse::<u32>().ok().map(u64::from)
                    };
                    let number = match value {
                        Some(x) => Number::Value(x),
                        None if shown.contains('$') => match self.t(n, &shown) {
                            Some(t) => Number::Template(t),
                            None => {
                                ok = false;
                                continue;
                            }
                        },
                        None if key == "size" => {
                            bad(self, "not a size");
                            continue;
                        }
                        None => {
                            bad(self, "not a number");
                            continue;
                        }
                    };
                    let number = Some(Sp::new(at.clone(), number));
                    match key {
                        "uid" => m.uid = number,
                        "gid" => m.gid = number,
                        _ => m.size = number,
                    }
                }
                "from" => {
                    let Some(t) = self.tg(n, &shown) else {
                        ok = false;
                        continue;
                    };
                    match self.stage_named(&t) {
                        Some(s) => {
                            ok &= self.check_order(s, &t, at.clone());
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
                            ok = false;
                        }
                    }
                }
                _ => {
                    let Some(t) = self.t(n, &shown) else {
                        ok = false;
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
        ok.then(|| Sp::new(at, m))
    }

    fn copy(&mut self, n: &Node) -> Option<StepSpec> {
        let add = n.keyword == "add";
        let verb = n.keyword.to_uppercase();
        let at = self.first_line(n);
        if !n.heredocs.is_empty() {
            self.error(
                at,
                format!("{verb} with a heredoc source is not supported yet"),
                "heredoc",
            );
            return None;
        }
        if n.args.len() < 2 {
            self.sink.error_help(
                at,
                format!("{verb} needs at least one source and a destination"),
                "missing arguments",
                format!("e.g. {verb} src/ /app/"),
            );
            return None;
        }
        let span = self.span(n.span.clone());
        let mut ok = true;
        let (srcs, dest) = n.args.split_at(n.args.len() - 1);
        let mut sources = Vec::new();
        for s in srcs {
            match self.t(n, s) {
                Some(t) => sources.push(self.sp(n.locate(self.text(), s), t)),
                None => ok = false,
            }
        }
        let mut s = StepSpec::default();
        let sources = Some(Sp::new(span, sources));
        if add {
            s.add = sources;
        } else {
            s.copy = sources;
        }
        s.to = self
            .t(n, &dest[0])
            .map(|t| self.sp(n.locate(self.text(), &dest[0]), t));
        ok &= s.to.is_some();
        let mut exclude = Vec::new();
        for f in self.flags(n) {
            let v = f.value.clone();
            let raw = v.clone().unwrap_or_default();
            match f.name.as_str() {
                "from" => match self.tg(n, &raw) {
                    Some(t) => match self.stage_named(&t) {
                        Some(i) => {
                            ok &= self.check_order(i, &t, f.span.clone());
                            s.from = Some(Sp::new(f.span, self.names[i].clone()));
                        }
                        None => s.image = Some(Sp::new(f.span, t)),
                    },
                    None => ok = false,
                },
                "chown" | "chmod" | "checksum" | "exclude" => match self.t(n, &raw) {
                    Some(t) => {
                        let t = Sp::new(f.span, t);
                        match f.name.as_str() {
                            "chown" => s.chown = Some(t),
                            "chmod" => s.chmod = Some(t),
                            "checksum" => s.checksum = Some(t),
                            _ => exclude.push(t),
                        }
                    }
                    None => ok = false,
                },
                name @ ("link" | "parents" | "keep-git-dir" | "unpack") => {
                    match parse_flag_bool(v.as_deref()) {
                        Some(b) => match name {
                            "link" => s.link = Some(b),
                            "parents" => s.parents = Some(b),
                            "keep-git-dir" => s.keep_git_dir = Some(b),
                            _ => s.unpack = Some(b),
                        },
                        None => {
                            self.error(
                                f.span,
                                format!("--{name} takes true or false"),
                                "not a boolean",
                            );
                            ok = false;
                        }
                    }
                }
                _ => {}
            }
        }
        if !exclude.is_empty() {
            s.exclude = Some(exclude);
        }
        ok.then_some(s)
    }
}

//! Model -> IR: semantic checks and lowering of every stage, step and image.
//!
//! Stages are lowered in dependency order (ties in file order). Each stage
//! keeps a [`State`] (env, user, workdir, shell, args in scope) that steps
//! read and update; a stage `from` another stage starts from that stage's
//! final state. Problems go to the [`Sink`]; lowering carries on after an
//! error so that the whole file is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::LazyLock;

use petgraph::stable_graph::NodeIndex;
use regex::Regex;

use super::LowerOptions;
use super::model::{
    Boolean, Dialect, HealthcheckSpec, ImageDecl, Lit, MountSpec, Number, OrderedMap, Parsed, Sp,
    StageDecl, StageSpec, StepSpec, StrOr,
};
use super::toml::expand::{ExpandError, expand};
use crate::digest::Digest;
use crate::frontend::diag::{Sink, did_you_mean};
use crate::frontend::mount;
use crate::frontend::state::{State, order, span_of};
use crate::frontend::tags::cli_tags;
use crate::frontend::values::{
    is_arg_name, is_healthcheck_test, is_signal, normalize_port, parse_chown, parse_duration,
    parse_network, parse_octal, parse_size, resolve_dest, resolve_path,
};
use crate::frontend::vars::{lookup, platform_args, run_env};
use crate::ir::{
    AddOptions, BaseOp, BaseRef, BaseResolver, BuildGraph, Command, CopyFrom, CopyOp, Edge,
    Healthcheck, MetaOp, Mount, MountKind, Network, Op, RunOp, Stage, Target,
};
use crate::reference::Reference;

mod copy;
mod meta;
mod run;
mod targets;

use meta::workdir_op;

static STAGE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]*$").expect("static regex"));

/// Where a stage starts, after expansion.
enum Start {
    Base(BaseRef, Range<usize>),
    Stage(usize),
    /// Already reported.
    Invalid,
}

/// A dependency of a stage on another stage.
struct Dep {
    stage: usize,
    span: Range<usize>,
}

pub struct Lowerer<'a, 'f> {
    sink: &'a mut Sink<'f>,
    opts: &'a LowerOptions,
    resolver: &'a dyn BaseResolver,
    graph: BuildGraph,
    stages: &'a [StageDecl],
    /// Global args after `--build-arg`.
    globals: Vec<(String, Option<String>)>,
    /// Arg names some declaration consumes.
    declared: BTreeSet<String>,
    /// Final state and last node of each lowered stage.
    ends: Vec<Option<State>>,
    /// The first node the stage being lowered added.
    stage_first: Option<NodeIndex>,
    dialect: Dialect,
    /// BuildKit's predefined platform args (`BUILDPLATFORM`, `TARGETARCH`,
    /// ...): both formats have them, seen where the global args are seen
    /// (stage `from`, copy/mount `from`, tags) and taken by a stage `arg`
    /// (or `args` entry) that names one.
    platform: Vec<(String, String)>,
}

pub fn lower<'f>(
    parsed: &Parsed,
    opts: &LowerOptions,
    resolver: &dyn BaseResolver,
    sink: &mut Sink<'f>,
) -> BuildGraph {
    let mut graph = BuildGraph::default();
    graph.sources.push(sink.file.clone());
    let mut l = Lowerer {
        sink,
        opts,
        resolver,
        graph,
        stages: &parsed.stages,
        globals: Vec::new(),
        declared: BTreeSet::new(),
        ends: vec![None; parsed.stages.len()],
        stage_first: None,
        dialect: parsed.dialect.clone(),
        platform: platform_args(opts.platform.as_ref()),
    };
    l.globals(parsed);
    l.stage_names();
    let starts: Vec<Start> = parsed.stages.iter().map(|s| l.start(s)).collect();
    let deps: Vec<Vec<Dep>> = parsed
        .stages
        .iter()
        .zip(&starts)
        .map(|(s, start)| l.deps(s, start))
        .collect();
    let cyclic = l.cycles(&deps);
    let deps: Vec<Vec<usize>> = deps
        .iter()
        .map(|d| d.iter().map(|d| d.stage).collect())
        .collect();
    // Stages on or behind a cycle are checked too, after the others.
    let (ordered, rest) = order(&deps, &cyclic);
    for i in ordered.into_iter().chain(rest) {
        l.stage(i, &starts[i]);
    }
    l.targets(&parsed.images);
    l.warnings();
    l.graph
}

impl Lowerer<'_, '_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, label: impl Into<String>) {
        self.sink.error(span, message, label);
    }

    fn error_help(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.sink.error_help(span, message, label, help);
    }

    /// Whether `name` can be an arg's name; an error at `span` if not.
    fn arg_name_ok(&mut self, name: &str, span: Range<usize>) -> bool {
        let ok = is_arg_name(name);
        if !ok {
            self.error_help(
                span,
                format!("bad arg name `{name}`"),
                "not a valid name",
                "arg names are letters, digits and `_`, not starting with a digit",
            );
        }
        ok
    }

    fn globals(&mut self, parsed: &Parsed) {
        for a in &parsed.args {
            if !self.arg_name_ok(&a.name, a.span.clone()) {
                continue;
            }
            let default = match &a.default {
                Some(d) if a.expand => {
                    let r = expand(d, &|n: &str| self.lookup_global(n));
                    match self.report_expand(r, d, a.default_span.clone()) {
                        Some(v) => Some(v),
                        None => continue,
                    }
                }
                d => d.clone(),
            };
            let value = self.opts.build_args.get(&a.name).cloned().or(default);
            if let Some(v) = &value {
                self.graph.args.insert(a.name.clone(), v.clone());
            }
            self.declared.insert(a.name.clone());
            // Declared again (a Dockerfile can): the later value from here on.
            match self.globals.iter_mut().find(|(k, _)| *k == a.name) {
                Some(slot) => slot.1 = value,
                None => self.globals.push((a.name.clone(), value)),
            }
        }
    }

    fn stage_names(&mut self) {
        for s in self.stages {
            if s.name == "scratch" {
                self.error(
                    s.span.clone(),
                    "`scratch` is reserved and cannot name a stage",
                    "reserved name",
                );
            } else if !STAGE_NAME.is_match(&s.name) {
                self.error_help(
                    s.span.clone(),
                    format!("bad stage name `{}`", s.name),
                    "not a valid name",
                    "stage names are letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                );
            }
        }
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// A global arg, then a predefined one.
    fn lookup_global(&self, name: &str) -> Option<Option<String>> {
        lookup_in(&self.globals, &self.platform, name)
    }

    /// Expands with global args only (stage `from`, copy/mount `from`, tags).
    fn expand_global(&mut self, s: &Sp<String>) -> Option<String> {
        let r = expand(s.get(), &|n: &str| self.lookup_global(n));
        self.report_expand(r, s.get(), s.span())
    }

    /// A platform of the file (a stage's, an image's), expanded with the
    /// global args and normalized.
    fn platform(&mut self, p: &Sp<String>) -> Option<String> {
        let v = self.expand_global(p)?;
        match crate::oci::parse_platform(&v) {
            Ok(platform) => Some(platform.to_string()),
            Err(_) => {
                self.error_help(
                    p.span(),
                    format!("bad platform `{v}`"),
                    "expected os/arch[/variant]",
                    "e.g. \"linux/amd64\" or \"linux/arm64/v8\"",
                );
                None
            }
        }
    }

    /// Expands with the variables a step sees: env, then args in scope,
    /// then (unless the dialect scopes them) the global args.
    fn expand_in(&mut self, state: &State, s: &Sp<String>) -> Option<String> {
        let globals: &[(String, Option<String>)] = if self.dialect.scoped_globals {
            &[]
        } else {
            &self.globals
        };
        let r = expand_str(state, globals, s.get());
        self.report_expand(r, s.get(), s.span())
    }

    /// A value expanded as [`Self::expand_in`] does, then read by `parse`;
    /// `None` when either fails, reported as "bad NAME `value`" with
    /// `label` (and `help` unless empty).
    fn read<T>(
        &mut self,
        state: &State,
        v: &Sp<String>,
        parse: impl Fn(&str) -> Option<T>,
        (name, label, help): (&str, &str, &str),
    ) -> Option<T> {
        let x = self.expand_in(state, v)?;
        let r = parse(&x);
        if r.is_none() {
            let message = format!("bad {name} `{x}`");
            match help {
                "" => self.error(v.span(), message, label),
                _ => self.error_help(v.span(), message, label, help),
            }
        }
        r
    }

    /// An env or label name, expanded where its value is (errors point at
    /// the value: a table key has no span of its own here).
    fn expand_key(&mut self, state: &State, k: &str, v: &Sp<String>) -> Option<String> {
        if !k.contains('$') {
            return Some(k.to_string());
        }
        self.expand_in(state, &Sp::new(v.span(), k.to_string()))
    }

    fn report_expand(
        &mut self,
        r: Result<String, ExpandError>,
        value: &str,
        span: Range<usize>,
    ) -> Option<String> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                // Only a spec meets these: a Dockerfile's words are templates
                // that define every name they use and write `$` as `$$`.
                let help = if e.message.starts_with("undefined variable") {
                    "declare it in [args], a stage `arg` step or an `env` step; `${NAME:-default}` tolerates an unset name"
                } else {
                    "write `$$` for a literal `$`"
                };
                // Point at the expression when the value is written verbatim
                // (a string without escapes); else at the whole value.
                let text = &self.sink.file.text;
                let verbatim = text.get(span.clone()).is_some_and(|t| {
                    t.len() == value.len() + 2
                        && (t.starts_with('"') || t.starts_with('\''))
                        && &t[1..t.len() - 1] == value
                });
                let (at, label) = if verbatim && e.range.end <= value.len() {
                    (
                        span.start + 1 + e.range.start..span.start + 1 + e.range.end,
                        "this expression",
                    )
                } else {
                    (span, "in this value")
                };
                self.error_help(at, e.message, label, help);
                None
            }
        }
    }

    fn start(&mut self, s: &StageDecl) -> Start {
        let Some(spec) = &s.spec else {
            return Start::Invalid;
        };
        let span = spec.from.span();
        match spec.from.get() {
            StrOr::Str(raw) => {
                let sp = Sp(toml::Spanned::new(span.clone(), raw.clone()));
                let Some(name) = self.expand_global(&sp) else {
                    return Start::Invalid;
                };
                if name == "scratch" {
                    return Start::Base(BaseRef::Scratch, span);
                }
                if let Some(i) = self.stage_index(&name) {
                    if name == s.name {
                        self.error(
                            span,
                            format!("stage `{name}` starts from itself"),
                            "dependency cycle",
                        );
                        return Start::Invalid;
                    }
                    return Start::Stage(i);
                }
                match Reference::parse(&name) {
                    Ok(r) => Start::Base(
                        BaseRef::Image {
                            reference: r.normalized(),
                        },
                        span,
                    ),
                    Err(e) => {
                        let help = match did_you_mean(&name, self.stages.iter().map(|s| s.name.as_str())) {
                            Some(m) => format!("`{name}` is not a stage of this file; did you mean stage `{m}`?"),
                            None => "`from` is \"scratch\", a stage of this file, or an image reference like \"busybox:1\"".into(),
                        };
                        self.error_help(
                            span,
                            format!("bad image reference `{name}`: {e}"),
                            "not a stage or an image",
                            help,
                        );
                        Start::Invalid
                    }
                }
            }
            StrOr::Other(t) => {
                let given: Vec<(&str, &Sp<String>)> = [
                    ("oci", &t.oci),
                    ("oci-archive", &t.oci_archive),
                    ("docker-archive", &t.docker_archive),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
                .collect();
                if given.len() != 1 {
                    self.error_help(
                        span,
                        if given.is_empty() { "`from` table names no image source".to_string() } else { "`from` table names several image sources".to_string() },
                        "expected exactly one source",
                        "write one of { oci = \"dir\" }, { oci-archive = \"file.tar\" }, { docker-archive = \"file.tar\" }, optionally with ref = \"tag\"",
                    );
                    return Start::Invalid;
                }
                let (kind, path) = given[0];
                let path = self.expand_global(path);
                let reference = match &t.reference {
                    Some(r) => match self.expand_global(r) {
                        Some(v) => Some(v),
                        None => return Start::Invalid,
                    },
                    None => None,
                };
                let Some(path) = path else {
                    return Start::Invalid;
                };
                let path = PathBuf::from(path);
                let base = match kind {
                    "oci" => BaseRef::OciLayout { path, reference },
                    "oci-archive" => BaseRef::OciArchive { path, reference },
                    _ => BaseRef::DockerArchive { path, reference },
                };
                Start::Base(base, span)
            }
        }
    }

    /// What to say of an unknown stage `name`: the stage it may be a typo
    /// of, else `otherwise` when given, else the stages there are.
    fn unknown_stage_help(&self, name: &str, otherwise: Option<String>) -> String {
        let names = || self.stages.iter().map(|s| s.name.as_str());
        match did_you_mean(name, names()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => otherwise.unwrap_or_else(|| {
                format!(
                    "stages of this file: {}",
                    names().collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }

    /// The stage named by a copy/mount `from`, with a diagnostic when unknown.
    fn stage_ref(&mut self, from: &Sp<String>, hint_image: bool) -> Option<usize> {
        let name = self.expand_global(from)?;
        if let Some(i) = self.stage_index(&name) {
            return Some(i);
        }
        let mut help = self.unknown_stage_help(&name, None);
        if hint_image {
            help.push_str(" To copy from an image, write `image = \"...\"`.");
        }
        self.error_help(
            from.span(),
            format!("unknown stage `{name}`"),
            "no stage of this name",
            help,
        );
        None
    }

    fn deps(&mut self, s: &StageDecl, start: &Start) -> Vec<Dep> {
        let mut v = Vec::new();
        let Some(spec) = &s.spec else { return v };
        if let Start::Stage(i) = start {
            v.push(Dep {
                stage: *i,
                span: spec.from.span(),
            });
        }
        for step in &spec.steps {
            let step = step.get();
            if step.copy.is_some()
                && let Some(from) = &step.from
                && let Some(i) = self.stage_ref(from, true)
            {
                v.push(Dep {
                    stage: i,
                    span: from.span(),
                });
            }
            if let Some(i) = step.image.as_ref().and_then(|img| self.image_stage(img)) {
                v.push(Dep {
                    stage: i,
                    span: step.image.as_ref().map(|x| x.span()).unwrap_or_default(),
                });
            }
            for m in step.mounts.iter().flatten() {
                if let Some(from) = &m.get().from
                    && let Some(i) = self.stage_ref(from, false)
                {
                    v.push(Dep {
                        stage: i,
                        span: from.span(),
                    });
                }
            }
        }
        v
    }

    /// The stage a copy `image` names once expanded, in a dialect where it
    /// may (errors are reported where the copy is lowered).
    fn image_stage(&self, img: &Sp<String>) -> Option<usize> {
        if !self.dialect.image_may_name_stage {
            return None;
        }
        let name = expand(img.get(), &|n: &str| self.lookup_global(n)).ok()?;
        self.stage_index(&name)
    }

    /// Reports each dependency cycle once; returns the stages on cycles.
    fn cycles(&mut self, deps: &[Vec<Dep>]) -> Vec<usize> {
        // 0 = new, 1 = on the stack, 2 = done.
        let mut color = vec![0u8; deps.len()];
        let mut cyclic = BTreeSet::new();
        let mut found = Vec::new();
        fn visit(
            i: usize,
            deps: &[Vec<Dep>],
            color: &mut [u8],
            stack: &mut Vec<usize>,
            found: &mut Vec<(Vec<usize>, Range<usize>)>,
        ) {
            color[i] = 1;
            stack.push(i);
            for d in &deps[i] {
                if d.stage == i {
                    found.push((vec![i, i], d.span.clone()));
                } else if color[d.stage] == 1 {
                    let pos = stack.iter().position(|&s| s == d.stage).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[pos..].to_vec();
                    cycle.push(d.stage);
                    found.push((cycle, d.span.clone()));
                } else if color[d.stage] == 0 {
                    visit(d.stage, deps, color, stack, found);
                }
            }
            stack.pop();
            color[i] = 2;
        }
        for i in 0..deps.len() {
            if color[i] == 0 {
                visit(i, deps, &mut color, &mut Vec::new(), &mut found);
            }
        }
        for (cycle, span) in found {
            cyclic.extend(cycle.iter().copied());
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| self.stages[i].name.as_str())
                .collect();
            self.error_help(
                span,
                format!("dependency cycle between stages: {}", names.join(" -> ")),
                "this reference closes the cycle",
                "a stage can only use stages that do not use it",
            );
        }
        cyclic.into_iter().collect()
    }

    fn add(&mut self, state: &mut State, stage: &str, op: Op, span: Range<usize>) -> NodeIndex {
        let n = state.add(&mut self.graph, stage, op, &span);
        self.stage_first.get_or_insert(n);
        n
    }

    fn stage(&mut self, i: usize, start: &Start) {
        let stages = self.stages;
        let decl = &stages[i];
        let Some(spec) = &decl.spec else { return };
        let name = decl.name.clone();
        self.stage_first = None;
        // The base image's ONBUILD triggers, in a dialect that runs them.
        let mut triggers = Vec::new();
        let mut state = match start {
            Start::Base(base, span) => {
                let platform = match &spec.platform {
                    Some(p) => self.platform(p),
                    // A stage that names no platform is built for the target.
                    None => self.opts.platform.as_ref().map(|p| p.to_string()),
                };
                let info = match self.resolver.resolve(base, platform.as_deref()) {
                    Ok(info) => info,
                    Err(msg) => {
                        self.error(span.clone(), msg, "base image");
                        Default::default()
                    }
                };
                if spec.base_onbuild == Some(true) {
                    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
                    triggers = crate::frontend::dockerfile::base_triggers(
                        &info.onbuild,
                        span.clone(),
                        &names,
                        self.sink,
                    );
                } else if !info.onbuild.is_empty() {
                    self.graph.warnings.push(format!(
                        "stage {name}: the base image has ONBUILD instructions, which this stage does not run (and the image does not keep them); set `base-onbuild = true` to run them first, as a Dockerfile FROM does, or write them as steps"
                    ));
                }
                let mut state = State::from_base(info);
                let op = Op::Base(BaseOp {
                    base: base.clone(),
                    platform,
                });
                self.add(&mut state, &name, op, span.clone());
                state
            }
            Start::Stage(p) => {
                if let Some(p_spec) = &spec.platform {
                    self.error(
                        p_spec.span(),
                        "a platform (FROM --platform, `platform`) only applies to a stage that starts from an image",
                        "not valid here",
                    );
                }
                let mut state = self.ends[*p].clone().unwrap_or_else(State::empty);
                state.args.clear();
                state
            }
            Start::Invalid => State::empty(),
        };
        // Stage `args`: globals brought into scope.
        for a in spec.args.iter().flatten() {
            match self.lookup_global(a.get()) {
                Some(v) => state.args.set(a.get(), v),
                None => {
                    let help =
                        match did_you_mean(a.get(), self.globals.iter().map(|(n, _)| n.as_str())) {
                            Some(m) => format!("did you mean `{m}`?"),
                            None => format!("declare it in [args]: {} = \"default\"", a.get()),
                        };
                    self.error_help(
                        a.span(),
                        format!("arg `{}` is not declared in [args]", a.get()),
                        "undeclared arg",
                        help,
                    );
                }
            }
        }
        for step in triggers.iter().chain(&spec.steps) {
            self.step(&name, &mut state, step);
        }
        self.stage_config(&name, &mut state, spec, decl.span.clone());
        let first = self.stage_first;
        if let Some(last) = state.last {
            self.graph.stages.push(Stage {
                name: name.clone(),
                first,
                last,
                span: Some(span_of(&decl.span)),
            });
        }
        self.ends[i] = Some(state);
    }

    /// Stage-level image config, in the documented order.
    fn stage_config(
        &mut self,
        name: &str,
        state: &mut State,
        spec: &StageSpec,
        name_span: Range<usize>,
    ) {
        let list_span = |v: &[Sp<String>]| v.first().map(|s| s.span()).unwrap_or(name_span.clone());
        if let Some(l) = &spec.labels {
            let op = self.labels(state, l);
            self.add(state, name, op, l.span());
        }
        if let Some(e) = &spec.expose {
            let op = self.expose(state, e);
            self.add(state, name, op, list_span(e));
        }
        if let Some(v) = &spec.volumes {
            let op = self.volumes(state, v);
            self.add(state, name, op, list_span(v));
        }
        if let Some(s) = &spec.stopsignal
            && let Some(op) = self.stopsignal(state, s)
        {
            self.add(state, name, op, s.span());
        }
        if let Some(h) = &spec.healthcheck
            && let Some(op) = self.healthcheck(h)
        {
            self.add(state, name, op, h.span());
        }
        if let Some(o) = &spec.onbuild {
            let op = self.onbuild(o);
            self.add(state, name, op, list_span(o));
        }
        if let Some(e) = &spec.entrypoint {
            let op = MetaOp::Entrypoint(command_argv(state, e.get()));
            self.add(state, name, Op::Meta(op), e.span());
        }
        if let Some(c) = &spec.cmd {
            let op = MetaOp::Cmd(command_argv(state, c.get()));
            self.add(state, name, Op::Meta(op), c.span());
        }
    }

    fn step(&mut self, stage: &str, state: &mut State, step: &Sp<StepSpec>) {
        let span = step.span();
        let s = step.get();
        // A step that only sets image config: no source stages.
        let meta = |op: MetaOp| Some((Op::Meta(op), Vec::new()));
        let op = if let Some(srcs) = &s.copy {
            self.copy(state, s, srcs, false, &span)
        } else if let Some(srcs) = &s.add {
            self.copy(state, s, srcs, true, &span)
        } else if let Some(run) = &s.run {
            self.run(state, s, run)
        } else if let Some(env) = &s.env {
            // Names are expanded too, as BuildKit expands ENV keys.
            let bad = |k: &str| {
                (k.is_empty() || k.contains('=')).then(|| format!("bad variable name `{k}`"))
            };
            let vars = self.pairs(state, env.get(), bad);
            for (k, v) in &vars {
                state.env.set(k, v.clone());
            }
            meta(MetaOp::Env(vars))
        } else if let Some(w) = &s.workdir {
            self.expand_in(state, w)
                .map(|w| (workdir_op(state, &w), Vec::new()))
        } else if let Some(m) = &s.maintainer {
            self.expand_in(state, m)
                .and_then(|m| meta(MetaOp::Maintainer(m)))
        } else if let Some(u) = &s.user {
            match self.expand_in(state, u) {
                Some(u) if u.is_empty() || u.starts_with(':') => {
                    self.error(
                        s.user.as_ref().map(|x| x.span()).unwrap_or(span.clone()),
                        "USER (`user`) needs a user name or id",
                        "empty user",
                    );
                    None
                }
                Some(u) => {
                    state.user = Some(u.clone());
                    meta(MetaOp::User(u))
                }
                None => None,
            }
        } else if let Some(sh) = &s.shell {
            if sh.get().is_empty() {
                self.error(sh.span(), "SHELL (`shell`) cannot be empty", "empty array");
                None
            } else {
                state.shell = sh.get().clone();
                meta(MetaOp::Shell(sh.get().clone()))
            }
        } else if let Some(a) = &s.arg {
            self.arg_step(state, a, s.default.as_deref())
        } else if let Some(c) = &s.cmd {
            meta(MetaOp::Cmd(command_argv(state, c.get())))
        } else if let Some(e) = &s.entrypoint {
            meta(MetaOp::Entrypoint(command_argv(state, e.get())))
        } else if let Some(l) = &s.label {
            Some((self.labels(state, l), Vec::new()))
        } else if let Some(e) = &s.expose {
            Some((self.expose(state, e.get()), Vec::new()))
        } else if let Some(v) = &s.volume {
            Some((self.volumes(state, v.get()), Vec::new()))
        } else if let Some(sig) = &s.stopsignal {
            self.stopsignal(state, sig).map(|op| (op, Vec::new()))
        } else if let Some(h) = &s.healthcheck {
            self.healthcheck(h).map(|op| (op, Vec::new()))
        } else {
            s.onbuild
                .as_ref()
                .map(|o| (self.onbuild(o.get()), Vec::new()))
        };
        if let Some((op, sources)) = op {
            let n = self.add(state, stage, op, span);
            for src in sources {
                self.graph.add_edge(src, n, Edge::Source);
            }
        }
    }

    fn stage_last(&self, i: usize) -> Option<NodeIndex> {
        self.ends
            .get(i)
            .and_then(|e| e.as_ref())
            .and_then(|e| e.last)
    }
}

/// A global arg, then a predefined platform arg.
pub(crate) fn lookup_in(
    globals: &[(String, Option<String>)],
    platform: &[(String, String)],
    name: &str,
) -> Option<Option<String>> {
    globals
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .or_else(|| {
            platform
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Some(v.clone()))
        })
}

fn expand_str(
    state: &State,
    globals: &[(String, Option<String>)],
    s: &str,
) -> Result<String, ExpandError> {
    let lookup = |n: &str| -> Option<Option<String>> {
        lookup(&state.env, &state.args, n)
            .or_else(|| globals.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    };
    expand(s, &lookup)
}

/// Shell form (string) wrapped with the current shell; exec form as is.
fn command_argv(state: &State, c: &StrOr<Vec<String>>) -> Vec<String> {
    match c {
        StrOr::Str(s) => {
            let mut v = state.shell.clone();
            v.push(s.clone());
            v
        }
        StrOr::Other(v) => v.clone(),
    }
}

//! Layers 2 and 3: nodes -> instructions -> the IR.
//!
//! The graph is the one the TOML frontend (`src/spec/lower.rs`) builds for
//! the same build: stages in dependency order (ties in file order), one
//! node per instruction (one per name for `ARG a b`), the same config
//! state (env, args in scope, user, workdir, shell) and the same
//! normalizations (image references, absolute paths, `port/proto`,
//! nanosecond durations, wrapped shell forms).
//!
//! Expansion follows BuildKit: instructions that take words (ENV, ARG,
//! LABEL, WORKDIR, USER, COPY/ADD, EXPOSE, VOLUME, STOPSIGNAL, FROM, flags)
//! are expanded with the shell lexer; RUN, CMD, ENTRYPOINT, SHELL,
//! HEALTHCHECK and ONBUILD are not. Stage names are lower-cased, as
//! BuildKit does; an unnamed stage is named by its index.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;

use petgraph::stable_graph::NodeIndex;

use super::directives::{self, Checks};
use super::parser::{self, Ast, Node};
use super::shell::{Env, Lex};
use crate::digest::Digest;
use crate::error::Diagnostics;
use crate::frontend::LowerOptions;
use crate::frontend::diag::{Sink, did_you_mean};
use crate::frontend::mount;
use crate::frontend::state::{self, order, span_of};
use crate::frontend::tags::cli_tags;
use crate::frontend::values::{
    is_arg_name, is_platform, is_signal, normalize_port, parse_chown, parse_duration,
    parse_flag_bool, parse_network, parse_octal, parse_retries, parse_size, resolve_dest,
    resolve_path,
};
use crate::frontend::vars::{self, Args, run_env};
use crate::ir::{
    AddOptions, BaseOp, BaseRef, BaseResolver, BuildGraph, Command, CopyFrom, CopyOp, Edge,
    Healthcheck, MetaOp, Mount, MountKind, Network, Op, RunOp, SourceFile, Stage, Target,
};
use crate::reference::Reference;

/// Every instruction keyword and the flags it accepts.
pub(crate) const INSTRUCTIONS: &[(&str, &[&str])] = &[
    ("from", &["platform"]),
    ("run", &["mount", "network", "security"]),
    ("cmd", &[]),
    ("entrypoint", &[]),
    ("label", &[]),
    ("maintainer", &[]),
    ("expose", &[]),
    ("env", &[]),
    (
        "add",
        &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "unpack",
            "exclude",
        ],
    ),
    (
        "copy",
        &["from", "chown", "chmod", "link", "parents", "exclude"],
    ),
    ("volume", &[]),
    ("user", &[]),
    ("workdir", &[]),
    ("arg", &[]),
    ("onbuild", &[]),
    ("stopsignal", &[]),
    (
        "healthcheck",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    ),
    ("shell", &[]),
];

/// `(name, value)` of the platform args BuildKit predefines, for this host.
pub(crate) fn predefined_args() -> Vec<(String, String)> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    let platform = format!("linux/{arch}");
    [
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A parsed `--name[=value]` flag.
#[derive(Clone, Debug)]
struct Flag {
    name: String,
    value: Option<String>,
    span: Range<usize>,
}

/// One stage of the file: its FROM and its instructions.
struct StageDecl<'a> {
    name: String,
    from: &'a Node,
    body: Vec<&'a Node>,
}

/// The config state a step sees; `onbuild` is the stage's own ONBUILD
/// triggers: a stage that starts from this one runs them first
/// (inherited triggers never carry over).
type State = state::State<Vec<Node>>;

/// Variables for expansion: env, then args in scope with a value.
fn vars(state: &State) -> Scope<'_> {
    Scope {
        env: &state.env,
        args: &state.args,
    }
}
/// What a word in a stage sees, borrowed from the stage's [`State`]: no
/// copy per instruction, so lowering stays linear in the file's length.
struct Scope<'s> {
    env: &'s vars::Env,
    args: &'s Args,
}

impl Env for Scope<'_> {
    fn get(&self, name: &str) -> Option<String> {
        vars::lookup(self.env, self.args, name).flatten()
    }
}

enum Start {
    Base(BaseRef, Option<String>),
    Stage(usize),
    Invalid,
}

struct Lowerer<'a> {
    file: &'a SourceFile,
    opts: &'a LowerOptions,
    resolver: &'a dyn BaseResolver,
    lex: Lex,
    diags: Sink<'a>,
    graph: BuildGraph,
    stages: Vec<StageDecl<'a>>,
    /// Global args (before the first FROM) after `--build-arg`.
    globals: Vec<(String, Option<String>)>,
    declared: BTreeSet<String>,
    ends: Vec<Option<State>>,
    stage_first: Option<NodeIndex>,
    /// The `# check=` directive, and where it is (`0..0` when absent).
    checks: Checks,
    checks_span: Range<usize>,
    /// Check rules that reported a warning.
    checks_hit: Vec<&'static str>,
}

pub fn lower(
    file: &SourceFile,
    ast: &Ast,
    opts: &LowerOptions,
    resolver: &dyn BaseResolver,
) -> Result<BuildGraph, Diagnostics> {
    let mut graph = BuildGraph::default();
    graph.sources.push(file.clone());
    let mut l = Lowerer {
        file,
        opts,
        resolver,
        lex: Lex::new(ast.escape),
        diags: Sink::new(file),
        graph,
        stages: Vec::new(),
        globals: Vec::new(),
        declared: BTreeSet::new(),
        ends: Vec::new(),
        stage_first: None,
        checks: Checks::default(),
        checks_span: 0..0,
        checks_hit: Vec::new(),
    };
    l.directives();
    for w in &ast.warnings {
        l.check_warning("NoEmptyContinuation", &w.0, &w.1);
    }
    l.split(ast);
    l.ends = vec![None; l.stages.len()];
    let starts: Vec<Start> = (0..l.stages.len()).map(|i| l.start(i)).collect();
    let deps: Vec<Vec<usize>> = (0..l.stages.len()).map(|i| l.deps(i, &starts[i])).collect();
    // Stages on a cycle are reported and left out.
    for i in order(&deps, &[]).0 {
        l.stage(i, &starts[i]);
    }
    l.targets();
    if l.checks.error && !l.checks_hit.is_empty() {
        let span = l.checks_span.clone();
        let mut rules = l.checks_hit.clone();
        rules.sort_unstable();
        rules.dedup();
        l.diags.error(
            span,
            format!("check warnings fail the build: {}", rules.join(", ")),
            "error=true",
        );
    }
    for k in opts.build_args.keys() {
        if !l.declared.contains(k) {
            l.graph
                .warnings
                .push(format!("build arg {k} was not consumed by any stage"));
        }
    }
    l.diags.into_result(l.graph)
}

impl<'a> Lowerer<'a> {
    /// What the `syntax` and `check` directives change: a frontend other
    /// than the Dockerfile one is not run (a warning says so); `check`
    /// skips check warnings or makes them fail the build.
    fn directives(&mut self) {
        let text = &self.file.text;
        if let Some(f) = directives::detect_syntax(text)
            && !directives::is_default_frontend(&f.value)
        {
            let at = self.location(&f.span);
            self.graph.warnings.push(format!(
                "{at}: the syntax directive names the frontend `{}`, which strata does not run: \
                 it reads the file with its own Dockerfile frontend",
                f.value
            ));
        }
        if let Some(f) = directives::find(text, "check", false) {
            self.checks_span = f.span.clone();
            match Checks::parse(&f.cmdline) {
                Ok(c) => self.checks = c,
                Err(e) => {
                    let at = self.location(&f.span);
                    self.graph
                        .warnings
                        .push(format!("{at}: check directive ignored: {e}"));
                }
            }
        }
    }

    /// A warning of a BuildKit build check, unless `# check=` skips it.
    fn check_warning(&mut self, rule: &'static str, span: &Range<usize>, message: &str) {
        if !self.checks.enabled(rule) {
            return;
        }
        let at = self.location(span);
        self.graph.warnings.push(format!("{at}: {rule}: {message}"));
        self.checks_hit.push(rule);
    }

    fn location(&self, span: &Range<usize>) -> String {
        let before = self.file.text.get(..span.start).unwrap_or("");
        format!("{}:{}", self.file.name, before.matches('\n').count() + 1)
    }

    /// Splits the file into global ARGs and stages; checks keywords and flags.
    fn split(&mut self, ast: &'a Ast) {
        let mut seen_from = false;
        for n in &ast.children {
            if !self.check_keyword(n) {
                continue;
            }
            if n.keyword == "from" {
                seen_from = true;
                let name = match (n.args.get(1), n.args.get(2)) {
                    (Some(kw), Some(name))
                        if kw.eq_ignore_ascii_case("as") && n.args.len() == 3 =>
                    {
                        name.to_lowercase()
                    }
                    _ => self.stages.len().to_string(),
                };
                if n.args.is_empty() || (n.args.len() != 1 && n.args.len() != 3) {
                    self.diags.error_help(
                        n.first_line(&self.file.text),
                        "FROM takes an image and an optional `AS name`",
                        "malformed FROM",
                        "e.g. `FROM alpine:3 AS build`",
                    );
                } else if n.args.len() == 3 && !n.args[1].eq_ignore_ascii_case("as") {
                    self.diags.error(
                        n.locate(&self.file.text, &n.args[1]),
                        format!("expected `AS`, found `{}`", n.args[1]),
                        "here",
                    );
                }
                if self.stages.iter().any(|s| s.name == name) {
                    self.diags.error(
                        n.locate(&self.file.text, n.args.get(2).map_or("", |s| s.as_str())),
                        format!("duplicate stage name `{name}`"),
                        "defined before",
                    );
                }
                self.stages.push(StageDecl {
                    name,
                    from: n,
                    body: Vec::new(),
                });
            } else if let Some(stage) = self.stages.last_mut() {
                stage.body.push(n);
            } else if n.keyword == "arg" {
                self.global_arg(n);
            } else {
                self.diags.error_help(
                    n.first_line(&self.file.text),
                    format!("{} before the first FROM", n.keyword.to_uppercase()),
                    "no stage yet",
                    "only ARG may come before the first FROM",
                );
            }
        }
        if !seen_from {
            self.diags.error_help(
                0..0,
                "no FROM instruction",
                "in this file",
                "a Dockerfile starts a stage with `FROM image` (or `FROM scratch`)",
            );
        }
    }

    /// Unknown keywords and bad flags; false when the node cannot be used.
    fn check_keyword(&mut self, n: &Node) -> bool {
        let text = &self.file.text;
        let Some((_, allowed)) = INSTRUCTIONS.iter().find(|(k, _)| *k == n.keyword) else {
            let names: Vec<&str> = INSTRUCTIONS.iter().map(|(k, _)| *k).collect();
            let help = match did_you_mean(&n.keyword, names.iter().copied()) {
                Some(m) => format!("did you mean {}?", m.to_uppercase()),
                None => "instructions are FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER".into(),
            };
            let kw_len = n.original.split_whitespace().next().map_or(0, str::len);
            self.diags.error_help(
                n.span.start..n.span.start + kw_len,
                format!("unknown instruction `{}`", n.keyword.to_uppercase()),
                "unknown instruction",
                help,
            );
            return false;
        };
        let mut ok = true;
        for f in &n.flags {
            let name = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
            let name = name.trim_start_matches('-');
            if !allowed.contains(&name) {
                let help = if allowed.is_empty() {
                    format!("{} takes no flags", n.keyword.to_uppercase())
                } else {
                    format!(
                        "flags of {}: {}",
                        n.keyword.to_uppercase(),
                        allowed
                            .iter()
                            .map(|a| format!("--{a}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                self.diags.error_help(
                    n.locate(text, &format!("--{name}")),
                    format!("unknown flag `--{name}` for {}", n.keyword.to_uppercase()),
                    "unknown flag",
                    help,
                );
                ok = false;
            }
        }
        if n.keyword == "onbuild" {
            match &n.sub {
                None => {
                    self.diags.error(
                        n.first_line(text),
                        "ONBUILD needs an instruction",
                        "empty ONBUILD",
                    );
                    ok = false;
                }
                Some(sub) if matches!(sub.keyword.as_str(), "onbuild" | "from" | "maintainer") => {
                    self.diags.error(
                        n.first_line(text),
                        format!(
                            "{} is not allowed as an ONBUILD trigger",
                            sub.keyword.to_uppercase()
                        ),
                        "here",
                    );
                    ok = false;
                }
                Some(sub) => ok &= self.check_keyword(sub),
            }
        }
        ok
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
                    span: n.locate(&self.file.text, &format!("--{name}")),
                    name,
                    value,
                }
            })
            .collect()
    }

    fn global_arg(&mut self, n: &Node) {
        for w in &n.args {
            let vars: Vec<(String, String)> = self
                .globals
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            let Some((name, default)) = self.arg_word(n, w, &vars) else {
                continue;
            };
            let value = self.opts.build_args.get(&name).cloned().or(default);
            if let Some(v) = &value {
                self.graph.args.insert(name.clone(), v.clone());
            }
            self.declared.insert(name.clone());
            match self.globals.iter_mut().find(|(k, _)| *k == name) {
                Some(slot) => slot.1 = value,
                None => self.globals.push((name, value)),
            }
        }
    }

    /// `NAME[=default]`, default expanded.
    fn arg_word(&mut self, n: &Node, w: &str, vars: &dyn Env) -> Option<(String, Option<String>)> {
        let (name, default) = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v)),
            None => (w.to_string(), None),
        };
        if !is_arg_name(&name) {
            self.diags.error_help(
                n.locate(&self.file.text, &name),
                format!("bad arg name `{name}`"),
                "not a valid name",
                "arg names are letters, digits and `_`, not starting with a digit",
            );
            return None;
        }
        let default = match default {
            Some(d) => Some(self.expand(n, d, vars)?),
            None => None,
        };
        Some((name, default))
    }

    /// Global args with a value, then predefined platform args.
    fn global_vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .globals
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for (k, p) in predefined_args() {
            if !v.iter().any(|(e, _)| *e == k) && !self.globals.iter().any(|(e, _)| *e == k) {
                v.push((k, p));
            }
        }
        v
    }

    fn expand(&mut self, n: &Node, word: &str, vars: &dyn Env) -> Option<String> {
        match self.lex.word(word, vars) {
            Ok(v) => Some(v),
            Err(e) => {
                self.diags
                    .error(n.locate(&self.file.text, word), e, "in this word");
                None
            }
        }
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages.iter().position(|s| s.name == lower)
    }

    fn start(&mut self, i: usize) -> Start {
        let n = self.stages[i].from;
        let Some(image) = n.args.first() else {
            return Start::Invalid;
        };
        let globals = self.global_vars();
        let Some(name) = self.expand(n, image, &globals) else {
            return Start::Invalid;
        };
        let mut platform = None;
        for f in self.flags(n) {
            if f.name == "platform" {
                let v = f.value.clone().unwrap_or_default();
                match self.expand(n, &v, &globals) {
                    Some(p) if is_platform(&p) => platform = Some(p),
                    Some(p) => self.diags.error_help(
                        f.span,
                        format!("bad platform `{p}`"),
                        "expected os/arch[/variant]",
                        "e.g. linux/amd64 or linux/arm64/v8",
                    ),
                    None => {}
                }
            }
        }
        let at = n.locate(&self.file.text, image);
        if name.is_empty() {
            self.diags.error(
                at,
                "FROM needs an image (the expression is empty)",
                "empty image",
            );
            return Start::Invalid;
        }
        if name.eq_ignore_ascii_case("scratch") {
            return Start::Base(BaseRef::Scratch, platform);
        }
        if let Some(s) = self.stage_index(&name) {
            if s >= i {
                self.diags.error(
                    at,
                    format!("stage `{name}` is not defined before this FROM"),
                    "not an earlier stage",
                );
                return Start::Invalid;
            }
            if platform.is_some() {
                self.diags.error(
                    at,
                    "--platform only applies to a stage that starts from an image",
                    "a stage",
                );
            }
            return Start::Stage(s);
        }
        if let Some(rest) = name.strip_prefix("oci-layout://") {
            let (path, reference) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            return Start::Base(
                BaseRef::OciLayout {
                    path: PathBuf::from(path),
                    reference,
                },
                platform,
            );
        }
        match Reference::parse(&name) {
            Ok(r) => Start::Base(
                BaseRef::Image {
                    reference: r.normalized(),
                },
                platform,
            ),
            Err(e) => {
                self.diags.error_help(
                    at,
                    format!("bad image reference `{name}`: {e}"),
                    "not a stage or an image",
                    "FROM takes `scratch`, an earlier stage or an image reference like busybox:1",
                );
                Start::Invalid
            }
        }
    }

    /// The stage a `--from` names: a stage name, a stage index, or `None`
    /// for an image reference.
    fn stage_of_from(&self, v: &str) -> Option<usize> {
        if let Some(i) = self.stage_index(v) {
            return Some(i);
        }
        v.parse::<usize>().ok().filter(|&i| i < self.stages.len())
    }

    fn deps(&mut self, i: usize, start: &Start) -> Vec<usize> {
        let mut v = Vec::new();
        if let Start::Stage(s) = start {
            v.push(*s);
        }
        let globals = self.global_vars();
        let mut body: Vec<&Node> = self.stages[i].body.clone();
        // The base stage's ONBUILD triggers run in this stage.
        if let Start::Stage(s) = start {
            body.extend(
                self.stages[*s]
                    .body
                    .iter()
                    .filter_map(|n| n.sub.as_deref().filter(|_| n.keyword == "onbuild")),
            );
        }
        for n in body {
            for f in self.flags(n) {
                let value = match (n.keyword.as_str(), f.name.as_str()) {
                    ("copy", "from") => f.value.clone(),
                    ("run", "mount") => f.value.as_deref().and_then(|m| {
                        mount::fields(m)
                            .into_iter()
                            .find_map(|f| f.value.filter(|_| f.key == "from"))
                    }),
                    _ => None,
                };
                if let Some(value) = value
                    && let Ok(name) = self.lex.word(&value, &globals as &dyn Env)
                    && let Some(s) = self.stage_of_from(&name)
                {
                    if s == i {
                        self.diags.error(
                            f.span.clone(),
                            format!("stage `{name}` reads itself"),
                            "dependency cycle",
                        );
                    } else if s > i {
                        self.diags.error_help(
                            f.span.clone(),
                            format!("stage `{name}` is defined after this instruction"),
                            "a later stage",
                            "a stage can only use stages defined before it",
                        );
                    }
                    v.push(s);
                }
            }
        }
        v
    }

    fn add(&mut self, state: &mut State, stage: &str, op: Op, span: &Range<usize>) -> NodeIndex {
        let n = state.add(&mut self.graph, stage, op, span);
        self.stage_first.get_or_insert(n);
        n
    }

    /// The ONBUILD triggers of a base image, parsed as instructions; their
    /// diagnostics point at the stage's FROM.
    fn image_triggers(&mut self, onbuild: &[String], from: &Node) -> Vec<Node> {
        let mut out = Vec::new();
        for t in onbuild {
            match parser::parse(t) {
                Ok(ast) => {
                    for mut n in ast.children {
                        n.span = from.span.clone();
                        if self.check_keyword(&n) {
                            out.push(n);
                        }
                    }
                }
                Err(e) => self.diags.error(
                    from.first_line(&self.file.text),
                    format!("ONBUILD trigger `{t}` of the base image: {}", e.message),
                    "base image",
                ),
            }
        }
        out
    }

    fn stage(&mut self, i: usize, start: &Start) {
        let name = self.stages[i].name.clone();
        let from = self.stages[i].from;
        self.stage_first = None;
        let mut triggers: Vec<Node> = Vec::new();
        let mut state = match start {
            Start::Base(base, platform) => {
                let info = match self.resolver.resolve(base) {
                    Ok(info) => info,
                    Err(msg) => {
                        self.diags
                            .error(from.first_line(&self.file.text), msg, "base image");
                        Default::default()
                    }
                };
                triggers = self.image_triggers(&info.onbuild, from);
                let mut state = State::from_base(info);
                let op = Op::Base(BaseOp {
                    base: base.clone(),
                    platform: platform.clone(),
                });
                self.add(&mut state, &name, op, &from.span);
                state
            }
            Start::Stage(p) => {
                let mut state = self.ends[*p].clone().unwrap_or_else(State::empty);
                state.args.clear();
                triggers = std::mem::take(&mut state.onbuild);
                state
            }
            Start::Invalid => State::empty(),
        };
        // The base's ONBUILD triggers run first, as BuildKit does; the
        // image assembly drops the base's OnBuild from the child's config.
        for t in &triggers {
            self.instruction(&name, &mut state, t);
        }
        let body = self.stages[i].body.clone();
        for n in body {
            self.instruction(&name, &mut state, n);
        }
        if let Some(last) = state.last {
            self.graph.stages.push(Stage {
                name: name.clone(),
                first: self.stage_first,
                last,
                span: Some(span_of(&from.span)),
            });
        }
        self.ends[i] = Some(state);
    }

    fn instruction(&mut self, stage: &str, state: &mut State, n: &Node) {
        let vars = vars(state);
        let text = &self.file.text;
        let op: Option<(Op, Vec<NodeIndex>)> = match n.keyword.as_str() {
            "arg" => {
                for w in &n.args {
                    if let Some(op) = self.stage_arg(state, n, w) {
                        self.add(state, stage, op, &n.span);
                    }
                }
                None
            }
            "env" => {
                let mut out = Vec::new();
                for t in n.args.chunks(3) {
                    let (Some(k), Some(v)) = (t.first(), t.get(1)) else {
                        continue;
                    };
                    let k = self.expand(n, k, &vars);
                    let v = self.expand(n, v, &vars);
                    if let (Some(k), Some(v)) = (k, v) {
                        if k.is_empty() {
                            self.diags.error(
                                n.first_line(text),
                                "ENV names cannot be empty",
                                "here",
                            );
                            continue;
                        }
                        out.push((k, v));
                    }
                }
                if n.args.is_empty() {
                    self.diags.error(
                        n.first_line(text),
                        "ENV needs at least one NAME=value",
                        "empty",
                    );
                    None
                } else {
                    for (k, v) in &out {
                        state.env.set(k, v.clone());
                    }
                    Some((Op::Meta(MetaOp::Env(out)), Vec::new()))
                }
            }
            "label" => {
                let mut out = Vec::new();
                for t in n.args.chunks(3) {
                    let (Some(k), Some(v)) = (t.first(), t.get(1)) else {
                        continue;
                    };
                    if let (Some(k), Some(v)) = (self.expand(n, k, &vars), self.expand(n, v, &vars))
                    {
                        if k.is_empty() {
                            self.diags
                                .error(n.first_line(text), "empty label name", "here");
                            continue;
                        }
                        out.push((k, v));
                    }
                }
                if n.args.is_empty() {
                    self.diags.error(
                        n.first_line(text),
                        "LABEL needs at least one key=value",
                        "empty",
                    );
                    None
                } else {
                    Some((Op::Meta(MetaOp::Label(out)), Vec::new()))
                }
            }
            "maintainer" => {
                self.check_warning(
                    "MaintainerDeprecated",
                    &n.span,
                    "MAINTAINER is deprecated; it becomes the label `maintainer`",
                );
                let v = n.args.first().cloned().unwrap_or_default();
                Some((
                    Op::Meta(MetaOp::Label(vec![("maintainer".into(), v)])),
                    Vec::new(),
                ))
            }
            "workdir" => match n.args.first() {
                None => {
                    self.diags
                        .error(n.first_line(text), "WORKDIR needs a path", "empty");
                    None
                }
                Some(w) => self.expand(n, w, &vars).map(|w| {
                    state.workdir = resolve_path(&state.workdir, &w);
                    (Op::Meta(MetaOp::Workdir(state.workdir.clone())), Vec::new())
                }),
            },
            "user" => match n.args.first().and_then(|u| self.expand(n, u, &vars)) {
                Some(u) if !u.is_empty() && !u.starts_with(':') => {
                    state.user = Some(u.clone());
                    Some((Op::Meta(MetaOp::User(u)), Vec::new()))
                }
                Some(_) | None if n.args.is_empty() || self.errors_at(n) => {
                    if n.args.is_empty() {
                        self.diags.error(
                            n.first_line(text),
                            "USER needs a user name or id",
                            "empty",
                        );
                    }
                    None
                }
                _ => {
                    self.diags.error(
                        n.first_line(text),
                        "USER needs a user name or id",
                        "empty user",
                    );
                    None
                }
            },
            "shell" => {
                if !n.json || n.args.is_empty() {
                    self.diags.error_help(
                        n.first_line(text),
                        "SHELL needs a non-empty JSON array",
                        "not a JSON array",
                        "e.g. SHELL [\"/bin/bash\", \"-c\"]",
                    );
                    None
                } else {
                    state.shell = n.args.clone();
                    Some((Op::Meta(MetaOp::Shell(n.args.clone())), Vec::new()))
                }
            }
            "cmd" | "entrypoint" => {
                let argv = if n.json {
                    n.args.clone()
                } else {
                    let mut v = state.shell.clone();
                    v.extend(n.args.first().cloned());
                    v
                };
                let op = if n.keyword == "cmd" {
                    MetaOp::Cmd(argv)
                } else {
                    MetaOp::Entrypoint(argv)
                };
                Some((Op::Meta(op), Vec::new()))
            }
            "expose" => {
                let mut out = Vec::new();
                for p in &n.args {
                    let Some(v) = self.expand(n, p, &vars) else {
                        continue;
                    };
                    match normalize_port(&v) {
                        Some(p) => out.push(p),
                        None => self.diags.error_help(
                            n.locate(text, p),
                            format!("bad expose `{v}`"),
                            "expected port[/protocol]",
                            "write a port 1-65535 or a range, optionally with /tcp, /udp or /sctp",
                        ),
                    }
                }
                Some((Op::Meta(MetaOp::Expose(out)), Vec::new()))
            }
            "volume" => {
                let mut out = Vec::new();
                for p in &n.args {
                    let Some(v) = self.expand(n, p, &vars) else {
                        continue;
                    };
                    if v.starts_with('/') {
                        out.push(v);
                    } else {
                        self.diags.error_help(
                            n.locate(text, p),
                            format!("relative volume path `{v}`"),
                            "not absolute",
                            "volume paths are absolute, e.g. /data",
                        );
                    }
                }
                Some((Op::Meta(MetaOp::Volume(out)), Vec::new()))
            }
            "stopsignal" => match n.args.first().and_then(|s| self.expand(n, s, &vars)) {
                Some(s) if is_signal(&s) => Some((Op::Meta(MetaOp::StopSignal(s)), Vec::new())),
                Some(s) => {
                    self.diags.error_help(
                        n.first_line(text),
                        format!("bad stop signal `{s}`"),
                        "not a signal",
                        "write a signal name or number, e.g. SIGTERM or 15",
                    );
                    None
                }
                None => {
                    if n.args.is_empty() {
                        self.diags
                            .error(n.first_line(text), "STOPSIGNAL needs a signal", "empty");
                    }
                    None
                }
            },
            "healthcheck" => self.healthcheck(n).map(|op| (op, Vec::new())),
            "onbuild" => {
                let trigger = n
                    .sub
                    .as_ref()
                    .map(|s| s.original.trim().to_string())
                    .unwrap_or_default();
                state.onbuild.extend(n.sub.as_deref().cloned());
                Some((Op::Meta(MetaOp::OnBuild(vec![trigger])), Vec::new()))
            }
            "run" => self.run(state, n),
            "copy" | "add" => self.copy(state, n),
            _ => None,
        };
        if let Some((op, sources)) = op {
            let idx = self.add(state, stage, op, &n.span);
            for s in sources {
                self.graph.add_edge(s, idx, Edge::Source);
            }
        }
    }

    /// Did expanding this node already report an error?
    fn errors_at(&self, n: &Node) -> bool {
        self.diags
            .errors
            .iter()
            .any(|e| n.span.contains(&e.span.offset()))
    }

    fn stage_arg(&mut self, state: &mut State, n: &Node, w: &str) -> Option<Op> {
        let vars = vars(state);
        let (name, default) = self.arg_word(n, w, &vars)?;
        let global = self
            .globals
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                predefined_args()
                    .into_iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| Some(v))
            })
            .flatten();
        let value = self
            .opts
            .build_args
            .get(&name)
            .cloned()
            .or(default)
            .or(global);
        self.declared.insert(name.clone());
        if let Some(v) = &value {
            self.graph
                .args
                .entry(name.clone())
                .or_insert_with(|| v.clone());
        }
        state.args.set(&name, value.clone());
        Some(Op::Meta(MetaOp::Arg(vec![(name, value)])))
    }

    fn healthcheck(&mut self, n: &Node) -> Option<Op> {
        let text = &self.file.text;
        let Some(kind) = n.args.first() else {
            self.diags
                .error(n.first_line(text), "HEALTHCHECK needs CMD or NONE", "empty");
            return None;
        };
        let test = match kind.to_uppercase().as_str() {
            "NONE" => {
                if n.args.len() > 1 {
                    self.diags.error(
                        n.first_line(text),
                        "HEALTHCHECK NONE takes no arguments",
                        "here",
                    );
                    return None;
                }
                vec!["NONE".to_string()]
            }
            "CMD" => {
                let rest = &n.args[1..];
                if rest.is_empty() || rest[0].is_empty() {
                    self.diags.error(
                        n.first_line(text),
                        "HEALTHCHECK CMD needs a command",
                        "empty",
                    );
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
                self.diags.error_help(
                    n.locate(text, kind),
                    format!("unknown HEALTHCHECK type `{other}`"),
                    "here",
                    "HEALTHCHECK takes CMD or NONE",
                );
                return None;
            }
        };
        let mut h = Healthcheck {
            test,
            ..Default::default()
        };
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            if f.name == "retries" {
                match parse_retries(&v) {
                    Some(r) => h.retries = Some(r),
                    None => self
                        .diags
                        .error(f.span, format!("bad retries `{v}`"), "not a number"),
                }
                continue;
            }
            let Some(d) = parse_duration(&v) else {
                self.diags.error_help(
                    f.span,
                    format!("bad duration `{v}`"),
                    "not a duration",
                    "write a duration like 30s, 1m30s or 500ms (units h, m, s, ms, us, ns)",
                );
                continue;
            };
            match f.name.as_str() {
                "interval" => h.interval = Some(d),
                "timeout" => h.timeout = Some(d),
                "start-period" => h.start_period = Some(d),
                _ => h.start_interval = Some(d),
            }
        }
        Some(Op::Meta(MetaOp::Healthcheck(h)))
    }

    fn run(&mut self, state: &State, n: &Node) -> Option<(Op, Vec<NodeIndex>)> {
        let text = &self.file.text;
        let command = if n.json {
            if n.args.is_empty() || n.args[0].is_empty() {
                self.diags
                    .error(n.first_line(text), "empty RUN command", "nothing to run");
                return None;
            }
            Command::Exec(n.args.clone())
        } else {
            let Some(script) = n.args.first().filter(|s| !s.trim().is_empty()) else {
                self.diags
                    .error(n.first_line(text), "empty RUN command", "nothing to run");
                return None;
            };
            Command::Shell {
                shell: state.shell.clone(),
                script: heredoc_script(script, &n.heredocs),
            }
        };
        let vars = vars(state);
        let mut network = Network::Default;
        let mut mounts = Vec::new();
        let mut edges = Vec::new();
        let mut ok = true;
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            match f.name.as_str() {
                "network" => match self.expand(n, &v, &vars).map(|m| (parse_network(&m), m)) {
                    Some((Some(mode), _)) => network = mode,
                    Some((None, other)) => {
                        self.diags.error_help(
                            f.span,
                            format!("unknown network mode `{other}`"),
                            "unknown mode",
                            "--network is default, none or host",
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "mount" => match self.mount(state, n, &f, &vars) {
                    Some((m, e)) => {
                        mounts.push(m);
                        edges.extend(e);
                    }
                    None => ok = false,
                },
                _ => {
                    self.diags.error(
                        f.span,
                        format!("RUN --{} is not supported", f.name),
                        "unsupported flag",
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        Some((
            Op::Run(RunOp {
                command,
                env: run_env(&state.env, &state.args),
                user: state.user.clone(),
                workdir: state.workdir.clone(),
                network,
                mounts,
            }),
            edges,
        ))
    }

    fn mount(
        &mut self,
        state: &State,
        n: &Node,
        f: &Flag,
        vars: &dyn Env,
    ) -> Option<(Mount, Option<NodeIndex>)> {
        let raw = f.value.clone().unwrap_or_default();
        let mut kind = MountKind::Bind;
        let mut kv: Vec<(String, Option<String>)> = Vec::new();
        for field in mount::fields(&raw) {
            if field.key == "type" {
                kind = match field.value.as_deref().and_then(mount::parse_kind) {
                    Some(k) => k,
                    None => {
                        self.diags.error_help(
                            f.span.clone(),
                            format!(
                                "unknown mount type `{}`",
                                field.value.as_deref().unwrap_or("")
                            ),
                            "in this mount",
                            "type is bind, cache, tmpfs, secret or ssh",
                        );
                        return None;
                    }
                };
            } else {
                kv.push((field.key, field.value));
            }
        }
        let kind_name = mount::kind_name(kind);
        let allowed = mount::options(kind);
        let mut m = Mount {
            kind,
            target: String::new(),
            source: None,
            from: None,
            id: None,
            sharing: None,
            // BuildKit: bind mounts are read-only unless `rw`.
            readonly: kind == MountKind::Bind,
            required: false,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
        };
        let mut target = None;
        let mut edge = None;
        let mut ok = true;
        for (k, v) in kv {
            let key = mount::canonical_key(&k);
            let known = key == "target"
                || (key == "rw" && allowed.contains(&"readonly"))
                || allowed.contains(&key);
            if !known {
                self.diags.error_help(
                    f.span.clone(),
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
            let val = match &v {
                Some(v) => match self.expand(n, v, vars) {
                    Some(x) => Some(x),
                    None => {
                        ok = false;
                        continue;
                    }
                },
                None => None,
            };
            let boolean = |v: &Option<String>| mount::parse_bool(v.as_deref());
            let mut bad = |this: &mut Self, what: &str| {
                this.diags.error(
                    f.span.clone(),
                    format!(
                        "bad {k} `{}` in mount: {what}",
                        val.clone().unwrap_or_default()
                    ),
                    "in this mount",
                );
                ok = false;
            };
            match key {
                "target" => target = val,
                "source" => m.source = val,
                "id" => m.id = val,
                "env" => m.env = val,
                "readonly" | "rw" => match boolean(&val) {
                    Some(b) => m.readonly = if key == "rw" { !b } else { b },
                    None => bad(self, "expected true or false"),
                },
                "required" => match boolean(&val) {
                    Some(b) => m.required = b,
                    None => bad(self, "expected true or false"),
                },
                "sharing" => match val.as_deref().and_then(mount::parse_sharing) {
                    Some(x) => m.sharing = Some(x),
                    None => bad(self, "expected shared, private or locked"),
                },
                "mode" => match val.as_deref().and_then(parse_octal) {
                    Some(x) => m.mode = Some(x),
                    None => bad(self, "not an octal mode"),
                },
                "uid" | "gid" => match val.as_deref().and_then(|x| x.parse::<u32>().ok()) {
                    Some(x) if key == "uid" => m.uid = Some(x),
                    Some(x) => m.gid = Some(x),
                    None => bad(self, "not a number"),
                },
                "size" => match val.as_deref().and_then(parse_size) {
                    Some(x) => m.size = Some(x),
                    None => bad(self, "not a size"),
                },
                "from" => {
                    let name = val.clone().unwrap_or_default();
                    match self.stage_of_from(&name) {
                        Some(i) => {
                            edge = self
                                .ends
                                .get(i)
                                .and_then(|e| e.as_ref())
                                .and_then(|e| e.last);
                            if edge.is_none() {
                                ok = false;
                            }
                            m.from = Some(self.stages[i].name.clone());
                        }
                        None => {
                            self.diags.error_help(
                                f.span.clone(),
                                format!("unknown stage `{name}` in mount from"),
                                "in this mount",
                                "mounting an image is not supported; name a stage of this file",
                            );
                            ok = false;
                        }
                    }
                }
                _ => {}
            }
        }
        m.target = match target {
            Some(t) => resolve_path(&state.workdir, &t),
            None => match kind {
                MountKind::Secret => format!("/run/secrets/{}", m.id.clone().unwrap_or_default()),
                MountKind::Ssh => "/run/buildkit/ssh_agent.0".to_string(),
                _ => {
                    self.diags.error(
                        f.span.clone(),
                        format!("a {kind_name} mount needs a target"),
                        "missing target",
                    );
                    return None;
                }
            },
        };
        ok.then_some((m, edge))
    }

    fn copy(&mut self, state: &State, n: &Node) -> Option<(Op, Vec<NodeIndex>)> {
        let text = &self.file.text;
        let add = n.keyword == "add";
        let verb = n.keyword.to_uppercase();
        if !n.heredocs.is_empty() {
            self.diags.error(
                n.first_line(text),
                format!("{verb} with a heredoc source is not supported yet"),
                "heredoc",
            );
            return None;
        }
        if n.args.len() < 2 {
            self.diags.error_help(
                n.first_line(text),
                format!("{verb} needs at least one source and a destination"),
                "missing arguments",
                format!("e.g. {verb} src/ /app/"),
            );
            return None;
        }
        let vars = vars(state);
        let mut ok = true;
        let mut sources = Vec::new();
        let (srcs, dest) = n.args.split_at(n.args.len() - 1);
        for s in srcs {
            match self.expand(n, s, &vars) {
                Some(v) if v.is_empty() => {
                    self.diags
                        .error(n.locate(text, s), "empty source path", "empty");
                    ok = false;
                }
                Some(v) => sources.push(v),
                None => ok = false,
            }
        }
        let dest = match self.expand(n, &dest[0], &vars) {
            Some(d) if d.is_empty() => {
                self.diags
                    .error(n.locate(text, &dest[0]), "empty destination", "empty");
                None
            }
            Some(d) => Some(resolve_dest(&state.workdir, &d)),
            None => None,
        };
        let mut from = CopyFrom::Context;
        let mut edges = Vec::new();
        let mut chown = None;
        let mut chmod = None;
        let mut link = false;
        let mut parents = false;
        let mut exclude = Vec::new();
        let mut opts = AddOptions {
            checksum: None,
            keep_git_dir: false,
            unpack: true,
        };
        let globals = self.global_vars();
        for f in self.flags(n) {
            let v = f.value.clone();
            let bool_flag = |v: &Option<String>| parse_flag_bool(v.as_deref());
            match f.name.as_str() {
                "from" => {
                    let Some(name) = self.expand(n, &v.unwrap_or_default(), &globals) else {
                        ok = false;
                        continue;
                    };
                    if let Some(i) = self.stage_of_from(&name) {
                        match self
                            .ends
                            .get(i)
                            .and_then(|e| e.as_ref())
                            .and_then(|e| e.last)
                        {
                            Some(last) => edges.push(last),
                            None => ok = false,
                        }
                        from = CopyFrom::Stage(self.stages[i].name.clone());
                    } else {
                        match Reference::parse(&name) {
                            Ok(r) => from = CopyFrom::Image(r.normalized()),
                            Err(e) => {
                                let names = self.stages.iter().map(|s| s.name.as_str());
                                let help = match did_you_mean(&name, names) {
                                    Some(m) => format!("did you mean stage `{m}`?"),
                                    None => format!(
                                        "`{name}` is not a stage of this file, and not an image reference: {e}"
                                    ),
                                };
                                self.diags.error_help(
                                    f.span,
                                    format!("unknown stage `{name}`"),
                                    "no stage of this name",
                                    help,
                                );
                                ok = false;
                            }
                        }
                    }
                }
                "chown" => match self.expand(n, &v.unwrap_or_default(), &vars) {
                    Some(c) => match parse_chown(&c) {
                        Some(ch) => chown = Some(ch),
                        None => {
                            self.diags.error_help(
                                f.span,
                                format!("bad chown `{c}`"),
                                "expected user[:group]",
                                "e.g. --chown=1000:1000",
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "chmod" => match self.expand(n, &v.unwrap_or_default(), &vars) {
                    Some(c) => match parse_octal(&c) {
                        Some(m) => chmod = Some(m),
                        None => {
                            self.diags.error_help(
                                f.span,
                                format!("bad chmod `{c}`"),
                                "not an octal mode",
                                "e.g. --chmod=0755",
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "exclude" => match self.expand(n, &v.unwrap_or_default(), &vars) {
                    Some(e) => exclude.push(e),
                    None => ok = false,
                },
                "checksum" => match self.expand(n, &v.unwrap_or_default(), &vars) {
                    Some(c) if c.parse::<Digest>().is_ok() => opts.checksum = Some(c),
                    Some(c) => {
                        self.diags.error(
                            f.span,
                            format!("bad checksum `{c}`"),
                            "expected sha256:<64 hex digits>",
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                name @ ("link" | "parents" | "keep-git-dir" | "unpack") => match bool_flag(&v) {
                    Some(b) => match name {
                        "link" => link = b,
                        "parents" => parents = b,
                        "keep-git-dir" => opts.keep_git_dir = b,
                        _ => opts.unpack = b,
                    },
                    None => {
                        self.diags.error(
                            f.span,
                            format!("--{name} takes true or false"),
                            "not a boolean",
                        );
                        ok = false;
                    }
                },
                _ => {}
            }
        }
        let dest = dest?;
        if !ok {
            return None;
        }
        Some((
            Op::Copy(CopyOp {
                sources,
                dest,
                from,
                chown,
                chmod,
                link,
                exclude,
                parents,
                add: add.then_some(opts),
            }),
            edges,
        ))
    }

    fn targets(&mut self) {
        let mut selected: Vec<usize> = Vec::new();
        if self.opts.targets.is_empty() {
            if let Some(i) = self.stages.len().checked_sub(1) {
                selected.push(i);
            }
        } else {
            for t in &self.opts.targets {
                match self.stage_index(t) {
                    Some(i) => selected.push(i),
                    None => {
                        let names: Vec<&str> =
                            self.stages.iter().map(|s| s.name.as_str()).collect();
                        let help = format!("stages of this file: {}", names.join(", "));
                        self.diags.error_help(
                            0..0,
                            format!("unknown --target `{t}`"),
                            "in this file",
                            help,
                        );
                    }
                }
            }
        }
        let names: Vec<&str> = selected
            .iter()
            .map(|&i| self.stages[i].name.as_str())
            .collect();
        let tags = cli_tags(
            &mut self.diags,
            &self.opts.tags,
            &names,
            "select one stage with --target",
        );
        for i in selected {
            let Some(node) = self.ends[i].as_ref().and_then(|e| e.last) else {
                continue;
            };
            self.graph.targets.push(Target {
                name: self.stages[i].name.clone(),
                stage: self.stages[i].name.clone(),
                node,
                tags: tags.clone(),
            });
        }
    }
}

/// The script of a shell-form RUN with heredocs: a command that is just
/// one heredoc runs its body; otherwise the shell gets the heredocs after
/// the command line, as it would in a script.
pub(crate) fn heredoc_script(script: &str, heredocs: &[parser::Heredoc]) -> String {
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

//! Dockerfile -> `strata.toml` (`strata convert`).
//!
//! Every instruction becomes a step in file order (config instructions
//! too, so that their order is kept), global ARGs become `[args]`, each
//! FROM a `[stage.NAME]`. Words keep their variable references: Dockerfile
//! quoting and escapes are translated to the TOML expansion syntax, which
//! has every operator a Dockerfile has (`${NAME}`, `${NAME:-x}`,
//! `${NAME#pattern}`, ..., `$$`). Comments before an
//! instruction are carried over. What the TOML format cannot say is an
//! error at the instruction; what it says slightly differently is a warning.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;

use super::checks::INSTRUCTIONS;
use super::continuation::{breaks, continuation_pieces};
use super::parser::{Ast, Node};
use super::template::{self, Name, literal};
use super::to_model::heredoc_script;
use crate::error::{Diagnostics, SourceDiagnostic};
use crate::frontend::mount;
use crate::frontend::toml::text::{continued, key, list, multiline, q};
use crate::frontend::values::{parse_flag_bool, parse_retries, parse_size};
use crate::ir::SourceFile;

struct Converter<'a> {
    file: &'a SourceFile,
    escape: char,
    errors: Vec<SourceDiagnostic>,
    warnings: Vec<SourceDiagnostic>,
    stage_names: Vec<String>,
    /// Args declared before the first FROM.
    globals: BTreeSet<String>,
    /// Env names of the current stage (a stage from a stage starts with its
    /// base's), and its ARG names.
    env: BTreeSet<String>,
    args: BTreeSet<String>,
    /// Per stage: env names at its end, and its own ONBUILD triggers.
    stage_env: Vec<BTreeSet<String>>,
    triggers: Vec<Vec<Node>>,
}

/// How the names of a word expand where the word is.
#[derive(Clone, Copy)]
struct Scope<'s> {
    /// Names defined here (ARG, ENV): written `${NAME}`.
    known: &'s BTreeSet<String>,
    /// Global args that are not in scope here. A Dockerfile expands them as
    /// unset, a TOML spec would see their value: written as unset.
    hidden: &'s BTreeSet<String>,
}

/// A Dockerfile word as a TOML template, and the hidden names it used.
fn template(word: &str, escape: char, scope: Scope) -> Result<(String, Vec<String>), String> {
    let name = |n: &str| {
        if scope.hidden.contains(n) {
            Name::Hidden
        } else if scope.known.contains(n) {
            Name::Known
        } else {
            // The base image's env, or nothing.
            Name::Maybe
        }
    };
    template::template(word, escape, &name).map(|t| (t.text, t.hidden))
}

/// What `strata convert` adds to the Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// `-t NAME:TAG`: the tags of the image (the last stage), normalized.
    pub tags: Vec<String>,
}

/// `steps = [...]` of a stage, when it has steps.
fn steps_table(out: &mut String, body: &mut String) {
    if !body.is_empty() {
        out.push_str("steps = [\n");
        out.push_str(body);
        out.push_str("]\n");
        body.clear();
    }
}

pub fn convert(
    file: &SourceFile,
    ast: &Ast,
    opts: &ConvertOptions,
) -> Result<(String, Vec<SourceDiagnostic>), Diagnostics> {
    let mut c = Converter {
        file,
        escape: ast.escape,
        errors: Vec::new(),
        warnings: Vec::new(),
        stage_names: Vec::new(),
        globals: BTreeSet::new(),
        env: BTreeSet::new(),
        args: BTreeSet::new(),
        stage_env: Vec::new(),
        triggers: Vec::new(),
    };
    // Stage names first: `--from` and FROM may name any stage.
    for n in ast.children.iter().filter(|n| n.keyword == "from") {
        let name = match n.args.as_slice() {
            [_, kw, name] if kw.eq_ignore_ascii_case("as") => name.to_lowercase(),
            _ => c.stage_names.len().to_string(),
        };
        c.stage_names.push(name);
    }
    c.stage_env = vec![BTreeSet::new(); c.stage_names.len()];
    c.triggers = vec![Vec::new(); c.stage_names.len()];
    let mut args = String::new();
    let mut out = String::new();
    // The steps of the current stage; written when the stage ends, and
    // left out when there are none.
    let mut body = String::new();
    let mut stage = 0usize;
    let mut in_stage = false;
    for n in &ast.children {
        if !INSTRUCTIONS.iter().any(|(k, _)| *k == n.keyword) {
            c.error(
                n,
                n.first_line(&file.text),
                format!("unknown instruction `{}`", n.keyword.to_uppercase()),
            );
            continue;
        }
        if n.keyword == "from" {
            steps_table(&mut out, &mut body);
            out.push('\n');
            c.comments(&mut out, n, "");
            let base = c.from(&mut out, n, stage);
            c.env = base
                .and_then(|b| c.stage_env.get(b).cloned())
                .unwrap_or_default();
            if let Some(e) = c.stage_env.get_mut(stage) {
                e.clone_from(&c.env);
            }
            c.args.clear();
            // The base stage's ONBUILD triggers run first: a TOML spec
            // does not run them, so they become this stage's first steps.
            let triggers = base
                .and_then(|b| c.triggers.get(b).cloned())
                .unwrap_or_default();
            for t in &triggers {
                let base_name = base
                    .and_then(|b| c.stage_names.get(b))
                    .map_or("", |s| s.as_str());
                let _ = writeln!(body, "  # ONBUILD trigger of stage {base_name}");
                for step in c.steps(t) {
                    let _ = writeln!(body, "  {step},");
                }
                c.declare(t, stage);
            }
            stage += 1;
            in_stage = true;
            continue;
        }
        if !in_stage {
            if n.keyword == "arg" {
                c.comments(&mut args, n, "");
                c.global_arg(&mut args, n);
                c.globals
                    .extend(n.args.iter().map(|w| arg_name(w).to_string()));
            } else {
                c.error(
                    n,
                    n.first_line(&file.text),
                    format!("{} before the first FROM", n.keyword.to_uppercase()),
                );
            }
            continue;
        }
        c.comments(&mut body, n, "  ");
        for step in c.steps(n) {
            let _ = writeln!(body, "  {step},");
        }
        c.declare(n, stage - 1);
    }
    steps_table(&mut out, &mut body);
    // The image a Dockerfile builds: its last stage.
    if let Some(last) = c.stage_names.last() {
        let _ = writeln!(out, "\n[image.{}]", key(last));
        if !opts.tags.is_empty() {
            let _ = writeln!(out, "tags = {}", list(&opts.tags));
        }
    }
    let mut toml =
        String::from("# Converted from a Dockerfile by `strata convert`.\nversion = 1\n");
    if !args.is_empty() {
        toml.push_str("\n[args]\n");
        toml.push_str(&args);
    }
    toml.push_str(&out);
    if c.errors.is_empty() {
        Ok((toml, c.warnings))
    } else {
        Err(Diagnostics::new(&file.name, c.errors))
    }
}

/// The name of an ARG word (`NAME` or `NAME=default`).
fn arg_name(w: &str) -> &str {
    w.split_once('=').map_or(w, |(k, _)| k)
}

/// Does a shell script refer to `$name` or `${name...}` without setting
/// `name=` itself?
fn script_uses(script: &str, name: &str) -> bool {
    if script.contains(&format!("{name}=")) {
        return false;
    }
    script.contains(&format!("${{{name}")) || {
        let pat = format!("${name}");
        script.match_indices(&pat).any(|(i, _)| {
            !script[i + pat.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    }
}

impl Converter<'_> {
    /// Names an instruction of stage `stage` defines from here on.
    fn declare(&mut self, n: &Node, stage: usize) {
        match n.keyword.as_str() {
            "arg" => self
                .args
                .extend(n.args.iter().map(|w| arg_name(w).to_string())),
            "env" => {
                self.env
                    .extend(n.args.chunks(3).filter_map(|t| t.first().cloned()));
                if let Some(e) = self.stage_env.get_mut(stage) {
                    e.clone_from(&self.env);
                }
            }
            "onbuild" => {
                if let (Some(t), Some(sub)) = (self.triggers.get_mut(stage), &n.sub) {
                    t.push((**sub).clone());
                }
            }
            _ => {}
        }
    }

    /// Global args a stage instruction does not see (not redeclared by ARG
    /// in the stage, not set by ENV).
    fn hidden_globals(&self) -> BTreeSet<String> {
        self.globals
            .iter()
            .filter(|g| !self.env.contains(*g) && !self.args.contains(*g))
            .cloned()
            .collect()
    }

    fn warn_hidden(&mut self, span: Range<usize>, name: &str, run: bool) {
        let (message, label) = if run {
            (
                format!("global arg {name} is not in this RUN's environment, as in Docker"),
                "unset here",
            )
        } else {
            (
                format!("global arg {name} is unset in this stage, as in Docker"),
                "expands as unset",
            )
        };
        let mut d = self.diag(span, message);
        d.label = label.to_string();
        let d = d.with_help(format!(
            "an ARG before the first FROM is in scope only in FROM lines and `--from` values; \
             declare `ARG {name}` in the stage to use its value"
        ));
        self.warnings.push(d);
    }

    fn diag(&self, span: Range<usize>, message: String) -> SourceDiagnostic {
        let len = self.file.text.len();
        let start = span.start.min(len);
        let end = span.end.clamp(start, len);
        SourceDiagnostic::new(self.file, start, end - start, message, "this instruction")
    }

    fn error(&mut self, _n: &Node, span: Range<usize>, message: String) {
        let d = self.diag(span, message);
        self.errors.push(d);
    }

    fn warn(&mut self, n: &Node, message: String) {
        let d = self.diag(n.first_line(&self.file.text), message);
        self.warnings.push(d);
    }

    fn comments(&self, out: &mut String, n: &Node, indent: &str) {
        for c in &n.comments {
            if super::parser::directive_parts(&format!("#{c}")).is_some_and(|(k, _)| {
                matches!(
                    k.to_ascii_lowercase().as_str(),
                    "syntax" | "escape" | "check"
                )
            }) {
                continue;
            }
            let _ = writeln!(out, "{indent}# {c}");
        }
    }

    /// A word expanded in the stage: its env, its args.
    fn t(&mut self, n: &Node, word: &str) -> Option<String> {
        let known: BTreeSet<String> = self.env.union(&self.args).cloned().collect();
        let hidden = self.hidden_globals();
        let scope = Scope {
            known: &known,
            hidden: &hidden,
        };
        let r = self.template(n, word, scope)?;
        for name in r.1 {
            let span = n.locate(&self.file.text, word);
            self.warn_hidden(span, &name, false);
        }
        Some(r.0)
    }

    /// A word expanded with the global args only (FROM, `--from`).
    fn tg(&mut self, n: &Node, word: &str) -> Option<String> {
        let globals = self.globals.clone();
        let scope = Scope {
            known: &globals,
            hidden: &BTreeSet::new(),
        };
        self.template(n, word, scope).map(|r| r.0)
    }

    fn template(&mut self, n: &Node, word: &str, scope: Scope) -> Option<(String, Vec<String>)> {
        match template(word, self.escape, scope) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = n.locate(&self.file.text, word);
                self.error(n, span, format!("cannot convert `{word}`: {e}"));
                None
            }
        }
    }

    fn flags(n: &Node) -> Vec<(String, Option<String>)> {
        n.flags
            .iter()
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.trim_start_matches('-').to_string(), Some(v.to_string())),
                None => (f.trim_start_matches('-').to_string(), None),
            })
            .collect()
    }

    fn global_arg(&mut self, out: &mut String, n: &Node) {
        for w in &n.args {
            match w.split_once('=') {
                None => {
                    let _ = writeln!(out, "{} = {{}}", key(w));
                }
                Some((k, v)) => {
                    // Global defaults are not expanded in a TOML spec.
                    let Some(t) = self.tg(n, v) else { continue };
                    if t.contains("${") {
                        self.warn(n, format!("the default of global arg {k} refers to a variable; TOML [args] defaults are not expanded"));
                    }
                    let _ = writeln!(out, "{} = {}", key(k), q(&t.replace("$$", "$")));
                }
            }
        }
    }

    /// Writes the stage header; the base stage's index when FROM names one.
    fn from(&mut self, out: &mut String, n: &Node, index: usize) -> Option<usize> {
        let name = self.stage_names.get(index).cloned().unwrap_or_default();
        let _ = writeln!(out, "[stage.{}]", key(&name));
        let image = n.args.first().cloned().unwrap_or_default();
        let from = self.tg(n, &image).unwrap_or_default();
        let base = self
            .stage_names
            .iter()
            .take(index)
            .position(|s| s.eq_ignore_ascii_case(&from));
        let from = if from.eq_ignore_ascii_case("scratch") {
            "scratch".to_string()
        } else if base.is_some()
            || self
                .stage_names
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&from))
        {
            from.to_lowercase()
        } else {
            from
        };
        if let Some(rest) = from.strip_prefix("oci-layout://") {
            match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => {
                    let _ = writeln!(out, "from = {{ oci = {}, ref = {} }}", q(p), q(t));
                }
                _ => {
                    let _ = writeln!(out, "from = {{ oci = {} }}", q(rest));
                }
            }
        } else {
            let _ = writeln!(out, "from = {}", q(&from));
        }
        for (k, v) in Self::flags(n) {
            if k == "platform" {
                let v = v.unwrap_or_default();
                if let Some(t) = self.tg(n, &v) {
                    if t.contains("${") {
                        self.warn(n, "predefined platform args (BUILDPLATFORM, TARGETPLATFORM...) do not exist in TOML specs; declare them in [args]".into());
                    }
                    let _ = writeln!(out, "platform = {}", q(&t));
                }
            }
        }
        base
    }

    /// The TOML step tables of one instruction.
    fn steps(&mut self, n: &Node) -> Vec<String> {
        let text = &self.file.text;
        match n.keyword.as_str() {
            "arg" => {
                let mut v = Vec::new();
                for w in &n.args {
                    match w.split_once('=') {
                        None => v.push(format!("{{ arg = {} }}", q(w))),
                        Some((k, d)) => {
                            if let Some(t) = self.t(n, d) {
                                v.push(format!("{{ arg = {}, default = {} }}", q(k), q(&t)));
                            }
                        }
                    }
                    let name = w.split_once('=').map_or(w.as_str(), |(k, _)| k);
                    if crate::frontend::vars::platform_args()
                        .iter()
                        .any(|(k, _)| k == name)
                    {
                        self.warn(n, format!("{name} is predefined in a Dockerfile, not in a TOML spec: pass it with --build-arg or give it a default"));
                    }
                }
                v
            }
            "env" | "label" => {
                let mut pairs = Vec::new();
                for tr in n.args.chunks(3) {
                    let (Some(k), Some(v)) = (tr.first(), tr.get(1)) else {
                        continue;
                    };
                    let (Some(kt), Some(vt)) = (self.t(n, k), self.t(n, v)) else {
                        continue;
                    };
                    if kt.contains('$') {
                        self.error(
                            n,
                            n.locate(text, k),
                            format!("cannot convert `{k}`: TOML keys are not expanded"),
                        );
                        continue;
                    }
                    pairs.push(format!("{} = {}", key(&kt), q(&vt)));
                }
                vec![format!("{{ {} = {{ {} }} }}", n.keyword, pairs.join(", "))]
            }
            "maintainer" => {
                self.warn(
                    n,
                    "MAINTAINER is deprecated; converted to the step `maintainer` (the image's author)".into(),
                );
                let v = n.args.first().cloned().unwrap_or_default();
                vec![format!("{{ maintainer = {} }}", q(&literal(&v)))]
            }
            "workdir" | "user" | "stopsignal" => {
                let v = n.args.first().cloned().unwrap_or_default();
                self.t(n, &v)
                    .map(|t| vec![format!("{{ {} = {} }}", n.keyword, q(&t))])
                    .unwrap_or_default()
            }
            "shell" => vec![format!("{{ shell = {} }}", list(&n.args))],
            "cmd" | "entrypoint" => {
                if n.json {
                    vec![format!("{{ {} = {} }}", n.keyword, list(&n.args))]
                } else {
                    let v = n.args.first().cloned().unwrap_or_default();
                    vec![format!("{{ {} = {} }}", n.keyword, q(&v))]
                }
            }
            "expose" | "volume" => {
                let mut v = Vec::new();
                for a in &n.args {
                    if let Some(mut t) = self.t(n, a) {
                        // The TOML frontend takes lower-case protocols only;
                        // the Dockerfile's `443/TCP` means `443/tcp`.
                        if n.keyword == "expose"
                            && let Some((port, proto)) = t.rsplit_once('/')
                            && !proto.contains('$')
                        {
                            t = format!("{port}/{}", proto.to_ascii_lowercase());
                        }
                        v.push(t);
                    }
                }
                vec![format!("{{ {} = {} }}", n.keyword, list(&v))]
            }
            "onbuild" => {
                let t = n
                    .sub
                    .as_ref()
                    .map(|s| s.original.trim().to_string())
                    .unwrap_or_default();
                vec![format!("{{ onbuild = {} }}", list(&[t]))]
            }
            "healthcheck" => {
                // The lowering accepted the instruction: NONE or CMD.
                let kind = n.args.first().map(|s| s.to_uppercase()).unwrap_or_default();
                let test = match kind.as_str() {
                    "NONE" => q("NONE"),
                    _ if n.json => {
                        let mut v = vec!["CMD".to_string()];
                        v.extend(n.args[1..].iter().cloned());
                        list(&v)
                    }
                    _ => q(n.args.get(1).map_or("", |s| s.as_str())),
                };
                let mut parts = vec![format!("test = {test}")];
                for (k, v) in Self::flags(n) {
                    let v = v.unwrap_or_default();
                    if k == "retries" {
                        // Checked by the lowering.
                        let Some(r) = parse_retries(&v) else {
                            return Vec::new();
                        };
                        parts.push(format!("retries = {r}"));
                    } else {
                        parts.push(format!("{k} = {}", q(&v)));
                    }
                }
                vec![format!("{{ healthcheck = {{ {} }} }}", parts.join(", "))]
            }
            "run" => self.run(n).into_iter().collect(),
            "copy" | "add" => self.copy(n).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn run(&mut self, n: &Node) -> Option<String> {
        let mut parts = Vec::new();
        if n.json {
            parts.push(format!("run = {}", list(&n.args)));
        } else {
            let script = n.args.first().cloned().unwrap_or_default();
            let script = heredoc_script(&script, &n.heredocs);
            for name in self.hidden_globals() {
                if script_uses(&script, &name) {
                    let span = n.locate(&self.file.text, &format!("${name}"));
                    self.warn_hidden(span, &name, true);
                }
            }
            parts.push(format!("run = {}", self.script_string(n, &script)));
        }
        let mut mounts = Vec::new();
        for (k, v) in Self::flags(n) {
            let v = v.unwrap_or_default();
            match k.as_str() {
                "network" => parts.push(format!("network = {}", q(&self.t(n, &v)?))),
                "mount" => mounts.push(self.mount(n, &v)?),
                _ => {
                    let span = n.locate(&self.file.text, &format!("--{k}"));
                    self.error(
                        n,
                        span,
                        format!("RUN --{k} cannot be expressed in a TOML spec"),
                    );
                    return None;
                }
            }
        }
        match mounts.as_slice() {
            [] => {}
            [m] => parts.push(format!("mounts = [{m}]")),
            // Several mounts: one per line.
            many => parts.push(format!("mounts = [\n    {},\n  ]", many.join(",\n    "))),
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }

    /// A shell-form RUN's script: on as many lines as the Dockerfile
    /// wrote it (continuations), or with a heredoc's lines as lines.
    fn script_string(&self, n: &Node, script: &str) -> String {
        if !n.heredocs.is_empty() {
            return multiline(script);
        }
        let source = self.file.text.get(n.span.clone()).unwrap_or("");
        breaks(script, &continuation_pieces(source, self.escape))
            .and_then(|b| continued(script, &b, "    "))
            .unwrap_or_else(|| q(script))
    }

    /// A `--mount` value as a TOML mount table. The value passed the
    /// lowering's checks (the shared option table), so every field is one
    /// the lowering accepts; what is left to refuse is a number or size
    /// written with a variable, which the TOML format types as a number.
    fn mount(&mut self, n: &Node, v: &str) -> Option<String> {
        let mut parts = Vec::new();
        let mut has_type = false;
        for field in mount::fields(v) {
            let k = mount::canonical_key(&field.key).to_string();
            let val = field.value.as_deref();
            match k.as_str() {
                "type" => {
                    has_type = true;
                    parts.push(format!("type = {}", q(val.unwrap_or(""))));
                }
                "readonly" | "required" => parts.push(format!("{k} = {}", mount::parse_bool(val)?)),
                "rw" => parts.push(format!("readonly = {}", !mount::parse_bool(val)?)),
                "uid" | "gid" | "size" => {
                    let number = match k.as_str() {
                        "size" => val.and_then(parse_size),
                        _ => val.and_then(|x| x.parse::<u32>().ok()).map(u64::from),
                    };
                    let Some(number) = number else {
                        let span = n.locate(&self.file.text, val.unwrap_or(""));
                        self.error(
                            n,
                            span,
                            format!(
                                "cannot convert mount {k} `{}`: a TOML mount's {k} is a number, not expanded",
                                val.unwrap_or("")
                            ),
                        );
                        return None;
                    };
                    parts.push(format!("{k} = {number}"));
                }
                "from" => {
                    let t = self.tg(n, val.unwrap_or(""))?;
                    let name = self.stage_name(&t).unwrap_or(t);
                    parts.push(format!("from = {}", q(&name)));
                }
                _ => parts.push(format!(
                    "{} = {}",
                    key(&k),
                    q(&self.t(n, val.unwrap_or(""))?)
                )),
            }
        }
        if !has_type {
            parts.insert(0, "type = \"bind\"".into());
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }

    /// A `--from` value naming a stage (by name or index).
    fn stage_name(&self, v: &str) -> Option<String> {
        let lower = v.to_lowercase();
        if self.stage_names.contains(&lower) {
            return Some(lower);
        }
        v.parse::<usize>()
            .ok()
            .and_then(|i| self.stage_names.get(i).cloned())
    }

    fn copy(&mut self, n: &Node) -> Option<String> {
        if n.args.len() < 2 {
            self.error(
                n,
                n.first_line(&self.file.text),
                format!(
                    "{} needs a source and a destination",
                    n.keyword.to_uppercase()
                ),
            );
            return None;
        }
        let (srcs, dest) = n.args.split_at(n.args.len() - 1);
        let mut s = Vec::new();
        let mut content = Vec::new();
        for x in srcs {
            // A heredoc source: its body as written (the lowering, which
            // ran first, refused the bodies it cannot say literally).
            if let Ok(Some(h)) = super::parser::parse_heredoc(x) {
                let doc = n.heredocs.iter().find(|d| d.name == h.name)?;
                let body = super::parser::Heredoc {
                    chomp: h.chomp,
                    ..doc.clone()
                }
                .body();
                content.push(format!("{} = {}", q(&h.name), q(&literal(&body))));
                continue;
            }
            s.push(self.t(n, x)?);
        }
        let mut parts = vec![
            format!("{} = {}", n.keyword, list(&s)),
            format!("to = {}", q(&self.t(n, &dest[0])?)),
        ];
        if !content.is_empty() {
            parts.push(format!("content = {{ {} }}", content.join(", ")));
        }
        let mut exclude = Vec::new();
        for (k, v) in Self::flags(n) {
            let raw = v.clone().unwrap_or_default();
            match k.as_str() {
                "from" => {
                    let t = self.tg(n, &raw)?;
                    match self.stage_name(&t) {
                        Some(name) => parts.push(format!("from = {}", q(&name))),
                        None => parts.push(format!("image = {}", q(&t))),
                    }
                }
                "exclude" => exclude.push(self.t(n, &raw)?),
                "link" | "parents" | "keep-git-dir" | "unpack" => {
                    parts.push(format!("{k} = {}", parse_flag_bool(v.as_deref())?));
                }
                "chown" | "chmod" | "checksum" => {
                    parts.push(format!("{k} = {}", q(&self.t(n, &raw)?)))
                }
                _ => {
                    let span = n.locate(&self.file.text, &format!("--{k}"));
                    self.error(
                        n,
                        span,
                        format!(
                            "{} --{k} cannot be expressed in a TOML spec",
                            n.keyword.to_uppercase()
                        ),
                    );
                    return None;
                }
            }
        }
        if !exclude.is_empty() {
            parts.push(format!("exclude = {}", list(&exclude)));
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }
}

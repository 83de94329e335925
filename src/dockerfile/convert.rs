//! Dockerfile -> `strata.toml` (`strata convert`).
//!
//! Every instruction becomes a step in file order (config instructions
//! too, so that their order is kept), global ARGs become `[args]`, each
//! FROM a `[stage.NAME]`. Words keep their variable references: Dockerfile
//! quoting and escapes are translated to the TOML expansion syntax
//! (`${NAME}`, `${NAME:-x}`, `${NAME:+x}`, `$$`). Comments before an
//! instruction are carried over. What the TOML format cannot say is an
//! error at the instruction; what it says slightly differently is a warning.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;

use super::lower::{INSTRUCTIONS, heredoc_script};
use super::parser::{Ast, Node};
use super::values::parse_size;
use crate::error::{Diagnostics, SourceDiagnostic};
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

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when possible.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// Literal text as a TOML template (`$` doubled).
fn literal(s: &str) -> String {
    s.replace('$', "$$")
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

/// A Dockerfile word as a TOML template: quotes removed, escapes resolved,
/// variable references kept.
/// Names in `scope.known` are defined where the word is; other references
/// become `${NAME:-}`, which, like the Dockerfile, expands an unset name to
/// nothing (a bare `${NAME}` is an error in a TOML spec). Names in
/// `scope.hidden` are replaced by what an unset name gives, and listed in
/// the second value.
fn template(word: &str, escape: char, scope: Scope) -> Result<(String, Vec<String>), String> {
    let mut t = Template {
        c: word.chars().collect(),
        i: 0,
        escape,
        scope,
        hidden_used: Vec::new(),
    };
    let out = t.word(None)?;
    Ok((out, t.hidden_used))
}

struct Template<'s> {
    c: Vec<char>,
    i: usize,
    escape: char,
    scope: Scope<'s>,
    hidden_used: Vec<String>,
}

impl Template<'_> {
    fn word(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        let mut dq = false;
        while let Some(&ch) = self.c.get(self.i) {
            if !dq && Some(ch) == stop {
                self.i += 1;
                return Ok(out);
            }
            self.i += 1;
            match ch {
                '\'' if !dq => {
                    let start = self.i;
                    while self.c.get(self.i).is_some_and(|&x| x != '\'') {
                        self.i += 1;
                    }
                    if self.i >= self.c.len() {
                        return Err("unterminated single quote".into());
                    }
                    out.push_str(&literal(&self.c[start..self.i].iter().collect::<String>()));
                    self.i += 1;
                }
                '"' => dq = !dq,
                '$' => {
                    let r = self.reference()?;
                    out.push_str(&r);
                }
                ch if ch == self.escape => match self.c.get(self.i) {
                    None => {}
                    Some(&n) if !dq || n == '"' || n == '$' || n == self.escape => {
                        self.i += 1;
                        out.push_str(&literal(&n.to_string()));
                    }
                    Some(_) => out.push(ch),
                },
                ch => out.push(ch),
            }
        }
        if dq {
            return Err("unterminated double quote".into());
        }
        if let Some(s) = stop {
            return Err(format!("missing `{s}`"));
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let start = self.i;
        while self
            .c
            .get(self.i)
            .is_some_and(|&x| x.is_ascii_alphanumeric() || x == '_')
        {
            self.i += 1;
        }
        self.c[start..self.i].iter().collect()
    }

    /// Is `name` a global arg out of scope (noted when it is)?
    fn hidden(&mut self, name: &str) -> bool {
        let h = self.scope.hidden.contains(name);
        if h && !self.hidden_used.iter().any(|u| u == name) {
            self.hidden_used.push(name.to_string());
        }
        h
    }

    fn plain(&mut self, name: &str) -> String {
        if self.hidden(name) {
            String::new()
        } else if self.scope.known.contains(name) {
            format!("${{{name}}}")
        } else {
            format!("${{{name}:-}}")
        }
    }

    /// After a `$`: a reference in TOML syntax.
    fn reference(&mut self) -> Result<String, String> {
        if self.c.get(self.i) != Some(&'{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$$".into());
            }
            if name.starts_with(|x: char| x.is_ascii_digit()) {
                return Err(format!("positional parameter `${name}`"));
            }
            return Ok(self.plain(&name));
        }
        self.i += 1;
        let name = self.name();
        if name.is_empty() || name.starts_with(|x: char| x.is_ascii_digit()) {
            return Err("a `${...}` form TOML specs cannot express".into());
        }
        match (self.c.get(self.i), self.c.get(self.i + 1)) {
            (Some('}'), _) => {
                self.i += 1;
                Ok(self.plain(&name))
            }
            (Some(':'), Some(&m @ ('-' | '+'))) => {
                self.i += 2;
                let word = self.word(Some('}'))?;
                Ok(match (self.hidden(&name), m) {
                    (true, '-') => word,
                    (true, _) => String::new(),
                    (false, _) => format!("${{{name}:{m}{word}}}"),
                })
            }
            _ => Err(format!(
                "`${{{name}...}}`: TOML specs support only ${{NAME}}, ${{NAME:-word}} and ${{NAME:+word}}"
            )),
        }
    }
}

pub fn convert(
    file: &SourceFile,
    ast: &Ast,
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
            if in_stage {
                out.push_str("]\n");
            }
            out.push('\n');
            c.comments(&mut out, n, "");
            let base = c.from(&mut out, n, stage);
            out.push_str("steps = [\n");
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
                let _ = writeln!(out, "  # ONBUILD trigger of stage {base_name}");
                for step in c.steps(t) {
                    let _ = writeln!(out, "  {step},");
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
        c.comments(&mut out, n, "  ");
        for step in c.steps(n) {
            let _ = writeln!(out, "  {step},");
        }
        c.declare(n, stage - 1);
    }
    if in_stage {
        out.push_str("]\n");
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
                    if super::lower::predefined_args()
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
                    "MAINTAINER is deprecated; converted to the label `maintainer`".into(),
                );
                let v = n.args.first().cloned().unwrap_or_default();
                vec![format!(
                    "{{ label = {{ maintainer = {} }} }}",
                    q(&literal(&v))
                )]
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
                        parts.push(format!("retries = {}", v.parse::<u32>().unwrap_or(0)));
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
            parts.push(format!("run = {}", q(&script)));
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
        if !mounts.is_empty() {
            parts.push(format!("mounts = [{}]", mounts.join(", ")));
        }
        Some(format!("{{ {} }}", parts.join(", ")))
    }

    fn mount(&mut self, n: &Node, v: &str) -> Option<String> {
        let mut parts = Vec::new();
        let mut has_type = false;
        for field in v.split(',').filter(|f| !f.is_empty()) {
            let (k, val) = match field.split_once('=') {
                Some((k, v)) => (k.trim().to_lowercase(), Some(v.trim_matches('"'))),
                None => (field.trim().to_lowercase(), None),
            };
            let k = match k.as_str() {
                "dst" | "destination" => "target".to_string(),
                "src" => "source".to_string(),
                "ro" => "readonly".to_string(),
                _ => k,
            };
            let boolean = |x: Option<&str>| !matches!(x, Some("false") | Some("0"));
            match k.as_str() {
                "type" => {
                    has_type = true;
                    parts.push(format!("type = {}", q(val.unwrap_or(""))));
                }
                "readonly" | "required" => parts.push(format!("{k} = {}", boolean(val))),
                "rw" | "readwrite" => parts.push(format!("readonly = {}", !boolean(val))),
                "uid" | "gid" => parts.push(format!(
                    "{k} = {}",
                    val.and_then(|x| x.parse::<u32>().ok()).unwrap_or(0)
                )),
                "size" => parts.push(format!("size = {}", val.and_then(parse_size).unwrap_or(0))),
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
        if !n.heredocs.is_empty() {
            self.error(
                n,
                n.first_line(&self.file.text),
                format!(
                    "{} with a heredoc cannot be expressed in a TOML spec",
                    n.keyword.to_uppercase()
                ),
            );
            return None;
        }
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
        for x in srcs {
            s.push(self.t(n, x)?);
        }
        let mut parts = vec![
            format!("{} = {}", n.keyword, list(&s)),
            format!("to = {}", q(&self.t(n, &dest[0])?)),
        ];
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
                    let b = !matches!(v.as_deref(), Some("false"));
                    parts.push(format!("{k} = {b}"));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn template(w: &str, e: char) -> Result<String, String> {
        let known: BTreeSet<String> = ["A".to_string()].into();
        let hidden = BTreeSet::new();
        let scope = super::Scope {
            known: &known,
            hidden: &hidden,
        };
        super::template(w, e, scope).map(|t| t.0)
    }

    #[test]
    fn templates() {
        assert_eq!(template("$HOME/x", '\\').as_deref(), Ok("${HOME:-}/x"));
        assert_eq!(template("${A}b", '\\').as_deref(), Ok("${A}b"));
        assert_eq!(template("$A", '\\').as_deref(), Ok("${A}"));
        assert_eq!(template("\"a b\" 'c$d'", '\\').as_deref(), Ok("a b c$$d"));
        assert_eq!(template("\\$HOME", '\\').as_deref(), Ok("$$HOME"));
        assert_eq!(template("${A:-x y}", '\\').as_deref(), Ok("${A:-x y}"));
        assert!(template("${A#x}", '\\').is_err());
        assert!(template("'open", '\\').is_err());
    }
}

//! What only a Dockerfile has to check, before it becomes the model: the
//! keyword list and each keyword's flags, ONBUILD triggers, the `syntax`
//! and `check` directives, and BuildKit's build-check warnings.

use std::ops::Range;

use super::directives::{self, Checks as CheckRules};
use super::parser::{Ast, Node};
use crate::frontend::diag::{Sink, did_you_mean};
use crate::ir::SourceFile;

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

/// Unknown keywords and flags; false when the node cannot be used.
pub fn keyword(sink: &mut Sink, n: &Node) -> bool {
    let text = &sink.file.text;
    let Some((_, allowed)) = INSTRUCTIONS.iter().find(|(k, _)| *k == n.keyword) else {
        let names: Vec<&str> = INSTRUCTIONS.iter().map(|(k, _)| *k).collect();
        let help = match did_you_mean(&n.keyword, names.iter().copied()) {
            Some(m) => format!("did you mean {}?", m.to_uppercase()),
            None => "instructions are FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER".into(),
        };
        let kw_len = n.original.split_whitespace().next().map_or(0, str::len);
        sink.error_help(
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
            let at = n.locate(text, &format!("--{name}"));
            sink.error_help(
                at,
                format!("unknown flag `--{name}` for {}", n.keyword.to_uppercase()),
                "unknown flag",
                help,
            );
            ok = false;
        }
    }
    if n.keyword == "onbuild" {
        let at = n.first_line(text);
        match &n.sub {
            None => {
                sink.error(at, "ONBUILD needs an instruction", "empty ONBUILD");
                ok = false;
            }
            Some(sub) if matches!(sub.keyword.as_str(), "onbuild" | "from" | "maintainer") => {
                sink.error(
                    at,
                    format!(
                        "{} is not allowed as an ONBUILD trigger",
                        sub.keyword.to_uppercase()
                    ),
                    "here",
                );
                ok = false;
            }
            Some(sub) => ok &= keyword(sink, sub),
        }
    }
    ok
}

/// The build checks of one file: which rules the `# check=` directive
/// skips, and the warnings found.
pub struct BuildChecks {
    rules: CheckRules,
    /// Where the `check` directive is (`0..0` when absent).
    rules_span: Range<usize>,
    /// Rules that reported a warning.
    hit: Vec<&'static str>,
    /// Warnings that do not stop the build, `file:line: ...`.
    pub warnings: Vec<String>,
}

impl BuildChecks {
    /// What the directives change (a frontend other than the Dockerfile
    /// one is not run: a warning says so; `check` skips check warnings or
    /// makes them fail the build), and the parser's warnings.
    pub fn new(file: &SourceFile, ast: &Ast) -> Self {
        let mut c = BuildChecks {
            rules: CheckRules::default(),
            rules_span: 0..0,
            hit: Vec::new(),
            warnings: Vec::new(),
        };
        let text = &file.text;
        if let Some(f) = directives::detect_syntax(text)
            && !directives::is_default_frontend(&f.value)
        {
            let at = location(file, &f.span);
            c.warnings.push(format!(
                "{at}: the syntax directive names the frontend `{}`, which strata does not run: \
                 it reads the file with its own Dockerfile frontend",
                f.value
            ));
        }
        if let Some(f) = directives::find(text, "check", false) {
            c.rules_span = f.span.clone();
            match CheckRules::parse(&f.cmdline) {
                Ok(r) => c.rules = r,
                Err(e) => {
                    let at = location(file, &f.span);
                    c.warnings
                        .push(format!("{at}: check directive ignored: {e}"));
                }
            }
        }
        for w in &ast.warnings {
            c.warn(file, "NoEmptyContinuation", &w.0, &w.1);
        }
        c
    }

    /// A warning of a BuildKit build check, unless `# check=` skips it.
    pub fn warn(
        &mut self,
        file: &SourceFile,
        rule: &'static str,
        span: &Range<usize>,
        message: &str,
    ) {
        if !self.rules.enabled(rule) {
            return;
        }
        let at = location(file, span);
        self.warnings.push(format!("{at}: {rule}: {message}"));
        self.hit.push(rule);
    }

    /// The instructions' own checks (MAINTAINER is deprecated).
    pub fn instruction(&mut self, file: &SourceFile, n: &Node) {
        if n.keyword == "maintainer" {
            self.warn(
                file,
                "MaintainerDeprecated",
                &n.span,
                "MAINTAINER is deprecated; it sets the image's `author` (use LABEL maintainer=...)",
            );
        }
    }

    /// `check=error=true` makes the warnings an error; the warnings.
    pub fn finish(mut self, sink: &mut Sink) -> Vec<String> {
        if self.rules.error && !self.hit.is_empty() {
            self.hit.sort_unstable();
            self.hit.dedup();
            sink.error(
                self.rules_span.clone(),
                format!("check warnings fail the build: {}", self.hit.join(", ")),
                "error=true",
            );
        }
        self.warnings
    }
}

fn location(file: &SourceFile, span: &Range<usize>) -> String {
    let before = file.text.get(..span.start).unwrap_or("");
    format!("{}:{}", file.name, before.matches('\n').count() + 1)
}

//! `.dockerignore` patterns with moby's semantics (`patternmatcher`).
//!
//! - one pattern per line; lines starting with `#` are comments; surrounding
//!   whitespace is trimmed and blank lines skipped;
//! - patterns are cleaned (`filepath.Clean`) and a leading `/` is dropped:
//!   every pattern is anchored at the context root;
//! - `*` and `?` never match `/`, `**` matches any number of directories;
//! - `!pattern` re-includes; the last matching pattern wins;
//! - a pattern matching a parent directory matches everything below it.
//!
//! Unlike gitignore, an excluded directory is not pruned when a later `!`
//! pattern could re-include something inside it: callers ask
//! [`IgnoreRules::has_exclusions`] before skipping a directory.

use std::fmt;

use regex::Regex;

use super::glob::{BadPattern, Glob};
use super::path::clean;

/// How a pattern is matched (moby picks the cheapest exact form).
#[derive(Clone, Debug)]
enum Matcher {
    /// No metacharacters: the path equals the pattern.
    Exact,
    /// `prefix/**`: the path starts with `prefix/`.
    Prefix(String),
    /// `**suffix` with no other metacharacters.
    Suffix(String),
    Regex(Regex),
}

/// One pattern of an ignore file (or one `COPY --exclude`).
#[derive(Clone, Debug)]
pub struct IgnorePattern {
    /// The line as written (trimmed), for messages.
    pub text: String,
    /// 1-based line in the ignore file (position for `--exclude` lists).
    pub line: usize,
    /// A `!` pattern: re-includes what it matches.
    pub exclusion: bool,
    /// The cleaned pattern without `!`.
    cleaned: String,
    matcher: Matcher,
}

/// An ordered list of patterns.
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    /// Name of the file the rules came from (`.dockerignore`), for messages.
    source: String,
    patterns: Vec<IgnorePattern>,
    has_exclusions: bool,
}

/// A pattern that could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name} line {line}: {reason}")]
pub struct IgnoreError {
    pub source_name: String,
    pub line: usize,
    pub reason: String,
}

/// The rule that decided a path is excluded, displayed as
/// ``.dockerignore line 3 (`*.log`)``.
#[derive(Clone, Copy, Debug)]
pub struct RuleRef<'a> {
    pub source: &'a str,
    pub pattern: &'a IgnorePattern,
}

impl fmt::Display for RuleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {} (`{}`)",
            self.source, self.pattern.line, self.pattern.text
        )
    }
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file named `source`.
    pub fn parse(source: &str, text: &str) -> Result<IgnoreRules, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = IgnoreRules {
            source: source.to_string(),
            ..IgnoreRules::default()
        };
        for (index, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            rules.push(raw, index + 1)?;
        }
        Ok(rules)
    }

    /// Rules from a list of patterns (`COPY --exclude`), numbered from 1.
    pub fn from_patterns(source: &str, patterns: &[String]) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = IgnoreRules {
            source: source.to_string(),
            ..IgnoreRules::default()
        };
        for (index, raw) in patterns.iter().enumerate() {
            rules.push(raw, index + 1)?;
        }
        Ok(rules)
    }

    fn push(&mut self, raw: &str, line: usize) -> Result<(), IgnoreError> {
        let text = raw.trim();
        if text.is_empty() {
            return Ok(());
        }
        let error = |reason: String| IgnoreError {
            source_name: self.source.clone(),
            line,
            reason,
        };
        let (exclusion, body) = match text.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, text),
        };
        if body.is_empty() {
            return Err(error("`!` must be followed by a pattern".to_string()));
        }
        let mut cleaned = clean(body);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        Glob::new(&cleaned).map_err(|e: BadPattern| error(e.to_string()))?;
        let matcher = compile(&cleaned).map_err(|e| error(format!("bad pattern `{text}`: {e}")))?;
        self.has_exclusions |= exclusion;
        self.patterns.push(IgnorePattern {
            text: text.to_string(),
            line,
            exclusion,
            cleaned,
            matcher,
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some `!` pattern exists (so an excluded directory may still
    /// contain included paths and must be walked).
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// Whether some `!` pattern could re-include a path strictly below
    /// directory `dir`. When not, an excluded `dir` can be skipped whole: a
    /// path below it is hit by every pattern that hits `dir`, so only a `!`
    /// pattern reaching inside could decide differently for it.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let under = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            // The text every path the pattern matches starts with.
            let literal = match &p.matcher {
                Matcher::Exact => return p.cleaned.starts_with(&under),
                Matcher::Prefix(prefix) => prefix.as_str(),
                Matcher::Suffix(_) => return true,
                Matcher::Regex(_) => {
                    let end = p
                        .cleaned
                        .find(['*', '?', '[', '\\'])
                        .unwrap_or(p.cleaned.len());
                    &p.cleaned[..end]
                }
            };
            literal.starts_with(&under) || under.starts_with(literal)
        })
    }

    pub fn patterns(&self) -> &[IgnorePattern] {
        &self.patterns
    }

    /// The rule excluding `path` (relative to the root, `/`-separated), or
    /// `None` when the path is included. A pattern matches a path or any of
    /// its parent directories; the last matching pattern decides.
    pub fn excluded_by(&self, path: &str) -> Option<RuleRef<'_>> {
        let parents: Vec<&str> = super::path::ancestors(path).collect();
        let mut decided: Option<&IgnorePattern> = None;
        for pattern in &self.patterns {
            // An include cannot change an included path, nor an exclude an
            // excluded one.
            if pattern.exclusion != decided.is_some() {
                continue;
            }
            let hit = pattern.matches(path) || parents.iter().any(|p| pattern.matches(p));
            if hit {
                decided = if pattern.exclusion {
                    None
                } else {
                    Some(pattern)
                };
            }
        }
        decided.map(|pattern| RuleRef {
            source: &self.source,
            pattern,
        })
    }

    pub fn is_excluded(&self, path: &str) -> bool {
        self.excluded_by(path).is_some()
    }
}

impl IgnorePattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.cleaned,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// Translates a cleaned pattern the way moby does, choosing the exact,
/// prefix or suffix form when the pattern allows it.
fn compile(pattern: &str) -> Result<Matcher, regex::Error> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut kind = Kind::Exact;
    let mut re = String::from("(?s)^");
    let mut in_class = false;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    if let Some(&e) = chars.get(i) {
                        i += 1;
                        push_escaped(&mut re, e);
                    }
                }
                '-' => re.push('-'),
                c if c.is_alphanumeric() => re.push(c),
                c => push_escaped(&mut re, c),
            }
            first = false;
            continue;
        }
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '\\' => {
                match chars.get(i) {
                    Some(&e) => {
                        i += 1;
                        push_escaped(&mut re, e);
                    }
                    None => re.push_str("\\\\"),
                }
                kind = Kind::Regex;
            }
            '[' => {
                in_class = true;
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    i += 1;
                    re.push('^');
                }
                kind = Kind::Regex;
            }
            c => push_escaped(&mut re, c),
        }
        first = false;
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        // `prefix/**`: drop the `**`.
        Kind::Prefix => Matcher::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_string()),
        // `**suffix`: drop the `**`.
        Kind::Suffix => Matcher::Suffix(pattern.strip_prefix("**").unwrap_or(pattern).to_string()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&re)?)
        }
    })
}

fn push_escaped(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ignore file, path, excluded?)
    const CASES: &[(&str, &str, bool)] = &[
        // Plain names match at the root only, and everything below them.
        ("foo", "foo", true),
        ("foo", "foo/bar/baz.txt", true),
        ("foo", "a/foo", false),
        ("foo", "foobar", false),
        // Comments and blank lines are skipped; whitespace is trimmed.
        ("# foo\n\n   \nbar", "foo", false),
        ("# foo\n\n   \nbar", "bar", true),
        ("  foo  ", "foo", true),
        // A `#` not at the start of the line is part of the pattern.
        (" #foo", "#foo", true),
        // A leading `/` anchors at the root, as without it.
        ("/foo", "foo", true),
        ("/foo/bar", "foo/bar", true),
        // Patterns are cleaned.
        ("./foo/../bar//baz/", "bar/baz", true),
        ("foo/", "foo/x", true),
        // `*` does not cross `/`.
        ("*.md", "README.md", true),
        ("*.md", "docs/guide.md", false),
        ("*/*.md", "docs/guide.md", true),
        ("*", "anything/below", true),
        // `?` is one non-`/` character.
        ("a?c", "abc", true),
        ("a?c", "a/c", false),
        ("a?c", "abbc", false),
        // `**` matches any number of directories, including none.
        ("**/*.md", "README.md", true),
        ("**/*.md", "a/b/c/guide.md", true),
        ("**/target", "target", true),
        ("**/target", "crates/x/target/debug/app", true),
        ("docs/**", "docs/a/b", true),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/y/b", true),
        ("a/**/b", "a/x/y/c", false),
        ("**", "anything", true),
        // Character classes and escapes.
        ("file[0-9].txt", "file7.txt", true),
        ("file[0-9].txt", "filex.txt", false),
        ("file[^0-9].txt", "filex.txt", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        // Regex metacharacters are literal.
        ("a.b", "axb", false),
        ("a+b(c)", "a+b(c)", true),
        ("a{1}", "a{1}", true),
        // `!` re-includes; the last matching pattern wins.
        ("*.md\n!README.md", "README.md", false),
        ("*.md\n!README.md", "CHANGES.md", true),
        ("!README.md\n*.md", "README.md", true),
        // `!` re-includes a file inside an excluded directory.
        ("docs\n!docs/keep.md", "docs/keep.md", false),
        ("docs\n!docs/keep.md", "docs/drop.md", true),
        ("docs\n!docs/keep", "docs/keep/inner.txt", false),
        // ... and a later exclude wins again.
        ("docs\n!docs/keep\ndocs/keep/*.tmp", "docs/keep/x.tmp", true),
        // A UTF-8 byte-order mark does not belong to the first pattern.
        ("\u{feff}foo", "foo", true),
    ];

    #[test]
    fn dockerignore_table() {
        for (text, path, want) in CASES {
            let rules = IgnoreRules::parse(".dockerignore", text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                rules.is_excluded(path),
                *want,
                "rules {text:?} on path {path:?}"
            );
        }
    }

    #[test]
    fn names_the_deciding_rule() {
        let rules = IgnoreRules::parse(
            ".dockerignore",
            "# secrets\n*.key\n!public.key\nprivate/\na*\n",
        )
        .unwrap();
        // Once excluded, later excludes do not take over the blame.
        let rule = rules.excluded_by("a.key").map(|r| r.to_string());
        assert_eq!(rule.as_deref(), Some(".dockerignore line 2 (`*.key`)"));
        // `*` does not cross `/`: the directory rule decides.
        let rule = rules.excluded_by("private/a.key").map(|r| r.to_string());
        assert_eq!(rule.as_deref(), Some(".dockerignore line 4 (`private/`)"));
        let rule = rules.excluded_by("private/readme").map(|r| r.to_string());
        assert_eq!(rule.as_deref(), Some(".dockerignore line 4 (`private/`)"));
        assert!(rules.excluded_by("public.key").is_none());
        assert!(rules.has_exclusions());
    }

    #[test]
    fn rejects_bad_patterns_with_their_line() {
        let err = IgnoreRules::parse(".dockerignore", "ok\n[z-a]\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = IgnoreRules::parse(".dockerignore", "a\n!\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(IgnoreRules::parse(".dockerignore", "file[\n").is_err());
    }

    #[test]
    fn reinclusion_reach() {
        let rules =
            IgnoreRules::parse(".dockerignore", "*\n!docs/keep.md\n!src/*/gen\n!build/**\n")
                .unwrap();
        assert!(rules.may_include_under("docs"));
        assert!(!rules.may_include_under("docs/keep.md"));
        assert!(!rules.may_include_under("node_modules"));
        assert!(rules.may_include_under("src"));
        assert!(rules.may_include_under("src/a"));
        assert!(!rules.may_include_under("srcx"));
        assert!(rules.may_include_under("build/x"));
        assert!(!rules.may_include_under("target"));
        let anywhere = IgnoreRules::parse(".dockerignore", "*\n!**/keep").unwrap();
        assert!(anywhere.may_include_under("node_modules/deep"));
        let none = IgnoreRules::parse(".dockerignore", "*\n").unwrap();
        assert!(!none.may_include_under("docs"));
    }

    #[test]
    fn empty_rules_exclude_nothing() {
        let rules = IgnoreRules::parse(".dockerignore", "\n# only a comment\n").unwrap();
        assert!(rules.is_empty());
        assert!(!rules.is_excluded("anything"));
        assert!(!rules.has_exclusions());
    }
}

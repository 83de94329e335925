//! Finding one parser directive without parsing the file, as BuildKit's
//! `DetectSyntax` and `ParseDirective` do: a UTF-8 BOM and a `#!` first
//! line are skipped, then directives are read from the top in `#` form.
//! `syntax` alone is also found in `//` comments and in a file that is a
//! JSON object (`{"syntax": "..."}`). Also: the `check` directive's value.

use std::ops::Range;

use super::parser::directive_parts_after;

/// A directive's value where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The value up to its first space (the frontend reference of `syntax`).
    pub value: String,
    /// The whole value (`ref // options`).
    pub cmdline: String,
    /// 1-based line of the directive.
    pub line: usize,
    /// Bytes of the directive's line in the text (the whole JSON document).
    pub span: Range<usize>,
}

/// Directive names; any other name ends the directives.
pub(crate) const NAMES: [&str; 3] = ["syntax", "escape", "check"];

/// The `# syntax=` directive, in any of its forms.
pub fn detect_syntax(text: &str) -> Option<Found> {
    find(text, "syntax", true)
}

/// The `key` directive in `#` form (`any_format`: also `//` and JSON).
pub fn find(text: &str, key: &str, any_format: bool) -> Option<Found> {
    let mut start = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut first_line = 1;
    if text[start..].starts_with("#!") {
        start = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        first_line = 2;
    }
    let body = &text[start..];
    if any_format
        && let Ok(doc) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(body)
        && let Some(serde_json::Value::String(v)) = doc.get(key)
    {
        return Some(found(v, first_line, start..text.len()));
    }
    let prefixes: &[&str] = if any_format { &["#", "//"] } else { &["#"] };
    prefixes
        .iter()
        .find_map(|p| scan(body, start, first_line, p, key))
}

fn found(value: &str, line: usize, span: Range<usize>) -> Found {
    Found {
        value: value.split(' ').next().unwrap_or("").to_string(),
        cmdline: value.to_string(),
        line,
        span,
    }
}

/// Reads `prefix` directives from the top of `body` (at byte `offset` of
/// the text, line `first_line`); a repeated name makes them all invalid.
fn scan(body: &str, offset: usize, first_line: usize, prefix: &str, key: &str) -> Option<Found> {
    let mut seen: Vec<String> = Vec::new();
    let mut hit = None;
    let mut at = offset;
    for (i, raw) in body.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let span = at..at + line.len();
        at += raw.len();
        let Some((name, value)) = directive_parts_after(line.trim_start(), prefix) else {
            break;
        };
        let name = name.to_ascii_lowercase();
        if !NAMES.contains(&name.as_str()) {
            break;
        }
        if seen.contains(&name) {
            return None;
        }
        if name == key {
            hit = Some(found(value, first_line + i, span));
        }
        seen.push(name);
    }
    hit
}

/// The `check` directive: `skip=RULE,RULE|all;error=true|false`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    pub skip_all: bool,
    pub skip: Vec<String>,
    /// Check warnings fail the build.
    pub error: bool,
}

impl Checks {
    /// Parses a `check` value; `Err` names what is wrong.
    pub fn parse(value: &str) -> Result<Checks, String> {
        let mut c = Checks::default();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("`{part}` is not key=value"));
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    for rule in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        if rule.eq_ignore_ascii_case("all") {
                            c.skip_all = true;
                        } else {
                            c.skip.push(rule.to_string());
                        }
                    }
                }
                "error" => {
                    c.error = match v.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(format!("error={other}: expected true or false")),
                    }
                }
                other => return Err(format!("unknown key `{other}` (expected skip or error)")),
            }
        }
        Ok(c)
    }

    /// Is the check `rule` reported?
    pub fn enabled(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.iter().any(|s| s.eq_ignore_ascii_case(rule))
    }
}

/// `docker/dockerfile[:tag][@digest]`, the frontend strata implements.
pub fn is_default_frontend(reference: &str) -> bool {
    let r = reference
        .strip_prefix("docker.io/")
        .unwrap_or(reference)
        .split('@')
        .next()
        .unwrap_or("");
    let name = r.split(':').next().unwrap_or("");
    name == "docker/dockerfile"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        let c = |v: &str| Checks::parse(v);
        assert_eq!(
            c("skip=all"),
            Ok(Checks {
                skip_all: true,
                ..Checks::default()
            })
        );
        let both = c("skip=JSONArgsRecommended, MaintainerDeprecated;error=true").expect("ok");
        assert_eq!(
            both.skip,
            ["JSONArgsRecommended", "MaintainerDeprecated"].map(String::from)
        );
        assert!(both.error);
        assert!(!both.enabled("maintainerdeprecated"));
        assert!(both.enabled("NoEmptyContinuation"));
        assert_eq!(c(""), Ok(Checks::default()));
        assert!(c("skip").is_err());
        assert!(c("error=maybe").is_err());
        assert!(c("experimental=all").is_err());
    }

    #[test]
    fn default_frontends() {
        for r in [
            "docker/dockerfile",
            "docker/dockerfile:1",
            "docker/dockerfile:1.7-labs",
            "docker.io/docker/dockerfile:1@sha256:ab",
        ] {
            assert!(is_default_frontend(r), "{r}");
        }
        for r in [
            "docker/dockerfile-upstream:master",
            "dockerfile:experimental",
            "example.com/docker/dockerfile:1",
        ] {
            assert!(!is_default_frontend(r), "{r}");
        }
    }
}

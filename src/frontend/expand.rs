//! What the `${NAME<op>word}` operators do, once for both frontends
//! (BuildKit's meaning, checked against its shell-lexer tables):
//!
//! | form | result |
//! | --- | --- |
//! | `${X-w}` / `${X:-w}` | `w` when X is unset (`:`: or empty), else X |
//! | `${X+w}` / `${X:+w}` | `w` when X is set (`:`: and not empty), else empty |
//! | `${X?w}` / `${X:?w}` | an error `X: w` when X is unset (`:`: or empty), else X |
//! | `${X#p}` / `${X##p}` | X without its shortest / longest prefix matching `p` |
//! | `${X%p}` / `${X%%p}` | X without its shortest / longest suffix matching `p` |
//! | `${X/p/r}` / `${X//p/r}` | X with the first / every match of `p` replaced by `r` |
//!
//! Patterns are shell patterns: `*` any string, `?` one character, `\`
//! escapes `*`, `?` and `\`. An unset X counts as empty for the pattern
//! operators. How words are written (quotes, `$$`) is each frontend's
//! business; this module gets them already expanded.

use regex::Regex;

/// How deep `${A:-${B:-...}}` may nest in a `strata.toml` template. A
/// Dockerfile word may nest half as deep: its model template may wrap a
/// level in a `${X+...}` test (`dockerfile::template`). Deeper input is an
/// error, never unbounded recursion.
pub const MAX_NESTING: usize = 32;

/// How deep `${...}` may nest in a Dockerfile word (see [`MAX_NESTING`]).
pub const MAX_WORD_NESTING: usize = MAX_NESTING / 2;

/// `inner(s)` one `${` deeper into a Dockerfile word (`depth` is the
/// scanner's count): an error past [`MAX_WORD_NESTING`].
pub fn nested<S>(
    s: &mut S,
    depth: fn(&mut S) -> &mut usize,
    inner: fn(&mut S) -> Result<String, String>,
) -> Result<String, String> {
    if *depth(s) >= MAX_WORD_NESTING {
        return Err(format!(
            "variable references nest deeper than {MAX_WORD_NESTING} levels"
        ));
    }
    *depth(s) += 1;
    let r = inner(s);
    *depth(s) -= 1;
    r
}

/// A parsed operator with its (expanded) words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modifier<'a> {
    Default {
        colon: bool,
        word: &'a str,
    },
    Alternative {
        colon: bool,
        word: &'a str,
    },
    Required {
        colon: bool,
        word: &'a str,
    },
    RemovePrefix {
        longest: bool,
        pattern: &'a str,
    },
    RemoveSuffix {
        longest: bool,
        pattern: &'a str,
    },
    Replace {
        all: bool,
        pattern: &'a str,
        replacement: &'a str,
    },
}

impl<'a> Modifier<'a> {
    /// The operator written `op` (`-`, `+`, `?`, `#`, `%` or `/`) with its
    /// words; `flag` is the `:` of `-`, `+` and `?`, the doubling of the
    /// others (`##`, `%%`, `//`). `None` for another character.
    pub fn new(op: char, flag: bool, word: &'a str, replacement: &'a str) -> Option<Self> {
        Some(match op {
            '-' => Modifier::Default { colon: flag, word },
            '+' => Modifier::Alternative { colon: flag, word },
            '?' => Modifier::Required { colon: flag, word },
            '#' => Modifier::RemovePrefix {
                longest: flag,
                pattern: word,
            },
            '%' => Modifier::RemoveSuffix {
                longest: flag,
                pattern: word,
            },
            '/' => Modifier::Replace {
                all: flag,
                pattern: word,
                replacement,
            },
            _ => return None,
        })
    }
}

/// Does the word of `-`, `+` or `?` matter for this value? (Frontends that
/// report errors in words skip expanding a word that is not used.)
pub fn uses_word(op: char, colon: bool, value: Option<&str>) -> bool {
    let null = is_null(value, colon);
    match op {
        '-' | '?' => null,
        '+' => !null,
        _ => true,
    }
}

fn is_null(value: Option<&str>, colon: bool) -> bool {
    value.is_none_or(|v| colon && v.is_empty())
}

/// The value of `${name<modifier>}` when `name` has `value` (`None` = unset).
pub fn apply(name: &str, value: Option<&str>, m: Modifier) -> Result<String, String> {
    match m {
        Modifier::Default { colon, word } => Ok(if is_null(value, colon) {
            word.to_string()
        } else {
            value.unwrap_or_default().to_string()
        }),
        Modifier::Alternative { colon, word } => Ok(if is_null(value, colon) {
            String::new()
        } else {
            word.to_string()
        }),
        Modifier::Required { colon, word } => match value {
            Some(v) if !(colon && v.is_empty()) => Ok(v.to_string()),
            _ => {
                let why = match (word, value) {
                    ("", None) => "is not allowed to be unset",
                    ("", Some(_)) => "is not allowed to be empty",
                    (w, _) => w,
                };
                Err(format!("{name}: {why}"))
            }
        },
        Modifier::RemovePrefix { longest, pattern } => {
            trim_prefix(pattern, value.unwrap_or_default(), longest)
        }
        Modifier::RemoveSuffix { longest, pattern } => {
            trim_suffix(pattern, value.unwrap_or_default(), longest)
        }
        Modifier::Replace {
            all,
            pattern,
            replacement,
        } => {
            let value = value.unwrap_or_default();
            let re = pattern_regex(pattern, true, false).map_err(|e| bad_pattern(pattern, &e))?;
            let rep = regex::NoExpand(replacement);
            Ok(if all {
                re.replace_all(value, rep).into_owned()
            } else {
                re.replace(value, rep).into_owned()
            })
        }
    }
}

fn bad_pattern(pattern: &str, e: &str) -> String {
    format!("invalid pattern ({pattern}) in substitution: {e}")
}

/// A shell pattern (`*`, `?`, `\` escapes) as a regex.
fn pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let mut out = String::new();
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                match chars.get(i) {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(n);
                        i += 1;
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape at end of pattern".into()),
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
            }
        }
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = pattern_regex(pattern, greedy, true).map_err(|e| bad_pattern(pattern, &e))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern, keeping each escape in front of the char it escapes.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            units.push(format!("\\{}", chars[i + 1]));
            i += 2;
        } else {
            units.push(chars[i].to_string());
            i += 1;
        }
    }
    units.reverse();
    units.concat()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    // The shortest rightmost match is the shortest leftmost match of the
    // reversed pattern in the reversed value.
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    let t = trim_prefix(&rp, &rv, greedy)?;
    Ok(t.chars().rev().collect())
}

//! `${NAME}` expansion in spec strings.
//!
//! Forms: `$NAME`, `${NAME}`, `$$` (a literal `$`), and every operator a
//! Dockerfile has, with the same meaning ([`crate::frontend::expand`]):
//! `${NAME-word}`, `${NAME:-word}`, `${NAME+word}`, `${NAME:+word}`,
//! `${NAME?word}`, `${NAME:?word}`, `${NAME#pattern}`, `${NAME##pattern}`,
//! `${NAME%pattern}`, `${NAME%%pattern}`, `${NAME/pattern/replacement}`,
//! `${NAME//pattern/replacement}`. Words, patterns and replacements are
//! expanded too (a word only when it is used).
//!
//! Unlike a Dockerfile, a name that is not defined at all is an error,
//! except under `-`, `+` and `?` (with or without `:`), which test for it.
//! An arg declared without a value is defined but unset: it expands to the
//! empty string, and the operators treat it as unset.

use std::ops::Range;

use crate::frontend::expand::{MAX_NESTING, Modifier, apply, uses_word};

/// What a name refers to: `None` = not defined; `Some(None)` = declared, no value.
pub type Lookup<'a> = dyn Fn(&str) -> Option<Option<String>> + 'a;

/// Why a string could not be expanded, and where in it (byte range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
    pub range: Range<usize>,
}

fn fail<T>(message: String, range: Range<usize>) -> Result<T, ExpandError> {
    Err(ExpandError { message, range })
}

/// Expands `s`.
pub fn expand(s: &str, lookup: &Lookup) -> Result<String, ExpandError> {
    expand_depth(s, lookup, 0)
}

/// One piece of a template, at byte `at` of it.
enum Piece<'s> {
    Text(&'s str),
    /// `$$`.
    Dollar,
    /// `${body}`, `len` bytes in all.
    Braced {
        body: &'s str,
        at: usize,
        len: usize,
    },
    /// `$NAME`; an empty name is a lone `$`.
    Name {
        name: &'s str,
        at: usize,
    },
}

/// Calls `f` on each piece of `s` in order (the one scanner of the
/// template syntax).
fn scan<'s>(
    s: &'s str,
    depth: usize,
    mut f: impl FnMut(Piece<'s>) -> Result<(), ExpandError>,
) -> Result<(), ExpandError> {
    if depth > MAX_NESTING {
        return fail(
            format!("expansions nest deeper than {MAX_NESTING} levels"),
            0..s.len(),
        );
    }
    let mut pos = 0;
    while let Some(i) = s[pos..].find('$') {
        let at = pos + i;
        f(Piece::Text(&s[pos..at]))?;
        let after = &s[at + 1..];
        if after.starts_with('$') {
            f(Piece::Dollar)?;
            pos = at + 2;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = unnested(body, b'}', false) else {
                return fail("unterminated `${`: missing `}`".into(), at..s.len());
            };
            let len = end + 3;
            f(Piece::Braced {
                body: &body[..end],
                at,
                len,
            })?;
            pos = at + len;
        } else {
            let n = name_len(after);
            f(Piece::Name {
                name: &after[..n],
                at,
            })?;
            pos = at + 1 + n;
        }
    }
    f(Piece::Text(&s[pos..]))
}

fn expand_depth(s: &str, lookup: &Lookup, depth: usize) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    scan(s, depth, |piece| {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Dollar => out.push('$'),
            Piece::Braced { body, at, len } => {
                let value = braced(body, lookup, depth).map_err(|e| match e.range {
                    // A problem in a nested word: point at it; else at the whole `${...}`.
                    r if r.end > r.start => ExpandError {
                        message: e.message,
                        range: at + 2 + r.start..at + 2 + r.end,
                    },
                    _ => ExpandError {
                        message: e.message,
                        range: at..at + len,
                    },
                })?;
                out.push_str(&value);
            }
            Piece::Name { name: "", at } => {
                return fail(
                    "`$` must be followed by a name or `{` (write `$$` for a literal `$`)".into(),
                    at..at + 1,
                );
            }
            Piece::Name { name, at } => match lookup(name) {
                Some(v) => out.push_str(v.as_deref().unwrap_or("")),
                None => {
                    return fail(
                        format!("undefined variable `{name}`"),
                        at..at + 1 + name.len(),
                    );
                }
            },
        }
        Ok(())
    })?;
    Ok(out)
}

/// `s` with every reference to a name that `unset` says is unset replaced
/// by what it expands to (the operators' meaning for an unset name, from
/// the same evaluator), every other reference kept as written: what a
/// template means where those names are not defined, whatever the others
/// are. The names replaced are added to `used`. An error where the result
/// depends on the value of a name that is kept (`${U/$P/r}` with `U`
/// unset) or where the expansion itself fails (`${U?}`).
pub fn resolve_unset(
    s: &str,
    unset: &dyn Fn(&str) -> bool,
    used: &mut Vec<String>,
) -> Result<String, ExpandError> {
    resolve_depth(s, unset, used, 0)
}

fn resolve_depth(
    s: &str,
    unset: &dyn Fn(&str) -> bool,
    used: &mut Vec<String>,
    depth: usize,
) -> Result<String, ExpandError> {
    let note = |name: &str, used: &mut Vec<String>| {
        if !used.iter().any(|u| u == name) {
            used.push(name.to_string());
        }
    };
    let mut out = String::with_capacity(s.len());
    scan(s, depth, |piece| {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Dollar => out.push_str("$$"),
            Piece::Braced { body, at, len } => {
                let n = name_len(body);
                let (name, rest) = body.split_at(n);
                if n == 0 || !unset(name) {
                    // Kept: only the references in its words may change.
                    out.push_str("${");
                    out.push_str(name);
                    out.push_str(&resolve_depth(rest, unset, used, depth + 1)?);
                    out.push('}');
                } else {
                    note(name, used);
                    let v = unset_value(body, unset, used, depth).map_err(|e| ExpandError {
                        message: e.message,
                        range: at..at + len,
                    })?;
                    out.push_str(&v);
                }
            }
            Piece::Name { name, .. } if !name.is_empty() && unset(name) => note(name, used),
            // (A lone `$` is kept for the lowering to report.)
            Piece::Name { name, .. } => {
                out.push('$');
                out.push_str(name);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// What `${body}` gives when its name is unset, as a template.
fn unset_value(
    body: &str,
    unset: &dyn Fn(&str) -> bool,
    used: &mut Vec<String>,
    depth: usize,
) -> Result<String, ExpandError> {
    let b = Body::parse(body);
    let literal = |w: &str| -> Result<String, ExpandError> {
        expand(w, &|_| None).map_err(|_| ExpandError {
            message: format!(
                "`${{{body}}}` depends on a variable while `{}` is unset here",
                b.name
            ),
            range: 0..0,
        })
    };
    let fails = |e: String| ExpandError {
        message: e,
        range: 0..0,
    };
    match (b.colon, b.op) {
        (_, None) => Ok(String::new()),
        // The word, or nothing: decided by the name alone.
        (_, Some(c @ ('-' | '+' | '?'))) if !uses_word(c, b.colon, None) => Ok(String::new()),
        (_, Some('?')) => {
            let word = literal(b.word).unwrap_or_else(|_| b.word.to_string());
            let m = Modifier::Required {
                colon: b.colon,
                word: &word,
            };
            apply(b.name, None, m).map_err(fails)
        }
        (_, Some('-' | '+')) => resolve_depth(b.word, unset, used, depth + 1),
        // Trimming the empty value.
        (false, Some('#' | '%')) => Ok(String::new()),
        (false, Some('/')) => {
            let (pattern, replacement) = b.split(body)?;
            let pattern = literal(pattern)?;
            // The empty value matches the pattern or not; the replacement
            // (a template) is all that is left when it does.
            let m = Modifier::Replace {
                all: b.doubled,
                pattern: &pattern,
                replacement: "\u{0}",
            };
            if apply(b.name, None, m).map_err(fails)? == "\u{0}" {
                resolve_depth(replacement, unset, used, depth + 1)
            } else {
                Ok(String::new())
            }
        }
        _ => fail(unsupported(body), 0..0),
    }
}

/// Byte length of the variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Index of the first `stop` of `s` that is not inside a nested `${...}`
/// (`$$` is a `$`; with `escapes`, nor escaped by a `\`): the `}` closing a
/// `${` whose body starts `s`, the `/` ending the pattern of `${X/p/r}`.
fn unnested(s: &str, stop: u8, escapes: bool) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 1,
            b'$' if matches!(bytes.get(i + 1), Some(b'$' | b'{')) => {
                depth += usize::from(bytes[i + 1] == b'{');
                i += 1;
            }
            b if b == stop && depth == 0 => return Some(i),
            b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The body of a `${...}` taken apart: the name, then an optional `:`, an
/// operator (doubled: `##`, `%%`, `//`) and its word.
struct Body<'s> {
    name: &'s str,
    colon: bool,
    op: Option<char>,
    doubled: bool,
    word: &'s str,
    /// Where `word` starts in the body.
    word_at: usize,
}

impl<'s> Body<'s> {
    fn parse(body: &'s str) -> Body<'s> {
        let n = name_len(body);
        let colon = body[n..].starts_with(':');
        let mut chars = body[n + usize::from(colon)..].chars();
        let op = chars.next();
        let doubled = !colon && matches!(op, Some('#' | '%' | '/')) && chars.next() == op;
        let word_at = n + usize::from(colon) + op.map_or(0, char::len_utf8) + usize::from(doubled);
        Body {
            name: &body[..n],
            colon,
            op,
            doubled,
            word: &body[word_at.min(body.len())..],
            word_at,
        }
    }

    /// The pattern and the replacement of `${X/p/r}`.
    fn split(&self, body: &str) -> Result<(&'s str, &'s str), ExpandError> {
        match unnested(self.word, b'/', true) {
            Some(end) => Ok((&self.word[..end], &self.word[end + 1..])),
            None => fail(
                format!("`${{{body}}}` needs a `/` between the pattern and the replacement"),
                0..0,
            ),
        }
    }
}

fn unsupported(body: &str) -> String {
    format!(
        "unsupported expansion `${{{body}}}`: after the name comes `}}`, \
         `-`, `+`, `?` (each also with `:`), `#`, `##`, `%`, `%%`, `/` or `//`"
    )
}

/// Expands the body of `${...}`. An error with an empty range means "the
/// whole expression"; otherwise the range is inside `body`.
fn braced(body: &str, lookup: &Lookup, depth: usize) -> Result<String, ExpandError> {
    let b = Body::parse(body);
    if b.name.is_empty() {
        return fail(
            format!("`${{{body}}}` does not start with a variable name"),
            0..0,
        );
    }
    let value = lookup(b.name);
    let defined = value.is_some();
    // An arg declared without a value is unset for the operators.
    let value = value.flatten();
    let sub = |w: &str, at: usize| {
        expand_depth(w, lookup, depth + 1).map_err(|e| ExpandError {
            message: e.message,
            range: b.word_at + at + e.range.start..b.word_at + at + e.range.end,
        })
    };
    let (word, replacement) = match (b.colon, b.op) {
        (false, None) if defined => return Ok(value.unwrap_or_default()),
        (_, Some(c @ ('-' | '+' | '?'))) => match uses_word(c, b.colon, value.as_deref()) {
            true => (sub(b.word, 0)?, String::new()),
            false => (String::new(), String::new()),
        },
        (false, None | Some('#' | '%' | '/')) if !defined => {
            return fail(format!("undefined variable `{}`", b.name), 0..0);
        }
        (false, Some('#' | '%')) => (sub(b.word, 0)?, String::new()),
        (false, Some('/')) => {
            let (pattern, replacement) = b.split(body)?;
            let at = pattern.len() + 1;
            (sub(pattern, 0)?, sub(replacement, at)?)
        }
        _ => return fail(unsupported(body), 0..0),
    };
    let op = b.op.unwrap_or('}');
    let Some(m) = Modifier::new(op, b.colon || b.doubled, &word, &replacement) else {
        return fail(unsupported(body), 0..0);
    };
    apply(b.name, value.as_deref(), m).map_err(|e| ExpandError {
        message: e,
        range: 0..0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<Option<String>> {
        match name {
            "A" => Some(Some("1".into())),
            "EMPTY" => Some(Some(String::new())),
            "NOVAL" => Some(None),
            "PATH" => Some(Some("/bin".into())),
            "P" => Some(Some("a/b/c.tar.gz".into())),
            "Q" => Some(Some("a".into())),
            "T" => Some(Some("linux/amd64".into())),
            _ => None,
        }
    }

    fn ex(s: &str) -> Result<String, String> {
        expand(s, &vars).map_err(|e| e.message)
    }

    fn range(s: &str) -> Range<usize> {
        expand(s, &vars).map(|_| 0..0).unwrap_or_else(|e| e.range)
    }

    #[test]
    fn forms() {
        assert_eq!(ex("x$A-${A}y").as_deref(), Ok("x1-1y"));
        assert_eq!(ex("$A_B").map_err(|e| e.contains("A_B")), Err(true));
        assert_eq!(ex("${PATH}:/usr/bin").as_deref(), Ok("/bin:/usr/bin"));
        assert_eq!(ex("cost $$5").as_deref(), Ok("cost $5"));
        assert_eq!(ex("${X:-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${EMPTY:-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${A:-d}").as_deref(), Ok("1"));
        assert_eq!(ex("${A:+yes}").as_deref(), Ok("yes"));
        assert_eq!(ex("${X:+yes}").as_deref(), Ok(""));
        assert_eq!(ex("${NOVAL}").as_deref(), Ok(""));
        assert_eq!(ex("${NOVAL:-n}").as_deref(), Ok("n"));
        assert_eq!(ex("${X:-${A}}").as_deref(), Ok("1"));
        assert_eq!(ex("${X:-a}}").as_deref(), Ok("a}"));
        assert_eq!(ex("plain").as_deref(), Ok("plain"));
        assert_eq!(ex("é$A").as_deref(), Ok("é1"));
    }

    #[test]
    fn operators() {
        // Test operators: `:` makes an empty value count as unset.
        assert_eq!(ex("${EMPTY-d}").as_deref(), Ok(""));
        assert_eq!(ex("${EMPTY:-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${X-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${NOVAL-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${EMPTY+y}").as_deref(), Ok("y"));
        assert_eq!(ex("${EMPTY:+y}").as_deref(), Ok(""));
        assert_eq!(ex("${X+y}").as_deref(), Ok(""));
        assert_eq!(ex("${A?}").as_deref(), Ok("1"));
        assert_eq!(ex("${EMPTY?}").as_deref(), Ok(""));
        // An unused word is not expanded, so it may name anything.
        assert_eq!(ex("${A:-$NOPE}").as_deref(), Ok("1"));
        assert_eq!(ex("${X:+$NOPE}").as_deref(), Ok(""));
        assert_eq!(ex("${A?$NOPE}").as_deref(), Ok("1"));
        // Patterns.
        assert_eq!(ex("${P#*/}").as_deref(), Ok("b/c.tar.gz"));
        assert_eq!(ex("${P##*/}").as_deref(), Ok("c.tar.gz"));
        assert_eq!(ex("${P%.*}").as_deref(), Ok("a/b/c.tar"));
        assert_eq!(ex("${P%%.*}").as_deref(), Ok("a/b/c"));
        assert_eq!(ex("${P/b/x}").as_deref(), Ok("a/x/c.tar.gz"));
        assert_eq!(ex("${P//\\//-}").as_deref(), Ok("a-b-c.tar.gz"));
        assert_eq!(ex("${P/?/$A}").as_deref(), Ok("1/b/c.tar.gz"));
        assert_eq!(ex("${P#${Q}}").as_deref(), Ok("/b/c.tar.gz"));
        assert_eq!(ex("${NOVAL#x}").as_deref(), Ok(""));
        assert_eq!(ex("${T#linux/amd64}").as_deref(), Ok(""));
        assert_eq!(ex("${T#linux/}").as_deref(), Ok("amd64"));
        assert_eq!(ex("${P%$$}").as_deref(), Ok("a/b/c.tar.gz"));
    }

    #[test]
    fn errors() {
        assert!(ex("$X").unwrap_err().contains("undefined variable `X`"));
        assert!(ex("${X}").unwrap_err().contains("undefined variable `X`"));
        assert!(ex("${A").unwrap_err().contains("unterminated"));
        assert!(ex("a $ b").unwrap_err().contains("$$"));
        assert!(ex("$").is_err());
        assert!(ex("${}").is_err());
        assert!(ex("${A:#x}").unwrap_err().contains("unsupported"));
        assert!(ex("${X#x}").unwrap_err().contains("undefined variable `X`"));
        assert!(
            ex("${X/a/b}")
                .unwrap_err()
                .contains("undefined variable `X`")
        );
        assert!(ex("${A/a}").unwrap_err().contains("needs a `/`"));
        assert_eq!(ex("${X?}").unwrap_err(), "X: is not allowed to be unset");
        assert_eq!(
            ex("${EMPTY:?}").unwrap_err(),
            "EMPTY: is not allowed to be empty"
        );
        assert_eq!(ex("${X:?need X}").unwrap_err(), "X: need X");
        assert!(ex("${X:-$Y}").unwrap_err().contains("`Y`"));
        let deep = format!("{}x{}", "${X:-".repeat(100), "}".repeat(100));
        assert!(ex(&deep).unwrap_err().contains("nest deeper"));
        let ok = format!("{}x{}", "${X:-".repeat(10), "}".repeat(10));
        assert_eq!(ex(&ok).as_deref(), Ok("x"));
    }

    /// `U` unset, everything else kept: the result means, for any value
    /// of the kept names, what the template means with `U` undefined.
    #[test]
    fn resolving_unset_names() {
        let r = |t: &str| {
            let mut used = Vec::new();
            resolve_unset(t, &|n| n == "U", &mut used).map(|v| (v, used.len()))
        };
        let ok = |t: &str, want: &str| assert_eq!(r(t).map(|x| x.0).as_deref(), Ok(want), "{t}");
        ok("a$U-${U}b", "a-b");
        ok("${U:-d}/${A}", "d/${A}");
        ok("${U-$A}", "$A");
        ok("${U:+x}${U+y}", "");
        ok("${U#p}${U##p}${U%p}${U%%p}", "");
        ok("${U/*/r$A}", "r$A");
        ok("${U//x/r}", "");
        ok("${A:-${U:-n}}", "${A:-n}");
        ok("${A/$U/x}", "${A//x}");
        ok("$$U ${A#$$}", "$$U ${A#$$}");
        assert_eq!(r("$U${U:-x}").map(|x| x.1), Ok(1));
        assert_eq!(r("${A}").map(|x| x.1), Ok(0));
        assert!(r("${U?need}").unwrap_err().message.contains("need"));
        assert!(r("${U/$A/r}").is_err());
        assert!(r("${U").is_err());
        assert!(r("${Uéx}").is_err() && r("${U:é}").is_err());
        // The same as expanding with `U` declared without a value (unset
        // for the operators), for a value of `A`.
        let lookup = |n: &str| match n {
            "A" => Some(Some("a".to_string())),
            "U" => Some(None),
            _ => None,
        };
        for t in [
            "${U:-d}/${A}",
            "${A:-${U:-n}}",
            "${U/*/r$A}",
            "x${U+y}${A#a}",
        ] {
            let resolved = r(t).expect(t).0;
            assert_eq!(expand(&resolved, &lookup), expand(t, &lookup), "{t}");
        }
    }

    #[test]
    fn error_ranges() {
        assert_eq!(range("/opt/$NOPE/x"), 5..10);
        assert_eq!(range("a${NOPE}b"), 1..8);
        assert_eq!(range("a${X:-${NOPE}}"), 6..13);
        assert_eq!(range("a $ b"), 2..3);
        assert_eq!(range("x${A"), 1..4);
        assert_eq!(range("${A:#x}"), 0..7);
        assert_eq!(range("${P/$NOPE/x}"), 4..9);
        assert_eq!(range("${P/b/$NOPE}"), 6..11);
    }
}

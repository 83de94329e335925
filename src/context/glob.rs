//! Go `filepath.Match` patterns (`*`, `?`, `[...]`, `\` escapes), used for
//! COPY sources (per path component) and to validate ignore patterns.

/// One element of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    Any,
    Literal(char),
    /// `[...]` or `[^...]`: inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A syntax error in a pattern (unclosed `[`, empty class, trailing `\`...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern `{pattern}`: {reason}")]
pub struct BadPattern {
    pub pattern: String,
    pub reason: &'static str,
}

/// A compiled `filepath.Match` pattern.
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

/// Whether `s` contains any pattern metacharacter (Go's `hasMeta`).
pub(crate) fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Result<Glob, BadPattern> {
        let bad = |reason| BadPattern {
            pattern: pattern.to_string(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // Consecutive stars mean the same as one.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '\\' => match chars.next() {
                    Some(e) => tokens.push(Token::Literal(e)),
                    None => return Err(bad("trailing `\\`")),
                },
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                            break;
                        }
                        let lo =
                            class_char(&mut chars).ok_or_else(|| bad("malformed `[...]` class"))?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(&mut chars)
                                .ok_or_else(|| bad("malformed range in `[...]`"))?
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad("reversed range in `[...]`"));
                        }
                        ranges.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the whole of `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Iterative matcher with one backtrack point for the last `*`
        // (enough, since `*` never needs to give back what a later `*` took).
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(tok) if one_char(tok, name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, sn)) if name[sn] != '/' => {
                    star = Some((st, sn + 1));
                    t = st + 1;
                    n = sn + 1;
                }
                _ => return false,
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::Star)
    }
}

/// Reads one (possibly escaped) character inside a class; `None` at the end
/// of the pattern or at an unescaped `-` / `]` (Go's `getEsc`).
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '-' | ']' => None,
        '\\' => chars.next(),
        c => Some(c),
    }
}

fn one_char(tok: &Token, c: char) -> bool {
    match tok {
        Token::Star => false,
        Token::Any => c != '/',
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            c != '/' && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go_filepath_match() {
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("a?", "a/", false),
            ("*x", "xxx", true),
        ];
        for (pattern, name, want) in cases {
            let glob = Glob::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(glob.matches(name), want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for pattern in ["[", "[]a]", "[-]", "[x-]", "a\\", "[a-", "[^", "[z-a]"] {
            assert!(
                Glob::new(pattern).is_err(),
                "{pattern:?} should be rejected"
            );
        }
    }

    #[test]
    fn meta_detection() {
        assert!(has_meta("src/*.rs"));
        assert!(has_meta("a?"));
        assert!(has_meta("[ab]"));
        assert!(!has_meta("src/main.rs"));
    }
}

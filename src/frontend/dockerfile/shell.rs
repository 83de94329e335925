//! Word expansion as BuildKit's Dockerfile shell lexer does it: quote
//! removal, escapes, `$VAR` / `${VAR...}` substitution and word splitting.
//!
//! This is not a shell: there is no command substitution, globbing or
//! arithmetic. The rules (and their corner cases) are those of the
//! conformance tables in `shared/conformance/buildkit-shell`.

use std::collections::BTreeSet;

use crate::frontend::expand::{Modifier, apply, nested};

/// Looks up a variable: `None` when unset, `Some("")` when set but empty.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

/// No variable is set.
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

/// The lexer's options (BuildKit's `Lex`).
#[derive(Clone, Copy, Debug)]
pub struct Lex {
    pub escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Quotes are ordinary characters (BuildKit's `SkipProcessQuotes`,
    /// for the body of an unquoted COPY/ADD heredoc).
    pub skip_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

/// The result of one expansion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The whole word, quotes removed and variables substituted.
    pub word: String,
    /// The same, split on unquoted whitespace (empty words dropped).
    pub words: Vec<String>,
    /// Referenced variables that were set.
    pub matched: BTreeSet<String>,
    /// Referenced variables that were unset.
    pub unmatched: BTreeSet<String>,
}

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` into one string and its words.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, String> {
        let mut w = Word {
            chars: word.chars().collect(),
            pos: 0,
            env,
            lex: *self,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
        };
        let raw = self.raw_escapes;
        let (s, words) = w
            .stop_on(None, raw)
            .map_err(|e| format!("failed to process \"{word}\": {e}"))?;
        Ok(Expansion {
            word: s,
            words,
            matched: w.matched,
            unmatched: w.unmatched,
        })
    }

    /// One string (BuildKit's `ProcessWord`).
    pub fn word(&self, word: &str, env: &dyn Env) -> Result<String, String> {
        self.process(word, env).map(|e| e.word)
    }

    /// Split words (BuildKit's `ProcessWords`).
    pub fn words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, String> {
        self.process(word, env).map(|e| e.words)
    }
}

struct Word<'e> {
    chars: Vec<char>,
    pos: usize,
    env: &'e dyn Env,
    lex: Lex,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// How many `${` the scan is inside.
    depth: usize,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

impl Word<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let v = self.env.get(name);
        if v.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        v
    }

    /// Processes up to `stop` (consumed) or the end.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    /// The word of a `${...}` operator up to `stop`; an error that comes
    /// from reaching the end of the input is reported as `missing`.
    fn operand(&mut self, stop: char, raw_escapes: bool, missing: &str) -> Result<String, String> {
        match self.stop_on(Some(stop), raw_escapes) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(missing.to_string()),
            Err(e) => Err(e),
        }
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' if !self.lex.skip_quotes => {
                    let v = self.single_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                '"' if !self.lex.skip_quotes => {
                    let v = self.double_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(next) = self.next() else { break };
                        words.add_raw_char(next);
                        result.push(next);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                }
                Some(ch) => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                                if self.raw_escapes {
                                    result.push(ch);
                                }
                                self.pos += 1;
                                result.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1; // `$`
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // `{`
        nested(self, |w| &mut w.depth, Self::braced)
    }

    /// After `${`: the reference up to its `}`.
    fn braced(&mut self) -> Result<String, String> {
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            modifier.push(c);
                        }
                        None => return Err("syntax error: missing '}'".into()),
                    }
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let word = self.operand('}', raw, "syntax error: missing '}'")?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let m = match (ch, word.strip_prefix(ch)) {
                    ('#' | '%', Some(rest)) => Modifier::new(ch, true, rest, ""),
                    ('#' | '%', None) => Modifier::new(ch, false, &word, ""),
                    ('-' | '+' | '?', _) => Modifier::new(ch, null_is_unset, &word, ""),
                    _ => None,
                };
                let m =
                    m.ok_or_else(|| format!("unsupported modifier ({modifier}) in substitution"))?;
                apply(&name, value.as_deref(), m)
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = self.operand('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.operand('}', true, "syntax error: missing '}'")?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let m = Modifier::Replace {
                    all,
                    pattern: &pattern,
                    replacement: &replacement,
                };
                apply(&name, value.as_deref(), m)
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }
}

//! A line split into words as BuildKit's shell lexer splits it with no
//! variable defined and unset references kept as written
//! (`ProcessWords` with `SkipUnsetEnv`), which is how it finds heredoc
//! markers. Quotes and escapes are removed, or kept with `raw_quotes` /
//! `raw_escapes`. The words of an instruction's value are not made here:
//! they become model templates (`template`), which expand as BuildKit
//! does (checked against its lexer tables in `dockerfile/tests.rs`).

use super::template::name_end;
use crate::frontend::expand::nested;

#[derive(Clone, Copy, Debug)]
pub struct Lex {
    pub escape: char,
    pub raw_quotes: bool,
    pub raw_escapes: bool,
}

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
        }
    }

    pub fn words(&self, line: &str) -> Result<Vec<String>, String> {
        let mut s = Scan {
            chars: line.chars().collect(),
            pos: 0,
            lex: *self,
            raw_escapes: self.raw_escapes,
            depth: 0,
        };
        let raw = self.raw_escapes;
        s.stop_on(None, raw)
            .map(|(_, words)| words)
            .map_err(|e| format!("failed to process \"{line}\": {e}"))
    }
}

struct Scan {
    chars: Vec<char>,
    pos: usize,
    lex: Lex,
    raw_escapes: bool,
    depth: usize,
}

/// Words as they are made: whitespace from a reference splits, quoted or
/// escaped text does not.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add(&mut self, s: &str) {
        for ch in s.chars() {
            if !ch.is_whitespace() {
                self.word.push(ch);
                self.in_word = true;
            } else if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        }
    }

    fn add_raw(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

impl Scan {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    /// Up to `stop` (consumed): the text, and its words.
    fn stop_on(&mut self, stop: Option<char>, raw: bool) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let mut text = String::new();
        let mut words = Words::default();
        let mut found = stop.is_none();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                found = true;
                break;
            }
            let quoted = matches!(ch, '\'' | '"');
            let piece = match ch {
                '$' => self.dollar()?,
                '\'' | '"' => self.quoted(ch)?,
                _ => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        let mut p = String::new();
                        if self.raw_escapes {
                            p.push(ch);
                        }
                        let next = self.next();
                        p.extend(next);
                        words.add_raw(&p);
                        text.push_str(&p);
                        if next.is_none() {
                            break;
                        }
                        continue;
                    }
                    ch.to_string()
                }
            };
            if quoted {
                words.add_raw(&piece);
            } else {
                words.add(&piece);
            }
            text.push_str(&piece);
        }
        self.raw_escapes = saved;
        match stop {
            Some(c) if !found => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            _ => Ok((text, words.finish())),
        }
    }

    /// A quoted string: `'...'` as it is, `"..."` with its references and
    /// the escapes of `"`, `$` and the escape character.
    fn quoted(&mut self, q: char) -> Result<String, String> {
        let mut out = String::new();
        self.pos += 1;
        if self.lex.raw_quotes {
            out.push(q);
        }
        let what = if q == '"' { "double" } else { "single" };
        loop {
            let Some(ch) = self.peek() else {
                return Err(format!(
                    "unexpected end of statement while looking for matching {what}-quote"
                ));
            };
            if ch == q {
                self.pos += 1;
                if self.lex.raw_quotes {
                    out.push(q);
                }
                return Ok(out);
            }
            if q == '"' && ch == '$' {
                out.push_str(&self.dollar()?);
                continue;
            }
            self.pos += 1;
            if q == '"' && ch == self.lex.escape {
                match self.peek() {
                    None => continue,
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        self.pos += 1;
                        out.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            out.push(ch);
        }
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        self.pos = name_end(&self.chars, start);
        self.chars[start..self.pos].iter().collect()
    }

    /// A reference, unset, so written back as it was (its operand
    /// processed).
    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            return Ok(format!("${}", self.name()));
        }
        self.pos += 1;
        nested(self, |s| &mut s.depth, Self::braced)
    }

    fn operand(&mut self, stop: char, raw: bool, missing: &str) -> Result<String, String> {
        match self.stop_on(Some(stop), raw) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(missing.to_string()),
            Err(e) => Err(e),
        }
    }

    fn braced(&mut self) -> Result<String, String> {
        if matches!(self.peek(), None | Some('{' | '}' | ':')) {
            return Err(match self.peek() {
                None => MISSING_BRACE.into(),
                _ => "syntax error: bad substitution".into(),
            });
        }
        let name = self.name();
        let mut op = self.next().ok_or(MISSING_BRACE)?;
        if op == '}' {
            return Ok(format!("${{{name}}}"));
        }
        let colon = op == ':';
        if colon {
            op = self.next().ok_or(MISSING_BRACE)?;
        }
        let modifier = format!("{}{op}", if colon { ":" } else { "" });
        match op {
            '#' | '%' if colon => Err(format!("unsupported modifier ({modifier}) in substitution")),
            // After `:`, BuildKit reads any operator's word when the name
            // is unset (it is never set here).
            _ if colon || matches!(op, '+' | '-' | '?' | '#' | '%') => {
                let word = self.operand('}', matches!(op, '#' | '%'), MISSING_BRACE)?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            '/' => {
                self.pos += usize::from(self.peek() == Some('/'));
                let pattern = self.operand('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.operand('}', true, MISSING_BRACE)?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lex;

    fn words(line: &str, raw: bool) -> Result<Vec<String>, String> {
        let mut lex = Lex::new('\\');
        lex.raw_quotes = raw;
        lex.raw_escapes = raw;
        lex.words(line)
    }

    #[test]
    fn quoted_and_escaped_text_stays_one_word_and_references_are_kept() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(words("cat <<EOF >x", false), Ok(w(&["cat", "<<EOF", ">x"])));
        assert_eq!(
            words("a\\ b 'c d' \"e $F\"", false),
            Ok(w(&["a b", "c d", "e $F"]))
        );
        assert_eq!(
            words("a\\ b 'c d' \"e $F\"", true),
            Ok(w(&["a\\ b", "'c d'", "\"e $F\""]))
        );
        assert_eq!(
            words("${X:-a b} $1 ${Y}", false),
            Ok(w(&["${X:-a", "b}", "$1", "${Y}"]))
        );
        assert_eq!(
            words("${X#'q'} ${X/a/b}", false),
            Ok(w(&["${X#q}", "${X/a/b}"]))
        );
        assert!(words("'open", false).is_err());
        assert!(words("${X", false).is_err());
        assert!(words("${X:#a}", false).is_err());
        assert!(words("${X\u{a7}a}", false).is_err());
        assert_eq!(words("${X:/a} a\\", true), Ok(w(&["${X:/a}", "a\\"])));
    }
}

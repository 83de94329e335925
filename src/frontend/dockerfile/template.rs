//! A Dockerfile word as a model template: quotes removed, escapes
//! resolved, variable references kept in the `strata.toml` expansion
//! syntax (which has every operator a Dockerfile has, `$$` for a `$`).
//!
//! What a name means where the word is comes from the caller ([`Name`]):
//! a name the template cannot assume defined is written so that it
//! expands as a Dockerfile expands it (to nothing when unset), since a
//! bare `${NAME}` is an error in the model when `NAME` is not defined.

use crate::frontend::expand::nested;

/// Literal text as a template (`$` doubled).
pub fn literal(s: &str) -> String {
    s.replace('$', "$$")
}

/// What a variable name is where a word is expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// Declared before the word (ARG, ENV): written `${NAME}`.
    Known,
    /// Not defined here: written as what an unset name gives.
    Unset,
    /// Maybe defined (by the base image's env): written so that it
    /// expands to its value when defined and as unset otherwise.
    Maybe,
}

/// A Dockerfile word as a template, its names as `scope` says they are.
pub fn template(word: &str, escape: char, scope: &dyn Fn(&str) -> Name) -> Result<String, String> {
    // Most words are plain text.
    if !word.contains(['$', '\'', '"', escape]) {
        return Ok(word.to_string());
    }
    Template::new(word, escape, scope, false).word(None, false)
}

/// The body of a COPY/ADD heredoc with an unquoted delimiter as a
/// template, expanded as BuildKit expands it (moby/buildkit
/// frontend/dockerfile: `SourcesAndDest.ExpandRaw` in
/// instructions/commands.go, called from `dispatch` in
/// dockerfile2llb/convert.go with `shell.NewLex('\\')` and
/// `SkipProcessQuotes = true`): quotes are ordinary characters, the
/// escape is always `\` (whatever the file's escape directive) and is
/// dropped before the character it escapes, and a special or positional
/// parameter (`$1`, `$@`, `$$`, ...) is unset, so it expands to nothing.
pub fn heredoc(body: &str, scope: &dyn Fn(&str) -> Name) -> Result<String, String> {
    if !body.contains(['$', '\\']) {
        return Ok(body.to_string());
    }
    Template::new(body, '\\', scope, true).word(None, false)
}

/// A name the template syntax can write (`${NAME}`).
fn is_identifier(name: &str) -> bool {
    name.starts_with(|x: char| x.is_ascii_alphabetic() || x == '_')
        && name.chars().all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Where a name starting at `c[i]` ends, by BuildKit's rule: digits (a
/// positional parameter), one special parameter's character, or letters,
/// digits and `_`.
pub(super) fn name_end(c: &[char], i: usize) -> usize {
    let run = |ok: fn(&char) -> bool| i + c[i..].iter().take_while(|x| ok(x)).count();
    match c.get(i) {
        Some(d) if d.is_ascii_digit() => run(char::is_ascii_digit),
        Some('@' | '*' | '#' | '?' | '-' | '$' | '!') => i + 1,
        _ => run(|x| *x == '_' || x.is_alphanumeric()),
    }
}

/// A literal `}` inside `${...}` (quoted, escaped, or in a pattern)
/// would end the template's `${...}` early: the template syntax has no
/// way to say it.
fn brace_ok(stop: Option<char>, literal: &str) -> Result<(), String> {
    if stop.is_some() && literal.contains('}') {
        return Err("a literal `}` inside `${...}` is a form strata cannot express".into());
    }
    Ok(())
}

struct Template<'s> {
    c: Vec<char>,
    i: usize,
    escape: char,
    scope: &'s dyn Fn(&str) -> Name,
    /// A heredoc body ([`heredoc`]): quotes are ordinary characters.
    heredoc: bool,
    /// How many `${` the scan is inside.
    depth: usize,
}

impl<'s> Template<'s> {
    fn new(text: &str, escape: char, scope: &'s dyn Fn(&str) -> Name, heredoc: bool) -> Self {
        Template {
            c: text.chars().collect(),
            i: 0,
            escape,
            scope,
            heredoc,
            depth: 0,
        }
    }

    /// Up to `stop` (consumed). `raw`: a pattern, where an escape stays in
    /// front of the character it escapes (as BuildKit keeps it).
    fn word(&mut self, stop: Option<char>, raw: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut dq = false;
        while let Some(&ch) = self.c.get(self.i) {
            if !dq && Some(ch) == stop {
                self.i += 1;
                return Ok(out);
            }
            self.i += 1;
            match ch {
                '\'' | '"' if self.heredoc => out.push(ch),
                '\'' if !dq => {
                    let start = self.i;
                    while self.c.get(self.i).is_some_and(|&x| x != '\'') {
                        self.i += 1;
                    }
                    if self.i >= self.c.len() {
                        return Err("unterminated single quote".into());
                    }
                    let quoted: String = self.c[start..self.i].iter().collect();
                    brace_ok(stop, &quoted)?;
                    out.push_str(&literal(&quoted));
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
                        brace_ok(stop, &n.to_string())?;
                        self.i += 1;
                        if raw {
                            out.push(ch);
                        }
                        out.push_str(&literal(&n.to_string()));
                    }
                    Some(_) => out.push(ch),
                },
                ch => {
                    brace_ok(stop, &ch.to_string())?;
                    out.push(ch);
                }
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
        self.i = name_end(&self.c, start);
        self.c[start..self.i].iter().collect()
    }

    /// What `name` is here. A special or positional parameter is never
    /// defined. A name of other letters than the template syntax's ASCII
    /// ones expands as unset unless it is declared here: then it is an
    /// error, as the template could not give its value.
    fn classify(&mut self, name: &str) -> Result<Name, String> {
        if is_identifier(name) {
            return Ok((self.scope)(name));
        }
        let special = !name.starts_with(|x: char| x == '_' || x.is_alphabetic());
        match (self.scope)(name) {
            Name::Known if !special => Err(format!(
                "`{name}` is declared, but a `strata.toml` name is ASCII letters, digits and `_`: strata cannot express its value"
            )),
            _ => Ok(Name::Unset),
        }
    }

    fn plain(&mut self, name: &str) -> Result<String, String> {
        Ok(match self.classify(name)? {
            Name::Unset => String::new(),
            Name::Known => format!("${{{name}}}"),
            Name::Maybe => format!("${{{name}:-}}"),
        })
    }

    /// After a `$`: a reference in template syntax.
    fn reference(&mut self) -> Result<String, String> {
        if self.c.get(self.i) != Some(&'{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$$".into());
            }
            return self.plain(&name);
        }
        self.i += 1;
        nested(self, |t| &mut t.depth, Self::braced)
    }

    /// After `${`: the reference up to its `}`, in template syntax.
    fn braced(&mut self) -> Result<String, String> {
        if matches!(self.c.get(self.i), Some('{' | '}' | ':')) {
            return Err("bad substitution".into());
        }
        let name = self.name();
        if name.is_empty() {
            return Err("a `${...}` form strata cannot express".into());
        }
        let (colon, op) = match (self.c.get(self.i), self.c.get(self.i + 1)) {
            (Some(':'), Some(&c)) => (true, c),
            (Some(&c), _) => (false, c),
            (None, _) => return Err("missing `}`".into()),
        };
        if op == '}' && !colon {
            self.i += 1;
            return self.plain(&name);
        }
        let what = self.classify(&name)?;
        self.i += 1 + usize::from(colon);
        let c = if colon { ":" } else { "" };
        match op {
            // The test forms accept an undefined name in a template too.
            '-' | '+' | '?' => {
                let word = self.word(Some('}'), false)?;
                if is_identifier(&name) {
                    return Ok(format!("${{{name}{c}{op}{word}}}"));
                }
                // A special parameter: unset.
                match op {
                    '-' => Ok(word),
                    '+' => Ok(String::new()),
                    _ if word.is_empty() => Err(format!("{name}: is not allowed to be unset")),
                    _ => Err(format!("{name}: {word}")),
                }
            }
            '#' | '%' if !colon => {
                let doubled = self.c.get(self.i) == Some(&op);
                self.i += usize::from(doubled);
                let pattern = self.word(Some('}'), true)?;
                let d = if doubled {
                    op.to_string()
                } else {
                    String::new()
                };
                let form = format!("${{{name}{op}{d}{pattern}}}");
                // Unset: trimming the empty string.
                Ok(match what {
                    Name::Known => form,
                    Name::Maybe => format!("${{{name}+{form}}}"),
                    Name::Unset => String::new(),
                })
            }
            '/' if !colon => {
                let all = self.c.get(self.i) == Some(&'/');
                self.i += usize::from(all);
                let pattern = self.word(Some('/'), true)?;
                let replacement = self.word(Some('}'), true)?;
                let a = if all { "/" } else { "" };
                let form = format!("${{{name}/{a}{pattern}/{replacement}}}");
                // Unset: the empty string, which only `*`s match; a
                // pattern of `*`s matches any whole value alike.
                let stars = pattern.chars().all(|x| x == '*');
                Ok(match what {
                    Name::Known => form,
                    _ if stars => replacement,
                    Name::Maybe => format!("${{{name}+{form}}}"),
                    Name::Unset => String::new(),
                })
            }
            _ => Err(format!(
                "`${{{name}{c}{op}...}}` is not an expansion BuildKit knows"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(w: &str, unknown: Name) -> Result<String, String> {
        let scope = |n: &str| if n == "A" { Name::Known } else { unknown };
        template(w, '\\', &scope)
    }

    #[test]
    fn templates() {
        let u = Name::Unset;
        assert_eq!(t("$HOME/x", u).as_deref(), Ok("/x"));
        assert_eq!(t("${A}b", u).as_deref(), Ok("${A}b"));
        assert_eq!(t("$A", u).as_deref(), Ok("${A}"));
        assert_eq!(t("\"a b\" 'c$d'", u).as_deref(), Ok("a b c$$d"));
        assert_eq!(t("\\$HOME", u).as_deref(), Ok("$$HOME"));
        assert_eq!(t("${A:-x y}", u).as_deref(), Ok("${A:-x y}"));
        assert_eq!(t("${A#x}", u).as_deref(), Ok("${A#x}"));
        assert_eq!(t("${A%%\\*}", u).as_deref(), Ok("${A%%\\*}"));
        assert_eq!(t("${A//a/$A}", u).as_deref(), Ok("${A//a/${A}}"));
        assert_eq!(t("${A?need}", u).as_deref(), Ok("${A?need}"));
        assert_eq!(t("${B-x}", Name::Maybe).as_deref(), Ok("${B-x}"));
        // An unset name: the pattern forms give what they give for the
        // empty string.
        assert_eq!(t("${B#x}y", u).as_deref(), Ok("y"));
        assert_eq!(t("${B/*/r}", u).as_deref(), Ok("r"));
        assert_eq!(t("${B/a/r}", u).as_deref(), Ok(""));
        assert!(t("${A:#x}", u).is_err());
        assert!(t("'open", u).is_err());
    }

    /// Special and positional parameters are never set; a non-ASCII name
    /// is unset unless declared, and then refused (no template names it).
    #[test]
    fn names_the_template_syntax_cannot_write() {
        for w in ["$1", "${12}", "$@", "${#}", "$$", "${*}"] {
            assert_eq!(t(w, Name::Known).as_deref(), Ok(""), "{w}");
        }
        assert_eq!(t("${1:-x}${@+y}", Name::Known).as_deref(), Ok("x"));
        assert_eq!(t("[$héllo]", Name::Maybe).as_deref(), Ok("[]"));
        assert_eq!(t("${héllo:-d}", Name::Unset).as_deref(), Ok("d"));
        for w in ["$héllo", "${héllo:-d}"] {
            let e = t(w, Name::Known).expect_err(w);
            assert!(e.contains("cannot express"), "{w}: {e}");
        }
    }

    /// A name the base image may define: its value when it does, the
    /// Dockerfile's unset meaning when it does not.
    #[test]
    fn maybe_defined_names_expand_either_way() {
        use crate::frontend::toml::expand::expand;
        // What each gives when `P` is unset, as BuildKit expands it.
        let cases = [
            ("$P", ""),
            ("${P%%:*}", ""),
            ("${P#/bin:}", ""),
            ("${P/*/r}", "r"),
            ("${P//bin/x}", ""),
            ("${P:+set}", ""),
        ];
        for (word, unset) in cases {
            let text = t(word, Name::Maybe).expect(word);
            let defined = |n: &str| (n == "P").then(|| Some("/bin:/usr/bin".to_string()));
            let undefined = |_: &str| None;
            // Defined: what the word means with `P` known.
            let known = word.replace('P', "A");
            let known = t(&known, Name::Unset).expect(word);
            let as_a = |n: &str| (n == "A").then(|| Some("/bin:/usr/bin".to_string()));
            let set = expand(&known, &as_a).expect(word);
            assert_eq!(expand(&text, &defined), Ok(set), "{word} -> {text}");
            assert_eq!(
                expand(&text, &undefined).as_deref(),
                Ok(unset),
                "{word} -> {text}"
            );
        }
    }

    /// What an unquoted COPY heredoc body expands to, `name=world` and
    /// `E=` defined (by ARG/ENV), `P` from the base image or not.
    fn body(text: &str, p: Option<&str>) -> Result<String, String> {
        use crate::frontend::toml::expand::expand;
        let scope = |n: &str| match n {
            "name" | "E" => Name::Known,
            _ => Name::Maybe,
        };
        let t = heredoc(text, &scope)?;
        let lookup = |n: &str| match n {
            "name" => Some(Some("world".to_string())),
            "E" => Some(Some(String::new())),
            "P" => p.map(|v| Some(v.to_string())),
            _ => None,
        };
        expand(&t, &lookup).map_err(|e| e.message)
    }

    /// The bytes BuildKit writes, from its own integration tests
    /// (moby/buildkit frontend/dockerfile/dockerfile_heredoc_test.go,
    /// `testCopyHeredocSpecialSymbols` and `testHeredocVarSubstitution`):
    /// quotes stay, `\\` before a character is dropped, variables expand.
    #[test]
    fn unquoted_heredoc_bodies_expand_as_buildkit_tests_say() {
        let cases = [
            ("\"quotes in file\"\n", "\"quotes in file\"\n"),
            ("\\\n", "\n"),
            ("\\\\\n", "\\\n"),
            ("\\$\n", "$\n"),
            ("Hello ${name}!\n", "Hello world!\n"),
            ("Hello '${name}'!\n", "Hello 'world'!\n"),
            ("Hello \"${name}\"!\n", "Hello \"world\"!\n"),
        ];
        for (text, want) in cases {
            assert_eq!(body(text, None).as_deref(), Ok(want), "{text:?}");
        }
    }

    /// What BuildKit's lexer (`shell.NewLex('\\')` with
    /// `SkipProcessQuotes`) gives for each body, with `P` unset and with
    /// `P=/bin:/usr/bin` (recorded from the port of the lexer that passed
    /// BuildKit's lexer tables, before the port was removed).
    #[test]
    fn unquoted_heredoc_bodies_expand_as_the_lexer_does() {
        let cases = [
            ("plain text\n", "plain text\n", "plain text\n"),
            (
                "$name ${name} $P ${P}\n",
                "world world  \n",
                "world world /bin:/usr/bin /bin:/usr/bin\n",
            ),
            (
                "${P:-dflt} ${P-d} ${E:-empty} ${E-unset} ${P:+alt} ${name+alt}\n",
                "dflt d empty   alt\n",
                "/bin:/usr/bin /bin:/usr/bin empty  alt alt\n",
            ),
            (
                "${name#wo} ${name%%l*} ${name/o/0} ${P//b/x} ${P#*:} ${P/*/r}\n",
                "rld wor w0rld   r\n",
                "rld wor w0rld /xin:/usr/xin /usr/bin r\n",
            ),
            (
                "exec \"$@\" $1 $# $? $$ ${1:-one} ${@} $0 ${2+two}\n",
                "exec \"\"     one   \n",
                "exec \"\"     one   \n",
            ),
            (
                "price: 5$ and $ alone, $-x\n",
                "price: 5$ and $ alone, x\n",
                "price: 5$ and $ alone, x\n",
            ),
            (
                "it's \"quoted\" 'single $name' \"double $name\"\n",
                "it's \"quoted\" 'single world' \"double world\"\n",
                "it's \"quoted\" 'single world' \"double world\"\n",
            ),
            (
                "\\$name \\${name} \\\\$name a\\b c\\\\d\n",
                "$name ${name} \\world ab c\\d\n",
                "$name ${name} \\world ab c\\d\n",
            ),
            (
                "line \\\ncontinued\n",
                "line \ncontinued\n",
                "line \ncontinued\n",
            ),
            (
                "${name:-'q'} ${P:-\"d q\"} ${P:-a\\\\b}\n",
                "world \"d q\" a\\b\n",
                "world /bin:/usr/bin /bin:/usr/bin\n",
            ),
            (
                "${name#\\?} ${P%\\*} ${name%w\\*}\n",
                "world  world\n",
                "world /bin:/usr/bin world\n",
            ),
            (
                "tab\there été $éx\n",
                "tab\there été \n",
                "tab\there été \n",
            ),
            ("trailing \\", "trailing ", "trailing "),
        ];
        for (text, unset, set) in cases {
            assert_eq!(body(text, None).as_deref(), Ok(unset), "{text:?}");
            let p = Some("/bin:/usr/bin");
            assert_eq!(body(text, p).as_deref(), Ok(set), "{text:?} with P");
        }
    }

    /// What BuildKit refuses, or the template cannot say, is an error.
    #[test]
    fn heredoc_bodies_refused() {
        for text in [
            "${",
            "${}",
            "${name",
            "${1?gone}",
            "${P:-\\}}",
            "${name:#x}",
        ] {
            assert!(body(text, None).is_err(), "{text:?}");
        }
    }
}

//! Layer 1: Dockerfile text -> instruction nodes with spans.
//!
//! Follows BuildKit's parser: parser directives at the top of the file,
//! logical lines joined across escaped line ends (comment and blank lines
//! inside a continuation are skipped), flags split off every instruction,
//! per-instruction argument rules (JSON or shell form, key=value pairs,
//! whitespace lists), and heredocs for ADD, COPY and RUN. The parser knows
//! nothing of what an instruction means: unknown keywords are kept, and the
//! next layer rejects them.

use std::ops::Range;

use super::words::Lex;

/// A parsed Dockerfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ast {
    pub directives: Vec<Directive>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    pub children: Vec<Node>,
    /// Non-fatal problems (e.g. an empty line inside a continuation).
    pub warnings: Vec<(Range<usize>, String)>,
}

/// A parser directive (`# syntax=...`, `# escape=...`, `# check=...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name.
    pub name: String,
    pub value: String,
    pub span: Range<usize>,
}

/// A heredoc attached to an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub fd: u32,
    /// Variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body.
    pub chomp: bool,
    /// The body as written (leading tabs not yet removed).
    pub content: String,
}

impl Heredoc {
    /// The body with `<<-` applied.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword, lower-cased.
    pub keyword: String,
    /// Leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments, split by the keyword's rule (see the module docs).
    pub args: Vec<String>,
    /// ONBUILD's instruction.
    pub sub: Option<Box<Node>>,
    /// The arguments were a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// Comment lines just before the instruction (without `#`).
    pub comments: Vec<String>,
    /// The logical line, continuations joined.
    pub original: String,
    /// Bytes of the instruction in the file (heredoc bodies included).
    pub span: Range<usize>,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
}

/// A parse error: what and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: Range<usize>,
}

fn err(message: impl Into<String>, span: Range<usize>) -> ParseError {
    ParseError {
        message: message.into(),
        span,
    }
}

/// One physical line: byte offsets of its start, the end of its text (no
/// line terminator) and the end including the terminator.
#[derive(Clone, Copy, Debug)]
struct Line {
    start: usize,
    end: usize,
    full_end: usize,
}

fn split_lines(text: &str) -> Vec<Line> {
    let mut v = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    while start < bytes.len() {
        let full_end = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start + i + 1,
            None => bytes.len(),
        };
        let mut end = full_end;
        while end > start && (bytes[end - 1] == b'\n' || bytes[end - 1] == b'\r') {
            end -= 1;
        }
        v.push(Line {
            start,
            end,
            full_end,
        });
        start = full_end;
    }
    v
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Directive recognition state.
struct Directives {
    escape: char,
    done: bool,
    parsed: Vec<Directive>,
}

impl Directives {
    /// `#[ \t]*name[ \t]*=[ \t]*value[ \t]*` with a known name, at the top.
    fn possible(&mut self, line: &str, span: Range<usize>) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive_parts(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !super::directives::NAMES.contains(&name.as_str()) {
            self.done = true;
            return Ok(());
        }
        if self.parsed.iter().any(|d| d.name == name) {
            return Err(err(
                format!("only one {name} parser directive can be used"),
                span,
            ));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(err(
                        format!("invalid escape token '{value}' does not match ` or \\"),
                        span,
                    ));
                }
            };
        }
        self.parsed.push(Directive {
            name,
            value: value.to_string(),
            span,
        });
        Ok(())
    }
}

/// Splits a directive line into name and value.
pub(crate) fn directive_parts(line: &str) -> Option<(&str, &str)> {
    directive_parts_after(line, "#")
}

/// Splits `PREFIX[ \t]*name[ \t]*=[ \t]*value[ \t]*` into name and value.
pub(crate) fn directive_parts_after<'l>(line: &'l str, prefix: &str) -> Option<(&'l str, &'l str)> {
    let rest = line.strip_prefix(prefix)?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let rest = rest[name_len..].trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Strips a trailing line continuation; `true` when the line ends there.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    let lines = split_lines(text);
    let mut d = Directives {
        escape: '\\',
        done: false,
        parsed: Vec::new(),
    };
    let mut ast = Ast {
        escape: '\\',
        ..Ast::default()
    };
    let mut comments: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let mut start = l.start;
        if i == 0 && text[l.start..l.end].starts_with('\u{feff}') {
            start += '\u{feff}'.len_utf8();
        }
        let raw = &text[start..l.end.max(start)];
        if is_comment(raw) {
            let c = raw.trim_start()[1..].trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let trimmed = raw.trim_start();
        let lead = raw.len() - trimmed.len();
        d.possible(trimmed, start..l.end)?;
        let processed = if is_comment(trimmed) { "" } else { trimmed };
        i += 1;
        let start_line = i;
        let node_start = start + lead;
        let mut node_end = l.end;
        let (mut line, mut eol) = trim_continuation(processed, d.escape);
        if eol && line.is_empty() {
            continue;
        }
        while !eol && i < lines.len() {
            let l = lines[i];
            let raw = &text[l.start..l.end];
            d.possible(raw, l.start..l.end)?;
            i += 1;
            node_end = l.end;
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start().is_empty() {
                ast.warnings.push((
                    l.start..l.full_end,
                    "empty continuation line (a future version may treat it as the end of the instruction)".into(),
                ));
                continue;
            }
            let (c, e) = trim_continuation(raw, d.escape);
            line.push_str(&c);
            eol = e;
        }
        let span = node_start..node_end;
        let mut node = node_from_line(&line, d.escape, span.clone())?;
        node.comments = std::mem::take(&mut comments);
        node.start_line = start_line;
        if node.can_contain_heredoc() && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|m| err(m, span.clone()))?;
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    node_end = l.end;
                    let body = &text[l.start..l.end];
                    let cand = if doc.chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if cand == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(&text[l.start..l.full_end]);
                }
                if !terminated {
                    return Err(err(
                        format!("unterminated heredoc `{}`", doc.name),
                        span.start..node_end,
                    ));
                }
                node.heredocs.push(doc);
            }
        }
        node.span = span.start..node_end;
        node.end_line = i;
        ast.children.push(node);
    }
    if ast.children.is_empty() {
        return Err(err("file with no instructions", 0..text.len()));
    }
    ast.escape = d.escape;
    ast.directives = d.parsed;
    Ok(ast)
}

/// `[\t\v\f\r ]`
fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn split_ws(s: &str) -> Vec<String> {
    s.split(is_ws)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds the node of one logical line.
fn node_from_line(line: &str, escape: char, span: Range<usize>) -> Result<Node, ParseError> {
    node_in(line, escape, span, false)
}

/// [`node_from_line`]; `trigger`: the line is an ONBUILD's trigger, whose
/// own trigger (`ONBUILD ONBUILD ...`, refused by the checks) is not
/// parsed, so that no chain of them can recurse past the stack.
fn node_in(
    line: &str,
    escape: char,
    span: Range<usize>,
    trigger: bool,
) -> Result<Node, ParseError> {
    let t = line.trim();
    let (cmd, rest) = match t.find(is_ws) {
        Some(i) => (&t[..i], t[i..].trim_start_matches(is_ws)),
        None => (t, ""),
    };
    let (rest, flags) = extract_flags(rest);
    let rest = rest.trim();
    let mut node = Node {
        keyword: cmd.to_lowercase(),
        flags,
        args: Vec::new(),
        sub: None,
        json: false,
        heredocs: Vec::new(),
        comments: Vec::new(),
        original: line.to_string(),
        span: span.clone(),
        start_line: 0,
        end_line: 0,
    };
    match node.keyword.as_str() {
        "add" | "copy" | "volume" => match parse_json(rest) {
            Json::Ok(v) => {
                node.args = v;
                node.json = true;
            }
            Json::NotStrings => return Err(not_strings(span)),
            Json::Invalid => node.args = split_ws(rest),
        },
        "run" | "cmd" | "entrypoint" | "shell" => {
            (node.args, node.json) = maybe_json(rest).map_err(|_| not_strings(span))?;
        }
        "from" | "expose" => node.args = split_ws(rest),
        "arg" => node.args = parse_words(rest, escape),
        "env" | "label" => {
            node.args = name_vals(rest, &node.keyword, escape).map_err(|m| err(m, span))?;
        }
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "healthcheck" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if sep > 0 {
                node.args.push(rest[..sep].to_string());
                let (cmd, json) =
                    maybe_json(rest[sep..].trim_start()).map_err(|_| not_strings(span))?;
                node.args.extend(cmd);
                node.json = json;
            }
        }
        "onbuild" => {
            if !rest.is_empty() && !trigger {
                let sub = node_in(rest, escape, span, true)?;
                node.sub = Some(Box::new(sub));
            }
        }
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

fn not_strings(span: Range<usize>) -> ParseError {
    err(
        "JSON arrays in Dockerfile instructions must be comprised of strings only",
        span,
    )
}

enum Json {
    Ok(Vec<String>),
    NotStrings,
    Invalid,
}

/// A JSON array of strings, as BuildKit reads one.
fn parse_json(rest: &str) -> Json {
    let r = rest.trim_start();
    if !r.starts_with('[') {
        return Json::Invalid;
    }
    match serde_json::from_str::<serde_json::Value>(r) {
        Ok(serde_json::Value::Array(items)) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Ok(out)
        }
        _ => Json::Invalid,
    }
}

/// JSON form, or the whole text as one argument; `Err` for a JSON array
/// with a non-string element.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), ()> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Json::Ok(v) => Ok((v, true)),
        Json::NotStrings => Err(()),
        Json::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

/// Splits leading `--flag` words off `line` (BuildKit's
/// `extractBuilderFlags`): quotes and `\` escapes removed, a bare `--`
/// ends the flags.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let (flags, end) = split_words(line, None);
    (&line[end..], flags)
}

/// Quote-aware word split; quotes and escapes are kept (BuildKit's
/// `parseWords`).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    split_words(rest, Some(escape)).0
}

/// The one word splitter of both: words end at unquoted whitespace; a
/// quote (`'`, `"`) runs to the same quote, an escape takes the next
/// character. `Some(escape)`: every word, quotes and escapes kept, no
/// escape inside `'...'`. `None` (flags): `\` escapes everywhere, quotes
/// and escapes removed, only leading words that start with `--`, a bare
/// `--` ending them; ASCII whitespace only. Also returns the byte offset
/// where the words read end.
fn split_words(line: &str, escape: Option<char>) -> (Vec<String>, usize) {
    let flags = escape.is_none();
    let escape = escape.unwrap_or('\\');
    let is_ws = |c: char| match flags {
        true => c.is_ascii_whitespace() || c == '\x0b',
        false => c.is_whitespace(),
    };
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let (mut in_word, mut blank_ok) = (false, false);
    let mut i = 0;
    while let Some(&(at, ch)) = chars.get(i) {
        i += 1;
        let escapes = ch == escape && quote.is_none_or(|q| flags || q != '\'');
        if quote.is_none() && is_ws(ch) {
            if in_word {
                if flags && word == "--" {
                    return (words, at);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                (in_word, blank_ok) = (false, false);
            }
            continue;
        }
        if !in_word {
            if flags && !line[at..].starts_with("--") {
                return (words, at);
            }
            in_word = true;
        }
        if quote == Some(ch) {
            quote = None;
        } else if quote.is_none() && (ch == '\'' || ch == '"') {
            (quote, blank_ok) = (Some(ch), true);
        } else if escapes {
            // An escape at the end is dropped (and ends a quote).
            let Some(&(_, next)) = chars.get(i) else {
                quote = None;
                continue;
            };
            i += 1;
            if !flags {
                word.push(ch);
            }
            word.push(next);
            continue;
        } else {
            word.push(ch);
            continue;
        }
        // A quote character.
        if !flags {
            word.push(ch);
        }
    }
    if in_word && !(flags && word == "--") && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (words, line.len())
}

/// ENV / LABEL arguments as (key, value, separator) triples.
fn name_vals(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts: Vec<&str> = rest.splitn(2, is_ws).collect();
        if parts.len() < 2 {
            return Err(format!("{} must have two arguments", key.to_uppercase()));
        }
        let value = parts[1].trim_start_matches(is_ws);
        return Ok(vec![parts[0].to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::with_capacity(3 * words.len());
    for mut w in words {
        let Some(eq) = w.find('=') else {
            return Err(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            ));
        };
        // The word's buffer keeps the name; only the value is copied.
        let v = w[eq + 1..].to_string();
        w.truncate(eq);
        out.extend([w, v, "=".to_string()]);
    }
    Ok(out)
}

impl Node {
    /// ADD, COPY and RUN (also under ONBUILD) in shell form.
    pub fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.keyword[..], &self.sub) {
            ("onbuild", Some(sub)) => sub,
            _ => self,
        };
        matches!(node.keyword.as_str(), "add" | "copy" | "run") && !node.json
    }

    /// Where `needle` first occurs in the instruction's source, for
    /// diagnostics; the whole instruction when it is not found verbatim.
    pub fn locate(&self, text: &str, needle: &str) -> Range<usize> {
        if !needle.is_empty()
            && let Some(src) = text.get(self.span.clone())
            && let Some(i) = src.find(needle)
        {
            return self.span.start + i..self.span.start + i + needle.len();
        }
        self.first_line(text)
    }

    /// The instruction's first line.
    pub fn first_line(&self, text: &str) -> Range<usize> {
        let src = text.get(self.span.clone()).unwrap_or("");
        let end = src.find('\n').unwrap_or(src.len());
        self.span.start..self.span.start + end
    }
}

/// The heredocs named on a line, in order.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    let words = lex.words(line).unwrap_or_default();
    let mut docs = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut w = words[i].clone();
        i += 1;
        // `<<- EOF`: the marker and the name as separate words.
        let digits = w.bytes().take_while(u8::is_ascii_digit).count();
        if matches!(&w[digits..], "<<" | "<<-")
            && let Some(next) = words.get(i)
        {
            w.push(' ');
            w.push_str(next);
            i += 1;
        }
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// A heredoc marker word (`<<EOF`, `3<<-'EOF'`), or `None` when the word is
/// not one.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    let digits = src.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = src[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = if digits == 0 {
        0
    } else {
        src[..digits]
            .parse::<u32>()
            .map_err(|e| format!("bad heredoc file descriptor: {e}"))?
    };
    let mut lex = Lex::new('\\');
    let words = lex.words(rest)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.words(rest)?;
    if raw.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand: quotes(&words[0]) == quotes(&raw[0]),
        chomp,
        content: String::new(),
    }))
}

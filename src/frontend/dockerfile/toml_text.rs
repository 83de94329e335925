//! Writing TOML values for `convert`: basic strings, keys, string arrays,
//! and multi-line strings that keep a RUN's lines as the Dockerfile has
//! them while parsing back to exactly the same command.

use std::fmt::Write as _;

/// A TOML basic string.
pub fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        escape_char(&mut out, c, false);
    }
    out.push('"');
    out
}

/// The text of a multi-line basic string: a newline and a tab stand for
/// themselves, and a quote is escaped only where it could end the string
/// (before another quote, or last).
fn escape_multi(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('"', Some('"') | None) => out.push_str("\\\""),
            ('"', _) => out.push('"'),
            (c, _) => escape_char(out, c, true),
        }
    }
}

/// `c` as it is written in a basic string (`multi`: a multi-line one, in
/// which a newline and a tab stand for themselves).
fn escape_char(out: &mut String, c: char, multi: bool) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' if multi => out.push('\n'),
        '\t' if multi => out.push('\t'),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\u{:04X}", c as u32);
        }
        c => out.push(c),
    }
}

/// A TOML key: bare when possible.
pub fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

/// An array of basic strings on one line.
pub fn list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The lines of an instruction's logical line as the Dockerfile parser
/// joins them: the first line from its first non-blank character, each
/// continuation without its escape and the blanks after it; comment and
/// blank lines inside the continuation are skipped.
pub fn continuation_pieces(source: &str, escape: char) -> Vec<String> {
    let mut pieces = Vec::new();
    for (i, raw) in source.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let raw = if i == 0 { raw.trim_start() } else { raw };
        if i > 0 && (raw.trim_start().starts_with('#') || raw.trim().is_empty()) {
            continue;
        }
        let t = raw.trim_end_matches([' ', '\t']);
        match t.strip_suffix(escape) {
            Some(before) if !before.ends_with(escape) => pieces.push(before.to_string()),
            _ => {
                pieces.push(raw.to_string());
                break;
            }
        }
    }
    pieces
}

/// `script` (the end of the logical line joined from `pieces`) as a TOML
/// multi-line basic string with one line per piece, each line but the last
/// ending in a backslash. TOML drops the newline and the blanks that follow
/// such a backslash, so the blanks a piece starts with are written before
/// the backslash of the line above. `None` when `script` is not the end of
/// the joined pieces, or has a single piece.
pub fn continued_string(script: &str, pieces: &[String]) -> Option<String> {
    let joined: String = pieces.concat();
    let skip = joined.len().checked_sub(script.len())?;
    if !joined.ends_with(script) || script.contains(['\n', '\r']) {
        return None;
    }
    // The pieces, cut to the script.
    let mut lines: Vec<String> = Vec::new();
    let mut at = 0;
    for p in pieces {
        let end = at + p.len();
        if end > skip {
            lines.push(p[skip.saturating_sub(at)..].to_string());
        }
        at = end;
    }
    for i in (1..lines.len()).rev() {
        let lead_len = lines[i].len() - lines[i].trim_start_matches([' ', '\t']).len();
        let lead: String = lines[i].drain(..lead_len).collect();
        lines[i - 1].push_str(&lead);
    }
    lines.retain(|l| !l.is_empty());
    if lines.len() < 2 {
        return None;
    }
    let mut out = String::from("\"\"\"");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\\\n    ");
        }
        escape_multi(&mut out, l);
    }
    out.push_str("\"\"\"");
    parses_to(&out, script).then_some(out)
}

/// `s` as a multi-line basic string (a heredoc's lines as lines).
pub fn multiline(s: &str) -> String {
    let mut out = String::from("\"\"\"\n");
    escape_multi(&mut out, s);
    out.push_str("\"\"\"");
    if parses_to(&out, s) { out } else { q(s) }
}

/// Does the TOML value `value` read back as `want`?
fn parses_to(value: &str, want: &str) -> bool {
    toml::from_str::<toml::Table>(&format!("v = {value}\n"))
        .ok()
        .and_then(|t| t.get("v").and_then(|v| v.as_str().map(|s| s == want)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continued_lines_read_back_exactly() {
        let src = "RUN apt-get update && \\\n    apt-get install -y \\\n  # a comment\n\tcurl  \\  \n    git";
        let pieces = continuation_pieces(src, '\\');
        assert_eq!(
            pieces,
            [
                "RUN apt-get update && ",
                "    apt-get install -y ",
                "\tcurl  ",
                "    git"
            ]
        );
        let script = "apt-get update &&     apt-get install -y \tcurl      git";
        let s = continued_string(script, &pieces).expect("multi-line");
        assert_eq!(s.lines().count(), 4, "{s}");
        assert!(s.starts_with("\"\"\"apt-get update &&     \\\n"), "{s}");
        assert!(parses_to(&s, script));
        assert_eq!(continued_string("x", &["RUN x".to_string()]), None);
        assert_eq!(continued_string("other", &pieces), None);
    }

    #[test]
    fn quotes_and_backslashes_survive() {
        let pieces = ["RUN echo \"a\\\\\" ".to_string(), "'b'\"\"\"".to_string()];
        let script = "echo \"a\\\\\" 'b'\"\"\"";
        let s = continued_string(script, &pieces).expect("multi-line");
        assert!(parses_to(&s, script), "{s}");
        let m = multiline("cat <<EOF\nline \"1\"\n\tx\\y\nEOF\n");
        assert!(m.contains("\nline "), "{m}");
        assert!(parses_to(&m, "cat <<EOF\nline \"1\"\n\tx\\y\nEOF\n"));
    }
}

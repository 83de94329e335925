//! Writing TOML values: basic strings, keys, string arrays, and multi-line
//! strings (a RUN broken where its source broke it, a heredoc's lines)
//! that parse back to exactly the same string.

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
pub fn list<S: AsRef<str>>(v: &[S]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| q(s.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `script` as a TOML multi-line basic string broken into lines at the
/// byte offsets `breaks` (where its source continued the line), each line
/// but the last ending in a backslash, continuation lines indented by
/// `indent`. TOML drops the newline and the blanks that follow such a
/// backslash, so the blanks a piece starts with are written before the
/// backslash of the line above. `None` when that gives fewer than two
/// lines, or `script` holds a newline (see [`multiline`]). Offsets that are
/// not inside `script` on a character boundary are ignored.
pub fn continued(script: &str, breaks: &[usize], indent: &str) -> Option<String> {
    if script.contains(['\n', '\r']) {
        return None;
    }
    let mut cuts: Vec<usize> = breaks
        .iter()
        .copied()
        .filter(|&b| b > 0 && b < script.len() && script.is_char_boundary(b))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut lines: Vec<String> = Vec::new();
    let mut at = 0;
    for end in cuts.into_iter().chain([script.len()]) {
        lines.push(script[at..end].to_string());
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
            out.push_str("\\\n");
            out.push_str(indent);
        }
        escape_multi(&mut out, l);
    }
    out.push_str("\"\"\"");
    parses_to(&out, script).then_some(out)
}

/// `s` as a multi-line basic string (a heredoc's lines as lines); a basic
/// string when that would not read back as `s`.
pub fn multiline(s: &str) -> String {
    let mut out = String::from("\"\"\"\n");
    escape_multi(&mut out, s);
    out.push_str("\"\"\"");
    if parses_to(&out, s) { out } else { q(s) }
}

/// Does the TOML value `value` read back as `want`?
pub fn parses_to(value: &str, want: &str) -> bool {
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
        let script = "apt-get update &&     apt-get install -y \tcurl      git";
        let breaks = [18, 41, 48];
        let s = continued(script, &breaks, "    ").expect("multi-line");
        assert_eq!(s.lines().count(), 4, "{s}");
        assert!(s.starts_with("\"\"\"apt-get update &&     \\\n"), "{s}");
        assert!(s.contains("install -y \t\\\n    curl      \\\n"), "{s}");
        assert!(parses_to(&s, script));
        assert_eq!(continued("x", &[], ""), None);
        // Breaks outside the string, or only before blanks: one line.
        assert_eq!(continued("ab", &[0, 2, 7], ""), None);
        assert_eq!(continued("a   ", &[1], ""), None);
        // Not a character boundary: ignored.
        assert_eq!(continued("é", &[1], ""), None);
        assert_eq!(continued("a\nb", &[1], ""), None);
    }

    #[test]
    fn quotes_and_backslashes_survive() {
        let script = "echo \"a\\\\\" 'b'\"\"\"";
        let s = continued(script, &[11], "").expect("multi-line");
        assert!(parses_to(&s, script), "{s}");
        let ends_in_escape = "echo a\\ b\\";
        let s = continued(ends_in_escape, &[7], "  ").expect("multi-line");
        assert!(parses_to(&s, ends_in_escape), "{s}");
        let m = multiline("cat <<EOF\nline \"1\"\n\tx\\y\nEOF\n");
        assert!(m.contains("\nline "), "{m}");
        assert!(parses_to(&m, "cat <<EOF\nline \"1\"\n\tx\\y\nEOF\n"));
    }
}

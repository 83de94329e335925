//! Where an instruction's logical line was continued: the pieces of its
//! source lines as the parser joins them, and the byte offsets in a joined
//! string (a RUN's command) where a new source line began. A printer breaks
//! the string at those offsets (`frontend::toml::text::continued`).

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

/// The offsets in `script` (the end of the logical line joined from
/// `pieces`) where a piece begins. `None` when `script` is not the end of
/// the joined pieces.
pub fn breaks(script: &str, pieces: &[String]) -> Option<Vec<usize>> {
    let joined: String = pieces.concat();
    if !joined.ends_with(script) {
        return None;
    }
    let skip = joined.len() - script.len();
    let mut out = Vec::new();
    let mut at = 0;
    for p in pieces {
        at += p.len();
        if at > skip && at - skip < script.len() {
            out.push(at - skip);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_breaks() {
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
        assert_eq!(breaks(script, &pieces), Some(vec![18, 41, 48]));
        assert_eq!(breaks("other", &pieces), None);
        assert_eq!(breaks("x", &["RUN x".to_string()]), Some(vec![]));
        // The script starts inside the second piece.
        assert_eq!(
            breaks("install -y \tcurl      git", &pieces),
            Some(vec![11, 18])
        );
    }
}

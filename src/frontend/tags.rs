//! `-t/--tag` on the command line: one target, references normalized
//! and deduplicated, the same diagnostics from both frontends.

use super::diag::Sink;
use crate::reference::Reference;

/// The tags `-t` adds to the single selected target (`selected` are the
/// selected targets' names), normalized, without duplicates. With several
/// targets selected, an error (`help` says how to pick one).
pub fn cli_tags(sink: &mut Sink, tags: &[String], selected: &[&str], help: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if tags.is_empty() {
        return out;
    }
    if selected.len() > 1 {
        sink.error_help(
            0..0,
            format!(
                "-t/--tag given, but {} targets are selected ({})",
                selected.len(),
                selected.join(", ")
            ),
            "in this file",
            help,
        );
        return out;
    }
    for t in tags {
        match Reference::parse(t) {
            Ok(r) => {
                let n = r.normalized();
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            Err(e) => sink.error(0..0, format!("bad -t/--tag `{t}`: {e}"), "in this file"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::SourceFile;

    fn run(tags: &[&str], selected: &[&str]) -> (Vec<String>, Vec<String>) {
        let file = SourceFile {
            name: "f".into(),
            text: String::new(),
        };
        let mut sink = Sink::new(&file);
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let out = cli_tags(&mut sink, &tags, selected, "pick one");
        (out, sink.errors.iter().map(|e| e.message.clone()).collect())
    }

    #[test]
    fn one_target_gets_normalized_unique_tags() {
        let (tags, errors) = run(&["a/b:1", "a/b:1", "c"], &["app"]);
        assert_eq!(tags, ["a/b:1", "c:latest"]);
        assert!(errors.is_empty());
        let (tags, errors) = run(&["a/b:1"], &["app", "debug"]);
        assert!(tags.is_empty());
        assert_eq!(
            errors,
            ["-t/--tag given, but 2 targets are selected (app, debug)"]
        );
        let (_, errors) = run(&["Bad:tag:x"], &["app"]);
        assert!(
            errors[0].starts_with("bad -t/--tag `Bad:tag:x`"),
            "{errors:?}"
        );
    }
}

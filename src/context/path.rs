//! Lexical path helpers with Go's `path.Clean` semantics, on `/`-separated
//! strings (image and context paths are always `/`-separated).

/// Go's `path.Clean`: collapses `//`, drops `.` components, resolves `..`
/// lexically (a rooted path never climbs above `/`), drops a trailing `/`.
/// The empty path becomes `.`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    // Number of leading `..` components kept in an unrooted path.
    let mut dotdots = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.len() > dotdots {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                    dotdots += 1;
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// A path relative to a root: cleaned, leading `/` removed, `""` for the
/// root itself. `None` when the path climbs above the root (`../x`).
pub(crate) fn relative(path: &str) -> Option<String> {
    let cleaned = clean(path.trim_start_matches('/'));
    if cleaned == ".." || cleaned.starts_with("../") {
        return None;
    }
    Some(if cleaned == "." {
        String::new()
    } else {
        cleaned
    })
}

/// Joins two relative paths, either of which may be empty (the root).
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The last component of a relative path (`""` for the root).
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Every proper ancestor of a relative path, outermost first, excluding the
/// root: `a/b/c` gives `a`, `a/b`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        let cases = [
            ("", "."),
            (".", "."),
            ("a/./b", "a/b"),
            ("a//b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("/", "/"),
            ("//a/b/..", "/a"),
            ("../../x/..", "../.."),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn relative_rejects_escape() {
        assert_eq!(relative("/a/b/"), Some("a/b".to_string()));
        assert_eq!(relative("/"), Some(String::new()));
        assert_eq!(relative("./"), Some(String::new()));
        assert_eq!(relative("../x"), None);
        assert_eq!(relative("a/../../x"), None);
        // A leading `/` is the root, and `..` may not climb above it.
        assert_eq!(relative("/../x"), None);
        assert_eq!(relative("a/.."), Some(String::new()));
    }

    #[test]
    fn ancestors_and_basename() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
        assert_eq!(basename("a/b/c"), "c");
        assert_eq!(basename("c"), "c");
    }
}

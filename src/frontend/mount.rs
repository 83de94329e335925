//! RUN mount options, one table for both frontends: the kinds, the
//! options each kind takes, the Dockerfile spellings of option names,
//! and the split of a `--mount` value into fields.

use crate::ir::{MountKind, Sharing};

/// `bind`, `cache`, ... -> the kind.
pub fn parse_kind(s: &str) -> Option<MountKind> {
    Some(match s {
        "bind" => MountKind::Bind,
        "cache" => MountKind::Cache,
        "tmpfs" => MountKind::Tmpfs,
        "secret" => MountKind::Secret,
        "ssh" => MountKind::Ssh,
        _ => return None,
    })
}

pub fn kind_name(k: MountKind) -> &'static str {
    match k {
        MountKind::Bind => "bind",
        MountKind::Cache => "cache",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Secret => "secret",
        MountKind::Ssh => "ssh",
    }
}

/// The options a kind takes besides `type` and `target` (TOML key names).
pub fn options(kind: MountKind) -> &'static [&'static str] {
    match kind {
        MountKind::Bind => &["source", "from", "readonly"],
        MountKind::Cache => &[
            "source", "from", "id", "sharing", "readonly", "mode", "uid", "gid",
        ],
        MountKind::Tmpfs => &["size"],
        MountKind::Secret => &["source", "id", "required", "mode", "uid", "gid", "env"],
        MountKind::Ssh => &["id", "required", "mode", "uid", "gid"],
    }
}

/// A Dockerfile option name (lower-cased) as the TOML key it sets; `rw`
/// (the negation of `readonly`) stays `rw`.
pub fn canonical_key(k: &str) -> &str {
    match k {
        "target" | "dst" | "destination" => "target",
        "source" | "src" => "source",
        "ro" | "readonly" => "readonly",
        "rw" | "readwrite" => "rw",
        other => other,
    }
}

/// A mount's boolean option: no value, or what BuildKit's (Go's
/// `strconv.ParseBool`) reads: `1`, `t`, `T`, `TRUE`, `true`, `True` and
/// `0`, `f`, `F`, `FALSE`, `false`, `False`.
pub fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Some(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Some(false),
        _ => None,
    }
}

/// A cache mount's sharing mode, in any case (as BuildKit reads it).
pub fn parse_sharing(s: &str) -> Option<Sharing> {
    Some(match s.to_ascii_lowercase().as_str() {
        "shared" => Sharing::Shared,
        "private" => Sharing::Private,
        "locked" => Sharing::Locked,
        _ => return None,
    })
}

/// One `key[=value]` field of a `--mount` value, key lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    pub value: Option<String>,
}

/// Fields of a `--mount` value: comma separated, `"` quoting commas
/// (quotes removed), empty fields dropped.
pub fn fields(s: &str) -> Vec<Field> {
    let mut raw = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => raw.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    raw.push(cur);
    raw.into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => Field {
                key: k.trim().to_lowercase(),
                value: Some(v.to_string()),
            },
            None => Field {
                key: f.trim().to_lowercase(),
                value: None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_their_commas() {
        let f = fields("type=cache,\"target=/a,b\",ro,,uid=1");
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["type", "target", "ro", "uid"]);
        assert_eq!(f[1].value.as_deref(), Some("/a,b"));
        assert_eq!(f[2].value, None);
        assert_eq!(canonical_key("dst"), "target");
        assert_eq!(parse_bool(Some("0")), Some(false));
        assert_eq!(parse_bool(Some("yes")), None);
        assert!(options(MountKind::Tmpfs).contains(&"size"));
        assert_eq!(parse_kind("volume"), None);
    }
}

//! Image references (`[host[:port]/]path[:tag][@sha256:...]`).
//!
//! The grammar is Docker's (distribution/reference): a lowercase path of
//! components separated by `/`, each component alphanumeric runs joined by
//! `.`, `_`, `__` or dashes; an optional registry host in front (recognised
//! by a `.` or `:` in the first component, or the name `localhost`); an
//! optional tag and an optional digest. No default registry is filled in:
//! `registry` is only what the user wrote.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::digest::Digest;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, when written.
    pub registry: Option<String>,
    /// The path, e.g. `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

static COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$")
        .expect("static regex")
});
// `\w` is ASCII here, as in Go's regexp (a Unicode `\w` would also accept
// letters registries refuse, and compiles to a far larger automaton).
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex"));

/// Longest repository name (with the registry) the grammar allows.
const MAX_NAME: usize = 255;

impl Reference {
    /// Parses a reference; the error says what is wrong, for a diagnostic.
    pub fn parse(s: &str) -> Result<Reference, String> {
        if s.is_empty() {
            return Err("an image reference cannot be empty".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| {
                    format!("`{d}` is not a digest (expected sha256: and 64 lowercase hex digits)")
                })?;
                (r, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !TAG.is_match(tag)
        {
            return Err(format!(
                "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)"
            ));
        }
        if name.is_empty() {
            return Err("the reference has no repository name".into());
        }
        if name.len() > MAX_NAME {
            return Err(format!(
                "the repository name is longer than {MAX_NAME} characters"
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                if !HOST.is_match(first) {
                    return Err(format!("`{first}` is not a valid registry host"));
                }
                (Some(first.to_string()), path)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            if component.is_empty() {
                return Err("the repository name has an empty path component".into());
            }
            if !COMPONENT.is_match(component) {
                let hint = if component.chars().any(|c| c.is_ascii_uppercase()) {
                    " (repository names must be lowercase)"
                } else {
                    ""
                };
                return Err(format!(
                    "`{component}` is not a valid repository path component{hint}"
                ));
            }
        }
        Ok(Reference {
            registry,
            repository: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `[registry/]repository[:tag][@digest]`, with `:latest` when the
    /// reference has neither a tag nor a digest.
    pub fn normalized(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.registry {
            s.push_str(r);
            s.push('/');
        }
        s.push_str(&self.repository);
        match (&self.tag, &self.digest) {
            (None, None) => s.push_str(":latest"),
            (tag, digest) => {
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = digest {
                    s.push('@');
                    s.push_str(&d.to_string());
                }
            }
        }
        s
    }
}

/// Registry hosts that all mean Docker Hub.
const HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

impl Reference {
    /// The name as Docker shows it and as the store keeps it: Docker Hub's
    /// host and its `library/` namespace dropped (`docker.io/library/debian`,
    /// `library/debian` and `debian` are one image, `debian:latest`), other
    /// registries kept; `:latest` added as in [`Reference::normalized`].
    pub fn familiar(&self) -> String {
        let hub = self
            .registry
            .as_deref()
            .is_none_or(|r| HUB_HOSTS.contains(&r));
        let mut r = self.clone();
        if hub {
            r.registry = None;
            if let Some(rest) = r.repository.strip_prefix("library/")
                && !rest.contains('/')
            {
                r.repository = rest.to_string();
            }
        }
        r.normalized()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn valid_references() {
        let r = Reference::parse("busybox").expect("valid");
        assert_eq!(
            (
                r.registry.as_deref(),
                r.repository.as_str(),
                r.tag.as_deref()
            ),
            (None, "busybox", None)
        );
        assert_eq!(r.normalized(), "busybox:latest");

        let r = Reference::parse("localhost:5000/a/b_c__d-e--f.g:v1.2-rc_3").expect("valid");
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.repository, "a/b_c__d-e--f.g");
        assert_eq!(r.tag.as_deref(), Some("v1.2-rc_3"));

        let r = Reference::parse(&format!("example.com/app@{D}")).expect("valid");
        assert_eq!(r.registry.as_deref(), Some("example.com"));
        assert_eq!(r.tag, None);
        assert_eq!(r.normalized(), format!("example.com/app@{D}"));

        let r = Reference::parse(&format!("app:1@{D}")).expect("valid");
        assert_eq!(r.normalized(), format!("app:1@{D}"));

        let r = Reference::parse("localhost/app").expect("valid");
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        // Not a host: no dot, colon or localhost.
        let r = Reference::parse("library/busybox:1").expect("valid");
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "library/busybox");
    }

    #[test]
    fn invalid_references() {
        let too_long_tag = format!("a:{}", "x".repeat(129));
        let too_long_name = "a".repeat(256);
        let cases = [
            "",
            "Busybox",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:.tag",
            "a:-tag",
            "a:t@g",
            "a:tàg",
            "a:éclair",
            "a@sha256:abc",
            "a@md5:0123",
            "a_/b",
            "a..b",
            "-a",
            "a___b",
            "exa_mple.com/a",
            "a b",
            ":tag",
            too_long_tag.as_str(),
            too_long_name.as_str(),
        ];
        for c in cases {
            assert!(Reference::parse(c).is_err(), "{c:?} should be rejected");
        }
    }

    #[test]
    fn familiar_names_fold_docker_hub_spellings() {
        let f = |s: &str| Reference::parse(s).expect(s).familiar();
        for hub in [
            "debian",
            "library/debian",
            "docker.io/debian",
            "docker.io/library/debian",
            "index.docker.io/library/debian:latest",
            "registry-1.docker.io/debian",
        ] {
            assert_eq!(f(hub), "debian:latest", "{hub}");
        }
        assert_eq!(f("docker.io/user/app:2"), "user/app:2");
        assert_eq!(f("user/app"), "user/app:latest");
        // `library/` is only Hub's official namespace one level deep.
        assert_eq!(f("library/a/b"), "library/a/b:latest");
        assert_eq!(f("quay.io/library/debian"), "quay.io/library/debian:latest");
        assert_eq!(f("localhost:5000/x:1"), "localhost:5000/x:1");
        assert_eq!(f(&format!("docker.io/library/x@{D}")), format!("x@{D}"));
    }

    #[test]
    fn max_length_tag_is_accepted() {
        let tag = "x".repeat(128);
        let r = Reference::parse(&format!("a:{tag}")).expect("valid");
        assert_eq!(r.tag.as_deref(), Some(tag.as_str()));
    }
}

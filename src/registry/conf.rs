//! Registry configuration in the format podman and buildah users already
//! keep: `containers-registries.conf(5)`, version 2 (TOML).
//!
//! ```toml
//! unqualified-search-registries = ["docker.io"]
//!
//! [[registry]]
//! prefix = "docker.io"            # defaults to `location`
//! location = "docker.io"
//! insecure = false                # plain HTTP / no TLS check
//! blocked = false                 # refuse every pull from it
//!
//! [[registry.mirror]]
//! location = "localhost:5000/hub"
//! insecure = true
//! ```
//!
//! The file is read from `$STRATA_REGISTRIES_CONF` when set, else the first
//! of `$XDG_CONFIG_HOME/containers/registries.conf` (`~/.config/…`) and
//! `/etc/containers/registries.conf` that exists. No file means Docker's
//! defaults: unqualified names are Docker Hub's, no mirrors.
//!
//! Invariants: resolution is pure (no network); the entry with the longest
//! matching prefix wins; a `blocked` entry yields an error, never a silent
//! fallback to another registry; mirrors are tried before the location.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The registry an unqualified name (`debian`) belongs to, as with Docker.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed `registries.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Where it was read from (for messages), `None` for the defaults.
    pub path: Option<PathBuf>,
    /// Registries an unqualified name is looked up in, in order.
    pub unqualified_search: Vec<String>,
    pub registries: Vec<RegistryEntry>,
}

/// One `[[registry]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEntry {
    /// `host[:port][/path]`, or `*.domain` to match every subdomain.
    pub prefix: String,
    /// Where names under `prefix` really live (`prefix` is replaced by it).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<MirrorEntry>,
    /// `all` (default), `digest-only` or `tag-only`: which pulls use mirrors.
    pub pull_from_mirror: PullFromMirror,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorEntry {
    pub location: String,
    pub insecure: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullFromMirror {
    #[default]
    All,
    DigestOnly,
    TagOnly,
}

/// One place to try for an image: a registry host and the repository on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as written (`docker.io` is spoken to at its API host).
    pub registry: String,
    /// The repository path on that registry.
    pub repository: String,
    pub insecure: bool,
    /// A mirror rather than the image's own registry.
    pub mirror: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConf {
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    // Keys of the format strata does not use are accepted and ignored, so a
    // podman user's file works as it is.
    #[serde(flatten)]
    _other: toml::Table,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
    #[serde(default)]
    pull_from_mirror: Option<PullFromMirror>,
    #[serde(flatten)]
    _other: toml::Table,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(flatten)]
    _other: toml::Table,
}

impl RegistriesConf {
    /// The configuration in effect for this user (see the module docs).
    pub fn load() -> Result<RegistriesConf> {
        match config_path() {
            Some(p) => RegistriesConf::read(&p),
            None => Ok(RegistriesConf::default()),
        }
    }

    /// Reads and checks one file.
    pub fn read(path: &Path) -> Result<RegistriesConf> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let mut conf = RegistriesConf::parse(&text)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        conf.path = Some(path.to_path_buf());
        Ok(conf)
    }

    /// Parses the text of a `registries.conf`; the error names the problem.
    pub fn parse(text: &str) -> std::result::Result<RegistriesConf, String> {
        let raw: RawConf = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut registries = Vec::new();
        for (i, r) in raw.registry.into_iter().enumerate() {
            let location = r.location.clone().unwrap_or_default();
            let prefix = r.prefix.unwrap_or_else(|| location.clone());
            if prefix.is_empty() {
                return Err(format!(
                    "[[registry]] number {}: needs a `location` or a `prefix`",
                    i + 1
                ));
            }
            if location.is_empty() && !r.blocked && !prefix.starts_with("*.") {
                return Err(format!(
                    "[[registry]] `{prefix}`: needs a `location` (only a blocked entry may omit it)"
                ));
            }
            if prefix.starts_with("*.") && !location.is_empty() {
                // A wildcard prefix names many registries: there is no one
                // location to rewrite them to (podman refuses it too).
                return Err(format!(
                    "[[registry]] `{prefix}`: a wildcard prefix cannot have a location"
                ));
            }
            for m in &r.mirror {
                if m.location.is_empty() {
                    return Err(format!(
                        "[[registry]] `{prefix}`: a mirror with no location"
                    ));
                }
            }
            registries.push(RegistryEntry {
                prefix: prefix.trim_end_matches('/').to_string(),
                location: location.trim_end_matches('/').to_string(),
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| MirrorEntry {
                        location: m.location.trim_end_matches('/').to_string(),
                        insecure: m.insecure,
                    })
                    .collect(),
                pull_from_mirror: r.pull_from_mirror.unwrap_or_default(),
            });
        }
        Ok(RegistriesConf {
            path: None,
            unqualified_search: raw.unqualified_search_registries.unwrap_or_default(),
            registries,
        })
    }

    /// The registries an unqualified name is tried in: the configured
    /// search list, else Docker Hub.
    pub fn search_registries(&self) -> Vec<String> {
        if self.unqualified_search.is_empty() {
            vec![DEFAULT_REGISTRY.to_string()]
        } else {
            self.unqualified_search.clone()
        }
    }

    /// The entry governing `registry/repository` (longest prefix wins).
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&RegistryEntry> {
        let name = format!("{registry}/{repository}");
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, &name))
            .max_by_key(|e| e.prefix.len())
    }

    /// Whether plain HTTP is configured for `registry` (the host as written).
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.registries
            .iter()
            .any(|e| e.insecure && (e.location == registry || e.prefix == registry))
            || self
                .registries
                .iter()
                .flat_map(|e| &e.mirrors)
                .any(|m| m.insecure && host_of(&m.location) == registry)
    }

    /// Where to pull `registry/repository` from, in the order to try:
    /// mirrors, then the (possibly rewritten) location. `by_digest` tells a
    /// digest pull from a tag pull (for `pull-from-mirror`).
    pub fn endpoints(
        &self,
        registry: &str,
        repository: &str,
        by_digest: bool,
    ) -> Result<Vec<Endpoint>> {
        let Some(entry) = self.entry_for(registry, repository) else {
            return Ok(vec![Endpoint {
                registry: registry.to_string(),
                repository: repository.to_string(),
                insecure: false,
                mirror: false,
            }]);
        };
        let name = format!("{registry}/{repository}");
        if entry.blocked {
            let from = self
                .path
                .as_ref()
                .map(|p| format!(" by {}", p.display()))
                .unwrap_or_default();
            return Err(Error::msg(format!(
                "pulling {name} is blocked{from} (registry entry `{}`)",
                entry.prefix
            )));
        }
        // The part of the name after the prefix, kept under each location.
        let rest = if entry.prefix.starts_with("*.") {
            None
        } else {
            Some(&name[entry.prefix.len()..])
        };
        let use_mirrors = match entry.pull_from_mirror {
            PullFromMirror::All => true,
            PullFromMirror::DigestOnly => by_digest,
            PullFromMirror::TagOnly => !by_digest,
        };
        let mut out = Vec::new();
        if use_mirrors {
            for m in &entry.mirrors {
                out.push(endpoint(&m.location, rest, &name, m.insecure, true)?);
            }
        }
        out.push(endpoint(
            &entry.location,
            rest,
            &name,
            entry.insecure,
            false,
        )?);
        Ok(out)
    }
}

/// `location` + the rest of the name, split back into host and repository.
fn endpoint(
    location: &str,
    rest: Option<&str>,
    name: &str,
    insecure: bool,
    mirror: bool,
) -> Result<Endpoint> {
    let full = match rest {
        Some(rest) if !location.is_empty() => format!("{location}{rest}"),
        _ => name.to_string(),
    };
    let (registry, repository) = full
        .split_once('/')
        .filter(|(_, r)| !r.is_empty())
        .ok_or_else(|| {
            Error::msg(format!(
                "registry location `{location}` leaves no repository for {name}"
            ))
        })?;
    Ok(Endpoint {
        registry: registry.to_string(),
        repository: repository.to_string(),
        insecure,
        mirror,
    })
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

/// Does `prefix` cover `name` (`host/repo`)? A prefix matches whole path
/// components: `example.com/foo` covers `example.com/foo/bar` but not
/// `example.com/foobar`; `*.example.com` covers every subdomain's names.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = host_of(name);
        let host = host.split(':').next().unwrap_or(host);
        return host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.';
    }
    name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The file to read, if any (see the module docs).
fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .map(|d| d.join("containers/registries.conf"));
    user.into_iter()
        .chain(std::iter::once(PathBuf::from(
            "/etc/containers/registries.conf",
        )))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIRRORED: &str = r#"
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"

[[registry]]
location = "docker.io"

[[registry.mirror]]
location = "localhost:5000/hub"
insecure = true

[[registry]]
prefix = "quay.io/blocked"
blocked = true

[[registry]]
prefix = "example.com/team"
location = "internal.example:8443/mirror/team"
insecure = true
"#;

    #[test]
    fn mirrors_come_first_and_keep_the_path() {
        let c = RegistriesConf::parse(MIRRORED).unwrap();
        let e = c.endpoints("docker.io", "library/debian", false).unwrap();
        assert_eq!(
            e,
            vec![
                Endpoint {
                    registry: "localhost:5000".into(),
                    repository: "hub/library/debian".into(),
                    insecure: true,
                    mirror: true,
                },
                Endpoint {
                    registry: "docker.io".into(),
                    repository: "library/debian".into(),
                    insecure: false,
                    mirror: false,
                },
            ]
        );
    }

    #[test]
    fn a_prefix_is_rewritten_to_its_location() {
        let c = RegistriesConf::parse(MIRRORED).unwrap();
        let e = c.endpoints("example.com", "team/app", true).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].registry, "internal.example:8443");
        assert_eq!(e[0].repository, "mirror/team/app");
        assert!(e[0].insecure);
        // Not a whole component: no match, the name is used as is.
        let e = c.endpoints("example.com", "teammate/app", true).unwrap();
        assert_eq!(e[0].registry, "example.com");
        assert_eq!(e[0].repository, "teammate/app");
    }

    #[test]
    fn blocked_is_an_error_not_a_fallback() {
        let c = RegistriesConf::parse(MIRRORED).unwrap();
        let err = c.endpoints("quay.io", "blocked/x", false).unwrap_err();
        assert!(err.to_string().contains("blocked"), "{err}");
        assert!(c.endpoints("quay.io", "other/x", false).is_ok());
    }

    #[test]
    fn longest_prefix_wins_and_wildcards_match_subdomains() {
        let c = RegistriesConf::parse(
            r#"
[[registry]]
prefix = "*.example.org"
blocked = true
[[registry]]
location = "a.example.org/ok"
"#,
        )
        .unwrap();
        assert!(c.endpoints("b.example.org", "x", false).is_err());
        assert!(c.endpoints("example.org", "x", false).is_ok());
        let e = c.endpoints("a.example.org", "ok/x", false).unwrap();
        assert_eq!(e[0].repository, "ok/x");
    }

    #[test]
    fn pull_from_mirror_digest_only_skips_mirrors_for_tags() {
        let c = RegistriesConf::parse(
            r#"
[[registry]]
location = "docker.io"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m.local"
"#,
        )
        .unwrap();
        assert_eq!(
            c.endpoints("docker.io", "library/x", false).unwrap().len(),
            1
        );
        assert_eq!(
            c.endpoints("docker.io", "library/x", true).unwrap().len(),
            2
        );
    }

    #[test]
    fn defaults_are_docker_hub() {
        let c = RegistriesConf::parse("").unwrap();
        assert_eq!(c.search_registries(), vec!["docker.io".to_string()]);
        let e = c.endpoints("docker.io", "library/debian", false).unwrap();
        assert_eq!(e.len(), 1);
        assert!(!e[0].mirror);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, want) in [
            (
                "[[registry]]\ninsecure = true\n",
                "needs a `location` or a `prefix`",
            ),
            ("[[registry]]\nprefix = \"x.io\"\n", "needs a `location`"),
            (
                "[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"\"\n",
                "mirror with no location",
            ),
            (
                "unqualified-search-registries = \"docker.io\"\n",
                "invalid type",
            ),
            ("[[registry]\n", "TOML"),
        ] {
            let err = RegistriesConf::parse(text).unwrap_err();
            assert!(
                err.contains(want) || (want == "TOML" && !err.is_empty()),
                "{text:?}: {err}"
            );
        }
    }
}

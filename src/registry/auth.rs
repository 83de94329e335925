//! Registry credentials and authentication challenges.
//!
//! Credentials come from the Docker client configuration
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): a base64
//! `user:password` in `auths`, or a credential helper named by `credHelpers`
//! (per registry) or `credsStore` (for all), run as
//! `docker-credential-NAME get` with the server name on stdin.
//!
//! Challenges are `WWW-Authenticate` headers: `Basic realm="..."` or
//! `Bearer realm="...",service="...",scope="..."`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A user name and password (or an identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Credentials({}, <secret>)", self.username)
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", STANDARD.encode(raw))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".docker/config.json"))
}

/// The key Docker uses for a registry in its config (Docker Hub is special).
pub(crate) fn config_key(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// `https://host:5000/v1/` -> `host:5000`.
pub(crate) fn host_of_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `registry` (as the user wrote it, e.g. `localhost:5000`
/// or `docker.io`) from the Docker config at `path`; `None` when the file
/// or an entry is missing. A malformed config is an error.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if bytes.len() > 16 << 20 {
        return Err(Error::corrupt(path.display().to_string(), "file too large"));
    }
    let cfg: DockerConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string()))?;
    let key = config_key(registry);
    let want = host_of_key(key);
    // Docker's order: a helper for this registry, then `auths`, then the
    // default store.
    if let Some(name) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| host_of_key(k) == want)
        .map(|(_, v)| v)
    {
        return helper_get(&format!("docker-credential-{name}"), key);
    }
    if let Some(entry) = cfg
        .auths
        .iter()
        .find(|(k, _)| k.as_str() == key)
        .or_else(|| cfg.auths.iter().find(|(k, _)| host_of_key(k) == want))
        .map(|(_, v)| v)
        && let Some(c) = from_entry(entry, path)?
    {
        return Ok(Some(c));
    }
    match cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => helper_get(&format!("docker-credential-{name}"), key),
        None => Ok(None),
    }
}

fn from_entry(e: &AuthEntry, path: &Path) -> Result<Option<Credentials>> {
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = |d: &str| Error::corrupt(path.display().to_string(), d.to_string());
        let raw = STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("an `auth` value is not base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| bad("an `auth` value is not UTF-8"))?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| bad("an `auth` value is not `user:password`"))?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    if let Some(t) = e.identity_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: "<token>".into(),
            password: t.to_string(),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `program get` with `server` on stdin. A helper that knows nothing
/// about the server (non-zero exit, "credentials not found") gives `None`.
pub fn helper_get(program: &str, server: &str) -> Result<Option<Credentials>> {
    let mut child = match Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Err(Error::io(
                format!("running the credential helper `{program}`"),
                e,
            ));
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading gives EPIPE: not our problem.
        let _ = stdin.write_all(server.as_bytes());
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(1 << 20).read_to_end(&mut out);
    }
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for `{program}`"), e))?;
    if !status.success() {
        return Ok(None);
    }
    let reply: HelperReply = serde_json::from_slice(&out).map_err(|e| {
        Error::corrupt(
            format!("output of the credential helper `{program}`"),
            e.to_string(),
        )
    })?;
    if reply.username.is_empty() && reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Scheme k="v", k2=v2`; `None` for an unknown scheme or a Bearer
/// challenge without a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let realm = params.get("realm").filter(|r| !r.is_empty())?.clone();
    Some(Challenge::Bearer {
        realm,
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `k="v, with comma", k2=v2` -> map (keys lowercased).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        } else if chars.peek().is_none() && key.trim().is_empty() {
            break;
        }
        let key = key.trim().to_ascii_lowercase();
        if !key.is_empty() {
            out.insert(key, value.trim_end().to_string());
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// The token endpoint's answer (`token`, or OAuth2's `access_token`).
#[derive(Deserialize)]
pub struct TokenReply {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

impl TokenReply {
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn other_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        // Unquoted values, odd spacing, no scope.
        assert_eq!(
            parse_challenge("Bearer  realm=http://127.0.0.1:1/token , service=x"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some("x".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(parse_challenge("Bearer realm=\"unterminated"), {
            Some(Challenge::Bearer {
                realm: "unterminated".into(),
                service: None,
                scope: None,
            })
        });
    }

    fn write_config(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn auths_entries_match_by_host() {
        let t = tempfile::tempdir().unwrap();
        let auth = STANDARD.encode("alice:s3:cret");
        let p = write_config(
            t.path(),
            &format!(
                r#"{{"auths":{{"https://reg.example.com/v1/":{{"auth":"{auth}"}},
                "https://index.docker.io/v1/":{{"username":"bob","password":"pw"}}}}}}"#
            ),
        );
        let c = lookup(&p, "reg.example.com").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3:cret")
        );
        let c = lookup(&p, "docker.io").unwrap().unwrap();
        assert_eq!(c.username, "bob");
        assert!(lookup(&p, "other.example.com").unwrap().is_none());
        assert!(
            lookup(&t.path().join("missing.json"), "x")
                .unwrap()
                .is_none()
        );
        assert!(!format!("{c:?}").contains("pw"), "Debug hides the secret");
        assert_eq!(
            Credentials {
                username: "u".into(),
                password: "p".into()
            }
            .basic_header(),
            "Basic dTpw"
        );
    }

    #[test]
    fn malformed_configs_are_errors() {
        let t = tempfile::tempdir().unwrap();
        for bad in [
            "{",
            r#"{"auths":{"h":{"auth":"***"}}}"#,
            r#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#,
        ] {
            let p = write_config(t.path(), bad);
            assert!(lookup(&p, "h").is_err(), "{bad}");
        }
    }

    #[test]
    fn credential_helpers_are_run() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let helper = t.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = reg.example.com ]; then\n  printf '{\"ServerURL\":\"%s\",\"Username\":\"carol\",\"Secret\":\"tok\"}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prog = helper.to_str().unwrap();
        let c = helper_get(prog, "reg.example.com").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("carol", "tok"));
        assert!(helper_get(prog, "other.example.com").unwrap().is_none());
        assert!(helper_get("/nonexistent/docker-credential-x", "h").is_err());
    }

    #[test]
    fn token_reply_prefers_token() {
        let r: TokenReply = serde_json::from_str(r#"{"token":"a","access_token":"b"}"#).unwrap();
        assert_eq!(r.into_token().as_deref(), Some("a"));
        let r: TokenReply = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(r.into_token().as_deref(), Some("b"));
        let r: TokenReply = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(r.into_token(), None);
    }
}

//! `strata login` / `strata logout`: credentials checked against the
//! registry, then kept where `docker login` keeps them.
//!
//! The Docker client configuration (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`) is read as JSON and every key strata does not
//! manage is written back unchanged. A credential helper named for the
//! registry (`credHelpers`) or for all (`credsStore`) stores the secret
//! (`docker-credential-NAME store|erase`); otherwise `auths` gets the base64
//! `user:password`, in a file only its owner can read.
//!
//! Invariants: nothing is saved before the registry accepted the
//! credentials; the file is replaced atomically (a crash leaves the old or
//! the new file, never half of one); the secret is never printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::Options;
use super::auth::{Credentials, config_key, host_of_key};
use super::client::Client;
use crate::error::{Error, Result};

/// Where a login was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// In the config file's `auths`.
    File,
    /// With the credential helper `docker-credential-NAME`.
    Helper(String),
}

/// Checks `creds` against `registry` (see [`Client::check_credentials`]).
pub fn verify(registry: &str, creds: &Credentials, opts: &Options) -> Result<()> {
    Client::connect_as(registry, opts, Some(creds.clone()))?.check_credentials()
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::corrupt(
            path.display().to_string(),
            "not a JSON object",
        )),
        Err(e) => Err(Error::corrupt(path.display().to_string(), e.to_string())),
    }
}

fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut text = serde_json::to_string_pretty(config)
        .map_err(|e| Error::msg(format!("encoding {}: {e}", path.display())))?;
    text.push('\n');
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The helper configured for `registry`, if any (per registry first).
fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
    let want = host_of_key(config_key(registry));
    let per = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| host_of_key(k) == want)
                .and_then(|(_, v)| v.as_str())
        });
    per.or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(name: &str, verb: &str, input: &str) -> Result<()> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("running the credential helper `{program}`"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("waiting for `{program}`"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        Err(Error::msg(format!(
            "`{program} {verb}` failed: {}",
            msg.trim()
        )))
    }
}

/// Keeps `creds` for `registry` in the Docker config at `path`.
pub fn save(path: &Path, registry: &str, creds: &Credentials) -> Result<Stored> {
    let mut config = read_config(path)?;
    let key = config_key(registry).to_string();
    if let Some(helper) = helper_for(&config, registry) {
        let input = serde_json::json!({
            "ServerURL": key,
            "Username": creds.username,
            "Secret": creds.password,
        });
        run_helper(&helper, "store", &input.to_string())?;
        // Docker leaves an empty entry so the registry is listed.
        auths(&mut config).insert(key, Value::Object(Map::new()));
        write_config(path, &config)?;
        return Ok(Stored::Helper(helper));
    }
    let raw = format!("{}:{}", creds.username, creds.password);
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(STANDARD.encode(raw)));
    let auths = auths(&mut config);
    // One entry per registry: drop other spellings of the same host.
    let want = host_of_key(&key).to_string();
    auths.retain(|k, _| host_of_key(k) != want);
    auths.insert(key, Value::Object(entry));
    write_config(path, &config)?;
    Ok(Stored::File)
}

fn auths(config: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let slot = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Forgets `registry`'s credentials; `false` when there were none.
pub fn erase(path: &Path, registry: &str) -> Result<bool> {
    let mut config = read_config(path)?;
    let key = config_key(registry).to_string();
    let want = host_of_key(&key).to_string();
    let mut removed = false;
    if let Some(helper) = helper_for(&config, registry) {
        run_helper(&helper, "erase", &key)?;
        removed = true;
    }
    if let Some(Value::Object(a)) = config.get_mut("auths") {
        let before = a.len();
        a.retain(|k, _| host_of_key(k) != want);
        removed |= a.len() != before;
    }
    if removed {
        write_config(path, &config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::auth::lookup;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn save_then_lookup_then_erase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        assert_eq!(
            save(&path, "localhost:5000", &creds("alice", "s3:cret")).unwrap(),
            Stored::File
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            lookup(&path, "localhost:5000").unwrap(),
            Some(creds("alice", "s3:cret"))
        );
        assert!(erase(&path, "localhost:5000").unwrap());
        assert_eq!(lookup(&path, "localhost:5000").unwrap(), None);
        assert!(!erase(&path, "localhost:5000").unwrap());
    }

    #[test]
    fn other_keys_survive_and_docker_hub_uses_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"psFormat":"table {{.ID}}"}"#,
        )
        .unwrap();
        save(&path, "docker.io", &creds("bob", "pw")).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["auths"]["other.io"]["auth"], "eDp5");
        assert!(v["auths"]["https://index.docker.io/v1/"]["auth"].is_string());
        assert_eq!(
            lookup(&path, "docker.io").unwrap(),
            Some(creds("bob", "pw"))
        );
    }

    #[test]
    fn a_corrupt_config_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(save(&path, "localhost:5000", &creds("a", "b")).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }

    #[test]
    fn a_missing_helper_is_an_error_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let before = r#"{"credsStore":"strata-test-no-such-helper"}"#;
        std::fs::write(&path, before).unwrap();
        let err = save(&path, "localhost:5000", &creds("a", "b")).unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-strata-test-no-such-helper")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }
}

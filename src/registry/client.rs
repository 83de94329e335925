//! The HTTP side of the distribution API: one [`Client`] per registry,
//! holding the agent, the credentials and the tokens it was given.
//!
//! Every response is untrusted: bodies are read with a size cap, digests
//! are checked by the callers, and any unexpected status becomes an error
//! that quotes the registry's own error message.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use ureq::Body;
use ureq::http::{self, Response};

use super::Options;
use super::auth::{self, Challenge, Credentials, TokenReply};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::media_type;

/// Largest manifest or index accepted (the limit Docker's registry uses).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest token or error body read.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// What a manifest GET returned, its digest verified against the header.
#[derive(Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// The result of a cross-repository mount request.
pub enum Mount {
    Mounted,
    /// The registry did not mount; it opened an upload session instead.
    Upload(String),
}

pub struct Client {
    agent: ureq::Agent,
    /// `http(s)://host[:port]`.
    base: String,
    /// The registry as the user wrote it (`localhost:5000`, `docker.io`).
    pub registry: String,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by the scope list they were issued for.
    tokens: HashMap<String, String>,
}

/// `docker.io` (and no registry at all) is served by `registry-1.docker.io`.
pub fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// Whether `registry` is spoken to over plain HTTP without `--insecure`:
/// loopback hosts, like Docker does.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Reads at most `limit` bytes of a body; more is an error.
fn read_capped(resp: &mut Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    if let Some(n) = resp.body().content_length()
        && n > limit
    {
        return Err(Error::corrupt(
            what.to_string(),
            format!("the registry announced {n} bytes, more than the {limit} allowed"),
        ));
    }
    let mut out = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    if out.len() as u64 > limit {
        return Err(Error::corrupt(
            what.to_string(),
            format!("larger than the {limit} bytes allowed"),
        ));
    }
    Ok(out)
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn http_err(what: String, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Io(io) => Error::io(what, io),
        other => Error::io(what, io::Error::other(other.to_string())),
    }
}

impl Client {
    /// Connects to `registry` (`GET /v2/`), learning how it authenticates,
    /// with the credentials the Docker config holds for it.
    pub fn connect(registry: &str, opts: &Options) -> Result<Client> {
        let creds = match auth::docker_config_path() {
            Some(p) => auth::lookup(&p, registry)?,
            None => None,
        };
        Client::connect_as(registry, opts, creds)
    }

    /// Like [`Client::connect`], with the credentials given (`strata login`).
    pub fn connect_as(
        registry: &str,
        opts: &Options,
        creds: Option<Credentials>,
    ) -> Result<Client> {
        let scheme = if opts.insecure || is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .max_redirects(5)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let client = Client {
            agent,
            base: format!("{scheme}://{}", api_host(registry)),
            registry: registry.to_string(),
            creds,
            auth: Mutex::new(AuthState::default()),
        };
        let url = format!("{}/v2/", client.base);
        let resp = client
            .agent
            .get(&url)
            .call()
            .map_err(|e| http_err(format!("connecting to registry {registry} ({url})"), e))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 => {
                let ch = header(&resp, "www-authenticate").and_then(auth::parse_challenge);
                if let Ok(mut st) = client.auth.lock() {
                    st.challenge = ch;
                }
            }
            s => {
                return Err(Error::msg(format!(
                    "{url} answered {s}: not an OCI distribution (v2) registry"
                )));
            }
        }
        Ok(client)
    }

    /// Whether the registry accepts this client's credentials, as `docker
    /// login` checks them: `GET /v2/` with Basic credentials, or a token
    /// for no particular scope from the Bearer realm. A registry that asks
    /// for no authentication accepts anything.
    pub fn check_credentials(&self) -> Result<()> {
        let challenge = match self.auth.lock() {
            Ok(st) => st.challenge.clone(),
            Err(_) => None,
        };
        let refused = || {
            Error::msg(format!(
                "registry {}: unauthorized: incorrect username or password",
                self.registry
            ))
        };
        match challenge {
            None => Ok(()),
            Some(Challenge::Basic) => {
                let Some(c) = &self.creds else {
                    return Err(refused());
                };
                let url = self.url("/v2/");
                let mut resp = self
                    .agent
                    .get(&url)
                    .header("Authorization", c.basic_header())
                    .call()
                    .map_err(|e| http_err(format!("GET {url}"), e))?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    401 | 403 => Err(refused()),
                    _ => Err(self.status_error(&mut resp, "checking the credentials")),
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                if self.creds.is_none() {
                    return Err(refused());
                }
                self.fetch_token(&realm, service.as_deref(), &[])
                    .map(drop)
                    .map_err(|e| {
                        if e.to_string().contains("refused the credentials") {
                            refused()
                        } else {
                            e
                        }
                    })
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolves a `Location` header against the registry.
    fn location(&self, resp: &Response<Body>, what: &str) -> Result<String> {
        let loc = header(resp, "location").ok_or_else(|| {
            Error::corrupt(
                format!("registry {}", self.registry),
                format!("no Location header in the answer to {what}"),
            )
        })?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else if loc.starts_with('/') {
                self.url(loc)
            } else {
                format!("{}/{loc}", self.base)
            },
        )
    }

    /// The `Authorization` header for `scopes`, fetching a token if needed.
    fn authorization(
        &self,
        scopes: &[String],
        extra_scope: Option<&str>,
    ) -> Result<Option<String>> {
        let challenge = match self.auth.lock() {
            Ok(st) => st.challenge.clone(),
            Err(_) => None,
        };
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut all: Vec<String> = scopes.to_vec();
                for s in [extra_scope, scope.as_deref()].into_iter().flatten() {
                    if !all.iter().any(|x| x == s) {
                        all.push(s.to_string());
                    }
                }
                let key = all.join(" ");
                if let Ok(st) = self.auth.lock()
                    && let Some(t) = st.tokens.get(&key)
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), &all)?;
                if let Ok(mut st) = self.auth.lock() {
                    st.tokens.insert(key, token.clone());
                }
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(Error::corrupt(
                format!("registry {}", self.registry),
                format!("token realm `{realm}` is not an http(s) URL"),
            ));
        }
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", encode(s)));
            sep = '&';
        }
        for s in scopes {
            url.push_str(&format!("{sep}scope={}", encode(s)));
            sep = '&';
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let what = format!("a token from {realm}");
        let mut resp = req
            .call()
            .map_err(|e| http_err(format!("getting {what}"), e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::msg(format!(
                "registry {}: the token service refused {} (HTTP {status}); check the \
                 credentials in the Docker config (docker login)",
                self.registry,
                if self.creds.is_some() {
                    "the credentials"
                } else {
                    "anonymous access"
                }
            )));
        }
        if !(200..300).contains(&status) {
            return Err(self.status_error(&mut resp, &format!("getting {what}")));
        }
        let body = read_capped(&mut resp, MAX_SMALL_BODY, &what)?;
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt(what.clone(), e.to_string()))?;
        reply
            .into_token()
            .ok_or_else(|| Error::corrupt(what, "no token in the answer"))
    }

    /// Sends a request, authenticating as the registry asks (one retry
    /// after a 401 with a fresh challenge).
    fn send(
        &self,
        method: http::Method,
        url: &str,
        scopes: &[String],
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response<Body>> {
        let run = |auth: Option<&str>| -> Result<Response<Body>> {
            let mut b = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                b = b.header(*k, v.as_str());
            }
            if let Some(a) = auth {
                b = b.header("Authorization", a);
            }
            let what = || format!("{method} {url}");
            let r = match body {
                Some(bytes) => {
                    let req = b
                        .body(bytes)
                        .map_err(|e| Error::msg(format!("{}: {e}", what())))?;
                    self.agent.run(req)
                }
                None => {
                    let req = b
                        .body(())
                        .map_err(|e| Error::msg(format!("{}: {e}", what())))?;
                    self.agent.run(req)
                }
            };
            r.map_err(|e| http_err(what(), e))
        };
        let auth = self.authorization(scopes, None)?;
        let resp = run(auth.as_deref())?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let Some(ch) = header(&resp, "www-authenticate").and_then(auth::parse_challenge) else {
            return Ok(resp);
        };
        let extra = match &ch {
            Challenge::Bearer { scope, .. } => scope.clone(),
            Challenge::Basic => None,
        };
        if let Ok(mut st) = self.auth.lock() {
            st.challenge = Some(ch.clone());
            st.tokens.clear();
        }
        if ch == Challenge::Basic && self.creds.is_none() {
            return Ok(resp);
        }
        let auth = self.authorization(scopes, extra.as_deref())?;
        run(auth.as_deref())
    }

    /// An error for an unexpected status, with the registry's message.
    fn status_error(&self, resp: &mut Response<Body>, what: &str) -> Error {
        let status = resp.status();
        let body = read_capped(resp, 64 << 10, "an error body").unwrap_or_default();
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|b| {
                b.errors
                    .iter()
                    .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty());
        let mut m = format!("registry {}: {what}: HTTP {status}", self.registry);
        if let Some(d) = detail {
            m.push_str(&format!(" ({d})"));
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            m.push_str(if self.creds.is_some() {
                "; the credentials from the Docker config were refused"
            } else {
                "; no credentials for this registry in the Docker config (docker login)"
            });
        }
        Error::msg(m)
    }

    fn expect(&self, mut resp: Response<Body>, ok: &[u16], what: &str) -> Result<Response<Body>> {
        if ok.contains(&resp.status().as_u16()) {
            Ok(resp)
        } else {
            Err(self.status_error(&mut resp, what))
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>` (a tag or a digest).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let accept = [
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
            media_type::DOCKER_MANIFEST_LIST,
            media_type::DOCKER_MANIFEST,
        ]
        .join(", ");
        let what = format!("manifest {repo}:{reference}");
        let resp = self.send(
            http::Method::GET,
            &url,
            &[pull_scope(repo)],
            &[("Accept", accept)],
            None,
        )?;
        if resp.status().as_u16() == 404 {
            return Err(Error::msg(format!(
                "registry {}: {repo}:{reference} not found",
                self.registry
            )));
        }
        let mut resp = self.expect(resp, &[200], &format!("getting {what}"))?;
        let header_digest = header(&resp, "docker-content-digest").map(str::to_string);
        let content_type = header(&resp, "content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let bytes = read_capped(&mut resp, MAX_MANIFEST, &what)?;
        let digest = Digest::of(&bytes);
        if let Some(h) = header_digest
            && let Ok(h) = h.parse::<Digest>()
            && h != digest
        {
            return Err(Error::corrupt(
                what,
                format!("content has digest {digest} but the registry says {h}"),
            ));
        }
        // The document's own mediaType wins over a generic Content-Type.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(what.clone(), e.to_string()))?;
        let media_type = probe
            .media_type
            .or(content_type.filter(|c| media_type::is_manifest(c) || media_type::is_index(c)))
            .unwrap_or_else(|| {
                if probe.manifests.is_some() {
                    media_type::OCI_INDEX.to_string()
                } else {
                    media_type::OCI_MANIFEST.to_string()
                }
            });
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `GET /v2/<repo>/blobs/<digest>`: the response, its status checked
    /// and its announced length no larger than `size`.
    pub fn get_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<Response<Body>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self.send(http::Method::GET, &url, &[pull_scope(repo)], &[], None)?;
        let resp = self.expect(resp, &[200], &format!("getting blob {digest}"))?;
        if let Some(n) = resp.body().content_length()
            && n != size
        {
            return Err(Error::corrupt(
                format!("blob {digest} from {}", self.registry),
                format!("the registry sends {n} bytes but the manifest says {size}"),
            ));
        }
        Ok(resp)
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: whether the registry has it.
    pub fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut resp = self.send(http::Method::HEAD, &url, &[push_scope(repo)], &[], None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(&mut resp, &format!("checking blob {digest}"))),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`.
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount> {
        let url = self.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={}",
            encode(&digest.to_string()),
            encode(from)
        ));
        let scopes = [push_scope(repo), pull_scope(from)];
        let resp = self.send(http::Method::POST, &url, &scopes, &[], Some(&[]))?;
        let what = format!("mounting blob {digest} from {from}");
        let resp = self.expect(resp, &[201, 202], &what)?;
        if resp.status().as_u16() == 201 {
            Ok(Mount::Mounted)
        } else {
            Ok(Mount::Upload(self.location(&resp, &what)?))
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the upload session's URL.
    pub fn start_upload(&self, repo: &str) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = self.send(
            http::Method::POST,
            &url,
            &[push_scope(repo)],
            &[],
            Some(&[]),
        )?;
        let what = "starting an upload";
        let resp = self.expect(resp, &[202], what)?;
        self.location(&resp, what)
    }

    /// Uploads `size` bytes from `src` to the session at `location` in
    /// chunks (`PATCH` with `Content-Range`), then closes it with
    /// `PUT ?digest=`. `progress` gets the bytes sent so far.
    pub fn upload(
        &self,
        repo: &str,
        mut location: String,
        src: &mut dyn Read,
        digest: &Digest,
        chunk_size: usize,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let scopes = [push_scope(repo)];
        let chunk_size = chunk_size.max(1);
        let mut buf = vec![0u8; chunk_size];
        let mut offset: u64 = 0;
        loop {
            let mut n = 0;
            while n < buf.len() {
                let k = src
                    .read(&mut buf[n..])
                    .map_err(|e| Error::io(format!("reading blob {digest}"), e))?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            if n == 0 {
                break;
            }
            let end = offset + n as u64 - 1;
            let resp = self.send(
                http::Method::PATCH,
                &location,
                &scopes,
                &[
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Range", format!("{offset}-{end}")),
                ],
                Some(&buf[..n]),
            )?;
            let what = format!("uploading blob {digest} (bytes {offset}-{end})");
            let resp = self.expect(resp, &[202], &what)?;
            location = self.location(&resp, &what)?;
            offset += n as u64;
            progress(offset);
            if n < buf.len() {
                break;
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", encode(&digest.to_string()));
        let resp = self.send(http::Method::PUT, &url, &scopes, &[], Some(&[]))?;
        self.expect(
            resp,
            &[201, 204],
            &format!("finishing the upload of {digest}"),
        )?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with its media type; returns
    /// the digest the registry reports, if any.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Option<Digest>> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self.send(
            http::Method::PUT,
            &url,
            &[push_scope(repo)],
            &[("Content-Type", media_type.to_string())],
            Some(bytes),
        )?;
        let resp = self.expect(
            resp,
            &[200, 201, 202, 204],
            &format!("putting manifest {repo}:{reference}"),
        )?;
        Ok(header(&resp, "docker-content-digest").and_then(|d| d.parse().ok()))
    }
}

pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:8080",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn query_encoding_and_hosts() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(encode("sha256:ab"), "sha256%3Aab");
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
    }
}

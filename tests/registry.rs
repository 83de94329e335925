//! Push and pull against a real registry (Debian's `docker-registry`, started
//! per test on 127.0.0.1) and against tiny fake registries that misbehave.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::registry::Registry;
use common::*;
use sha2::{Digest as _, Sha256};

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn app_context(env: &TestEnv, rel: &str, content: &str, tag: &str) -> PathBuf {
    let spec = format!(
        r#"
[stage.app]
from = "scratch"
steps = [
  {{ copy = ["a.txt"], to = "/a.txt" }},
  {{ copy = ["dir/"], to = "/dir/" }},
]
cmd = ["/a.txt"]

[image.app]
stage = "app"
tags = ["{tag}"]
"#
    );
    let big = "0123456789abcdef".repeat(4096);
    env.write_tree(
        rel,
        &[
            ("a.txt", content),
            ("dir/big.txt", big.as_str()),
            ("strata.toml", spec.as_str()),
        ],
    )
}

/// Builds and returns the image's manifest digest.
fn build(env: &TestEnv, root: &str, ctx: &Path) -> String {
    let meta = env.path(&format!("{root}-meta.json"));
    run_ok(
        env.strata(root)
            .arg("build")
            .arg(ctx)
            .args(["--progress", "plain", "--metadata-file"])
            .arg(&meta),
    );
    metadata(&meta)["image"]["digest"]
        .as_str()
        .expect("digest in metadata")
        .to_string()
}

fn store_index(env: &TestEnv, root: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(env.path(root).join("index.json")).unwrap()).unwrap()
}

fn tagged(env: &TestEnv, root: &str, name: &str) -> Option<String> {
    store_index(env, root)["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .map(|m| m["digest"].as_str().unwrap_or_default().to_string())
}

#[test]
fn push_then_pull_gives_the_same_manifest_and_skopeo_reads_it() {
    let t = "push_then_pull_gives_the_same_manifest_and_skopeo_reads_it";
    let env = TestEnv::new();
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let ctx = app_context(&env, "ctx", "hello\n", "app:1");
    let digest = build(&env, "root", &ctx);
    let dest = format!("{}/team/app:1", reg.host());

    // Small chunks: the layer goes up in several PATCH requests.
    let out = run_ok(env.strata("root").args([
        "push",
        "app:1",
        &dest,
        "--progress",
        "plain",
        "--chunk-size",
        "4096",
    ]));
    assert!(out.stdout.contains(&digest), "{}", out.stdout);
    assert!(out.stdout.contains("3 uploaded"), "{}", out.stdout);
    assert!(reg.count(&["\"PATCH /v2/team/app/blobs/uploads/"]) > 2);
    assert_eq!(reg.count(&["\"PUT /v2/team/app/manifests/1"]), 1);

    // Pull into an empty store: same manifest digest, tagged as the reference.
    let out = run_ok(
        env.strata("root2")
            .args(["pull", &dest, "--progress", "plain"]),
    );
    assert!(out.stdout.contains(&digest), "{}", out.stdout);
    assert_eq!(
        tagged(&env, "root2", &dest).as_deref(),
        Some(digest.as_str())
    );
    // Each layer was unpacked into its snapshot beside its download.
    let m = env.blob_json("root2", &digest);
    let config = env.blob_json("root2", m["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 2);
    for d in diff_ids {
        let hex = d.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let snap = env.path("root2/snapshots").join(hex);
        let files = std::fs::read_dir(&snap).map_or(0, |d| d.count());
        assert!(files > 0, "no snapshot of layer {d}");
    }

    // skopeo reads what strata pushed, and can copy it.
    if have_tool("skopeo", t) {
        let o = run_ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ]));
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["Digest"], digest.as_str());
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "two COPY layers");
        let copy = env.path("copied");
        run_ok(Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{dest}"),
            &format!("oci:{}:x", copy.display()),
        ]));
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["manifests"][0]["digest"], digest.as_str());
    }

    // A second push sends no blob again.
    let before = reg.blob_uploads();
    let heads = reg.count(&["\"HEAD /v2/team/app/blobs/"]);
    let out = run_ok(
        env.strata("root")
            .args(["push", "app:1", &dest, "--progress", "plain"]),
    );
    assert!(
        out.stdout.contains("0 uploaded, 3 already present"),
        "{}",
        out.stdout
    );
    assert_eq!(
        reg.blob_uploads(),
        before,
        "no blob upload on the second push"
    );
    assert_eq!(reg.count(&["\"HEAD /v2/team/app/blobs/"]), heads + 3);

    // Another repository of the same registry: the blobs are mounted.
    let other = format!("{}/other/app:2", reg.host());
    let out = run_ok(
        env.strata("root")
            .args(["push", "app:1", &other, "--progress", "plain"]),
    );
    assert!(
        out.stdout.contains("3 mounted"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(reg.blob_uploads(), before, "mounts upload nothing");
    assert_eq!(
        reg.count(&["\"POST /v2/other/app/blobs/uploads/?mount="]),
        3
    );
    let out = run_ok(env.strata("root3").args(["pull", &other, "-q"]));
    assert_eq!(out.stdout.trim(), digest);
}

#[test]
fn builds_from_an_image_skopeo_pushed() {
    let t = "builds_from_an_image_skopeo_pushed";
    let env = TestEnv::new();
    if !have_tool("skopeo", t) {
        return;
    }
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let ctx = app_context(&env, "base-ctx", "base\n", "base:1");
    build(&env, "root", &ctx);
    // skopeo converts it to a Docker schema 2 image on the way.
    let base = format!("{}/base:1", reg.host());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:base:1", env.path("root").display()),
        &format!("docker://{base}"),
    ]));

    let spec = format!(
        r#"
[stage.app]
from = "{base}"
steps = [{{ copy = ["b.txt"], to = "/b.txt" }}]

[image.app]
stage = "app"
tags = ["derived:1"]
"#
    );
    let ctx2 = env.write_tree("ctx2", &[("b.txt", "b\n"), ("strata.toml", spec.as_str())]);
    let digest = build(&env, "fresh", &ctx2);
    let pulled = tagged(&env, "fresh", &base).expect("the base is tagged in the store");
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path("fresh/blobs/sha256").join(&pulled[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let derived = tagged(&env, "fresh", "derived:1").unwrap();
    assert_eq!(derived, digest);
    let d: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.path("fresh/blobs/sha256").join(&derived[7..])).unwrap(),
    )
    .unwrap();
    let layers = d["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "two base layers and one COPY");
    assert_eq!(layers[0]["digest"], m["layers"][0]["digest"]);

    // Pulled once: a second build is all cache hits and asks the registry nothing.
    let gets = reg.count(&["\"GET /v2/base/manifests/"]);
    assert_eq!(build(&env, "fresh", &ctx2), digest);
    assert_eq!(reg.count(&["\"GET /v2/base/manifests/"]), gets);

    // The tag moves on the registry: only `--pull` sees it.
    let ctx = app_context(&env, "base-ctx2", "base v2\n", "base:1");
    build(&env, "root", &ctx);
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:base:1", env.path("root").display()),
        &format!("docker://{base}"),
    ]));
    assert_eq!(
        build(&env, "fresh", &ctx2),
        digest,
        "no pull without --pull"
    );
    let meta = env.path("pull-meta.json");
    run_ok(
        env.strata("fresh")
            .arg("build")
            .arg(&ctx2)
            .args(["--pull", "--progress", "plain", "--metadata-file"])
            .arg(&meta),
    );
    let moved = metadata(&meta)["image"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(moved, digest, "the new base gives a new image");
    assert_ne!(tagged(&env, "fresh", &base).unwrap(), pulled);
}

/// Writes `bytes` as a blob of the OCI layout `dir`; returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(&d[7..]), bytes).unwrap();
    d
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn pulling_an_index_takes_the_host_platform() {
    let t = "pulling_an_index_takes_the_host_platform";
    let env = TestEnv::new();
    if !have_tool("skopeo", t) {
        return;
    }
    let Some(reg) = Registry::start(&env, t) else {
        return;
    };
    let ctx = app_context(&env, "ctx", "native\n", "native:1");
    let native = build(&env, "root", &ctx);
    let root = env.path("root");
    let read = |d: &str| std::fs::read(root.join("blobs/sha256").join(&d[7..])).unwrap();

    // A layout with an index of two images: this host's, and the same
    // layers with a config for another architecture.
    let layout = env.path("multi");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let native_bytes = read(&native);
    let manifest: serde_json::Value = serde_json::from_slice(&native_bytes).unwrap();
    for d in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap()) {
        put_blob(&layout, &read(d["digest"].as_str().unwrap()));
    }
    put_blob(&layout, &native_bytes);
    let other_arch = if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    config["architecture"] = other_arch.into();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let mut other = manifest.clone();
    other["config"]["digest"] = put_blob(&layout, &config_bytes).into();
    other["config"]["size"] = config_bytes.len().into();
    let other_bytes = serde_json::to_vec(&other).unwrap();
    let other_digest = put_blob(&layout, &other_bytes);
    let entry = |d: &str, size: usize, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d, "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&other_digest, other_bytes.len(), other_arch),
            entry(&native, native_bytes.len(), host_arch()),
        ]
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = put_blob(&layout, &index_bytes);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }]
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let dest = format!("{}/multi:1", reg.host());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{dest}"),
    ]));

    let out = run_ok(
        env.strata("fresh")
            .args(["pull", &dest, "--progress", "plain"]),
    );
    assert!(out.stdout.contains(&native), "{}", out.stdout);
    assert!(
        out.stderr.contains(&index_digest),
        "the index is resolved: {}",
        out.stderr
    );
    assert_eq!(
        tagged(&env, "fresh", &dest).as_deref(),
        Some(native.as_str())
    );
    assert!(
        !env.path("fresh/blobs/sha256")
            .join(&other_digest[7..])
            .exists(),
        "the other platform's manifest is not fetched"
    );

    // An index without this host's platform is refused, saying what it has.
    let only_other = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&other_digest, other_bytes.len(), other_arch)]
    });
    let b = serde_json::to_vec(&only_other).unwrap();
    let d = put_blob(&layout, &b);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "size": b.len(),
            "annotations": {"org.opencontainers.image.ref.name": "foreign"}
        }]
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let foreign = format!("{}/foreign:1", reg.host());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:foreign", layout.display()),
        &format!("docker://{foreign}"),
    ]));
    let out = run(env.strata("fresh").args(["pull", &foreign]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("linux/{other_arch}")),
        "{}",
        out.stderr
    );
    assert!(tagged(&env, "fresh", &foreign).is_none());
}

// ------------------------------------------------------------ fake registries

/// One canned answer: status, extra headers, body.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn answer(status: u16, body: &[u8]) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

type Routes = Arc<Mutex<HashMap<String, Answer>>>;

/// A tiny HTTP/1.1 server: `GET`/`HEAD` of a known path gets its answer,
/// anything else 404. With `token`, every path but `/token` needs
/// `Authorization: Bearer <token>`, and `/token` needs `basic`.
struct Fake {
    port: u16,
    routes: Routes,
    log: Arc<Mutex<Vec<String>>>,
}

fn fake(token: Option<(&str, &str)>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes: Routes = Arc::default();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (r, l) = (routes.clone(), log.clone());
    let token = token.map(|(b, t)| (b.to_string(), t.to_string()));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (r, l, token) = (r.clone(), l.clone(), token.clone());
            std::thread::spawn(move || serve(conn, port, &r, &l, token));
        }
    });
    Fake { port, routes, log }
}

fn serve(
    conn: TcpStream,
    port: u16,
    routes: &Routes,
    log: &Mutex<Vec<String>>,
    token: Option<(String, String)>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut auth = String::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if lower.starts_with("authorization:") {
                auth = h[14..].trim().to_string();
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        let _ = reader.read_exact(&mut body);
        log.lock().unwrap().push(format!("{method} {path}"));
        let route = path.split('?').next().unwrap_or("").to_string();
        let a = match &token {
            Some((basic, tok)) if route == "/token" => {
                if auth == format!("Basic {basic}") {
                    answer(200, format!("{{\"token\":\"{tok}\"}}").as_bytes())
                } else {
                    answer(401, b"{}")
                }
            }
            Some((_, tok)) if auth != format!("Bearer {tok}") => {
                let mut a = answer(
                    401,
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
                a.headers.push((
                    "WWW-Authenticate".into(),
                    format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\""),
                ));
                a
            }
            _ => routes
                .lock()
                .unwrap()
                .get(&route)
                .cloned()
                .unwrap_or_else(|| {
                    answer(
                        404,
                        br#"{"errors":[{"code":"NOT_FOUND","message":"nope"}]}"#,
                    )
                }),
        };
        let mut head = format!("HTTP/1.1 {} X\r\n", a.status);
        let has_len = a
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !has_len {
            head.push_str(&format!("Content-Length: {}\r\n", a.body.len()));
        }
        for (k, v) in &a.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method != "HEAD" && conn.write_all(&a.body).is_err() {
            return;
        }
        if has_len {
            // A lying Content-Length: end the connection.
            return;
        }
    }
}

impl Fake {
    fn route(&self, path: &str, a: Answer) {
        self.routes.lock().unwrap().insert(path.to_string(), a);
    }

    /// Serves an image `repo:tag` whose layer blob is `served` instead of
    /// `layer` when they differ. Returns the manifest digest.
    fn image(&self, repo: &str, tag: &str, layer: &[u8], served: &[u8]) -> String {
        let layer_d = sha256(layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": host_arch(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_d]}
        }))
        .unwrap();
        let config_d = sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_d, "size": layer.len()}]
        }))
        .unwrap();
        self.route("/v2/", answer(200, b"{}"));
        let mut m = answer(200, &manifest);
        m.headers.push((
            "Content-Type".into(),
            "application/vnd.oci.image.manifest.v1+json".into(),
        ));
        self.route(&format!("/v2/{repo}/manifests/{tag}"), m);
        self.route(
            &format!("/v2/{repo}/blobs/{config_d}"),
            answer(200, &config),
        );
        self.route(&format!("/v2/{repo}/blobs/{layer_d}"), answer(200, served));
        sha256(&manifest)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A one-file tar, as a layer.
fn tar_layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_corrupt_blob_is_rejected_and_nothing_is_tagged() {
    let env = TestEnv::new();
    let f = fake(None);
    let layer = tar_layer("x.txt", b"the real content\n");
    let mut evil = layer.clone();
    let n = evil.len();
    evil[n / 3] ^= 0xff; // same size, other bytes
    f.image("bad", "1", &layer, &evil);
    let r = format!("{}/bad:1", f.host());
    let out = run(env.strata("root").args(["pull", &r, "--progress", "plain"]));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);
    assert!(out.stderr.contains(&sha256(&layer)), "{}", out.stderr);
    assert!(tagged(&env, "root", &r).is_none(), "nothing tagged");
    assert!(
        !env.path("root/blobs/sha256")
            .join(&sha256(&layer)[7..])
            .exists(),
        "the bad blob is not stored"
    );
    assert!(
        !env.path("root/snapshots").exists(),
        "nothing unpacked from the bad blob is kept"
    );

    // A shorter blob is refused too.
    f.image("short", "1", &layer, &layer[..layer.len() - 1]);
    let r = format!("{}/short:1", f.host());
    let out = run(env.strata("root").args(["pull", &r]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(tagged(&env, "root", &r).is_none());

    // A manifest announcing a huge body is not read.
    let mut huge = answer(200, b"{}");
    huge.headers
        .push(("Content-Length".into(), "1000000000".into()));
    f.route("/v2/huge/manifests/1", huge);
    let out = run(env
        .strata("root")
        .args(["pull", &format!("{}/huge:1", f.host())]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("announced 1000000000 bytes"),
        "{}",
        out.stderr
    );

    // Garbage JSON is an error, not a panic.
    f.route(
        "/v2/junk/manifests/1",
        answer(200, b"{\"schemaVersion\": [}"),
    );
    let out = run(env
        .strata("root")
        .args(["pull", &format!("{}/junk:1", f.host())]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("corrupt manifest"), "{}", out.stderr);

    // The same image served correctly is pulled.
    let good = f.image("good", "1", &layer, &layer);
    let r = format!("{}/good:1", f.host());
    let out = run_ok(env.strata("root").args(["pull", &r, "-q"]));
    assert_eq!(out.stdout.trim(), good);
    assert_eq!(tagged(&env, "root", &r).as_deref(), Some(good.as_str()));
}

#[test]
fn bearer_tokens_are_fetched_with_docker_config_credentials() {
    use base64::Engine as _;
    let env = TestEnv::new();
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let f = fake(Some((&basic, "t0ken")));
    let layer = tar_layer("y.txt", b"authenticated\n");
    let digest = f.image("private/app", "2", &layer, &layer);
    let r = format!("{}/private/app:2", f.host());

    // Without credentials the token service refuses, and the error says so.
    let cfg = env.path("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    let out = run(env
        .strata("root")
        .env("DOCKER_CONFIG", &cfg)
        .args(["pull", &r]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("anonymous access"), "{}", out.stderr);

    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{basic}"}}}}}}"#, f.host()),
    )
    .unwrap();
    let out = run_ok(
        env.strata("root")
            .env("DOCKER_CONFIG", &cfg)
            .args(["pull", &r, "-q"]),
    );
    assert_eq!(out.stdout.trim(), digest);
    let log = f.log.lock().unwrap().clone();
    let tokens: Vec<&String> = log.iter().filter(|l| l.starts_with("GET /token")).collect();
    assert!(!tokens.is_empty(), "{log:?}");
    assert!(
        tokens
            .iter()
            .any(|l| l.contains("scope=repository%3Aprivate%2Fapp%3Apull")),
        "{tokens:?}"
    );
    assert!(
        tokens.iter().all(|l| l.contains("service=fake")),
        "{tokens:?}"
    );
}

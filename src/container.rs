//! `strata run`: a container from an image. The image's layers (unpacked
//! once each into snapshots) are the read-only lower layers; a fresh
//! overlayfs upper layer is the container's writable copy-on-write layer.
//! It is thrown away afterwards, unless `commit` turns it into a new image
//! layer on top of the image.
//!
//! Invariant: the image itself is never modified; `commit` writes a new
//! manifest and config and moves only the named tag.

use std::io::Write;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ir::Network;
use crate::layer::{self, Compression};
use crate::oci::{self, History, Image};
use crate::sandbox::{self, SandboxSpec, Stream};
use crate::store::{Descriptor, Store};

/// What `strata run` was asked for.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replaces the image's Cmd (Entrypoint still applies).
    pub command: Vec<String>,
    /// `KEY=VALUE` (or `KEY` to pass the caller's value) added to the image's env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network: Network,
    /// Tag the image made of the container's changes with this name.
    pub commit: Option<String>,
}

/// How a container ended.
pub struct RunOutcome {
    pub exit_code: i32,
    /// The committed image's manifest, with `--commit`.
    pub committed: Option<Descriptor>,
}

/// Docker's exit status for a container that did not run its command: 127
/// when the command was not found, 126 when it exists but cannot be
/// executed, 125 for every other failure (strata's own). Read from the
/// sandbox's exec error, the one place these are told apart.
pub fn failure_status(e: &Error) -> i32 {
    let m = e.to_string();
    let exec = m.contains("sandbox: exec ");
    if m.contains("executable file not found in $PATH")
        || (exec && m.contains("No such file or directory"))
    {
        127
    } else if exec
        && ["Permission denied", "Exec format error", "Is a directory"]
            .iter()
            .any(|w| m.contains(w))
    {
        126
    } else {
        125
    }
}

/// The argv the container runs: Entrypoint + (the given command or Cmd).
pub fn argv(image: &Image, command: &[String]) -> Vec<String> {
    let c = &image.config.config;
    let mut v = c.entrypoint.clone().unwrap_or_default();
    if command.is_empty() {
        v.extend(c.cmd.clone().unwrap_or_default());
    } else {
        v.extend(command.iter().cloned());
    }
    v
}

/// The container's environment: the image's, then the `-e` values.
pub fn environment(image: &Image, extra: &[String]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| match env.iter_mut().find(|(x, _)| *x == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in image.config.config.env.iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k.to_string(), v.to_string());
    }
    for kv in extra {
        match kv.split_once('=') {
            Some((k, v)) => set(k.to_string(), v.to_string()),
            None => {
                if let Ok(v) = std::env::var(kv) {
                    set(kv.clone(), v);
                }
            }
        }
    }
    env
}

/// Runs a container of `image`; its stdout/stderr go to ours.
pub fn run(store: &Store, image: &Image, opts: &RunOptions) -> Result<RunOutcome> {
    sandbox::available().map_err(|why| Error::msg(format!("cannot run containers here: {why}")))?;
    let argv = argv(image, &opts.command);
    if argv.is_empty() {
        return Err(Error::msg(
            "the image has no Cmd or Entrypoint: give a command after the image name",
        ));
    }
    let diff_ids = &image.config.rootfs.diff_ids;
    if diff_ids.len() != image.layers.len() {
        return Err(Error::corrupt(
            format!("image {}", image.manifest.digest),
            "the config's diff_ids do not match the manifest's layers",
        ));
    }
    let mut lowerdirs = Vec::new();
    for (desc, diff_id) in image.layers.iter().zip(diff_ids) {
        lowerdirs.push(oci::layer_snapshot(store, desc, diff_id)?);
    }
    lowerdirs.reverse();
    let work = store.temp_dir()?;
    let upper = work.path().join("upper");
    let ovl_work = work.path().join("work");
    for d in [&upper, &ovl_work] {
        std::fs::create_dir(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let c = &image.config.config;
    let spec = SandboxSpec {
        lowerdirs,
        upperdir: upper.clone(),
        workdir: ovl_work.clone(),
        argv: argv.clone(),
        env: environment(image, &opts.env),
        cwd: opts
            .workdir
            .clone()
            .or_else(|| c.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_string()),
        user: opts
            .user
            .clone()
            .or_else(|| c.user.clone().filter(|u| !u.is_empty())),
        network: opts.network,
        hostname: String::new(),
        mounts: Vec::new(),
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let exit_code = sandbox::run(&spec, &mut |stream, bytes| {
        let _ = match stream {
            Stream::Stdout => out.write_all(bytes).and_then(|_| out.flush()),
            Stream::Stderr => err.write_all(bytes),
        };
    })?;
    let committed = match &opts.commit {
        Some(name) => {
            let _ = std::fs::remove_dir_all(&ovl_work);
            Some(commit(store, image, &upper, &argv, name)?)
        }
        None => None,
    };
    Ok(RunOutcome {
        exit_code,
        committed,
    })
}

/// A new image: `image` plus the container's upper layer as one more layer.
fn commit(
    store: &Store,
    image: &Image,
    upper: &std::path::Path,
    argv: &[String],
    name: &str,
) -> Result<Descriptor> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let entries = layer::entries_from_dir(upper, epoch)?;
    let mut config = image.config.clone();
    let mut layers = image.layers.clone();
    let created_by = format!("strata run {}", argv.join(" "));
    let created = Some(crate::build::rfc3339(epoch));
    if entries.is_empty() {
        config.history.push(History {
            created,
            created_by: Some(created_by),
            comment: Some("strata run --commit".into()),
            empty_layer: true,
            ..Default::default()
        });
    } else {
        let compression = Compression::Gzip;
        let mut w = store.blob_writer()?;
        let (stats, _) = layer::write_layer(entries, compression, &mut w)?;
        let (digest, size): (Digest, u64) = w.commit()?;
        layers.push(Descriptor {
            media_type: compression.media_type().to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
        });
        config.rootfs.diff_ids.push(stats.diff_id);
        config.history.push(History {
            created,
            created_by: Some(created_by),
            comment: Some("strata run --commit".into()),
            ..Default::default()
        });
    }
    let manifest = oci::write_image(store, &config, &layers)?;
    store.set_tag(name, &manifest)?;
    Ok(manifest)
}

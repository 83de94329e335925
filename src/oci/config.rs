//! The image config (`application/vnd.oci.image.config.v1+json`), with the
//! Docker fields a Dockerfile can set (Healthcheck, OnBuild, Shell), and how
//! config-only steps (`MetaOp`) fold into it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::ir::MetaOp;

use super::host_platform;

/// Serializes as `{}`: the value type of `ExposedPorts` and `Volumes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The image config. Field names follow the OCI image-spec; empty optional
/// fields are omitted, maps are sorted, so serialization is canonical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Whether a `Cmd` was set since this config was loaded or created (not
    /// serialized). Docker semantics: `ENTRYPOINT` clears a `CMD` inherited
    /// from the base image, but not one set earlier in the same stage.
    #[serde(skip)]
    pub cmd_set: bool,
}

/// The runtime defaults of a container (`config` in the image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Docker's `ArgsEscaped` (deprecated in the OCI spec, meaningful on
    /// Windows only). BuildKit sets it true at every CMD instruction, on
    /// every platform, and it stays through later steps and child images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
}

/// Docker's `Healthcheck` (durations in nanoseconds). `Test = ["NONE"]`
/// disables a health check inherited from the base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// `rootfs`: the layers' uncompressed digests, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub fs_type: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            fs_type: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry (OCI names, snake_case).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The config of an empty image: linux on the host's architecture.
    pub fn scratch(created: Option<String>) -> ImageConfig {
        let p = host_platform();
        ImageConfig {
            created,
            author: None,
            architecture: p.architecture,
            os: p.os,
            variant: p.variant,
            config: ContainerConfig::default(),
            rootfs: RootFs::default(),
            history: Vec::new(),
            cmd_set: false,
        }
    }

    /// Folds one config-only change into the config.
    pub fn apply(&mut self, op: &MetaOp) {
        let c = &mut self.config;
        match op {
            MetaOp::Env(vars) => {
                let env = c.env.get_or_insert_with(Vec::new);
                for (k, v) in vars {
                    let entry = format!("{k}={v}");
                    match env
                        .iter()
                        .position(|e| e.split_once('=').map_or(e.as_str(), |x| x.0) == k)
                    {
                        Some(i) => env[i] = entry,
                        None => env.push(entry),
                    }
                }
            }
            MetaOp::Workdir(w) => c.working_dir = Some(w.clone()),
            MetaOp::User(u) => c.user = Some(u.clone()),
            MetaOp::Shell(s) => c.shell = Some(s.clone()),
            MetaOp::Cmd(v) => {
                c.cmd = Some(v.clone());
                self.cmd_set = true;
            }
            MetaOp::Entrypoint(v) => {
                c.entrypoint = Some(v.clone());
                if !self.cmd_set {
                    c.cmd = None;
                }
            }
            MetaOp::Expose(ports) => {
                let map = c.exposed_ports.get_or_insert_with(BTreeMap::new);
                for key in crate::ir::history::exposed_ports(ports) {
                    map.insert(key, Empty {});
                }
            }
            MetaOp::Label(labels) => {
                let map = c.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in labels {
                    map.insert(k.clone(), v.clone());
                }
            }
            MetaOp::Volume(vols) => {
                let map = c.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    map.insert(v.clone(), Empty {});
                }
            }
            MetaOp::StopSignal(s) => c.stop_signal = Some(s.clone()),
            MetaOp::Healthcheck(h) => {
                c.healthcheck = Some(HealthConfig {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries,
                })
            }
            MetaOp::OnBuild(v) => c
                .on_build
                .get_or_insert_with(Vec::new)
                .extend(v.iter().cloned()),
            MetaOp::Maintainer(m) => self.author = Some(m.clone()),
            MetaOp::Arg(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Healthcheck;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn scratch_serializes_minimal_oci_config() {
        let c = ImageConfig::scratch(None);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["os"], "linux");
        assert_eq!(v["architecture"], host_platform().architecture);
        assert_eq!(
            v["rootfs"],
            serde_json::json!({"type": "layers", "diff_ids": []})
        );
        assert_eq!(v["config"], serde_json::json!({}));
        assert!(v.get("created").is_none());
        assert!(v.get("history").is_none());
        assert!(v.get("cmd_set").is_none());
    }

    #[test]
    fn env_replaces_in_place_and_appends() {
        let mut c = ImageConfig::scratch(None);
        c.apply(&MetaOp::Env(vec![kv("PATH", "/bin"), kv("A", "1")]));
        c.apply(&MetaOp::Env(vec![
            kv("PATH", "/usr/bin:/bin"),
            kv("B", "x=y"),
        ]));
        assert_eq!(
            c.config.env.unwrap(),
            s(&["PATH=/usr/bin:/bin", "A=1", "B=x=y"])
        );
    }

    #[test]
    fn entrypoint_clears_inherited_cmd_only() {
        let mut base = ImageConfig::scratch(None);
        base.config.cmd = Some(s(&["sh"]));
        let json = serde_json::to_vec(&base).unwrap();
        let mut loaded: ImageConfig = serde_json::from_slice(&json).unwrap();
        loaded.apply(&MetaOp::Entrypoint(s(&["/app"])));
        assert_eq!(loaded.config.cmd, None);
        assert_eq!(loaded.config.entrypoint, Some(s(&["/app"])));

        let mut c = ImageConfig::scratch(None);
        c.apply(&MetaOp::Cmd(s(&["--help"])));
        c.apply(&MetaOp::Entrypoint(s(&["/app"])));
        assert_eq!(c.config.cmd, Some(s(&["--help"])));
    }

    #[test]
    fn maps_and_docker_fields_use_docker_names() {
        let mut c = ImageConfig::scratch(Some("1970-01-01T00:00:00Z".into()));
        c.apply(&MetaOp::Expose(s(&["80", "53/UDP"])));
        c.apply(&MetaOp::Volume(s(&["/data"])));
        c.apply(&MetaOp::Label(vec![kv("b", "2"), kv("a", "1")]));
        c.apply(&MetaOp::Workdir("/src".into()));
        c.apply(&MetaOp::User("app:app".into()));
        c.apply(&MetaOp::Shell(s(&["/bin/bash", "-c"])));
        c.apply(&MetaOp::StopSignal("SIGTERM".into()));
        c.apply(&MetaOp::OnBuild(s(&["RUN a"])));
        c.apply(&MetaOp::OnBuild(s(&["RUN b"])));
        c.apply(&MetaOp::Arg(vec![("X".into(), None)]));
        c.apply(&MetaOp::Healthcheck(Healthcheck {
            test: s(&["CMD", "true"]),
            interval: Some(1_000_000_000),
            retries: Some(3),
            ..Default::default()
        }));
        let v = serde_json::to_value(&c).unwrap();
        let cfg = &v["config"];
        assert_eq!(
            cfg["ExposedPorts"],
            serde_json::json!({"53/udp": {}, "80/tcp": {}})
        );
        assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
        assert_eq!(cfg["WorkingDir"], "/src");
        assert_eq!(cfg["User"], "app:app");
        assert_eq!(cfg["Shell"], serde_json::json!(["/bin/bash", "-c"]));
        assert_eq!(cfg["StopSignal"], "SIGTERM");
        assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN a", "RUN b"]));
        assert_eq!(
            cfg["Healthcheck"],
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000u64, "Retries": 3})
        );
        // canonical: labels sorted
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""Labels":{"a":"1","b":"2"}"#), "{text}");
        let back: ImageConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.config, c.config);
    }

    #[test]
    fn healthcheck_none_is_kept_to_disable() {
        let mut c = ImageConfig::scratch(None);
        c.apply(&MetaOp::Healthcheck(Healthcheck {
            test: s(&["NONE"]),
            ..Default::default()
        }));
        assert_eq!(c.config.healthcheck.unwrap().test, s(&["NONE"]));
    }
}

//! run steps: the command, network and mounts.

use super::*;

/// The build args in scope as BuildKit's RUN history shows them: each
/// name once, in declaration order, with the env's value when the env
/// sets it, else the arg's (empty when it has none).
fn history_args(state: &State) -> Vec<(String, String)> {
    state
        .args
        .iter()
        .map(|(k, v)| {
            let v = state.env.get(k).or(v.as_ref()).cloned().unwrap_or_default();
            (k.clone(), v)
        })
        .collect()
}

impl Lowerer<'_, '_> {
    pub(super) fn run(
        &mut self,
        state: &State,
        s: &StepSpec,
        run: &Sp<StrOr<Vec<String>>>,
    ) -> Option<(Op, Vec<NodeIndex>)> {
        let command = match run.get() {
            StrOr::Str(script) => {
                if script.trim().is_empty() {
                    self.error(run.span(), "empty RUN (`run`) command", "nothing to run");
                    return None;
                }
                Command::Shell {
                    shell: state.shell.clone(),
                    script: script.clone(),
                }
            }
            StrOr::Other(argv) => {
                if argv.is_empty() || argv[0].is_empty() {
                    self.error(run.span(), "empty RUN (`run`) command", "nothing to run");
                    return None;
                }
                Command::Exec(argv.clone())
            }
        };
        let network = match &s.network {
            None => Network::Default,
            Some(n) => {
                let v = self.expand_in(state, n)?;
                match parse_network(&v) {
                    Some(mode) => mode,
                    None => {
                        self.error_help(
                            n.span(),
                            format!("unknown network mode `{v}`"),
                            "unknown mode",
                            "network is \"default\", \"none\" or \"host\"",
                        );
                        return None;
                    }
                }
            }
        };
        let mut mounts = Vec::new();
        let mut edges = Vec::new();
        let mut ok = true;
        for m in s.mounts.iter().flatten() {
            match self.mount(state, m) {
                Some((mount, edge)) => {
                    mounts.push(mount);
                    edges.extend(edge);
                }
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let op = RunOp {
            command,
            env: run_env(&state.env, &state.args),
            user: state.user.clone(),
            workdir: state.workdir.clone(),
            network,
            mounts,
            build_args: history_args(state),
        };
        Some((Op::Run(op), edges))
    }

    pub(super) fn mount(
        &mut self,
        state: &State,
        m: &Sp<MountSpec>,
    ) -> Option<(Mount, Option<NodeIndex>)> {
        let spec = m.get();
        let kind = *spec.kind.get();
        // Keys each mount type accepts, besides `type` and `target`.
        let allowed = mount::options(kind);
        let given: [(&str, bool); 11] = [
            ("source", spec.source.is_some()),
            ("from", spec.from.is_some()),
            ("id", spec.id.is_some()),
            ("sharing", spec.sharing.is_some()),
            ("readonly", spec.readonly.is_some() || spec.rw.is_some()),
            ("required", spec.required.is_some()),
            ("mode", spec.mode.is_some()),
            ("uid", spec.uid.is_some()),
            ("gid", spec.gid.is_some()),
            ("size", spec.size.is_some()),
            ("env", spec.env.is_some()),
        ];
        let kind_name = mount::kind_name(kind);
        let mut ok = true;
        for (k, present) in given {
            if present && !allowed.contains(&k) {
                self.error_help(
                    m.span(),
                    format!("`{k}` is not an option of a {kind_name} mount"),
                    "in this mount",
                    format!(
                        "options of a {kind_name} mount: target, {}",
                        allowed.join(", ")
                    ),
                );
                ok = false;
            }
        }
        let target = match &spec.target {
            Some(t) => self
                .expand_in(state, t)
                .map(|t| resolve_path(&state.workdir, &t)),
            None if matches!(kind, MountKind::Secret | MountKind::Ssh) => None,
            None => {
                self.error(
                    m.span(),
                    format!("a {kind_name} mount needs a target (`target`)"),
                    "missing `target`",
                );
                ok = false;
                None
            }
        };
        let id = spec.id.as_ref().and_then(|i| self.expand_in(state, i));
        let target = target.unwrap_or_else(|| match kind {
            MountKind::Secret => format!("/run/secrets/{}", id.as_deref().unwrap_or("")),
            _ => "/run/buildkit/ssh_agent.0".to_string(),
        });
        let mut edge = None;
        let from = match &spec.from {
            Some(f) => {
                let name = self.expand_global(f)?;
                let i = self.stage_index(&name)?;
                edge = self.stage_last(i);
                Some(name)
            }
            None => None,
        };
        let mut opt = |v: &Option<Sp<String>>| v.as_ref().and_then(|v| self.expand_in(state, v));
        let source = opt(&spec.source);
        let env = opt(&spec.env);
        let uid = self.mount_number(state, "uid", spec.uid.as_ref(), &mut ok);
        let gid = self.mount_number(state, "gid", spec.gid.as_ref(), &mut ok);
        let size = self.mount_number(state, "size", spec.size.as_ref(), &mut ok);
        let mode = match &spec.mode {
            Some(md) => {
                let v = self.expand_in(state, md)?;
                match parse_octal(&v) {
                    Some(x) => Some(x),
                    None => {
                        self.error(md.span(), format!("bad mode `{v}`"), "not an octal mode");
                        return None;
                    }
                }
            }
            None => None,
        };
        let sharing = match spec.sharing.as_ref() {
            None => None,
            Some(s) => match s.get() {
                SharingSpec::Shared => Some(Sharing::Shared),
                SharingSpec::Private => Some(Sharing::Private),
                SharingSpec::Locked => Some(Sharing::Locked),
                SharingSpec::Template(t) => {
                    let v = self.expand_in(state, &Sp::new(s.span(), t.clone()))?;
                    let x = mount::parse_sharing(&v);
                    if x.is_none() {
                        self.error(
                            s.span(),
                            format!(
                                "bad sharing `{v}` in mount: expected shared, private or locked"
                            ),
                            "in this mount",
                        );
                        ok = false;
                    }
                    x
                }
            },
        };
        let mut flag = |k: &str, f: &Option<Boolean>| -> Result<Option<bool>, ()> {
            match f {
                None => Ok(None),
                Some(Boolean::Value(b)) => Ok(Some(*b)),
                Some(Boolean::Template(t)) => {
                    let v = self
                        .expand_in(state, &Sp::new(m.span(), t.clone()))
                        .ok_or(())?;
                    match mount::parse_bool(Some(&v)) {
                        Some(b) => Ok(Some(b)),
                        None => {
                            self.error(
                                m.span(),
                                format!("bad {k} `{v}` in mount: expected true or false"),
                                "in this mount",
                            );
                            Err(())
                        }
                    }
                }
            }
        };
        let readonly = flag("readonly", &spec.readonly);
        let rw = flag("rw", &spec.rw);
        let required = flag("required", &spec.required);
        let (Ok(readonly), Ok(rw), Ok(required)) = (readonly, rw, required) else {
            return None;
        };
        if spec.readonly.is_some() && spec.rw.is_some() {
            self.error(
                m.span(),
                "a mount sets both `readonly` and `rw`",
                "in this mount",
            );
            ok = false;
        }
        let readonly = readonly.or(rw.map(|b| !b));
        if !ok {
            return None;
        }
        let mount = Mount {
            kind,
            target,
            source,
            from,
            id,
            sharing,
            // Bind mounts are read-only unless asked otherwise, as in Docker.
            readonly: readonly.unwrap_or(matches!(kind, MountKind::Bind)),
            required: required.unwrap_or(false),
            mode,
            uid: uid.map(|v| v as u32),
            gid: gid.map(|v| v as u32),
            size,
            env,
        };
        Some((mount, edge))
    }

    /// A mount's `uid`, `gid` (32 bits) or `size` (a size like `64m`
    /// when written as a string).
    pub(super) fn mount_number(
        &mut self,
        state: &State,
        key: &str,
        n: Option<&Sp<Number>>,
        ok: &mut bool,
    ) -> Option<u64> {
        let n = n?;
        let (value, shown) = match n.get() {
            Number::Value(v) => (Some(*v), v.to_string()),
            Number::Template(t) => {
                let Some(v) = self.expand_in(state, &Sp::new(n.span(), t.clone())) else {
                    *ok = false;
                    return None;
                };
                let parsed = if key == "size" {
                    parse_size(&v)
                } else {
                    v.parse::<u64>().ok()
                };
                (parsed, v)
            }
        };
        let value = value.filter(|v| key == "size" || u32::try_from(*v).is_ok());
        if value.is_none() {
            let what = if key == "size" {
                "not a size"
            } else {
                "not a number"
            };
            self.error(
                n.span(),
                format!("bad {key} `{shown}` in mount: {what}"),
                "in this mount",
            );
            *ok = false;
        }
        value
    }
}

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
                Some(self.read(state, md, parse_octal, ("mode", "not an octal mode", ""))?)
            }
            None => None,
        };
        let sharing = spec.sharing.as_ref().and_then(|s| {
            let what = "expected shared, private or locked";
            let at = (s.span(), s.get());
            self.mount_lit(state, at, ("sharing", what), mount::parse_sharing, &mut ok)
        });
        let mut flag = |this: &mut Self, k: &str, f: &Option<Boolean>| {
            let parse = |v: &str| mount::parse_bool(Some(v));
            let what = "expected true or false";
            let f = f.as_ref()?;
            this.mount_lit(state, (m.span(), f), (k, what), parse, &mut ok)
        };
        let readonly = flag(self, "readonly", &spec.readonly);
        let rw = flag(self, "rw", &spec.rw);
        let required = flag(self, "required", &spec.required);
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
        let fits = |v: &u64| key == "size" || u32::try_from(*v).is_ok();
        let what = if key == "size" {
            "not a size"
        } else {
            "not a number"
        };
        let parse = |v: &str| match key {
            "size" => parse_size(v),
            _ => v.parse::<u64>().ok().filter(fits),
        };
        let v = self.mount_lit(state, (n.span(), n.get()), (key, what), parse, ok)?;
        if !fits(&v) {
            self.bad_mount_value(n.span(), key, &v.to_string(), what);
            *ok = false;
            return None;
        }
        Some(v)
    }

    /// A mount value: as written, or its template (a Dockerfile's
    /// `uid=$UID`) expanded, then read by `parse`; `None` when either
    /// fails (reported, and `ok` cleared; `what` says what the value
    /// should be).
    fn mount_lit<T: Clone>(
        &mut self,
        state: &State,
        (span, lit): (Range<usize>, &Lit<T>),
        (key, what): (&str, &str),
        parse: impl Fn(&str) -> Option<T>,
        ok: &mut bool,
    ) -> Option<T> {
        let t = match lit {
            Lit::Value(v) => return Some(v.clone()),
            Lit::Template(t) => t,
        };
        let x = self
            .expand_in(state, &Sp::new(span.clone(), t.to_string()))
            .and_then(|v| {
                let x = parse(&v);
                if x.is_none() {
                    self.bad_mount_value(span, key, &v, what);
                }
                x
            });
        *ok &= x.is_some();
        x
    }

    fn bad_mount_value(&mut self, span: Range<usize>, key: &str, shown: &str, what: &str) {
        let message = format!("bad {key} `{shown}` in mount: {what}");
        self.error(span, message, "in this mount");
    }
}

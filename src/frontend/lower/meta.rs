//! Image config steps: workdir, arg, labels, expose, volumes, stop signal,
//! healthcheck, onbuild.

use super::*;
use crate::ir::WorkdirOp;

/// WORKDIR (`workdir`): the state's working directory becomes `w`
/// (resolved against it). As BuildKit, a path other than `/` is a step
/// that creates the directory, owned by the current user.
pub(super) fn workdir_op(state: &mut State, w: &str) -> Op {
    state.workdir = resolve_path(&state.workdir, w);
    if state.workdir == "/" {
        return Op::Meta(MetaOp::Workdir(state.workdir.clone()));
    }
    Op::Workdir(WorkdirOp {
        path: state.workdir.clone(),
        user: state.user.clone(),
    })
}

impl Lowerer<'_, '_> {
    pub(super) fn arg_step(
        &mut self,
        state: &mut State,
        a: &Sp<String>,
        default: Option<&Sp<String>>,
    ) -> Option<(Op, Vec<NodeIndex>)> {
        let name = a.get();
        if !self.arg_name_ok(name, a.span()) {
            return None;
        }
        let default = match default {
            Some(d) => Some(self.expand_in(state, d)?),
            None => None,
        };
        let value = self
            .opts
            .build_args
            .get(name)
            .cloned()
            .or(default)
            .or_else(|| self.lookup_global(name).flatten());
        self.declared.insert(name.clone());
        if let Some(v) = &value {
            self.graph
                .args
                .entry(name.clone())
                .or_insert_with(|| v.clone());
        }
        state.args.set(name, value.clone());
        Some((
            Op::Meta(MetaOp::Arg(vec![(name.clone(), value)])),
            Vec::new(),
        ))
    }

    /// ENV and LABEL pairs, names and values expanded; a name `bad` finds
    /// wrong is reported at its value (a table key has no span here).
    pub(super) fn pairs(
        &mut self,
        state: &State,
        m: &OrderedMap,
        bad: fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(m.0.len());
        for (k, v) in &m.0 {
            let Some(k) = self.expand_key(state, k, v) else {
                continue;
            };
            if let Some(message) = bad(&k) {
                self.error(v.span(), message, "for this value");
            } else if let Some(v) = self.expand_in(state, v) {
                out.push((k, v));
            }
        }
        out
    }

    pub(super) fn labels(&mut self, state: &State, l: &Sp<OrderedMap>) -> Op {
        let bad = |k: &str| k.is_empty().then(|| "empty label name".to_string());
        Op::Meta(MetaOp::Label(self.pairs(state, l.get(), bad)))
    }

    pub(super) fn expose(&mut self, state: &State, ports: &[Sp<String>]) -> Op {
        let mut out = Vec::new();
        let help = "write a port 1-65535 or a range, optionally with /tcp, /udp or /sctp, e.g. \"8080/tcp\"";
        let what = ("expose", "expected port[/protocol]", help);
        for p in ports {
            out.extend(self.read(state, p, normalize_port, what));
        }
        Op::Meta(MetaOp::Expose(out))
    }

    pub(super) fn volumes(&mut self, state: &State, vols: &[Sp<String>]) -> Op {
        let mut out = Vec::new();
        for p in vols {
            let Some(v) = self.expand_in(state, p) else {
                continue;
            };
            if v.starts_with('/') {
                out.push(v);
            } else {
                self.error_help(
                    p.span(),
                    format!("relative volume path `{v}`"),
                    "not absolute",
                    "volume paths are absolute, e.g. \"/data\"",
                );
            }
        }
        Op::Meta(MetaOp::Volume(out))
    }

    pub(super) fn stopsignal(&mut self, state: &State, s: &Sp<String>) -> Option<Op> {
        let signal = |v: &str| is_signal(v).then(|| v.to_string());
        let help = "write a signal name or number, e.g. \"SIGTERM\" or \"15\"";
        let v = self.read(state, s, signal, ("stop signal", "not a signal", help))?;
        Some(Op::Meta(MetaOp::StopSignal(v)))
    }

    pub(super) fn healthcheck(&mut self, h: &Sp<HealthcheckSpec>) -> Option<Op> {
        let spec = h.get();
        let test = match spec.test.get() {
            StrOr::Str(s) if s == "NONE" => vec!["NONE".to_string()],
            StrOr::Str(s) if s.trim().is_empty() => {
                self.error(spec.test.span(), "empty healthcheck test", "nothing to run");
                return None;
            }
            StrOr::Str(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            StrOr::Other(v) => {
                if !is_healthcheck_test(v) {
                    self.error_help(
                        spec.test.span(),
                        "bad healthcheck test",
                        "expected [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]",
                        "a string runs in the shell; \"NONE\" disables the check",
                    );
                    return None;
                }
                v.clone()
            }
        };
        let mut ok = true;
        let mut dur = |d: &Option<Sp<String>>| -> Option<u64> {
            let d = d.as_ref()?;
            match parse_duration(d.get()) {
                Some(n) => Some(n),
                None => {
                    self.error_help(d.span(), format!("bad duration `{}`", d.get()), "not a duration", "write a duration like \"30s\", \"1m30s\" or \"500ms\" (units h, m, s, ms, us, ns)");
                    ok = false;
                    None
                }
            }
        };
        let interval = dur(&spec.interval);
        let timeout = dur(&spec.timeout);
        let start_period = dur(&spec.start_period);
        let start_interval = dur(&spec.start_interval);
        if !ok {
            return None;
        }
        Some(Op::Meta(MetaOp::Healthcheck(Healthcheck {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries: spec.retries,
        })))
    }

    pub(super) fn onbuild(&mut self, items: &[Sp<String>]) -> Op {
        let mut out = Vec::new();
        for i in items {
            if i.get().trim().is_empty() {
                self.error(i.span(), "empty onbuild instruction", "empty");
            } else {
                out.push(i.get().clone());
            }
        }
        Op::Meta(MetaOp::OnBuild(out))
    }
}

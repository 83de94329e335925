//! The steps of one instruction (RUN in [`super::run`]).

use super::super::parser::{Heredoc, Node, parse_heredoc};
use super::super::template::heredoc;
use super::{ToModel, arg_word, comments, literal};
use crate::frontend::model::{HealthcheckSpec, OrderedMap, Sp, StepSpec, StrOr};
use crate::frontend::values::{parse_flag_bool, parse_retries};

impl ToModel<'_, '_> {
    /// The steps of one instruction (none when it is refused).
    pub(super) fn steps(&mut self, n: &Node, out: &mut Vec<Sp<StepSpec>>) {
        let span = self.span(n.span.clone());
        let first = out.len();
        let one: Option<StepSpec> = match n.keyword.as_str() {
            "arg" => {
                for w in &n.args {
                    let (name, default) = arg_word(w);
                    let default = match default {
                        Some(d) => match self.t(n, d) {
                            Some(t) => Some(self.sp(n.locate(self.text(), d), t)),
                            None => continue,
                        },
                        None => None,
                    };
                    let arg = self.sp(n.locate(self.text(), name), name.to_string());
                    // Each name is in scope for the next one's default.
                    self.args.insert(name.to_string());
                    out.push(Sp::new(
                        span.clone(),
                        StepSpec {
                            arg: Some(arg),
                            default: default.map(Box::new),
                            ..StepSpec::default()
                        },
                    ));
                }
                None
            }
            "env" | "label" => self.pairs(n).map(|m| {
                let mut s = StepSpec::default();
                let v = Some(Sp::new(span.clone(), m));
                match n.keyword.as_str() {
                    "env" => s.env = v,
                    _ => s.label = v,
                }
                s
            }),
            "maintainer" => {
                let v = n.args.first().cloned().unwrap_or_default();
                Some(StepSpec {
                    maintainer: Some(self.sp(span.clone(), literal(&v))),
                    ..StepSpec::default()
                })
            }
            "workdir" | "user" | "stopsignal" => self.single(n),
            "shell" => {
                if !n.json || n.args.is_empty() {
                    let at = self.first_line(n);
                    self.sink.error_help(
                        at,
                        "SHELL needs a non-empty JSON array",
                        "not a JSON array",
                        "e.g. SHELL [\"/bin/bash\", \"-c\"]",
                    );
                    None
                } else {
                    Some(StepSpec {
                        shell: Some(Box::new(Sp::new(span.clone(), n.args.clone()))),
                        ..StepSpec::default()
                    })
                }
            }
            "cmd" | "entrypoint" => {
                let c = if n.json {
                    StrOr::Other(n.args.clone())
                } else {
                    StrOr::Str(n.args.first().cloned().unwrap_or_default())
                };
                let mut s = StepSpec::default();
                let v = Some(Box::new(Sp::new(span.clone(), c)));
                match n.keyword.as_str() {
                    "cmd" => s.cmd = v,
                    _ => s.entrypoint = v,
                }
                Some(s)
            }
            "expose" | "volume" => {
                let mut v = Vec::new();
                for a in &n.args {
                    if let Some(t) = self.t(n, a) {
                        v.push(self.sp(n.locate(self.text(), a), t));
                    }
                }
                let mut s = StepSpec::default();
                let v = Some(Box::new(Sp::new(span.clone(), v)));
                match n.keyword.as_str() {
                    "expose" => s.expose = v,
                    _ => s.volume = v,
                }
                Some(s)
            }
            "healthcheck" => self.healthcheck(n).map(|h| StepSpec {
                healthcheck: Some(Box::new(Sp::new(span.clone(), h))),
                ..StepSpec::default()
            }),
            "onbuild" => {
                let trigger = n
                    .sub
                    .as_ref()
                    .map(|s| s.original.trim().to_string())
                    .unwrap_or_default();
                Some(StepSpec {
                    onbuild: Some(Box::new(Sp::new(
                        span.clone(),
                        vec![Sp::new(span.clone(), trigger)],
                    ))),
                    ..StepSpec::default()
                })
            }
            "run" => self.run(n),
            "copy" | "add" => self.copy(n),
            _ => None,
        };
        if let Some(s) = one {
            out.push(Sp::new(span, s));
        }
        if let Some(first) = out.get_mut(first) {
            first.0.get_mut().layout.comments = comments(n);
        }
    }

    /// ENV and LABEL: `key=value` pairs, the values templates.
    fn pairs(&mut self, n: &Node) -> Option<OrderedMap> {
        let what = if n.keyword == "env" {
            "ENV needs at least one NAME=value"
        } else {
            "LABEL needs at least one key=value"
        };
        if n.args.is_empty() {
            let at = self.first_line(n);
            self.error(at, what, "empty");
            return None;
        }
        // Sized: most ENV lines set one name, and a Vec grown from empty
        // holds four (issue 9: 200,000 such lines).
        let mut out = Vec::with_capacity(n.args.len().div_ceil(3));
        for t in n.args.chunks(3) {
            let (Some(k), Some(v)) = (t.first(), t.get(1)) else {
                continue;
            };
            let (Some(kt), Some(vt)) = (self.t(n, k), self.t(n, v)) else {
                continue;
            };
            // The name is a template too: BuildKit expands ENV and LABEL
            // names (`ENV $K=v`).
            let value = self.sp(n.locate(self.text(), v), vt);
            out.push((kt, value));
        }
        Some(OrderedMap(out))
    }

    /// WORKDIR, USER, STOPSIGNAL: one word.
    fn single(&mut self, n: &Node) -> Option<StepSpec> {
        let Some(w) = n.args.first() else {
            let what = match n.keyword.as_str() {
                "workdir" => "WORKDIR needs a path",
                "user" => "USER needs a user name or id",
                _ => "STOPSIGNAL needs a signal",
            };
            let at = self.first_line(n);
            self.error(at, what, "empty");
            return None;
        };
        let v = self.t(n, w)?;
        let v = self.sp(n.locate(self.text(), w), v);
        let mut s = StepSpec::default();
        match n.keyword.as_str() {
            "workdir" => s.workdir = Some(v),
            "user" => s.user = Some(v),
            _ => s.stopsignal = Some(Box::new(v)),
        }
        Some(s)
    }

    fn healthcheck(&mut self, n: &Node) -> Option<HealthcheckSpec> {
        let at = self.first_line(n);
        let Some(kind) = n.args.first() else {
            self.error(at, "HEALTHCHECK needs CMD or NONE", "empty");
            return None;
        };
        let test = match kind.to_uppercase().as_str() {
            "NONE" if n.args.len() > 1 => {
                self.error(at, "HEALTHCHECK NONE takes no arguments", "here");
                return None;
            }
            "NONE" => vec!["NONE".to_string()],
            "CMD" => {
                let rest = &n.args[1..];
                if rest.is_empty() || rest[0].is_empty() {
                    self.error(at, "HEALTHCHECK CMD needs a command", "empty");
                    return None;
                }
                if n.json {
                    let mut v = vec!["CMD".to_string()];
                    v.extend(rest.iter().cloned());
                    v
                } else {
                    vec!["CMD-SHELL".to_string(), rest[0].clone()]
                }
            }
            other => {
                let at = self.locate(n, kind);
                self.sink.error_help(
                    at,
                    format!("unknown HEALTHCHECK type `{other}`"),
                    "here",
                    "HEALTHCHECK takes CMD or NONE",
                );
                return None;
            }
        };
        let mut h = HealthcheckSpec {
            test: self.sp(n.span.clone(), StrOr::Other(test)),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        };
        let mut ok = true;
        for f in self.flags(n) {
            let v = f.value.clone().unwrap_or_default();
            if f.name == "retries" {
                h.retries = parse_retries(&v);
                if h.retries.is_none() {
                    self.error(f.span, format!("bad retries `{v}`"), "not a number");
                    ok = false;
                }
                continue;
            }
            let d = Some(Sp::new(f.span, v));
            match f.name.as_str() {
                "interval" => h.interval = d,
                "timeout" => h.timeout = d,
                "start-period" => h.start_period = d,
                _ => h.start_interval = d,
            }
        }
        ok.then_some(h)
    }

    /// The text of a COPY/ADD heredoc source `h` (its body from the node,
    /// `<<-` applied) as a template: literal when the delimiter is quoted;
    /// otherwise expanded as BuildKit expands it ([`heredoc`]), in the
    /// stage's scope (as [`ToModel::t`]).
    fn heredoc_content(&mut self, n: &Node, h: &Heredoc) -> Option<String> {
        let at = self.first_line(n);
        let Some(doc) = n.heredocs.iter().find(|d| d.name == h.name) else {
            self.error(at, format!("heredoc `{}` has no body", h.name), "heredoc");
            return None;
        };
        let doc = Heredoc {
            chomp: h.chomp,
            ..doc.clone()
        };
        let body = doc.body();
        if !h.expand {
            return Some(literal(&body));
        }
        let r = heredoc(&body, &|name| self.stage_scope(name));
        r.map_err(|e| {
            self.sink.error_help(
                at,
                format!("in the body of heredoc `<<{}`: {e}", h.name),
                "heredoc",
                format!(
                    "quote the delimiter (`<<\"{}\"`) to copy the text as written",
                    h.name
                ),
            );
        })
        .ok()
    }

    fn copy(&mut self, n: &Node) -> Option<StepSpec> {
        let add = n.keyword == "add";
        let verb = n.keyword.to_uppercase();
        let at = self.first_line(n);
        if n.args.len() < 2 {
            self.sink.error_help(
                at,
                format!("{verb} needs at least one source and a destination"),
                "missing arguments",
                format!("e.g. {verb} src/ /app/"),
            );
            return None;
        }
        let span = self.span(n.span.clone());
        let errors = self.sink.errors.len();
        let (srcs, dest) = n.args.split_at(n.args.len() - 1);
        let mut sources = Vec::new();
        let mut content = Vec::new();
        for s in srcs {
            match parse_heredoc(s) {
                Ok(Some(h)) => {
                    if let Some(text) = self.heredoc_content(n, &h) {
                        content.push((h.name.clone(), self.sp(at.clone(), text)));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.error(at.clone(), e, "bad heredoc");
                    continue;
                }
            }
            if let Some(t) = self.t(n, s) {
                sources.push(self.sp(n.locate(self.text(), s), t));
            }
        }
        let mut s = StepSpec::default();
        if !content.is_empty() {
            s.content = Some(Sp::new(span.clone(), OrderedMap(content)));
        }
        let sources = Some(Sp::new(span, sources));
        if add {
            s.add = sources;
        } else {
            s.copy = sources;
        }
        s.to = self
            .t(n, &dest[0])
            .map(|t| self.sp(n.locate(self.text(), &dest[0]), t));
        let mut exclude = Vec::new();
        for f in self.flags(n) {
            let v = f.value.clone();
            let raw = v.clone().unwrap_or_default();
            match f.name.as_str() {
                "from" => match self.tg(n, &raw).map(|t| (self.stage_named(&t), t)) {
                    Some((Some(i), t)) => {
                        self.check_order(i, &t, f.span.clone());
                        s.from = Some(Sp::new(f.span, self.names[i].clone()));
                    }
                    Some((None, t)) => s.image = Some(Box::new(Sp::new(f.span, t))),
                    None => {}
                },
                "chown" | "chmod" | "checksum" | "exclude" => {
                    let Some(t) = self.t(n, &raw).map(|t| Sp::new(f.span, t)) else {
                        continue;
                    };
                    match f.name.as_str() {
                        "chown" => s.chown = Some(Box::new(t)),
                        "chmod" => s.chmod = Some(Box::new(t)),
                        "checksum" => s.checksum = Some(Box::new(t)),
                        _ => exclude.push(t),
                    }
                }
                name @ ("link" | "parents" | "keep-git-dir" | "unpack") => {
                    match parse_flag_bool(v.as_deref()) {
                        Some(b) => match name {
                            "link" => s.link = Some(b),
                            "parents" => s.parents = Some(b),
                            "keep-git-dir" => s.keep_git_dir = Some(b),
                            _ => s.unpack = Some(b),
                        },
                        None => {
                            self.error(
                                f.span,
                                format!("--{name} takes true or false"),
                                "not a boolean",
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        if !exclude.is_empty() {
            s.exclude = Some(exclude);
        }
        self.unless_errors(errors, s)
    }
}

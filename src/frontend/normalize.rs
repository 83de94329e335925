//! Model -> model: a Dockerfile's model in the `strata.toml` dialect, so
//! that the TOML printer can write it (`strata convert` is Dockerfile ->
//! `to_model` -> this -> `toml::print`). The result lowers to the same IR
//! as the input; where it cannot be made to, a spanned error says so, and
//! where it holds only under the defaults (a `--build-arg` could make the
//! two differ), a spanned warning says so. Meaning never changes silently.
//!
//! What each rule of the Dockerfile [`Dialect`] becomes:
//! - `scoped_globals` (a step sees a global arg only when its stage
//!   declares it): every template a step expands is rewritten so that a
//!   global arg the stage has not declared (by an `arg` step, or as an
//!   `env` name, its base stage's included) expands as unset, by the
//!   expansion evaluator's own rules ([`resolve_unset`]: `${X:-d}` -> `d`,
//!   `${X}` -> ``, `${X#p}` -> ``). Each such use is warned about, at the
//!   word: it is what Docker does, but rarely what was meant, and a base
//!   image whose env sets that name would give its value in the
//!   Dockerfile and the empty string here. A RUN's own `$X` is the
//!   shell's (a global arg is in no RUN environment it was not declared
//!   for, in either format): only warned about.
//! - predefined platform args (`BUILDPLATFORM`, `TARGETARCH`, ...): part of
//!   both formats (`frontend::lower`), nothing to rewrite.
//! - expanded global defaults: a default with no reference becomes the
//!   literal it expands to; one with references keeps them, marked
//!   `expand` (`[args]` `{ default = "...", expand = true }`).
//! - base ONBUILD triggers: the stage key `base-onbuild = true`, already
//!   set by `to_model`; nothing to rewrite.
//! - `image_may_name_stage` (`COPY --from=$X` may name a stage): a copy
//!   `image` written with variables that names a stage under the
//!   defaults becomes a copy `from` (another value, naming an image, is
//!   then an error, never another build); one naming an image stays an
//!   `image`, with a warning that a `--build-arg` naming a stage would
//!   copy from that stage in the Dockerfile only.

use std::collections::HashSet;
use std::ops::Range;

use super::diag::{Sink, diagnostic};
use super::lower::lookup_in;
use super::model::{Dialect, Lit, MountSpec, OrderedMap, Parsed, Sp, StageSpec, StepSpec, StrOr};
use super::toml::expand::{ExpandError, expand, resolve_unset};
use super::vars::platform_args;
use crate::error::SourceDiagnostic;

/// `parsed` in the default (TOML) dialect; errors go to `sink`, warnings
/// are returned.
pub fn normalize(mut parsed: Parsed, sink: &mut Sink) -> (Parsed, Vec<SourceDiagnostic>) {
    let mut n = Normalizer {
        sink,
        warnings: Vec::new(),
        globals: parsed.args.iter().map(|a| a.name.clone()).collect(),
        defaults: Vec::new(),
        platform: platform_args(None),
    };
    n.args(&mut parsed);
    let Dialect {
        scoped_globals,
        image_may_name_stage,
    } = parsed.dialect;
    if image_may_name_stage {
        n.image_stages(&mut parsed);
    }
    if scoped_globals {
        n.scopes(&mut parsed);
    }
    parsed.dialect = Dialect::default();
    (parsed, n.warnings)
}

struct Normalizer<'s, 'f> {
    sink: &'s mut Sink<'f>,
    warnings: Vec<SourceDiagnostic>,
    /// Names of the global args.
    globals: HashSet<String>,
    /// The global args' values under the defaults (no `--build-arg`).
    defaults: Vec<(String, Option<String>)>,
    platform: Vec<(String, String)>,
}

/// The names a stage defines for its steps: env names (a base stage's
/// too) and arg names.
#[derive(Clone, Default)]
struct Scope {
    env: HashSet<String>,
    args: HashSet<String>,
}

impl Normalizer<'_, '_> {
    fn warn(&mut self, span: Range<usize>, message: String, label: &str, help: String) {
        let d = diagnostic(self.sink.file, span, message, label).with_help(help);
        self.warnings.push(d);
    }

    /// Global defaults: literal where they have no reference; the values
    /// under the defaults, for the rules that resolve names statically.
    fn args(&mut self, parsed: &mut Parsed) {
        for a in &mut parsed.args {
            let value = match &a.default {
                Some(d) if a.expand => {
                    let v = expand(d, &|n: &str| lookup_in(&self.defaults, &self.platform, n)).ok();
                    if let Ok(literal) = expand(d, &|_| None) {
                        a.default = Some(literal);
                        a.expand = false;
                    }
                    v
                }
                d => d.clone(),
            };
            match self.defaults.iter_mut().find(|(k, _)| *k == a.name) {
                Some(slot) => slot.1 = value,
                None => self.defaults.push((a.name.clone(), value)),
            }
        }
    }

    /// A value expanded as the lowering expands `from`s, under the defaults.
    fn global_value(&self, t: &str) -> Option<String> {
        expand(t, &|n: &str| lookup_in(&self.defaults, &self.platform, n)).ok()
    }

    fn image_stages(&mut self, parsed: &mut Parsed) {
        let names: Vec<String> = parsed.stages.iter().map(|s| s.name.clone()).collect();
        for stage in &mut parsed.stages {
            let Some(spec) = &mut stage.spec else {
                continue;
            };
            for step in &mut spec.steps {
                let s = step.0.get_mut();
                let Some(img) = &s.image else { continue };
                if !img.get().contains('$') || s.from.is_some() {
                    continue;
                }
                let value = self.global_value(img.get());
                if value.as_ref().is_some_and(|v| names.contains(v)) {
                    s.from = s.image.take().map(|b| *b);
                } else {
                    let span = img.span();
                    self.warn(
                        span,
                        format!(
                            "`{}` names an image under the defaults; the converted spec always copies from an image",
                            img.get()
                        ),
                        "an image here",
                        "in the Dockerfile, a --build-arg that makes it name a stage copies from that stage"
                            .into(),
                    );
                }
            }
        }
    }

    fn scopes(&mut self, parsed: &mut Parsed) {
        let names: Vec<String> = parsed.stages.iter().map(|s| s.name.clone()).collect();
        let mut ends: Vec<Option<HashSet<String>>> = vec![None; names.len()];
        for (i, stage) in parsed.stages.iter_mut().enumerate() {
            let Some(spec) = &mut stage.spec else {
                continue;
            };
            let mut scope = Scope::default();
            if let StrOr::Str(from) = spec.from.get()
                && let Some(v) = self.global_value(from)
                && let Some(b) = names.iter().position(|n| *n == v)
            {
                scope.env = ends.get(b).cloned().flatten().unwrap_or_default();
            }
            for a in spec.args.iter().flatten() {
                scope.args.insert(a.get().clone());
            }
            for step in &mut spec.steps {
                let s = step.0.get_mut();
                self.step(&scope, s);
                if let Some(env) = &s.env {
                    scope.env.extend(env.get().0.iter().map(|(k, _)| k.clone()));
                }
                if let Some(a) = &s.arg {
                    scope.args.insert(a.get().clone());
                }
            }
            self.stage_config(&scope, spec);
            ends[i] = Some(scope.env);
        }
    }

    /// Rewrites one template of a step in `scope`.
    fn template(&mut self, scope: &Scope, t: &mut Sp<String>) {
        let span = t.span();
        self.rewrite(scope, t.0.get_mut(), span);
    }

    /// Rewrites a template in place (a mount's value, a table key).
    fn rewrite(&mut self, scope: &Scope, t: &mut String, span: Range<usize>) {
        if let Some(v) = self.resolve(scope, t, span) {
            *t = v;
        }
    }

    fn resolve(&mut self, scope: &Scope, t: &str, span: Range<usize>) -> Option<String> {
        if !t.contains('$') {
            return None;
        }
        let hidden =
            |n: &str| self.globals.contains(n) && !scope.env.contains(n) && !scope.args.contains(n);
        let mut used = Vec::new();
        match resolve_unset(t, &hidden, &mut used) {
            Ok(v) => {
                for name in used {
                    self.hidden_warning(span.clone(), &name, false);
                }
                Some(v)
            }
            Err(ExpandError { message, .. }) => {
                self.sink.error_help(
                    span,
                    format!("cannot convert `{t}`: {message}"),
                    "in this value",
                    "a global arg the stage does not declare is unset here; declare it with ARG in the stage",
                );
                None
            }
        }
    }

    fn hidden_warning(&mut self, span: Range<usize>, name: &str, run: bool) {
        let (message, label) = if run {
            (
                format!("global arg {name} is not in this RUN's environment, as in Docker"),
                "unset here",
            )
        } else {
            (
                format!("global arg {name} is unset in this stage, as in Docker"),
                "expands as unset",
            )
        };
        self.warn(
            span,
            message,
            label,
            format!(
                "an ARG before the first FROM is in scope only in FROM lines and `--from` values; \
                 declare `ARG {name}` in the stage to use its value"
            ),
        );
    }

    fn all(&mut self, scope: &Scope, v: &mut Option<Sp<String>>) {
        if let Some(t) = v {
            self.template(scope, t);
        }
    }

    fn list(&mut self, scope: &Scope, v: &mut [Sp<String>]) {
        for t in v {
            self.template(scope, t);
        }
    }

    /// Names and values: both are expanded.
    fn map(&mut self, scope: &Scope, m: &mut OrderedMap) {
        for (k, t) in &mut m.0 {
            self.rewrite(scope, k, t.span());
            self.template(scope, t);
        }
    }

    /// Every template a step expands in its stage's scope. (Written out
    /// field by field, without `..`: a new field does not compile until
    /// it is decided here.)
    fn step(&mut self, scope: &Scope, s: &mut StepSpec) {
        let StepSpec {
            copy,
            add,
            run,
            env,
            workdir,
            user,
            shell: _,
            arg: _,
            cmd: _,
            entrypoint: _,
            label,
            expose,
            volume,
            stopsignal,
            healthcheck: _,
            onbuild: _,
            // Literal: BuildKit does not expand MAINTAINER.
            maintainer: _,
            content,
            to,
            // Expanded with the global args, as in a Dockerfile.
            from: _,
            image: _,
            chmod,
            chown,
            exclude,
            link: _,
            parents: _,
            checksum,
            keep_git_dir: _,
            unpack: _,
            network,
            mounts,
            default,
            layout: _,
        } = s;
        let lists = [
            copy.as_mut(),
            add.as_mut(),
            expose.as_deref_mut(),
            volume.as_deref_mut(),
        ];
        for v in lists.into_iter().flatten() {
            self.list(scope, v.0.get_mut());
        }
        for m in [env, label].into_iter().flatten() {
            self.map(scope, m.0.get_mut());
        }
        // A heredoc's file name is literal; its body a template.
        for (_, t) in content.iter_mut().flat_map(|c| c.0.get_mut().0.iter_mut()) {
            self.template(scope, t);
        }
        let single = [
            workdir.as_mut(),
            user.as_mut(),
            stopsignal.as_deref_mut(),
            to.as_mut(),
            chmod.as_deref_mut(),
            chown.as_deref_mut(),
            checksum.as_deref_mut(),
            network.as_deref_mut(),
            default.as_deref_mut(),
        ];
        for t in single.into_iter().flatten() {
            self.template(scope, t);
        }
        if let Some(e) = exclude {
            self.list(scope, e);
        }
        for m in mounts.iter_mut().flatten() {
            self.mount(scope, m);
        }
        if let Some(r) = run {
            self.run_warnings(scope, r);
        }
    }

    fn mount(&mut self, scope: &Scope, m: &mut Sp<MountSpec>) {
        let span = m.span();
        let MountSpec {
            kind: _,
            target,
            source,
            from: _,
            id,
            sharing,
            readonly,
            rw,
            required,
            mode,
            uid,
            gid,
            size,
            env,
        } = m.0.get_mut();
        for v in [target, source, id, mode, env] {
            self.all(scope, v);
        }
        let sharing = sharing.as_mut().and_then(|s| s.0.get_mut().template_mut());
        let flags = [readonly, rw, required].into_iter().flatten();
        let numbers = [uid, gid, size].into_iter().flatten();
        let templates = (flags.filter_map(Lit::template_mut))
            .chain(numbers.filter_map(|n| n.0.get_mut().template_mut()));
        for t in sharing.into_iter().chain(templates) {
            self.rewrite(scope, t, span.clone());
        }
    }

    /// A shell script that uses a global arg its stage did not declare.
    fn run_warnings(&mut self, scope: &Scope, r: &Sp<StrOr<Vec<String>>>) {
        let StrOr::Str(script) = r.get() else { return };
        let mut hidden: Vec<&String> = self
            .globals
            .iter()
            .filter(|g| !scope.env.contains(*g) && !scope.args.contains(*g))
            .filter(|g| script_uses(script, g))
            .collect();
        hidden.sort();
        let hidden: Vec<String> = hidden.into_iter().cloned().collect();
        for name in hidden {
            let span = r.span();
            let text = self.sink.file.text.get(span.clone()).unwrap_or("");
            // At `$NAME`, or at the whole `${NAME...}`.
            let plain = format!("${name}");
            let braced = format!("${{{name}");
            let at = match find_name(text, &braced) {
                Some(a) => Some((a, text[a..].find('}').map_or(plain.len(), |e| e + 1))),
                None => find_name(text, &plain).map(|a| (a, plain.len())),
            };
            let span = at.map_or(span.clone(), |(a, len)| {
                span.start + a..span.start + a + len
            });
            self.hidden_warning(span, &name, true);
        }
    }

    /// Stage-level config (a Dockerfile's model has none; kept correct for
    /// any model): expanded at the end of the stage.
    fn stage_config(&mut self, scope: &Scope, spec: &mut StageSpec) {
        let StageSpec {
            from: _,
            platform: _,
            args: _,
            steps: _,
            cmd: _,
            entrypoint: _,
            expose,
            labels,
            volumes,
            stopsignal,
            // Not expanded.
            healthcheck: _,
            onbuild: _,
            base_onbuild: _,
            layout: _,
        } = spec;
        for v in [expose, volumes].into_iter().flatten() {
            self.list(scope, v);
        }
        if let Some(l) = labels {
            self.map(scope, l.0.get_mut());
        }
        self.all(scope, stopsignal);
    }
}

/// Does a shell script refer to `$name` or `${name...}` without setting
/// `name=` itself?
fn script_uses(script: &str, name: &str) -> bool {
    if script.contains(&format!("{name}=")) {
        return false;
    }
    find_name(script, &format!("${{{name}")).is_some()
        || find_name(script, &format!("${name}")).is_some()
}

/// Where `pat` (`$NAME` or `${NAME`) first occurs not followed by more of
/// a name (`$NAME` is not in `$NAMES`).
fn find_name(text: &str, pat: &str) -> Option<usize> {
    text.match_indices(pat).map(|(i, _)| i).find(|&i| {
        !text[i + pat.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

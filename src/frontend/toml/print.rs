//! Model -> `strata.toml` text: what `strata convert` writes, and a way to
//! re-print a spec.
//!
//! Prints only what the model holds, in the layout of `spec/README.md`:
//! `version = 1`, `[args]`, then the stages, each after the stages it uses
//! (file order otherwise), then the `[image.NAME]` tables. A stage's steps
//! are one inline table per line in a `steps = [...]` array (a lone short
//! step stays on the `steps` line), written only when there are steps.
//! Inline tables read as the Dockerfile line they come from and keep a
//! stage's keys together under its header; `[[stage.X.steps]]` tables would
//! spend three lines on a `{ workdir = "/src" }`.
//!
//! Strings are written as the model holds them: they are already in the
//! TOML expansion syntax, so `$` is never escaped again. A `run` with
//! [`Layout::breaks`] is a multi-line string broken at those places, a
//! `run` holding newlines (a heredoc) a multi-line string; both read back
//! as exactly the same command ([`text`]). Every model struct is
//! destructured without `..`, so that a field added to the model does not
//! compile until it is printed.

use super::model::{
    FromTable, HealthcheckSpec, ImageSpec, Layout, Lit, MountSpec, OrderedMap, Sp, StageSpec,
    StepSpec, StrOr,
};
use super::text::{self, key, list, q};
use crate::frontend::model::{ArgDecl, Dialect, ImageDecl, Parsed, StageDecl};
use crate::frontend::mount::kind_name;
use crate::frontend::state::order;
use crate::ir::Sharing;

/// Lines longer than this are broken where TOML allows it (arrays).
const WIDTH: usize = 100;

/// What the printer adds to the model.
#[derive(Clone, Debug, Default)]
pub struct PrintOptions {
    /// Comment lines at the top of the file (without the `#`).
    pub header: Vec<String>,
    /// `Some(tags)`: the last stage (in file order) is the image the file
    /// builds, as for a Dockerfile: the image table that builds it gets
    /// these tags (`convert -t`), or one named after the stage (`NAME-final`
    /// if an image of another stage has that name) is printed when there is
    /// none. `None`: the images are printed as they are.
    pub final_image_tags: Option<Vec<String>>,
}

/// `doc` as a `strata.toml`. Stages and images that could not be read
/// (`spec` is `None`) have no model and are left out. A model whose
/// [`Dialect`] is not the TOML one (a Dockerfile's: scoped global args,
/// expanded arg defaults, base ONBUILD triggers, ...) means something the
/// format cannot state: printing it is an error, never a file that builds
/// something else.
pub fn print(doc: &Parsed, opts: &PrintOptions) -> Result<String, String> {
    let Parsed {
        args,
        stages,
        images,
        dialect,
    } = doc;
    if *dialect != Dialect::default() {
        return Err(format!(
            "the model uses rules a strata.toml cannot state: {dialect:?}"
        ));
    }
    let mut out = String::new();
    comments(&mut out, &opts.header, "");
    out.push_str("version = 1\n");
    if !args.is_empty() {
        out.push_str("\n[args]\n");
        for a in args {
            arg(&mut out, a);
        }
    }
    let final_image = opts.final_image_tags.as_ref().map(|tags| {
        let last = stages.last().map_or("", |s| s.name.as_str());
        let builds_last = images.iter().position(|i| builds(i) == Some(last));
        (last, builds_last, tags)
    });
    let keep_last = images.is_empty() && final_image.is_none();
    for i in stage_order(stages, keep_last) {
        stage(&mut out, &stages[i]);
    }
    for (n, img) in images.iter().enumerate() {
        let extra = match final_image {
            Some((_, Some(i), tags)) if i == n => tags.as_slice(),
            _ => &[],
        };
        image(&mut out, img, extra);
    }
    if let Some((last, None, tags)) = final_image
        && !stages.is_empty()
    {
        // Named after the stage, unless an image building another stage
        // has that name.
        if images.iter().any(|i| i.name == last) {
            out.push_str(&format!("\n[image.{}]\n", key(&format!("{last}-final"))));
            out.push_str(&format!("stage = {}\n", q(last)));
        } else {
            out.push_str(&format!("\n[image.{}]\n", key(last)));
        }
        if !tags.is_empty() {
            out.push_str(&array_key("tags", tags));
        }
    }
    Ok(out)
}

fn arg(out: &mut String, a: &ArgDecl) {
    let ArgDecl {
        name,
        span: _,
        default,
        expand,
        default_span: _,
    } = a;
    let value = match default {
        Some(d) if *expand => format!("{{ default = {}, expand = true }}", q(d)),
        Some(d) => q(d),
        None => "{}".to_string(),
    };
    out.push_str(&format!("{} = {value}\n", key(name)));
}

/// The stage an image builds, when it could be read.
fn builds(i: &ImageDecl) -> Option<&str> {
    let spec = i.spec.as_ref()?;
    Some(
        spec.stage
            .as_ref()
            .map_or(i.name.as_str(), |s| s.get().as_str()),
    )
}

/// The order stages are printed in: each after the stages it names, ties
/// in file order (the lowering's own order, so the printed file lowers its
/// stages in the same sequence). `keep_last`: the last stage is the
/// default target and must stay last; when the order would move it, the
/// file order is kept.
fn stage_order(stages: &[StageDecl], keep_last: bool) -> Vec<usize> {
    let index = |name: &str| stages.iter().position(|s| s.name == name);
    let deps: Vec<Vec<usize>> = stages
        .iter()
        .map(|s| {
            let names = s.spec.as_ref().map(stage_refs).unwrap_or_default();
            names.into_iter().filter_map(index).collect()
        })
        .collect();
    let (mut ordered, rest) = order(&deps, &[]);
    ordered.extend(rest);
    if keep_last && ordered.last().is_some_and(|&l| l + 1 != stages.len()) {
        return (0..stages.len()).collect();
    }
    ordered
}

/// The names a stage may use as stages: its `from`, copy `from`s and mount
/// `from`s.
fn stage_refs(s: &StageSpec) -> Vec<&str> {
    let mut v = Vec::new();
    if let StrOr::Str(f) = s.from.get() {
        v.push(f.as_str());
    }
    for step in &s.steps {
        let step = step.get();
        if step.copy.is_some()
            && let Some(f) = &step.from
        {
            v.push(f.get().as_str());
        }
        for m in step.mounts.iter().flatten() {
            if let Some(f) = &m.get().from {
                v.push(f.get().as_str());
            }
        }
    }
    v
}

/// Comment lines, each `# text` (a comment already starting with a blank
/// keeps it as is). A TOML comment cannot hold a control character but a
/// tab: one is written as its escape (`\u0001`), as text.
fn comments(out: &mut String, lines: &[String], indent: &str) {
    for c in lines.iter().flat_map(|c| c.split(['\n', '\r'])) {
        let sep = if c.is_empty() || c.starts_with([' ', '\t']) {
            ""
        } else {
            " "
        };
        let c: String = c
            .chars()
            .map(|ch| {
                if ch != '\t' && (ch < ' ' || ch == '\u{7f}') {
                    format!("\\u{:04X}", ch as u32)
                } else {
                    ch.to_string()
                }
            })
            .collect();
        out.push_str(&format!("{indent}#{sep}{c}\n"));
    }
}

fn stage(out: &mut String, decl: &StageDecl) {
    let StageDecl {
        name,
        span: _,
        spec,
    } = decl;
    let Some(spec) = spec else { return };
    let StageSpec {
        from,
        platform,
        args,
        steps,
        cmd,
        entrypoint,
        expose,
        labels,
        volumes,
        stopsignal,
        healthcheck,
        onbuild,
        base_onbuild,
        layout,
    } = spec;
    let Layout {
        comments: notes,
        breaks: _, // a stage has no command to break
    } = layout;
    out.push('\n');
    comments(out, notes, "");
    let header = format!("stage.{}", key(name));
    out.push_str(&format!("[{header}]\n"));
    out.push_str(&format!("from = {}\n", from_value(from.get())));
    if let Some(p) = platform {
        out.push_str(&format!("platform = {}\n", q(p.get())));
    }
    if let Some(b) = base_onbuild {
        out.push_str(&format!("base-onbuild = {b}\n"));
    }
    if let Some(a) = args {
        out.push_str(&array_key("args", &sp_items(a)));
    }
    steps_array(out, steps);
    if let Some(c) = cmd {
        out.push_str(&format!("cmd = {}\n", command(c.get())));
    }
    if let Some(e) = entrypoint {
        out.push_str(&format!("entrypoint = {}\n", command(e.get())));
    }
    if let Some(e) = expose {
        out.push_str(&array_key("expose", &sp_items(e)));
    }
    // A table that does not fit on a line (TOML keeps an inline table on
    // one) becomes a sub-table, after the stage's other keys.
    let mut tables: Vec<(&str, Vec<String>)> = Vec::new();
    if let Some(l) = labels {
        let parts: Vec<String> = entries(l.get())
            .into_iter()
            .map(|(k, v)| format!("{} = {}", key(k), q(v)))
            .collect();
        table_key(out, &mut tables, "labels", parts);
    }
    if let Some(v) = volumes {
        out.push_str(&array_key("volumes", &sp_items(v)));
    }
    if let Some(s) = stopsignal {
        out.push_str(&format!("stopsignal = {}\n", q(s.get())));
    }
    if let Some(h) = healthcheck {
        table_key(out, &mut tables, "healthcheck", health(h.get()));
    }
    if let Some(o) = onbuild {
        out.push_str(&array_key("onbuild", &sp_items(o)));
    }
    for (k, lines) in tables {
        out.push_str(&format!("\n[{header}.{k}]\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
}

/// `k = { parts }` when it fits on a line, else kept for a sub-table.
fn table_key<'k>(
    out: &mut String,
    tables: &mut Vec<(&'k str, Vec<String>)>,
    k: &'k str,
    parts: Vec<String>,
) {
    let one = format!("{k} = {}\n", inline(&parts));
    if one.len() <= WIDTH || parts.len() < 2 {
        out.push_str(&one);
    } else {
        tables.push((k, parts));
    }
}

fn from_value(f: &StrOr<FromTable>) -> String {
    match f {
        StrOr::Str(s) => q(s),
        StrOr::Other(t) => {
            let FromTable {
                oci,
                oci_archive,
                docker_archive,
                reference,
            } = t;
            let mut parts = Vec::new();
            opt_str(&mut parts, "oci", oci);
            opt_str(&mut parts, "oci-archive", oci_archive);
            opt_str(&mut parts, "docker-archive", docker_archive);
            opt_str(&mut parts, "ref", reference);
            inline(&parts)
        }
    }
}

/// `steps = [...]`, left out when there are none.
fn steps_array(out: &mut String, steps: &[Sp<StepSpec>]) {
    let rendered: Vec<(&[String], String)> = steps
        .iter()
        .map(|s| (s.get().layout.comments.as_slice(), step(s.get())))
        .collect();
    match rendered.as_slice() {
        [] => {}
        [(notes, s)] if notes.is_empty() && !s.contains('\n') && s.len() + 11 <= WIDTH => {
            out.push_str(&format!("steps = [{s}]\n"));
        }
        many => {
            out.push_str("steps = [\n");
            for (notes, s) in many {
                comments(out, notes, "  ");
                out.push_str(&format!("  {s},\n"));
            }
            out.push_str("]\n");
        }
    }
}

/// One step as an inline table: its verb, then its options (`from`/`image`
/// and `to` first, so that a copy reads as a sentence; mounts last, as
/// they may take several lines).
fn step(s: &StepSpec) -> String {
    let StepSpec {
        copy,
        add,
        run,
        env,
        workdir,
        user,
        shell,
        arg,
        cmd,
        entrypoint,
        label,
        expose,
        volume,
        stopsignal,
        healthcheck,
        onbuild,
        maintainer,
        to,
        content,
        from,
        image,
        chmod,
        chown,
        exclude,
        link,
        parents,
        checksum,
        keep_git_dir,
        unpack,
        network,
        mounts,
        default,
        layout,
    } = s;
    let Layout {
        comments: _, // printed by the caller, before the step
        breaks,
    } = layout;
    let s = |v: Option<&Sp<String>>| v.map(|v| q(v.get()));
    let l = |v: Option<&Sp<Vec<Sp<String>>>>| v.map(|v| list(&sp_items(v.get())));
    let b = |v: &Option<bool>| v.map(|v| v.to_string());
    let m = |v: &Option<Sp<OrderedMap>>| v.as_ref().map(|v| map(v.get()));
    let c = |v: Option<&Sp<StrOr<Vec<String>>>>| v.map(|v| command(v.get()));
    let entries = [
        ("copy", l(copy.as_ref())),
        ("add", l(add.as_ref())),
        ("run", run.as_ref().map(|v| run_value(v.get(), breaks))),
        ("env", m(env)),
        ("workdir", s(workdir.as_ref())),
        ("user", s(user.as_ref())),
        ("arg", s(arg.as_ref())),
        ("maintainer", s(maintainer.as_ref())),
        ("shell", shell.as_ref().map(|v| list(v.get()))),
        ("cmd", c(cmd.as_deref())),
        ("entrypoint", c(entrypoint.as_deref())),
        ("label", m(label)),
        ("expose", l(expose.as_deref())),
        ("volume", l(volume.as_deref())),
        ("stopsignal", s(stopsignal.as_deref())),
        (
            "healthcheck",
            healthcheck.as_ref().map(|v| inline(&health(v.get()))),
        ),
        ("onbuild", l(onbuild.as_deref())),
        ("from", s(from.as_ref())),
        ("image", s(image.as_deref())),
        ("to", s(to.as_ref())),
        ("chown", s(chown.as_deref())),
        ("chmod", s(chmod.as_deref())),
        ("content", m(content)),
        ("exclude", exclude.as_ref().map(|v| list(&sp_items(v)))),
        ("link", b(link)),
        ("parents", b(parents)),
        ("checksum", s(checksum.as_deref())),
        ("keep-git-dir", b(keep_git_dir)),
        ("unpack", b(unpack)),
        ("network", s(network.as_deref())),
        ("default", s(default.as_deref())),
    ];
    let p: Vec<String> = entries
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{k} = {}", v?)))
        .collect();
    match mounts.as_deref() {
        None => inline(&p),
        Some(ms) => with_mounts(p, ms),
    }
}

/// A step's table with its mounts last: a single mount on the step's
/// line when it fits, else one mount per line.
fn with_mounts(mut p: Vec<String>, ms: &[Sp<MountSpec>]) -> String {
    let tables: Vec<String> = ms.iter().map(|m| mount(m.get())).collect();
    if let [one] = tables.as_slice() {
        let mut short = p.clone();
        short.push(format!("mounts = [{one}]"));
        let s = inline(&short);
        // `  ` before the step and `,` after it.
        if !s.contains('\n') && s.len() + 3 <= WIDTH {
            return s;
        }
    }
    let mut m = String::from("mounts = [\n");
    for t in &tables {
        m.push_str(&format!("      {t},\n"));
    }
    m.push_str("  ]");
    p.push(m);
    inline(&p)
}

fn mount(m: &MountSpec) -> String {
    let MountSpec {
        kind,
        target,
        source,
        from,
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
    } = m;
    let kind = kind_name(*kind.get());
    let mut p = vec![format!("type = {}", q(kind))];
    opt_str(&mut p, "from", from);
    opt_str(&mut p, "source", source);
    opt_str(&mut p, "target", target);
    opt_str(&mut p, "id", id);
    let sharing_name = |s: &Sharing| match s {
        Sharing::Shared => q("shared"),
        Sharing::Private => q("private"),
        Sharing::Locked => q("locked"),
    };
    lit(
        &mut p,
        "sharing",
        sharing.as_ref().map(|s| s.get()),
        sharing_name,
    );
    opt_str(&mut p, "env", env);
    opt_str(&mut p, "mode", mode);
    for (k, v) in [("uid", uid), ("gid", gid), ("size", size)] {
        lit(&mut p, k, v.as_ref().map(|v| v.get()), u64::to_string);
    }
    for (k, v) in [("readonly", readonly), ("rw", rw), ("required", required)] {
        lit(&mut p, k, v.as_ref(), bool::to_string);
    }
    inline(&p)
}

/// `k = value` as written, or `k = "template"`.
fn lit<T>(p: &mut Vec<String>, k: &str, v: Option<&Lit<T>>, value: impl Fn(&T) -> String) {
    match v {
        Some(Lit::Value(x)) => p.push(format!("{k} = {}", value(x))),
        Some(Lit::Template(t)) => p.push(format!("{k} = {}", q(t))),
        None => {}
    }
}

fn health(h: &HealthcheckSpec) -> Vec<String> {
    let HealthcheckSpec {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    } = h;
    let mut p = vec![format!("test = {}", command(test.get()))];
    opt_str(&mut p, "interval", interval);
    opt_str(&mut p, "timeout", timeout);
    opt_str(&mut p, "start-period", start_period);
    opt_str(&mut p, "start-interval", start_interval);
    if let Some(r) = retries {
        p.push(format!("retries = {r}"));
    }
    p
}

/// A `run` string: a heredoc's lines as lines, a continued line broken
/// where the source broke it.
fn run_value(r: &StrOr<Vec<String>>, breaks: &[usize]) -> String {
    match r {
        StrOr::Str(s) if s.contains('\n') => text::multiline(s),
        StrOr::Str(s) => text::continued(s, breaks, "    ").unwrap_or_else(|| q(s)),
        StrOr::Other(v) => list(v),
    }
}

fn command(c: &StrOr<Vec<String>>) -> String {
    match c {
        StrOr::Str(s) => q(s),
        StrOr::Other(v) => list(v),
    }
}

fn map(m: &OrderedMap) -> String {
    let parts: Vec<String> = entries(m)
        .into_iter()
        .map(|(k, v)| format!("{} = {}", key(k), q(v)))
        .collect();
    inline(&parts)
}

/// A map's entries, each key once: a TOML table cannot repeat a key, and
/// a Dockerfile's `ENV A=1 A=2` means A=2, set where A was first set.
fn entries(m: &OrderedMap) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (k, v) in &m.0 {
        match out.iter_mut().find(|(x, _)| x == k) {
            Some(e) => e.1 = v.get(),
            None => out.push((k, v.get())),
        }
    }
    out
}

fn inline(parts: &[String]) -> String {
    if parts.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

fn opt_str(parts: &mut Vec<String>, k: &str, v: &Option<Sp<String>>) {
    if let Some(v) = v {
        parts.push(format!("{k} = {}", q(v.get())));
    }
}

fn sp_items(v: &[Sp<String>]) -> Vec<String> {
    v.iter().map(|s| s.get().clone()).collect()
}

/// `k = [...]` on one line when it fits, else one item per line.
fn array_key(k: &str, items: &[String]) -> String {
    let one = format!("{k} = {}\n", list(items));
    if one.len() <= WIDTH || items.len() < 2 {
        return one;
    }
    let mut s = format!("{k} = [\n");
    for i in items {
        s.push_str(&format!("  {},\n", q(i)));
    }
    s.push_str("]\n");
    s
}

fn image(out: &mut String, decl: &ImageDecl, extra_tags: &[String]) {
    let ImageDecl {
        name,
        span: _,
        spec,
    } = decl;
    let Some(spec) = spec else { return };
    let ImageSpec {
        stage,
        tags,
        platforms,
    } = spec;
    out.push_str(&format!("\n[image.{}]\n", key(name)));
    if let Some(s) = stage {
        out.push_str(&format!("stage = {}\n", q(s.get())));
    }
    let mut all = sp_items(tags);
    for t in extra_tags {
        if !all.contains(t) {
            all.push(t.clone());
        }
    }
    if !all.is_empty() {
        out.push_str(&array_key("tags", &all));
    }
    if let Some(p) = platforms {
        out.push_str(&array_key("platforms", &sp_items(p.get())));
    }
}

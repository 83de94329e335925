//! copy/add steps: sources, destination, `from`/`image`, owner and mode.

use super::*;

impl Lowerer<'_, '_> {
    pub(super) fn copy(
        &mut self,
        state: &State,
        s: &StepSpec,
        srcs: &Sp<Vec<Sp<String>>>,
        add: bool,
        span: &Range<usize>,
    ) -> Option<(Op, Vec<NodeIndex>)> {
        let verb = if add { "add" } else { "copy" };
        let mut ok = true;
        if srcs.get().is_empty() && s.content.is_none() {
            self.error_help(
                srcs.span(),
                format!("empty `{verb}` list"),
                "nothing to copy",
                format!("list at least one source, e.g. {verb} = [\"file\"]"),
            );
            ok = false;
        }
        let mut sources = Vec::new();
        for src in srcs.get() {
            match self.expand_in(state, src) {
                Some(v) if v.is_empty() => {
                    self.error(src.span(), "empty source path", "empty");
                    ok = false;
                }
                Some(v) => sources.push(v),
                None => ok = false,
            }
        }
        let mut contents = Vec::new();
        for (name, text) in s.content.iter().flat_map(|c| c.get().0.iter()) {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                self.error(
                    text.span(),
                    format!("bad content name `{name}`"),
                    "a file name",
                );
                ok = false;
                continue;
            }
            match self.expand_in(state, text) {
                Some(v) => contents.push((name.clone(), v)),
                None => ok = false,
            }
        }
        let dest = match &s.to {
            None => {
                self.error_help(
                    span.clone(),
                    format!(
                        "{} (`{verb}`) needs a destination (`to`)",
                        verb.to_uppercase()
                    ),
                    "missing `to`",
                    "add the destination, e.g. to = \"/app/\"",
                );
                ok = false;
                None
            }
            Some(to) => self.expand_in(state, to).and_then(|t| {
                if t.is_empty() {
                    self.error(to.span(), "empty destination", "empty");
                    None
                } else {
                    Some((resolve_dest(&state.workdir, &t), t))
                }
            }),
        };
        let mut edges = Vec::new();
        let from = match (&s.from, &s.image) {
            (Some(_), Some(i)) => {
                self.error(
                    i.span(),
                    "`from` and `image` cannot both be set",
                    "second source",
                );
                ok = false;
                CopyFrom::Context
            }
            (Some(f), None) => match self.expand_global(f) {
                Some(name) => match self.stage_index(&name) {
                    Some(i) => {
                        match self.stage_last(i) {
                            Some(n) => edges.push(n),
                            None => ok = false,
                        }
                        CopyFrom::Stage(name)
                    }
                    // Reported by `deps`.
                    None => {
                        ok = false;
                        CopyFrom::Context
                    }
                },
                None => {
                    ok = false;
                    CopyFrom::Context
                }
            },
            (None, Some(img)) if self.image_stage(img).is_some() => {
                let i = self.image_stage(img).unwrap_or_default();
                match self.stage_last(i) {
                    Some(n) => edges.push(n),
                    None => ok = false,
                }
                CopyFrom::Stage(self.stages[i].name.clone())
            }
            (None, Some(img)) => match self.expand_global(img).map(|v| (Reference::parse(&v), v)) {
                Some((Ok(r), _)) => CopyFrom::Image(r.normalized()),
                Some((Err(e), v)) => {
                    self.error(
                        img.span(),
                        format!("bad image reference `{v}`: {e}"),
                        "not an image reference",
                    );
                    ok = false;
                    CopyFrom::Context
                }
                None => {
                    ok = false;
                    CopyFrom::Context
                }
            },
            (None, None) => CopyFrom::Context,
        };
        let chmod = s.chmod.as_ref().and_then(|c| {
            let v = self.expand_in(state, c)?;
            let m = parse_octal(&v);
            if m.is_none() {
                self.error_help(
                    c.span(),
                    format!("bad chmod `{v}`"),
                    "not an octal mode",
                    "write permission bits in octal, e.g. \"0755\" or \"644\"",
                );
                ok = false;
            }
            m
        });
        let chown = s.chown.as_ref().and_then(|c| {
            let v = self.expand_in(state, c)?;
            let chown = parse_chown(&v);
            if chown.is_none() {
                self.error_help(
                    c.span(),
                    format!("bad chown `{v}`"),
                    "expected user[:group]",
                    "e.g. \"1000:1000\" or \"app\"",
                );
                ok = false;
            }
            chown
        });
        let mut exclude = Vec::new();
        for e in s.exclude.iter().flatten() {
            if let Some(v) = self.expand_in(state, e) {
                exclude.push(v);
            }
        }
        let add = if add {
            let checksum = s.checksum.as_ref().and_then(|c| {
                let v = self.expand_in(state, c)?;
                if v.parse::<Digest>().is_err() {
                    self.error(
                        c.span(),
                        format!("bad checksum `{v}`"),
                        "expected sha256:<64 hex digits>",
                    );
                    ok = false;
                    return None;
                }
                Some(v)
            });
            Some(AddOptions {
                checksum,
                keep_git_dir: s.keep_git_dir.unwrap_or(false),
                unpack: s.unpack.unwrap_or(true),
            })
        } else {
            None
        };
        let (dest, dest_written) = dest?;
        if !ok {
            return None;
        }
        let op = CopyOp {
            sources,
            contents,
            dest,
            dest_written,
            from,
            chown,
            chmod,
            link: s.link.unwrap_or(false),
            exclude,
            parents: s.parents.unwrap_or(false),
            add,
        };
        Some((Op::Copy(op), edges))
    }
}

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
        let from = self.copy_from(s);
        ok &= from.is_some();
        let help = "write permission bits in octal, e.g. \"0755\" or \"644\"";
        let what = ("chmod", "not an octal mode", help);
        let chmod = (s.chmod.as_ref()).and_then(|c| self.read(state, c, parse_octal, what));
        let what = (
            "chown",
            "expected user[:group]",
            "e.g. \"1000:1000\" or \"app\"",
        );
        let chown = (s.chown.as_ref()).and_then(|c| self.read(state, c, parse_chown, what));
        ok &= (s.chmod.is_none() || chmod.is_some()) && (s.chown.is_none() || chown.is_some());
        let mut exclude = Vec::new();
        for e in s.exclude.iter().flatten() {
            if let Some(v) = self.expand_in(state, e) {
                exclude.push(v);
            }
        }
        let add = if add {
            let digest = |v: &str| v.parse::<Digest>().ok().map(|_| v.to_string());
            let what = ("checksum", "expected sha256:<64 hex digits>", "");
            let checksum = (s.checksum.as_ref()).and_then(|c| self.read(state, c, digest, what));
            ok &= s.checksum.is_none() || checksum.is_some();
            Some(AddOptions {
                checksum,
                keep_git_dir: s.keep_git_dir.unwrap_or(false),
                unpack: s.unpack.unwrap_or(true),
            })
        } else {
            None
        };
        let ((dest, dest_written), (from, edges)) = (dest?, from?);
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

    /// Where a copy reads: the context, a stage (its last node the
    /// source edge) or an image; `None` when it cannot (reported, or a
    /// stage that could not be lowered).
    fn copy_from(&mut self, s: &StepSpec) -> Option<(CopyFrom, Vec<NodeIndex>)> {
        let stage = |this: &Self, i: usize| {
            let edge = this.stage_last(i)?;
            Some((CopyFrom::Stage(this.stages[i].name.clone()), vec![edge]))
        };
        match (&s.from, &s.image) {
            (Some(_), Some(i)) => {
                self.error(
                    i.span(),
                    "`from` and `image` cannot both be set",
                    "second source",
                );
                None
            }
            // An unknown stage is reported by `deps`.
            (Some(f), None) => {
                let name = self.expand_global(f)?;
                stage(self, self.stage_index(&name)?)
            }
            (None, Some(img)) => {
                if let Some(i) = self.image_stage(img) {
                    return stage(self, i);
                }
                let v = self.expand_global(img)?;
                match Reference::parse(&v) {
                    Ok(r) => Some((CopyFrom::Image(r.normalized()), Vec::new())),
                    Err(e) => {
                        self.error(
                            img.span(),
                            format!("bad image reference `{v}`: {e}"),
                            "not an image reference",
                        );
                        None
                    }
                }
            }
            (None, None) => Some((CopyFrom::Context, Vec::new())),
        }
    }
}

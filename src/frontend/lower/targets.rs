//! The images to build (what `--target` selects, their tags and
//! platforms) and the warnings left at the end.

use super::*;

impl Lowerer<'_, '_> {
    pub(super) fn targets(&mut self, images: &[ImageDecl]) {
        // Every image is checked, selected or not.
        let mut checked: Vec<Chosen> = Vec::new();
        let mut seen_tags: BTreeMap<String, String> = BTreeMap::new();
        for img in images {
            let Some(spec) = &img.spec else { continue };
            let (stage_name, span) = match &spec.stage {
                Some(s) => (s.get().clone(), s.span()),
                None => (img.name.clone(), img.span.clone()),
            };
            let Some(stage) = self.stage_index(&stage_name) else {
                let no_key = spec.stage.is_none().then(|| format!(
                    "image `{}` has no `stage` key and there is no stage of that name; add stage = \"...\"",
                    img.name
                ));
                let help = self.unknown_stage_help(&stage_name, no_key);
                self.error_help(
                    span,
                    format!("unknown stage `{stage_name}`"),
                    "no stage of this name",
                    help,
                );
                continue;
            };
            if let Some(other) = self.stage_index(&img.name)
                && other != stage
            {
                self.error_help(
                    span.clone(),
                    format!(
                        "image `{}` builds stage `{stage_name}`, but a stage is also named `{}`",
                        img.name, img.name
                    ),
                    "conflicting meaning",
                    "`--target` could mean either: rename the image or the stage",
                );
            }
            let mut tags = Vec::new();
            for t in &spec.tags {
                let Some(v) = self.expand_global(t) else {
                    continue;
                };
                match Reference::parse(&v) {
                    Ok(r) => {
                        let n = r.normalized();
                        if let Some(prev) = seen_tags.get(&n) {
                            self.error_help(
                                t.span(),
                                format!("duplicate tag `{n}`"),
                                "tagged twice",
                                format!("image `{prev}` already has this tag"),
                            );
                        } else {
                            seen_tags.insert(n.clone(), img.name.clone());
                            tags.push(n);
                        }
                    }
                    Err(e) => self.error_help(
                        t.span(),
                        format!("bad tag `{v}`: {e}"),
                        "not a valid image reference",
                        "a tag looks like \"name:tag\", e.g. \"example/app:1.0\"",
                    ),
                }
            }
            let platforms = match &spec.platforms {
                Some(list) => self.platforms(list),
                None => Vec::new(),
            };
            checked.push(Chosen {
                name: img.name.clone(),
                stage,
                tags,
                platforms,
            });
        }
        // Selection.
        let mut selected: Vec<Chosen> = Vec::new();
        if self.opts.targets.is_empty() {
            if images.is_empty() {
                if let Some(i) = self.stages.len().checked_sub(1) {
                    selected.push(Chosen::stage(self.stages[i].name.clone(), i));
                }
            } else {
                selected = checked.clone();
            }
        } else {
            for t in &self.opts.targets {
                if let Some(c) = checked.iter().find(|c| &c.name == t) {
                    selected.push(c.clone());
                } else if images.iter().any(|i| &i.name == t) {
                    // A broken image: already reported.
                } else if let Some(i) = self.stage_index(t) {
                    selected.push(Chosen::stage(t.clone(), i));
                } else {
                    let mut names: Vec<String> = images
                        .iter()
                        .map(|i| format!("{} (image)", i.name))
                        .collect();
                    names.extend(self.stages.iter().map(|s| format!("{} (stage)", s.name)));
                    self.error_help(
                        0..0,
                        format!("unknown --target `{t}`"),
                        "in this file",
                        format!("valid targets: {}", names.join(", ")),
                    );
                }
            }
        }
        let names: Vec<String> = selected.iter().map(|s| s.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let help = "select one image with --target, or put the tags in the spec";
        let cli = cli_tags(self.sink, &self.opts.tags, &names, help);
        if let [sel] = selected.as_mut_slice() {
            for t in cli {
                if !sel.tags.contains(&t) {
                    sel.tags.push(t);
                }
            }
        }
        for c in selected {
            let Some(node) = self.stage_last(c.stage) else {
                continue;
            };
            self.graph.targets.push(Target {
                name: c.name,
                stage: self.stages[c.stage].name.clone(),
                node,
                tags: c.tags,
                platform: None,
                platforms: c.platforms,
            });
        }
    }

    /// An image's `platforms`: each expanded and normalized, at least one,
    /// each once.
    fn platforms(&mut self, list: &Sp<Vec<Sp<String>>>) -> Vec<String> {
        if list.get().is_empty() {
            self.error_help(
                list.span(),
                "`platforms` is empty",
                "no platform",
                "name at least one, e.g. [\"linux/amd64\", \"linux/arm64\"], or leave the key out for this host's",
            );
        }
        let mut out: Vec<String> = Vec::new();
        for p in list.get() {
            let Some(platform) = self.platform(p) else {
                continue;
            };
            if out.contains(&platform) {
                let message = format!("platform {platform} is named twice");
                self.error(p.span(), message, "again");
            } else {
                out.push(platform);
            }
        }
        out
    }

    pub(super) fn warnings(&mut self) {
        for k in self.opts.build_args.keys() {
            if !self.declared.contains(k) {
                self.graph
                    .warnings
                    .push(format!("build arg {k} was not consumed by any stage"));
            }
        }
    }
}

/// An image selected to build: its name, stage, tags and platforms.
#[derive(Clone)]
struct Chosen {
    name: String,
    stage: usize,
    tags: Vec<String>,
    platforms: Vec<String>,
}

impl Chosen {
    /// A stage built as a target (`--target STAGE`, or the last stage).
    fn stage(name: String, stage: usize) -> Chosen {
        Chosen {
            name,
            stage,
            tags: Vec::new(),
            platforms: Vec::new(),
        }
    }
}

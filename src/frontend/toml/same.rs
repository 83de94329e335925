//! "The same model": what a round trip (model -> text -> model) must keep.
//!
//! Two documents are the same when they say the same thing, whatever the
//! spans (`Sp` compares by value) and the [`Layout`]s (comments and line
//! breaks are for printing only, and a parsed TOML has none). Stages are
//! matched by name, since their order in a file means nothing but the
//! default target, which is compared on its own; args and images keep
//! their order.

use std::fmt::Debug;

use super::model::{Layout, StageSpec};
use crate::frontend::model::Parsed;

/// `Ok` when `a` and `b` are the same model; else the first difference.
pub fn same_model(a: &Parsed, b: &Parsed) -> Result<(), String> {
    let args = |p: &Parsed| -> Vec<(String, Option<String>)> {
        p.args
            .iter()
            .map(|a| (a.name.clone(), a.default.clone()))
            .collect()
    };
    same("args", &args(a), &args(b))?;
    let names = |p: &Parsed| -> Vec<String> {
        let mut v: Vec<String> = p.stages.iter().map(|s| s.name.clone()).collect();
        v.sort();
        v
    };
    same("stage names", &names(a), &names(b))?;
    for s in &a.stages {
        let other = b.stages.iter().find(|o| o.name == s.name);
        let x = s.spec.as_ref().map(without_layout);
        let y = other.and_then(|o| o.spec.as_ref()).map(without_layout);
        same(&format!("stage `{}`", s.name), &x, &y)?;
    }
    if a.images.is_empty() {
        let last = |p: &Parsed| p.stages.last().map(|s| s.name.clone());
        same("default target (the last stage)", &last(a), &last(b))?;
    }
    let images = |p: &Parsed| -> Vec<_> {
        p.images
            .iter()
            .map(|i| (i.name.clone(), i.spec.clone()))
            .collect()
    };
    same("images", &images(a), &images(b))
}

fn same<T: PartialEq + Debug>(what: &str, a: &T, b: &T) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("{what} differ:\n{a:#?}\nvs\n{b:#?}"))
    }
}

fn without_layout(s: &StageSpec) -> StageSpec {
    let mut s = s.clone();
    s.layout = Layout::default();
    for step in &mut s.steps {
        step.0.get_mut().layout = Layout::default();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::diag::Sink;
    use crate::ir::SourceFile;

    fn parsed(text: &str) -> Parsed {
        let file = SourceFile {
            name: "t.toml".into(),
            text: text.into(),
        };
        let mut sink = Sink::new(&file);
        let p = super::super::parse::parse(text, &mut sink).expect("toml");
        sink.into_result(p).expect("valid")
    }

    #[test]
    fn spans_layout_and_stage_order_do_not_count() {
        let a = "[stage.a]\nfrom = \"scratch\"\nsteps = [{ run = \"x\" }]\n[stage.b]\nfrom = \"a\"\n[image.b]\n";
        // Same model: other spans (blank lines, another order of stages).
        let b = "\n\n[stage.b]\nfrom   =   \"a\"\n\n[stage.a]\nfrom = \"scratch\"\nsteps = [\n  { run = \"x\" },\n]\n[image.b]\n";
        let (x, mut y) = (parsed(a), parsed(b));
        assert_eq!(same_model(&x, &y), Ok(()));
        let s = y.stages[1].spec.as_mut().expect("stage");
        s.layout.comments.push("a note".into());
        s.steps[0].0.get_mut().layout.breaks.push(1);
        assert_eq!(same_model(&x, &y), Ok(()));
        // But not another value, or another image list.
        let c = a.replace("run = \"x\"", "run = \"y\"");
        let e = same_model(&x, &parsed(&c)).expect_err("differs");
        assert!(e.starts_with("stage `a` differ"), "{e}");
        let d = a.replace("[image.b]\n", "");
        assert!(same_model(&x, &parsed(&d)).is_err());
    }

    #[test]
    fn without_images_the_last_stage_counts() {
        let a = "[stage.a]\nfrom = \"scratch\"\n[stage.b]\nfrom = \"scratch\"\n";
        let b = "[stage.b]\nfrom = \"scratch\"\n[stage.a]\nfrom = \"scratch\"\n";
        let e = same_model(&parsed(a), &parsed(b)).expect_err("default target");
        assert!(e.starts_with("default target"), "{e}");
    }
}

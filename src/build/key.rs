//! Cache keys: the only owner of the canonical key encoding.
//!
//! A key depends only on `IR_VERSION`, the step's canonical op (no spans,
//! no stage names), its parent's key, and its inputs (context file digests,
//! source stage keys, base manifest digests, the epoch). Never on mtimes,
//! paths of the checkout, or the host's owners.

use serde::Serialize;
use serde_json::json;

use crate::digest::CacheKey;
use crate::ir::{CopyFrom, IR_VERSION, Op};

/// The canonical, versioned struct a cache key hashes. Field order is the
/// encoding order; maps are sorted; nothing comes from `Debug` output.
#[derive(Serialize)]
struct KeyInput<'a> {
    ir_version: u32,
    kind: &'a str,
    pub(super) op: serde_json::Value,
    pub(super) parent: Option<String>,
    pub(super) inputs: Vec<String>,
}

fn hash_key(input: &KeyInput) -> CacheKey {
    // serde_json of a struct of strings/values is deterministic; values
    // come from `canonical_op`, which never holds a HashMap.
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    blake3::hash(&bytes).into()
}

/// The keys of a step: (layer key, node key). They are equal except for a
/// `link` copy, whose layer key leaves out the parent so that its layer is
/// reused whatever it is applied to; the node key (what later steps chain
/// on) still includes the parent.
pub(super) fn step_keys(
    op: &Op,
    parent: Option<CacheKey>,
    inputs: Vec<String>,
) -> (CacheKey, CacheKey) {
    let link = matches!(op, Op::Copy(c) if c.link);
    let layer_key = hash_key(&KeyInput {
        ir_version: IR_VERSION,
        kind: op_kind(op),
        op: canonical_op(op),
        parent: if link { None } else { parent.map(|k| k.hex()) },
        inputs,
    });
    let key = if link {
        hash_key(&KeyInput {
            ir_version: IR_VERSION,
            kind: "link",
            op: json!(layer_key.hex()),
            parent: parent.map(|k| k.hex()),
            inputs: vec![],
        })
    } else {
        layer_key
    };
    (layer_key, key)
}

/// The op as it enters the key: no spans, no stage names (a source stage
/// enters through its key instead).
pub(super) fn canonical_op(op: &Op) -> serde_json::Value {
    match op {
        Op::Copy(c) => {
            let mut c = c.clone();
            if let CopyFrom::Stage(_) = c.from {
                c.from = CopyFrom::Stage(String::new());
            }
            json!({ "copy": c })
        }
        Op::Run(r) => {
            let mut r = r.clone();
            for m in &mut r.mounts {
                if m.from.is_some() {
                    m.from = Some(String::new());
                }
            }
            json!({ "run": r })
        }
        other => serde_json::to_value(other).unwrap_or_default(),
    }
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Base(_) => "base",
        Op::Copy(_) => "copy",
        Op::Run(_) => "run",
        Op::Meta(_) => "meta",
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{CopyOp, MetaOp};

    fn copy(from: CopyFrom, link: bool) -> Op {
        Op::Copy(CopyOp {
            sources: vec!["src/".into()],
            dest: "/app/".into(),
            from,
            chown: None,
            chmod: Some(0o755),
            link,
            exclude: vec![],
            parents: false,
            add: None,
        })
    }

    // These pin the canonical encoding: if one changes, every user's cache
    // is invalidated, so bump IR_VERSION and update the values on purpose.
    #[test]
    fn key_of_a_meta_step_is_pinned() {
        let (layer, key) = step_keys(&Op::Meta(MetaOp::Workdir("/app".into())), None, vec![]);
        assert_eq!(layer, key);
        assert_eq!(
            key.hex(),
            "df432160ed4b3da58a311715004f49d88e216e293f4130b3d107b8e50df4bb2c"
        );
    }

    #[test]
    fn key_of_a_context_copy_is_pinned() {
        let parent = CacheKey([7; 32]);
        let (_, key) = step_keys(
            &copy(CopyFrom::Context, false),
            Some(parent),
            vec!["epoch:0".into(), "ab".repeat(32)],
        );
        assert_eq!(
            key.hex(),
            "b8209c020a36b5e0d43ecd43914107f8db678b3dd07f80afa5109d9ce7cebdd2"
        );
    }

    #[test]
    fn stage_names_and_spans_do_not_enter_keys() {
        let a = step_keys(&copy(CopyFrom::Stage("build".into()), false), None, vec![]);
        let b = step_keys(
            &copy(CopyFrom::Stage("compile".into()), false),
            None,
            vec![],
        );
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_changes_the_key() {
        let p1 = Some(CacheKey([1; 32]));
        let p2 = Some(CacheKey([2; 32]));
        let base = step_keys(&copy(CopyFrom::Context, false), p1, vec!["x".into()]).1;
        assert_ne!(
            base,
            step_keys(&copy(CopyFrom::Context, false), p2, vec!["x".into()]).1
        );
        assert_ne!(
            base,
            step_keys(&copy(CopyFrom::Context, false), p1, vec!["y".into()]).1
        );
        let mut other = copy(CopyFrom::Context, false);
        if let Op::Copy(c) = &mut other {
            c.chmod = Some(0o700);
        }
        assert_ne!(base, step_keys(&other, p1, vec!["x".into()]).1);
    }

    #[test]
    fn a_link_copy_layer_does_not_depend_on_its_parent() {
        let p1 = Some(CacheKey([1; 32]));
        let p2 = Some(CacheKey([2; 32]));
        let (l1, k1) = step_keys(&copy(CopyFrom::Context, true), p1, vec!["x".into()]);
        let (l2, k2) = step_keys(&copy(CopyFrom::Context, true), p2, vec!["x".into()]);
        assert_eq!(l1, l2, "the layer is reused across parents");
        assert_ne!(k1, k2, "but the chain identity follows the parent");
    }
}

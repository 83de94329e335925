//! Cache keys: the only owner of the canonical key encoding.
//!
//! A step's key hashes one [`KeyInput`]: `IR_VERSION`, the canonical op
//! (no spans, stage names, image references or host paths: those enter
//! through the digests they resolve to), the parent's key, and every other
//! input by name. Never mtimes, checkout, store or base paths, the invoking
//! user's uid, the time, or a secret's value.
//!
//! The encoding is a sequence of (field tag, length, bytes) records fed to
//! blake3 under a domain-separation context, in the order of the struct's
//! fields; an absent field is a tag with no value, so no two inputs encode
//! alike. Tests pin exact values: changing any of this means bumping
//! `IR_VERSION`.

use crate::digest::{CacheKey, Digest};
use crate::error::{Error, Result};
use crate::ir::{BaseOp, CopyFrom, IR_VERSION, MetaOp, MountKind, Op};

const CONTEXT: &str = "strata 2026 step cache key";

/// Everything a step's result depends on, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInput {
    /// The key of the step this one applies to (left out of a `link`
    /// copy's layer key).
    pub parent: Option<CacheKey>,
    /// Digest of the context files a copy selects (`context::items_digest`).
    pub context: Option<[u8; 32]>,
    /// For each context bind mount, in mount order: its target and the
    /// digest of the selected subtree.
    pub binds: Vec<(String, [u8; 32])>,
    /// Keys of the source stages the step reads, in edge order.
    pub sources: Vec<CacheKey>,
    /// Manifest digest of the base image (`FROM`) or the image copied from.
    pub image: Option<Digest>,
    /// `SOURCE_DATE_EPOCH` for steps that write a layer (its mtimes).
    pub epoch: Option<u64>,
}

/// The keys of a step: (layer key, node key). They are equal except for a
/// `link` copy, whose layer key leaves out the parent so that its layer is
/// reused whatever it is applied to; the node key (what later steps chain
/// on) still includes the parent.
pub fn step_keys(op: &Op, input: &KeyInput) -> Result<(CacheKey, CacheKey)> {
    let link = matches!(op, Op::Copy(c) if c.link);
    let op_bytes = canonical_op(op)?;
    let mut h = Encoder::new();
    h.field(b"ir", Some(&IR_VERSION.to_le_bytes()));
    h.field(b"op", Some(&op_bytes));
    let parent = if link { None } else { input.parent };
    h.field(b"parent", parent.as_ref().map(|k| &k.0[..]));
    h.field(b"context", input.context.as_ref().map(|d| &d[..]));
    h.list(b"binds", input.binds.len());
    for (target, digest) in &input.binds {
        h.field(b"bind.target", Some(target.as_bytes()));
        h.field(b"bind.digest", Some(digest));
    }
    h.list(b"sources", input.sources.len());
    for k in &input.sources {
        h.field(b"source", Some(&k.0));
    }
    h.field(
        b"image",
        input
            .image
            .as_ref()
            .map(|d| d.hex().as_bytes().to_vec())
            .as_deref(),
    );
    h.field(
        b"epoch",
        input.epoch.map(u64::to_le_bytes).as_ref().map(|b| &b[..]),
    );
    let layer_key = h.finish();
    if !link {
        return Ok((layer_key, layer_key));
    }
    let mut h = Encoder::new();
    h.field(b"ir", Some(&IR_VERSION.to_le_bytes()));
    h.field(b"link", Some(&layer_key.0));
    h.field(b"parent", input.parent.as_ref().map(|k| &k.0[..]));
    Ok((layer_key, h.finish()))
}

/// Tagged, length-prefixed records into blake3.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn new() -> Self {
        Encoder(blake3::Hasher::new_derive_key(CONTEXT))
    }

    fn field(&mut self, tag: &[u8], value: Option<&[u8]>) {
        self.0.update(&(tag.len() as u64).to_le_bytes());
        self.0.update(tag);
        match value {
            Some(v) => {
                self.0.update(&[1]);
                self.0.update(&(v.len() as u64).to_le_bytes());
                self.0.update(v);
            }
            None => {
                self.0.update(&[0]);
            }
        }
    }

    fn list(&mut self, tag: &[u8], len: usize) {
        self.field(tag, Some(&(len as u64).to_le_bytes()));
    }

    fn finish(self) -> CacheKey {
        self.0.finalize().into()
    }
}

/// The op as it enters the key, as JSON bytes: no spans, no stage names or
/// image references (they enter as keys and digests), no base paths, no
/// secret sources, and an ARG's names without values (a step sees the
/// value through its own fields: RUN in its env, COPY in expanded paths).
pub fn canonical_op(op: &Op) -> Result<Vec<u8>> {
    let op = match op {
        // The platform always: a stage that names none is this host's,
        // and a shared cache must not give an arm64 host an amd64 result.
        Op::Base(b) => Op::Base(BaseOp {
            base: crate::ir::BaseRef::Scratch,
            platform: Some(
                b.platform
                    .clone()
                    .unwrap_or_else(|| crate::oci::host_platform().to_string()),
            ),
        }),
        Op::Copy(c) => {
            let mut c = c.clone();
            c.from = match c.from {
                CopyFrom::Context => CopyFrom::Context,
                CopyFrom::Stage(_) => CopyFrom::Stage(String::new()),
                CopyFrom::Image(_) => CopyFrom::Image(String::new()),
            };
            Op::Copy(c)
        }
        Op::Run(r) => {
            let mut r = r.clone();
            for m in &mut r.mounts {
                if m.from.is_some() {
                    m.from = Some(String::new());
                }
                if m.kind == MountKind::Secret {
                    m.source = None;
                }
            }
            Op::Run(r)
        }
        Op::Meta(MetaOp::Arg(v)) => Op::Meta(MetaOp::Arg(
            v.iter().map(|(k, _)| (k.clone(), None)).collect(),
        )),
        other => other.clone(),
    };
    serde_json::to_vec(&op).map_err(|e| Error::msg(format!("internal: encoding a step: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{BaseRef, CopyOp, MetaOp};

    fn copy(from: CopyFrom, link: bool) -> Op {
        Op::Copy(CopyOp {
            sources: vec!["src/".into()],
            contents: vec![],
            dest: "/app/".into(),
            dest_written: "/app/".into(),
            from,
            chown: None,
            chmod: Some(0o755),
            link,
            exclude: vec![],
            parents: false,
            add: None,
        })
    }

    fn keys(op: &Op, input: &KeyInput) -> (CacheKey, CacheKey) {
        step_keys(op, input).unwrap()
    }

    fn ctx(parent: Option<CacheKey>, d: u8) -> KeyInput {
        KeyInput {
            parent,
            context: Some([d; 32]),
            epoch: Some(0),
            ..KeyInput::default()
        }
    }

    // These pin the canonical encoding: if one changes, every user's cache
    // is invalidated, so bump IR_VERSION and update the values on purpose.
    #[test]
    fn key_of_a_meta_step_is_pinned() {
        let (layer, key) = keys(
            &Op::Meta(MetaOp::Workdir("/app".into())),
            &KeyInput::default(),
        );
        assert_eq!(layer, key);
        assert_eq!(
            key.hex(),
            "29db75b46df9aa189a8fcce4826a457b488a9a53ed02a0c21c2b6c479f7c051b"
        );
    }

    #[test]
    fn key_of_a_context_copy_is_pinned() {
        let (_, key) = keys(
            &copy(CopyFrom::Context, false),
            &ctx(Some(CacheKey([7; 32])), 0xab),
        );
        assert_eq!(
            key.hex(),
            "dae6ab044fec5f27fe81a560860598d456139f1a2b88a37cb7db1a43b46fc82b"
        );
    }

    #[test]
    fn key_of_a_base_is_pinned_and_names_no_path() {
        let base = |path: &str, platform: Option<&str>| {
            Op::Base(BaseOp {
                base: BaseRef::OciLayout {
                    path: path.into(),
                    reference: Some("1".into()),
                },
                platform: platform.map(str::to_string),
            })
        };
        let d: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let input = KeyInput {
            image: Some(d),
            ..KeyInput::default()
        };
        let amd64 = Some("linux/amd64");
        let a = keys(&base("/home/a/vendor/base", amd64), &input);
        assert_eq!(a, keys(&base("/srv/b/vendor/base", amd64), &input));
        assert_eq!(
            a.1.hex(),
            "5fa2324ea070f56e06090821cf1e133735a2cd1f80d5c64c5debbe62ab9db1d4"
        );
        // A base that names no platform is this host's, in its key too.
        let host = crate::oci::host_platform().to_string();
        assert_eq!(
            keys(&base("/x", None), &input),
            keys(&base("/x", Some(&host)), &input)
        );
        assert_ne!(a, keys(&base("/x", Some("linux/arm64")), &input));
    }

    #[test]
    fn stage_names_and_image_references_do_not_enter_keys() {
        let none = KeyInput::default();
        let a = keys(&copy(CopyFrom::Stage("build".into()), false), &none);
        let b = keys(&copy(CopyFrom::Stage("compile".into()), false), &none);
        assert_eq!(a, b);
        let a = keys(&copy(CopyFrom::Image("a:1".into()), false), &none);
        let b = keys(&copy(CopyFrom::Image("b:2".into()), false), &none);
        assert_eq!(a, b, "the image enters by its digest");
    }

    #[test]
    fn an_arg_value_does_not_enter_its_key() {
        let arg = |v: &str| Op::Meta(MetaOp::Arg(vec![("V".into(), Some(v.into()))]));
        let none = KeyInput::default();
        assert_eq!(keys(&arg("1"), &none), keys(&arg("2"), &none));
        let other = Op::Meta(MetaOp::Arg(vec![("W".into(), Some("1".into()))]));
        assert_ne!(keys(&arg("1"), &none), keys(&other, &none));
    }

    #[test]
    fn every_input_changes_the_key() {
        let p1 = Some(CacheKey([1; 32]));
        let op = copy(CopyFrom::Context, false);
        let base = keys(&op, &ctx(p1, 1)).1;
        let variants = [
            ctx(Some(CacheKey([2; 32])), 1),
            ctx(p1, 2),
            KeyInput {
                epoch: Some(1),
                ..ctx(p1, 1)
            },
            KeyInput {
                epoch: None,
                ..ctx(p1, 1)
            },
            KeyInput {
                binds: vec![("/m".into(), [0; 32])],
                ..ctx(p1, 1)
            },
            KeyInput {
                sources: vec![CacheKey([3; 32])],
                ..ctx(p1, 1)
            },
            KeyInput {
                image: Some(Digest::of(b"x")),
                ..ctx(p1, 1)
            },
        ];
        for v in &variants {
            assert_ne!(base, keys(&op, v).1, "{v:?}");
        }
        // Fields cannot be confused: a bind's digest is not a context digest.
        let a = KeyInput {
            binds: vec![("/m".into(), [9; 32])],
            ..KeyInput::default()
        };
        let b = KeyInput {
            context: Some([9; 32]),
            ..KeyInput::default()
        };
        assert_ne!(keys(&op, &a), keys(&op, &b));
        let mut other = copy(CopyFrom::Context, false);
        if let Op::Copy(c) = &mut other {
            c.chmod = Some(0o700);
        }
        assert_ne!(base, keys(&other, &ctx(p1, 1)).1);
    }

    #[test]
    fn a_link_copy_layer_does_not_depend_on_its_parent() {
        let op = copy(CopyFrom::Context, true);
        let (l1, k1) = keys(&op, &ctx(Some(CacheKey([1; 32])), 1));
        let (l2, k2) = keys(&op, &ctx(Some(CacheKey([2; 32])), 1));
        assert_eq!(l1, l2, "the layer is reused across parents");
        assert_ne!(k1, k2, "but the chain identity follows the parent");
    }
}

//! The instruction model both frontends produce and [`super::lower`]
//! turns into the IR: stages and typed steps with spans, expansion still
//! symbolic (strings are templates in the `strata.toml` expansion syntax).
//!
//! It is also the serde model of `strata.toml` (format version 1): these
//! types are deserialized piece by piece (one stage, step or image at a
//! time, see `toml/parse.rs`) so that every error in a file is reported, and they
//! generate the JSON Schema. Every user-written value keeps its span
//! ([`Sp`]). No `flatten` or untagged enums: they lose spans in toml.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::ir::{MountKind, Sharing};
use toml::Spanned;

/// A value with its byte range in the source file (a spec or a Dockerfile).
/// Compares by value only (as `toml::Spanned` does): where a value was
/// written never makes two models differ.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Sp<T>(pub Spanned<T>);

impl<T> Sp<T> {
    /// A value at a byte range of any source file.
    pub fn new(span: Range<usize>, value: T) -> Self {
        Sp(Spanned::new(span, value))
    }
    pub fn get(&self) -> &T {
        self.0.get_ref()
    }
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// Either a string or a `T` (an array or a table): e.g. the shell and exec
/// forms of a command. Written by hand, not as an untagged enum, so that
/// spans inside `T` survive and errors name both accepted forms.
#[derive(Clone, Debug, PartialEq)]
pub enum StrOr<T> {
    Str(String),
    Other(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>, &'static str);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a string or {}", self.1)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOr::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(StrOr::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Other)
            }
        }
        let what = std::any::type_name::<T>();
        let expecting = if what.contains("Vec<") {
            "an array of strings"
        } else {
            "a table"
        };
        d.deserialize_any(V(PhantomData, expecting))
    }
}

impl<T: JsonSchema> JsonSchema for StrOr<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("StringOr{}", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [{ "type": "string" }, generator.subschema_for::<T>()] })
    }
}

/// A table of string values in the order written (env, labels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderedMap(pub Vec<(String, Sp<String>)>);

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<String, Sp<String>>()? {
                    v.push((k, val));
                }
                Ok(OrderedMap(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for OrderedMap {
    fn schema_name() -> Cow<'static, str> {
        "StringMap".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "additionalProperties": { "type": "string" } })
    }
}

/// The whole file. Used for the schema; `parse.rs` reads the document key by
/// key with the same names.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "strata build spec",
    description = "A strata.toml file (format version 1). See spec/README.md. Strings described as expanded take $NAME, ${NAME}, $$ (a literal $) and the Dockerfile operators with BuildKit's meaning: ${NAME-w} ${NAME:-w} ${NAME+w} ${NAME:+w} ${NAME?w} ${NAME:?w} ${NAME#p} ${NAME##p} ${NAME%p} ${NAME%%p} ${NAME/p/r} ${NAME//p/r}; a name defined nowhere is an error except under -, +, ?."
)]
#[allow(dead_code)]
pub struct Document {
    /// Editor hint: the JSON Schema of this file.
    #[serde(rename = "$schema")]
    pub schema: Option<String>,
    /// Format version; only `1` exists. Defaults to 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: Option<u32>,
    /// Global build args: `NAME = "default"` or `NAME = {}` (declared, no default).
    pub args: Option<std::collections::BTreeMap<String, ArgDefault>>,
    /// Stages by name: each a chain of steps from a base.
    pub stage: Option<std::collections::BTreeMap<String, StageSpec>>,
    /// Images to produce, by name (what `--target` selects).
    pub image: Option<std::collections::BTreeMap<String, ImageSpec>>,
}

/// The value of a global arg: a default string (literal), `{}` for
/// "declared, no default", or `{ default = "...", expand = true }` for a
/// default expanded with the global args declared before it.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub enum ArgDefault {
    Default(String),
    NoDefault(EmptyTable),
    Expanded(ExpandedDefault),
}

/// `{ default = "${A}-x", expand = true }`: the default is expanded (with
/// the `[args]` before this one, after `--build-arg`), as a Dockerfile
/// expands `ARG B=${A}-x`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ExpandedDefault {
    /// The default, a template.
    pub default: String,
    /// Must be `true` (a literal default is written as a plain string).
    pub expand: bool,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyTable {}

/// Keys of [`Document`], for unknown-key checks (kept in sync by a test).
pub const DOCUMENT_KEYS: &[&str] = &["$schema", "version", "args", "stage", "image"];

/// A stage: where it starts, its steps, and image config set at its end.
// `==` compares `layout` too (here and in `StepSpec`); `same::same_model`
// compares documents without it.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// `"scratch"`, a stage of this file, an image in the local store, or a
    /// table naming an OCI layout, OCI archive or docker archive (expanded
    /// with the global args).
    pub from: Sp<StrOr<FromTable>>,
    /// `os/arch[/variant]` of the base (default: the build's `--platform`,
    /// else the host's); a foreign architecture's RUN steps use qemu-user.
    pub platform: Option<Sp<String>>,
    /// Global args this stage brings into scope for `run` environments.
    pub args: Option<Vec<Sp<String>>>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<Sp<StepSpec>>,
    /// Default command (array = exec form, string = shell form).
    pub cmd: Option<Sp<StrOr<Vec<String>>>>,
    /// Entrypoint (array = exec form, string = shell form).
    pub entrypoint: Option<Sp<StrOr<Vec<String>>>>,
    /// Ports: `port[-port][/tcp|udp|sctp]`.
    pub expose: Option<Vec<Sp<String>>>,
    /// Image labels; names and values expanded.
    pub labels: Option<Sp<OrderedMap>>,
    /// Absolute paths of volumes.
    pub volumes: Option<Vec<Sp<String>>>,
    /// Signal that stops the container.
    pub stopsignal: Option<Sp<String>>,
    pub healthcheck: Option<Sp<HealthcheckSpec>>,
    /// Dockerfile instructions for images built from this one.
    pub onbuild: Option<Vec<Sp<String>>>,
    /// Run the base image's ONBUILD triggers before the steps, as a
    /// Dockerfile `FROM` does (default false: a warning says they do not
    /// run). Only for a stage that starts from an image.
    #[serde(rename = "base-onbuild")]
    pub base_onbuild: Option<bool>,
    /// How the source laid this stage out; for printing only.
    #[allow(dead_code)] // read by the TOML printer (issue 9, in progress)
    #[serde(skip)]
    #[schemars(skip)]
    pub layout: Layout,
}

/// What a printer needs to lay a stage or step out as its source did:
/// never read by the lowering, never part of a comparison of models.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Comment lines written before it (without the `#`).
    pub comments: Vec<String>,
    /// For a `run` string: byte offsets in the command where the source
    /// continued the line (a Dockerfile `\` newline), so that a printer
    /// can break it at the same places.
    pub breaks: Vec<usize>,
}

pub const STAGE_KEYS: &[&str] = &[
    "from",
    "platform",
    "args",
    "steps",
    "cmd",
    "entrypoint",
    "expose",
    "labels",
    "volumes",
    "stopsignal",
    "healthcheck",
    "onbuild",
    "base-onbuild",
];

/// A base that is not a name: exactly one of `oci`, `oci-archive`, `docker-archive`.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FromTable {
    /// An OCI image layout directory.
    pub oci: Option<Sp<String>>,
    /// A tar of an OCI image layout.
    pub oci_archive: Option<Sp<String>>,
    /// A `docker save` tar.
    pub docker_archive: Option<Sp<String>>,
    /// Which image of the layout/archive (its ref name).
    #[serde(rename = "ref")]
    pub reference: Option<Sp<String>>,
}

/// One step. Exactly one verb key (`copy`, `add`, `run`, `env`, ...) and
/// the option keys of that verb.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StepSpec {
    // The fields of rare verbs and options are boxed (`Box<T>` reads and
    // serializes as `T`): a step is ~600 bytes rather than ~1,300, which
    // counts with 200,000 steps (issue 9).
    /// COPY: source paths (context, or `from` stage / `image` root); expanded.
    pub copy: Option<Sp<Vec<Sp<String>>>>,
    /// ADD: sources (local archives are extracted).
    pub add: Option<Sp<Vec<Sp<String>>>>,
    /// RUN: string = shell form, array = exec form. Not expanded: the shell expands it.
    pub run: Option<Sp<StrOr<Vec<String>>>>,
    /// ENV: variables to set, in order; names and values expanded (`${PATH}` is the previous value).
    pub env: Option<Sp<OrderedMap>>,
    /// WORKDIR (relative paths resolve against the current one); expanded.
    pub workdir: Option<Sp<String>>,
    /// USER `user[:group]`.
    pub user: Option<Sp<String>>,
    /// SHELL used by later shell forms.
    pub shell: Option<Box<Sp<Vec<String>>>>,
    /// ARG declared in this stage.
    pub arg: Option<Sp<String>>,
    /// CMD.
    pub cmd: Option<Box<Sp<StrOr<Vec<String>>>>>,
    /// ENTRYPOINT.
    pub entrypoint: Option<Box<Sp<StrOr<Vec<String>>>>>,
    /// LABEL; names and values expanded.
    pub label: Option<Sp<OrderedMap>>,
    /// EXPOSE.
    pub expose: Option<Box<Sp<Vec<Sp<String>>>>>,
    /// VOLUME.
    pub volume: Option<Box<Sp<Vec<Sp<String>>>>>,
    /// STOPSIGNAL.
    pub stopsignal: Option<Box<Sp<String>>>,
    /// HEALTHCHECK.
    pub healthcheck: Option<Box<Sp<HealthcheckSpec>>>,
    /// ONBUILD.
    pub onbuild: Option<Box<Sp<Vec<Sp<String>>>>>,
    /// MAINTAINER (deprecated): the image's `author`; expanded.
    pub maintainer: Option<Sp<String>>,

    /// copy/add: destination (relative to the workdir; trailing `/` = into a directory); expanded.
    pub to: Option<Sp<String>>,
    /// copy/add: files written from text (a Dockerfile's heredocs), name ->
    /// content, after the `copy` sources; expanded. Each is a file `NAME`
    /// (mode 0644 unless `chmod`) copied to `to` like a source of that name.
    pub content: Option<Sp<OrderedMap>>,
    /// copy: a stage of this file to copy from.
    pub from: Option<Sp<String>>,
    /// copy: an image to copy from.
    pub image: Option<Box<Sp<String>>>,
    /// copy/add: octal permission bits, e.g. `"0755"`.
    pub chmod: Option<Box<Sp<String>>>,
    /// copy/add: `user[:group]`.
    pub chown: Option<Box<Sp<String>>>,
    /// copy/add: patterns to leave out.
    pub exclude: Option<Vec<Sp<String>>>,
    /// copy/add: the layer does not depend on the parent's content.
    pub link: Option<bool>,
    /// copy: keep the sources' parent directories.
    pub parents: Option<bool>,
    /// add: expected digest of a remote source.
    pub checksum: Option<Box<Sp<String>>>,
    /// add: keep `.git` of a git source.
    pub keep_git_dir: Option<bool>,
    /// add: extract local archives (default true).
    pub unpack: Option<bool>,
    /// run: `default`, `none` or `host`.
    pub network: Option<Box<Sp<String>>>,
    /// run: mounts for the command.
    pub mounts: Option<Vec<Sp<MountSpec>>>,
    /// arg: default value; expanded, e.g. `"${TARGETPLATFORM#linux/}"`.
    pub default: Option<Box<Sp<String>>>,
    /// How the source laid this step out; for printing only.
    #[allow(dead_code)] // read by the TOML printer (issue 9, in progress)
    #[serde(skip)]
    #[schemars(skip)]
    pub layout: Layout,
}

/// The verbs of a step and the option keys each accepts (one table: the
/// validation and the documentation both read it).
pub const VERBS: &[(&str, &[&str])] = &[
    (
        "copy",
        &[
            "to", "content", "from", "image", "chmod", "chown", "exclude", "link", "parents",
        ],
    ),
    (
        "add",
        &[
            "to",
            "content",
            "chmod",
            "chown",
            "exclude",
            "link",
            "checksum",
            "keep-git-dir",
            "unpack",
        ],
    ),
    ("run", &["network", "mounts"]),
    ("env", &[]),
    ("workdir", &[]),
    ("user", &[]),
    ("maintainer", &[]),
    ("shell", &[]),
    ("arg", &["default"]),
    ("cmd", &[]),
    ("entrypoint", &[]),
    ("label", &[]),
    ("expose", &[]),
    ("volume", &[]),
    ("stopsignal", &[]),
    ("healthcheck", &[]),
    ("onbuild", &[]),
];

/// A RUN mount.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// `bind`, `cache`, `tmpfs`, `secret` or `ssh`.
    #[serde(rename = "type")]
    pub kind: Sp<MountKind>,
    /// Where the mount appears in the RUN.
    pub target: Option<Sp<String>>,
    /// Path in the context or `from` stage; secret file.
    pub source: Option<Sp<String>>,
    /// Stage the bind/cache mount is seeded from.
    pub from: Option<Sp<String>>,
    /// Cache or secret id.
    pub id: Option<Sp<String>>,
    /// Cache sharing: `shared`, `private`, `locked` (or a string with a
    /// variable, expanded to one of them).
    pub sharing: Option<Sp<SharingSpec>>,
    /// A bool, or a string expanded to `true`/`false` (also `1`/`0`, `t`/`f`).
    pub readonly: Option<Boolean>,
    /// The opposite of `readonly` (a Dockerfile's `rw=$X`); not both.
    pub rw: Option<Boolean>,
    pub required: Option<Boolean>,
    /// Octal mode, e.g. `"0700"`.
    pub mode: Option<Sp<String>>,
    /// Owner of a cache mount: a number, or a string expanded to one.
    pub uid: Option<Sp<Number>>,
    pub gid: Option<Sp<Number>>,
    /// tmpfs size in bytes: a number, or a string expanded to a size such as `"64m"`.
    pub size: Option<Sp<Number>>,
    /// secret: expose as this environment variable.
    pub env: Option<Sp<String>>,
}

/// A mount's `type`: the IR's kind, read as its lower-case name.
impl JsonSchema for MountKind {
    fn schema_name() -> Cow<'static, str> {
        "MountType".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": ["bind", "cache", "tmpfs", "secret", "ssh"] })
    }
}

/// A value written as one, or a string with a variable (a Dockerfile
/// writes `uid=$UID`, `readonly=$RO`, `sharing=$S`): the lowering expands
/// the template, then reads it as a `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lit<T> {
    Value(T),
    Template(String),
}

/// A non-negative integer or a string.
pub type Number = Lit<u64>;
/// A bool or a string.
pub type Boolean = Lit<bool>;
/// A cache mount's sharing mode, or a string with a variable.
pub type SharingSpec = Lit<Sharing>;

impl<T> Lit<T> {
    /// The template, when the value is one.
    pub fn template_mut(&mut self) -> Option<&mut String> {
        match self {
            Lit::Value(_) => None,
            Lit::Template(t) => Some(t),
        }
    }
}

/// A value a [`Lit`] can hold: how it reads from TOML and its schema.
pub trait LitValue: Sized {
    /// What the error for a value of another type says was expected.
    const EXPECTING: &str;
    const SCHEMA_NAME: &str;
    const SCHEMA_INLINE: bool;
    fn schema() -> Schema;
    /// A value written as `v`: `None` when `v` is of another type.
    fn read<E: de::Error>(v: Written) -> Option<Result<Lit<Self>, E>>;
}

/// A scalar as TOML wrote it.
pub enum Written<'a> {
    Bool(bool),
    /// Any integer TOML can hold (an `i64`, or a `u64` above it).
    Int(i128),
    Str(&'a str),
}

impl<'de, T: LitValue> Deserialize<'de> for Lit<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: LitValue> V<T> {
            fn read<E: de::Error>(self, v: Written, u: de::Unexpected) -> Result<Lit<T>, E> {
                T::read(v).unwrap_or_else(|| Err(E::invalid_type(u, &self)))
            }
        }
        impl<T: LitValue> Visitor<'_> for V<T> {
            type Value = Lit<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Lit<T>, E> {
                self.read(Written::Bool(v), de::Unexpected::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lit<T>, E> {
                self.read(Written::Int(v.into()), de::Unexpected::Signed(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lit<T>, E> {
                self.read(Written::Int(v.into()), de::Unexpected::Unsigned(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lit<T>, E> {
                self.read(Written::Str(v), de::Unexpected::Str(v))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<T: LitValue> JsonSchema for Lit<T> {
    fn schema_name() -> Cow<'static, str> {
        T::SCHEMA_NAME.into()
    }
    fn inline_schema() -> bool {
        T::SCHEMA_INLINE
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        T::schema()
    }
}

impl LitValue for u64 {
    const EXPECTING: &str = "a non-negative integer or a string";
    const SCHEMA_NAME: &str = "NumberOrString";
    const SCHEMA_INLINE: bool = true;
    fn schema() -> Schema {
        json_schema!({ "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }] })
    }
    fn read<E: de::Error>(v: Written) -> Option<Result<Lit<u64>, E>> {
        Some(match v {
            Written::Int(i) => u64::try_from(i).map(Lit::Value).map_err(|_| {
                E::custom(format!(
                    "{i} is negative: expected a non-negative integer or a string"
                ))
            }),
            Written::Str(s) => Ok(Lit::Template(s.to_string())),
            Written::Bool(_) => return None,
        })
    }
}

impl LitValue for bool {
    const EXPECTING: &str = "a boolean or a string";
    const SCHEMA_NAME: &str = "BoolOrString";
    const SCHEMA_INLINE: bool = true;
    fn schema() -> Schema {
        json_schema!({ "anyOf": [{ "type": "boolean" }, { "type": "string" }] })
    }
    fn read<E: de::Error>(v: Written) -> Option<Result<Lit<bool>, E>> {
        match v {
            Written::Bool(b) => Some(Ok(Lit::Value(b))),
            Written::Str(s) => Some(Ok(Lit::Template(s.to_string()))),
            Written::Int(_) => None,
        }
    }
}

/// A mode by its IR name; a string with a `$` is a template.
impl LitValue for Sharing {
    const EXPECTING: &str = "a string";
    const SCHEMA_NAME: &str = "SharingSpec";
    const SCHEMA_INLINE: bool = false;
    fn schema() -> Schema {
        json_schema!({ "anyOf": [
            { "type": "string", "enum": ["shared", "private", "locked"] },
            { "type": "string", "pattern": "\\$", "description": "expanded to shared, private or locked" }
        ] })
    }
    fn read<E: de::Error>(v: Written) -> Option<Result<Lit<Sharing>, E>> {
        let Written::Str(s) = v else { return None };
        Some(if s.contains('$') {
            Ok(Lit::Template(s.to_string()))
        } else {
            Sharing::deserialize(de::value::StrDeserializer::new(s)).map(Lit::Value)
        })
    }
}

/// HEALTHCHECK. `test`: `"NONE"` disables; another string is run by the
/// shell (`CMD-SHELL`); an array starts with `CMD` or `CMD-SHELL`.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthcheckSpec {
    pub test: Sp<StrOr<Vec<String>>>,
    /// Duration such as `"30s"`, `"1m30s"`, `"500ms"`.
    pub interval: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub start_period: Option<Sp<String>>,
    pub start_interval: Option<Sp<String>>,
    pub retries: Option<u32>,
}

/// An image to produce.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The stage whose result is the image (default: the stage of the same name).
    pub stage: Option<Sp<String>>,
    /// `name:tag` references (args are expanded).
    #[serde(default)]
    pub tags: Vec<Sp<String>>,
    /// `os/arch[/variant]` to build the image for (args are expanded):
    /// several give one multi-platform index (default: `--platform`, else
    /// this host's; `--platform` overrides it).
    pub platforms: Option<Sp<Vec<Sp<String>>>>,
}

pub const IMAGE_KEYS: &[&str] = &["stage", "tags", "platforms"];

/// A global arg (`[args]`, an ARG before the first FROM).
#[derive(Clone, Debug)]
pub struct ArgDecl {
    pub name: String,
    pub span: Range<usize>,
    /// Literal, or a template when `expand`.
    pub default: Option<String>,
    /// The default is a template, expanded with the global args declared
    /// before it (a Dockerfile's `ARG B=${A}`; `{ default = "...",
    /// expand = true }` in `[args]`).
    pub expand: bool,
    /// Where the default is written (the name's span when there is none).
    pub default_span: Range<usize>,
}

/// A stage as written; `spec` is `None` when it could not be read (its
/// errors are already reported).
#[derive(Clone, Debug)]
pub struct StageDecl {
    pub name: String,
    pub span: Range<usize>,
    pub spec: Option<StageSpec>,
}

#[derive(Clone, Debug)]
pub struct ImageDecl {
    pub name: String,
    pub span: Range<usize>,
    pub spec: Option<ImageSpec>,
}

/// The document, in file order.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Global args; a name declared twice (a Dockerfile can) takes the
    /// later declaration from there on.
    pub args: Vec<ArgDecl>,
    pub stages: Vec<StageDecl>,
    pub images: Vec<ImageDecl>,
    pub dialect: Dialect,
}

/// Where the source formats mean different things and no single value
/// can say it: the rules of the whole file. The default is `strata.toml`'s;
/// a Dockerfile sets them all (BuildKit's meaning). `convert` rewrites a
/// Dockerfile's model into the default dialect (`frontend::normalize`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dialect {
    /// A step sees a global arg only when its stage declares it (a
    /// Dockerfile `ARG NAME` in the stage); otherwise it expands as
    /// unset. In a TOML spec every step sees every global arg.
    pub scoped_globals: bool,
    /// `copy` `image` may name a stage of this file once expanded (a
    /// Dockerfile `--from=$X` is a stage or an image).
    pub image_may_name_stage: bool,
}

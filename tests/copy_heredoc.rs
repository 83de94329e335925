//! COPY heredocs (issue 11 finding 4), as the Dockerfile reference
//! (syntax 1.4+, "Here-Documents") describes them; BuildKit 0.8, the
//! differential's reference, is too old to build them:
//! - `COPY <<EOF /dest` writes the body to `/dest`; several heredocs to a
//!   directory `dest/` become files named after their delimiters;
//! - a quoted delimiter (`<<"EOF"`) copies the body as written (`$1`
//!   stays), an unquoted one expands it as BuildKit does, `<<-` strips
//!   leading tabs;
//! - the files are 0644 unless `--chmod`, owned by root unless `--chown`,
//!   and, as every COPY in strata, get the build's epoch as mtime;
//! - the history shows `COPY <<NAME ... dest`;
//! - `convert` writes them as a `content` table and the TOML builds the
//!   same image.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;

const DOCKERFILE: &str = "FROM scratch
COPY --chmod=755 <<\"EOF\" /out/script
#!/bin/sh
echo $1
EOF
COPY <<A <<-B /many/
a
A
\tb
\tB
COPY --chown=1000:50 <<X /h/x.ini
[main]
key = value
X
";

fn build(env: &TestEnv, file: &Path, ctx: &Path, layout: &Path) -> serde_json::Value {
    run_ok(
        env.strata("root")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("build")
            .arg(ctx)
            .arg("-f")
            .arg(file)
            .args([
                "--progress",
                "plain",
                "-t",
                "t/heredoc:1",
                "--metadata-file",
            ])
            .arg(env.path("meta.json"))
            .arg("-o")
            .arg(format!("type=oci,dest={}", layout.display())),
    );
    metadata(&env.path("meta.json"))
}

struct Built {
    env: TestEnv,
    ctx: PathBuf,
    meta: serde_json::Value,
    rootfs: PathBuf,
}

/// `dockerfile` built to an OCI layout and unpacked by umoci; None (with
/// a visible SKIP) where that cannot be done here.
fn built(test: &str, dockerfile: &str) -> Option<Built> {
    if !is_root() {
        eprintln!("SKIP {test}: unpacking owners other than ours needs root");
        return None;
    }
    if !have_tool("umoci", test) {
        return None;
    }
    let env = TestEnv::new();
    let ctx = env.write_tree("ctx", &[("Dockerfile", dockerfile)]);
    let layout = env.path("oci");
    let meta = build(&env, &ctx.join("Dockerfile"), &ctx, &layout);
    let rootfs = common::image_tree::unpack(&layout, "t/heredoc:1", &env.path("bundle"));
    Some(Built {
        env,
        ctx,
        meta,
        rootfs,
    })
}

#[test]
fn copy_heredocs_write_their_bodies_as_the_reference_says() {
    let Some(Built {
        env,
        ctx,
        meta,
        rootfs,
    }) = built(
        "copy_heredocs_write_their_bodies_as_the_reference_says",
        DOCKERFILE,
    )
    else {
        return;
    };
    let file = |p: &str| {
        let path = rootfs.join(p);
        let m = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(m.is_file(), "{p} is a file");
        let text = std::fs::read_to_string(&path).unwrap();
        (text, m.mode() & 0o7777, m.uid(), m.gid(), m.mtime())
    };
    let epoch = 1_700_000_000;
    assert_eq!(
        file("out/script"),
        ("#!/bin/sh\necho $1\n".to_string(), 0o755, 0, 0, epoch)
    );
    assert_eq!(file("many/A"), ("a\n".to_string(), 0o644, 0, 0, epoch));
    assert_eq!(file("many/B"), ("b\n".to_string(), 0o644, 0, 0, epoch));
    assert_eq!(
        file("h/x.ini"),
        ("[main]\nkey = value\n".to_string(), 0o644, 1000, 50, epoch)
    );
    // The directories a destination needs are made 0755, root's.
    let dir = std::fs::metadata(rootfs.join("many")).unwrap();
    assert!(dir.is_dir());
    assert_eq!((dir.mode() & 0o7777, dir.uid()), (0o755, 0));

    // History as BuildKit writes it (`COPY <<NAME dest`).
    let config = env.blob_json("root", meta["image"]["config"]["digest"].as_str().unwrap());
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    // (FROM scratch records no entry.)
    assert_eq!(
        history,
        [
            "COPY <<EOF /out/script",
            "COPY <<A <<B /many/",
            "COPY <<X /h/x.ini"
        ]
    );

    // convert writes a `content` table; the TOML builds the same image.
    let out = run_ok(
        env.strata("root")
            .arg("convert")
            .arg(ctx.join("Dockerfile")),
    );
    assert!(
        out.stdout
            .contains(r##"content = { EOF = "#!/bin/sh\necho $$1\n" }"##),
        "{}",
        out.stdout
    );
    let toml = env.path("ctx/strata.toml");
    std::fs::write(&toml, &out.stdout).unwrap();
    let from_toml = build(&env, &toml, &ctx, &env.path("oci-toml"));
    assert_eq!(from_toml["image"]["digest"], meta["image"]["digest"]);
}

/// Unquoted delimiters: the body expanded as BuildKit expands it. The
/// expected bytes follow BuildKit's source and its own tests (moby/buildkit
/// frontend/dockerfile): `dispatch` in dockerfile2llb/convert.go expands a
/// heredoc source whose delimiter is unquoted (`SourceContent.Expand`, set
/// by `heredocFromMatch` in parser/parser.go) through
/// `SourcesAndDest.ExpandRaw` (instructions/commands.go) with a fresh
/// `shell.NewLex('\\')` and `SkipProcessQuotes = true`. So in shell/lex.go
/// `processStopOn` treats quotes as ordinary characters, drops a `\` and
/// keeps the character after it (even a newline), and `processDollar`
/// expands `$NAME` and `${NAME...}` from the ARGs and ENV in scope, a
/// special or positional parameter (`processName`: `$@`, `$1`, `$$`) being
/// unset. dockerfile_heredoc_test.go checks the same
/// (`testCopyHeredocSpecialSymbols`: `\\` -> `\`, `\$` -> `$`, quotes kept;
/// `testHeredocVarSubstitution`: `Hello '${name}'!` -> `Hello 'world'!`).
const UNQUOTED: &str = r#"FROM scratch
ARG name=world
ENV GREETING=Hello
COPY <<EOF /u/vars
$GREETING ${name}! ${UNSET:-fallback} ${name:+set} ${name/o/0} [$UNSET]
EOF
COPY <<EOF /u/quotes
"quotes in file" 'single ${name}' "double $name"
EOF
COPY <<EOF /u/slashes
\$name \\ a\b \
end
EOF
COPY <<-EOF /u/special
	exec "$@" $1 $$ ${1:-one}
	EOF
COPY <<"EOF" /u/raw
\$name \\ "$@"
EOF
"#;

#[test]
fn unquoted_heredoc_bodies_are_expanded_as_buildkit_expands_them() {
    let Some(Built {
        env,
        ctx,
        meta,
        rootfs,
    }) = built(
        "unquoted_heredoc_bodies_are_expanded_as_buildkit_expands_them",
        UNQUOTED,
    )
    else {
        return;
    };
    let read = |p: &str| std::fs::read(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let cases: [(&str, &[u8]); 5] = [
        ("u/vars", b"Hello world! fallback set w0rld []\n"),
        (
            "u/quotes",
            b"\"quotes in file\" 'single world' \"double world\"\n",
        ),
        ("u/slashes", b"$name \\ ab \nend\n"),
        ("u/special", b"exec \"\"   one\n"),
        ("u/raw", b"\\$name \\\\ \"$@\"\n"),
    ];
    for (path, want) in cases {
        assert_eq!(
            String::from_utf8_lossy(&read(path)),
            String::from_utf8_lossy(want),
            "{path}"
        );
    }

    // convert keeps `$`, `\` and quotes: the TOML builds the same image.
    let out = run_ok(
        env.strata("root")
            .arg("convert")
            .arg(ctx.join("Dockerfile")),
    );
    let toml = env.path("ctx/strata.toml");
    std::fs::write(&toml, &out.stdout).unwrap();
    let from_toml = build(&env, &toml, &ctx, &env.path("oci-toml"));
    assert_eq!(
        from_toml["image"]["digest"], meta["image"]["digest"],
        "{}",
        out.stdout
    );
}

#[test]
fn an_unquoted_heredoc_body_strata_cannot_express_is_refused_with_a_hint() {
    let env = TestEnv::new();
    let ctx = env.write_tree(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY <<EOF /x\n${HOME:-\\}}\nEOF\n",
        )],
    );
    let out = run(env
        .strata("root")
        .arg("build")
        .arg(&ctx)
        .args(["--progress", "plain"]));
    assert!(!out.ok);
    assert!(
        out.stderr.contains(
            "in the body of heredoc `<<EOF`: a literal `}` inside `${...}` is a form strata cannot express"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("quote the delimiter"), "{}", out.stderr);
}

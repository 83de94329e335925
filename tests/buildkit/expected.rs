//! The one table of cases whose image is not identical to BuildKit's, each
//! with its category and the exact differences the harness sees. A case not
//! listed here must be identical.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// BuildKit is wrong by its own documentation; strata follows the
    /// documentation. Also listed, with the reason, in spec/README.md
    /// ("Differences from BuildKit").
    Documented,
    /// strata differs and should not: a bug to fix.
    KnownGap,
    /// The reference, Debian's docker.io 20.10 with its built-in Dockerfile
    /// frontend (BuildKit 0.8, Dockerfile syntax 1.2), refuses the
    /// Dockerfile because the feature is newer than it, and strata builds
    /// it (nothing is compared until the reference is newer); or it builds
    /// what a later BuildKit changed, and strata does what the later one
    /// does (the reason names the change).
    ReferenceTooOld,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Documented => "documented difference",
            Category::KnownGap => "known gap, not fixed yet",
            Category::ReferenceTooOld => "reference too old",
        }
    }
}

pub struct Listed {
    pub case: &'static str,
    pub category: Category,
    /// Why (required for documented differences).
    pub reason: &'static str,
    /// The differences, exactly as the harness prints them.
    pub diffs: &'static [&'static str],
}

pub const LISTED: &[Listed] = &[
    Listed {
        case: "arg/build-arg-override",
        category: Category::ReferenceTooOld,
        reason: "The ARG line only: BuildKit 0.8 writes the declared default; BuildKit today (moby/buildkit frontend/dockerfile/dockerfile2llb/convert.go, `dispatchArg`, master of 2026-08) writes the value in effect (a --build-arg, or the global value of a bare `ARG G`), as strata does. The RUN line's `|N K=V` prefix matches.",
        diffs: &[
            "history[3]: buildkit ARG V=default [empty layer] | strata ARG V=from-cli [empty layer]",
        ],
    },
    Listed {
        case: "arg/env-beats-arg",
        category: Category::Documented,
        reason: "The Dockerfile reference (ENV and ARG): \"Environment variables defined using the ENV instruction always override an ARG instruction of the same name.\" BuildKit lets an `ARG X` declared after `ENV X` win in RUN; strata keeps the ENV value.",
        diffs: &[
            "rootfs /x: buildkit file 5 bytes sha256:b6da69b22fcabd41107de408a081581593f8fa5eac68b312aec67bad79b292bc mode 0644 owner 0:0 | strata file 4 bytes sha256:367c9b4686a777259cfcbff592b674e7c523655a2eb413cf37e8125a72bb5cad mode 0644 owner 0:0",
            "history[6]: buildkit RUN |2 X=arg2 X=arg2 /bin/sh -c echo $X > /x | strata RUN |1 X=env /bin/sh -c echo $X > /x",
        ],
    },
    Listed {
        case: "run-mount/variable-options",
        category: Category::ReferenceTooOld,
        reason: "BuildKit expands --mount values (sharing, readonly, rw, required, mode, uid) since after 0.8 (instructions/commands_runmount.go parseMount calls the expander on every value); 0.8 reads them unexpanded",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 7: unsupported sharing value \"$S\"",
        ],
    },
    Listed {
        case: "arg/expansion-nocolon",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to process \"${SET-d}\": missing ':' in substitution",
        ],
    },
    Listed {
        case: "arg/expansion-pattern",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to process \"${P#*/}\": missing ':' in substitution",
        ],
    },
    Listed {
        case: "arg/expansion-replace",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to process \"${P/b/X}\": missing ':' in substitution",
        ],
    },
    Listed {
        case: "arg/global-default-platform",
        category: Category::ReferenceTooOld,
        reason: "As arg/build-arg-override (ARG history: newer BuildKit writes the value in effect, as strata does). The config (global defaults that use the predefined platform args) is identical.",
        diffs: &[
            "history[3]: buildkit ARG OS [empty layer] | strata ARG OS=linux [empty layer]",
            "history[4]: buildkit ARG PLATFORM_OS [empty layer] | strata ARG PLATFORM_OS=linux-linux-none [empty layer]",
        ],
    },
    Listed {
        case: "arg/global-and-redeclare",
        category: Category::ReferenceTooOld,
        reason: "As arg/build-arg-override.",
        diffs: &["history[3]: buildkit ARG G [empty layer] | strata ARG G=global [empty layer]"],
    },
    Listed {
        case: "arg/stage-inherits-env",
        category: Category::Documented,
        reason: "The Dockerfile reference (ARG, scope): \"An ARG instruction goes out of scope at the end of the build stage where it was defined. To use an argument in multiple stages, each stage must include the ARG instruction.\" BuildKit passes an ARG of stage `one` to RUN in the stage `FROM one`; strata leaves it unset there.",
        diffs: &[
            "rootfs /vals: buildkit file 11 bytes sha256:fdc1c48221bea6d61edac4209e7d3dd8c2e43720c5da66c0ea8346e3f2ceb5b8 mode 0644 owner 0:0 | strata file 7 bytes sha256:08e25dd41e2be906df0a70e615b49669c2ef852f820e31137000bb1f211af14b mode 0644 owner 0:0",
        ],
    },
    Listed {
        case: "copy/exclude",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: Unknown flag: exclude",
        ],
    },
    Listed {
        case: "copy/link",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: Unknown flag: link",
        ],
    },
    Listed {
        case: "copy/parents",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: Unknown flag: parents",
        ],
    },
    Listed {
        case: "copy/wildcard-several-to-new-name",
        category: Category::Documented,
        reason: "The Dockerfile reference (COPY): \"If multiple <src> resources are specified, either directly or due to the use of a wildcard, then <dest> must be a directory, and it must end with a slash /.\" BuildKit copies each match over the previous one, leaving a file with the last match; strata copies all of them into the directory <dest>.",
        diffs: &[
            "rootfs /newpath/one.conf: only in strata: file 6 bytes sha256:32924f70ba884272e9cf2366e7002a7338e757de00fce5019df7984fb9bdc17f mode 0644 owner 0:0",
            "rootfs /newpath/two.conf: only in strata: file 6 bytes sha256:abd3cf614ff183d96eb03e0170d98b9234e15b87551d7903a4efc4e345c21b9f mode 0644 owner 0:0",
            "rootfs /newpath: buildkit file 6 bytes sha256:abd3cf614ff183d96eb03e0170d98b9234e15b87551d7903a4efc4e345c21b9f mode 0644 owner 0:0 | strata dir mode 0755 owner 0:0",
        ],
    },
    Listed {
        case: "findings/4-copy-heredoc",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: [MAIN]",
        ],
    },
    Listed {
        case: "findings/5-arg-expansion-operators",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to process \"${TARGETPLATFORM#linux/}\": missing ':' in substitution",
        ],
    },
    Listed {
        case: "heredoc/copy-chmod",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 4: unknown instruction: ECHO",
        ],
    },
    Listed {
        case: "heredoc/copy-unquoted-escapes",
        category: Category::ReferenceTooOld,
        reason: "The bytes strata writes are checked against BuildKit's source and tests in tests/copy_heredoc.rs (unquoted_heredoc_bodies_are_expanded_as_buildkit_expands_them) and src/frontend/dockerfile/template.rs.",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 4: unknown instruction: \\$NAME",
        ],
    },
    Listed {
        case: "heredoc/copy-unquoted-vars",
        category: Category::ReferenceTooOld,
        reason: "As heredoc/copy-unquoted-escapes.",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 5: unknown instruction: $GREETING",
        ],
    },
    Listed {
        case: "heredoc/run",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: ECHO",
        ],
    },
    Listed {
        case: "heredoc/run-dash-quoted",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: ECHO",
        ],
    },
    Listed {
        case: "heredoc/run-unquoted-vars",
        category: Category::ReferenceTooOld,
        reason: "BuildKit leaves a RUN heredoc's body to the shell (dockerfile2llb/convert.go dispatchRun: \"we ignore the expand option\"), as strata does.",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 4: unknown instruction: ECHO",
        ],
    },
    Listed {
        case: "heredoc/several",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: A",
        ],
    },
    Listed {
        case: "run-mount/bind-context",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &["rootfs /ctx: only in buildkit: dir mode 0755 owner 0:0"],
    },
    Listed {
        case: "run-mount/bind-from-stage",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &["rootfs /in: only in buildkit: dir mode 0755 owner 0:0"],
    },
    Listed {
        case: "run-mount/bind-rw",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &["rootfs /ctx: only in buildkit: dir mode 0755 owner 0:0"],
    },
    Listed {
        case: "run-mount/cache",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &["rootfs /cache: only in buildkit: dir mode 0755 owner 0:0"],
    },
    Listed {
        case: "run-mount/cache-options",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer. (The cache's mode=0700,uid=1000,gid=1000 are honoured.)",
        diffs: &[
            "rootfs /var/cache/x: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /var/cache: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /var: only in buildkit: dir mode 0755 owner 0:0",
        ],
    },
    Listed {
        case: "run-mount/network-none",
        category: Category::ReferenceTooOld,
        reason: "",
        diffs: &[
            "buildkit failed: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: Unknown flag: network",
        ],
    },
    Listed {
        case: "run-mount/secret",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &[
            "rootfs /run/secrets: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /run: only in buildkit: dir mode 0755 owner 0:0",
        ],
    },
    Listed {
        case: "run-mount/tmpfs",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &["rootfs /scratch: only in buildkit: dir mode 0755 owner 0:0"],
    },
    Listed {
        case: "run/env-and-args",
        category: Category::KnownGap,
        reason: "/env.txt: strata exports SOURCE_DATE_EPOCH=0 (the build's epoch) into every RUN on purpose (spec/README.md, Timestamps); BuildKit does only when it is given as a build arg. Not a BuildKit error by its documentation, so not a documented difference: keeping or dropping the export is a design decision left open.",
        diffs: &[
            "rootfs /env.txt: buildkit file 113 bytes sha256:bb05353f8818db5ef635c528d4eebdfd433c7bab1e5b483302e21f6ef00821ba mode 0644 owner 0:0 | strata file 133 bytes sha256:c285455389c0802ba4d88c696f27befbc48389585dd630387ab2168e589b1d22 mode 0644 owner 0:0",
        ],
    },
    Listed {
        case: "run/mount-points-after-run",
        category: Category::ReferenceTooOld,
        reason: "Only mount stubs: the directories BuildKit 0.8 creates for the RUN mount targets (and their parents) and leaves in the layer; BuildKit 0.11 and later remove them (moby/buildkit#3307, the targets; #3314, their parents), as strata never creates them in the layer.",
        diffs: &[
            "rootfs /mnt/t: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /mnt: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /srv/ctx: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /srv: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /var/c: only in buildkit: dir mode 0755 owner 0:0",
            "rootfs /var: only in buildkit: dir mode 0755 owner 0:0",
        ],
    },
];

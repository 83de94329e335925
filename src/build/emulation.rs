//! RUN steps for another architecture run through qemu-user, which the
//! kernel starts for foreign executables when a `binfmt_misc` handler is
//! registered for them. The handler must have the `F` flag (the kernel
//! opens the emulator when it is registered), or a sandbox's root file
//! system, which has no emulator, could not start it. Checked before a
//! build starts, so a missing handler is one clear error at the step, not
//! an "Exec format error" halfway through.

use std::collections::HashMap;
use std::path::Path;

use petgraph::stable_graph::NodeIndex;

use super::plan::{Plan, Status};
use crate::error::Result;
use crate::ir::{BuildGraph, Op};
use crate::oci::{host_platform, parse_platform};
use crate::store::Platform;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The platform each RUN step to run runs on, when it is not this
/// machine's and the machine cannot run it natively.
fn foreign_runs(graph: &BuildGraph, plan: &Plan) -> Vec<(NodeIndex, Platform)> {
    let host = host_platform();
    let mut memo: HashMap<NodeIndex, Option<Platform>> = HashMap::new();
    let mut out = Vec::new();
    for s in plan.steps.iter().filter(|s| s.status == Status::Run) {
        let n = s.node;
        if !matches!(graph.graph[n].op, Op::Run(_)) {
            continue;
        }
        if let Some(p) = platform_of(graph, n, &mut memo)
            && !native(&host, &p)
        {
            out.push((n, p));
        }
    }
    out
}

/// The platform of a step's stage: its base's, up the parent chain.
fn platform_of(
    graph: &BuildGraph,
    n: NodeIndex,
    memo: &mut HashMap<NodeIndex, Option<Platform>>,
) -> Option<Platform> {
    let mut chain = Vec::new();
    let mut at = Some(n);
    let found = loop {
        let Some(cur) = at else { break None };
        if let Some(p) = memo.get(&cur) {
            break p.clone();
        }
        if let Op::Base(b) = &graph.graph[cur].op {
            break b.platform.as_deref().and_then(|p| parse_platform(p).ok());
        }
        chain.push(cur);
        at = graph.parent(cur);
    };
    for c in chain {
        memo.insert(c, found.clone());
    }
    found
}

/// Whether this machine runs `p`'s programs itself (x86-64 runs 386,
/// arm64 runs arm).
fn native(host: &Platform, p: &Platform) -> bool {
    p.os == host.os
        && (p.architecture == host.architecture
            || matches!(
                (host.architecture.as_str(), p.architecture.as_str()),
                ("amd64", "386") | ("arm64", "arm")
            ))
}

/// qemu's name for an OCI architecture (`arm64` is `aarch64`).
fn qemu_name(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        other => other,
    }
}

/// What is wrong with the handler for `arch` under `dir`, if anything.
fn handler_problem(dir: &Path, arch: &str) -> Option<String> {
    let q = qemu_name(arch);
    let fix = format!(
        "install qemu-user-static and binfmt-support, then `update-binfmts --enable qemu-{q}`"
    );
    if !dir.join("status").exists() {
        return Some(format!(
            "binfmt_misc is not mounted (`mount -t binfmt_misc binfmt_misc {BINFMT}`); then {fix}"
        ));
    }
    let Ok(text) = std::fs::read_to_string(dir.join(format!("qemu-{q}"))) else {
        return Some(format!("no binfmt_misc handler for {q}: {fix}"));
    };
    if text.lines().next() != Some("enabled") {
        return Some(format!(
            "the binfmt_misc handler qemu-{q} is disabled: {fix}"
        ));
    }
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or("");
    if !flags.contains('F') {
        return Some(format!(
            "the binfmt_misc handler qemu-{q} lacks the F flag, so it cannot start inside a \
             build's root file system: register it with F (Debian's qemu-user-static does)"
        ));
    }
    None
}

/// Whether this machine can run programs of platform `p`, natively or
/// through a working qemu-user handler; the error says what to install or
/// enable (`run --platform`, or an image of another platform).
pub fn can_run(p: &Platform) -> std::result::Result<(), String> {
    let host = host_platform();
    // An image that names no architecture (or no os) is taken as this
    // machine's.
    let mut p = p.clone();
    if p.os.is_empty() {
        p.os = host.os.clone();
    }
    if p.architecture.is_empty() || native(&host, &p) {
        return Ok(());
    }
    match handler_problem(Path::new(BINFMT), &p.architecture) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "the image is for {p} and this machine is {host}; to emulate it, {problem}"
        )),
    }
}

/// An error at the first RUN step to run whose platform this machine
/// cannot run (a cached one needs no emulator).
pub fn check(graph: &BuildGraph, plan: &Plan) -> Result<()> {
    let host = host_platform();
    for (n, p) in foreign_runs(graph, plan) {
        if let Some(problem) = handler_problem(Path::new(BINFMT), &p.architecture) {
            let message =
                format!("this RUN is for {p} and this machine is {host}; to emulate it, {problem}");
            return Err(super::step_error(graph, n, message, "this RUN step"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let problem = |arch| handler_problem(d, arch).unwrap_or_default();
        assert!(
            problem("arm64").contains("not mounted"),
            "{}",
            problem("arm64")
        );
        handler(d, "status", "enabled\n");
        assert!(problem("arm64").contains("no binfmt_misc handler for aarch64"));
        assert!(problem("arm64").contains("update-binfmts --enable qemu-aarch64"));
        handler(d, "qemu-aarch64", "disabled\ninterpreter /q\nflags: F\n");
        assert!(problem("arm64").contains("is disabled"));
        handler(d, "qemu-aarch64", "enabled\ninterpreter /q\nflags: P\n");
        assert!(problem("arm64").contains("lacks the F flag"));
        handler(d, "qemu-aarch64", "enabled\ninterpreter /q\nflags: PF\n");
        assert_eq!(handler_problem(d, "arm64"), None);
    }

    #[test]
    fn native_platforms_need_no_emulator() {
        let p = |s| parse_platform(s).unwrap();
        assert_eq!(can_run(&host_platform()), Ok(()));
        let unnamed = Platform {
            architecture: String::new(),
            os: String::new(),
            variant: None,
        };
        assert_eq!(can_run(&unnamed), Ok(()));
        assert!(native(&p("linux/amd64"), &p("linux/386")));
        assert!(native(&p("linux/arm64"), &p("linux/arm/v7")));
        assert!(!native(&p("linux/amd64"), &p("linux/arm64")));
        assert!(!native(&p("linux/amd64"), &p("windows/amd64")));
    }
}

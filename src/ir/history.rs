//! The `created_by` text of an image's history, written the way BuildKit's
//! Dockerfile frontend writes it, so `docker history` of a strata image
//! reads like that of the image `docker build` gives.
//!
//! BuildKit formats with Go's `fmt`: exec forms with `%q` (`["a" "b"]`),
//! SHELL and VOLUME with `%v` (`[a b]`), EXPOSE as the printed port map
//! (`map[80/tcp:{}]`), HEALTHCHECK as the printed config struct; ENV and
//! LABEL pairs unquoted; COPY, ADD and RUN without their flags. ONBUILD
//! records no history entry.
//!
//! RUN is prefixed with the build args in scope (`RUN |2 A=1 B=2 /bin/sh
//! -c ...`, each name once, as BuildKit's `runCommandString`), COPY and
//! ADD show their destination as written (`COPY a.txt .`), and ARG the
//! value in effect (a `--build-arg`, or the global value of a bare `ARG
//! G`), as BuildKit's `dispatchArg` does today (0.8 wrote the declared
//! default).
//!
//! Derived from the op only, never from source text. What it shows is in
//! the op (the args and the written destination are op fields), so a
//! step's key covers its history text too.

use super::{BaseRef, Command, Healthcheck, MetaOp, Op};
use crate::gofmt::{go_quote, go_quote_list as go_quoted_list, go_quote_rune};

/// The history text of `op`, or `None` when BuildKit writes no entry.
pub fn created_by(op: &Op) -> Option<String> {
    Some(match op {
        Op::Base(b) => match &b.base {
            BaseRef::Scratch => "FROM scratch".to_string(),
            _ => super::describe_op(op),
        },
        Op::Copy(c) => {
            let verb = if c.add.is_some() { "ADD" } else { "COPY" };
            let mut words: Vec<String> = c.sources.clone();
            words.extend(c.contents.iter().map(|(name, _)| format!("<<{name}")));
            format!("{verb} {} {}", words.join(" "), c.dest_written)
        }
        Op::Run(r) => {
            let args = match &r.command {
                Command::Shell { shell, script } => {
                    let mut v = shell.clone();
                    v.push(script.clone());
                    v
                }
                Command::Exec(argv) => argv.clone(),
            };
            let mut prefix = String::new();
            if !r.build_args.is_empty() {
                prefix = format!("|{} ", r.build_args.len());
                for (k, v) in &r.build_args {
                    prefix.push_str(&format!("{k}={v} "));
                }
            }
            format!("RUN {prefix}{}", args.join(" "))
        }
        Op::Workdir(_) => super::describe_op(op),
        Op::Meta(m) => match m {
            MetaOp::Env(v) => format!("ENV {}", pairs(v)),
            MetaOp::Label(v) => format!("LABEL {}", pairs(v)),
            MetaOp::Cmd(v) => format!("CMD {}", go_quoted_list(v)),
            MetaOp::Entrypoint(v) => format!("ENTRYPOINT {}", go_quoted_list(v)),
            MetaOp::Shell(v) => format!("SHELL [{}]", v.join(" ")),
            MetaOp::Volume(v) => format!("VOLUME [{}]", v.join(" ")),
            MetaOp::Expose(v) => {
                let ports: Vec<String> = exposed_ports(v)
                    .into_iter()
                    .map(|p| format!("{p}:{{}}"))
                    .collect();
                format!("EXPOSE map[{}]", ports.join(" "))
            }
            MetaOp::Healthcheck(h) => format!("HEALTHCHECK {}", go_healthcheck(h)),
            MetaOp::OnBuild(_) => return None,
            MetaOp::Workdir(_)
            | MetaOp::User(_)
            | MetaOp::Maintainer(_)
            | MetaOp::StopSignal(_)
            | MetaOp::Arg(_) => super::describe_op(op),
        },
    })
}

/// The keys of the config's `ExposedPorts` for EXPOSE's words, as Docker
/// reads them: `port[/proto]` with `tcp` by default, the protocol in lower
/// case, and a range `a-b` as every port in it; sorted as Go prints a map.
pub fn exposed_ports(words: &[String]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for w in words {
        let (port, proto) = match w.split_once('/') {
            Some((p, proto)) => (p, proto.to_ascii_lowercase()),
            None => (w.as_str(), "tcp".to_string()),
        };
        let range = port
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
            .filter(|(a, b)| a <= b);
        match range {
            Some((a, b)) => {
                for p in a..=b {
                    out.insert(format!("{p}/{proto}"));
                }
            }
            None => {
                out.insert(format!("{port}/{proto}"));
            }
        }
    }
    out.into_iter().collect()
}

fn pairs(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%q` of BuildKit's `*HealthConfig{Test, Interval, Timeout,
/// StartPeriod, Retries}`: `&{["CMD" "x"] "30s" "0s" "0s" '\x03'}`.
fn go_healthcheck(h: &Healthcheck) -> String {
    let d = |v: Option<u64>| go_quote(&go_duration(v.unwrap_or(0)));
    format!(
        "&{{{} {} {} {} {}}}",
        go_quoted_list(&h.test),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        go_quote_rune(h.retries.unwrap_or(0))
    )
}

/// Go's `time.Duration.String` of `ns` nanoseconds: `0s`, `1.5s`, `5m0s`,
/// `1h2m3s`, `250ms`, `1.5µs`, `42ns`.
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", decimal(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", decimal(ns, 1_000_000));
    }
    let h = ns / 3_600_000_000_000;
    let m = ns / 60_000_000_000 % 60;
    let s = decimal(ns % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `v / unit` with its fraction, trailing zeros dropped (`1500, 1000` ->
/// `1.5`).
fn decimal(v: u64, unit: u64) -> String {
    let whole = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{CopyFrom, CopyOp, Network, RunOp};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_durations() {
        for (ns, want) in [
            (0, "0s"),
            (42, "42ns"),
            (1_500, "1.5µs"),
            (250_000_000, "250ms"),
            (1_500_000_000, "1.5s"),
            (3_000_000_000, "3s"),
            (300_000_000_000, "5m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (3_600_000_000_000, "1h0m0s"),
        ] {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }

    #[test]
    fn healthcheck_prints_as_buildkit_does() {
        let h = Healthcheck {
            test: s(&["CMD-SHELL", "wget -q localhost || exit 1"]),
            interval: Some(300_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(10_000_000_000),
            start_interval: None,
            retries: Some(3),
        };
        assert_eq!(
            go_healthcheck(&h),
            r#"&{["CMD-SHELL" "wget -q localhost || exit 1"] "5m0s" "3s" "10s" '\x03'}"#
        );
        let none = Healthcheck {
            test: s(&["NONE"]),
            ..Healthcheck::default()
        };
        assert_eq!(
            go_healthcheck(&none),
            r#"&{["NONE"] "0s" "0s" "0s" '\x00'}"#
        );
        assert_eq!(go_quote_rune(65), "'A'");
        assert_eq!(go_quote_rune(10), "'\\n'");
    }

    #[test]
    fn exec_forms_are_go_quoted_and_pairs_are_raw() {
        let cmd = Op::Meta(MetaOp::Cmd(s(&[
            "/bin/echo",
            "tab\there",
            "quote\"d",
            "unié",
        ])));
        assert_eq!(
            created_by(&cmd).unwrap(),
            r#"CMD ["/bin/echo" "tab\there" "quote\"d" "unié"]"#
        );
        let env = Op::Meta(MetaOp::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "two words".into()),
        ]));
        assert_eq!(created_by(&env).unwrap(), "ENV A=1 B=two words");
        let shell = Op::Meta(MetaOp::Shell(s(&["/bin/sh", "-ec"])));
        assert_eq!(created_by(&shell).unwrap(), "SHELL [/bin/sh -ec]");
        assert_eq!(created_by(&Op::Meta(MetaOp::OnBuild(s(&["RUN x"])))), None);
    }

    #[test]
    fn expose_expands_ranges_and_sorts_as_a_go_map() {
        let op = Op::Meta(MetaOp::Expose(s(&["80/tcp", "443", "53/UDP", "8000-8002"])));
        assert_eq!(
            created_by(&op).unwrap(),
            "EXPOSE map[443/tcp:{} 53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{} 8002/tcp:{}]"
        );
    }

    #[test]
    fn run_and_copy_drop_their_flags() {
        let run = Op::Run(RunOp {
            command: Command::Exec(s(&["/bin/sh", "-c", "echo exec > /exec"])),
            env: vec![],
            user: None,
            workdir: "/".into(),
            network: Network::None,
            mounts: vec![],
            build_args: vec![],
        });
        assert_eq!(
            created_by(&run).unwrap(),
            "RUN /bin/sh -c echo exec > /exec"
        );
        let with_args = Op::Run(RunOp {
            command: Command::Shell {
                shell: s(&["/bin/sh", "-c"]),
                script: "echo $A".into(),
            },
            env: vec![],
            user: None,
            workdir: "/".into(),
            network: Network::Default,
            mounts: vec![],
            build_args: vec![("A".into(), "1".into()), ("B".into(), "".into())],
        });
        assert_eq!(
            created_by(&with_args).unwrap(),
            "RUN |2 A=1 B= /bin/sh -c echo $A"
        );
        let copy = Op::Copy(CopyOp {
            sources: s(&["/out"]),
            contents: vec![],
            dest: "/w/out-copy".into(),
            dest_written: "out-copy".into(),
            from: CopyFrom::Stage("src".into()),
            chown: None,
            chmod: Some(0o600),
            link: true,
            exclude: vec![],
            parents: false,
            add: None,
        });
        assert_eq!(created_by(&copy).unwrap(), "COPY /out out-copy");
    }
}

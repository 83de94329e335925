//! Checked conversions of user-written values, one copy for both
//! frontends: paths against a workdir, octal modes, durations, ports,
//! sizes, platforms, signals, names, `user[:group]`, booleans. Each
//! returns `None` for a value the user must fix; the caller writes the
//! diagnostic (at the span of whichever file the value came from).

use crate::ir::{Chown, Network};

/// `p` resolved against the absolute `cwd`, with `.` and `..` removed.
pub fn resolve_path(cwd: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{cwd}/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Like [`resolve_path`], keeping "into this directory" (a trailing `/`,
/// or a last component `.`) as a trailing `/`.
pub fn resolve_dest(cwd: &str, p: &str) -> String {
    let mut r = resolve_path(cwd, p);
    let dir = p.ends_with('/') || p == "." || p.ends_with("/.");
    if dir && !r.ends_with('/') {
        r.push('/');
    }
    r
}

/// An octal permission string (`"0755"`, `"644"`) as bits, at most `0o7777`.
pub fn parse_octal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

/// `"1m30s"` -> nanoseconds. Units: h, m, s, ms, us, ns; no sign, no
/// fractions; `0` alone is zero.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let mult: u64 = match &rest[..unit_len] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(total)
}

/// A healthcheck retry count: a non-negative integer.
pub fn parse_retries(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `8080` -> `8080/tcp`; `None` unless `port[-port][/tcp|udp|sctp]` with
/// ports 1-65535 (the protocol in any case, written lower-case).
pub fn normalize_port(s: &str) -> Option<String> {
    let (ports, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (s, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let num = |x: &str| -> Option<u32> {
        if x.is_empty() || x.len() > 5 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, Some(num(b)?)),
        None => (num(ports)?, None),
    };
    if lo == 0 || hi.unwrap_or(lo) > 65535 || hi.unwrap_or(lo) < lo {
        return None;
    }
    Some(match hi {
        Some(h) => format!("{lo}-{h}/{proto}"),
        None => format!("{lo}/{proto}"),
    })
}

/// A size with an optional binary unit (`64m`, `1g`, `512k`, `100`), in bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match s[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A signal name (`SIGTERM`, `TERM`, `RTMIN+1`) or a number of at most two digits.
pub fn is_signal(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return s.len() <= 2;
    }
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_uppercase())
        && c.all(|x| x.is_ascii_uppercase() || x.is_ascii_digit() || x == '+' || x == '-')
}

/// A build arg or variable name: letters, digits and `_`, not starting with a digit.
pub fn is_arg_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// `user[:group]`, neither part empty.
pub fn parse_chown(s: &str) -> Option<Chown> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if user.is_empty() || group == Some("") {
        return None;
    }
    Some(Chown {
        user: user.to_string(),
        group: group.map(str::to_string),
    })
}

/// A boolean option: given without a value, `true` or `false`.
pub fn parse_flag_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// `default`, `none` or `host`.
pub fn parse_network(s: &str) -> Option<Network> {
    match s {
        "default" => Some(Network::Default),
        "none" => Some(Network::None),
        "host" => Some(Network::Host),
        _ => None,
    }
}

/// Is `test` a healthcheck test of the image config: `["NONE"]`,
/// `["CMD", arg...]` or `["CMD-SHELL", command]`?
pub fn is_healthcheck_test(test: &[String]) -> bool {
    match test.first().map(String::as_str) {
        Some("NONE") => test.len() == 1,
        Some("CMD") | Some("CMD-SHELL") => test.len() >= 2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(resolve_path("/src", "a/../b/./c"), "/src/b/c");
        assert_eq!(resolve_path("/src", "/x/.."), "/");
        assert_eq!(resolve_path("/", "../../x"), "/x");
        assert_eq!(resolve_dest("/app", "."), "/app/");
        assert_eq!(resolve_dest("/app", "x/"), "/app/x/");
        assert_eq!(resolve_dest("/", "x"), "/x");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_octal("0755"), Some(0o755));
        assert_eq!(parse_octal("8"), None);
        assert_eq!(parse_octal("17777"), None);
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_retries("3"), Some(3));
        assert_eq!(parse_retries("abc"), None);
        assert_eq!(parse_retries("-1"), None);
        assert_eq!(parse_retries(""), None);
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn ports() {
        assert_eq!(normalize_port("8080"), Some("8080/tcp".into()));
        assert_eq!(normalize_port("53/UDP"), Some("53/udp".into()));
        assert_eq!(
            normalize_port("1000-2000/sctp"),
            Some("1000-2000/sctp".into())
        );
        assert_eq!(normalize_port("2-1"), None);
        assert_eq!(normalize_port("0"), None);
        assert_eq!(normalize_port("70000"), None);
        assert_eq!(normalize_port("80/http"), None);
    }

    #[test]
    fn names() {
        assert!(is_signal("SIGTERM") && is_signal("9") && is_signal("RTMIN+1"));
        assert!(!is_signal("sigterm") && !is_signal("123") && !is_signal(""));
        assert!(is_arg_name("_A1") && !is_arg_name("1A") && !is_arg_name("A-B"));
        assert_eq!(
            parse_chown("app"),
            Some(Chown {
                user: "app".into(),
                group: None
            })
        );
        assert_eq!(
            parse_chown("1:2"),
            Some(Chown {
                user: "1".into(),
                group: Some("2".into())
            })
        );
        assert_eq!(parse_chown(":2"), None);
        assert_eq!(parse_chown("1:"), None);
        assert_eq!(parse_flag_bool(None), Some(true));
        assert_eq!(parse_flag_bool(Some("false")), Some(false));
        assert_eq!(parse_flag_bool(Some("yes")), None);
        assert_eq!(parse_network("none"), Some(Network::None));
        assert_eq!(parse_network("bridge"), None);
        let t =
            |v: &[&str]| is_healthcheck_test(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(t(&["NONE"]) && t(&["CMD", "x"]) && t(&["CMD-SHELL", "x"]));
        assert!(!t(&["NONE", "x"]) && !t(&["CMD"]) && !t(&["CMDX", "x"]) && !t(&[]));
    }
}

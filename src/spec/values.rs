//! Checked conversions of spec values: paths against a workdir, octal
//! modes, durations, ports. Each returns `None` for a value the user must
//! fix; the caller writes the diagnostic.

use std::sync::LazyLock;

use regex::Regex;

static EXPOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?(?:/(tcp|udp|sctp))?$").expect("static regex")
});

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

/// `"1m30s"` -> nanoseconds. Units: h, m, s, ms, us, ns; no sign, no fractions.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let units: [(&str, u64); 6] = [
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
        ];
        let (unit, mult) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(*mult)?)?;
    }
    Some(total)
}

/// `"8080"` -> `"8080/tcp"`; `None` if not `port[-port][/proto]` with ports 1-65535.
pub fn normalize_port(s: &str) -> Option<String> {
    let c = EXPOSE.captures(s)?;
    let lo: u32 = c.get(1)?.as_str().parse().ok()?;
    let hi: u32 = match c.get(2) {
        Some(h) => h.as_str().parse().ok()?,
        None => lo,
    };
    if lo == 0 || hi > 65535 || hi < lo {
        return None;
    }
    let proto = c.get(3).map(|p| p.as_str()).unwrap_or("tcp");
    let ports = match c.get(2) {
        Some(_) => format!("{lo}-{hi}"),
        None => lo.to_string(),
    };
    Some(format!("{ports}/{proto}"))
}

//! Value checks and normalizations shared by lowering and `convert`. They
//! agree with the TOML frontend's (`spec/README.md`): the two frontends
//! must produce the same IR, so the checks they share are the TOML
//! frontend's own.

pub use crate::spec::diag::did_you_mean;
pub use crate::spec::values::{parse_octal, resolve_dest, resolve_path};

/// `1m30s` -> nanoseconds (units h, m, s, ms, us, ns; `0` alone is zero).
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

/// `8080` -> `8080/tcp`; `None` unless `port[-port][/tcp|udp|sctp]`, 1-65535.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(resolve_path("/src", "a/../b/./c"), "/src/b/c");
        assert_eq!(resolve_path("/src", "/x/.."), "/");
        assert_eq!(resolve_dest("/app", "."), "/app/");
        assert_eq!(resolve_dest("/app", "x/"), "/app/x/");
        assert_eq!(resolve_dest("/", "x"), "/x");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_octal("0755"), Some(0o755));
        assert_eq!(parse_octal("8"), None);
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(normalize_port("8080"), Some("8080/tcp".into()));
        assert_eq!(normalize_port("53/UDP"), Some("53/udp".into()));
        assert_eq!(normalize_port("2-1"), None);
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(did_you_mean("RUNN", ["RUN", "COPY"]), Some("RUN"));
    }
}

//! Text conventions shared by the image verbs, the way `docker` shows them:
//! decimal sizes with three significant digits, relative times, ellipses.

/// `0B`, `512B`, `1.23kB`, `12.3MB`, `123MB` (decimal units, as docker).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    loop {
        while v >= 1000.0 && unit + 1 < UNITS.len() {
            v /= 1000.0;
            unit += 1;
        }
        let text = if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        };
        // 999.7 rounds to "1000": show it in the next unit instead.
        if text == "1000" && unit + 1 < UNITS.len() {
            v = 1000.0;
            continue;
        }
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        };
        return format!("{text}{}", UNITS[unit]);
    }
}

/// Parses `1GB`, `500MB`, `10k`, `1.5G`, `2GiB`, `1024` (bytes). Decimal
/// suffixes are powers of 1000, `*iB` suffixes powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (expected e.g. 500MB, 1GB, 2GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("`{s}`: unknown size unit `{other}`")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes as u64)
}

/// How long ago, in docker's words (`2 days`, `About an hour`, `45 years`).
pub fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = minutes / 60;
    if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Older than this, a time is shown as its date.
const RELATIVE_FOR: i64 = 365 * 86_400;

/// When an image or step was made, as `images` and `history` show it:
/// `N units ago` within the last year, else the date (`YYYY-MM-DD`, UTC);
/// `N/A` when unknown. A reproducible build stamps the image with
/// `SOURCE_DATE_EPOCH` (0 unless set), so its image shows `1970-01-01`, the
/// time it claims, rather than a vague `56 years ago`.
pub fn ago(created: Option<i64>, now: i64) -> String {
    match created {
        Some(t) if now.saturating_sub(t) >= RELATIVE_FOR => {
            let rfc = crate::build::rfc3339(t.max(0) as u64);
            rfc[..10].to_string()
        }
        Some(t) => format!(
            "{} ago",
            human_duration(now.saturating_sub(t).max(0) as u64)
        ),
        None => "N/A".to_string(),
    }
}

/// Seconds since the Unix epoch now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parses RFC 3339 (`2024-01-02T03:04:05Z`, fractions and offsets allowed)
/// into Unix seconds; `None` when it is not that.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `s` cut to `max` characters, the last one replaced by `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_three_significant_digits() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_700), "1MB");
        assert_eq!(human_size(5_500), "5.5kB");
    }

    #[test]
    fn parse_size_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5g"), Ok(1_500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10 kb"), Ok(10_000));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("-1GB").is_err());
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(150), "2 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(47 * 3600), "47 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
        assert_eq!(human_duration(90 * 86_400), "3 months");
        assert_eq!(human_duration(45 * 365 * 86_400 + 86_400 * 12), "45 years");
        assert_eq!(ago(Some(100), 160), "About a minute ago");
        assert_eq!(ago(Some(200), 100), "Less than a second ago");
        assert_eq!(ago(None, 100), "N/A");
        // Past a year: the date, so an image at SOURCE_DATE_EPOCH 0 says 1970.
        assert_eq!(ago(Some(0), 1_780_000_000), "1970-01-01");
        assert_eq!(ago(Some(1_700_000_000), 1_780_000_000), "2023-11-14");
        assert_eq!(ago(Some(1_779_000_000), 1_780_000_000), "11 days ago");
    }

    #[test]
    fn rfc3339_round_trips_with_the_build_formatter() {
        for t in [0u64, 1, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&crate::build::rfc3339(t)), Some(t as i64));
        }
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.123456789Z"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        for bad in [
            "",
            "1970-01-01",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00+0100",
            "197x-01-01T00:00:00Z",
            "1970-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn ellipsis_cuts_on_characters() {
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
        assert_eq!(ellipsis("ééééé", 4), "ééé…");
    }
}

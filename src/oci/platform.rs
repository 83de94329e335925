//! Platforms as OCI and BuildKit name them: `os/architecture[/variant]`,
//! normalized the way containerd's `platforms` package does (`aarch64` is
//! `arm64`, `x86_64` is `amd64`, `arm64/v8` is `arm64`, `arm` is `arm/v7`),
//! and the choice of an index entry for a wanted platform.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::{Descriptor, ImageIndex, Platform, Store};

/// The platform of this machine (`linux/amd64`, `linux/arm64`, ...).
pub fn host_platform() -> Platform {
    let arch = std::env::consts::ARCH;
    let (architecture, variant) = normal_arch(arch, None);
    Platform {
        architecture,
        os: "linux".to_string(),
        variant,
    }
}

/// An architecture (and variant) in OCI's names, from the many names
/// kernels, distributions and users give them.
fn normal_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| {
        let v = v.to_ascii_lowercase();
        // `7` and `v7` are the same variant.
        if v.chars().all(|c| c.is_ascii_digit()) {
            format!("v{v}")
        } else {
            v
        }
    });
    let (a, v) = match (arch.as_str(), variant) {
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.filter(|v| v != "v1")),
        ("i386" | "i486" | "i586" | "i686" | "x86" | "386", _) => ("386", None),
        ("aarch64" | "arm64", v) => ("arm64", v.filter(|v| v != "v8")),
        ("armhf", _) => ("arm", Some("v7".to_string())),
        ("armel", _) => ("arm", Some("v6".to_string())),
        ("arm", v) => ("arm", v.or(Some("v7".to_string()))),
        ("powerpc64le" | "ppc64le" | "powerpc64", _) => ("ppc64le", None),
        ("loongarch64" | "loong64", _) => ("loong64", None),
        ("mips64el" | "mips64le", _) => ("mips64le", None),
        (a, v) => (a, v),
    };
    (a.to_string(), v)
}

/// Parses `os/arch[/variant]` (or `arch` alone, on linux), normalized.
pub fn parse_platform(s: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = s.trim().split('/').collect();
    let bad = || {
        format!("bad platform `{s}`: expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64")
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (os, arch, variant) = match parts.as_slice() {
        [arch] if !arch.eq_ignore_ascii_case("linux") => ("linux", *arch, None),
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(*variant)),
        _ => return Err(bad()),
    };
    let ok = |w: &str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !ok(os) || !ok(arch) || variant.is_some_and(|v| !ok(v)) {
        return Err(bad());
    }
    let (architecture, variant) = normal_arch(arch, variant);
    Ok(Platform {
        architecture,
        os: os.to_ascii_lowercase(),
        variant,
    })
}

/// Whether an image of platform `have` runs as `want`: same os and
/// architecture, and the variant wanted (none wanted: any).
pub fn platform_matches(want: &Platform, have: &Platform) -> bool {
    let have = normalized(have);
    let want = normalized(want);
    want.os == have.os
        && want.architecture == have.architecture
        && (want.variant.is_none() || want.variant == have.variant)
}

fn normalized(p: &Platform) -> Platform {
    let (architecture, variant) = normal_arch(&p.architecture, p.variant.as_deref());
    Platform {
        architecture,
        os: p.os.to_ascii_lowercase(),
        variant,
    }
}

/// The index entry for `want`: an exact variant match first, then any
/// entry of the same os and architecture.
pub fn pick_platform<'d>(entries: &'d [Descriptor], want: &Platform) -> Option<&'d Descriptor> {
    let want = normalized(want);
    let of = |d: &Descriptor| d.platform.as_ref().map(normalized);
    entries
        .iter()
        .find(|d| of(d).is_some_and(|p| p == want))
        .or_else(|| {
            entries.iter().find(|d| {
                of(d).is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
            })
        })
}

/// The store's index `index` (tagged `name`) and its entry for `want`
/// whose manifest the store holds. A pull of one platform keeps the
/// whole index but only that platform's image, so an entry can name a
/// manifest that is not there: that is an error saying how to get it,
/// as is a platform the index does not have.
pub fn stored_entry(
    store: &Store,
    name: &str,
    index: &Digest,
    want: &Platform,
) -> Result<Descriptor> {
    let bytes = store.read_blob(index)?;
    let idx: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("index {index}"), e.to_string()))?;
    let Some(entry) = pick_platform(&idx.manifests, want) else {
        return Err(Error::msg(format!(
            "image {name} has no image for {want} (its platforms: {})",
            index_platforms(&idx.manifests)
        )));
    };
    if !store.has_blob(&entry.digest) {
        let held: Vec<Descriptor> = (idx.manifests.iter())
            .filter(|d| store.has_blob(&d.digest))
            .cloned()
            .collect();
        return Err(Error::msg(format!(
            "image {name} is an index with an image for {want}, but the store holds only \
             {} of it: run `strata pull --platform {want} {name}`",
            match index_platforms(&held).as_str() {
                "none named" => "other images".to_string(),
                some => some.to_string(),
            }
        )));
    }
    Ok(entry.clone())
}

/// The platforms an index names, for messages (`linux/amd64, linux/arm64`).
pub fn index_platforms(entries: &[Descriptor]) -> String {
    let v: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
        .collect();
    if v.is_empty() {
        "none named".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn p(s: &str) -> Platform {
        parse_platform(s).unwrap()
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(p("linux/aarch64"), p("linux/arm64"));
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/7").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("arm64").to_string(), "linux/arm64");
        assert_eq!(p("Linux/AMD64").to_string(), "linux/amd64");
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(parse_platform(bad).is_err(), "{bad:?}");
        }
        let host = host_platform();
        assert_eq!(parse_platform(&host.to_string()).unwrap(), host);
    }

    #[test]
    fn picks_the_wanted_entry() {
        let entry = |plat: &str, n: u8| {
            let mut d = Descriptor::new("m", Digest::of(&[n]), 1);
            d.platform = Some(p(plat));
            d
        };
        let entries = vec![
            entry("linux/amd64", 0),
            entry("linux/arm/v6", 1),
            entry("linux/arm/v7", 2),
            entry("linux/arm64", 3),
        ];
        assert_eq!(
            pick_platform(&entries, &p("linux/arm64/v8")),
            Some(&entries[3])
        );
        assert_eq!(
            pick_platform(&entries, &p("linux/arm/v7")),
            Some(&entries[2])
        );
        assert_eq!(
            pick_platform(&entries, &p("linux/x86_64")),
            Some(&entries[0])
        );
        assert_eq!(pick_platform(&entries, &p("linux/s390x")), None);
        assert!(index_platforms(&entries).contains("linux/arm/v6"));
        assert!(platform_matches(&p("linux/arm64"), &p("linux/aarch64")));
        assert!(!platform_matches(&p("linux/arm/v7"), &p("linux/arm/v6")));
        assert!(platform_matches(&p("linux/arm"), &p("linux/arm/v7")));
    }
}

//! What the sandbox puts into the container's view of the filesystem, as
//! data: the mountpoint layer and the generated `/etc` files.
//!
//! Mountpoints (`/proc`, `/dev`, `/sys`, `/etc/hosts`, every mount target)
//! must exist before something can be mounted on them. Creating them in the
//! overlay would put them into the upperdir, i.e. into the layer. Instead they
//! are created in a private, throw-away directory that is stacked as the
//! *bottom* lowerdir: the image's own entries win where they exist, and
//! nothing of it reaches the upperdir unless the command itself writes there
//! (then the write is part of the diff, as it should be).
//!
//! Pure: no file system access here.

use std::collections::BTreeMap;

/// The kind of a mountpoint entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Splits an absolute container path into normal components, resolving `.`
/// and `..` lexically (never above `/`). `"/"` gives no components.
pub fn components(path: &str) -> Result<Vec<&str>, String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is not absolute"));
    }
    if path.contains('\0') {
        return Err(format!("path {path:?} contains a NUL byte"));
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The normalized relative form of an absolute container path (`"a/b"`), or
/// an error for `/` itself.
pub fn relative(path: &str) -> Result<String, String> {
    let c = components(path)?;
    if c.is_empty() {
        return Err(format!("{path:?} names the root directory"));
    }
    Ok(c.join("/"))
}

/// The entries of the mountpoint layer, parents first (sorted by path).
#[derive(Debug, Default)]
pub struct Mountpoints {
    entries: BTreeMap<String, Kind>,
}

impl Mountpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` (absolute) of `kind` and its parent directories.
    pub fn add(&mut self, path: &str, kind: Kind) -> Result<(), String> {
        let comps = components(path)?;
        if comps.is_empty() {
            return Err("cannot mount over the root directory".to_string());
        }
        let mut cur = String::new();
        for (i, c) in comps.iter().enumerate() {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            let k = if i + 1 == comps.len() {
                kind
            } else {
                Kind::Dir
            };
            match self.entries.get(&cur) {
                Some(existing) if *existing != k => {
                    return Err(format!(
                        "conflicting mountpoints: /{cur} is needed both as a file and as a directory"
                    ));
                }
                Some(_) => {}
                None => {
                    self.entries.insert(cur.clone(), k);
                }
            }
        }
        Ok(())
    }

    /// `(relative path, kind)`, parents before children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Kind)> {
        self.entries.iter().map(|(p, k)| (p.as_str(), *k))
    }
}

/// Content of the container's `/etc/hosts`.
pub fn hosts(hostname: &str) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if !hostname.is_empty() && hostname != "localhost" {
        s.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    s
}

/// Content of the container's `/etc/resolv.conf`: the host's file with the
/// host network, nothing usable without network.
pub fn resolv_conf(host_network: bool, host_file: Option<&str>) -> String {
    match (host_network, host_file) {
        (true, Some(text)) => text.to_string(),
        (true, None) => "nameserver 8.8.8.8\nnameserver 8.8.4.4\n".to_string(),
        (false, _) => "# network = \"none\": no name servers\n".to_string(),
    }
}

/// A hostname the kernel accepts (1..=64 bytes, no NUL or `/`).
pub fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 64 || h.contains(['\0', '/']) {
        return Err(format!("invalid hostname {h:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_normalize_lexically() {
        assert_eq!(components("/a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(components("/a/../../b").unwrap(), vec!["b"]);
        assert!(components("/").unwrap().is_empty());
        assert!(components("rel/path").is_err());
        assert!(components("/a\0b").is_err());
        assert_eq!(relative("/x/./y/..").unwrap(), "x");
        assert!(relative("/..").is_err());
    }

    #[test]
    fn mountpoints_add_parents_and_detect_conflicts() {
        let mut m = Mountpoints::new();
        m.add("/etc/hosts", Kind::File).unwrap();
        m.add("/cache/go/mod", Kind::Dir).unwrap();
        m.add("/etc/hosts", Kind::File).unwrap();
        let e: Vec<_> = m.entries().collect();
        assert_eq!(
            e,
            vec![
                ("cache", Kind::Dir),
                ("cache/go", Kind::Dir),
                ("cache/go/mod", Kind::Dir),
                ("etc", Kind::Dir),
                ("etc/hosts", Kind::File),
            ]
        );
        assert!(m.add("/etc/hosts/x", Kind::Dir).is_err());
        assert!(m.add("/etc", Kind::File).is_err());
        assert!(m.add("/", Kind::Dir).is_err());
        assert!(m.add("relative", Kind::Dir).is_err());
    }

    #[test]
    fn generated_files() {
        assert!(hosts("box").contains("127.0.1.1\tbox\n"));
        assert!(!hosts("localhost").contains("127.0.1.1"));
        assert_eq!(
            resolv_conf(true, Some("nameserver 1.2.3.4\n")),
            "nameserver 1.2.3.4\n"
        );
        assert!(!resolv_conf(false, Some("nameserver 1.2.3.4\n")).contains("nameserver"));
        assert!(check_hostname("ok").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname(&"x".repeat(65)).is_err());
    }
}

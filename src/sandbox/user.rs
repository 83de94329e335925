//! Resolving `user[:group]` against the rootfs' `/etc/passwd` and `/etc/group`.
//!
//! Pure: the caller reads the files (inside the container root) and passes
//! their text; nothing here touches the file system. The files are untrusted
//! image content, so malformed lines are skipped, never fatal.

/// Who the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as BuildKit (runc's user lookup) sets them:
    /// the `/etc/group` entries that list the user's name, in file order,
    /// and only when the spec names no group and the user has a passwd
    /// entry. Never the primary group unless a group entry lists the user.
    pub groups: Vec<u32>,
    /// Home directory from passwd, when the user has an entry.
    pub home: Option<String>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 || line.starts_with('#') {
            return None;
        }
        let members = f
            .get(3)
            .map(|m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members,
        })
    })
}

/// Resolves `spec` (`user[:group]`, names or numeric ids; `None` = root).
///
/// A numeric user without a passwd entry gets gid 0, like Docker. A group
/// named explicitly replaces the passwd primary group, and then there are
/// no supplementary groups; otherwise they are the `/etc/group` entries
/// listing the user's name (see [`ExecUser::groups`]).
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty());
    let (user_part, group_part) = match spec {
        None => ("0", None),
        Some(s) => match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        },
    };
    if user_part.is_empty() {
        return Err(format!(
            "invalid user {:?}: empty user name",
            spec.unwrap_or("")
        ));
    }

    let by_id = user_part.parse::<u32>().ok();
    let entry = passwd_entries(passwd).find(|e| match by_id {
        Some(id) => e.uid == id,
        None => e.name == user_part,
    });
    let (uid, mut gid, name, home) = match (by_id, entry) {
        (_, Some(e)) => (e.uid, e.gid, Some(e.name), Some(e.home.to_string())),
        (Some(id), None) => (id, 0, None, None),
        (None, None) => {
            return Err(format!(
                "unable to find user {user_part}: no matching entries in the image's /etc/passwd"
            ));
        }
    };

    if let Some(g) = group_part {
        if g.is_empty() {
            return Err(format!(
                "invalid user {:?}: empty group name",
                spec.unwrap_or("")
            ));
        }
        gid = match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    format!(
                        "unable to find group {g}: no matching entries in the image's /etc/group"
                    )
                })?,
        };
    }

    let groups: Vec<u32> = match (group_part, name) {
        (None, Some(name)) => group_entries(group)
            .filter(|e| e.members.contains(&name))
            .map(|e| e.gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home: home.filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        broken line\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        bad:x:notanumber:1:::\n";
    const GROUP: &str = "root:x:0:\n\
        app:x:1000:\n\
        wheel:x:10:root,app\n\
        audio:x:29: app , other\n\
        junk\n";

    #[test]
    fn default_is_root() {
        let u = resolve(None, PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.groups, vec![10]);
        assert_eq!(u.home.as_deref(), Some("/root"));
    }

    #[test]
    fn name_resolves_uid_gid_and_supplementary_groups() {
        let u = resolve(Some("app"), PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.groups, vec![10, 29]);
        // By uid: the same passwd entry, so the same groups.
        assert_eq!(
            resolve(Some("1000"), PASSWD, GROUP).unwrap().groups,
            vec![10, 29]
        );
        assert_eq!(u.home.as_deref(), Some("/home/app"));
    }

    #[test]
    fn explicit_group_by_name_and_id() {
        let u = resolve(Some("app:wheel"), PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        // An explicit group: no supplementary groups (BuildKit, runc).
        assert_eq!(u.groups, Vec::<u32>::new());
        let u = resolve(Some("1000:42"), PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 42));
        assert_eq!(u.groups, Vec::<u32>::new());
    }

    #[test]
    fn numeric_user_without_entry_gets_gid_zero() {
        let u = resolve(Some("4242"), PASSWD, "").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert_eq!(u.groups, Vec::<u32>::new());
        assert_eq!(u.home, None);
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(Some("nobody"), PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find user nobody"), "{e}");
        let e = resolve(Some("app:nogroup"), PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find group nogroup"), "{e}");
        assert!(resolve(Some(":1"), PASSWD, GROUP).is_err());
        assert!(resolve(Some("app:"), PASSWD, GROUP).is_err());
    }
}

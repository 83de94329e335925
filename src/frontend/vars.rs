//! Variables in scope while a stage is lowered: the env and the build
//! args, each in declaration order with constant-time lookup, so that
//! lowering stays linear in the number of steps (a step never copies or
//! scans the whole env; only a RUN takes a copy, which it must carry).

use indexmap::IndexMap;

use crate::store::Platform;

/// A fast, non-cryptographic hasher for the maps lowering fills once per
/// step. SipHash (std's default) defends a long-running server against
/// chosen-key flooding; a build reads one file once, and 200,000 ENV
/// lines spent 6.5% of `strata graph` in SipHash (issue 9).
pub type FastHash = foldhash::fast::RandomState;

/// Names in first-set order; setting a name again replaces its value in
/// place. One map holds each name once: the order is the map's insertion
/// order, so a set costs one hash and, for a new name, one allocation.
#[derive(Clone, Debug)]
pub struct Vars<V> {
    items: IndexMap<String, V, FastHash>,
}

impl<V> Default for Vars<V> {
    fn default() -> Self {
        Vars {
            items: IndexMap::default(),
        }
    }
}

impl<V: Clone> Vars<V> {
    pub fn from_vec(items: Vec<(String, V)>) -> Self {
        let mut v = Vars::default();
        for (k, val) in items {
            // Moved in: a later duplicate replaces the value in place.
            v.items.insert(k, val);
        }
        v
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.items.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.items.contains_key(name)
    }

    pub fn set(&mut self, name: &str, value: V) {
        match self.items.get_mut(name) {
            Some(v) => *v = value,
            None => {
                self.items.insert(name.to_string(), value);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.items.iter()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<(String, V)> {
        self.items
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The env of a stage.
pub type Env = Vars<String>;

/// Build args in scope: `None` = declared without a value.
pub type Args = Vars<Option<String>>;

/// The complete environment of a RUN: the env, then the args in scope
/// that have a value and are not overridden by the env.
pub fn run_env(env: &Env, args: &Args) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in args.iter() {
        if let Some(v) = v
            && !env.contains(k)
        {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// A variable as expansion sees it: the env first, then args in scope.
/// `None` = not defined; `Some(None)` = an arg declared without a value.
pub fn lookup(env: &Env, args: &Args, name: &str) -> Option<Option<String>> {
    if let Some(v) = env.get(name) {
        return Some(Some(v.clone()));
    }
    args.get(name).cloned()
}

/// `(name, value)` of the platform args BuildKit predefines: BUILD* this
/// host, TARGET* `target` (`None`: this host too).
pub fn platform_args(target: Option<&Platform>) -> Vec<(String, String)> {
    let host = crate::oci::host_platform();
    let mut out = Vec::new();
    for (side, p) in [("BUILD", &host), ("TARGET", target.unwrap_or(&host))] {
        out.push((format!("{side}PLATFORM"), p.to_string()));
        out.push((format!("{side}OS"), p.os.clone()));
        out.push((format!("{side}ARCH"), p.architecture.clone()));
        out.push((
            format!("{side}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_replacement() {
        let mut e = Env::default();
        e.set("A", "1".into());
        e.set("B", "2".into());
        e.set("A", "3".into());
        assert_eq!(
            e.to_vec(),
            vec![("A".into(), "3".into()), ("B".into(), "2".into())]
        );
        assert_eq!(e.get("A").map(String::as_str), Some("3"));
        assert!(e.get("C").is_none());
        let mut a = Args::default();
        a.set("B", Some("x".into()));
        a.set("C", Some("y".into()));
        a.set("D", None);
        assert_eq!(
            run_env(&e, &a),
            vec![
                ("A".into(), "3".into()),
                ("B".into(), "2".into()),
                ("C".into(), "y".into())
            ]
        );
        assert_eq!(lookup(&e, &a, "B"), Some(Some("2".into())));
        assert_eq!(lookup(&e, &a, "D"), Some(None));
        assert_eq!(lookup(&e, &a, "Z"), None);
    }
}

//! Variables in scope while a stage is lowered: the env and the build
//! args, each in declaration order with constant-time lookup, so that
//! lowering stays linear in the number of steps (a step never copies or
//! scans the whole env; only a RUN takes a copy, which it must carry).

use std::collections::HashMap;

use crate::store::Platform;

/// Names in first-set order; setting a name again replaces its value in place.
#[derive(Clone, Debug)]
pub struct Vars<V> {
    items: Vec<(String, V)>,
    index: HashMap<String, usize>,
}

impl<V> Default for Vars<V> {
    fn default() -> Self {
        Vars {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<V: Clone> Vars<V> {
    pub fn from_vec(items: Vec<(String, V)>) -> Self {
        let mut v = Vars::default();
        for (k, val) in items {
            v.set(&k, val);
        }
        v
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.index.get(name).map(|&i| &self.items[i].1)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn set(&mut self, name: &str, value: V) {
        match self.index.get(name) {
            Some(&i) => self.items[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.items.len());
                self.items.push((name.to_string(), value));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, V)> {
        self.items.iter()
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.index.clear();
    }

    pub fn to_vec(&self) -> Vec<(String, V)> {
        self.items.clone()
    }
}

/// The env of a stage.
pub type Env = Vars<String>;

/// Build args in scope: `None` = declared without a value.
pub type Args = Vars<Option<String>>;

/// The complete environment of a RUN: the env, then the args in scope
/// that have a value and are not overridden by the env.
pub fn run_env(env: &Env, args: &Args) -> Vec<(String, String)> {
    let mut out = env.to_vec();
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

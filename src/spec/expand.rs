//! `${NAME}` expansion in spec strings.
//!
//! Forms: `$NAME`, `${NAME}`, `${NAME:-word}` (word when unset or empty),
//! `${NAME:+word}` (word when set and non-empty, else empty), `$$` (a
//! literal `$`). `word` is expanded too. A name that is not defined at all
//! is an error unless `:-` or `:+` is used; an arg declared without a value
//! counts as unset and expands to the empty string.

/// What a name refers to: `None` = not defined; `Some(None)` = declared, no value.
pub type Lookup<'a> = dyn Fn(&str) -> Option<Option<String>> + 'a;

/// Expands `s`; the error is a message for a diagnostic.
pub fn expand(s: &str, lookup: &Lookup) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end =
                closing_brace(r).ok_or_else(|| "unterminated `${`: missing `}`".to_string())?;
            out.push_str(&braced(&r[..end], lookup)?);
            rest = &r[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                return Err(
                    "`$` must be followed by a name or `{` (write `$$` for a literal `$`)".into(),
                );
            }
            let name = &after[..n];
            match lookup(name) {
                Some(v) => out.push_str(v.as_deref().unwrap_or("")),
                None => return Err(format!("undefined variable `{name}`")),
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Byte length of the variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Index of the `}` closing a `${` whose body starts `s` (nested `${` count).
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, lookup: &Lookup) -> Result<String, String> {
    let n = name_len(body);
    let name = &body[..n];
    if n == 0 {
        return Err(format!("`${{{body}}}` does not start with a variable name"));
    }
    let op = &body[n..];
    let value = lookup(name);
    let set = matches!(&value, Some(Some(v)) if !v.is_empty());
    if op.is_empty() {
        return match value {
            Some(v) => Ok(v.unwrap_or_default()),
            None => Err(format!("undefined variable `{name}`")),
        };
    }
    if let Some(word) = op.strip_prefix(":-") {
        return if set {
            Ok(value.flatten().unwrap_or_default())
        } else {
            expand(word, lookup)
        };
    }
    if let Some(word) = op.strip_prefix(":+") {
        return if set {
            expand(word, lookup)
        } else {
            Ok(String::new())
        };
    }
    Err(format!(
        "unsupported expansion `${{{body}}}`: use `${{{name}}}`, `${{{name}:-default}}` or `${{{name}:+alternative}}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<Option<String>> {
        match name {
            "A" => Some(Some("1".into())),
            "EMPTY" => Some(Some(String::new())),
            "NOVAL" => Some(None),
            "PATH" => Some(Some("/bin".into())),
            _ => None,
        }
    }

    fn ex(s: &str) -> Result<String, String> {
        expand(s, &vars)
    }

    #[test]
    fn forms() {
        assert_eq!(ex("x$A-${A}y").as_deref(), Ok("x1-1y"));
        assert_eq!(ex("$A_B").map_err(|e| e.contains("A_B")), Err(true));
        assert_eq!(ex("${PATH}:/usr/bin").as_deref(), Ok("/bin:/usr/bin"));
        assert_eq!(ex("cost $$5").as_deref(), Ok("cost $5"));
        assert_eq!(ex("${X:-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${EMPTY:-d}").as_deref(), Ok("d"));
        assert_eq!(ex("${A:-d}").as_deref(), Ok("1"));
        assert_eq!(ex("${A:+yes}").as_deref(), Ok("yes"));
        assert_eq!(ex("${X:+yes}").as_deref(), Ok(""));
        assert_eq!(ex("${NOVAL}").as_deref(), Ok(""));
        assert_eq!(ex("${NOVAL:-n}").as_deref(), Ok("n"));
        assert_eq!(ex("${X:-${A}}").as_deref(), Ok("1"));
        assert_eq!(ex("${X:-a}}").as_deref(), Ok("a}"));
        assert_eq!(ex("plain").as_deref(), Ok("plain"));
        assert_eq!(ex("é$A").as_deref(), Ok("é1"));
    }

    #[test]
    fn errors() {
        assert!(ex("$X").unwrap_err().contains("undefined variable `X`"));
        assert!(ex("${X}").unwrap_err().contains("undefined variable `X`"));
        assert!(ex("${A").unwrap_err().contains("unterminated"));
        assert!(ex("a $ b").unwrap_err().contains("$$"));
        assert!(ex("$").is_err());
        assert!(ex("${}").is_err());
        assert!(ex("${A-x}").unwrap_err().contains("unsupported"));
        assert!(ex("${X:-$Y}").unwrap_err().contains("`Y`"));
    }
}

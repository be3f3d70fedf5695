//! `${VAR}` interpolation, as in vector and docker-compose: `${VAR}` must be set,
//! `${VAR:-default}` falls back when unset or empty, `$$` is a literal `$`. Secrets therefore stay in
//! the environment and never in the file. The file is parsed first and only its string values are
//! interpolated, so a value holding quotes, newlines or TOML syntax stays one string and cannot
//! change the document's structure; comments and keys are never touched, so an example config can
//! show `${VAR}` in its documentation. Parse and type errors keep their line in the file.

use std::borrow::Cow;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer};

use super::ConfigError;

/// Parses `text` (read from `path`), interpolates every string value with `lookup`, and
/// deserializes the result.
pub(crate) fn parse<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let parse_error = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut root = DeTable::parse(text).map_err(parse_error)?;
    for (_, value) in root.get_mut().iter_mut() {
        interpolate_value(value.get_mut(), &lookup)?;
    }
    T::deserialize(Deserializer::from(root)).map_err(|mut e| {
        e.set_input(Some(text));
        parse_error(e)
    })
}

fn interpolate_value(
    value: &mut DeValue<'_>,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        DeValue::String(s) => {
            if s.contains('$') {
                *s = Cow::Owned(interpolate(s, lookup)?);
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                interpolate_value(item.get_mut(), lookup)?;
            }
        }
        DeValue::Table(table) => {
            for (_, v) in table.iter_mut() {
                interpolate_value(v.get_mut(), lookup)?;
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
    Ok(())
}

/// Replaces every `${...}` in one string value using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    interpolate_line(text, &lookup)
}

fn interpolate_line(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| ConfigError::Interpolation {
                var: body.chars().take(40).collect(),
                reason: "unterminated `${`".into(),
            })?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::Interpolation {
                    var: name.into(),
                    reason: "not a valid environment variable name".into(),
                });
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::Interpolation {
                        var: name.into(),
                        reason: "is not set and has no default (write ${NAME:-default})".into(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "RPC" => Some("http://node:8545".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(
            interpolate("a=${RPC} b=${NOPE:-x} c=${EMPTY:-y} d=$$HOME e=$5", env).unwrap(),
            "a=http://node:8545 b=x c=y d=$HOME e=$5"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = interpolate("${DATABASE_URL}", env).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(interpolate("${BAD NAME}", env).is_err());
        assert!(interpolate("${OPEN", env).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        url: String,
        list: Vec<String>,
        t: std::collections::BTreeMap<String, String>,
    }

    fn doc(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Doc, ConfigError> {
        parse(text, Path::new("t.toml"), lookup)
    }

    /// A value with quotes, a newline and TOML syntax stays one string: it cannot add a key,
    /// close the string early or make the document unparsable.
    #[test]
    fn hostile_values_stay_one_string() {
        let evil = "a\"\nlist = [\"x\"]\n[t]\nz = \"\\";
        let d = doc(
            "# ${UNSET} in a comment is left alone\nurl = \"${EVIL}\"\nlist = [\"${EVIL}\", \"k=${RPC}\"]\n[t]\nk = \"${EVIL}\"\n",
            |k| match k {
                "EVIL" => Some(evil.to_owned()),
                _ => env(k),
            },
        )
        .expect("parses");
        assert_eq!(d.url, evil);
        assert_eq!(
            d.list,
            vec![evil.to_owned(), "k=http://node:8545".to_owned()]
        );
        assert_eq!(d.t.len(), 1);
        assert_eq!(d.t["k"], evil);
    }

    #[test]
    fn errors_keep_their_line() {
        let e = doc("url = \"x\"\nlist = []\n[t]\nk = 5\n", env).unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = doc("url = \"${NOPE}\"\nlist = []\n[t]\n", env).unwrap_err();
        assert!(e.to_string().contains("NOPE"), "{e}");
    }
}

//! `${VAR}` interpolation of the config text, as in vector and docker-compose: `${VAR}` must be set,
//! `${VAR:-default}` falls back when unset or empty, `$$` is a literal `$`. Secrets therefore stay in
//! the environment and never in the file. Full-line comments are left alone, so an example config
//! can show `${VAR}` in its documentation.

use super::ConfigError;

/// Replaces every `${...}` in `text` using `lookup`, except on lines that are comments.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&interpolate_line(line, &lookup)?);
        }
    }
    Ok(out)
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
        assert_eq!(
            interpolate("  # see ${UNSET}\nx=${RPC}\n", env).unwrap(),
            "  # see ${UNSET}\nx=http://node:8545\n"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = interpolate("url = \"${DATABASE_URL}\"", env).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(interpolate("${BAD NAME}", env).is_err());
        assert!(interpolate("${OPEN", env).is_err());
    }
}

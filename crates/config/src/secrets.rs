//! One redaction for everything that leaves the process. The secrets of the configured URLs (a
//! user name or password in the user info, a path segment that looks like an API key, query
//! values) and the configured tokens are registered once, when the config loads; [`scrub`] then
//! replaces each of them by `***` in any text: every log line (the tracing writer of
//! each process), `/health` reasons, error text stored in the database or printed by a CLI.
//! Scrubbing the text itself, rather than each place that formats a URL, also covers errors of
//! HTTP clients and peers that quote the URL they failed on.

use std::borrow::Cow;
use std::sync::RwLock;

/// The registered secrets, longest first (so a secret containing another is replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Shorter strings are not registered: they would match ordinary text.
const MIN_SECRET: usize = 6;
/// A path segment at least this long with a digit in it is taken for an API key.
const MIN_PATH_KEY: usize = 16;

/// Registers `secret` (a token, a password) for [`scrub`].
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET {
        return;
    }
    let mut all = SECRETS.write().expect("secrets lock");
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_owned());
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the secret parts of `url`: user name, password, key-like path segments and the
/// query's values (each also percent-decoded, as error text may show either form).
pub fn register_url(url: &str) {
    for part in secret_parts(url) {
        register(&part);
    }
}

/// The parts of `url` that [`register_url`] treats as secret.
pub fn secret_parts(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    let mut push = |s: &str| {
        if s.is_empty() {
            return;
        }
        parts.push(s.to_owned());
        if let Ok(d) = percent_decode(s) {
            if d != s {
                parts.push(d);
            }
        }
    };
    push(u.username());
    if let Some(p) = u.password() {
        push(p);
    }
    // The user info as URLs show it, so that a short password is caught with its user name.
    if !u.username().is_empty() {
        let info = match u.password() {
            Some(p) => format!("{}:{p}@", u.username()),
            None => format!("{}@", u.username()),
        };
        push(&info);
    }
    for seg in u.path_segments().into_iter().flatten() {
        if looks_like_key(seg) {
            push(seg);
        }
    }
    if let Some(q) = u.query() {
        for pair in q.split('&') {
            if let Some((_, v)) = pair.split_once('=') {
                push(v);
            }
        }
    }
    parts
}

fn looks_like_key(seg: &str) -> bool {
    seg.len() >= MIN_PATH_KEY
        && seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && seg.chars().any(|c| c.is_ascii_digit())
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// `text` with every registered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().expect("secrets lock");
    if !all.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_url_secret_is_found_and_scrubbed() {
        let urls = [
            "https://mainnet.example.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
            "https://rpc.example.org/?apikey=Zq81kLm2Xv&chain=1",
            "http://amuser:Am-pass-77@alertmanager:9093",
            "http://KEYASUSER123456@safe.example:8000/api",
        ];
        for u in urls {
            register_url(u);
        }
        assert_eq!(
            secret_parts(urls[0]),
            vec!["9aa3d95b3bc440fa88ea12eaa4456161".to_string()]
        );
        register_url("http://op:pw@am.example:9093");
        assert!(!scrub("posting to http://op:pw@am.example:9093 failed").contains("pw@"));
        let text = format!(
            "error sending request for url ({}): connection refused; also {} and {} and {}",
            urls[0], urls[1], urls[2], urls[3]
        );
        let clean = scrub(&text);
        for s in [
            "9aa3d95b3bc440fa88ea12eaa4456161",
            "Zq81kLm2Xv",
            "amuser",
            "Am-pass-77",
            "KEYASUSER123456",
        ] {
            assert!(!clean.contains(s), "{s} in {clean}");
        }
        // The rest of the text, and short or ordinary path parts, stay.
        assert!(
            clean.contains("mainnet.example.io/v3/***") && clean.contains("chain=1"),
            "{clean}"
        );
        assert!(clean.contains("safe.example:8000/api"), "{clean}");
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
    }
}

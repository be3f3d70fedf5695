//! An error and its causes on one line, `outer: cause: root`, for the places that show an error
//! without `anyhow` (log fields, `/health` reasons, stored error text). Each error prints only its
//! own message and keeps its cause as `#[source]`, so nothing is printed twice.

use std::error::Error;

/// `e` followed by each of its sources, separated by `: `.
pub fn report<E: Error + ?Sized>(e: &E) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // A wrapper that still quotes its cause is not repeated.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("alertmanager http://am")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once() {
        let e = Outer {
            source: std::io::Error::other("connection refused"),
        };
        assert_eq!(report(&e), "alertmanager http://am: connection refused");
        assert_eq!(report(&std::io::Error::other("alone")), "alone");
    }
}

//! Text from the database or a peer, printed on an operator's terminal: control characters (a
//! stored alert summary can carry terminal escape sequences that recolour, retitle or clear the
//! screen) are shown escaped, `\u{1b}` instead of ESC. Newlines and tabs of our own layout stay.

use std::borrow::Cow;

/// `s` with every control character but newline and tab escaped, and the configured secrets
/// hidden (`tripwire_config::secrets::scrub`).
pub fn printable(s: &str) -> Cow<'_, str> {
    let s = match tripwire_config::secrets::scrub(s) {
        Cow::Borrowed(b) => b,
        Cow::Owned(o) => return Cow::Owned(escape(&o).into_owned()),
    };
    escape(s)
}

fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `println!` for lines that hold stored text: formats, then prints [`printable`].
#[macro_export]
macro_rules! println_escaped {
    ($($arg:tt)*) => {
        println!("{}", $crate::text::printable(&format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            printable("drain \u{1b}[2J\u{1b}]0;owned\u{7}!"),
            "drain \\u{1b}[2J\\u{1b}]0;owned\\u{7}!"
        );
        assert_eq!(printable("\r\u{8}\u{9b}"), "\\r\\u{8}\\u{9b}");
    }
}

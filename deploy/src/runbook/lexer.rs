//! The shell lexer behind [`super::commands`]: shell text into words (quotes, escapes and line
//! continuations resolved as a POSIX shell would, `$(...)` kept in the word with its body noted)
//! and separators (newline, `;`, `&`, `&&`, `||`, pipes); redirections are dropped with their
//! targets. What a runbook command should not need (heredocs, subshells, groups, backticks) is an
//! error naming the line, so nothing hides from the checks.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// A word, unquoted, with its line, whether it was a plain `NAME=value` assignment, and the
    /// `$(...)` bodies in it (or in a redirection just before it).
    Word {
        text: String,
        line: usize,
        assignment: bool,
        inner: Vec<Substitution>,
    },
    /// Ends a simple command: newline, `;`, `&`, `&&`, `||`; `true` for a pipe (`|`, `|&`),
    /// which also joins it to the next one.
    Separator(bool),
}

/// The text of a `$(...)` and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Substitution {
    pub(super) text: String,
    pub(super) line: usize,
}

/// A cursor over one shell block's text, counting markdown lines for the messages.
pub(super) struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    file: &'a str,
    substitutions: Vec<Substitution>,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &str, first_line: usize, file: &'a str) -> Lexer<'a> {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            line: first_line,
            file,
            substitutions: Vec::new(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, line: usize, what: &str) -> anyhow::Error {
        anyhow::anyhow!("{}:{line}: {what}", self.file)
    }

    pub(super) fn tokens(&mut self) -> anyhow::Result<Vec<Token>> {
        let mut out = Vec::new();
        // Set after a redirection operator: the next word is its target, not an argument.
        let mut redirect_target = false;
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                }
                '\\' if self.peek(1) == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                '\n' | ';' => {
                    if redirect_target {
                        return Err(self.error(self.line, "redirection without a target"));
                    }
                    self.bump();
                    out.push(Token::Separator(false));
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '|' | '&' => {
                    let line = self.line;
                    self.bump();
                    if c == '&' && self.peek(0) == Some('>') {
                        // `&>file`: both streams to a file.
                        self.bump();
                        if self.peek(0) == Some('>') {
                            self.bump();
                        }
                        redirect_target = true;
                        continue;
                    }
                    // `&&`, `||`, and `|&` (a pipe of both streams).
                    let doubled = self.peek(0) == Some(c);
                    if doubled || c == '|' && self.peek(0) == Some('&') {
                        self.bump();
                    }
                    if redirect_target {
                        return Err(self.error(line, "redirection without a target"));
                    }
                    out.push(Token::Separator(c == '|' && !doubled));
                }
                '>' | '<' if self.placeholder_len().is_none() => {
                    let line = self.line;
                    self.redirection(line)?;
                    redirect_target = !self.duplicated_fd();
                }
                '(' | ')' | '`' | '{' | '}'
                    if c != '{' && c != '}' || self.peek(1).is_none_or(|n| n.is_whitespace()) =>
                {
                    return Err(self.error(
                        self.line,
                        &format!("`{c}` (subshell, group or backtick) is not supported in a runbook command; use $(...) or separate lines"),
                    ));
                }
                _ => {
                    let line = self.line;
                    let (text, quoted, assignment) = self.word()?;
                    // `2>file`, `2>&1`: a file-descriptor number glued to a redirection.
                    if !quoted
                        && text.chars().all(|c| c.is_ascii_digit())
                        && matches!(self.peek(0), Some('>' | '<'))
                    {
                        self.redirection(line)?;
                        redirect_target = !self.duplicated_fd();
                        continue;
                    }
                    if redirect_target {
                        // Its substitutions (if any) go with the next word.
                        redirect_target = false;
                        continue;
                    }
                    out.push(Token::Word {
                        text,
                        line,
                        assignment,
                        inner: std::mem::take(&mut self.substitutions),
                    });
                }
            }
        }
        if redirect_target {
            return Err(self.error(self.line, "redirection without a target"));
        }
        if !self.substitutions.is_empty() {
            let line = self.substitutions[0].line;
            out.push(Token::Separator(false));
            out.push(Token::Word {
                text: String::new(),
                line,
                assignment: true,
                inner: std::mem::take(&mut self.substitutions),
            });
        }
        Ok(out)
    }

    /// Length of a placeholder such as `<safe-block>` at the current position: a word for the
    /// reader to fill in, not a redirection.
    fn placeholder_len(&self) -> Option<usize> {
        if self.peek(0) != Some('<') || !self.peek(1).is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let mut n = 2;
        loop {
            match self.peek(n)? {
                '>' => return Some(n + 1),
                c if c.is_ascii_alphanumeric() || "_-.:".contains(c) => n += 1,
                _ => return None,
            }
        }
    }

    /// Consumes `>`, `>>`, `<`, `>&`, `<&`; refuses heredocs.
    fn redirection(&mut self, line: usize) -> anyhow::Result<()> {
        let c = self.bump().expect("called on > or <");
        if c == '<' && self.peek(0) == Some('<') {
            return Err(self.error(
                line,
                "heredocs (<<) are not supported in a runbook command; use -c or a file",
            ));
        }
        if c == '>' && matches!(self.peek(0), Some('>' | '|')) {
            self.bump();
        }
        if self.peek(0) == Some('&') {
            self.bump();
        }
        Ok(())
    }

    /// After `>&` or `<&`: a file-descriptor number (`2>&1`) is the whole target.
    fn duplicated_fd(&mut self) -> bool {
        if self.pos >= 1 && self.chars[self.pos - 1] == '&' {
            let mut consumed = false;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit() || c == '-') {
                self.bump();
                consumed = true;
            }
            return consumed;
        }
        false
    }

    /// One word: (text without quotes, whether any part was quoted, whether it is `NAME=...`).
    fn word(&mut self) -> anyhow::Result<(String, bool, bool)> {
        let mut text = String::new();
        let mut quoted = false;
        let mut assignment = false;
        let mut name_ok = true;
        while let Some(c) = self.peek(0) {
            if let Some(n) = self.placeholder_len() {
                for _ in 0..n {
                    text.extend(self.bump());
                }
                name_ok = false;
                continue;
            }
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '|' | '&' | '>' | '<' => break,
                '(' | ')' | '`' => {
                    return Err(self.error(
                        self.line,
                        &format!("`{c}` inside a word is not supported in a runbook command"),
                    ))
                }
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') => {}
                        Some(e) => {
                            text.push(e);
                            quoted = true;
                        }
                        None => text.push('\\'),
                    }
                    name_ok = false;
                }
                '\'' => {
                    let start = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(ch) => text.push(ch),
                            None => return Err(self.error(start, "unterminated single quote")),
                        }
                    }
                    quoted = true;
                    name_ok = false;
                }
                '"' => {
                    let start = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('"') => break,
                            Some('\\') => match self.peek(0) {
                                Some('\n') => {
                                    self.bump();
                                }
                                Some(e @ ('"' | '\\' | '$' | '`')) => {
                                    self.bump();
                                    text.push(e);
                                }
                                _ => text.push('\\'),
                            },
                            Some('$') if self.peek(0) == Some('(') => {
                                text.push('$');
                                self.substitution(&mut text)?;
                            }
                            Some('`') => {
                                return Err(self.error(
                                    self.line,
                                    "backticks are not supported in a runbook command; use $(...)",
                                ))
                            }
                            Some(ch) => text.push(ch),
                            None => return Err(self.error(start, "unterminated double quote")),
                        }
                    }
                    quoted = true;
                    name_ok = false;
                }
                '$' if self.peek(1) == Some('(') => {
                    self.bump();
                    text.push('$');
                    self.substitution(&mut text)?;
                    name_ok = false;
                }
                '=' if name_ok && !assignment && !text.is_empty() => {
                    self.bump();
                    text.push('=');
                    assignment = true;
                }
                _ => {
                    self.bump();
                    if !(assignment || c.is_ascii_alphanumeric() || c == '_')
                        || text.is_empty() && c.is_ascii_digit()
                    {
                        name_ok = false;
                    }
                    text.push(c);
                }
            }
        }
        Ok((text, quoted, assignment))
    }

    /// At the `(` of `$(`: appends `(...)` to `text` and records the body's commands.
    fn substitution(&mut self, text: &mut String) -> anyhow::Result<()> {
        let start = self.line;
        self.bump();
        text.push('(');
        let mut depth = 1;
        let mut body = String::new();
        let mut quote: Option<char> = None;
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(start, "unterminated $("));
            };
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            body.push(c);
        }
        text.push_str(&body);
        text.push(')');
        self.substitutions.push(Substitution {
            text: body,
            line: start,
        });
        Ok(())
    }
}

//! The commands of a runbook: the shell lines of its ```sh, ```bash and ```console blocks, split
//! into programs and arguments the way a POSIX shell would, so tests can check every flag against
//! the program's `--help` and run the commands in drills.
//!
//! A runbook is written for the docker-compose deployment, so `docker compose exec [-T] <svc>` and
//! `docker compose run --rm <svc>` are stripped: what matters is the program inside the container.
//! Environment assignments in front of a program (`FOO=bar cmd`) are stripped too. Pipelines,
//! `&&`, `||`, `;` and `&` separate commands; redirections are dropped; a `$(...)` substitution is
//! kept verbatim in its word and its inner commands are listed as well (they run too). Placeholders
//! such as `<id>` are ordinary arguments. What the shell would do but a runbook should not need
//! (heredocs, subshells, backticks) is an error naming the file and line, so a runbook cannot
//! hide a command from the checks.
//!
//! [`commands`] lists them all; [`pipelines_in`] keeps the commands a pipe joins together (a
//! drill runs `curl ... | grep ...` as one); [`shell_commands`] leaves the compose prefix in place
//! and [`compose_services`] names the services it targets.

use anyhow::bail;

/// One simple command of a runbook, after the compose prefix and assignments are stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The runbook file, as given to [`commands`].
    pub file: String,
    /// 1-based line of the markdown where the command starts.
    pub line: usize,
    /// The program run (inside the container for `docker compose exec/run`).
    pub program: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
}

impl Command {
    /// `file:line`, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// Program and arguments as one list.
    pub fn words(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// The command line, re-quoted where needed, for messages.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes a word for display when the shell would need it.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+<>$".contains(c) || !c.is_ascii());
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Every command of the shell blocks of `markdown`, in order, with `docker compose exec/run`
/// prefixes stripped; `file` names it in messages.
pub fn commands(markdown: &str, file: &str) -> anyhow::Result<Vec<Command>> {
    Ok(pipelines_in(markdown, file)?
        .into_iter()
        .flatten()
        .collect())
}

/// The same commands grouped by pipeline: `curl ... | grep ...` is one group of two, in order.
pub fn pipelines_in(markdown: &str, file: &str) -> anyhow::Result<Vec<Vec<Command>>> {
    let mut out = Vec::new();
    for block in shell_blocks(markdown, file)? {
        for p in pipelines(&block.text, block.first_line, file)? {
            out.push(
                p.into_iter()
                    .map(|c| strip_command(c, file))
                    .collect::<anyhow::Result<_>>()?,
            );
        }
    }
    Ok(out)
}

/// Every command of the shell blocks of `markdown` as written (only leading assignments
/// stripped): `docker compose ...` stays `docker` with its arguments.
pub fn shell_commands(markdown: &str, file: &str) -> anyhow::Result<Vec<Command>> {
    let mut out = Vec::new();
    for block in shell_blocks(markdown, file)? {
        out.extend(
            pipelines(&block.text, block.first_line, file)?
                .into_iter()
                .flatten(),
        );
    }
    Ok(out)
}

fn strip_command(c: Command, file: &str) -> anyhow::Result<Command> {
    let mut words = strip_compose(c.words(), file, c.line)?.into_iter();
    let program = words.next().expect("strip_compose never returns empty");
    Ok(Command {
        program,
        args: words.collect(),
        ..c
    })
}

/// The pipelines of shell text whose first line is markdown line `line`.
fn pipelines(text: &str, line: usize, file: &str) -> anyhow::Result<Vec<Vec<Command>>> {
    let tokens = Lexer::new(text, line, file).tokens()?;
    pipelines_of(tokens, file)
}

/// A fenced shell block: its text with prompts removed and output lines blanked (so line numbers
/// stay those of the markdown), and the markdown line of its first text line.
struct Block {
    text: String,
    first_line: usize,
}

fn shell_blocks(markdown: &str, file: &str) -> anyhow::Result<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let fence_char = match trimmed.chars().next() {
            Some(c @ ('`' | '~')) => c,
            _ => continue,
        };
        let fence_len = trimmed.chars().take_while(|&c| c == fence_char).count();
        if fence_len < 3 {
            continue;
        }
        let info = trimmed[fence_len..].trim();
        let lang = info
            .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut body: Vec<&str> = Vec::new();
        let mut closed = false;
        for (_, l) in lines.by_ref() {
            let t = l.trim_start();
            if t.starts_with(&fence_char.to_string().repeat(fence_len))
                && t.trim_end().chars().all(|c| c == fence_char)
            {
                closed = true;
                break;
            }
            // Content of a fence indented in a list item is indented as much as the fence.
            let strip = l.len() - l.trim_start().len();
            body.push(&l[strip.min(indent)..]);
        }
        if !closed {
            bail!("{file}:{}: code block is never closed", i + 1);
        }
        if !matches!(lang.as_str(), "sh" | "bash" | "console") {
            continue;
        }
        let console = lang == "console";
        let mut text = String::new();
        let mut continuing = false;
        for l in body {
            let mut keep = l;
            if !continuing {
                match l
                    .strip_prefix("$ ")
                    .or(if l == "$" { Some("") } else { None })
                {
                    Some(rest) => keep = rest,
                    // In a console block, what follows no prompt is the command's output.
                    None if console => keep = "",
                    None => {}
                }
            }
            continuing = !keep.is_empty() && keep.ends_with('\\') && !keep.ends_with("\\\\");
            text.push_str(keep);
            text.push('\n');
        }
        blocks.push(Block {
            text,
            first_line: i + 2,
        });
    }
    Ok(blocks)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
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
struct Substitution {
    text: String,
    line: usize,
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    file: &'a str,
    substitutions: Vec<Substitution>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, first_line: usize, file: &'a str) -> Lexer<'a> {
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

    fn tokens(&mut self) -> anyhow::Result<Vec<Token>> {
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

/// Splits tokens into pipelines of simple commands, leading assignments stripped. The commands of
/// a substitution come as pipelines of their own before the pipeline that holds them.
fn pipelines_of(tokens: Vec<Token>, file: &str) -> anyhow::Result<Vec<Vec<Command>>> {
    let mut out = Vec::new();
    let mut inner_first: Vec<Vec<Command>> = Vec::new();
    let mut pipeline: Vec<Command> = Vec::new();
    let mut current: Vec<(String, usize, bool)> = Vec::new();
    for t in tokens
        .into_iter()
        .chain(std::iter::once(Token::Separator(false)))
    {
        match t {
            Token::Word {
                text,
                line,
                assignment,
                inner,
            } => {
                for s in inner {
                    inner_first.extend(pipelines(&s.text, s.line, file)?);
                }
                current.push((text, line, assignment));
            }
            Token::Separator(pipe) => {
                let words = std::mem::take(&mut current);
                let line = words.first().map(|w| w.1);
                let mut rest = words.into_iter().skip_while(|w| w.2).map(|w| w.0);
                // Only assignments (`SIG=$(...)`) run no program of their own.
                if let (Some(line), Some(program)) = (line, rest.next()) {
                    pipeline.push(Command {
                        file: file.to_owned(),
                        line,
                        program,
                        args: rest.collect(),
                    });
                }
                if !pipe {
                    out.append(&mut inner_first);
                    if !pipeline.is_empty() {
                        out.push(std::mem::take(&mut pipeline));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Options of `docker compose exec` / `run` that take a value.
const COMPOSE_VALUE_OPTIONS: &[&str] = &[
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--index",
    "-v",
    "--volume",
    "--name",
    "--entrypoint",
    "-p",
    "--publish",
    "-l",
    "--label",
    "--env-file",
];

/// Options of `docker compose exec` / `run` without a value.
const COMPOSE_FLAGS: &[&str] = &[
    "-T",
    "--no-TTY",
    "-d",
    "--detach",
    "--rm",
    "-i",
    "--interactive",
    "-t",
    "--tty",
    "-it",
    "--privileged",
    "--no-deps",
    "--service-ports",
    "-P",
    "--build",
    "--quiet-pull",
    "--remove-orphans",
    "--use-aliases",
];

/// Options of `docker compose` itself that take a value.
const COMPOSE_GLOBAL_VALUE_OPTIONS: &[&str] = &[
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--profile",
    "--env-file",
    "--project-directory",
    "--ansi",
    "--progress",
];

/// `docker compose [global options] exec|run [options] <service> <program> <args...>` ->
/// `<program> <args...>`; anything else unchanged.
fn strip_compose(words: Vec<String>, file: &str, line: usize) -> anyhow::Result<Vec<String>> {
    let compose_at = match words.first().map(String::as_str) {
        Some("docker") if words.get(1).map(String::as_str) == Some("compose") => 2,
        Some("docker-compose") => 1,
        _ => return Ok(words),
    };
    let mut i = compose_at;
    while let Some(w) = words.get(i) {
        if let Some((name, _)) = w.split_once('=') {
            if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&name) {
                i += 1;
                continue;
            }
        }
        if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&w.as_str()) {
            i += 2;
        } else {
            break;
        }
    }
    let action = words.get(i).map(String::as_str);
    if !matches!(action, Some("exec" | "run")) {
        return Ok(words);
    }
    let action = action.unwrap_or_default().to_owned();
    i += 1;
    while let Some(w) = words.get(i) {
        if !w.starts_with('-') {
            break;
        }
        let name = w.split_once('=').map_or(w.as_str(), |(n, _)| n);
        if COMPOSE_VALUE_OPTIONS.contains(&name) {
            i += if w.contains('=') { 1 } else { 2 };
        } else if COMPOSE_FLAGS.contains(&w.as_str()) {
            i += 1;
        } else {
            bail!("{file}:{line}: unknown `docker compose {action}` option `{w}`");
        }
    }
    let service = words.get(i);
    if service.is_none() || words.len() <= i + 1 {
        bail!(
            "{file}:{line}: `docker compose {action}` needs a service and the program to run in it"
        );
    }
    Ok(words[i + 1..].to_vec())
}

/// Options of `docker compose logs/ps/up/...` that take a value.
const COMPOSE_OTHER_VALUE_OPTIONS: &[&str] = &[
    "--since",
    "--until",
    "--tail",
    "-n",
    "--format",
    "--filter",
    "--status",
    "--scale",
    "-t",
    "--timeout",
    "--wait-timeout",
    "--pull",
];

/// The services a `docker compose` command (as [`shell_commands`] lists it) names: the one of
/// `exec`/`run`, or every one of `stop`, `start`, `restart`, `up`, `logs`, `ps`...; empty for
/// anything that is not `docker compose`.
pub fn compose_services(cmd: &Command) -> anyhow::Result<Vec<String>> {
    let words = cmd.words();
    let mut i = match words.first().map(String::as_str) {
        Some("docker") if words.get(1).map(String::as_str) == Some("compose") => 2,
        Some("docker-compose") => 1,
        _ => return Ok(Vec::new()),
    };
    while let Some(w) = words.get(i) {
        if w.split_once('=')
            .is_some_and(|(n, _)| COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&n))
        {
            i += 1;
        } else if COMPOSE_GLOBAL_VALUE_OPTIONS.contains(&w.as_str()) {
            i += 2;
        } else {
            break;
        }
    }
    let Some(action) = words.get(i).cloned() else {
        bail!("{}: `docker compose` without a command", cmd.location());
    };
    if action == "exec" || action == "run" {
        let stripped = strip_compose(words.clone(), &cmd.file, cmd.line)?;
        // The service is the word right before the program the prefix leaves.
        let service_at = words.len() - stripped.len() - 1;
        return Ok(vec![words[service_at].clone()]);
    }
    let mut services = Vec::new();
    i += 1;
    while let Some(w) = words.get(i) {
        if w.starts_with('-') {
            let name = w.split_once('=').map_or(w.as_str(), |(n, _)| n);
            i += if COMPOSE_OTHER_VALUE_OPTIONS.contains(&name) && !w.contains('=') {
                2
            } else {
                1
            };
            continue;
        }
        services.push(w.clone());
        i += 1;
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(md: &str) -> Vec<(usize, String, Vec<String>)> {
        commands(md, "t.md")
            .unwrap_or_else(|e| panic!("{e:#}"))
            .into_iter()
            .map(|c| (c.line, c.program, c.args))
            .collect()
    }

    fn one(md: &str) -> (usize, String, Vec<String>) {
        let mut all = parse(md);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_shell_blocks_count() {
        let md = "# T\n\n```toml\nx = 1\n```\n\n```\nnot-a-command\n```\n\n```sh\nls -l\n```\n\n```bash\necho hi\n```\n\n```yaml\na: b\n```\n";
        let all = parse(md);
        assert_eq!(
            all,
            vec![
                (12, "ls".into(), v(&["-l"])),
                (16, "echo".into(), v(&["hi"]))
            ]
        );
    }

    #[test]
    fn continuations_join_and_keep_the_first_line() {
        let md = "text\n```sh\ncast send 0xabc 'f(uint256)' \\\n    42 \\\n    --rpc-url http://x\nnext arg\n```\n";
        let all = parse(md);
        assert_eq!(
            all,
            vec![
                (
                    3,
                    "cast".into(),
                    v(&["send", "0xabc", "f(uint256)", "42", "--rpc-url", "http://x"])
                ),
                (6, "next".into(), v(&["arg"])),
            ]
        );
    }

    #[test]
    fn quotes_escapes_and_multiline_strings() {
        let (_, p, args) = one(
            "```sh\npsql -c \"SELECT * FROM t WHERE a = 'x y'\" -v 'ON_ERROR_STOP=1' a\\ b \"q\\\"d\" '$HOME' \"$X\"\n```\n",
        );
        assert_eq!(p, "psql");
        assert_eq!(
            args,
            v(&[
                "-c",
                "SELECT * FROM t WHERE a = 'x y'",
                "-v",
                "ON_ERROR_STOP=1",
                "a b",
                "q\"d",
                "$HOME",
                "$X"
            ])
        );
        let all = parse("```sh\npsql -c \"SELECT 1\n  FROM t\"\nls\n```\n");
        assert_eq!(all[0].2, v(&["-c", "SELECT 1\n  FROM t"]));
        assert_eq!(all[1].0, 4, "the line after a two-line string");
    }

    #[test]
    fn comments_and_prompts_are_stripped() {
        let md = "```sh\n# a comment\n$ tripwire-indexer status # trailing\necho a#b\n```\n";
        assert_eq!(
            parse(md),
            vec![
                (3, "tripwire-indexer".into(), v(&["status"])),
                (4, "echo".into(), v(&["a#b"]))
            ]
        );
        // In a console block, lines without a prompt are output.
        let md =
            "```console\n$ amtool silence query \\\n    -q\nID  Matchers\nabc foo=bar\n$ ls\n```\n";
        assert_eq!(
            parse(md),
            vec![
                (2, "amtool".into(), v(&["silence", "query", "-q"])),
                (6, "ls".into(), v(&[]))
            ]
        );
    }

    #[test]
    fn pipelines_lists_and_redirections_split() {
        let md = "```sh\ncurl -s http://x/metrics | grep -E '^tripwire_(a|b)' && echo ok; ls || true &\npg_dump -Fc db > out.dump 2>&1\npg_restore -d db < in.dump 2>/dev/null\nfoo &> log\n```\n";
        assert_eq!(
            parse(md),
            vec![
                (2, "curl".into(), v(&["-s", "http://x/metrics"])),
                (2, "grep".into(), v(&["-E", "^tripwire_(a|b)"])),
                (2, "echo".into(), v(&["ok"])),
                (2, "ls".into(), v(&[])),
                (2, "true".into(), v(&[])),
                (3, "pg_dump".into(), v(&["-Fc", "db"])),
                (4, "pg_restore".into(), v(&["-d", "db"])),
                (5, "foo".into(), v(&[])),
            ]
        );
    }

    #[test]
    fn compose_prefixes_and_assignments_are_stripped() {
        let md = "```sh\ndocker compose exec indexer-ingest tripwire-indexer status\ndocker compose exec -T postgres pg_dump -U tripwire -Fc tripwire\ndocker compose run --rm cli tripwire-replay --chain main --from-block <n>\ndocker compose run --rm -e RUST_LOG=debug cli tripwire-replay --help\ndocker compose --profile tools run --rm cli tripwire-indexer check-config\nOWNER_KEY=0x01 FOO=\"a b\" cast wallet sign --no-hash <hash>\ndocker compose stop indexer-ingest\ndocker compose exec -u=0 postgres psql\n```\n";
        let all = parse(md);
        assert_eq!(all[0], (2, "tripwire-indexer".into(), v(&["status"])));
        assert_eq!(
            all[1],
            (
                3,
                "pg_dump".into(),
                v(&["-U", "tripwire", "-Fc", "tripwire"])
            )
        );
        assert_eq!(
            all[2],
            (
                4,
                "tripwire-replay".into(),
                v(&["--chain", "main", "--from-block", "<n>"])
            )
        );
        assert_eq!(all[3], (5, "tripwire-replay".into(), v(&["--help"])));
        assert_eq!(all[4], (6, "tripwire-indexer".into(), v(&["check-config"])));
        assert_eq!(
            all[5],
            (
                7,
                "cast".into(),
                v(&["wallet", "sign", "--no-hash", "<hash>"])
            )
        );
        assert_eq!(
            all[6],
            (
                8,
                "docker".into(),
                v(&["compose", "stop", "indexer-ingest"])
            )
        );
        assert_eq!(all[7], (9, "psql".into(), v(&[])));
        // Not an assignment: `=` after the program, or in a quoted name.
        let (_, p, args) =
            one("```sh\namtool silence add alertname=Foo 'a=b' --duration=2h\n```\n");
        assert_eq!(p, "amtool");
        assert_eq!(
            args,
            v(&["silence", "add", "alertname=Foo", "a=b", "--duration=2h"])
        );
    }

    #[test]
    fn substitutions_stay_in_the_word_and_their_commands_are_listed() {
        let md = "```sh\nSIG=$(cast wallet sign --no-hash <hash> --private-key \"$OWNER_KEY\")\namtool silence expire $(amtool silence query -q detector=x)\necho \"sig: $(cast wallet address --private-key $K)\"\n```\n";
        let all = parse(md);
        assert_eq!(
            all,
            vec![
                (
                    2,
                    "cast".into(),
                    v(&[
                        "wallet",
                        "sign",
                        "--no-hash",
                        "<hash>",
                        "--private-key",
                        "$OWNER_KEY"
                    ])
                ),
                (
                    3,
                    "amtool".into(),
                    v(&["silence", "query", "-q", "detector=x"])
                ),
                (
                    3,
                    "amtool".into(),
                    v(&["silence", "expire", "$(amtool silence query -q detector=x)"])
                ),
                (
                    4,
                    "cast".into(),
                    v(&["wallet", "address", "--private-key", "$K"])
                ),
                (
                    4,
                    "echo".into(),
                    v(&["sig: $(cast wallet address --private-key $K)"])
                ),
            ]
        );
    }

    #[test]
    fn indented_fences_in_lists() {
        let md = "1. Stop it:\n\n   ```sh\n   docker compose stop indexer-ingest\n   ```\n";
        assert_eq!(
            parse(md),
            vec![(
                4,
                "docker".into(),
                v(&["compose", "stop", "indexer-ingest"])
            )]
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        for (md, needle) in [
            (
                "```sh\nls\necho 'open\n```\n",
                "t.md:3: unterminated single quote",
            ),
            ("```sh\ncat <<EOF\nx\nEOF\n```\n", "t.md:2: heredocs"),
            ("```sh\n(cd x && ls)\n```\n", "t.md:2: `(`"),
            ("```sh\necho `date`\n```\n", "t.md:2: `"),
            (
                "```sh\n\ndocker compose exec --bogus svc ls\n```\n",
                "t.md:3: unknown `docker compose exec` option `--bogus`",
            ),
            (
                "```sh\ndocker compose run --rm cli\n```\n",
                "t.md:2: `docker compose run` needs",
            ),
            ("```sh\nls >\n```\n", "t.md:2: redirection without a target"),
            ("x\n```sh\nls\n", "t.md:2: code block is never closed"),
        ] {
            let e = format!("{:#}", commands(md, "t.md").unwrap_err());
            assert!(e.contains(needle), "{md:?}: {e}");
        }
    }

    #[test]
    fn pipelines_group_what_a_pipe_joins() {
        let md = "```sh\ndocker compose exec indexer-ingest curl -s http://x/metrics \\\n  | grep -E '^a' | head -n 3 && echo done\nls\n```\n";
        let groups: Vec<Vec<(usize, String)>> = pipelines_in(md, "t.md")
            .unwrap()
            .into_iter()
            .map(|p| p.into_iter().map(|c| (c.line, c.program)).collect())
            .collect();
        assert_eq!(
            groups,
            vec![
                vec![
                    (2, "curl".to_string()),
                    (3, "grep".to_string()),
                    (3, "head".to_string())
                ],
                vec![(3, "echo".to_string())],
                vec![(4, "ls".to_string())],
            ]
        );
    }

    #[test]
    fn compose_services_are_named() {
        let md = "```sh\ndocker compose exec -T postgres pg_dump -U x\ndocker compose run --rm -e A=b cli tripwire-replay --help\ndocker compose logs --since 30m --tail 10 indexer-ingest indexer-sink\ndocker compose --profile tools up -d watchdog\ndocker compose ps\nls -l\n```\n";
        let all: Vec<Vec<String>> = shell_commands(md, "t.md")
            .unwrap()
            .iter()
            .map(|c| compose_services(c).unwrap())
            .collect();
        assert_eq!(
            all,
            vec![
                v(&["postgres"]),
                v(&["cli"]),
                v(&["indexer-ingest", "indexer-sink"]),
                v(&["watchdog"]),
                v(&[]),
                v(&[]),
            ]
        );
    }

    #[test]
    fn display_requotes() {
        let c = &commands(
            "```sh\ncast call 0x1 'paused()(bool)' --rpc-url $RPC\n```\n",
            "t.md",
        )
        .unwrap()[0];
        assert_eq!(c.display(), "cast call 0x1 'paused()(bool)' --rpc-url $RPC");
        assert_eq!(c.location(), "t.md:2");
    }
}

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
//! and [`compose_services`] names the services it targets. The words come from `lexer`; the
//! compose prefix is understood in `compose_prefix`.

mod compose_prefix;
mod lexer;
#[cfg(test)]
mod tests;

use anyhow::bail;

pub use compose_prefix::compose_services;
use compose_prefix::strip_compose;
use lexer::{Lexer, Token};

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

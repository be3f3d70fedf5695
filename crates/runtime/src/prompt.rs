//! Prompts before an operator's change that moves stored positions: typed confirmation on a
//! terminal, `--yes` for scripts, never a silent default.

/// Why an operator's change did not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// Scripts must say `--yes` themselves: nobody is there to answer.
    #[error("{0} asks for confirmation: pass --yes when not on a terminal")]
    NotATerminal(String),
    /// The operator typed something other than the expected answer.
    #[error("not confirmed: nothing changed")]
    Refused,
    /// The terminal could not be read or written.
    #[error("reading the answer")]
    Io(#[from] std::io::Error),
}

/// Asks on the terminal to type `expected` before a change that moves stored positions;
/// `yes` answers for the operator.
pub fn confirm(yes: bool, command: &str, prompt: &str, expected: &str) -> Result<(), ConfirmError> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(ConfirmError::NotATerminal(command.to_string()));
    }
    eprint!("{prompt} Type {expected} to confirm: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != expected {
        return Err(ConfirmError::Refused);
    }
    Ok(())
}

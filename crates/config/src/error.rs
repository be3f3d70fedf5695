//! What can be wrong with a configuration file; every error names the file, the variable or the
//! field, and the value.

use std::path::PathBuf;

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist or cannot be read (permissions, I/O).
    #[error("cannot read config file {path}")]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// A `${...}` reference in the file is malformed, or names a variable that is unset and has
    /// no `:-default`.
    #[error("config: environment variable `{var}` {reason}")]
    Interpolation {
        /// The variable's name, or the reference as written when it is not a valid name.
        var: String,
        /// What is wrong with it (unterminated, invalid name, not set).
        reason: String,
    },
    /// The file, once interpolated, is not valid TOML or does not fit the config model (unknown
    /// key, wrong type).
    #[error("config {path}: {message}")]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// The parser's message, with the position in the file.
        message: String,
    },
    /// A value parsed but was refused by validation (out of range, contradicting another key,
    /// unknown chain or contract, unreadable ABI, ...).
    #[error("config: {field}: {message}")]
    Invalid {
        /// The key at fault, e.g. `sink.batch_records`.
        field: String,
        /// Why the value is refused.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

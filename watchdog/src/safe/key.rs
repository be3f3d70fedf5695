//! The proposer key: located by the config (a file or an environment variable), parsed, and
//! never shown (errors name where it came from, not what it holds).

use std::str::FromStr;
use std::sync::Arc;

use alloy::signers::{local::PrivateKeySigner, Signer};

use super::{config_err, SafeConfig, SafeError};

/// The proposer key: a signer that can be swapped for a KMS or hardware one.
pub type ProposalSigner = Arc<dyn Signer + Send + Sync>;

/// The proposer key's text as the config locates it.
pub(super) enum KeyText {
    /// Where it came from (for errors: never the key itself) and the text.
    Found { what: String, text: String },
    /// The variable is not set or the file not readable: the environment's fault, not the file's.
    Missing(SafeError),
}

/// Reads the key's text from the environment variable or file the config names; an error when
/// the config names neither or both.
pub(super) fn key_text(cfg: &SafeConfig) -> Result<KeyText, SafeError> {
    Ok(match (&cfg.proposer_key_env, &cfg.proposer_key_file) {
        (Some(env), None) => match std::env::var(env) {
            Ok(text) => KeyText::Found {
                what: format!("environment variable {env}"),
                text,
            },
            Err(_) => KeyText::Missing(config_err(
                "watchdog.safe.proposer_key_env",
                format!("{env} is not set"),
            )),
        },
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => KeyText::Found {
                what: format!("file {}", file.display()),
                text,
            },
            Err(e) => KeyText::Missing(config_err(
                "watchdog.safe.proposer_key_file",
                format!("{}: {e}", file.display()),
            )),
        },
        _ => {
            return Err(config_err(
                "watchdog.safe",
                "set exactly one of proposer_key_env and proposer_key_file",
            ))
        }
    })
}

pub(super) fn parse_key(what: &str, text: &str) -> Result<PrivateKeySigner, SafeError> {
    // Never printed anyway; registered so that no peer's echo of it is either.
    tripwire_config::secrets::register(text.trim());
    tripwire_config::secrets::register(text.trim().trim_start_matches("0x"));
    // The key's text is never part of an error: only where it came from.
    PrivateKeySigner::from_str(text.trim()).map_err(|_| {
        config_err(
            "watchdog.safe",
            format!("the proposer key in {what} is not a hex private key"),
        )
    })
}

/// Reads the proposer's local key from the environment variable or file the config names.
pub fn load_local_signer(cfg: &SafeConfig) -> Result<ProposalSigner, SafeError> {
    match key_text(cfg)? {
        KeyText::Found { what, text } => Ok(Arc::new(parse_key(&what, &text)?)),
        KeyText::Missing(e) => Err(e),
    }
}

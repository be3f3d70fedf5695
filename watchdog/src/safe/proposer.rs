//! The [`Proposer`]: start-up checks of the Safe, its targets and the key, then per incident the
//! pause transaction at the Safe's nonce, signed, recorded once and submitted.

use std::str::FromStr;

use alloy::primitives::{keccak256, Address, U256};
use sqlx::PgPool;
use tripwire_config::ChainConfig;

use super::chain::{has_selector, ChainError, ChainReader};
use super::service::{ServiceClient, ServiceError};
use super::store::{self, Proposal};
use super::tx::{self, Call, SafeTx};
use super::{
    config_err, key_text, load_local_signer, parse_key, KeyText, ProposalSigner, SafeConfig,
    SafeError,
};
use crate::config::WatchdogSettings;

/// `[watchdog.safe]` checked as far as it can be without the chain, for `check-config`: the
/// checks `run` makes before it connects (the chain, the targets and their calls, the key's
/// source, the service client), by the same code. What only `run`'s environment holds (the
/// proposer key, the service's API key variable) is checked when present here; when absent it is
/// returned as a note rather than an error, as `check-config` often runs where those secrets are
/// not mounted (the `cli` container of the compose file).
pub fn check_offline(ws: &WatchdogSettings) -> Result<Vec<String>, SafeError> {
    let Some(cfg) = &ws.watchdog().safe else {
        return Ok(Vec::new());
    };
    plan(cfg, ws)?;
    let mut notes = Vec::new();
    match key_text(cfg)? {
        KeyText::Found { what, text } => {
            parse_key(&what, &text)?;
        }
        KeyText::Missing(e) => notes.push(format!("not checked here: {e}")),
    }
    if let Some(s) = &cfg.service {
        match ServiceClient::new(s) {
            Ok(_) => {}
            Err(e @ ServiceError::MissingKey { .. }) => {
                notes.push(format!("not checked here: {e}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(notes)
}

/// The Safe's chain and the pause calls: what the file alone decides.
fn plan<'a>(
    cfg: &SafeConfig,
    ws: &'a WatchdogSettings,
) -> Result<(&'a ChainConfig, Vec<Call>), SafeError> {
    let chain = ws.settings().chain(&cfg.chain).ok_or_else(|| {
        config_err(
            "watchdog.safe.chain",
            format!("`{}` is not a configured chain", cfg.chain),
        )
    })?;
    Ok((chain, targets(cfg, ws)?))
}

/// Prepares, signs, records and submits pause proposals for one Safe.
pub struct Proposer {
    cfg: SafeConfig,
    chain_id: u64,
    chain_name: String,
    reader: ChainReader,
    signer: ProposalSigner,
    service: Option<ServiceClient>,
    calls: Vec<Call>,
    pool: PgPool,
}

impl Proposer {
    /// Builds the proposer from `[watchdog.safe]` (none without it) and runs the start-up checks.
    pub async fn connect(
        ws: &WatchdogSettings,
        pool: PgPool,
        signer: Option<ProposalSigner>,
    ) -> Result<Option<Proposer>, SafeError> {
        let Some(cfg) = ws.watchdog().safe.clone() else {
            return Ok(None);
        };
        let (chain, calls) = plan(&cfg, ws)?;
        let signer = match signer {
            Some(s) => s,
            None => load_local_signer(&cfg)?,
        };
        let service = cfg.service.as_ref().map(ServiceClient::new).transpose()?;
        let reader = ChainReader::new(chain)?;
        let p = Proposer {
            chain_id: chain.chain_id,
            chain_name: chain.name.clone(),
            cfg,
            reader,
            signer,
            service,
            calls,
            pool,
        };
        p.check().await?;
        Ok(Some(p))
    }

    pub fn min_severity(&self) -> tripwire_detect::Severity {
        self.cfg.min_severity
    }

    pub fn proposer(&self) -> Address {
        self.signer.address()
    }

    /// The start-up checks: a Safe at the address, the proposer an owner (or a delegate known to
    /// the service), every target with the pause function and callable by the Safe.
    async fn check(&self) -> Result<(), SafeError> {
        let safe = self.cfg.address;
        let on = &self.chain_name;
        if self.reader.code(safe).await?.is_empty() {
            return Err(config_err(
                "watchdog.safe.address",
                format!("{safe}: no contract at this address on chain {on}"),
            ));
        }
        let version = self.reader.safe_version(safe).await.map_err(|e| {
            config_err(
                "watchdog.safe.address",
                format!("{safe} is not a Safe (VERSION() failed: {e})"),
            )
        })?;
        let owners = self.reader.safe_owners(safe).await.map_err(|e| {
            config_err(
                "watchdog.safe.address",
                format!("{safe} is not a Safe (getOwners() failed: {e})"),
            )
        })?;
        let threshold = self.reader.safe_threshold(safe).await?;
        let me = self.signer.address();
        if !owners.contains(&me) {
            let delegate = match &self.service {
                Some(s) => s.is_delegate(safe, me).await?,
                None => false,
            };
            if !delegate {
                let list: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
                return Err(SafeError::Check(format!(
                    "the proposer {me} is not an owner of the Safe {safe} (owners: {}){}",
                    list.join(", "),
                    if self.service.is_some() {
                        " nor a delegate registered at the Safe Transaction Service"
                    } else {
                        "; a delegate needs [watchdog.safe.service]"
                    }
                )));
            }
        }
        let role = keccak256("PAUSER_ROLE");
        for (i, call) in self.calls.iter().enumerate() {
            let field = format!("watchdog.safe.targets[{i}]");
            let code = self.reader.code(call.to).await?;
            if code.is_empty() {
                return Err(config_err(
                    field,
                    format!("no contract at {} on chain {on}", call.to),
                ));
            }
            if !has_selector(&code, call.selector()) {
                return Err(config_err(
                    field,
                    format!(
                        "{} has no function {} (selector {} is not in its code)",
                        call.to,
                        call.function,
                        alloy::primitives::hex::encode_prefixed(call.selector())
                    ),
                ));
            }
            // A target without roles (Ownable, say) does not answer: only a `false` refuses.
            if let Ok(false) = self.reader.has_role(call.to, role, safe).await {
                return Err(config_err(
                    field,
                    format!(
                        "the Safe {safe} does not hold PAUSER_ROLE on {} (grant it: grantRole({role}, {safe}))",
                        call.to
                    ),
                ));
            }
            if let Err(ChainError::Reverted(reason)) =
                self.reader.call(call.to, &call.data, Some(safe)).await
            {
                let paused = matches!(self.reader.paused(call.to).await, Ok(true));
                if paused {
                    tracing::warn!(target = %call.to, "target is already paused");
                } else {
                    return Err(config_err(
                        field,
                        format!(
                            "{} called by the Safe {safe} on {} reverts ({reason}): does the Safe hold the right to pause it?",
                            call.function, call.to
                        ),
                    ));
                }
            }
        }
        if self.calls.len() > 1 && self.reader.code(self.cfg.multisend).await?.is_empty() {
            return Err(config_err(
                "watchdog.safe.multisend",
                format!(
                    "{}: no contract on chain {on} (several targets need MultiSendCallOnly)",
                    self.cfg.multisend
                ),
            ));
        }
        tracing::info!(
            safe = %safe,
            version,
            threshold = %threshold,
            proposer = %me,
            targets = self.calls.len(),
            service = self.service.is_some(),
            "Safe pause proposals ready"
        );
        Ok(())
    }

    /// The pause proposal for `source_key` (e.g. an incident): the stored one if it exists,
    /// otherwise built at the Safe's current nonce, checked against the Safe's own hash, signed,
    /// recorded, then submitted.
    pub async fn propose(&self, source_key: &str, summary: &str) -> Result<Proposal, SafeError> {
        if let Some(p) = store::by_source(&self.pool, source_key).await? {
            return Ok(p);
        }
        let safe = self.cfg.address;
        let nonce = self.reader.safe_nonce(safe).await?;
        let tx = tx::build(&self.calls, self.cfg.multisend, nonce);
        let hash = tx::safe_tx_hash(&tx, self.chain_id, safe);
        let theirs = self.reader.safe_tx_hash(safe, &tx).await?;
        if theirs != hash {
            return Err(SafeError::Check(format!(
                "the Safe computes {theirs} for this transaction, the watchdog {hash}: not signing"
            )));
        }
        let sig = self
            .signer
            .sign_hash(&hash)
            .await
            .map_err(|e| SafeError::Sign(e.to_string()))?;
        let sig_bytes = sig.as_bytes();
        let calls = serde_json::to_value(&self.calls).unwrap_or_default();
        let new = store::NewProposal {
            source_key,
            chain_id: self.chain_id,
            safe: safe.to_checksum(None),
            safe_tx_hash: hash.to_string(),
            nonce: nonce.to_string(),
            to_address: tx.to.to_checksum(None),
            value: tx.value.to_string(),
            data: tx.data.to_string(),
            operation: tx.operation,
            calls,
            proposer: self.signer.address().to_checksum(None),
            signature: alloy::primitives::hex::encode_prefixed(sig_bytes),
            state: if self.service.is_some() {
                "pending"
            } else {
                "recorded"
            },
            summary,
        };
        let (p, fresh) = store::insert(&self.pool, &new).await?;
        if fresh {
            tracing::warn!(
                proposal = p.id,
                safe_tx_hash = %p.safe_tx_hash,
                nonce = %p.nonce,
                source = source_key,
                "Safe pause proposal created: owners must sign and execute it"
            );
            if self.service.is_some() {
                return self.submit(p).await;
            }
        }
        Ok(p)
    }

    /// Submits a stored proposal to the service and records the outcome.
    async fn submit(&self, p: Proposal) -> Result<Proposal, SafeError> {
        let Some(service) = &self.service else {
            return Ok(p);
        };
        let tx = stored_tx(&p)?;
        let hash = p
            .safe_tx_hash
            .parse()
            .map_err(|e| SafeError::Check(format!("stored safeTxHash: {e}")))?;
        let sender: Address = p
            .proposer
            .parse()
            .map_err(|e| SafeError::Check(format!("stored proposer: {e}")))?;
        let sig = alloy::primitives::hex::decode(&p.signature)
            .map_err(|e| SafeError::Check(format!("stored signature: {e}")))?;
        let (state, error) = match service
            .propose(self.cfg.address, &tx, hash, sender, &sig)
            .await
        {
            Ok(()) => ("submitted", None),
            Err(e) if e.is_retryable() => ("pending", Some(e.to_string())),
            Err(e) => ("rejected", Some(e.to_string())),
        };
        match &error {
            Some(e) => {
                tracing::error!(proposal = p.id, state, error = %e, "submitting the pause proposal failed")
            }
            None => tracing::info!(
                proposal = p.id,
                "pause proposal submitted to the Safe Transaction Service"
            ),
        }
        store::set_state(&self.pool, p.id, state, error.as_deref()).await?;
        Ok(store::find(&self.pool, &p.id.to_string())
            .await?
            .unwrap_or(p))
    }

    /// Submits proposals a previous run left `pending` (service down, crash before submission).
    pub async fn retry_pending(&self) -> Result<(), SafeError> {
        for p in store::pending(&self.pool).await? {
            self.submit(p).await?;
        }
        Ok(())
    }
}

/// The SafeTx as stored (gas fields are always zero: no refunds).
pub fn stored_tx(p: &Proposal) -> Result<SafeTx, SafeError> {
    let bad =
        |what: &str, e: String| SafeError::Check(format!("stored proposal {}: {what}: {e}", p.id));
    Ok(SafeTx {
        to: p
            .to_address
            .parse()
            .map_err(|e| bad("to", format!("{e}")))?,
        value: U256::from_str(&p.value).map_err(|e| bad("value", e.to_string()))?,
        data: p.data.parse().map_err(|e| bad("data", format!("{e}")))?,
        operation: p.operation as u8,
        safeTxGas: U256::ZERO,
        baseGas: U256::ZERO,
        gasPrice: U256::ZERO,
        gasToken: Address::ZERO,
        refundReceiver: Address::ZERO,
        nonce: U256::from_str(&p.nonce).map_err(|e| bad("nonce", e.to_string()))?,
    })
}

/// The pause calls of `[[watchdog.safe.targets]]`, contract names resolved to their addresses.
fn targets(cfg: &SafeConfig, ws: &WatchdogSettings) -> Result<Vec<Call>, SafeError> {
    if cfg.targets.is_empty() {
        return Err(config_err("watchdog.safe.targets", "lists no target"));
    }
    let mut calls = Vec::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let field = format!("watchdog.safe.targets[{i}]");
        let name = t
            .function
            .split('(')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if name.contains("unpause") {
            return Err(config_err(
                format!("{field}.function"),
                format!("`{}`: the watchdog never proposes an unpause", t.function),
            ));
        }
        let addresses: Vec<Address> = match (&t.contract, t.address) {
            (Some(c), None) => {
                let found: Vec<Address> = ws
                    .settings()
                    .contracts
                    .iter()
                    .filter(|s| &s.name == c && s.chain == cfg.chain)
                    .flat_map(|s| s.addresses.iter().copied())
                    .collect();
                if found.is_empty() {
                    return Err(config_err(
                        format!("{field}.contract"),
                        format!("`{c}` is not a [[contracts]] entry on chain {}", cfg.chain),
                    ));
                }
                found
            }
            (None, Some(a)) => vec![a],
            _ => {
                return Err(config_err(
                    field,
                    "set exactly one of `contract` and `address`",
                ))
            }
        };
        for a in addresses {
            calls.push(
                Call::new(a, &t.function, &t.args)
                    .map_err(|e| config_err(format!("{field}.function"), e.to_string()))?,
            );
        }
    }
    Ok(calls)
}

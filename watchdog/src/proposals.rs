//! `tripwire-watchdog proposals list|show`: the Safe pause proposals and, for one, the exact
//! commands an owner runs to add a signature and execute it.

use anyhow::{bail, Context};
use sqlx::PgPool;
use tripwire_watchdog::config::WatchdogSettings;
use tripwire_watchdog::safe::{self, service::ServiceClient, store, Proposal};

pub(crate) async fn list(pool: &PgPool, limit: i64, json: bool) -> anyhow::Result<()> {
    let rows = store::list(pool, limit)
        .await
        .context("reading safe_proposals")?;
    if json {
        tripwire_runtime::println_escaped!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        tripwire_runtime::println_escaped!("no proposals");
        return Ok(());
    }
    tripwire_runtime::println_escaped!(
        "{:>5}  {:<10} {:>6}  {:<66}  {:<20}  SOURCE",
        "ID",
        "STATE",
        "NONCE",
        "SAFE_TX_HASH",
        "CREATED"
    );
    for p in rows {
        tripwire_runtime::println_escaped!(
            "{:>5}  {:<10} {:>6}  {:<66}  {:<20}  {}",
            p.id,
            p.state,
            p.nonce,
            p.safe_tx_hash,
            p.created_at.format("%Y-%m-%d %H:%M:%S"),
            p.source_key
        );
    }
    Ok(())
}

pub(crate) async fn show(
    ws: &WatchdogSettings,
    pool: &PgPool,
    key: &str,
    given: &[String],
) -> anyhow::Result<()> {
    let Some(p) = store::find(pool, key)
        .await
        .context("reading safe_proposals")?
    else {
        bail!("no proposal with id or safeTxHash `{key}`");
    };
    let tx = safe::stored_tx(&p)?;
    let chain = ws
        .settings()
        .config
        .chains
        .iter()
        .find(|c| c.chain_id as i64 == p.chain_id);
    let rpc = chain
        .and_then(|c| c.all_providers().into_iter().next())
        .map(|p| tripwire_config::redact_url(&p.url))
        .unwrap_or_else(|| "$RPC_URL".into());
    tripwire_runtime::println_escaped!("proposal {} ({})", p.id, p.state);
    if let Some(e) = &p.error {
        tripwire_runtime::println_escaped!("  last error:   {e}");
    }
    tripwire_runtime::println_escaped!("  source:       {}", p.source_key);
    tripwire_runtime::println_escaped!("  summary:      {}", p.summary);
    tripwire_runtime::println_escaped!("  safe:         {} (chain {})", p.safe, p.chain_id);
    tripwire_runtime::println_escaped!("  safeTxHash:   {}", p.safe_tx_hash);
    tripwire_runtime::println_escaped!("  nonce:        {}", p.nonce);
    tripwire_runtime::println_escaped!(
        "  transaction:  to {} value {} operation {} ({})",
        p.to_address,
        p.value,
        p.operation,
        if p.operation == 1 {
            "delegatecall to MultiSendCallOnly"
        } else {
            "call"
        }
    );
    tripwire_runtime::println_escaped!("  data:         {}", p.data);
    tripwire_runtime::println_escaped!("  target calls:");
    for c in p.calls.as_array().into_iter().flatten() {
        tripwire_runtime::println_escaped!(
            "    {} {}  ({})",
            c["to"].as_str().unwrap_or("?"),
            c["function"].as_str().unwrap_or("?"),
            c["data"].as_str().unwrap_or("")
        );
    }
    let mut sigs = vec![(p.proposer.clone(), p.signature.clone())];
    if let Some(svc) = ws.watchdog().safe.as_ref().and_then(|s| s.service.as_ref()) {
        match ServiceClient::new(svc) {
            Ok(client) => match client.confirmations(p.safe_tx_hash.parse()?).await {
                Ok(confirmed) => {
                    for (owner, sig) in confirmed {
                        let o = owner.to_checksum(None);
                        if !sigs.iter().any(|(a, _)| a.eq_ignore_ascii_case(&o)) {
                            sigs.push((o, sig));
                        }
                    }
                }
                Err(e) => tripwire_runtime::println_escaped!(
                    "  (could not read confirmations from the service: {e})"
                ),
            },
            Err(e) => tripwire_runtime::println_escaped!("  (no service client: {e})"),
        }
    }
    let hash: alloy::primitives::B256 = p.safe_tx_hash.parse().context("stored safeTxHash")?;
    let owners = if given.is_empty() {
        None
    } else {
        safe_owners(chain, &p.safe).await
    };
    let mut added = Vec::new();
    for sig in given {
        let signer = signer_of(&hash, sig)?;
        let who = signer.to_checksum(None);
        // The Safe would refuse it at execution (GS026); say so now, with the owners to compare.
        if let Some(owners) = &owners {
            if !owners.contains(&signer) {
                let list: Vec<String> = owners.iter().map(|o| o.to_checksum(None)).collect();
                bail!(
                    "--signature {sig}: signed by {who}, which is not an owner of Safe {} (owners: {})",
                    p.safe,
                    list.join(", ")
                );
            }
        }
        if !sigs.iter().any(|(a, _)| a.eq_ignore_ascii_case(&who)) {
            sigs.push((who.clone(), sig.clone()));
            added.push(who);
        }
    }
    tripwire_runtime::println_escaped!("  signatures gathered ({}):", sigs.len());
    for (who, _) in &sigs {
        let note = if added.contains(who) {
            "  (--signature)"
        } else {
            ""
        };
        tripwire_runtime::println_escaped!("    {who}{note}");
    }
    print_commands(&p, &tx, &sigs, &rpc);
    Ok(())
}

/// The Safe's owners read from the chain, or `None` (with a printed reason) when it cannot be
/// read: the command is still printed, and the simulation the runbook runs catches a non-owner.
async fn safe_owners(
    chain: Option<&tripwire_config::ChainConfig>,
    safe: &str,
) -> Option<Vec<alloy::primitives::Address>> {
    let chain = chain?;
    let Ok(address) = safe.parse() else {
        tripwire_runtime::println_escaped!("  (the stored Safe address `{safe}` does not parse)");
        return None;
    };
    let read = async {
        let reader = safe::chain::ChainReader::new(chain)?;
        reader.safe_owners(address).await
    };
    match read.await {
        Ok(owners) => Some(owners),
        Err(e) => {
            tripwire_runtime::println_escaped!(
                "  (could not read the Safe's owners to check the signers: {e})"
            );
            None
        }
    }
}

/// The address that made `sig` (65 bytes, hex) over the safeTxHash: `v` 27/28 signs the hash
/// itself (`cast wallet sign --no-hash`), `v` 31/32 the personal-message form (`eth_sign`).
fn signer_of(
    hash: &alloy::primitives::B256,
    sig: &str,
) -> anyhow::Result<alloy::primitives::Address> {
    let bytes = alloy::primitives::hex::decode(sig)
        .map_err(|e| anyhow::anyhow!("--signature {sig}: not hex ({e})"))?;
    if bytes.len() != 65 {
        bail!(
            "--signature {sig}: {} bytes, a signature has 65 (0x and 130 hex digits)",
            bytes.len()
        );
    }
    let v = bytes[64];
    let (mut raw, personal) = match v {
        27 | 28 => (bytes.clone(), false),
        31 | 32 => (bytes.clone(), true),
        _ => bail!(
            "--signature {sig}: v = {v}; expected 27/28 (cast wallet sign --no-hash) or 31/32 (eth_sign)"
        ),
    };
    if personal {
        raw[64] -= 4;
    }
    let parsed = alloy::primitives::Signature::try_from(&raw[..])
        .map_err(|e| anyhow::anyhow!("--signature {sig}: {e}"))?;
    let signer = if personal {
        parsed.recover_address_from_msg(hash.as_slice())
    } else {
        parsed.recover_address_from_prehash(hash)
    };
    signer.map_err(|e| anyhow::anyhow!("--signature {sig}: no signer recovers from it ({e})"))
}

fn print_commands(p: &Proposal, tx: &safe::tx::SafeTx, sigs: &[(String, String)], rpc: &str) {
    let sorted = {
        let mut s: Vec<(alloy::primitives::Address, Vec<u8>)> = sigs
            .iter()
            .filter_map(|(a, s)| Some((a.parse().ok()?, alloy::primitives::hex::decode(s).ok()?)))
            .collect();
        s.sort_by_key(|(a, _)| *a);
        safe::tx::pack_signatures(s)
    };
    println!();
    tripwire_runtime::println_escaped!("To add your signature (an owner's key in $OWNER_KEY; --no-hash signs the EIP-712 hash itself):");
    tripwire_runtime::println_escaped!(
        "  cast wallet sign --no-hash {} --private-key $OWNER_KEY",
        p.safe_tx_hash
    );
    println!();
    tripwire_runtime::println_escaped!(
        "To execute once the threshold is reached: every signature (65 bytes each, without 0x)"
    );
    tripwire_runtime::println_escaped!("concatenated in ascending order of the signer's address, after 0x (`proposals show` does it");
    tripwire_runtime::println_escaped!(
        "with each owner's signature given as --signature 0x…). With the signatures above:"
    );
    tripwire_runtime::println_escaped!(
        "  cast send {safe} 'execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)' \\\n    {to} {value} {data} {op} 0 0 0 {zero} {zero} {sigs} \\\n    --rpc-url {rpc} --private-key $OWNER_KEY",
        safe = p.safe,
        to = tx.to,
        value = tx.value,
        data = p.data,
        op = tx.operation,
        zero = alloy::primitives::Address::ZERO,
        sigs = sorted,
    );
    println!();
    tripwire_runtime::println_escaped!(
        "Or in the Safe wallet: the transaction with nonce {} in the queue of {}.",
        p.nonce,
        p.safe
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    #[test]
    fn signers_recover_from_both_signature_forms() {
        let key: PrivateKeySigner =
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
                .parse()
                .unwrap();
        let hash = alloy::primitives::keccak256(b"safe tx");
        // cast wallet sign --no-hash: the hash itself, v 27/28.
        let direct = key.sign_hash_sync(&hash).unwrap().as_bytes();
        let hex = alloy::primitives::hex::encode_prefixed(direct);
        assert_eq!(signer_of(&hash, &hex).unwrap(), key.address());
        // eth_sign: the personal message of the hash, v + 4.
        let mut personal = key.sign_message_sync(hash.as_slice()).unwrap().as_bytes();
        personal[64] += 4;
        let hex = alloy::primitives::hex::encode_prefixed(personal);
        assert_eq!(signer_of(&hash, &hex).unwrap(), key.address());
        // Over another hash it recovers someone else: the Safe would refuse it.
        let other = alloy::primitives::keccak256(b"other");
        let hex = alloy::primitives::hex::encode_prefixed(direct);
        assert_ne!(signer_of(&other, &hex).unwrap(), key.address());
        let mut bad_v = direct;
        bad_v[64] = 1;
        let e = signer_of(&hash, &alloy::primitives::hex::encode_prefixed(bad_v)).unwrap_err();
        assert!(e.to_string().contains("v = 1"), "{e}");
        assert!(signer_of(&hash, "0xzz")
            .unwrap_err()
            .to_string()
            .contains("not hex"));
    }
}

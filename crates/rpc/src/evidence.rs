//! Evidence for a log answer. A provider can hold correct headers and still answer `[]` from
//! `eth_getLogs` (a load balancer in front of a node whose log index lags, an index with holes):
//! the headers alone cannot tell. Each header's `logsBloom` can: every log of the block sets the
//! bits of its address and topics, so
//! - a log whose address or topic0 is not in its block's bloom is not from that block (the answer
//!   is wrong), and
//! - a block whose bloom holds a configured address (and one of its events' topic0) but whose
//!   answer holds no log of it is *suspect*: a lie or a bloom false positive, which only a second
//!   source can tell apart (another provider's `eth_getLogs` by block hash, or the block's
//!   receipts checked against the header's `receiptsRoot`).

use std::collections::HashMap;

use alloy::{
    consensus::ReceiptEnvelope,
    primitives::{Address, Bloom, BloomInput, B256},
    rpc::types::{Log, TransactionReceipt},
};

use super::Header;

/// What the ingest asks for: addresses, each with the topic0s of its events when those describe
/// all its logs of interest. Built once per range plan; blooms of the inputs are precomputed so
/// each check is a few word-wise ANDs.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    entries: Vec<Entry>,
    /// Contracts whose transactions are watched (`None`: no block needs its transactions).
    transactions: Option<std::sync::Arc<crate::txs::TxInterest>>,
}

#[derive(Debug, Clone)]
struct Entry {
    address: Address,
    bloom: Bloom,
    /// Blooms of the events' topic0s; empty: any log of the address counts.
    topics: Vec<Bloom>,
}

fn bloom_of(bytes: &[u8]) -> Bloom {
    let mut b = Bloom::ZERO;
    b.accrue(BloomInput::Raw(bytes));
    b
}

impl Interest {
    /// `contracts`: each address with its events' topic0s (`None`: every log counts).
    pub fn new<'a>(contracts: impl IntoIterator<Item = (Address, Option<&'a [B256]>)>) -> Self {
        let entries = contracts
            .into_iter()
            .map(|(address, topics)| Entry {
                address,
                bloom: bloom_of(address.as_slice()),
                topics: topics
                    .unwrap_or_default()
                    .iter()
                    .map(|t| bloom_of(t.as_slice()))
                    .collect(),
            })
            .collect();
        Interest {
            entries,
            transactions: None,
        }
    }

    /// The same interest, also asking for the transactions `watched` describes.
    pub fn with_transactions(mut self, watched: Option<crate::txs::TxInterest>) -> Self {
        self.transactions = watched.map(std::sync::Arc::new);
        self
    }

    /// The contracts whose transactions are watched, if any.
    pub fn transactions(&self) -> Option<&crate::txs::TxInterest> {
        self.transactions.as_deref()
    }

    /// The same interest without transactions (a second request for the same blocks).
    pub fn without_transactions(&self) -> Interest {
        Interest {
            entries: self.entries.clone(),
            transactions: None,
        }
    }

    /// Every log of `addresses` counts (contracts indexed without an ABI).
    pub fn raw(addresses: &[Address]) -> Self {
        Interest::new(addresses.iter().map(|a| (*a, None)))
    }

    /// Every address, each once, in order.
    pub fn addresses(&self) -> Vec<Address> {
        let mut out: Vec<Address> = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if !out.contains(&e.address) {
                out.push(e.address);
            }
        }
        out
    }

    /// The same interest restricted to one address.
    pub fn only(&self, address: Address) -> Interest {
        Interest {
            entries: self
                .entries
                .iter()
                .filter(|e| e.address == address)
                .cloned()
                .collect(),
            transactions: self.transactions.clone(),
        }
    }

    /// Whether no contract address is of interest, so no bloom can match.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bloom says the block may hold a log of interest.
    pub fn may_match(&self, bloom: &Bloom) -> bool {
        self.entries.iter().any(|e| {
            bloom.contains(&e.bloom)
                && (e.topics.is_empty() || e.topics.iter().any(|t| bloom.contains(t)))
        })
    }

    /// A log `eth_getLogs` by address would have returned (topics are not part of the request).
    fn wants(&self, address: &Address) -> bool {
        self.entries.iter().any(|e| &e.address == address)
    }
}

/// What one provider's answer for a range shows against its own headers' blooms.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Indexes (into the headers) of blocks the bloom says may hold logs of interest although the
    /// answer has none for them.
    pub suspects: Vec<usize>,
}

/// Checks `logs` against the blooms of `headers` (`from..=to` in order). `Err` names the first
/// log that its block's bloom excludes: such an answer is wrong, whatever else it says.
pub fn check(headers: &[Header], logs: &[Log], interest: &Interest) -> Result<Findings, String> {
    let Some(first) = headers.first().map(|h| h.number) else {
        return Ok(Findings::default());
    };
    let mut has_logs = vec![false; headers.len()];
    // Topic0s repeat (one event signature per kind): hash each once per answer.
    let mut topic_blooms: HashMap<B256, Bloom> = HashMap::new();
    let mut address_blooms: HashMap<Address, Bloom> = HashMap::new();
    for log in logs.iter().filter(|l| !l.removed) {
        let Some(idx) = log
            .block_number
            .and_then(|n| n.checked_sub(first))
            .map(|i| i as usize)
            .filter(|i| *i < headers.len())
        else {
            // Out of range or incomplete logs are the record builder's to report.
            continue;
        };
        has_logs[idx] = true;
        let Some(bloom) = headers[idx].logs_bloom else {
            continue;
        };
        let address = log.inner.address;
        let a = address_blooms
            .entry(address)
            .or_insert_with(|| bloom_of(address.as_slice()));
        if !bloom.contains(a) {
            return Err(format!(
                "log {} of block {} (address {address}) is not in the block's logsBloom",
                log.log_index.unwrap_or_default(),
                headers[idx].number
            ));
        }
        if let Some(topic0) = log.inner.data.topics().first() {
            let t = topic_blooms
                .entry(*topic0)
                .or_insert_with(|| bloom_of(topic0.as_slice()));
            if !bloom.contains(t) {
                return Err(format!(
                    "log {} of block {} (topic {topic0}) is not in the block's logsBloom",
                    log.log_index.unwrap_or_default(),
                    headers[idx].number
                ));
            }
        }
    }
    let suspects = headers
        .iter()
        .enumerate()
        .filter(|(i, h)| !has_logs[*i] && h.logs_bloom.is_some_and(|b| interest.may_match(&b)))
        .map(|(i, _)| i)
        .collect();
    Ok(Findings { suspects })
}

/// What a block's receipts say about its logs of interest.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceiptsVerdict {
    /// The receipts hash to the header's `receiptsRoot` and hold this many logs of interest.
    Verified(usize),
    /// The receipts could not be checked against the root (a transaction type this build does
    /// not encode, or no root in the header); they hold this many logs of interest.
    Unverified(usize),
    /// The receipts do not hash to the header's root: not evidence of anything.
    Mismatch,
}

/// Counts the logs of interest in a block's receipts and checks them against `header`.
pub fn judge_receipts(
    header: &Header,
    receipts: Vec<TransactionReceipt>,
    interest: &Interest,
) -> ReceiptsVerdict {
    let mut count = 0;
    let mut envelopes: Vec<ReceiptEnvelope<alloy::primitives::Log>> = Vec::new();
    for r in receipts {
        let r = r.into_primitives_receipt();
        count += r
            .inner
            .logs()
            .iter()
            .filter(|l| interest.wants(&l.address))
            .count();
        envelopes.push(r.inner);
    }
    match header.receipts_root {
        Some(root) if alloy::consensus::proofs::calculate_receipt_root(&envelopes) == root => {
            ReceiptsVerdict::Verified(count)
        }
        Some(_) => ReceiptsVerdict::Mismatch,
        None => ReceiptsVerdict::Unverified(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256, LogData};

    const TOKEN: Address = address!("5fbdb2315678afecb367f032d93f642f64180aa3");
    const OTHER: Address = address!("e7f1725e7734ce288f8367e1bb143e90bb3f0512");
    const TRANSFER: B256 =
        b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

    fn header(n: u64, bloom: Option<Bloom>) -> Header {
        Header {
            number: n,
            hash: B256::with_last_byte(n as u8),
            parent_hash: B256::with_last_byte(n as u8 - 1),
            timestamp: n,
            logs_bloom: bloom,
            receipts_root: None,
        }
    }

    fn bloom(items: &[&[u8]]) -> Bloom {
        let mut b = Bloom::ZERO;
        for i in items {
            b.accrue(BloomInput::Raw(i));
        }
        b
    }

    fn log(n: u64, address: Address, topic: B256) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address,
                data: LogData::new_unchecked(vec![topic], Default::default()),
            },
            block_number: Some(n),
            log_index: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_answer_for_a_block_whose_bloom_has_our_log_is_suspect() {
        let ours = bloom(&[TOKEN.as_slice(), TRANSFER.as_slice()]);
        let theirs = bloom(&[OTHER.as_slice(), TRANSFER.as_slice()]);
        let headers = [
            header(10, Some(ours)),
            header(11, Some(theirs)),
            header(12, None),
        ];
        let interest = Interest::new([(TOKEN, Some(&[TRANSFER][..]))]);
        let f = check(&headers, &[], &interest).unwrap();
        assert_eq!(f.suspects, vec![0], "only block 10 may hold a log of ours");
        // With its log in the answer, nothing is suspect.
        let f = check(&headers, &[log(10, TOKEN, TRANSFER)], &interest).unwrap();
        assert!(f.suspects.is_empty());
        // The address alone is not enough when the events are known and none of them is there.
        let other_event = bloom(&[TOKEN.as_slice(), B256::repeat_byte(7).as_slice()]);
        let f = check(&[header(10, Some(other_event))], &[], &interest).unwrap();
        assert!(f.suspects.is_empty());
        // A raw contract: any log of the address counts.
        let raw = Interest::new([(TOKEN, None)]);
        let f = check(&[header(10, Some(other_event))], &[], &raw).unwrap();
        assert_eq!(f.suspects, vec![0]);
    }

    #[test]
    fn a_log_the_bloom_excludes_makes_the_answer_wrong() {
        let only_other = bloom(&[OTHER.as_slice(), TRANSFER.as_slice()]);
        let headers = [header(10, Some(only_other))];
        let interest = Interest::new([(TOKEN, None)]);
        let e = check(&headers, &[log(10, TOKEN, TRANSFER)], &interest).unwrap_err();
        assert!(e.contains("block 10") && e.contains("logsBloom"), "{e}");
        let wrong_topic = bloom(&[TOKEN.as_slice()]);
        let e = check(
            &[header(10, Some(wrong_topic))],
            &[log(10, TOKEN, TRANSFER)],
            &interest,
        )
        .unwrap_err();
        assert!(e.contains("topic"), "{e}");
        // No bloom in the header: nothing to check against.
        assert!(check(&[header(10, None)], &[log(10, TOKEN, TRANSFER)], &interest).is_ok());
    }
}

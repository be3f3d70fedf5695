//! The ground-truth comparison of the harness: `eth_getLogs` of the test's contracts and the
//! `logs` table as comparable [`Row`]s, the expected rows decoded by hand from the ABI layout
//! (independently of the indexer), and the row-by-row check that Postgres equals the chain.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use testkit::{abi, Address, U256};

use super::Env;

impl Env {
    /// `eth_getLogs` of the three contracts over the whole chain, as comparable rows.
    pub(crate) async fn ground_truth(&self) -> Result<Vec<Row>> {
        let head = self.anvil.block_number().await?;
        let mut rows = Vec::new();
        let mut from = 0;
        while from <= head {
            let to = (from + 999).min(head);
            let logs = self
                .anvil
                .get_logs(json!({
                    "fromBlock": format!("0x{from:x}"),
                    "toBlock": format!("0x{to:x}"),
                    "address": self.addresses(),
                }))
                .await?;
            for l in logs {
                rows.push(Row::from_rpc(&l, self)?);
            }
            from = to + 1;
        }
        rows.sort();
        Ok(rows)
    }

    /// The `logs` table as comparable rows.
    pub(crate) async fn db_rows(&self) -> Result<Vec<Row>> {
        type R = (
            i64,
            Vec<u8>,
            i32,
            Vec<u8>,
            i32,
            Vec<u8>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Vec<u8>,
            Option<String>,
            Option<String>,
            Option<Value>,
        );
        let rows: Vec<R> = sqlx::query_as(
            "SELECT block_number, block_hash, log_index, tx_hash, tx_index, address,
                    topic0, topic1, topic2, topic3, data, contract, event_name, params
             FROM logs WHERE chain_id = 31337",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out: Vec<Row> = rows
            .into_iter()
            .map(|r| Row {
                block_number: r.0 as u64,
                block_hash: hex(&r.1),
                log_index: r.2 as u64,
                tx_hash: hex(&r.3),
                tx_index: r.4 as u64,
                address: hex(&r.5),
                topics: [r.6, r.7, r.8, r.9]
                    .into_iter()
                    .flatten()
                    .map(|t| hex(&t))
                    .collect(),
                data: hex(&r.10),
                contract: r.11,
                event: r.12,
                params: r.13.as_ref().map(canon),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Asserts Postgres equals the chain, row by row, with no duplicate.
    pub(crate) async fn assert_matches_chain(&self) -> Result<usize> {
        let truth = self.ground_truth().await?;
        let rows = self.db_rows().await?;
        let dupes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT tx_hash, log_index FROM logs GROUP BY 1, 2 HAVING count(*) > 1) d",
        )
        .fetch_one(self.db.pool())
        .await?;
        if dupes > 0 {
            bail!("{dupes} logs stored twice");
        }
        if truth != rows {
            if let Some(i) = (0..truth.len().min(rows.len())).find(|i| truth[*i] != rows[*i]) {
                bail!(
                    "Postgres differs from the chain at sorted row {i}:\nchain:    {:?}\npostgres: {:?}",
                    truth[i],
                    rows[i]
                );
            }
            let missing: Vec<_> = truth.iter().filter(|r| !rows.contains(r)).take(3).collect();
            let extra: Vec<_> = rows.iter().filter(|r| !truth.contains(r)).take(3).collect();
            bail!(
                "Postgres differs from the chain: {} rows on chain, {} in Postgres\nmissing (first 3): {missing:#?}\nextra (first 3): {extra:#?}",
                truth.len(),
                rows.len()
            );
        }
        Ok(rows.len())
    }
}

/// One log, in a form both sides can produce.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub block_number: u64,
    pub log_index: u64,
    pub block_hash: String,
    pub tx_hash: String,
    pub tx_index: u64,
    pub address: String,
    pub topics: Vec<String>,
    pub data: String,
    pub contract: Option<String>,
    pub event: Option<String>,
    /// JSON text of the decoded parameters.
    pub params: Option<String>,
}

fn hex(b: &[u8]) -> String {
    format!(
        "0x{}",
        testkit::anvil::hex_bytes(b).trim_start_matches("0x")
    )
}

fn word_address(t: &str) -> String {
    let a: Address = t[26..].parse().expect("address topic");
    a.to_checksum(None)
}

fn word_uint(w: &str) -> String {
    U256::from_str_radix(w.trim_start_matches("0x"), 16)
        .expect("uint word")
        .to_string()
}

impl Row {
    /// Builds the expected row from an RPC log, decoding the known events independently of the
    /// indexer (by hand, from the ABI layout).
    fn from_rpc(l: &Value, env: &Env) -> Result<Row> {
        let s = |k: &str| l[k].as_str().map(str::to_lowercase).context(k.to_owned());
        let q = |k: &str| testkit::anvil::parse_quantity(&l[k]).context(k.to_owned());
        let address = s("address")?;
        let topics: Vec<String> = l["topics"]
            .as_array()
            .context("topics")?
            .iter()
            .map(|t| t.as_str().unwrap().to_lowercase())
            .collect();
        let data = s("data")?;
        let addr: Address = address.parse()?;
        let transfer = format!(
            "{:#x}",
            abi::event_topic("Transfer(address,address,uint256)")
        );
        let deposit = format!("{:#x}", abi::event_topic("Deposit(address,uint256)"));
        let withdraw = format!("{:#x}", abi::event_topic("Withdraw(address,uint256)"));
        let (contract, event, params) = if addr == env.token {
            if topics.len() == 3 && topics[0] == transfer && data.len() == 66 {
                let (from, to, value) = (
                    word_address(&topics[1]),
                    word_address(&topics[2]),
                    word_uint(&data),
                );
                (
                    Some("token"),
                    Some("Transfer"),
                    Some(ordered(&[("from", &from), ("to", &to), ("value", &value)])),
                )
            } else {
                (Some("token"), None, None)
            }
        } else if addr == env.vault {
            let name = if topics.first() == Some(&deposit) {
                Some("Deposit")
            } else if topics.first() == Some(&withdraw) {
                Some("Withdraw")
            } else {
                None
            };
            match name {
                Some(n) if topics.len() == 2 && data.len() == 66 => (
                    Some("vault"),
                    Some(n),
                    Some(ordered(&[
                        ("user", &word_address(&topics[1])),
                        ("amount", &word_uint(&data)),
                    ])),
                ),
                _ => (Some("vault"), None, None),
            }
        } else {
            (Some("registry"), None, None)
        };
        Ok(Row {
            block_number: q("blockNumber")?,
            log_index: q("logIndex")?,
            block_hash: s("blockHash")?,
            tx_hash: s("transactionHash")?,
            tx_index: q("transactionIndex")?,
            address,
            topics,
            data,
            contract: contract.map(str::to_owned),
            event: event.map(str::to_owned),
            params,
        })
    }
}

/// Canonical text of decoded parameters (keys sorted), whatever map order serde_json uses.
fn ordered(pairs: &[(&str, &str)]) -> String {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v.iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn canon(params: &Value) -> String {
    let obj = params.as_object().expect("params is an object");
    let pairs: Vec<(&str, String)> = obj
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ordered(&refs)
}

//! How the pool fetches what `txs.rs` proves: for every block of a range, the block with full
//! transactions and its receipts, in the batch of its header and from the same provider, so that
//! the proof holds against that provider's own header. A provider without `eth_getBlockReceipts`
//! gives the receipts one transaction at a time (a second batch, same provider). A block that
//! fails its proof is an inconsistent answer of that provider, as a log outside its bloom is.

use alloy::{
    primitives::{B256, U64},
    rpc::{
        client::{BatchRequest, Waiter},
        types::TransactionReceipt,
    },
};
use tripwire_schema::TransactionRecord;

use crate::txs::{self, ProvenBlock, TxBlock, TxInterest};
use crate::{Header, ProviderId, RpcError};

/// The calls of a range's blocks and receipts, one of each per block, lowest first.
pub(crate) struct TxWaiters {
    blocks: Vec<Waiter<Option<TxBlock>>>,
    receipts: Vec<Waiter<Option<Vec<TransactionReceipt>>>>,
}

impl crate::ChainRpc {
    /// Adds the full block and the receipts of every block of `from..=to` to `batch`.
    pub(crate) fn add_tx_calls(
        &self,
        i: ProviderId,
        batch: &mut BatchRequest<'_>,
        from: u64,
        to: u64,
    ) -> Result<TxWaiters, RpcError> {
        let label = &self.pool().providers[i].label;
        let mut waiters = TxWaiters {
            blocks: Vec::new(),
            receipts: Vec::new(),
        };
        for n in from..=to {
            waiters.blocks.push(
                batch
                    .add_call("eth_getBlockByNumber", &(U64::from(n), true))
                    .map_err(|e| RpcError::from_alloy(label, "eth_getBlockByNumber", e))?,
            );
            waiters.receipts.push(
                batch
                    .add_call("eth_getBlockReceipts", &(U64::from(n),))
                    .map_err(|e| RpcError::from_alloy(label, "eth_getBlockReceipts", e))?,
            );
        }
        Ok(waiters)
    }

    /// The records of the watched transactions of `headers` (the blocks `waiters` asked for, in
    /// order), once each block is proven against its header.
    pub(crate) async fn await_transactions(
        &self,
        i: ProviderId,
        waiters: TxWaiters,
        headers: &[Header],
        watched: &TxInterest,
    ) -> Result<Vec<TransactionRecord>, RpcError> {
        let label = self.label(i).to_owned();
        let mut out = Vec::new();
        for ((block, receipts), header) in waiters
            .blocks
            .into_iter()
            .zip(waiters.receipts)
            .zip(headers)
        {
            let block = block
                .await
                .map_err(|e| RpcError::from_alloy(&label, "eth_getBlockByNumber", e))?
                .ok_or_else(|| {
                    self.pool().record_missing(i, header.number);
                    RpcError::MissingBlock {
                        provider: label.clone(),
                        block: header.number,
                    }
                })?;
            let receipts = match receipts.await {
                Ok(Some(r)) => r,
                // It has the block (above) but not its receipts: as a missing block.
                Ok(None) => {
                    return Err(RpcError::MissingBlock {
                        provider: label.clone(),
                        block: header.number,
                    })
                }
                Err(e) => {
                    let e = RpcError::from_alloy(&label, "eth_getBlockReceipts", e);
                    if !e.is_method_missing() {
                        return Err(e);
                    }
                    self.receipts_one_by_one(i, &ProvenBlock::transaction_hashes(&block))
                        .await?
                }
            };
            let caught =
                |e| self.caught(i, header.number, format!("transactions of the block: {e}"));
            let proven = txs::prove(header, block, receipts).map_err(caught)?;
            out.extend(
                proven
                    .records(self.inner.chain_id, header, watched)
                    .map_err(caught)?,
            );
        }
        Ok(out)
    }

    /// Receipts of `hashes` by `eth_getTransactionReceipt`, one batch. A receipt the provider
    /// lacks is left out: the receipts root then fails, as for a dropped one.
    async fn receipts_one_by_one(
        &self,
        i: ProviderId,
        hashes: &[B256],
    ) -> Result<Vec<TransactionReceipt>, RpcError> {
        let p = &self.pool().providers[i];
        p.metrics.counters.receipts_one_by_one_total.increment(1);
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = p.client.new_batch();
        let waiters = hashes
            .iter()
            .map(|h| {
                batch
                    .add_call::<_, Option<TransactionReceipt>>("eth_getTransactionReceipt", &(h,))
                    .map_err(|e| RpcError::from_alloy(&p.label, "eth_getTransactionReceipt", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.send_batch(i, batch, "eth_getTransactionReceipt")
            .await?;
        let mut out = Vec::with_capacity(waiters.len());
        for w in waiters {
            if let Some(r) = w
                .await
                .map_err(|e| RpcError::from_alloy(&p.label, "eth_getTransactionReceipt", e))?
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}

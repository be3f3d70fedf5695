//! Blocks the ingest handed to Kafka before a crash that left no cursor for them
//! (`ingest_pending`): those the chain replaced meanwhile are retracted before anything else is
//! published, so no consumer keeps their rows.

use tripwire_schema::{BlockRef, Retraction, StreamRecord};

use super::{ChainIngest, IngestError, RecordPublisher};
use tripwire_rpc::{ChainSource, RpcError};
use tripwire_store::cursor::{self, UNKNOWN_HASH};

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// After a crash between handing records to Kafka and storing the cursor, Kafka may hold
    /// blocks beyond the cursor that nobody will retract when the chain replaces them. Those the
    /// chain still has are simply published again by the next steps; those it replaced meanwhile
    /// are retracted now, before anything else is published.
    pub(super) async fn resolve_pending(&mut self) -> Result<(), IngestError> {
        let pending = self.cursor.pending.clone();
        let (Some(lo), Some(hi)) = (pending.first().copied(), pending.last().copied()) else {
            return Ok(());
        };
        let (current, source) = self.rpc.headers(lo.number, hi.number, None).await?;
        let mut orphaned = Vec::new();
        for b in &pending {
            match current
                .get((b.number - lo.number) as usize)
                .copied()
                .flatten()
            {
                Some(h) if h.hash == b.hash => {}
                Some(_) => orphaned.push(*b),
                // A provider that has not reached the block says nothing about a reorg.
                None => {
                    return Err(RpcError::MissingBlock {
                        provider: self.rpc.label(source).to_owned(),
                        block: b.number,
                    }
                    .into())
                }
            }
        }
        if !orphaned.is_empty() {
            let ancestor = self.cursor.tip().unwrap_or(BlockRef {
                number: self.chain.start_block.saturating_sub(1),
                hash: UNKNOWN_HASH,
            });
            tracing::warn!(
                chain = %self.chain.name,
                blocks = orphaned.len(),
                from = orphaned[0].number,
                "blocks published before a crash were replaced meanwhile: retracting them"
            );
            let retraction = StreamRecord::Retraction(Retraction {
                chain_id: self.chain.chain_id,
                common_ancestor: ancestor,
                orphaned: orphaned.clone(),
            });
            self.publish(&[retraction.to_json()]).await?;
            self.metrics
                .counters
                .ingest_pending_retracted_total
                .increment(orphaned.len() as u64);
        } else {
            tracing::info!(chain = %self.chain.name, blocks = pending.len(), "blocks published before a crash are still canonical");
        }
        self.cursor.pending.clear();
        cursor::save(&self.pool, self.chain.chain_id, &self.cursor, self.head).await?;
        Ok(())
    }
}

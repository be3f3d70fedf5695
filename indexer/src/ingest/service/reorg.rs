//! Reorganisations seen by the ingest: a provider whose block at our tip's height differs is a
//! question a second provider answers; a confirmed change unwinds to the common ancestor and
//! publishes a retraction of everything above it.

use tripwire_schema::{BlockRef, Retraction, StreamRecord};

use super::{ChainIngest, IngestError, RecordPublisher};
use tripwire_rpc::{ChainSource, ProviderId, RpcError};
use tripwire_store::cursor::{self, UNKNOWN_HASH};

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// Provider `reporter` says the block at our tip's height is not `tip` (`theirs` is its
    /// hash there). Two providers disagreeing is a question, not data: a second provider decides.
    /// If it still has our tip, the reporter is on another fork and leaves rotation; otherwise the
    /// chain did reorganise and is unwound using the witness's view.
    pub(super) async fn reorg_question(
        &mut self,
        tip: BlockRef,
        reporter: ProviderId,
        theirs: alloy::primitives::B256,
    ) -> Result<(), IngestError> {
        match self.rpc.header_elsewhere(tip.number, reporter).await? {
            Some((Some(h), witness)) if h.hash == tip.hash => {
                self.rpc.penalize(
                    reporter,
                    tip.number,
                    &format!(
                        "it says {theirs}, {} and the indexed chain say {}",
                        self.rpc.label(witness),
                        tip.hash
                    ),
                );
                self.metrics.counters.rpc_provider_forks_total.increment(1);
                Ok(())
            }
            Some((Some(_), witness)) => self.unwind(Some(witness), true).await,
            // Nobody else can tell: believe the reporter, but not as far as a fatal deep reorg.
            _ => self.unwind(Some(reporter), false).await,
        }
    }

    /// Walks back to the common ancestor of the stored blocks and the provider's chain, publishes a
    /// retraction of everything above it, and moves the cursor there. `confirmed`: a second
    /// provider agreed that the tip changed (or there is only one provider).
    async fn unwind(
        &mut self,
        prefer: Option<ProviderId>,
        confirmed: bool,
    ) -> Result<(), IngestError> {
        let recent: Vec<BlockRef> = self.cursor.recent.iter().copied().collect();
        let (Some(lowest), Some(tip)) = (recent.first().copied(), recent.last().copied()) else {
            return Ok(());
        };
        let (current, source) = self.rpc.headers(lowest.number, tip.number, prefer).await?;
        if current.last().is_some_and(Option::is_none) {
            return Err(RpcError::MissingBlock {
                provider: self.rpc.label(source).to_owned(),
                block: tip.number,
            }
            .into());
        }
        let ancestor = recent
            .iter()
            .rev()
            .find(|b| {
                current[(b.number - lowest.number) as usize].is_some_and(|h| h.hash == b.hash)
            })
            .copied();
        let ancestor = match ancestor {
            // Our tip is still canonical for this provider: nothing to retract.
            Some(a) if a == tip => return Ok(()),
            Some(a) if tip.number - a.number <= self.chain.max_reorg_depth => a,
            // The window reaches back to the start block: everything we hold is orphaned.
            None if lowest.number <= self.chain.start_block => BlockRef {
                number: self.chain.start_block.saturating_sub(1),
                hash: UNKNOWN_HASH,
            },
            // One provider alone does not stop the indexer: it may be on another fork.
            _ if !confirmed && self.rpc.provider_count() > 1 => {
                self.rpc.penalize(
                    source,
                    tip.number,
                    "none of the indexed blocks is on its chain, and no other provider confirms",
                );
                return Err(RpcError::Invalid {
                    provider: self.rpc.label(source).to_owned(),
                    method: "eth_getBlockByNumber",
                    message: "reports a reorg deeper than max_reorg_depth that no other provider confirms".into(),
                }
                .into());
            }
            _ => {
                return Err(IngestError::ReorgTooDeep {
                    chain: self.label(),
                    tip: tip.number,
                    checked: recent.len(),
                    max: self.chain.max_reorg_depth,
                })
            }
        };
        let orphaned: Vec<BlockRef> = recent
            .iter()
            .filter(|b| b.number > ancestor.number || ancestor.hash == UNKNOWN_HASH)
            .copied()
            .collect();
        let depth = orphaned.len();
        tracing::warn!(chain = %self.chain.name, ancestor = ancestor.number, depth, "reorg: retracting orphaned blocks");
        let retraction = StreamRecord::Retraction(Retraction {
            chain_id: self.chain.chain_id,
            common_ancestor: ancestor,
            orphaned,
        });
        self.publish(&[retraction.to_json()]).await?;
        if ancestor.hash == UNKNOWN_HASH {
            self.cursor.recent.clear();
        } else {
            self.cursor.truncate_above(ancestor.number);
        }
        cursor::save(&self.pool, self.chain.chain_id, &self.cursor, self.head).await?;
        self.metrics.reorgs.reorgs_total.increment(1);
        self.metrics
            .reorg_depth
            .reorg_depth_blocks
            .record(depth as f64);
        Ok(())
    }
}

//! Fetching a group of ranges: concurrently, in order, and the next group in the background while
//! the current one is published and acknowledged (the fetch is what the provider spends its time
//! on, the rest is the ingest's own work, so overlapping them keeps both busy).

use std::future::Future;

use futures::StreamExt;

use super::{ChainIngest, RecordPublisher};
use tripwire_rpc::{ChainSource, Interest, RangeData, RpcError};

/// Consecutive ranges from `from`, `span` blocks each, at most `count`, none past `target`.
pub(super) fn plan(from: u64, target: u64, span: u64, count: usize) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut from = from;
    while from <= target && ranges.len() < count {
        let to = target.min(from + span.max(1) - 1);
        ranges.push((from, to));
        from = to + 1;
    }
    ranges
}

/// The next group's ranges, fetched while the current group is published.
pub(super) struct Prefetched {
    ranges: Vec<(u64, u64)>,
    task: tokio::task::JoinHandle<Vec<Result<tripwire_rpc::RangeData, RpcError>>>,
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        // Not needed any more (the group ended elsewhere, a reorg, shutdown): stop fetching.
        self.task.abort();
    }
}

/// Fetches `ranges` with at most `in_flight` at once; results in range order. Owns its inputs so
/// that the same fetch runs inline and as a background task.
async fn fetch_all<S: ChainSource>(
    rpc: S,
    interest: Interest,
    ranges: Vec<(u64, u64)>,
    in_flight: usize,
) -> Vec<Result<RangeData, RpcError>> {
    let (rpc, interest) = (&rpc, &interest);
    futures::stream::iter(ranges)
        .map(|(f, t)| rpc.fetch_range(f, t, interest))
        .buffered(in_flight)
        .collect()
        .await
}

impl<S: ChainSource, P: RecordPublisher> ChainIngest<S, P> {
    /// The inputs of [`fetch_all`] for `ranges` (`None`: no ranges).
    fn fetch_of(
        &self,
        ranges: &[(u64, u64)],
    ) -> Option<impl Future<Output = Vec<Result<RangeData, RpcError>>>> {
        let &(_, last_to) = ranges.last()?;
        Some(fetch_all(
            self.rpc.clone(),
            self.interest_for(last_to),
            ranges.to_vec(),
            self.chain.ranges_in_flight,
        ))
    }

    /// Fetches `ranges` concurrently, results in order.
    pub(super) async fn fetch(&self, ranges: &[(u64, u64)]) -> Vec<Result<RangeData, RpcError>> {
        match self.fetch_of(ranges) {
            Some(f) => f.await,
            None => Vec::new(),
        }
    }

    /// Starts fetching `ranges` in the background (replacing an earlier prefetch).
    pub(super) fn prefetch(&mut self, ranges: Vec<(u64, u64)>) {
        self.prefetched = self.fetch_of(&ranges).map(|f| Prefetched {
            ranges,
            task: tokio::spawn(f),
        });
    }

    /// The prefetched group, if it starts at `next` and ends by `target`.
    pub(super) async fn take_prefetched(
        &mut self,
        next: u64,
        target: u64,
    ) -> Option<(Vec<(u64, u64)>, Vec<Result<RangeData, RpcError>>)> {
        let p = self.prefetched.take()?;
        let fits = p.ranges.first().is_some_and(|r| r.0 == next)
            && p.ranges.last().is_some_and(|r| r.1 <= target);
        if !fits {
            return None;
        }
        let mut p = p;
        let fetched = (&mut p.task).await.ok()?;
        Some((std::mem::take(&mut p.ranges), fetched))
    }
}

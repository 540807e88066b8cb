//! Stores a consumer's offsets only for finished work: each partition's contiguous
//! finished prefix ([`CommitWatermark`]), handed to librdkafka's auto-commit.

use crate::kafka::{store_next_offset, GroupConsumer};
use hookline_core::watermark::CommitWatermark;
use parking_lot::Mutex;
use rdkafka::consumer::Consumer as _;
use std::collections::HashMap;
use std::sync::Arc;

/// Shared by a role's consuming loop (which begins records in offset order) and its
/// workers (which complete them in any order).
pub struct OffsetTracker {
    consumer: Arc<GroupConsumer>,
    partitions: Mutex<HashMap<(String, i32), CommitWatermark>>,
}

impl OffsetTracker {
    pub fn new(consumer: Arc<GroupConsumer>) -> Self {
        Self { consumer, partitions: Mutex::new(HashMap::new()) }
    }

    pub fn begin(&self, topic: &str, partition: i32, offset: i64) {
        let mut partitions = self.partitions.lock();
        match partitions.get_mut(&(topic.to_owned(), partition)) {
            Some(w) => w.begin(offset),
            None => {
                let mut w = CommitWatermark::new();
                w.begin(offset);
                partitions.insert((topic.to_owned(), partition), w);
            }
        }
    }

    /// Marks a record finished; stores the new commit position when it advanced. A record
    /// of a partition revoked meanwhile is ignored: its new owner reads it again.
    pub fn complete(&self, topic: &str, partition: i32, offset: i64) {
        let next = {
            let mut partitions = self.partitions.lock();
            let Some(w) = partitions.get_mut(&(topic.to_owned(), partition)) else { return };
            match w.complete(offset) {
                Ok(next) => next,
                Err(error) => {
                    tracing::debug!(topic, partition, %error, "completion of an unknown offset ignored");
                    None
                }
            }
        };
        if let Some(next) = next {
            store_next_offset(&self.consumer, topic, partition, next);
        }
    }

    /// Marks every offset before `next` of a partition done without reading it (records
    /// that can never be read, dead-lettered by their coordinates): committed once the work
    /// before them is finished.
    pub fn skip(&self, topic: &str, partition: i32, next: i64) {
        self.begin(topic, partition, next - 1);
        self.complete(topic, partition, next - 1);
    }

    /// Drops the bookkeeping of partitions revoked since the last call, and returns them.
    pub fn forget_revoked(&self) -> Vec<(String, i32)> {
        let revoked = self.consumer.context().take_revoked();
        if !revoked.is_empty() {
            let mut partitions = self.partitions.lock();
            for tp in &revoked {
                partitions.remove(tp);
            }
        }
        revoked
    }

    /// The end of a consuming role: waits up to `timeout` for every one of the `permits`
    /// of `window` (work in flight gives its permit back when it is finished), then commits
    /// the stored offsets synchronously. Work still in flight at the deadline is not
    /// committed, so the partition's next owner does it again.
    pub async fn drain_and_commit(&self, window: &tokio::sync::Semaphore, permits: usize, timeout: std::time::Duration) {
        let all = u32::try_from(permits).unwrap_or(u32::MAX);
        if tokio::time::timeout(timeout, window.acquire_many(all)).await.is_err() {
            tracing::warn!(in_flight = self.in_flight(), "shutdown: work still in flight; it will be done again");
        }
        if let Err(error) = self.consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(%error, "final commit");
        }
    }

    /// Records begun and not yet committable, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.lock().values().map(CommitWatermark::in_flight).sum()
    }
}

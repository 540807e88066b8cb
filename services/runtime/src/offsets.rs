//! Stores a consumer's offsets only for finished work: each partition's contiguous
//! finished prefix ([`CommitWatermark`]), handed to librdkafka's auto-commit.

use crate::kafka::{store_offsets, GroupConsumer};
use hookline_core::keyed::KeyedMap;
use hookline_core::watermark::{encode_done, CommitWatermark, DONE_MAX_BYTES};
use parking_lot::Mutex;
use rdkafka::consumer::Consumer as _;
use std::collections::HashMap;
use std::sync::Arc;

/// Shared by a role's consuming loop (which begins records in offset order) and its
/// workers (which complete them in any order).
pub struct OffsetTracker {
    consumer: Arc<GroupConsumer>,
    partitions: Mutex<Partitions>,
    recording: Every,
    storing: Every,
}

/// Lets one caller at a time through, at most once per `ms` (any thread may ask).
struct Every {
    ms: i64,
    last_ms: std::sync::atomic::AtomicI64,
}

impl Every {
    const fn new(ms: i64) -> Self {
        Self { ms, last_ms: std::sync::atomic::AtomicI64::new(i64::MIN) }
    }

    /// Whether it is due at `now_ms`; if so, the next is due `ms` later.
    fn due(&self, now_ms: i64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_ms.load(Relaxed);
        now_ms.saturating_sub(last) >= self.ms && self.last_ms.compare_exchange(last, now_ms, Relaxed, Relaxed).is_ok()
    }
}

/// Partitions by topic, then number: looked up by `&str` on every record, with no key to
/// build.
#[derive(Default)]
struct Partitions(KeyedMap<HashMap<i32, Partition>>);

impl Partitions {
    fn get(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.0.get(topic)?.get(&partition)
    }

    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.0.get_mut(topic)?.get_mut(&partition)
    }

    fn insert(&mut self, topic: &str, partition: i32, p: Partition) -> &mut Partition {
        hookline_core::keyed::get_or_default(&mut self.0, topic).entry(partition).or_insert(p)
    }

    fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(of_topic) = self.0.get_mut(topic) {
            of_topic.remove(&partition);
            if of_topic.is_empty() {
                self.0.remove(topic);
            }
        }
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, i32, &mut Partition)> {
        self.0.iter_mut().flat_map(|(topic, of_topic)| of_topic.iter_mut().map(move |(n, p)| (topic.as_str(), *n, p)))
    }

    fn values(&self) -> impl Iterator<Item = &Partition> {
        self.0.values().flat_map(HashMap::values)
    }
}

#[derive(Default)]
struct Partition {
    watermark: CommitWatermark,
    /// Offsets a previous owner finished beyond its commit: skipped, not done again.
    inherited: std::collections::BTreeSet<i64>,
    /// Work finished beyond the watermark since the last commit that recorded it.
    unrecorded: bool,
    /// The watermark advanced since its position was last stored.
    unstored: bool,
}

/// How often work finished behind a stuck head is committed (as commit metadata).
const RECORD_EVERY_MS: i64 = 200;
/// How often a partition's advanced position is stored for librdkafka's next auto-commit
/// (every 200 ms). Storing on each completion encoded the commit metadata and stored an
/// offset for about every other delivery: 5,000 instructions of each (docs/performance.md).
const STORE_EVERY_MS: i64 = 10;
/// A revocation waits at most this long for the revoked partitions' work in flight...
const HAND_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// ...and stops waiting when none of it finished for this long.
const HAND_OVER_STALLED: std::time::Duration = std::time::Duration::from_millis(300);

impl OffsetTracker {
    pub fn new(consumer: Arc<GroupConsumer>) -> Self {
        Self { consumer, partitions: Mutex::default(), recording: Every::new(RECORD_EVERY_MS), storing: Every::new(STORE_EVERY_MS) }
    }

    pub fn begin(&self, topic: &str, partition: i32, offset: i64) {
        self.partition(topic, partition, |p| p.watermark.begin(offset));
    }

    /// Begins a record, unless the partition's previous owner already finished it (commit
    /// metadata): then it is marked done at once and `false` says to skip it.
    pub fn take(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let inherited = self.partition(topic, partition, |p| {
            p.watermark.begin(offset);
            p.inherited.remove(&offset)
        });
        if inherited {
            crate::metric_catalog::OFFSETS_INHERITED_SKIPS.get().increment(1);
            self.complete(topic, partition, offset);
        }
        !inherited
    }

    fn partition<T>(&self, topic: &str, partition: i32, f: impl FnOnce(&mut Partition) -> T) -> T {
        let mut partitions = self.partitions.lock();
        if let Some(p) = partitions.get_mut(topic, partition) {
            return f(p);
        }
        let inherited = self.consumer.context().take_inherited(topic, partition).unwrap_or_default();
        f(partitions.insert(topic, partition, Partition { inherited, ..Default::default() }))
    }

    /// Marks a record finished. When the commit position advanced it is stored (with what
    /// finished beyond it as the commit's metadata) at once if no store was made in the last
    /// [`STORE_EVERY_MS`], or else by the next completion or housekeeping after that
    /// ([`Self::store_advanced`]); a crash in between redoes that work, as it redoes what
    /// finished since the last auto-commit. A record of a partition revoked meanwhile is
    /// ignored: its new owner reads it again.
    pub fn complete(&self, topic: &str, partition: i32, offset: i64) {
        {
            let mut partitions = self.partitions.lock();
            let Some(p) = partitions.get_mut(topic, partition) else { return };
            match p.watermark.complete(offset) {
                Ok(Some(_)) => {
                    p.unrecorded = false;
                    p.unstored = true;
                }
                Ok(None) => p.unrecorded = true,
                Err(error) => {
                    tracing::debug!(topic, partition, %error, "completion of an unknown offset ignored");
                    return;
                }
            }
        }
        if self.storing.due(crate::time::now_ms()) {
            self.store_advanced();
        }
    }

    /// Stores the commit position of every partition whose position advanced since it was
    /// last stored, with what finished beyond it.
    pub fn store_advanced(&self) {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition, p) in self.partitions.lock().iter_mut() {
            if !std::mem::take(&mut p.unstored) {
                continue;
            }
            let Some(next) = p.watermark.committed_to() else { continue };
            add_position(&mut tpl, topic, partition, next, &p.watermark);
        }
        if tpl.count() > 0 {
            store_offsets(&self.consumer, &tpl);
        }
    }

    /// Commits, at most every 200 ms, what finished behind each partition's unfinished
    /// head. Auto-commit only commits an offset that moved, so while one slow delivery holds
    /// the head, work finished after it would otherwise never be recorded: a crash would do
    /// it all again. Call it from the consuming loop (it returns at once when not due).
    pub fn record_finished_beyond(&self) {
        let now = crate::time::now_ms();
        if self.storing.due(now) {
            self.store_advanced();
        }
        if self.recording.due(now) {
            self.commit_heads(false, rdkafka::consumer::CommitMode::Async);
        }
    }

    /// Commits each partition's unfinished head with what finished beyond it (all of them,
    /// or only those with something new).
    fn commit_heads(&self, all: bool, mode: rdkafka::consumer::CommitMode) {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition, p) in self.partitions.lock().iter_mut() {
            let Some(head) = p.watermark.head().filter(|_| all || p.unrecorded) else { continue };
            p.unrecorded = false;
            add_position(&mut tpl, topic, partition, head, &p.watermark);
        }
        self.commit(&tpl, mode);
    }

    fn commit(&self, tpl: &rdkafka::TopicPartitionList, mode: rdkafka::consumer::CommitMode) {
        if tpl.count() > 0 {
            if let Err(error) = self.consumer.commit(tpl, mode) {
                tracing::debug!(%error, "finished work not recorded (partition revoked?)");
            }
        }
    }

    /// Hands `parts` over to their next owner (called from the revocation, before they
    /// leave): waits up to [`HAND_OVER_WAIT`] for their work in flight to finish, as long
    /// as it keeps finishing, then commits where each stands, with what finished beyond it.
    /// Without this, a request answered after the revocation would be ignored and its
    /// delivery sent again by the next owner. Work still unfinished then (waiting for a slow
    /// endpoint, or abandoned at shutdown) is left to the next owner. Blocking: it runs in
    /// the consumer's rebalance callback.
    pub fn hand_over(&self, parts: &[(String, i32)]) {
        let unfinished = || -> usize {
            let partitions = self.partitions.lock();
            parts.iter().filter_map(|(topic, n)| partitions.get(topic, *n)).map(|p| p.watermark.unfinished()).sum()
        };
        let started = std::time::Instant::now();
        let (mut left, mut progress_at) = (unfinished(), started);
        while left > 0 && started.elapsed() < HAND_OVER_WAIT && progress_at.elapsed() < HAND_OVER_STALLED {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let now_left = unfinished();
            if now_left < left {
                progress_at = std::time::Instant::now();
            }
            left = now_left;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in parts {
            let partitions = self.partitions.lock();
            let Some(p) = partitions.get(topic, *partition) else { continue };
            // Its unfinished head, or where it stands when all is finished (nothing beyond).
            let Some(at) = p.watermark.head().or(p.watermark.committed_to()) else { continue };
            add_position(&mut tpl, topic, *partition, at, &p.watermark);
        }
        self.commit(&tpl, rdkafka::consumer::CommitMode::Sync);
        tracing::info!(
            partitions = parts.len(), waited_ms = started.elapsed().as_millis() as u64, left_unfinished = left,
            "revoked partitions handed over"
        );
    }

    /// Marks every offset before `next` of a partition done without reading it (records
    /// that can never be read, dead-lettered by their coordinates): committed once the work
    /// before them is finished.
    pub fn skip(&self, topic: &str, partition: i32, next: i64) {
        self.begin(topic, partition, next - 1);
        self.complete(topic, partition, next - 1);
    }

    /// Whether `partition` of `topic` is assigned to this member now (an ordered lane stops
    /// at its head when not). Asks the consumer: a partition revoked and assigned back is
    /// ours again, and its records are read again from the committed position.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.consumer.assignment().is_ok_and(|tpl| tpl.find_partition(topic, partition).is_some())
    }

    /// Drops the bookkeeping of `parts` (revoked by hand).
    pub fn forget(&self, parts: &[(String, i32)]) {
        let mut partitions = self.partitions.lock();
        for (topic, partition) in parts {
            partitions.remove(topic, *partition);
        }
    }

    /// Drops the bookkeeping of partitions revoked since the last call, and returns them.
    pub fn forget_revoked(&self) -> Vec<(String, i32)> {
        let revoked = self.consumer.context().take_revoked();
        self.forget(&revoked);
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
        self.store_advanced();
        if let Err(error) = self.consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(%error, "final commit");
        }
        // Work abandoned at shutdown holds its partition's head: record what finished
        // after it, so the next owner does only the abandoned work.
        self.commit_heads(true, rdkafka::consumer::CommitMode::Sync);
    }

    /// Records begun and not yet committable, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.lock().values().map(|p| p.watermark.in_flight()).sum()
    }
}

/// Adds a partition's position `at` to `tpl`, with what finished beyond it as the metadata.
fn add_position(tpl: &mut rdkafka::TopicPartitionList, topic: &str, partition: i32, at: i64, watermark: &CommitWatermark) {
    let mut elem = tpl.add_partition(topic, partition);
    elem.set_metadata(encode_done(at, watermark.done_beyond(), DONE_MAX_BYTES));
    let _ = elem.set_offset(rdkafka::Offset::Offset(at));
}

#[cfg(test)]
mod tests {
    use super::Every;

    #[test]
    fn every_lets_the_first_call_through_then_one_per_interval() {
        let every = Every::new(10);
        assert!(every.due(1_000), "the first call is due");
        assert!(!every.due(1_000) && !every.due(1_009), "not again within the interval");
        assert!(every.due(1_010), "due once the interval has passed");
        assert!(!every.due(1_015));
        assert!(every.due(5_000), "and after a long pause");
        // A clock that steps back never makes it due early.
        assert!(!every.due(4_000));
    }
}

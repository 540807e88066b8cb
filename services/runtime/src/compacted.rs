//! Followers of the single-partition compacted state topics (endpoints, replay jobs): read
//! from the beginning to the high-water mark seen at start, then live.

use crate::shutdown::Shutdown;
use hookline_core::config::KafkaConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use crate::kafka::FutureProducer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Reads partition 0 of `topic` until `shutdown`, calling `apply(key, value, offset)` for
/// each record (`value` is `None` for a tombstone) and `caught_up()` once, when the records
/// present at start have all been applied (at once for an empty topic).
pub async fn follow(
    cfg: &KafkaConfig,
    topic: &str,
    client_id: &str,
    shutdown: Shutdown,
    mut apply: impl FnMut(&[u8], Option<&[u8]>, i64),
    caught_up: impl FnOnce(),
) -> anyhow::Result<()> {
    let consumer = crate::kafka::reader(cfg, client_id)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    // Right after topic creation or a broker restart, metadata can be briefly wrong
    // (no leader yet): retry until it answers or we are told to stop.
    let mut backoff = Duration::from_millis(100);
    let high = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)) {
            Ok((_, high)) => break high,
            Err(error) => {
                tracing::warn!(%error, topic, "state topic not readable yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    tracing::info!(topic, records_to_read = high, "loading state topic");
    let mut caught_up = Some(caught_up);
    if high <= 0 {
        if let Some(f) = caught_up.take() {
            f();
        }
    }
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, topic, "state topic read failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        apply(message.key().unwrap_or_default(), message.payload().filter(|v| !v.is_empty()), message.offset());
        if message.offset() + 1 >= high {
            if let Some(f) = caught_up.take() {
                f();
            }
        }
    }
}

/// Writes one record of a compacted state topic (`None`: a tombstone) and returns, once
/// Kafka has it, its offset (for [`Position::wait_applied`]).
pub async fn put(producer: &FutureProducer, topic: &str, key: &str, value: Option<&[u8]>) -> anyhow::Result<i64> {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    let what = if value.is_some() { "writing" } else { "deleting" };
    let delivered = producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| anyhow::anyhow!("{what} {topic} record {key}: {e}"))?;
    Ok(delivered.offset)
}

/// How far a follower has read its state topic: whether it has caught up with what was
/// there at start, and the offset after the last record applied, so a writer that knows its
/// record's offset can wait for exactly that record (read-your-writes).
pub struct Position {
    ready: tokio::sync::watch::Sender<bool>,
    applied: tokio::sync::watch::Sender<i64>,
}

impl Default for Position {
    fn default() -> Self {
        Self { ready: tokio::sync::watch::channel(false).0, applied: tokio::sync::watch::channel(0).0 }
    }
}

impl Position {
    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the follower has read the topic to its high-water mark at start.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Records that every record before `next_offset` has been applied.
    pub fn mark_applied(&self, next_offset: i64) {
        self.applied.send_if_modified(|applied| {
            let newer = next_offset > *applied;
            if newer {
                *applied = next_offset;
            }
            newer
        });
    }

    /// Resolves once the record at `offset` has been applied, whatever later records did to
    /// the same key.
    pub async fn wait_applied(&self, offset: i64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|applied| *applied > offset).await;
    }

    /// A receiver that changes whenever a record is applied (for loops that react to state).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.applied.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_writer_waits_until_its_own_offset_is_applied_never_less() {
        let p = Arc::new(Position::default());
        p.mark_applied(5);
        // Offsets 0..=4 are applied: waiting for any of them returns at once.
        tokio::time::timeout(Duration::from_millis(100), p.wait_applied(4)).await.expect("already applied");
        let waiter = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.wait_applied(7).await }
        });
        p.mark_applied(3); // an older position never moves it back
        p.mark_applied(7);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "offset 7 is not applied until the position passes it");
        p.mark_applied(8);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("woken").expect("joined");
    }
}

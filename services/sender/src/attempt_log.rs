//! Attempt records, written in batches: one `AttemptBatch` record per endpoint per short
//! window instead of one record per attempt. At fan-out 10 an attempt record per delivery
//! doubled the sender's produce work; the history API and the DLQ see the same attempts.
//!
//! Attempt records are history, not the delivery contract: a delivery never waits for its
//! record to be acknowledged, and a crash loses at most the window not yet written.

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::kafka::{self, FutureProducer};
use rdkafka::error::KafkaResult;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// Attempts one record holds at most (a full batch is written at once).
const MAX_ATTEMPTS: usize = 500;
/// Encoded bytes one record holds at most, well under Kafka's default 1 MB record limit.
const MAX_BYTES: usize = 256 * 1024;
/// Attempts waiting for the writer before `record` waits (back-pressure, as a full
/// producer queue would be).
const QUEUE: usize = 8_192;

/// Collects attempts per endpoint until a batch is full or the window ends. No IO.
#[derive(Default)]
pub struct Batches {
    pending: HashMap<String, (v1::AttemptBatch, usize)>,
}

impl Batches {
    /// Adds one attempt; returns its endpoint's batch when that is now full.
    pub fn push(&mut self, attempt: v1::Attempt) -> Option<(String, v1::AttemptBatch)> {
        let size = attempt.encoded_len() + 4;
        let (batch, bytes) = self.pending.entry(attempt.endpoint_id.clone()).or_default();
        batch.attempts.push(attempt);
        *bytes += size;
        if batch.attempts.len() < MAX_ATTEMPTS && *bytes < MAX_BYTES {
            return None;
        }
        let key = batch.attempts[0].endpoint_id.clone();
        self.pending.remove(&key).map(|(batch, _)| (key, batch))
    }

    /// Every batch collected so far, each endpoint's attempts in the order they came.
    pub fn take_all(&mut self) -> Vec<(String, v1::AttemptBatch)> {
        self.pending.drain().map(|(key, (batch, _))| (key, batch)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The sender's attempt writer: a task that batches and produces.
pub struct AttemptLog {
    tx: mpsc::Sender<v1::Attempt>,
    task: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl AttemptLog {
    /// Starts the writer, producing to `topic` every `window`.
    pub fn start(producer: FutureProducer, topic: String, window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let task = tokio::spawn(write(producer, topic, window, rx, stop_rx));
        Self { tx, task: Mutex::new(Some((stop_tx, task))) }
    }

    /// Hands one attempt to the writer; waits only while the writer is that far behind.
    pub async fn record(&self, attempt: v1::Attempt) {
        if self.tx.send(attempt).await.is_err() {
            tracing::warn!("attempt record not written: the attempt log is closed");
        }
    }

    /// Writes what is collected and waits for Kafka to acknowledge it (at shutdown, after
    /// the last attempt).
    pub async fn close(&self) {
        if let Some((stop, task)) = self.task.lock().await.take() {
            let _ = stop.send(()).await;
            let _ = task.await;
        }
    }
}

type Acks = FuturesUnordered<BoxFuture<'static, KafkaResult<()>>>;

async fn write(
    producer: FutureProducer,
    topic: String,
    window: Duration,
    mut rx: mpsc::Receiver<v1::Attempt>,
    mut stop: mpsc::Receiver<()>,
) {
    let mut batches = Batches::default();
    let mut tick = tokio::time::interval(window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Acknowledgements are awaited only so that a failure is logged.
    let mut acks = Acks::new();
    loop {
        tokio::select! {
            Some(attempt) = rx.recv() => {
                if let Some(full) = batches.push(attempt) {
                    produce(&producer, &topic, [full], &mut acks).await;
                }
            }
            _ = tick.tick() => produce(&producer, &topic, batches.take_all(), &mut acks).await,
            Some(result) = acks.next(), if !acks.is_empty() => log_failure(result),
            _ = stop.recv() => break,
        }
    }
    while let Ok(attempt) = rx.try_recv() {
        if let Some(full) = batches.push(attempt) {
            produce(&producer, &topic, [full], &mut acks).await;
        }
    }
    produce(&producer, &topic, batches.take_all(), &mut acks).await;
    while let Some(result) = acks.next().await {
        log_failure(result);
    }
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    batches: impl IntoIterator<Item = (String, v1::AttemptBatch)>,
    acks: &mut Acks,
) {
    for (key, batch) in batches {
        hookline_runtime::metric_catalog::SENDER_ATTEMPT_RECORDS.get().increment(1);
        match kafka::enqueue(producer, topic, &key, &batch.encode_to_vec(), None).await {
            Ok(ack) => acks.push(Box::pin(kafka::acked(ack))),
            Err(error) => tracing::warn!(%error, attempts = batch.attempts.len(), "attempt records not written"),
        }
    }
}

fn log_failure(result: KafkaResult<()>) {
    if let Err(error) = result {
        tracing::warn!(%error, "attempt records not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(endpoint: &str, n: usize) -> v1::Attempt {
        v1::Attempt { event_id: format!("e{n}"), endpoint_id: endpoint.into(), attempt: 1, ..Default::default() }
    }

    #[test]
    fn batches_are_per_endpoint_and_keep_the_order_of_attempts() {
        let mut b = Batches::default();
        for n in 0..5 {
            assert!(b.push(attempt("a", n)).is_none());
            assert!(b.push(attempt("b", n)).is_none());
        }
        let mut all = b.take_all();
        all.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(all.len(), 2);
        for (key, batch) in all {
            assert!(batch.attempts.iter().all(|a| a.endpoint_id == key));
            let ids: Vec<_> = batch.attempts.iter().map(|a| a.event_id.as_str()).collect();
            assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
        }
        assert!(b.is_empty());
    }

    #[test]
    fn a_full_batch_comes_out_at_once_by_count_or_by_size() {
        let mut b = Batches::default();
        let full = (0..MAX_ATTEMPTS).find_map(|n| b.push(attempt("a", n))).expect("full at the count");
        assert_eq!(full.1.attempts.len(), MAX_ATTEMPTS);
        assert!(b.is_empty());

        let big = |n| v1::Attempt { response_excerpt: vec![b'x'; 64 * 1024], ..attempt("big", n) };
        let full = (0..10).find_map(|n| b.push(big(n))).expect("full by size");
        assert_eq!(full.1.attempts.len(), 4);
        assert!(full.1.encoded_len() < 1_000_000);
    }
}

//! Attempt records, written in batches: one `AttemptBatch` record per endpoint per short
//! window instead of one record per attempt. At fan-out 10 an attempt record per delivery
//! doubled the sender's produce work; the history API and the DLQ see the same attempts.
//!
//! Attempt records are history, not the delivery contract: a delivery never waits for its
//! record to be acknowledged, and a crash loses at most the window not yet written.
//!
//! A delivery adds its attempt to the batches itself, under a lock, and the writer task
//! wakes once per window (or when a batch is full), not once per attempt: handing each
//! attempt over a channel woke the writer for every delivery.

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use crate::attempt::RecordedHeaders;
use hookline_proto::v1;
use hookline_runtime::kafka::{self, FutureProducer};
use rdkafka::error::KafkaResult;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, Notify};
use tokio::task::JoinHandle;

/// Attempts one record holds at most (a full batch is written at once).
const MAX_ATTEMPTS: usize = 500;
/// Encoded bytes one record holds at most, well under Kafka's default 1 MB record limit.
const MAX_BYTES: usize = 256 * 1024;
/// Attempts waiting for the writer before `record` waits (back-pressure, as a full
/// producer queue would be).
const QUEUE: usize = 8_192;

/// One endpoint's attempts so far, already encoded as the `AttemptBatch` record they are
/// written as: an attempt is encoded once, when it is added, and dropped then.
#[derive(Default)]
pub struct Batch {
    pub record: Vec<u8>,
    pub attempts: usize,
}

/// Collects attempts per endpoint until a batch is full or the window ends. No IO.
#[derive(Default)]
pub struct Batches {
    pending: hookline_core::keyed::KeyedMap<Batch>,
}

impl Batches {
    /// Adds one attempt, with its request headers; returns its endpoint's batch when that is
    /// now full.
    pub fn push(&mut self, attempt: &v1::Attempt, headers: &RecordedHeaders) -> Option<(String, Batch)> {
        let batch = hookline_core::keyed::get_or_default(&mut self.pending, &attempt.endpoint_id);
        hookline_proto::append_attempt(&mut batch.record, attempt, headers.as_bytes());
        batch.attempts += 1;
        if batch.attempts < MAX_ATTEMPTS && batch.record.len() < MAX_BYTES {
            return None;
        }
        self.pending.remove_entry(&attempt.endpoint_id)
    }

    /// Every batch collected so far, each endpoint's attempts in the order they came.
    pub fn take_all(&mut self) -> Vec<(String, Batch)> {
        self.pending.drain().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What the deliveries and the writer share.
#[derive(Default)]
struct Pending {
    state: parking_lot::Mutex<State>,
    /// Wakes the writer: a batch is full, or all of them together are.
    full: Notify,
    /// Wakes deliveries waiting for room: the writer took what was held.
    room: Notify,
}

#[derive(Default)]
struct State {
    batches: Batches,
    /// Batches full, not yet taken by the writer.
    full: Vec<(String, Batch)>,
    /// Attempts in `batches` and `full`.
    held: usize,
    closed: bool,
}

impl State {
    /// The full batches, or with `all` every batch; what is left holds no attempt.
    fn take(&mut self, all: bool) -> Vec<(String, Batch)> {
        let mut taken = std::mem::take(&mut self.full);
        if all {
            taken.extend(self.batches.take_all());
        }
        self.held -= taken.iter().map(|(_, batch)| batch.attempts).sum::<usize>();
        taken
    }
}

/// The sender's attempt writer: a task that produces the batches.
pub struct AttemptLog {
    pending: Arc<Pending>,
    task: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl AttemptLog {
    /// Starts the writer, producing to `topic` every `window`.
    pub fn start(producer: FutureProducer, topic: String, window: Duration) -> Self {
        let pending = Arc::new(Pending::default());
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let task = tokio::spawn(write(producer, topic, window, Arc::clone(&pending), stop_rx));
        Self { pending, task: Mutex::new(Some((stop_tx, task))) }
    }

    /// Adds one attempt to its batch; waits only while the writer is that far behind.
    pub async fn record(&self, attempt: &v1::Attempt, headers: &RecordedHeaders) {
        loop {
            // Made before the check, so the writer's wake-up between the two is not lost.
            let room = self.pending.room.notified();
            {
                let mut state = self.pending.state.lock();
                if state.closed {
                    tracing::warn!("attempt record not written: the attempt log is closed");
                    return;
                }
                if state.held < QUEUE {
                    state.held += 1;
                    if let Some(full) = state.batches.push(attempt, headers) {
                        state.full.push(full);
                        self.pending.full.notify_one();
                    }
                    return;
                }
            }
            // Full: the writer takes everything now rather than at its next window.
            self.pending.full.notify_one();
            room.await;
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

async fn write(producer: FutureProducer, topic: String, window: Duration, pending: Arc<Pending>, mut stop: mpsc::Receiver<()>) {
    let take = |all: bool| {
        let taken = {
            let mut state = pending.state.lock();
            let all = all || state.held >= QUEUE;
            state.take(all)
        };
        pending.room.notify_waiters();
        taken
    };
    let mut tick = tokio::time::interval(window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Acknowledgements are awaited only so that a failure is logged.
    let mut acks = Acks::new();
    loop {
        tokio::select! {
            () = pending.full.notified() => produce(&producer, &topic, take(false), &mut acks).await,
            _ = tick.tick() => produce(&producer, &topic, take(true), &mut acks).await,
            Some(result) = acks.next(), if !acks.is_empty() => log_failure(result),
            _ = stop.recv() => break,
        }
    }
    pending.state.lock().closed = true;
    produce(&producer, &topic, take(true), &mut acks).await;
    while let Some(result) = acks.next().await {
        log_failure(result);
    }
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    batches: impl IntoIterator<Item = (String, Batch)>,
    acks: &mut Acks,
) {
    for (key, batch) in batches {
        hookline_runtime::metric_catalog::SENDER_ATTEMPT_RECORDS.get().increment(1);
        match kafka::enqueue(producer, topic, &key, &batch.record, None).await {
            Ok(ack) => acks.push(Box::pin(kafka::acked(ack))),
            Err(error) => tracing::warn!(%error, attempts = batch.attempts, "attempt records not written"),
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

    /// The attempts of a batch's record, as a reader of the topic decodes them.
    fn decoded(batch: &Batch) -> Vec<v1::Attempt> {
        let attempts = hookline_proto::attempts_in(&batch.record).expect("the record decodes");
        assert_eq!(attempts.len(), batch.attempts);
        attempts
    }

    #[test]
    fn a_record_is_the_attempt_batch_of_its_attempts() {
        let mut b = Batches::default();
        let mut sent = http::HeaderMap::new();
        sent.insert("webhook-id", http::HeaderValue::from_static("e0"));
        sent.insert("content-type", http::HeaderValue::from_static("application/json"));
        let headers = RecordedHeaders::of(&sent);
        let attempts: Vec<_> = (0..3).map(|n| attempt("a", n)).collect();
        attempts.iter().for_each(|a| assert!(b.push(a, &headers).is_none()));
        let (key, batch) = b.take_all().pop().expect("one batch");
        assert_eq!(key, "a");
        let with_headers: Vec<_> = attempts
            .into_iter()
            .map(|mut a| {
                a.request_headers = [("webhook-id", "e0"), ("content-type", "application/json")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
                a
            })
            .collect();
        // The same attempts as prost's own AttemptBatch (its headers' bytes come in the
        // request's order, where prost's come sorted).
        assert_eq!(decoded(&batch), with_headers);
    }

    #[test]
    fn batches_are_per_endpoint_and_keep_the_order_of_attempts() {
        let mut b = Batches::default();
        for n in 0..5 {
            assert!(b.push(&attempt("a", n), &RecordedHeaders::default()).is_none());
            assert!(b.push(&attempt("b", n), &RecordedHeaders::default()).is_none());
        }
        let mut all = b.take_all();
        all.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(all.len(), 2);
        for (key, batch) in all {
            let attempts = decoded(&batch);
            assert!(attempts.iter().all(|a| a.endpoint_id == key));
            let ids: Vec<_> = attempts.iter().map(|a| a.event_id.as_str()).collect();
            assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4"]);
        }
        assert!(b.is_empty());
    }

    #[test]
    fn the_writer_takes_the_full_batches_or_all_and_what_is_held_counts_what_is_left() {
        let mut state = State::default();
        let add = |state: &mut State, endpoint: &str, n: usize| {
            state.held += 1;
            if let Some(full) = state.batches.push(&attempt(endpoint, n), &RecordedHeaders::default()) {
                state.full.push(full);
            }
        };
        for n in 0..MAX_ATTEMPTS + 3 {
            add(&mut state, "a", n);
        }
        add(&mut state, "b", 0);
        assert_eq!(state.held, MAX_ATTEMPTS + 4);
        let full = state.take(false);
        assert_eq!(full.len(), 1, "only a's full batch");
        assert_eq!(decoded(&full[0].1).len(), MAX_ATTEMPTS);
        assert_eq!(state.held, 4, "a's three after the full batch and b's one");
        let mut rest = state.take(true);
        rest.sort_by(|x, y| x.0.cmp(&y.0));
        let sizes: Vec<(&str, usize)> = rest.iter().map(|(k, b)| (k.as_str(), decoded(b).len())).collect();
        assert_eq!(sizes, [("a", 3), ("b", 1)]);
        assert_eq!(state.held, 0);
        assert!(state.take(true).is_empty());
    }

    #[test]
    fn a_full_batch_comes_out_at_once_by_count_or_by_size() {
        let mut b = Batches::default();
        let full = (0..MAX_ATTEMPTS).find_map(|n| b.push(&attempt("a", n), &RecordedHeaders::default())).expect("full at the count");
        assert_eq!(decoded(&full.1).len(), MAX_ATTEMPTS);
        assert!(b.is_empty());

        let big = |n| v1::Attempt { response_excerpt: vec![b'x'; 64 * 1024], ..attempt("big", n) };
        let full = (0..10).find_map(|n| b.push(&big(n), &RecordedHeaders::default())).expect("full by size");
        assert_eq!(decoded(&full.1).len(), 4);
        assert!(full.1.record.len() < 1_000_000);
    }
}

//! rdkafka clients with Hookline's durability settings. librdkafka's defaults are not safe
//! for this job (no idempotence, new groups start at `latest`, a partitioner that differs
//! from Java's), so every setting that matters is explicit here.

use hookline_core::config::KafkaConfig;
use hookline_core::consume::LogFold;
use hookline_core::watermark::decode_done;
use std::collections::BTreeSet;
use parking_lot::Mutex;
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::OwnedHeaders;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

/// librdkafka's version and built-in features (codecs, TLS, SASL), for `hookline --version`.
pub fn client_version() -> String {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_else(|error| format!("unknown: {error}"));
    format!("librdkafka {version} ({features})")
}

fn base(cfg: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", client_id)
        // Surface broker-down quickly in logs instead of retrying silently forever.
        .set("reconnect.backoff.max.ms", "2000");
    c
}

/// Operator overrides (TLS, SASL, tuning) go last so they win over Hookline's settings.
fn with_overrides(mut c: ClientConfig, cfg: &KafkaConfig) -> ClientConfig {
    for (k, v) in &cfg.client {
        c.set(k, v);
    }
    c
}

/// An idempotent producer (acks=all), Java-compatible partitioning, the configured
/// compression, and a short linger so batches form under load without adding latency.
pub fn producer(cfg: &KafkaConfig, client_id: &str) -> KafkaResult<FutureProducer> {
    producer_lingering(cfg, client_id, 5)
}

/// A producer whose every send has a caller waiting for its acknowledgement (the API's
/// ingest answers only once Kafka has the event): no linger. Sends that come together
/// still share a batch while the previous produce request is on the wire. With 32
/// single-event requests at a time: about 4,900 events/s at p50 4.8 ms, against 3,270 at
/// p50 7.7 ms with a 5 ms linger (docs/performance.md).
pub fn request_producer(cfg: &KafkaConfig, client_id: &str) -> KafkaResult<FutureProducer> {
    producer_lingering(cfg, client_id, 0)
}

fn producer_lingering(cfg: &KafkaConfig, client_id: &str, linger_ms: u32) -> KafkaResult<FutureProducer> {
    let mut c = base(cfg, client_id);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("compression.type", cfg.compression.as_str())
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.max.bytes", crate::topics::WRAPPING_MAX_BYTES.to_string());
    with_overrides(c, cfg).create_with_context(QuietContext::new(client_id))
}

/// How often a group member reports its consumer lag (librdkafka's statistics).
pub const STATS_INTERVAL_MS: u32 = 10_000;

/// A group member whose offsets are stored by the application (only for finished work) and
/// committed by librdkafka in the background.
pub fn group_consumer(cfg: &KafkaConfig, group: &str, client_id: &str) -> KafkaResult<GroupConsumer> {
    let mut c = base(cfg, client_id);
    c.set("group.id", group)
        .set("enable.auto.commit", "true")
        // Often: a crash redoes what finished since the last commit (duplicates).
        .set("auto.commit.interval.ms", "200")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Transactions: records of aborted transactions are never delivered.
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // Consumer lag per partition comes from librdkafka's statistics (GroupContext::stats).
        .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
    // KIP-848's consumer group protocol (`kafka.client."group.protocol" = "consumer"`, Kafka
    // 4.0 and later) assigns on the broker, which also owns the session and heartbeat
    // (`group.consumer.*` broker and group configs); librdkafka refuses the three below with it.
    if cfg.client.get("group.protocol").is_none_or(|p| p == "classic") {
        // Incremental rebalancing: a member joining or leaving moves only the partitions
        // that change owner; the others keep delivering through the rebalance.
        c.set("partition.assignment.strategy", "cooperative-sticky")
            // Above the brokers' failover time (`broker.session.timeout.ms`, 9 s, plus the
            // election): while a dead broker is being fenced, its group coordinator may not
            // answer, and a shorter session makes every member give up, rejoin and rebalance
            // for a second pause. The price: a member that is SIGKILLed holds its partitions
            // this long before they move (docs/operations.md, "A broker dies").
            .set("session.timeout.ms", "30000")
            // A member learns that a rebalance began from its next heartbeat, and a
            // cooperative rebalance has two rounds, each waiting for every member: with 1 s
            // heartbeats the rounds took 1.87 s, with 250 ms 1.04 s (docs/performance.md).
            // The partitions that move wait for both rounds; those that keep their owner
            // pause only while the member serves a round's callback.
            .set("heartbeat.interval.ms", "250");
    }
    with_overrides(c, cfg).create_with_context(GroupContext::new(group, client_id))
}

/// A consumer outside any group, for reading a topic from its start (the state topics,
/// replay ranges). An offset that retention has deleted resumes at the earliest record
/// left, never at the end.
pub fn reader(cfg: &KafkaConfig, client_id: &str) -> KafkaResult<Reader> {
    let mut c = base(cfg, client_id);
    // Under the topic prefix, like every group: the prefixed group ACL covers it.
    c.set("group.id", format!("{}.{client_id}.reader", cfg.topic_prefix))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    with_overrides(c, cfg).create_with_context(QuietContext::new(client_id))
}

/// A consumer that reads single partitions at chosen offsets to find unreadable records
/// ([`crate::consume`]); it never commits.
pub fn probe(cfg: &KafkaConfig, client_id: &str) -> KafkaResult<BaseConsumer<ProbeContext>> {
    let mut c = base(cfg, client_id);
    c.set("group.id", format!("{}.{client_id}.probe", cfg.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    with_overrides(c, cfg).create_with_context(ProbeContext)
}

/// The probe expects to fail: what it meets is reported by the role, not logged again.
pub struct ProbeContext;

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "probe consumer error");
    }
}

impl ConsumerContext for ProbeContext {}

pub type GroupConsumer = StreamConsumer<GroupContext>;
/// Hookline's producers and plain readers: librdkafka's repeated lines folded.
pub type FutureProducer = rdkafka::producer::FutureProducer<QuietContext>;
pub type Reader = StreamConsumer<QuietContext>;

/// A client's own log lines and errors, folded: librdkafka repeats a line on every retry
/// (each reconnect to a dead broker, each fetch of a batch it cannot read). Each distinct
/// line is logged once, then at most once per 10 s with the count of repeats in between.
pub struct QuietContext {
    client_id: String,
    /// Per line (its text without the part that varies).
    logged: Mutex<LogFold<String>>,
}

impl QuietContext {
    fn new(client_id: &str) -> Self {
        Self { client_id: client_id.to_owned(), logged: Mutex::default() }
    }

    /// How many times `key` came since it was last logged, if it is due again.
    fn due(&self, key: String) -> Option<u64> {
        self.logged.lock().due(key, crate::time::now_ms())
    }
}

/// A librdkafka line without what changes from one repeat to the next ("(after 0ms in state
/// CONNECT, 1 identical error(s) suppressed)").
fn fold_key(fac: &str, message: &str) -> String {
    let stable = message.find(" (after ").map_or(message, |at| &message[..at]);
    format!("{fac} {stable}")
}

impl ConsumerContext for QuietContext {}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let client = &self.client_id;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                if let Some(repeats) = self.due(fold_key(fac, log_message)) {
                    tracing::error!(target: "librdkafka", %client, fac, repeats, "{log_message}");
                }
            }
            RDKafkaLogLevel::Warning => {
                if let Some(repeats) = self.due(fold_key(fac, log_message)) {
                    tracing::warn!(target: "librdkafka", %client, fac, repeats, "{log_message}");
                }
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", %client, fac, "{log_message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", %client, fac, "{log_message}"),
        }
    }

    /// librdkafka repeats an error on every retry (a dead broker, a batch it cannot read):
    /// each code is logged once, then at most once per 10 s with the count in between.
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().map_or_else(|| error.to_string(), |c| format!("{c:?}"));
        if let Some(repeats) = self.due(format!("error {code}")) {
            tracing::warn!(client = %self.client_id, %error, reason, repeats, "kafka client error");
        }
    }
}

type HandOver = Box<dyn Fn(&[(String, i32)]) + Send + Sync>;
type OnMoved = Box<dyn Fn(Moved, &[(String, i32)]) + Send + Sync>;

/// Logs rebalances and failed commits, and remembers revoked partitions so the consuming
/// loop can drop their in-flight bookkeeping.
pub struct GroupContext {
    client_id: String,
    group: String,
    /// Partitions whose lag this member reported at the last statistics.
    lagging: Mutex<BTreeSet<(String, i32)>>,
    quiet: QuietContext,
    /// Called with partitions about to be revoked, before they go ([`Self::on_revoke`]).
    hand_over: std::sync::OnceLock<HandOver>,
    /// The role's own part of each move ([`Self::on_moved`]).
    moved: std::sync::OnceLock<OnMoved>,
    revoked: Mutex<Vec<(String, i32)>>,
    assigned: std::sync::atomic::AtomicUsize,
    /// Per newly assigned partition: offsets its previous owner finished beyond the committed
    /// offset (read from the commit metadata), to be skipped rather than done again.
    inherited: Mutex<std::collections::HashMap<(String, i32), BTreeSet<i64>>>,
}

impl GroupContext {
    fn new(group: &str, client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            group: group.to_owned(),
            lagging: Mutex::default(),
            quiet: QuietContext::new(client_id),
            hand_over: std::sync::OnceLock::new(),
            moved: std::sync::OnceLock::new(),
            revoked: Mutex::new(Vec::new()),
            assigned: Default::default(),
            inherited: Mutex::default(),
        }
    }

    /// Partitions currently assigned to this member.
    pub fn assigned(&self) -> usize {
        self.assigned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the previous owner of a partition finished beyond its committed offset (once).
    pub fn take_inherited(&self, topic: &str, partition: i32) -> Option<BTreeSet<i64>> {
        let mut inherited = self.inherited.lock();
        if inherited.is_empty() {
            return None;
        }
        inherited.remove(&(topic.to_owned(), partition))
    }

    /// Sets what runs when partitions are about to be revoked (once; later calls are ignored):
    /// the role finishes and commits their work there, so the next owner does not redo it.
    pub fn on_revoke(&self, hand_over: impl Fn(&[(String, i32)]) + Send + Sync + 'static) {
        let _ = self.hand_over.set(Box::new(hand_over));
    }

    /// Sets the role's own work when partitions move (once; later calls are ignored): run on
    /// the consumer's poll, after the hand-over of revoked partitions and after assigned
    /// ones' inherited work is read, so before any record of an assigned partition is read.
    pub fn on_moved(&self, moved: impl Fn(Moved, &[(String, i32)]) + Send + Sync + 'static) {
        let _ = self.moved.set(Box::new(moved));
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock())
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.quiet.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason);
    }

    /// `hookline_consumer_lag{group, topic, partition}`: records between the partition's
    /// high watermark and the group's committed offset, for each partition this member reads
    /// (librdkafka's `consumer_lag`, every [`STATS_INTERVAL_MS`]). A partition it no longer
    /// reports (revoked) is set to 0, so `max by (group, topic, partition)` over the members
    /// is its current owner's figure and never a stale one.
    fn stats(&self, statistics: Statistics) {
        let now = partition_lags(&statistics);
        let mut lagging = self.lagging.lock();
        for (topic, partition) in lagging.iter() {
            if !now.iter().any(|(t, p, _)| t == topic && p == partition) {
                lag_gauge(&self.group, topic, *partition).set(0.0);
            }
        }
        lagging.clear();
        for (topic, partition, lag) in now {
            lag_gauge(&self.group, &topic, partition).set(lag as f64);
            lagging.insert((topic, partition));
        }
    }
}

/// Each partition's consumer lag in librdkafka's statistics: only those it knows (-1 is
/// "unknown": a partition this member does not read, or before the first commit or fetch),
/// without the internal partition -1.
fn partition_lags(statistics: &Statistics) -> Vec<(String, i32, i64)> {
    let mut lags: Vec<(String, i32, i64)> = statistics
        .topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(move |p| (topic.clone(), p.partition, p.consumer_lag))
        })
        .collect();
    lags.sort();
    lags
}

fn lag_gauge(group: &str, topic: &str, partition: i32) -> metrics::Gauge {
    crate::metric_catalog::CONSUMER_LAG.with([group.to_owned(), topic.to_owned(), partition.to_string()])
}

impl ConsumerContext for GroupContext {
    /// Revocations and assignments are deltas under cooperative rebalancing (the whole set
    /// under the eager protocol): the count follows both.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        use std::sync::atomic::Ordering::Relaxed;
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(client = %self.client_id, partitions = ?parts, "partitions revoked");
                if let Some(hand_over) = self.hand_over.get() {
                    hand_over(&parts);
                }
                if let Some(moved) = self.moved.get() {
                    moved(Moved::Revoked, &parts);
                }
                let n = parts.len();
                self.revoked.lock().extend(parts);
                let _ = self.assigned.fetch_update(Relaxed, Relaxed, |a| Some(a.saturating_sub(n)));
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> =
                    tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
                tracing::info!(client = %self.client_id, partitions = ?parts, "partitions assigned");
                self.assigned.fetch_add(parts.len(), Relaxed);
            }
            Rebalance::Error(error) => tracing::warn!(client = %self.client_id, %error, "rebalance error"),
        }
    }

    /// Reads what the assigned partitions' previous owner finished beyond the committed
    /// offset, then runs the role's own part ([`Self::on_moved`]).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else { return };
        if tpl.count() == 0 {
            return;
        }
        self.inherit(consumer, tpl);
        if let Some(moved) = self.moved.get() {
            let parts: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            moved(Moved::Assigned, &parts);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(client = %self.client_id, %error, "offset commit failed"),
        }
    }
}

impl GroupContext {
    /// Reads, for the partitions just assigned, what their previous owner finished beyond
    /// the committed offset (the commit metadata), so that work is not done twice.
    fn inherit(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // A coordinator that is moving answers NotCoordinator for a moment.
        let read = || consumer.committed_offsets(tpl.clone(), std::time::Duration::from_secs(5));
        let committed = match crate::consume::retry_unanswered(std::time::Duration::from_secs(5), read) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(client = %self.client_id, %error, "committed offsets not read; finished work may be redone");
                return;
            }
        };
        let mut inherited = self.inherited.lock();
        for e in committed.elements() {
            let Offset::Offset(next) = e.offset() else { continue };
            let done = decode_done(next, e.metadata());
            if !done.is_empty() {
                tracing::debug!(client = %self.client_id, topic = e.topic(), partition = e.partition(), next, skipped = done.len(), "finished work inherited");
                inherited.insert((e.topic().to_owned(), e.partition()), done);
            }
        }
    }
}

/// Which way partitions moved ([`GroupContext::on_moved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Revoked,
    Assigned,
}

/// Stores the positions of `tpl` (each the offset after the last finished record, with
/// what finished beyond it as metadata) for the next auto-commit. A partition that is no
/// longer assigned refuses the store; that is expected after a rebalance and only logged.
pub fn store_offsets<C: ConsumerContext>(consumer: &StreamConsumer<C>, tpl: &TopicPartitionList) {
    if let Err(error) = consumer.store_offsets(tpl) {
        tracing::debug!(partitions = tpl.count(), %error, "offsets not stored (partition revoked?)");
    }
}

/// A Kafka record turned into owned values at the boundary.
#[derive(Debug, Clone, Default)]
pub struct OwnedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Vec<u8>,
    /// Copied once from librdkafka's buffer; a message decoded from it with
    /// `decode(value.clone())` holds its `bytes` fields (an event's payload) as slices of
    /// it, not as copies.
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OwnedRecord {
    pub fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
            .unwrap_or_default();
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            key: m.key().map(<[u8]>::to_vec).unwrap_or_default(),
            value: m.payload().map(Bytes::copy_from_slice),
            headers,
        }
    }

    /// The record's coordinates for a dead letter, with its raw value when `keep_value` (a
    /// record that could not be decoded is kept whole; one that was is in the dead letter
    /// already).
    pub fn source(&self, keep_value: bool) -> hookline_proto::v1::SourceRecord {
        hookline_proto::v1::SourceRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            timestamp_ms: self.timestamp_ms,
            key: self.key.clone(),
            raw_value: if keep_value { self.value.as_deref().map(<[u8]>::to_vec).unwrap_or_default() } else { Vec::new() },
        }
    }

    /// The first header named `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Enqueues one record without waiting for its acknowledgement (await the returned future
/// for that). A full local queue is back-pressure: wait for librdkafka to drain and retry.
/// Any other error is a local, persistent problem and is returned.
pub async fn enqueue<C: ClientContext + 'static>(
    producer: &rdkafka::producer::FutureProducer<C>,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: Option<OwnedHeaders>,
) -> KafkaResult<DeliveryFuture> {
    enqueue_to(producer, topic, At::default(), key, value, headers).await
}

/// Where and when [`enqueue_to`] puts a record.
#[derive(Debug, Clone, Copy, Default)]
pub struct At {
    /// The partition (`None`: the partitioner's, by key).
    pub partition: Option<i32>,
    /// The record's timestamp, ms (`None`: when it is produced).
    pub timestamp_ms: Option<i64>,
}

impl At {
    /// Where a dead letter goes, whichever role writes it: by key, with its own `dead_at_ms`
    /// as the record's time. A replay of chosen dead letters selects records by time, from
    /// the earliest `dead_at_ms` to the latest (the console's selection), so a dead letter's
    /// record time must be the one the API shows.
    pub fn dead_letter(dead: &hookline_proto::v1::DeadLetter) -> Self {
        Self { partition: None, timestamp_ms: Some(dead.dead_at_ms) }
    }
}

/// [`enqueue`] to a chosen partition, or with a chosen timestamp.
pub async fn enqueue_to<C: ClientContext + 'static>(
    producer: &rdkafka::producer::FutureProducer<C>,
    topic: &str,
    at: At,
    key: &str,
    value: &[u8],
    headers: Option<OwnedHeaders>,
) -> KafkaResult<DeliveryFuture> {
    loop {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        if let Some(p) = at.partition {
            record = record.partition(p);
        }
        if let Some(ms) = at.timestamp_ms {
            record = record.timestamp(ms);
        }
        if let Some(h) = headers.clone() {
            record = record.headers(h);
        }
        match producer.send_result(record) {
            Ok(ack) => return Ok(ack),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Waits for a produce acknowledgement.
pub async fn acked(ack: DeliveryFuture) -> KafkaResult<()> {
    match ack.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(error),
        Err(_canceled) => Err(KafkaError::Canceled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_decoded_from_a_record_holds_the_payload_as_a_slice_of_it() {
        use hookline_proto::{v1, Message as _};
        let event = v1::Event { id: "evt_1".into(), payload: Bytes::from_static(&[7; 300]), ..Default::default() };
        let delivery = v1::Delivery { event: Some(event), endpoint_id: "ep".into(), ..Default::default() };
        let record = OwnedRecord { value: Some(delivery.encode_to_vec().into()), ..Default::default() };
        let value = record.value.clone().expect("value");
        let decoded = v1::Delivery::decode(value.clone()).expect("decodes");
        let payload = &decoded.event.as_ref().expect("event").payload;
        assert_eq!(payload.as_ref(), [7; 300]);
        let within = value.as_ptr_range();
        assert!(within.contains(&payload.as_ptr()), "the payload points into the record's bytes: no copy");
    }

    #[test]
    fn lag_is_reported_for_known_partitions_only() {
        use rdkafka::statistics::{Partition, Topic};
        let topic = |parts: &[(i32, i64)]| Topic {
            partitions: parts
                .iter()
                .map(|&(partition, consumer_lag)| (partition, Partition { partition, consumer_lag, ..Default::default() }))
                .collect(),
            ..Default::default()
        };
        let mut stats = Statistics::default();
        // -1: a partition this member does not read; partition -1: librdkafka's own.
        stats.topics.insert("hookline.deliveries".into(), topic(&[(0, 42), (1, -1), (2, 0), (-1, 7)]));
        stats.topics.insert("hookline.retry.5m".into(), topic(&[(3, 9)]));
        assert_eq!(
            partition_lags(&stats),
            vec![
                ("hookline.deliveries".to_owned(), 0, 42),
                ("hookline.deliveries".to_owned(), 2, 0),
                ("hookline.retry.5m".to_owned(), 3, 9),
            ]
        );
    }

    #[test]
    fn a_repeated_librdkafka_line_is_logged_once_per_period() {
        let quiet = QuietContext::new("t");
        let line = |after: u32| {
            fold_key("FAIL", &format!("127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after {after}ms in state CONNECT)"))
        };
        assert_eq!(line(0), line(17), "the varying suffix is not part of the key");
        assert_eq!(quiet.due(line(0)), Some(1), "the first is logged");
        assert_eq!(quiet.due(line(3)), None, "a repeat within the period is counted, not logged");
        assert_eq!(quiet.due(line(5)), None);
        let other = fold_key("FAIL", "127.0.0.1:9093/2: Connect to ipv4#127.0.0.1:9093 failed: Connection refused");
        assert_eq!(quiet.due(other), Some(1), "another broker's line is its own");
        // Once the period is over, the next is logged with the count since the last one.
        let later = crate::time::now_ms() + hookline_core::consume::LOG_EVERY_MS;
        assert_eq!(quiet.logged.lock().due(line(9), later), Some(3));
    }
}

//! Parked lanes. An ordered lane that cannot move (its head has failed for
//! `sender.lane_park_after_ms`, or its endpoint holds `sender.max_queued_per_endpoint`
//! deliveries in this sender) moves out of the way: its head, then every later delivery of
//! the lane, in order, goes to the parked topic, on the partition of the same number as its
//! deliveries partition. Their deliveries-topic offsets are then released, so the lane holds
//! neither its partition's commit nor the sender's window, and the partition's other
//! endpoints keep moving. While any of a lane's deliveries waits there, the lane is parked
//! and its new deliveries are parked behind them; it unparks when the last one ends.
//!
//! The sender that owns deliveries partition p reads parked partition p (by assignment, in
//! the group `<prefix>.sender-parked`) and runs those deliveries through the same
//! per-endpoint worker and lane, in order. When it is assigned p, it first counts what waits
//! on parked partition p (from the committed position to the end), before reading any record
//! of p, so it knows which lanes are parked.

use crate::deliver::Shared;
use crate::workers::{Ended, Spill};
use futures::future::BoxFuture;
use hookline_core::lane::ParkedLanes;
use hookline_runtime::consume::retry_unanswered;
use hookline_runtime::intake::stop_on;
use hookline_runtime::intake::ByHand;
use hookline_runtime::kafka::{self, FutureProducer, Moved, OwnedRecord};
use hookline_runtime::metric_catalog;
use hookline_runtime::offsets::OffsetTracker;
use parking_lot::Mutex;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::DeliveryFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Header of a parked record: its ordered lane.
pub const LANE_HEADER: &str = "hookline-lane";
/// Header of a parked record: its offset in the deliveries topic, which stays its
/// `webhook-sequence`.
pub const SEQUENCE_HEADER: &str = "hookline-sequence";

/// Header a sender puts on a parked record it read (never written to Kafka): the assignment
/// of its partition it was read in. A record read before its partition went away and came
/// back is stale: it neither delivers nor counts.
const ASSIGNMENT_HEADER: &str = "hookline-assignment";

/// How long counting a parked partition may take before its lanes are taken as unparked.
const SCAN_LIMIT: Duration = Duration::from_secs(30);
/// How long a count that Kafka could not answer (no coordinator, a timeout) is tried again.
const COUNT_RETRY: Duration = Duration::from_secs(5);

/// Where a record stands in its lane: its deliveries-topic offset, which a parked record
/// carries with it.
pub fn sequence(record: &OwnedRecord) -> i64 {
    record.header(SEQUENCE_HEADER).and_then(|s| s.parse().ok()).unwrap_or(record.offset)
}

/// The parked lanes of one sender.
pub struct Parking {
    topic: String,
    producer: FutureProducer,
    lanes: Mutex<ParkedLanes>,
    /// The current assignment of each parked partition this sender reads.
    assignments: Mutex<std::collections::HashMap<i32, u64>>,
    next_assignment: std::sync::atomic::AtomicU64,
    /// `sender.lane_park_after_ms`.
    pub park_after_ms: i64,
    /// The offsets of the deliveries topic (a parked record releases its own there).
    deliveries: Arc<OffsetTracker>,
    /// The offsets of the parked topic.
    parked: Arc<OffsetTracker>,
}

impl Parking {
    pub fn new(topic: String, producer: FutureProducer, park_after_ms: u64, deliveries: Arc<OffsetTracker>, parked: Arc<OffsetTracker>) -> Self {
        Self {
            topic,
            producer,
            lanes: Mutex::default(),
            assignments: Mutex::default(),
            next_assignment: Default::default(),
            park_after_ms: i64::try_from(park_after_ms).unwrap_or(i64::MAX),
            deliveries,
            parked,
        }
    }

    /// Whether `record` was read from the parked topic.
    pub fn is_parked_record(&self, record: &OwnedRecord) -> bool {
        record.topic == self.topic
    }

    /// Marks a record just read from the parked topic with its partition's assignment.
    pub fn stamp(&self, record: &mut OwnedRecord) {
        let assignment = self.assignments.lock().get(&record.partition).copied().unwrap_or(u64::MAX);
        record.headers.push((ASSIGNMENT_HEADER.to_owned(), assignment.to_string().into_bytes()));
    }

    /// Whether `record` is still this sender's to work on as far as parking knows: a record of
    /// the deliveries topic always; a parked one when it was read in its partition's current
    /// assignment.
    pub fn is_current(&self, record: &OwnedRecord) -> bool {
        if !self.is_parked_record(record) {
            return true;
        }
        let read_in = record.header(ASSIGNMENT_HEADER).and_then(|a| a.parse::<u64>().ok());
        read_in.is_some() && read_in == self.assignments.lock().get(&record.partition).copied()
    }

    /// The offsets `record` is tracked in: the parked topic's, or the deliveries topic's.
    pub fn tracker(&self, record: &OwnedRecord) -> &Arc<OffsetTracker> {
        if self.is_parked_record(record) { &self.parked } else { &self.deliveries }
    }

    /// Whether `lane` of the record's endpoint is parked on the record's partition.
    pub fn lane_is_parked(&self, record: &OwnedRecord, lane: &str) -> bool {
        self.lanes.lock().is_parked(record.partition, &String::from_utf8_lossy(&record.key), lane)
    }

    /// The ordered lane of a parked record (it carries it).
    pub fn lane_of(record: &OwnedRecord) -> Option<String> {
        record.header(LANE_HEADER).map(str::to_owned)
    }

    /// Enqueues a record of `lane` on the parked topic, behind the lane's parked ones, and
    /// counts it. Call in lane order: records are enqueued in call order.
    pub async fn enqueue(&self, record: &OwnedRecord, lane: &str) -> KafkaResult<DeliveryFuture> {
        let endpoint = String::from_utf8_lossy(&record.key);
        self.lanes.lock().parked(record.partition, &endpoint, lane);
        metric_catalog::SENDER_DELIVERIES_PARKED.get().increment(1);
        let sequence = sequence(record).to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: LANE_HEADER, value: Some(lane) })
            .insert(Header { key: SEQUENCE_HEADER, value: Some(sequence.as_str()) });
        if let Some(tp) = record.header("traceparent") {
            headers = headers.insert(Header { key: "traceparent", value: Some(tp) });
        }
        let value = record.value.as_deref().unwrap_or_default();
        let at = kafka::At { partition: Some(record.partition), ..Default::default() };
        kafka::enqueue_to(&self.producer, &self.topic, at, &endpoint, value, Some(headers)).await
    }

    /// Once a parked copy is acknowledged: releases the record's own offset (a parked record
    /// parked again behind its lane's new head also ends as a parked one).
    pub fn released(&self, record: &OwnedRecord) {
        self.tracker(record).complete(&record.topic, record.partition, record.offset);
        if self.is_parked_record(record) {
            self.ended(record);
        }
    }

    /// A parked record ended (delivered, dead-lettered, or finished before): one fewer
    /// waits in its lane.
    pub fn ended(&self, record: &OwnedRecord) {
        let Some(lane) = Self::lane_of(record).filter(|_| self.is_current(record)) else { return };
        if self.lanes.lock().ended(record.partition, &String::from_utf8_lossy(&record.key), &lane) {
            tracing::info!(endpoint_id = %String::from_utf8_lossy(&record.key), lane, partition = record.partition, "ordered lane unparked");
        }
    }

    /// Lanes parked now, over this sender's partitions.
    pub fn parked_lanes(&self) -> usize {
        self.lanes.lock().lanes()
    }

    /// The sender's part of a move of deliveries partitions (run on the deliveries consumer's
    /// poll, so before any record of an assigned partition is read): a revoked partition's
    /// parked partition is handed over with it; an assigned one's is counted, then read.
    pub fn partitions_moved(&self, by_hand: &ByHand, cfg: &hookline_core::config::KafkaConfig, moved: Moved, parts: &[(String, i32)]) {
        let parked: Vec<(String, i32)> = parts.iter().map(|(_, p)| (self.topic.clone(), *p)).collect();
        match moved {
            Moved::Revoked => {
                by_hand.revoke(&parked);
                let mut lanes = self.lanes.lock();
                let mut assignments = self.assignments.lock();
                for (_, p) in &parked {
                    lanes.forget(*p);
                    assignments.remove(p);
                }
            }
            Moved::Assigned => {
                {
                    use std::sync::atomic::Ordering::Relaxed;
                    let mut assignments = self.assignments.lock();
                    for (_, p) in &parked {
                        assignments.insert(*p, self.next_assignment.fetch_add(1, Relaxed));
                    }
                }
                let started = Instant::now();
                let counted = retry_unanswered(COUNT_RETRY, || self.count(by_hand, cfg, &parked));
                match counted {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, lanes = self.parked_lanes(), took_ms = started.elapsed().as_millis() as u64, "parked lanes counted"),
                    Err(error) => tracing::error!(%error, "parked lanes not counted: lanes parked by the previous owner may be overtaken"),
                }
                if let Err(error) = by_hand.assign(&parked) {
                    tracing::error!(%error, partitions = ?parked, "parked partitions not assigned: their lanes wait");
                }
            }
        }
    }

    /// Counts the records waiting on `parts` of the parked topic (from each one's committed
    /// position to its end) into the parked lanes, from nothing: a count tried again after
    /// one that failed half-way counts no record twice. Blocking; two requests when nothing
    /// is parked (the committed positions and the ends, each for every partition at once).
    fn count(&self, by_hand: &ByHand, cfg: &hookline_core::config::KafkaConfig, parts: &[(String, i32)]) -> KafkaResult<usize> {
        {
            let mut lanes = self.lanes.lock();
            for (_, p) in parts {
                lanes.forget(*p);
            }
        }
        let (mut positions, mut ends) = (rdkafka::TopicPartitionList::new(), rdkafka::TopicPartitionList::new());
        for (topic, partition) in parts {
            positions.add_partition(topic, *partition);
            ends.add_partition_offset(topic, *partition, rdkafka::Offset::End)?;
        }
        let committed = by_hand.consumer().committed_offsets(positions, Duration::from_secs(10))?;
        let ends = by_hand.consumer().offsets_for_times(ends, Duration::from_secs(10))?;
        let offset = |list: &rdkafka::TopicPartitionList, topic: &str, partition: i32| match list.find_partition(topic, partition).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let mut scan: Option<rdkafka::consumer::BaseConsumer<kafka::ProbeContext>> = None;
        let mut counted = 0;
        for (topic, partition) in parts {
            let high = offset(&ends, topic, *partition).unwrap_or(0);
            let from = offset(&committed, topic, *partition);
            if high == 0 || from.is_some_and(|from| from >= high) {
                continue; // the common case: nothing parked
            }
            let consumer = match &scan {
                Some(c) => c,
                None => scan.insert(kafka::probe(cfg, "hookline-sender-parked-count")?),
            };
            let mut at = rdkafka::TopicPartitionList::new();
            at.add_partition_offset(topic, *partition, from.map_or(rdkafka::Offset::Beginning, rdkafka::Offset::Offset))?;
            consumer.assign(&at)?;
            let deadline = Instant::now() + SCAN_LIMIT;
            let mut next = from.unwrap_or(0);
            while next < high {
                if Instant::now() > deadline {
                    return Err(KafkaError::Canceled);
                }
                let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                    // Offsets without a record to read (transaction markers, or records
                    // deleted by retention) end it too.
                    let position = consumer.position()?;
                    match offset(&position, topic, *partition) {
                        Some(o) if o >= high => break,
                        _ => continue,
                    }
                };
                let record = OwnedRecord::from_message(&message?);
                next = record.offset + 1;
                if let Some(lane) = Self::lane_of(&record) {
                    self.lanes.lock().parked(*partition, &String::from_utf8_lossy(&record.key), &lane);
                    counted += 1;
                }
            }
        }
        Ok(counted)
    }
}

/// The sender's [`Spill`]: parks through [`Parking`], stopping the role when Kafka refuses.
pub struct Spiller(pub Arc<Shared>);

impl Spill for Spiller {
    fn is_parked_record(&self, record: &OwnedRecord) -> bool {
        self.0.parking.is_parked_record(record)
    }

    fn lane_is_parked(&self, record: &OwnedRecord, lane: &str) -> bool {
        self.0.parking.lane_is_parked(record, lane)
    }

    // Two steps on purpose: the enqueue (awaited in lane order), then the acknowledgement.
    #[allow(clippy::async_yields_async)]
    fn park(&self, record: OwnedRecord, lane: String) -> BoxFuture<'static, BoxFuture<'static, Ended>> {
        let shared = Arc::clone(&self.0);
        Box::pin(async move {
            // A revoked partition's records are its new owner's (it counted the parked lanes
            // when it was assigned the partition).
            if !shared.parking.tracker(&record).owns(&record.topic, record.partition) {
                return Box::pin(async { Ended::Abandoned }) as BoxFuture<'static, Ended>;
            }
            match shared.parking.enqueue(&record, &lane).await {
                Err(error) => {
                    stop_on(&shared.fatal, error, &record);
                    Box::pin(async { Ended::Abandoned })
                }
                Ok(ack) => Box::pin(async move {
                    match kafka::acked(ack).await {
                        Ok(()) => {
                            shared.parking.released(&record);
                            Ended::Parked
                        }
                        Err(error) => {
                            stop_on(&shared.fatal, error, &record);
                            Ended::Abandoned
                        }
                    }
                }),
            }
        })
    }
}

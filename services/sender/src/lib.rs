//! The sender: reads `Delivery` records from the deliveries topic and the retry tiers, signs
//! and POSTs each to its endpoint, records every attempt (in per-endpoint batches), and hands every
//! failure on: to the next retry tier, or to the DLQ when the schedule is used up.
//!
//! - [`client`]: the pooled HTTP client and its SSRF-checking resolver.
//! - [`attempt`]: one signed request and the classification of its result.
//! - [`auth`]: an endpoint's `Authorization` (basic, bearer, OAuth2 tokens fetched and cached).
//! - [`attempt_log`]: attempt records, batched per endpoint.
//! - `ops`: the operational webhooks a sender publishes (failing, recovered, exhausted).
//! - [`endpoints`]: per-endpoint bulkhead, token bucket, circuit breaker and schedule.
//! - [`deliver`]: one record handled to its end.
//! - [`lateness`]: how late deliveries are (end-to-end latency, time to first attempt).
//! - [`workers`]: long-lived per-endpoint workers that run their endpoint's deliveries
//!   (an ordered lane's one at a time).
//! - [`ordered`]: ordered endpoints' lanes: retries in place, blocked heads, sequences.
//! - [`parked`]: lanes that cannot move, parked on the parked topic and read back.
//! - this file: wiring, and the three intake loops (the deliveries topic; the retry tiers,
//!   whose partitions are held until their head record is due; the parked topic).
//!
//! A record's offset is released only after it succeeded, or its next tier record or dead
//! letter is acknowledged by Kafka, so a crash at any point re-sends (never drops) it.

pub mod attempt;
pub mod attempt_log;
pub mod auth;
pub mod client;
pub mod deliver;
pub mod endpoints;
pub mod lateness;
pub mod ordered;
mod ops;
pub mod parked;
pub mod workers;

use attempt::Attempter;
use deliver::{Shared, DUE_HEADER};
use endpoints::EndpointRuntimes;
use futures::StreamExt;
use hookline_core::address::AddressPolicy;
use hookline_core::config::Config;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::consume::Role;
use hookline_runtime::intake::{Intake, Next};
use hookline_runtime::health::Health;
use hookline_runtime::kafka::{self, GroupConsumer, OwnedRecord};
use hookline_runtime::metric_catalog;
use hookline_runtime::registry::EndpointRegistry;
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::time::now_ms;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::time::DelayQueue;

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("kafka client setup")]
    Setup(#[from] KafkaError),
    #[error("tls setup")]
    Tls(#[from] rustls::Error),
    #[error("{0:#}")]
    CaFile(anyhow::Error),
    #[error("a retry or dead letter could not be written; stopping so the delivery is read again")]
    HandOff(#[source] KafkaError),
}

/// Extra time on top of the request timeout that shutdown waits for in-flight attempts.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);
/// How often the sender's gauges are set.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Runs the sender until `shutdown`, resolving hosts with the system resolver.
pub async fn run(
    cfg: Config,
    registry: Arc<EndpointRegistry>,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), SenderError> {
    let policy = Arc::new(address_policy(&cfg));
    let resolver = client::PolicyResolver::system(Arc::clone(&policy));
    run_with_resolver(cfg, registry, health, resolver, policy, shutdown).await
}

/// The SSRF policy the configuration asks for.
pub fn address_policy(cfg: &Config) -> AddressPolicy {
    AddressPolicy::new(cfg.sender.allowed_cidrs.clone(), cfg.sender.allow_loopback)
}

/// Runs the sender with a chosen resolver (tests answer DNS themselves).
pub async fn run_with_resolver(
    cfg: Config,
    registry: Arc<EndpointRegistry>,
    health: Arc<Health>,
    resolver: client::PolicyResolver,
    policy: Arc<AddressPolicy>,
    shutdown: Shutdown,
) -> Result<(), SenderError> {
    let topics = cfg.topics();
    let producer = kafka::producer(&cfg.kafka, "hookline-sender")?;
    // Both consumers stop on the process shutdown, and on a hand-off failure in either.
    let stop = shutdown.child_token();
    let intake = |role| Intake::new(role, &cfg, cfg.sender.max_in_flight, producer.clone(), Arc::clone(&health), stop.clone());
    let (mut fresh, mut retries, mut parked) = (intake(Role::Sender)?, intake(Role::SenderRetries)?, intake(Role::SenderParked)?);
    let settings = client::ClientSettings {
        connect_timeout: Duration::from_millis(cfg.sender.connect_timeout_ms),
        pool_max_idle_per_host: cfg.sender.pool_max_idle_per_host,
        extra_roots: if cfg.sender.ca_file.is_empty() {
            Vec::new()
        } else {
            client::read_ca_file(&cfg.sender.ca_file).map_err(SenderError::CaFile)?
        },
    };
    let request_timeout = Duration::from_millis(cfg.sender.request_timeout_ms);
    let schedule = cfg.retry.schedule.clone();
    let (fatal_tx, mut fatal_rx) = mpsc::channel::<KafkaError>(1);
    // Attempts stop at the process shutdown; waiting work is left for the next owner.
    let work_shutdown = shutdown.child_token();
    let shared = Arc::new(Shared {
        registry: Arc::clone(&registry),
        attempter: Attempter::new(client::build(resolver.clone(), &settings)?, policy, request_timeout)
            .with_endpoint_clients(client::EndpointClients::new(resolver, settings)),
        attempts: attempt_log::AttemptLog::start(
            producer.clone(),
            topics.attempts.clone(),
            Duration::from_millis(cfg.sender.attempt_batch_ms),
        ),
        producer: producer.clone(),
        topics: topics.clone(),
        endpoints: EndpointRuntimes::new(
            cfg.sender.max_in_flight_per_endpoint,
            cfg.sender.max_queued_per_endpoint,
            cfg.breaker.settings(),
            schedule,
        )
        .with_failover_probe(Duration::from_millis(cfg.sender.failover_probe_ms)),
        recovered_after_ms: i64::try_from(cfg.breaker.recovered_after_ms).unwrap_or(i64::MAX),
        jitter: cfg.retry.jitter,
        disable_after_ms: cfg.retry.disable_after_ms,
        propagate_trace: cfg.traces.propagate_to_endpoints,
        fatal: fatal_tx,
        shutdown: work_shutdown,
        recent: parking_lot::Mutex::new(hookline_core::recent::RecentDeliveries::new(cfg.sender.recent_deliveries)),
        sequences: ordered::Sequences::default(),
        parking: parked::Parking::new(
            topics.parked.clone(),
            producer,
            cfg.sender.lane_park_after_ms,
            Arc::clone(fresh.tracker()),
            Arc::clone(parked.tracker()),
        ),
        meters: deliver::Meters::register(),
    });
    // A deliveries partition's parked partition moves with it (weak: the consumer's context
    // must not keep what holds the consumer alive).
    {
        let (weak, by_hand, kafka_cfg) = (Arc::downgrade(&shared), parked.by_hand(), cfg.kafka.clone());
        fresh.consumer().context().on_moved(move |moved, parts| {
            if let Some(shared) = weak.upgrade() {
                shared.parking.partitions_moved(&by_hand, &kafka_cfg, moved, parts);
            }
        });
    }

    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = registry.wait_ready() => {}
    }
    let tier_topics: HashSet<String> = cfg.retry_tiers().into_iter().map(|(_, t)| t).collect();
    fresh.subscribe(&[&topics.deliveries])?;
    retries.subscribe(&tier_topics.iter().map(String::as_str).collect::<Vec<_>>())?;
    parked.read_by_assignment(&[&topics.parked]);

    // The deliveries topic and the parked topic share their workers: a parked lane's records
    // come back to its endpoint's worker and queue in its lane.
    let first_attempts = parking_lot::Mutex::new(
        workers::Workers::new(handler(&shared, None), lane_of(&shared), workers::IDLE_EXIT)
            .with_spill(Arc::new(parked::Spiller(Arc::clone(&shared))), cfg.sender.max_queued_per_endpoint),
    );
    let later_attempts = parking_lot::Mutex::new(workers::Workers::new(
        handler(&shared, Some(Arc::clone(retries.tracker()))),
        lane_of(&shared),
        workers::IDLE_EXIT,
    ));
    let gauges = Gauges::default();
    let result = {
        let loops = async {
            let (a, b, c) = tokio::join!(
                consume(&mut fresh, &shared, &stop, Reads::Deliveries, &gauges, &first_attempts),
                consume(&mut retries, &shared, &stop, Reads::Tiers, &gauges, &later_attempts),
                consume(&mut parked, &shared, &stop, Reads::Parked, &gauges, &first_attempts),
            );
            a.and(b).and(c)
        };
        tokio::select! {
            result = loops => result,
            Some(error) = fatal_rx.recv() => Err(error),
        }
    };
    stop.cancel();

    // Stop taking work: waiting deliveries give up (their offsets stay), attempts in
    // flight finish and are handed on; then store what finished and commit.
    shared.shutdown.cancel();
    tokio::join!(
        fresh.drain(request_timeout + DRAIN_MARGIN),
        retries.drain(request_timeout + DRAIN_MARGIN),
        parked.drain(request_timeout + DRAIN_MARGIN),
    );
    shared.attempts.close().await;
    tracing::info!(open_breakers = shared.endpoints.open_breakers(), "sender stopped");
    result.map_err(SenderError::HandOff)
}

/// Which of the sender's three consumers a loop runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// The deliveries topic: first attempts.
    Deliveries,
    /// The retry tiers: a record not yet due holds its partition until it is.
    Tiers,
    /// The parked topic: parked lanes' deliveries, through the deliveries topic's workers.
    Parked,
}

/// What a worker does with a record: deliver it, finishing it in `tracker` (the retry
/// tiers'), or (`None`) in the deliveries or parked topic's, as it came from.
fn handler(shared: &Arc<Shared>, tracker: Option<Arc<hookline_runtime::offsets::OffsetTracker>>) -> workers::Handler {
    let shared = Arc::clone(shared);
    Arc::new(move |record, lane| {
        let (shared, tracker) = (Arc::clone(&shared), tracker.clone());
        Box::pin(async move {
            let tracker = tracker.as_ref().unwrap_or_else(|| shared.parking.tracker(&record));
            deliver::deliver(&shared, tracker, &record, lane).await
        })
    })
}

/// A record's ordered lane: its endpoint's (a parked record carries it).
fn lane_of(shared: &Arc<Shared>) -> workers::LaneOf {
    let shared = Arc::clone(shared);
    Arc::new(move |record| match shared.parking.is_parked_record(record) {
        true => parked::Parking::lane_of(record),
        false => ordered::lane_of(&shared.registry, record),
    })
}

/// The sender's gauges, summed over its consumers: `[deliveries, retry tiers, parked]`.
#[derive(Default)]
struct Gauges {
    in_progress: [AtomicUsize; 3],
    workers: [AtomicUsize; 3],
}

impl Gauges {
    fn set(&self, at: usize, in_progress: usize, workers: usize) {
        self.in_progress[at].store(in_progress, Ordering::Relaxed);
        self.workers[at].store(workers, Ordering::Relaxed);
        let sum = |v: &[AtomicUsize; 3]| v.iter().map(|n| n.load(Ordering::Relaxed)).sum::<usize>() as f64;
        metric_catalog::SENDER_DELIVERIES_IN_PROGRESS.get().set(sum(&self.in_progress));
        metric_catalog::SENDER_ENDPOINT_WORKERS.get().set(sum(&self.workers));
    }
}

/// One consumer's loop, until `stop` or a consume error that could not be handed on: each
/// record goes to its endpoint's worker; a tier record that is not due yet holds its
/// partition until it is.
async fn consume(
    intake: &mut Intake,
    shared: &Arc<Shared>,
    stop: &Shutdown,
    reads: Reads,
    gauges: &Gauges,
    workers: &parking_lot::Mutex<workers::Workers>,
) -> Result<(), KafkaError> {
    let mut held = HeldPartitions::default();
    let mut last_gauges = tokio::time::Instant::now() - GAUGES_EVERY;
    let result = loop {
        if last_gauges.elapsed() >= GAUGES_EVERY {
            last_gauges = tokio::time::Instant::now();
            match reads {
                // The breakers are the process's, whichever consumer's records met them.
                Reads::Deliveries => {
                    gauges.set(0, intake.in_flight(), workers.lock().alive());
                    metric_catalog::SENDER_BREAKERS_OPEN.get().set(shared.endpoints.open_breakers() as f64);
                }
                Reads::Tiers => {
                    gauges.set(1, intake.in_flight(), workers.lock().alive());
                    metric_catalog::SENDER_TIER_PARTITIONS_HELD.get().set(held.heads.len() as f64);
                }
                // Its workers are the deliveries topic's, counted there.
                Reads::Parked => {
                    gauges.set(2, intake.in_flight(), 0);
                    metric_catalog::SENDER_LANES_PARKED.get().set(shared.parking.parked_lanes() as f64);
                }
            }
        }
        let due = async {
            match held.wakeups.is_empty() {
                true => std::future::pending().await,
                false => held.wakeups.next().await,
            }
        };
        let (mut record, permit) = match intake.next(due).await {
            Ok(Next::Record(record, permit)) => (record, permit),
            Ok(Next::Side(Some(due))) => {
                held.release(intake.consumer(), due.into_inner());
                continue;
            }
            Ok(Next::Side(None)) => continue,
            Ok(Next::Revoked(revoked)) => {
                for tp in revoked {
                    held.forget(&tp);
                }
                continue;
            }
            Ok(Next::Stop) => break Ok(()),
            Err(error) => break Err(error),
        };
        if held.is_stray(&record) {
            continue;
        }
        if reads == Reads::Tiers {
            let wait = due_at(&record) - now_ms();
            if wait > 0 && held.hold(intake.consumer(), &record, Duration::from_millis(wait as u64)) {
                continue;
            }
        }
        if reads == Reads::Parked {
            shared.parking.stamp(&mut record);
        }
        if !intake.take(&record) {
            // Finished by the partition's previous owner, past its commit.
            if reads == Reads::Parked {
                shared.parking.ended(&record);
            }
            continue;
        }
        workers.lock().dispatch(record, permit);
    };
    // The other consumer stops too.
    stop.cancel();
    result
}

/// When a tier record is due: its header, or (for records written without it) its body.
fn due_at(record: &OwnedRecord) -> i64 {
    record.header(DUE_HEADER).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        v1::Delivery::decode(record.value.as_deref().unwrap_or_default()).map_or(0, |d| d.next_attempt_at_ms)
    })
}

/// Tier partitions held until their head record is due.
///
/// Holding = pause the partition and seek it back to the head, so the head (and anything
/// prefetched after it, which pausing discards) is fetched again on release. A record that
/// still arrives from a held partition at or past the head is ignored for the same reason.
#[derive(Default)]
struct HeldPartitions {
    heads: HashMap<(String, i32), i64>,
    wakeups: DelayQueue<(String, i32)>,
}

impl HeldPartitions {
    fn is_stray(&self, record: &OwnedRecord) -> bool {
        self.heads
            .get(&(record.topic.clone(), record.partition))
            .is_some_and(|&head| record.offset >= head)
    }

    /// Holds the record's partition until `wait` has passed. Returns false when it could not
    /// (the caller then delivers the record now: early beats lost, since without the seek
    /// the record would not be fetched again).
    fn hold(&mut self, consumer: &GroupConsumer, record: &OwnedRecord, wait: Duration) -> bool {
        let tp = (record.topic.clone(), record.partition);
        let mut tpl = TopicPartitionList::new();
        if tpl.add_partition(&record.topic, record.partition).set_offset(Offset::Offset(record.offset)).is_err() {
            return false;
        }
        if let Err(error) = consumer.pause(&tpl) {
            tracing::warn!(%error, topic = %record.topic, partition = record.partition, "pause failed; delivering now");
            return false;
        }
        if let Err(error) = consumer.seek(&record.topic, record.partition, Offset::Offset(record.offset), Duration::ZERO) {
            tracing::warn!(%error, topic = %record.topic, partition = record.partition, "seek failed; delivering now");
            let _ = consumer.resume(&tpl);
            return false;
        }
        tracing::debug!(topic = %record.topic, partition = record.partition, offset = record.offset, wait_ms = wait.as_millis() as u64, "tier partition held until due");
        self.heads.insert(tp.clone(), record.offset);
        self.wakeups.insert(tp, wait);
        true
    }

    fn release(&mut self, consumer: &GroupConsumer, tp: (String, i32)) {
        if self.heads.remove(&tp).is_none() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.0, tp.1);
        if let Err(error) = consumer.resume(&tpl) {
            tracing::debug!(%error, topic = %tp.0, partition = tp.1, "resume failed (partition revoked?)");
        }
    }

    /// A revoked partition is no longer ours; its next owner starts unpaused.
    fn forget(&mut self, tp: &(String, i32)) {
        self.heads.remove(tp);
    }
}

//! The consuming loop every group role shares: one consumer, a window of work in flight,
//! offsets stored for finished work only, consume errors handled, health kept, and one
//! shutdown path. A role asks [`Intake::next`] for the next record (with its window slot)
//! and does its own work with it; everything between two records is here.

use crate::consume::{ConsumeErrors, Role};
use crate::health::Health;
use crate::kafka::{self, GroupConsumer, OwnedRecord};
use crate::offsets::OffsetTracker;
use crate::shutdown::Shutdown;
use hookline_core::config::Config;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use crate::kafka::FutureProducer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The loop wakes at least this often, so health reflects a live loop on an idle topic
/// and the group does not consider the member dead (`max.poll.interval.ms`).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Health, the consume-error summary and the finished-beyond metadata are kept up to date
/// this often, not per record.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);

/// What [`Intake::next`] returns.
pub enum Next<T> {
    /// A record to work on, holding one slot of the window until the permit is dropped.
    /// Begin it with [`Intake::take`] (which may say it was already done).
    Record(OwnedRecord, OwnedSemaphorePermit),
    /// The role's own event (its `side` future finished first).
    Side(T),
    /// Partitions revoked since the last call; their bookkeeping is already dropped.
    Revoked(Vec<(String, i32)>),
    /// Shutdown: stop taking work, then [`Intake::drain`].
    Stop,
}

pub struct Intake {
    role: Role,
    consumer: Arc<GroupConsumer>,
    tracker: Arc<OffsetTracker>,
    window: Arc<Semaphore>,
    window_size: usize,
    errors: ConsumeErrors,
    health: Arc<Health>,
    producer: FutureProducer,
    shutdown: Shutdown,
    housekept_at: Instant,
    /// Reads by assignment ([`Self::read_by_assignment`]): holding no partition is not a
    /// reason to be unready (another consumer's partitions decide which it reads).
    by_assignment: bool,
}

impl Intake {
    /// A group member for `role` with a window of `window_size` records in flight; its
    /// unreadable records are dead-lettered through `producer`.
    pub fn new(
        role: Role,
        cfg: &Config,
        window_size: usize,
        producer: FutureProducer,
        health: Arc<Health>,
        shutdown: Shutdown,
    ) -> Result<Self, KafkaError> {
        let topics = cfg.topics();
        let name = role.name();
        let group = topics.group(role.group());
        let consumer = Arc::new(kafka::group_consumer(&cfg.kafka, &group, &format!("hookline-{name}"))?);
        let tracker = Arc::new(OffsetTracker::new(Arc::clone(&consumer)));
        // Weak: the tracker holds the consumer, whose context holds this.
        let handed = Arc::downgrade(&tracker);
        consumer.context().on_revoke(move |parts| {
            if let Some(tracker) = handed.upgrade() {
                tracker.hand_over(parts);
            }
        });
        Ok(Self {
            role,
            tracker,
            consumer,
            window: Arc::new(Semaphore::new(window_size)),
            window_size,
            errors: ConsumeErrors::new(role, &cfg.kafka, &group, &topics.dlq, Arc::clone(&health)),
            health,
            producer,
            shutdown,
            housekept_at: Instant::now() - HOUSEKEEPING_EVERY,
            by_assignment: false,
        })
    }

    pub fn consumer(&self) -> &Arc<GroupConsumer> {
        &self.consumer
    }

    pub fn tracker(&self) -> &Arc<OffsetTracker> {
        &self.tracker
    }

    /// Records in flight (window slots taken).
    pub fn in_flight(&self) -> usize {
        self.window_size - self.window.available_permits()
    }

    pub fn subscribe(&mut self, topics: &[&str]) -> Result<(), KafkaError> {
        self.consumer.subscribe(topics)?;
        self.errors.subscribed(topics);
        tracing::info!(role = self.role.name(), ?topics, "subscribed");
        Ok(())
    }

    /// Reads `topics` by assignment instead of a subscription: [`Self::by_hand`] assigns
    /// and revokes their partitions (the group only keeps the positions).
    pub fn read_by_assignment(&mut self, topics: &[&str]) {
        self.by_assignment = true;
        self.errors.subscribed(topics);
        tracing::info!(role = self.role.name(), ?topics, "reading by assignment");
    }

    /// A handle that assigns and revokes partitions of this consumer from another thread.
    pub fn by_hand(&self) -> ByHand {
        ByHand { consumer: Arc::clone(&self.consumer), tracker: Arc::clone(&self.tracker) }
    }

    /// Waits for the next record with a free window slot, the role's `side` event, a
    /// revocation, or shutdown. A consume error is handled here (counted, unreadable
    /// records dead-lettered and skipped); it is returned only when its dead letter cannot
    /// be written.
    pub async fn next<T>(&mut self, side: impl Future<Output = T>) -> Result<Next<T>, KafkaError> {
        tokio::pin!(side);
        loop {
            let revoked = self.tracker.forget_revoked();
            if !revoked.is_empty() {
                return Ok(Next::Revoked(revoked));
            }
            if self.housekept_at.elapsed() >= HOUSEKEEPING_EVERY {
                self.housekept_at = Instant::now();
                self.health.tick(self.role.name(), self.by_assignment || self.consumer.context().assigned() > 0);
                self.errors.report();
                self.tracker.record_finished_beyond();
            }
            let permit = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Next::Stop),
                side = &mut side => return Ok(Next::Side(side)),
                permit = Arc::clone(&self.window).acquire_owned() => permit.expect("the window is never closed"),
            };
            let message = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Next::Stop),
                side = &mut side => return Ok(Next::Side(side)),
                message = tokio::time::timeout(POLL_EVERY, self.consumer.recv()) => match message {
                    Ok(m) => m,
                    Err(_idle) => continue,
                },
            };
            match message {
                Ok(m) => {
                    self.errors.on_record();
                    return Ok(Next::Record(OwnedRecord::from_message(&m), permit));
                }
                Err(error) => self.errors.on_error(error, &self.consumer, &self.tracker, &self.producer).await?,
            }
        }
    }

    /// Begins `record`, unless the partition's previous owner already finished it (then it
    /// is done at once and `false` says to skip it).
    pub fn take(&self, record: &OwnedRecord) -> bool {
        self.tracker.take(&record.topic, record.partition, record.offset)
    }

    /// The end: waits up to `timeout` for the work in flight, then commits what finished.
    pub async fn drain(&self, timeout: Duration) {
        self.tracker.drain_and_commit(&self.window, self.window_size, timeout).await;
    }
}

/// Assigns and revokes partitions of a consumer that reads by assignment.
#[derive(Clone)]
pub struct ByHand {
    consumer: Arc<GroupConsumer>,
    tracker: Arc<OffsetTracker>,
}

impl ByHand {
    pub fn consumer(&self) -> &Arc<GroupConsumer> {
        &self.consumer
    }

    /// Starts reading `parts`, each at its committed position (the start when none).
    pub fn assign(&self, parts: &[(String, i32)]) -> Result<(), KafkaError> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in parts {
            tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Stored)?;
        }
        self.consumer.incremental_assign(&tpl)?;
        tracing::info!(partitions = ?parts, "assigned by hand");
        Ok(())
    }

    /// Stops reading `parts` as a revocation does: their work in flight is waited for (a
    /// while), where each stands is committed, and their bookkeeping is dropped.
    pub fn revoke(&self, parts: &[(String, i32)]) {
        self.tracker.hand_over(parts);
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in parts {
            tpl.add_partition(topic, *partition);
        }
        if let Err(error) = self.consumer.incremental_unassign(&tpl) {
            tracing::warn!(%error, partitions = ?parts, "unassign failed");
        }
        self.tracker.forget(parts);
    }
}

/// Hands a failure that must stop the role (a produce refused after librdkafka's retries)
/// to its loop. Only the first is logged: the records in flight behind it fail for the same
/// cause, and a refused Write would otherwise log a line per record.
pub fn stop_on(fatal: &mpsc::Sender<KafkaError>, error: KafkaError, record: &OwnedRecord) {
    let shown = error.to_string();
    if fatal.try_send(error).is_ok() {
        tracing::error!(error = %shown, topic = %record.topic, partition = record.partition, offset = record.offset, "record not handed on; stopping");
    } else {
        tracing::debug!(error = %shown, partition = record.partition, offset = record.offset, "record not handed on");
    }
}

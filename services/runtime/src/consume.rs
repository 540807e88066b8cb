//! What a role does with a consume error (the policy is [`hookline_core::consume`]): count
//! it by kind, log it without flooding, keep readiness honest, and get a partition past
//! records that can never be read.
//!
//! librdkafka reports an unreadable batch (corrupt, or compressed with a codec it lacks)
//! without its partition or offset, and fetches it again forever: the partition stalls.
//! [`ConsumeErrors`] then finds it: for each assigned partition with records left, a probe
//! consumer reads at the role's position; the partition whose probe fails the same way is
//! the stalled one. The probe steps forward one offset at a time until it reads a record,
//! the run of unreadable offsets is dead-lettered by its coordinates, and the role's
//! consumer seeks past it.

use crate::health::Health;
use crate::kafka::{self, GroupConsumer};
use crate::metric_catalog;
use crate::offsets::OffsetTracker;
use crate::time::now_ms;
use hookline_core::config::KafkaConfig;
use hookline_core::consume::{ConsumeErrorKind, ErrorRuns};
use hookline_proto::v1;
use hookline_proto::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
use crate::kafka::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one probe waits for a record or an error at an offset.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Unreadable offsets skipped in one search at most; the next error searches again.
const MAX_SKIP: i64 = 100_000;
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// The kind of a consume error.
pub fn classify(error: &KafkaError) -> ConsumeErrorKind {
    let Some(code) = error.rdkafka_error_code() else { return ConsumeErrorKind::Other };
    match code {
        Code::BadMessage
        | Code::BadCompression
        | Code::NotImplemented
        | Code::InvalidMessage
        | Code::InvalidMessageSize
        // librdkafka's verdict on a batch it could not parse even at 1 GiB of fetch size.
        | Code::MessageSizeTooLarge
        | Code::UnsupportedCompressionType
        | Code::UnsupportedForMessageFormat
        | Code::InvalidRecord
        | Code::ValueDeserialization
        | Code::KeyDeserialization => ConsumeErrorKind::Unreadable,
        Code::AllBrokersDown
        | Code::BrokerTransportFailure
        | Code::Resolve
        | Code::OperationTimedOut
        | Code::RequestTimedOut
        | Code::TimedOutQueue
        | Code::LeaderNotAvailable
        | Code::NotLeaderForPartition
        | Code::BrokerNotAvailable
        | Code::ReplicaNotAvailable
        | Code::NetworkException
        | Code::KafkaStorageError
        | Code::CoordinatorNotAvailable
        | Code::CoordinatorLoadInProgress
        | Code::NotCoordinator
        | Code::SSL => ConsumeErrorKind::BrokerUnavailable,
        Code::TopicAuthorizationFailed
        | Code::GroupAuthorizationFailed
        | Code::ClusterAuthorizationFailed
        | Code::TransactionalIdAuthorizationFailed
        | Code::Authentication
        | Code::SaslAuthenticationFailed => ConsumeErrorKind::Authorization,
        Code::UnknownTopic | Code::UnknownPartition | Code::UnknownTopicOrPartition | Code::UnknownTopicId => {
            ConsumeErrorKind::UnknownTopic
        }
        _ => ConsumeErrorKind::Other,
    }
}

/// Runs `attempt` again, every [`UNANSWERED_PAUSE`] for up to `limit`, while its error says
/// the brokers did not answer ([`classify`]: `BrokerUnavailable`; a group's coordinator that
/// is moving answers `NotCoordinator` for a moment). Blocking, for the rebalance callbacks,
/// which run on the consumer's poll and must finish before the first record is read.
pub fn retry_unanswered<T>(limit: Duration, mut attempt: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let started = Instant::now();
    loop {
        match attempt() {
            Err(error) if classify(&error) == ConsumeErrorKind::BrokerUnavailable && started.elapsed() < limit => {
                tracing::debug!(%error, "kafka did not answer; asking again");
                std::thread::sleep(UNANSWERED_PAUSE);
            }
            done => return done,
        }
    }
}

/// The pause between two tries of [`retry_unanswered`].
pub const UNANSWERED_PAUSE: Duration = Duration::from_millis(200);

/// A run of offsets of one partition that the client cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub topic: String,
    pub partition: i32,
    /// First unreadable offset.
    pub from: i64,
    /// The offset after the run: where reading resumes.
    pub to: i64,
    pub error: String,
}

impl Unreadable {
    pub fn dead_letter(&self, now_ms: i64) -> v1::DeadLetter {
        v1::DeadLetter {
            reason: v1::DeadLetterReason::UnreadableRecord as i32,
            detail: format!(
                "{} record(s) at offsets {}..={} of {}/{} could not be read ({}); skipped",
                self.to - self.from,
                self.from,
                self.to - 1,
                self.topic,
                self.partition,
                self.error
            ),
            source: Some(v1::SourceRecord {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.from,
                ..Default::default()
            }),
            dead_at_ms: now_ms,
            ..Default::default()
        }
    }
}

/// The consumers of the roles that consume in a group; each role has its own metric names.
///
/// The sender has two consumers in its one group: one reads the deliveries topic, the other
/// the retry tiers. The group's assignor then balances each set over the senders on its own;
/// with one consumer for both, cooperative-sticky balanced only the total partition count,
/// and three senders could split the deliveries partitions 10/1/1. A third reads the parked
/// topic's partitions of the deliveries partitions it owns, by assignment (its group only
/// keeps the positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Router,
    Sender,
    SenderRetries,
    SenderParked,
}

impl Role {
    /// The consumer's name: its health entry, its client id, its log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Sender => "sender",
            Self::SenderRetries => "sender-retries",
            Self::SenderParked => "sender-parked",
        }
    }

    /// The group it joins (the prefix comes on top).
    pub fn group(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Sender | Self::SenderRetries => "sender",
            Self::SenderParked => "sender-parked",
        }
    }

    fn count_error(self, kind: ConsumeErrorKind) {
        let errors = match self {
            Self::Router => &metric_catalog::ROUTER_CONSUME_ERRORS,
            Self::Sender | Self::SenderRetries | Self::SenderParked => &metric_catalog::SENDER_CONSUME_ERRORS,
        };
        errors.with([kind.label()]).increment(1);
    }

    fn count_dead_letter(self, reason: v1::DeadLetterReason) {
        let dead_letters = match self {
            Self::Router => &metric_catalog::ROUTER_DEAD_LETTERS,
            Self::Sender | Self::SenderRetries | Self::SenderParked => &metric_catalog::SENDER_DEAD_LETTERS,
        };
        dead_letters.with([reason.label()]).increment(1);
    }
}

/// One role's handling of its consumer's errors.
pub struct ConsumeErrors {
    role: Role,
    kafka: KafkaConfig,
    dlq_topic: String,
    runs: ErrorRuns,
    health: Arc<Health>,
    /// What a refusal names: the group, the topics subscribed, the ACL to add.
    acls: crate::preflight::Acls,
    group: String,
    topics: Vec<String>,
    /// The last refusal explained (for readiness), until a record is read.
    refused: Option<String>,
}

impl ConsumeErrors {
    pub fn new(role: Role, kafka: &KafkaConfig, group: &str, dlq_topic: &str, health: Arc<Health>) -> Self {
        Self {
            role,
            kafka: kafka.clone(),
            dlq_topic: dlq_topic.to_owned(),
            runs: ErrorRuns::default(),
            health,
            acls: crate::preflight::Acls::new(kafka),
            group: group.to_owned(),
            topics: Vec::new(),
            refused: None,
        }
    }

    /// The topics the role subscribed to (named when Kafka refuses to let it read them).
    pub fn subscribed(&mut self, topics: &[&str]) {
        self.topics = topics.iter().map(|t| (*t).to_owned()).collect();
    }

    /// A record was read.
    pub fn on_record(&mut self) {
        self.runs.on_record();
        self.refused = None;
    }

    /// Tells the role's health whether errors stall it; call at least once a second.
    pub fn report(&self) {
        let problem = self.runs.problem(now_ms()).map(|p| match &self.refused {
            Some(refused) => format!("{p}: {refused}"),
            None => p,
        });
        self.health.consuming(self.role.name(), problem);
    }

    /// Counts and logs `error`; when records are unreadable, finds them, dead-letters them
    /// by their coordinates, marks them done and seeks past them. Fails only when the
    /// dead letter cannot be written (the role stops, as for any lost hand-off).
    pub async fn on_error(
        &mut self,
        error: KafkaError,
        consumer: &Arc<GroupConsumer>,
        tracker: &OffsetTracker,
        producer: &FutureProducer,
    ) -> Result<(), KafkaError> {
        let kind = classify(&error);
        self.role.count_error(kind);
        let action = self.runs.on_error(kind, now_ms());
        // A refusal names the operation, the resource (the group, when JoinGroup is refused)
        // and the ACL to add: the role stays up, not ready, until it is granted.
        let attempt = crate::preflight::Attempt::new(crate::preflight::Operation::Read, &self.topics).group(&self.group);
        let refused = self.acls.explain(&error, &attempt).map(|r| r.to_string());
        if let Some(errors) = action.log {
            match &refused {
                Some(refused) => tracing::error!(role = self.role.name(), kind = kind.label(), %error, errors, "consume refused: {refused}"),
                None => tracing::warn!(role = self.role.name(), kind = kind.label(), %error, errors, "consume error"),
            }
        }
        if refused.is_some() {
            self.refused = refused;
        }
        if action.locate {
            let (consumer_, kafka, client) = (Arc::clone(consumer), self.kafka.clone(), format!("hookline-{}", self.role.name()));
            let found = tokio::task::spawn_blocking(move || locate(&consumer_, &kafka, &client))
                .await
                .unwrap_or_else(|_| Vec::new());
            for run in &found {
                let dead = run.dead_letter(now_ms());
                tracing::error!(role = self.role.name(), detail = %dead.detail, "unreadable records dead-lettered and skipped");
                let key = format!("{}/{}", run.topic, run.partition);
                let at = kafka::At::dead_letter(&dead);
                kafka::acked(kafka::enqueue_to(producer, &self.dlq_topic, at, &key, &dead.encode_to_vec(), None).await?).await?;
                self.role.count_dead_letter(v1::DeadLetterReason::UnreadableRecord);
                tracker.skip(&run.topic, run.partition, run.to);
                if let Err(error) = consumer.seek(&run.topic, run.partition, Offset::Offset(run.to), Duration::ZERO) {
                    tracing::warn!(topic = %run.topic, partition = run.partition, %error, "seek past unreadable records failed");
                }
            }
            self.runs.on_located(!found.is_empty(), now_ms());
        }
        self.report();
        Ok(())
    }
}

/// Finds the assigned partitions whose next records cannot be read (blocking: Kafka calls).
fn locate(consumer: &GroupConsumer, kafka: &KafkaConfig, client_id: &str) -> Vec<Unreadable> {
    let positions = match consumer.position() {
        Ok(p) => p,
        Err(error) => {
            tracing::warn!(%error, "cannot read positions to locate unreadable records");
            return Vec::new();
        }
    };
    let probe = match kafka::probe(kafka, &format!("{client_id}-probe")) {
        Ok(p) => p,
        Err(error) => {
            tracing::warn!(%error, "cannot create the probe consumer");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for elem in positions.elements() {
        let (topic, partition) = (elem.topic(), elem.partition());
        let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, KAFKA_TIMEOUT) else { continue };
        let start = match elem.offset() {
            Offset::Offset(o) => o,
            _ => committed(consumer, topic, partition).unwrap_or(low),
        }
        .max(low);
        if start >= high {
            continue;
        }
        let Probe::Unreadable(error) = probe_at(&probe, topic, partition, start) else { continue };
        let mut to = start + 1;
        while to < high && to - start < MAX_SKIP && matches!(probe_at(&probe, topic, partition, to), Probe::Unreadable(_)) {
            to += 1;
        }
        found.push(Unreadable { topic: topic.to_owned(), partition, from: start, to, error });
    }
    found
}

fn committed(consumer: &GroupConsumer, topic: &str, partition: i32) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer.committed_offsets(tpl, KAFKA_TIMEOUT).ok()?;
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

enum Probe {
    Readable,
    Unreadable(String),
    Inconclusive,
}

/// Reads one partition at `offset` with the probe consumer.
fn probe_at(probe: &BaseConsumer<kafka::ProbeContext>, topic: &str, partition: i32, offset: i64) -> Probe {
    let mut tpl = TopicPartitionList::new();
    if tpl.add_partition_offset(topic, partition, Offset::Offset(offset)).is_err() || probe.assign(&tpl).is_err() {
        return Probe::Inconclusive;
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while Instant::now() < deadline {
        match probe.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.topic() == topic && m.partition() == partition => return Probe::Readable,
            Some(Err(error)) if classify(&error) == ConsumeErrorKind::Unreadable => {
                return Probe::Unreadable(error.to_string())
            }
            _ => {}
        }
    }
    Probe::Inconclusive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_coordinator() -> KafkaError {
        KafkaError::MetadataFetch(Code::NotCoordinator)
    }

    #[test]
    fn an_unanswered_request_is_asked_again_within_the_limit_and_no_other() {
        let mut calls = 0;
        let answer = retry_unanswered(Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 { Err(not_coordinator()) } else { Ok(calls) }
        });
        assert_eq!(answer.ok(), Some(3), "asked again until it answered");

        let mut calls = 0;
        let refused = retry_unanswered(Duration::from_secs(5), || -> Result<(), _> {
            calls += 1;
            Err(KafkaError::MetadataFetch(Code::GroupAuthorizationFailed))
        });
        assert!(refused.is_err());
        assert_eq!(calls, 1, "a refusal is not asked again");

        let mut calls = 0;
        let given_up = retry_unanswered(Duration::ZERO, || -> Result<(), _> {
            calls += 1;
            Err(not_coordinator())
        });
        assert!(given_up.is_err());
        assert_eq!(calls, 1, "no time left: the error as it is");
    }
}

//! What a role checks of its Kafka access before it starts, and what Hookline tells an
//! operator when Kafka refuses a request.
//!
//! A missing ACL or a wrong SASL password does not make librdkafka fail: it logs, retries
//! and waits, so a role would hang at start (the registry follower waiting for the
//! endpoints topic, a produce waiting for a producer id). [`check`] asks, within
//! [`TIMEOUT`], for what the role needs: the metadata of its topics (Describe), a fetch at
//! the end of each topic it reads (Read), its consumer group's committed offsets (Describe
//! on the group) and a producer id (Write on a topic, or IdempotentWrite on the cluster).
//! A refusal stops the role with a [`Refused`] that names the operation, the resource and
//! the ACL to add; a missing topic stops it with the command that creates it. A check that
//! gets no answer (brokers down) is logged and the role starts anyway, as before: it waits
//! and retries.
//!
//! Refusals are recognised with [`crate::consume::classify`], the same classification the
//! consuming loops use for their readiness; [`Acls::refusal`] turns one into the message.

mod refused;

pub use refused::{code_name, Acls, Attempt, Operation, Refused, Resource, ACL_DOC};

use crate::consume::classify;
use hookline_core::config::{Config, KafkaConfig};
use hookline_core::consume::ConsumeErrorKind;
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
use rdkafka::metadata::{Metadata, MetadataTopic};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// The whole check takes at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// One step (the fetches, a group's offsets, the producer id) waits at most this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Metadata is asked for in slices this long, to notice an authentication failure early.
const SLICE: Duration = Duration::from_secs(1);

/// What one role reads, writes and joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub role: &'static str,
    /// Topics read (Read, which implies Describe).
    pub reads: Vec<String>,
    /// Topics produced to (Write).
    pub writes: Vec<String>,
    /// Consumer groups with the topics each subscribes to.
    pub groups: Vec<(String, Vec<String>)>,
    /// Topics that need at least as many partitions as another has
    /// ([`hookline_core::config::Topics::paired`]).
    pub paired: Vec<(String, String)>,
}

impl Access {
    pub fn router(cfg: &Config) -> Self {
        let t = cfg.topics();
        Self {
            role: "router",
            reads: vec![t.events.clone(), t.endpoints.clone(), t.event_types.clone()],
            writes: vec![t.deliveries.clone(), t.dlq.clone()],
            groups: vec![(t.group("router"), vec![t.events])],
            paired: Vec::new(),
        }
    }

    pub fn sender(cfg: &Config) -> Self {
        let t = cfg.topics();
        let mut consumed = vec![t.deliveries.clone()];
        for (_, tier) in cfg.retry_tiers() {
            if !consumed.contains(&tier) {
                consumed.push(tier);
            }
        }
        let mut writes = consumed[1..].to_vec();
        writes.extend([t.attempts.clone(), t.dlq.clone(), t.endpoints.clone(), t.events.clone(), t.parked.clone()]);
        let mut reads = consumed.clone();
        reads.extend([t.parked.clone(), t.endpoints.clone()]);
        // Parked lanes are read by assignment, not subscription: their group only commits.
        let groups = vec![(t.group("sender"), consumed), (t.group("sender-parked"), vec![t.parked.clone()])];
        Self { role: "sender", reads, writes, groups, paired: t.paired() }
    }

    pub fn replay(cfg: &Config) -> Self {
        let t = cfg.topics();
        Self {
            role: "replay",
            reads: vec![t.endpoints, t.replays.clone(), t.events, t.dlq],
            writes: vec![t.deliveries, t.replays],
            groups: Vec::new(),
            paired: Vec::new(),
        }
    }

    pub fn api(cfg: &Config) -> Self {
        let t = cfg.topics();
        Self {
            role: "api",
            reads: vec![t.endpoints.clone(), t.attempts, t.dlq, t.replays.clone(), t.event_types.clone()],
            writes: vec![t.endpoints, t.events, t.deliveries, t.replays, t.event_types],
            groups: Vec::new(),
            paired: Vec::new(),
        }
    }

    /// Every role in one process (`hookline dev`).
    pub fn dev(cfg: &Config) -> Self {
        let mut all = Self { role: "dev", reads: Vec::new(), writes: Vec::new(), groups: Vec::new(), paired: Vec::new() };
        for part in [Self::router(cfg), Self::sender(cfg), Self::replay(cfg), Self::api(cfg)] {
            for topic in part.reads {
                if !all.reads.contains(&topic) {
                    all.reads.push(topic);
                }
            }
            for topic in part.writes {
                if !all.writes.contains(&topic) {
                    all.writes.push(topic);
                }
            }
            all.groups.extend(part.groups);
            all.paired.extend(part.paired);
        }
        all
    }

    /// Every topic the role touches, each once.
    fn topics(&self) -> Vec<String> {
        let mut all = self.reads.clone();
        all.extend(self.writes.iter().filter(|t| !self.reads.contains(t)).cloned());
        all
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Every refusal found, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refused>),
    #[error(
        "kafka: missing topics {}: run `hookline topics create` (as a principal allowed to create topics), then \
         `hookline topics check`",
        .0.join(", ")
    )]
    Missing(Vec<String>),
    /// A topic with fewer partitions than the one it pairs with (a deliveries topic grown by
    /// hand without its parked topic): the role would stop at its first park there.
    #[error("kafka: topic {0}: {1}; add partitions (`hookline topics check` names the command)")]
    Unpaired(String, crate::topics::Problem),
    #[error("kafka client setup")]
    Setup(#[from] KafkaError),
}

/// Checks `access` within [`TIMEOUT`]. Fails on a refusal or a missing topic; what gets no
/// answer in time is logged, let through (the role waits and retries, as it would have)
/// and returned.
pub async fn check(kafka: &KafkaConfig, access: &Access) -> Result<Vec<String>, PreflightError> {
    let (kafka, access) = (kafka.clone(), access.clone());
    let started = Instant::now();
    let role = access.role;
    let unverified = tokio::task::spawn_blocking(move || run(&kafka, &access, started + TIMEOUT))
        .await
        .map_err(|_| PreflightError::Setup(KafkaError::Canceled))??;
    if unverified.is_empty() {
        tracing::info!(role, elapsed_ms = started.elapsed().as_millis() as u64, "kafka access checked");
    } else {
        tracing::warn!(
            role, elapsed_ms = started.elapsed().as_millis() as u64, unverified = ?unverified,
            "kafka access not fully checked (no answer in time); starting anyway"
        );
    }
    Ok(unverified)
}

/// What the check found so far.
#[derive(Default)]
struct Findings {
    refused: Vec<Refused>,
    /// What got no answer in time, or an answer that was not a refusal.
    unverified: Vec<String>,
}

impl Findings {
    fn refuse(&mut self, refused: Refused) {
        if !self.refused.contains(&refused) {
            self.refused.push(refused);
        }
    }

    /// Records what Kafka answered `attempt` with: a refusal, or something unverified.
    fn answered(&mut self, acls: &Acls, error: &KafkaError, attempt: &Attempt<'_>, what: String) {
        match acls.explain(error, attempt) {
            Some(r) => self.refuse(r),
            None => self.unverified.push(format!("{what}: {error}")),
        }
    }

    /// Whether `topic` was already refused (so probing it further says nothing new).
    fn hides(&self, topic: &str) -> bool {
        self.refused.iter().any(|r| matches!(r, Refused::NotAuthorized { resource: Resource::Topic(t), .. } if t == topic))
    }
}

/// The blocking check; returns what could not be verified in time.
fn run(kafka: &KafkaConfig, access: &Access, deadline: Instant) -> Result<Vec<String>, PreflightError> {
    let acls = Acls::new(kafka);
    let mut found = Findings::default();
    let probe = MetadataClient::new(kafka, !access.writes.is_empty())?;

    // Brokers reachable, and this client authenticated.
    let metadata = match probe.all(&acls, left(deadline)) {
        Ok(m) => m,
        Err(Unanswered::Refused(r)) => return Err(PreflightError::Refused(vec![r])),
        Err(Unanswered::Kafka(error)) => {
            found.unverified.push(format!("metadata from {}: {error}", kafka.bootstrap_servers));
            return Ok(found.unverified);
        }
    };
    let missing = describe(&probe, &metadata, &acls, access, deadline, &mut found);
    if !missing.is_empty() && found.refused.is_empty() {
        return Err(PreflightError::Missing(missing));
    }
    if let Some((topic, problem)) = unpaired(&metadata, access) {
        return Err(PreflightError::Unpaired(topic, problem));
    }
    read(kafka, &acls, access, deadline, &mut found)?;
    if !access.writes.is_empty() {
        write(&probe, &acls, access, deadline, &mut found);
    }
    if found.refused.is_empty() {
        Ok(found.unverified)
    } else {
        Err(PreflightError::Refused(found.refused))
    }
}

/// The first of the role's paired topics with fewer partitions than its pair, in the
/// metadata of every topic (a topic hidden from this principal is left to the other checks).
fn unpaired(metadata: &Metadata, access: &Access) -> Option<(String, crate::topics::Problem)> {
    let partitions = |name: &str| metadata.topics().iter().find(|t| t.name() == name).map(|t| shape(t).0);
    access.paired.iter().find_map(|(topic, paired)| {
        crate::topics::unpaired(partitions(topic), paired, partitions(paired)).map(|problem| (topic.clone(), problem))
    })
}

/// Describe: a topic missing from the metadata is either absent or hidden from this
/// principal; asked for by name, Kafka says which. Returns the absent ones.
fn describe(
    probe: &MetadataClient,
    metadata: &Metadata,
    acls: &Acls,
    access: &Access,
    deadline: Instant,
    found: &mut Findings,
) -> Vec<String> {
    let listed: Vec<&str> = metadata.topics().iter().map(MetadataTopic::name).collect();
    let mut missing = Vec::new();
    for topic in access.topics().into_iter().filter(|t| !listed.contains(&t.as_str())) {
        match probe.topic_shape(&topic, left(deadline).min(STEP_TIMEOUT)) {
            Ok(_) => {}
            Err(Some(Code::UnknownTopicOrPartition | Code::UnknownTopic)) => missing.push(topic),
            Err(Some(code)) => {
                // Hidden: the role lacks Describe, so surely what implies it, which it needs.
                let needed = if access.reads.contains(&topic) { Operation::Read } else { Operation::Write };
                let attempt = Attempt::new(needed, std::slice::from_ref(&topic));
                match acls.refusal(code, "", &attempt) {
                    Some(r) => found.refuse(r),
                    None => found.unverified.push(format!("Describe on topic {topic}: {code:?}")),
                }
            }
            Err(None) => found.unverified.push(format!("Describe on topic {topic}: no answer")),
        }
    }
    missing
}

/// Read: each group's committed offsets (Describe on the group, which Read implies), and a
/// fetch at the end of partition 0 of every topic read (Read on the topic).
fn read(
    kafka: &KafkaConfig,
    acls: &Acls,
    access: &Access,
    deadline: Instant,
    found: &mut Findings,
) -> Result<(), KafkaError> {
    // librdkafka assigns only in a group; this consumer never joins or commits, and its
    // group is the role's own (or one under the prefix).
    let probe_group =
        access.groups.first().map_or_else(|| format!("{}{}", acls.prefix, access.role), |(g, _)| g.clone());
    let mut config = client(kafka);
    config
        .set("group.id", &probe_group)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("allow.auto.create.topics", "false");
    let reader: BaseConsumer<Watch> = config.create_with_context(Watch::default())?;
    let reads: Vec<String> = access.reads.iter().filter(|t| !found.hides(t)).cloned().collect();
    // The fetches start now and are waited for after the group check, which runs meanwhile
    // on the same consumer (its coordinator lookup is then done once).
    let fetching = fetch_at_end(&reader, &reads);

    for (group, topics) in &access.groups {
        let Some(first) = topics.first() else { continue };
        let own;
        let consumer = if *group == probe_group {
            &reader
        } else {
            let mut config = client(kafka);
            config.set("group.id", group).set("enable.auto.commit", "false");
            own = config.create_with_context::<_, BaseConsumer<Watch>>(Watch::default())?;
            &own
        };
        let attempt = Attempt::new(Operation::Read, std::slice::from_ref(first)).group(group);
        match committed(consumer, first, deadline) {
            Ok(()) => {}
            Err(Some(error)) => found.answered(acls, &error, &attempt, format!("Describe on group {group}")),
            Err(None) => found.unverified.push(format!("Describe on group {group}: no answer")),
        }
    }

    match fetching.and_then(|()| ends(&reader, reads.len(), deadline)) {
        Ok(()) => {}
        // The error does not say which topic: ask each alone (only when refused).
        Err(Some(error)) if classify(&error) == ConsumeErrorKind::Authorization => {
            for topic in &reads {
                let one = std::slice::from_ref(topic);
                if let Err(Some(error)) = fetch_at_end(&reader, one).and_then(|()| ends(&reader, 1, deadline)) {
                    let attempt = Attempt::new(Operation::Read, one).group(&probe_group);
                    found.answered(acls, &error, &attempt, format!("Read on topic {topic}"));
                }
            }
        }
        Err(Some(error)) => found.unverified.push(format!("Read on topics {}: {error}", reads.join(", "))),
        Err(None) => found.unverified.push(format!("Read on topics {}: no answer", reads.join(", "))),
    }
    Ok(())
}

/// Write: an idempotent producer gets a producer id only with Write on some topic (or
/// IdempotentWrite on the cluster); without one every produce waits, then fails.
fn write(probe: &MetadataClient, acls: &Acls, access: &Access, deadline: Instant, found: &mut Findings) {
    match probe.producer_id(deadline) {
        Ok(()) => {}
        Err(Some((code, detail))) => match acls.refusal(code, &detail, &Attempt::new(Operation::Write, &access.writes)) {
            Some(r) => found.refuse(r),
            None => found.unverified.push(format!("producer id: {detail}")),
        },
        Err(None) => found.unverified.push("producer id: no answer".to_owned()),
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Bootstrap servers and the operator's overrides (TLS, SASL), as every Hookline client.
pub fn client(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (k, v) in &kafka.client {
        c.set(k, v);
    }
    c
}

/// Partitions and the fewest replicas of any partition.
pub fn shape(topic: &MetadataTopic) -> (i32, i32) {
    let rf = topic.partitions().iter().map(|p| p.replicas().len() as i32).min().unwrap_or(0);
    (topic.partitions().len() as i32, rf)
}

/// Starts fetching at the end of partition 0 of each of `topics`.
fn fetch_at_end(reader: &BaseConsumer<Watch>, topics: &[String]) -> Result<(), Option<KafkaError>> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        tpl.add_partition_offset(topic, 0, Offset::End).map_err(Some)?;
    }
    reader.assign(&tpl).map_err(Some)
}

/// Waits until `n` partitions answered a fetch at their end: `Err(Some)` on the first
/// error, `Err(None)` when not every one answered in time.
fn ends(reader: &BaseConsumer<Watch>, n: usize, deadline: Instant) -> Result<(), Option<KafkaError>> {
    let until = Instant::now() + left(deadline).min(STEP_TIMEOUT);
    let (mut answered, mut last) = (0, None);
    while Instant::now() < until && answered < n {
        match reader.poll(Duration::from_millis(50)) {
            // A record (produced meanwhile) is followed by the end of its partition.
            Some(Ok(_)) | None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => answered += 1,
            Some(Err(error)) if classify(&error) == ConsumeErrorKind::Authorization => return Err(Some(error)),
            Some(Err(error)) => last = Some(error),
        }
    }
    if answered >= n {
        Ok(())
    } else {
        Err(last)
    }
}

/// Reads the committed offset of `topic`/0 in the consumer's group: `Err(Some)` with what
/// Kafka answered, `Err(None)` when nothing came in time.
fn committed(consumer: &BaseConsumer<Watch>, topic: &str, deadline: Instant) -> Result<(), Option<KafkaError>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    match consumer.committed_offsets(tpl, left(deadline).min(STEP_TIMEOUT)) {
        Ok(tpl) => match tpl.elements().iter().find_map(|e| e.error().err()) {
            Some(error) => Err(Some(error)),
            None => Ok(()),
        },
        Err(error) if classify(&error) == ConsumeErrorKind::Authorization => Err(Some(error)),
        // librdkafka reports a refused coordinator lookup on the consumer's queue, and the
        // request itself just times out.
        Err(error) => match consumer.poll(Duration::from_millis(100)) {
            Some(Err(queued)) if classify(&queued) == ConsumeErrorKind::Authorization => Err(Some(queued)),
            _ => Err(Some(error)),
        },
    }
}

/// A client for metadata (and, when asked, an idempotent producer's id) whose callbacks
/// are served on its own thread, so that an authentication failure, which librdkafka only
/// reports there, is seen at once. (An admin client's callbacks are never served.)
pub struct MetadataClient(ThreadedProducer<Watch>);

/// Why the brokers gave no metadata.
#[derive(Debug)]
pub enum Unanswered {
    Refused(Refused),
    Kafka(KafkaError),
}

impl MetadataClient {
    /// `idempotent`: also acquire a producer id, for [`MetadataClient::producer_id`].
    pub fn new(kafka: &KafkaConfig, idempotent: bool) -> Result<Self, KafkaError> {
        let mut config = client(kafka);
        // Asking for a missing topic by name must not create it.
        config.set("allow.auto.create.topics", "false").set("enable.idempotence", idempotent.to_string());
        if idempotent {
            config.set("statistics.interval.ms", "100");
        }
        Ok(Self(config.create_with_context(Watch::default())?))
    }

    /// The metadata of every topic this principal may Describe, asked for in short slices
    /// until `timeout` so that a refused authentication ends the wait at once.
    pub fn all(&self, acls: &Acls, timeout: Duration) -> Result<Metadata, Unanswered> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.0.client().fetch_metadata(None, left(deadline).min(SLICE));
            if let Some(r) = self.0.context().authentication(acls) {
                return Err(Unanswered::Refused(r));
            }
            match answer {
                Ok(m) => return Ok(m),
                Err(error) if left(deadline).is_zero() => return Err(Unanswered::Kafka(error)),
                Err(_) => {}
            }
        }
    }

    /// One topic's metadata, asked for by name: its partitions and fewest replicas, or
    /// the error Kafka gave for it (`None`: no answer).
    pub fn topic_shape(&self, topic: &str, timeout: Duration) -> Result<(i32, i32), Option<Code>> {
        let metadata = self.0.client().fetch_metadata(Some(topic), timeout).map_err(|e| e.rdkafka_error_code())?;
        let found = metadata.topics().iter().find(|t| t.name() == topic).ok_or(None)?;
        match found.error() {
            Some(error) => Err(Some(error.into())),
            None => Ok(shape(found)),
        }
    }

    /// Waits for the idempotent producer's id. `Err(Some)`: the code and text of the error
    /// that stopped it; `Err(None)`: no id in time.
    fn producer_id(&self, deadline: Instant) -> Result<(), Option<(Code, String)>> {
        let until = Instant::now() + left(deadline).min(STEP_TIMEOUT);
        while Instant::now() < until {
            if let Some(fatal) = self.0.client().fatal_error() {
                return Err(Some(fatal));
            }
            if let Some(failure) = self.0.context().failure() {
                return Err(Some(failure));
            }
            if self.0.context().has_producer_id() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(None)
    }
}

/// A client context that keeps what librdkafka reports only through callbacks: the first
/// authorization or authentication failure, and whether the idempotent producer has its id.
#[derive(Default)]
pub struct Watch {
    failure: Mutex<Option<(Code, String)>>,
    producer_id: std::sync::atomic::AtomicBool,
}

impl Watch {
    /// The first refusal reported, as its code and librdkafka's text.
    pub fn failure(&self) -> Option<(Code, String)> {
        self.failure.lock().clone()
    }

    /// The authentication failure reported, as a [`Refused`].
    pub fn authentication(&self, acls: &Acls) -> Option<Refused> {
        let (code, detail) = self.failure()?;
        match acls.refusal(code, &detail, &Attempt::new(Operation::Describe, &[]))? {
            r @ Refused::NotAuthenticated { .. } => Some(r),
            Refused::NotAuthorized { .. } => None,
        }
    }

    fn has_producer_id(&self) -> bool {
        self.producer_id.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ClientContext for Watch {
    /// What these clients meet is reported by their caller; librdkafka's own lines repeat
    /// on every retry.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(?level, fac, message, "kafka client log");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if classify(&error) == ConsumeErrorKind::Authorization {
            if let Some(code) = error.rdkafka_error_code() {
                let mut failure = self.failure.lock();
                if failure.is_none() {
                    *failure = Some((code, reason.to_owned()));
                }
            }
        }
        // The caller reports the outcome; librdkafka repeats its errors on every retry.
        tracing::debug!(%error, reason, "kafka client error");
    }

    fn stats(&self, statistics: Statistics) {
        if statistics.eos.is_some_and(|eos| eos.idemp_state == "Assigned") {
            self.producer_id.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl ConsumerContext for Watch {}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}


#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn each_role_reads_writes_and_joins_what_its_code_does() {
        let cfg = Config::default();
        let router = Access::router(&cfg);
        assert_eq!(router.reads, ["hookline.events", "hookline.endpoints", "hookline.event-types"]);
        assert_eq!(router.writes, ["hookline.deliveries", "hookline.dlq"]);
        assert_eq!(router.groups, [("hookline.router".to_owned(), topics(&["hookline.events"]))]);
        let sender = Access::sender(&cfg);
        assert_eq!(sender.groups[0].0, "hookline.sender");
        assert_eq!(sender.groups[0].1.len(), 7, "deliveries and 6 retry tiers");
        assert!(sender.writes.contains(&"hookline.retry.5s".to_owned()));
        assert!(!sender.writes.contains(&"hookline.deliveries".to_owned()), "the sender never writes deliveries");
        assert!(sender.writes.contains(&"hookline.parked".to_owned()) && sender.reads.contains(&"hookline.parked".to_owned()));
        assert_eq!(sender.groups[1], ("hookline.sender-parked".to_owned(), topics(&["hookline.parked"])));
        assert!(Access::replay(&cfg).groups.is_empty() && Access::api(&cfg).groups.is_empty());
        let dev = Access::dev(&cfg);
        assert_eq!(dev.groups.len(), 3);
        let mut every = dev.topics();
        every.sort();
        assert_eq!(every.len(), 14, "every topic of the installation: {every:?}");
    }
}

//! Every topic of an installation: [`specs`] says what should exist, [`compare`] (no IO)
//! says how what a cluster holds differs from it, [`ensure`] creates what is missing and
//! compares the rest (`hookline topics create`, safe to run any number of times: an existing
//! topic is compared, never recreated), and [`check`] only compares, so a principal that
//! may only Describe and DescribeConfigs can run it (`hookline topics check`).

use crate::preflight::{self, Acls, Attempt, MetadataClient, Operation, Refused, Unanswered};
use hookline_core::config::Config;
use rdkafka::client::DefaultClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What should exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// A compacted state topic is read as one ordered log: it has exactly its partitions.
    fn exact_partitions(&self) -> bool {
        self.configs.iter().any(|(k, v)| *k == "cleanup.policy" && v == "compact")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    /// Made now, as its spec says; `problems` can only be the pairing rule's (a topic made
    /// with the configured partitions, fewer than an older one it pairs with has now).
    Created { problems: Vec<Problem> },
    /// It was there; `problems` says how it differs from its spec.
    Exists { partitions: i32, problems: Vec<Problem> },
}

#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("kafka admin request failed")]
    Kafka(#[from] KafkaError),
    #[error("topic {topic}: {problem}")]
    Topic { topic: String, problem: String },
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// Every topic of the installation with its partitions and settings.
pub fn specs(cfg: &Config) -> Vec<TopicSpec> {
    let k = &cfg.kafka;
    let t = cfg.topics();
    let rf = i32::from(k.replication_factor);
    let isr = k.min_insync_replicas.to_string();
    let common = |retention_ms: i64| {
        vec![
            ("cleanup.policy", "delete".to_owned()),
            ("min.insync.replicas", isr.clone()),
            ("retention.ms", retention_ms.to_string()),
        ]
    };
    // Deliveries, tiers and dead letters wrap an event: leave room for any event the events
    // topic accepted (1 MiB by default) plus the envelope.
    let wrapping = |retention_ms: i64| {
        let mut c = common(retention_ms);
        c.push(("max.message.bytes", WRAPPING_MAX_BYTES.to_string()));
        c
    };
    // Endpoints and replay jobs: small compacted state topics, read whole at start.
    let mut compacted = vec![
        ("cleanup.policy", "compact".to_owned()),
        ("min.insync.replicas", isr.clone()),
        // Compact soon after writes so a restart reads few superseded records.
        ("min.cleanable.dirty.ratio", "0.1".to_owned()),
        ("segment.ms", "3600000".to_owned()),
    ];
    compacted.sort();
    let spec = |name: String, partitions: i32, configs: Vec<(&'static str, String)>| TopicSpec {
        name,
        partitions,
        replication_factor: rf,
        configs,
    };
    let mut specs = vec![
        spec(t.events, k.partitions.events, common(k.events_retention_ms)),
        spec(t.endpoints, 1, compacted.clone()),
        spec(t.deliveries, k.partitions.deliveries, wrapping(k.deliveries_retention_ms)),
        spec(t.attempts, k.partitions.attempts, common(k.attempts_retention_ms)),
        spec(t.dlq, k.partitions.dlq, wrapping(k.dlq_retention_ms)),
        // One partition per deliveries partition: the sender that owns deliveries partition
        // p parks a lane on parked partition p, and reads it back.
        spec(t.parked, k.partitions.deliveries, wrapping(k.deliveries_retention_ms)),
        spec(t.replays, 1, compacted.clone()),
        spec(t.event_types, 1, compacted),
    ];
    for (_, name) in cfg.retry_tiers() {
        specs.push(spec(name, k.partitions.retry, wrapping(k.deliveries_retention_ms)));
    }
    specs
}

/// `max.message.bytes` of the topics whose records wrap an event; producers allow the same.
pub const WRAPPING_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The settings `check` compares, where the spec sets them. The others (segment size,
/// compaction tuning) only make Hookline faster or slower, never wrong.
const CHECKED: [&str; 4] = ["cleanup.policy", "retention.ms", "min.insync.replicas", "max.message.bytes"];

/// What the cluster holds for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Missing,
    Found {
        partitions: i32,
        /// The fewest replicas of any partition.
        replication_factor: i32,
        /// Effective values (set on the topic or inherited), or why they could not be read.
        configs: Result<BTreeMap<String, String>, Refused>,
    },
    /// Hidden from this principal.
    Refused(Refused),
}

/// One way a topic differs from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    FewerPartitions { actual: i32, expected: i32 },
    /// More partitions than a state topic may have.
    ExtraPartitions { actual: i32, expected: i32 },
    ReplicationFactor { actual: i32, expected: i32 },
    /// Fewer partitions than the topic its partitions pair with has
    /// ([`hookline_core::config::Topics::paired`]).
    FewerThanPaired { actual: i32, paired: String, expected: i32 },
    /// `at_least`: a larger value is fine too.
    Config { key: &'static str, actual: Option<String>, expected: String, at_least: bool },
    Refused(Refused),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "missing"),
            Self::FewerPartitions { actual, expected } => {
                write!(f, "{}, expected at least {expected}", partitions(*actual))
            }
            Self::ExtraPartitions { actual, expected } => write!(
                f,
                "{}, expected exactly {expected} (a compacted state topic is read as one ordered log)",
                partitions(*actual)
            ),
            Self::ReplicationFactor { actual, expected } => {
                write!(f, "replication factor {actual}, expected {expected}")
            }
            Self::FewerThanPaired { actual, paired, expected } => write!(
                f,
                "{}, fewer than the {expected} of {paired} (partition p here takes what leaves partition p there)",
                partitions(*actual)
            ),
            Self::Config { key, actual, expected, at_least } => {
                let actual = actual.as_deref().unwrap_or("not reported");
                let bound = if *at_least { "at least " } else { "" };
                write!(f, "{key} {actual}, expected {bound}{expected}")
            }
            Self::Refused(r) => write!(f, "{}", r.summary()),
        }
    }
}

/// `1 partition`, `3 partitions`.
pub fn partitions(n: i32) -> String {
    if n == 1 {
        "1 partition".to_owned()
    } else {
        format!("{n} partitions")
    }
}

/// A topic compared with its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCheck {
    pub name: String,
    pub configured_partitions: i32,
    /// Partitions and replication factor, when the topic was seen.
    pub seen: Option<(i32, i32)>,
    pub problems: Vec<Problem>,
}

impl TopicCheck {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for TopicCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        if !self.is_ok() {
            let problems: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
            return write!(f, "{}", problems.join("; "));
        }
        write!(f, "ok")?;
        if let Some((count, rf)) = self.seen {
            write!(f, " ({}", partitions(count))?;
            if count > self.configured_partitions {
                write!(f, ", more than the {} configured", self.configured_partitions)?;
            }
            write!(f, ", replication factor {rf})")?;
        }
        Ok(())
    }
}

/// How `observed` differs from `spec`.
pub fn compare(spec: &TopicSpec, observed: &Observed) -> TopicCheck {
    let mut check =
        TopicCheck { name: spec.name.clone(), configured_partitions: spec.partitions, seen: None, problems: Vec::new() };
    let (partitions, replication_factor, configs) = match observed {
        Observed::Missing => {
            check.problems.push(Problem::Missing);
            return check;
        }
        Observed::Refused(r) => {
            check.problems.push(Problem::Refused(r.clone()));
            return check;
        }
        Observed::Found { partitions, replication_factor, configs } => (*partitions, *replication_factor, configs),
    };
    check.seen = Some((partitions, replication_factor));
    if partitions < spec.partitions {
        check.problems.push(Problem::FewerPartitions { actual: partitions, expected: spec.partitions });
    } else if partitions > spec.partitions && spec.exact_partitions() {
        check.problems.push(Problem::ExtraPartitions { actual: partitions, expected: spec.partitions });
    }
    // More replicas than configured only adds durability.
    if replication_factor < spec.replication_factor {
        check.problems.push(Problem::ReplicationFactor { actual: replication_factor, expected: spec.replication_factor });
    }
    let configs = match configs {
        Ok(c) => c,
        Err(r) => {
            check.problems.push(Problem::Refused(r.clone()));
            return check;
        }
    };
    for (key, expected) in spec.configs.iter().filter(|(k, _)| CHECKED.contains(k)) {
        let actual = configs.get(*key);
        let at_least = *key == "max.message.bytes";
        let fine = actual.is_some_and(|a| same_setting(key, a, expected, at_least));
        if !fine {
            check.problems.push(Problem::Config { key, actual: actual.cloned(), expected: expected.clone(), at_least });
        }
    }
    check
}

/// Compares one setting as Kafka means it: numbers as numbers, policies as sets.
fn same_setting(key: &str, actual: &str, expected: &str, at_least: bool) -> bool {
    if key == "cleanup.policy" {
        let set = |v: &str| {
            let mut parts: Vec<String> = v.split(',').map(|p| p.trim().to_ascii_lowercase()).collect();
            parts.sort();
            parts
        };
        return set(actual) == set(expected);
    }
    match (actual.trim().parse::<i64>(), expected.parse::<i64>()) {
        (Ok(a), Ok(e)) if at_least => a >= e,
        (Ok(a), Ok(e)) => a == e,
        _ => actual.trim() == expected,
    }
}

/// The commands that fix `checks`, each once, in the order of the topics.
pub fn fixes(checks: &[TopicCheck], bootstrap: &str) -> Vec<String> {
    let mut fixes: Vec<String> = Vec::new();
    let mut add = |fix: String| {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    };
    for check in checks {
        let topic = &check.name;
        let mut settings = Vec::new();
        for problem in &check.problems {
            match problem {
                Problem::Missing => add("hookline topics create   # as a principal allowed to create topics".to_owned()),
                Problem::FewerPartitions { expected, .. } | Problem::FewerThanPaired { expected, .. } => add(format!(
                    "kafka-topics --bootstrap-server {bootstrap} --alter --topic {topic} --partitions {expected}"
                )),
                Problem::ExtraPartitions { .. } => add(format!(
                    "kafka-topics --bootstrap-server {bootstrap} --delete --topic {topic} && hookline topics create   \
                     # a topic cannot lose partitions: its records are lost"
                )),
                Problem::ReplicationFactor { expected, .. } => add(format!(
                    "kafka-reassign-partitions --bootstrap-server {bootstrap} --execute --reassignment-json-file \
                     <a plan giving each partition of {topic} {expected} replicas>"
                )),
                Problem::Config { key, expected, .. } => settings.push(format!("{key}={expected}")),
                Problem::Refused(r) => add(r.fix()),
            }
        }
        if !settings.is_empty() {
            add(format!(
                "kafka-configs --bootstrap-server {bootstrap} --alter --entity-type topics --entity-name {topic} \
                 --add-config {}",
                settings.join(",")
            ));
        }
    }
    fixes
}

/// Admin requests wait this long for the brokers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin client for creating and describing, and a metadata client that reports a
/// refused authentication at once (the admin client would only time out).
fn clients(cfg: &Config) -> Result<(AdminClient<DefaultClientContext>, Arc<MetadataClient>), KafkaError> {
    Ok((preflight::client(&cfg.kafka).create()?, Arc::new(MetadataClient::new(&cfg.kafka, false)?)))
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))).request_timeout(Some(REQUEST_TIMEOUT))
}

/// Creates what is missing and reports each topic's status. A state topic with more than
/// its one partition is an error; other differences are reported in the status.
pub async fn ensure(cfg: &Config) -> Result<Vec<(String, TopicStatus)>, TopicsError> {
    let (admin, metadata) = clients(cfg)?;
    let acls = Acls::new(&cfg.kafka);
    // Connect first: a refused authentication is named, not timed out on.
    shapes(&metadata, &acls, &[]).await?;
    let specs = specs(cfg);
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut topic = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication_factor));
            for (k, v) in &s.configs {
                topic = topic.set(k, v);
            }
            topic
        })
        .collect();
    let results = admin.create_topics(&new_topics, &options()).await?;

    let mut existing = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(spec),
            Err((topic, code)) => {
                let one = [topic.clone()];
                return Err(match acls.refusal(code, "", &Attempt::new(Operation::Create, &one)) {
                    Some(r) => r.into(),
                    None => TopicsError::Topic { topic, problem: code.to_string() },
                });
            }
        }
    }
    let created: Vec<String> = specs.iter().filter(|s| !existing.iter().any(|e| e.name == s.name)).map(|s| s.name.clone()).collect();
    wait_listed(&metadata, &acls, &created).await?;
    let observed = observe(&admin, &metadata, &acls, &existing).await?;
    let mut checks = Vec::with_capacity(specs.len());
    for spec in &specs {
        let check = match existing.iter().position(|e| e.name == spec.name) {
            Some(i) => compare(spec, &observed[i]),
            None => TopicCheck {
                name: spec.name.clone(),
                configured_partitions: spec.partitions,
                seen: Some((spec.partitions, spec.replication_factor)),
                problems: Vec::new(),
            },
        };
        if let Some(spread) = check.problems.iter().find(|p| matches!(p, Problem::ExtraPartitions { .. })) {
            return Err(TopicsError::Topic { topic: spec.name.clone(), problem: spread.to_string() });
        }
        checks.push(check);
    }
    pair(cfg, &mut checks);
    Ok(checks
        .into_iter()
        .map(|check| {
            let status = if created.contains(&check.name) {
                TopicStatus::Created { problems: check.problems }
            } else {
                TopicStatus::Exists { partitions: check.seen.map_or(0, |s| s.0), problems: check.problems }
            };
            (check.name, status)
        })
        .collect())
}

/// Compares every topic with its spec without changing anything (Describe and
/// DescribeConfigs on the topics are enough).
pub async fn check(cfg: &Config) -> Result<Vec<TopicCheck>, TopicsError> {
    let (admin, metadata) = clients(cfg)?;
    let acls = Acls::new(&cfg.kafka);
    let specs = specs(cfg);
    let all: Vec<&TopicSpec> = specs.iter().collect();
    let observed = observe(&admin, &metadata, &acls, &all).await?;
    let mut checks: Vec<TopicCheck> = specs.iter().zip(&observed).map(|(spec, observed)| compare(spec, observed)).collect();
    pair(cfg, &mut checks);
    Ok(checks)
}

/// Adds the pairing rule's problem to each topic with fewer partitions than the one it
/// pairs with ([`hookline_core::config::Topics::paired`]): one problem and one fix per
/// topic, the larger of what the configuration and the pair ask.
fn pair(cfg: &Config, checks: &mut [TopicCheck]) {
    for (topic, paired) in cfg.topics().paired() {
        let seen = |name: &str| checks.iter().find(|c| c.name == name).and_then(|c| c.seen).map(|(n, _)| n);
        let Some(problem) = unpaired(seen(&topic), &paired, seen(&paired)) else { continue };
        let check = checks.iter_mut().find(|c| c.name == topic).expect("a paired topic has a spec");
        let asks = |p: &Problem| match p {
            Problem::FewerPartitions { expected, .. } | Problem::FewerThanPaired { expected, .. } => *expected,
            _ => 0,
        };
        match check.problems.iter().position(|p| matches!(p, Problem::FewerPartitions { .. })) {
            Some(i) if asks(&check.problems[i]) >= asks(&problem) => {}
            Some(i) => check.problems[i] = problem,
            None => check.problems.push(problem),
        }
    }
}

/// [`Problem::FewerThanPaired`] when a topic seen with `partitions` has fewer than `paired`,
/// the topic its partitions pair with, seen with `paired_partitions`. Nothing when either
/// was not seen.
pub fn unpaired(partitions: Option<i32>, paired: &str, paired_partitions: Option<i32>) -> Option<Problem> {
    let (actual, expected) = (partitions?, paired_partitions?);
    (actual < expected).then(|| Problem::FewerThanPaired { actual, paired: paired.to_owned(), expected })
}

/// What the cluster holds for each of `specs`: partitions and replicas from the metadata
/// (which lists only the topics this principal may Describe), settings from DescribeConfigs.
async fn observe(
    admin: &AdminClient<DefaultClientContext>,
    metadata: &Arc<MetadataClient>,
    acls: &Acls,
    specs: &[&TopicSpec],
) -> Result<Vec<Observed>, TopicsError> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let seen = shapes(metadata, acls, &names).await?;
    let resources: Vec<ResourceSpecifier<'_>> = specs
        .iter()
        .filter(|s| matches!(seen.get(&s.name), Some(Ok(_))))
        .map(|s| ResourceSpecifier::Topic(&s.name))
        .collect();
    let mut described: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if !resources.is_empty() {
        for resource in admin.describe_configs(&resources, &options()).await?.into_iter().flatten() {
            if let OwnedResourceSpecifier::Topic(name) = resource.specifier {
                described.insert(name, resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect());
            }
        }
    }
    let mut observed = Vec::with_capacity(specs.len());
    for spec in specs {
        observed.push(match seen.get(&spec.name) {
            Some(Ok((partitions, replication_factor))) => Observed::Found {
                partitions: *partitions,
                replication_factor: *replication_factor,
                // rust-rdkafka drops the error of each resource: a topic that exists and
                // has no settings is one whose settings Kafka would not show.
                configs: described
                    .remove(&spec.name)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| acls.topic_refused(Operation::DescribeConfigs, &spec.name)),
            },
            Some(Err(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)) => Observed::Missing,
            // `shapes` lets through only the codes that are refusals.
            Some(Err(code)) => Observed::Refused(
                acls.refusal(*code, "", &Attempt::new(Operation::Describe, std::slice::from_ref(&spec.name)))
                    .unwrap_or_else(|| acls.topic_refused(Operation::Describe, &spec.name)),
            ),
            None => return Err(TopicsError::Topic { topic: spec.name.clone(), problem: "no metadata".into() }),
        });
    }
    Ok(observed)
}

/// How long [`ensure`] waits for the topics it created to be listed in the metadata.
const LISTED_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until every topic of `names` is listed in the brokers' metadata, or
/// [`LISTED_TIMEOUT`] passes (then the role's preflight names what is still missing). A
/// created topic is listed a little after CreateTopics answers: seconds on a broker that
/// holds thousands of topics, where `hookline dev` otherwise stopped at once on "missing
/// topics" it had just created.
async fn wait_listed(metadata: &Arc<MetadataClient>, acls: &Acls, names: &[String]) -> Result<(), TopicsError> {
    let deadline = Instant::now() + LISTED_TIMEOUT;
    let mut waiting = names.to_vec();
    while !waiting.is_empty() && Instant::now() < deadline {
        let shapes = shapes(metadata, acls, &waiting).await?;
        waiting.retain(|name| shapes.get(name).is_none_or(Result::is_err));
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Partitions and fewest replicas of each of `names`, or the error Kafka gave for it. The
/// metadata of every topic lists those this principal may Describe; the others are asked
/// for by name, to tell a missing topic from a hidden one.
async fn shapes(
    metadata: &Arc<MetadataClient>,
    acls: &Acls,
    names: &[String],
) -> Result<BTreeMap<String, Result<(i32, i32), RDKafkaErrorCode>>, TopicsError> {
    let (client, acls, names) = (Arc::clone(metadata), acls.clone(), names.to_vec());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + METADATA_TIMEOUT;
        let metadata = client.all(&acls, METADATA_TIMEOUT).map_err(|e| match e {
            Unanswered::Refused(r) => TopicsError::Refused(r),
            Unanswered::Kafka(error) => TopicsError::Kafka(error),
        })?;
        let mut shapes = BTreeMap::new();
        for name in names {
            let listed = metadata.topics().iter().find(|t| t.name() == name).map(preflight::shape);
            let shape = match listed {
                Some(shape) => Ok(shape),
                None => client
                    .topic_shape(&name, deadline.saturating_duration_since(Instant::now()))
                    .map_err(|code| code.unwrap_or(RDKafkaErrorCode::OperationTimedOut)),
            };
            if let Err(code) = shape {
                let one = std::slice::from_ref(&name);
                if !matches!(code, RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
                    && acls.refusal(code, "", &Attempt::new(Operation::Describe, one)).is_none()
                {
                    return Err(TopicsError::Topic { topic: name, problem: code.to_string() });
                }
            }
            shapes.insert(name, shape);
        }
        Ok(shapes)
    })
    .await
    .map_err(|_| TopicsError::Kafka(KafkaError::Canceled))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_topic_is_compacted_with_one_partition() {
        let cfg = Config::default();
        let specs = specs(&cfg);
        let endpoints = specs.iter().find(|s| s.name == "hookline.endpoints").expect("endpoints topic");
        assert_eq!(endpoints.partitions, 1);
        assert!(endpoints.configs.contains(&("cleanup.policy", "compact".to_owned())));
        let parked = specs.iter().find(|s| s.name == "hookline.parked").expect("parked topic");
        assert_eq!(parked.partitions, cfg.kafka.partitions.deliveries, "one parked partition per deliveries partition");
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hookline.events", "hookline.endpoints", "hookline.deliveries", "hookline.attempts", "hookline.dlq",
                "hookline.parked", "hookline.replays", "hookline.event-types", "hookline.retry.5s", "hookline.retry.5m", "hookline.retry.30m", "hookline.retry.2h",
                "hookline.retry.5h", "hookline.retry.10h",
            ]
        );
    }

    fn spec(cfg: &Config, name: &str) -> TopicSpec {
        specs(cfg).into_iter().find(|s| s.name == name).expect("spec")
    }

    /// What `topics create` would have made for `spec`.
    fn as_created(spec: &TopicSpec) -> Observed {
        let mut configs: BTreeMap<String, String> = spec.configs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        configs.insert("segment.bytes".into(), "1073741824".into());
        Observed::Found { partitions: spec.partitions, replication_factor: spec.replication_factor, configs: Ok(configs) }
    }

    fn with(observed: Observed, f: impl FnOnce(&mut i32, &mut i32, &mut BTreeMap<String, String>)) -> Observed {
        match observed {
            Observed::Found { mut partitions, mut replication_factor, configs: Ok(mut configs) } => {
                f(&mut partitions, &mut replication_factor, &mut configs);
                Observed::Found { partitions, replication_factor, configs: Ok(configs) }
            }
            other => other,
        }
    }

    fn production() -> Config {
        let mut cfg = Config::default();
        cfg.kafka.replication_factor = 3;
        cfg.kafka.min_insync_replicas = 2;
        cfg
    }

    #[test]
    fn a_topic_as_created_is_ok_and_says_its_shape() {
        let cfg = production();
        for spec in specs(&cfg) {
            let check = compare(&spec, &as_created(&spec));
            assert!(check.is_ok(), "{check}");
        }
        let events = spec(&cfg, "hookline.events");
        assert_eq!(
            compare(&events, &as_created(&events)).to_string(),
            "hookline.events: ok (6 partitions, replication factor 3)"
        );
        let more = with(as_created(&events), |p, rf, _| {
            *p = 12;
            *rf = 5;
        });
        assert_eq!(
            compare(&events, &more).to_string(),
            "hookline.events: ok (12 partitions, more than the 6 configured, replication factor 5)"
        );
    }

    #[test]
    fn each_difference_is_named_with_the_value_found_and_the_one_expected() {
        let cfg = production();
        let deliveries = spec(&cfg, "hookline.deliveries");
        let wrong = with(as_created(&deliveries), |p, rf, c| {
            *p = 3;
            *rf = 1;
            c.insert("retention.ms".into(), "86400000".into());
            c.insert("min.insync.replicas".into(), "1".into());
            c.insert("max.message.bytes".into(), "1048588".into());
        });
        assert_eq!(
            compare(&deliveries, &wrong).to_string(),
            "hookline.deliveries: 3 partitions, expected at least 12; replication factor 1, expected 3; \
             min.insync.replicas 1, expected 2; retention.ms 86400000, expected 604800000; \
             max.message.bytes 1048588, expected at least 4194304"
        );
        let endpoints = spec(&cfg, "hookline.endpoints");
        let deleting = with(as_created(&endpoints), |_, _, c| {
            c.insert("cleanup.policy".into(), "delete".into());
        });
        assert_eq!(
            compare(&endpoints, &deleting).to_string(),
            "hookline.endpoints: cleanup.policy delete, expected compact"
        );
        let spread = with(as_created(&endpoints), |p, _, _| *p = 3);
        assert_eq!(
            compare(&endpoints, &spread).problems,
            [Problem::ExtraPartitions { actual: 3, expected: 1 }],
            "a state topic must keep exactly one partition"
        );
        let retry = spec(&cfg, "hookline.retry.5m");
        assert_eq!(compare(&retry, &Observed::Missing).to_string(), "hookline.retry.5m: missing");
    }

    #[test]
    fn settings_compare_as_kafka_means_them() {
        let cfg = production();
        let dlq = spec(&cfg, "hookline.dlq");
        let equivalent = with(as_created(&dlq), |_, _, c| {
            c.insert("max.message.bytes".into(), "10485760".into());
            c.insert("cleanup.policy".into(), "delete".into());
        });
        assert!(compare(&dlq, &equivalent).is_ok(), "a larger max.message.bytes is fine");
        let both = with(as_created(&dlq), |_, _, c| {
            c.insert("cleanup.policy".into(), "delete,compact".into());
        });
        assert_eq!(compare(&dlq, &both).to_string(), "hookline.dlq: cleanup.policy delete,compact, expected delete");
        let unreported = with(as_created(&dlq), |_, _, c| {
            c.remove("retention.ms");
        });
        assert_eq!(compare(&dlq, &unreported).to_string(), "hookline.dlq: retention.ms not reported, expected 2592000000");
        assert!(same_setting("cleanup.policy", "compact, delete", "delete,compact", false));
    }

    #[test]
    fn a_refusal_is_a_problem_of_its_topic() {
        let cfg = production();
        let events = spec(&cfg, "hookline.events");
        let acls = Acls::new(&cfg.kafka);
        let refused = acls.topic_refused(Operation::DescribeConfigs, &events.name);
        let hidden = Observed::Found { partitions: 6, replication_factor: 3, configs: Err(refused.clone()) };
        let check = compare(&events, &hidden);
        assert_eq!(check.to_string(), "hookline.events: not authorized to DescribeConfigs (TOPIC_AUTHORIZATION_FAILED)");
        assert_eq!(
            fixes(&[check], "kafka:9092"),
            ["grant the principal DescribeConfigs on the prefixed topic \"hookline.\" (see docs/operations.md#kafka-acls)"]
        );
    }

    #[test]
    fn a_topic_short_of_the_one_it_pairs_with_is_named_with_its_fix() {
        assert_eq!(unpaired(Some(12), "hookline.deliveries", Some(12)), None);
        assert_eq!(unpaired(Some(12), "hookline.deliveries", None), None, "not seen: the other checks say why");
        let problem = unpaired(Some(12), "hookline.deliveries", Some(24)).expect("short of its pair");
        assert_eq!(
            problem.to_string(),
            "12 partitions, fewer than the 24 of hookline.deliveries (partition p here takes what leaves partition p there)"
        );
        let check = TopicCheck { name: "hookline.parked".into(), configured_partitions: 12, seen: Some((12, 3)), problems: vec![problem] };
        assert_eq!(
            fixes(&[check], "kafka:9092"),
            ["kafka-topics --bootstrap-server kafka:9092 --alter --topic hookline.parked --partitions 24"]
        );
    }

    #[test]
    fn the_pairing_rule_adds_one_problem_the_larger_ask_winning() {
        let cfg = production();
        let (deliveries, parked) = (spec(&cfg, "hookline.deliveries"), spec(&cfg, "hookline.parked"));
        let n = deliveries.partitions;
        let checks = |deliveries_seen: i32, parked_seen: i32| {
            let mut checks = vec![
                compare(&deliveries, &with(as_created(&deliveries), |p, _, _| *p = deliveries_seen)),
                compare(&parked, &with(as_created(&parked), |p, _, _| *p = parked_seen)),
            ];
            pair(&cfg, &mut checks);
            checks.remove(1).problems
        };
        assert_eq!(checks(n, n), []);
        // Deliveries grown by hand; parked as configured (or made just now).
        assert_eq!(checks(n * 2, n), [Problem::FewerThanPaired { actual: n, paired: deliveries.name.clone(), expected: n * 2 }]);
        // Parked short of both: one problem, the one that asks more (the configured, on a tie).
        assert_eq!(checks(n, n - 2), [Problem::FewerPartitions { actual: n - 2, expected: n }]);
        assert_eq!(checks(n * 2, n - 2), [Problem::FewerThanPaired { actual: n - 2, paired: deliveries.name.clone(), expected: n * 2 }]);
    }

    #[test]
    fn fixes_name_the_command_for_each_problem_once() {
        let cfg = production();
        let check = |name: &str, f: fn(&mut i32, &mut i32, &mut BTreeMap<String, String>)| {
            let s = spec(&cfg, name);
            compare(&s, &with(as_created(&s), f))
        };
        let checks = vec![
            check("hookline.events", |_, _, _| {}),
            check("hookline.endpoints", |_, _, c| {
                c.insert("cleanup.policy".into(), "delete".into());
                c.insert("min.insync.replicas".into(), "1".into());
            }),
            check("hookline.deliveries", |p, rf, _| {
                *p = 3;
                *rf = 1;
            }),
            compare(&spec(&cfg, "hookline.retry.5m"), &Observed::Missing),
            compare(&spec(&cfg, "hookline.retry.2h"), &Observed::Missing),
        ];
        assert_eq!(
            fixes(&checks, "kafka:9092"),
            [
                "kafka-configs --bootstrap-server kafka:9092 --alter --entity-type topics --entity-name hookline.endpoints \
                 --add-config cleanup.policy=compact,min.insync.replicas=2",
                "kafka-topics --bootstrap-server kafka:9092 --alter --topic hookline.deliveries --partitions 12",
                "kafka-reassign-partitions --bootstrap-server kafka:9092 --execute --reassignment-json-file \
                 <a plan giving each partition of hookline.deliveries 3 replicas>",
                "hookline topics create   # as a principal allowed to create topics",
            ]
        );
    }
}

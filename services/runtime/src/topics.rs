//! Creates or checks every topic of an installation (`hookline topics create`). Safe to run
//! any number of times: an existing topic is checked, never recreated.

use hookline_core::config::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// What should exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Created,
    Exists { partitions: i32 },
}

#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("kafka admin request failed")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic}: {problem}")]
    Topic { topic: String, problem: String },
}

/// Every topic of the installation with its partitions and settings.
pub fn specs(cfg: &Config) -> Vec<TopicSpec> {
    let k = &cfg.kafka;
    let t = cfg.topics();
    let isr = k.min_insync_replicas.to_string();
    let common = |retention_ms: i64| {
        vec![("min.insync.replicas", isr.clone()), ("retention.ms", retention_ms.to_string())]
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
    let mut specs = vec![
        TopicSpec { name: t.events, partitions: k.partitions.events, configs: common(k.events_retention_ms) },
        TopicSpec { name: t.endpoints, partitions: 1, configs: compacted.clone() },
        TopicSpec {
            name: t.deliveries,
            partitions: k.partitions.deliveries,
            configs: wrapping(k.deliveries_retention_ms),
        },
        TopicSpec { name: t.attempts, partitions: k.partitions.attempts, configs: common(k.attempts_retention_ms) },
        TopicSpec { name: t.dlq, partitions: k.partitions.dlq, configs: wrapping(k.dlq_retention_ms) },
        TopicSpec { name: t.replays, partitions: 1, configs: compacted },
    ];
    for (_, name) in cfg.retry_tiers() {
        specs.push(TopicSpec { name, partitions: k.partitions.retry, configs: wrapping(k.deliveries_retention_ms) });
    }
    specs
}

/// `max.message.bytes` of the topics whose records wrap an event; producers allow the same.
pub const WRAPPING_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Creates what is missing and reports each topic's status.
pub async fn ensure(cfg: &Config) -> Result<Vec<(String, TopicStatus)>, TopicsError> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &cfg.kafka.bootstrap_servers);
    for (k, v) in &cfg.kafka.client {
        client.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let specs = specs(cfg);
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut topic =
                NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(i32::from(cfg.kafka.replication_factor)));
            for (k, v) in &s.configs {
                topic = topic.set(k, v);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(&new_topics, &options).await?;

    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    let mut report = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        let status = match result {
            Ok(_) => TopicStatus::Created,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let partitions = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == spec.name)
                    .map(|t| t.partitions().len() as i32)
                    .unwrap_or(0);
                if spec.partitions == 1 && spec.configs.iter().any(|c| *c == ("cleanup.policy", "compact".to_owned())) && partitions != 1 {
                    return Err(TopicsError::Topic {
                        topic: spec.name.clone(),
                        problem: format!("has {partitions} partitions; a compacted state topic must have exactly 1"),
                    });
                }
                if partitions < spec.partitions {
                    tracing::warn!(
                        topic = %spec.name, partitions, wanted = spec.partitions,
                        "topic has fewer partitions than configured; add them with kafka-topics --alter"
                    );
                }
                TopicStatus::Exists { partitions }
            }
            Err((topic, code)) => {
                return Err(TopicsError::Topic { topic, problem: code.to_string() });
            }
        };
        report.push((spec.name.clone(), status));
    }
    Ok(report)
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
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hookline.events", "hookline.endpoints", "hookline.deliveries", "hookline.attempts", "hookline.dlq",
                "hookline.replays", "hookline.retry.5s", "hookline.retry.5m", "hookline.retry.30m", "hookline.retry.2h",
                "hookline.retry.5h", "hookline.retry.10h",
            ]
        );
    }
}

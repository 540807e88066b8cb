//! What Hookline tells an operator when Kafka refuses a request: the operation, the
//! resource, Kafka's error code and the ACL to add ([`Acls::refusal`]). No IO: the code, the
//! operation attempted and its topics or group go in, the message comes out.

use crate::consume::classify;
use hookline_core::config::KafkaConfig;
use hookline_core::consume::ConsumeErrorKind;
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
use std::fmt;

/// Where the ACLs Hookline needs are listed.
pub const ACL_DOC: &str = "docs/operations.md#kafka-acls";

/// An ACL operation, by Kafka's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Create,
    Describe,
    DescribeConfigs,
    IdempotentWrite,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What an ACL is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Topic(String),
    /// One of these topics: a failed produce does not say which.
    AnyTopic(Vec<String>),
    Group(String),
    Cluster,
    TransactionalId(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Topic(t) => write!(f, "topic {t}"),
            Self::AnyTopic(ts) => write!(f, "one of the topics {}", ts.join(", ")),
            Self::Group(g) => write!(f, "group {g}"),
            Self::Cluster => write!(f, "on the cluster"),
            Self::TransactionalId(t) => write!(f, "transactional id {t}"),
        }
    }
}

/// Kafka refused a request: what was refused, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("kafka: not authorized to {operation} {resource} ({code}): grant {grant} — see {ACL_DOC}")]
    NotAuthorized { operation: Operation, resource: Resource, code: String, grant: String },
    #[error(
        "kafka: authentication failed ({code}: {detail}): check sasl.mechanism, sasl.username and \
         sasl.password in kafka.client against the users the brokers know — see {ACL_DOC}"
    )]
    NotAuthenticated { code: String, detail: String },
}

impl Refused {
    /// The refusal without the fix, e.g. `not authorized to Read (TOPIC_AUTHORIZATION_FAILED)`.
    pub fn summary(&self) -> String {
        match self {
            Self::NotAuthorized { operation, code, .. } => format!("not authorized to {operation} ({code})"),
            Self::NotAuthenticated { code, .. } => format!("authentication failed ({code})"),
        }
    }

    /// The fix alone: the ACL to add, or the credentials to check.
    pub fn fix(&self) -> String {
        match self {
            Self::NotAuthorized { grant, .. } => format!("grant {grant} (see {ACL_DOC})"),
            Self::NotAuthenticated { .. } => {
                format!("check sasl.mechanism, sasl.username and sasl.password in kafka.client (see {ACL_DOC})")
            }
        }
    }
}

/// What a client was doing when Kafka answered with an error.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub operation: Operation,
    /// The topics involved (one, or the several a producer writes).
    pub topics: &'a [String],
    pub group: Option<&'a str>,
    pub transactional_id: Option<&'a str>,
}

impl<'a> Attempt<'a> {
    pub fn new(operation: Operation, topics: &'a [String]) -> Self {
        Self { operation, topics, group: None, transactional_id: None }
    }

    pub fn group(mut self, group: &'a str) -> Self {
        self.group = Some(group);
        self
    }
}

/// The names Hookline's ACLs use: the topic and group prefix, and the principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    pub(super) prefix: String,
    /// `User:<name>` when kafka.client names a SASL user.
    principal: Option<String>,
}

impl Acls {
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            prefix: format!("{}.", kafka.topic_prefix),
            principal: kafka.client.get("sasl.username").map(|u| format!("User:{u}")),
        }
    }

    /// The message for an error `code` Kafka answered to `attempt`, if it is a refusal
    /// (authorization or authentication); `detail` is librdkafka's text.
    pub fn refusal(&self, code: Code, detail: &str, attempt: &Attempt<'_>) -> Option<Refused> {
        let (operation, resource) = match code {
            Code::TopicAuthorizationFailed => (attempt.operation, match attempt.topics {
                [one] => Resource::Topic(one.clone()),
                many => Resource::AnyTopic(many.to_vec()),
            }),
            Code::GroupAuthorizationFailed => {
                (Operation::Read, Resource::Group(attempt.group.unwrap_or("(unnamed)").to_owned()))
            }
            // A producer id is refused when the principal may write no topic at all.
            Code::ClusterAuthorizationFailed if attempt.operation == Operation::Write => {
                (Operation::IdempotentWrite, Resource::Cluster)
            }
            Code::ClusterAuthorizationFailed => (attempt.operation, Resource::Cluster),
            Code::TransactionalIdAuthorizationFailed => {
                (Operation::Write, Resource::TransactionalId(attempt.transactional_id.unwrap_or("(unnamed)").to_owned()))
            }
            Code::Authentication | Code::SaslAuthenticationFailed => {
                return Some(Refused::NotAuthenticated { code: code_name(code), detail: detail.trim().to_owned() })
            }
            _ => return None,
        };
        let grant = self.grant(operation, &resource);
        Some(Refused::NotAuthorized { operation, resource, code: code_name(code), grant })
    }

    /// Kafka refused `operation` on `topic` (TOPIC_AUTHORIZATION_FAILED).
    pub fn topic_refused(&self, operation: Operation, topic: &str) -> Refused {
        let resource = Resource::Topic(topic.to_owned());
        let grant = self.grant(operation, &resource);
        Refused::NotAuthorized { operation, resource, code: code_name(Code::TopicAuthorizationFailed), grant }
    }

    /// The refusal behind `error`, if [`classify`] calls it one.
    pub fn explain(&self, error: &KafkaError, attempt: &Attempt<'_>) -> Option<Refused> {
        if classify(error) != ConsumeErrorKind::Authorization {
            return None;
        }
        self.refusal(error.rdkafka_error_code()?, &error.to_string(), attempt)
    }

    /// The ACL that allows `operation` on `resource`, as an operator would add it.
    fn grant(&self, operation: Operation, resource: &Resource) -> String {
        let who = self.principal.as_deref().unwrap_or("the principal");
        let prefix = &self.prefix;
        let scoped = |kind: &str, name: &str| {
            if name.starts_with(prefix.as_str()) {
                format!("the prefixed {kind} \"{prefix}\"")
            } else {
                format!("the {kind} \"{name}\"")
            }
        };
        match resource {
            Resource::Topic(t) if operation == Operation::Create => format!(
                "{who} Create on {} (or let an admin run `hookline topics create`; `hookline topics check` needs \
                 only Describe and DescribeConfigs)",
                scoped("topic", t)
            ),
            Resource::Topic(t) => format!("{who} {operation} on {}", scoped("topic", t)),
            Resource::AnyTopic(ts) => {
                format!("{who} {operation} on {}", scoped("topic", ts.first().map_or("", String::as_str)))
            }
            Resource::Group(g) => format!("{who} Read on {}", scoped("group", g)),
            Resource::Cluster if operation == Operation::IdempotentWrite => format!(
                "{who} Write on the prefixed topic \"{prefix}\" (an idempotent producer needs Write on a topic, or \
                 IdempotentWrite on the cluster)"
            ),
            Resource::Cluster => format!("{who} {operation} on the cluster"),
            Resource::TransactionalId(t) => format!("{who} Write on {}", scoped("transactional id", t)),
        }
    }
}

/// Kafka's name of an error code (`TopicAuthorizationFailed` → `TOPIC_AUTHORIZATION_FAILED`).
pub fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acls(user: Option<&str>) -> Acls {
        let mut kafka = KafkaConfig::default();
        if let Some(u) = user {
            kafka.client.insert("sasl.username".into(), u.into());
        }
        Acls::new(&kafka)
    }

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    fn message(acls: &Acls, code: Code, attempt: &Attempt<'_>) -> String {
        acls.refusal(code, "Broker: refused", attempt).expect("a refusal").to_string()
    }

    #[test]
    fn a_refused_topic_names_the_operation_the_topic_and_the_prefixed_acl() {
        let events = topics(&["hookline.events"]);
        assert_eq!(
            message(&acls(None), Code::TopicAuthorizationFailed, &Attempt::new(Operation::Read, &events)),
            "kafka: not authorized to Read topic hookline.events (TOPIC_AUTHORIZATION_FAILED): grant the principal \
             Read on the prefixed topic \"hookline.\" — see docs/operations.md#kafka-acls"
        );
        assert_eq!(
            message(
                &acls(Some("hookline")),
                Code::TopicAuthorizationFailed,
                &Attempt::new(Operation::DescribeConfigs, &events)
            ),
            "kafka: not authorized to DescribeConfigs topic hookline.events (TOPIC_AUTHORIZATION_FAILED): grant \
             User:hookline DescribeConfigs on the prefixed topic \"hookline.\" — see docs/operations.md#kafka-acls"
        );
        // A topic outside the prefix gets an ACL of its own.
        assert!(message(&acls(None), Code::TopicAuthorizationFailed, &Attempt::new(Operation::Read, &topics(&["other"])))
            .contains("grant the principal Read on the topic \"other\""));
    }

    #[test]
    fn a_refused_produce_names_every_topic_it_may_have_been() {
        let writes = topics(&["hookline.deliveries", "hookline.dlq"]);
        assert_eq!(
            message(&acls(None), Code::TopicAuthorizationFailed, &Attempt::new(Operation::Write, &writes)),
            "kafka: not authorized to Write one of the topics hookline.deliveries, hookline.dlq \
             (TOPIC_AUTHORIZATION_FAILED): grant the principal Write on the prefixed topic \"hookline.\" — see \
             docs/operations.md#kafka-acls"
        );
    }

    #[test]
    fn a_refused_group_names_the_group_whatever_the_topic() {
        let events = topics(&["hookline.events"]);
        assert_eq!(
            message(
                &acls(None),
                Code::GroupAuthorizationFailed,
                &Attempt::new(Operation::Read, &events).group("hookline.router")
            ),
            "kafka: not authorized to Read group hookline.router (GROUP_AUTHORIZATION_FAILED): grant the principal \
             Read on the prefixed group \"hookline.\" — see docs/operations.md#kafka-acls"
        );
    }

    #[test]
    fn a_refused_producer_id_asks_for_write_on_the_topics() {
        let writes = topics(&["hookline.deliveries"]);
        assert_eq!(
            message(&acls(None), Code::ClusterAuthorizationFailed, &Attempt::new(Operation::Write, &writes)),
            "kafka: not authorized to IdempotentWrite on the cluster (CLUSTER_AUTHORIZATION_FAILED): grant the \
             principal Write on the prefixed topic \"hookline.\" (an idempotent producer needs Write on a topic, \
             or IdempotentWrite on the cluster) — see docs/operations.md#kafka-acls"
        );
        let all = topics(&["hookline.events"]);
        assert_eq!(
            message(&acls(None), Code::ClusterAuthorizationFailed, &Attempt::new(Operation::Create, &all)),
            "kafka: not authorized to Create on the cluster (CLUSTER_AUTHORIZATION_FAILED): grant the principal \
             Create on the cluster — see docs/operations.md#kafka-acls"
        );
    }

    #[test]
    fn a_refused_create_points_at_an_admin_or_topics_check() {
        let events = topics(&["hookline.events"]);
        let m = message(&acls(None), Code::TopicAuthorizationFailed, &Attempt::new(Operation::Create, &events));
        assert_eq!(
            m,
            "kafka: not authorized to Create topic hookline.events (TOPIC_AUTHORIZATION_FAILED): grant the principal \
             Create on the prefixed topic \"hookline.\" (or let an admin run `hookline topics create`; `hookline \
             topics check` needs only Describe and DescribeConfigs) — see docs/operations.md#kafka-acls"
        );
    }

    #[test]
    fn a_refused_transactional_id_names_it() {
        let mut attempt = Attempt::new(Operation::Write, &[]);
        attempt.transactional_id = Some("hookline.tx-1");
        assert_eq!(
            message(&acls(None), Code::TransactionalIdAuthorizationFailed, &attempt),
            "kafka: not authorized to Write transactional id hookline.tx-1 (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): \
             grant the principal Write on the prefixed transactional id \"hookline.\" — see \
             docs/operations.md#kafka-acls"
        );
    }

    #[test]
    fn a_failed_authentication_names_the_settings_to_check() {
        let r = acls(Some("hookline"))
            .refusal(
                Code::Authentication,
                "SASL authentication error: Authentication failed during authentication due to invalid credentials \
                 with SASL mechanism SCRAM-SHA-512 ",
                &Attempt::new(Operation::Describe, &[]),
            )
            .expect("a refusal");
        assert_eq!(
            r.to_string(),
            "kafka: authentication failed (AUTHENTICATION: SASL authentication error: Authentication failed during \
             authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512): check sasl.mechanism, \
             sasl.username and sasl.password in kafka.client against the users the brokers know — see \
             docs/operations.md#kafka-acls"
        );
        assert!(acls(None).refusal(Code::SaslAuthenticationFailed, "x", &Attempt::new(Operation::Read, &[])).is_some());
    }

    #[test]
    fn other_errors_are_not_refusals() {
        let events = topics(&["hookline.events"]);
        let attempt = Attempt::new(Operation::Read, &events);
        for code in [Code::AllBrokersDown, Code::UnknownTopicOrPartition, Code::RequestTimedOut] {
            assert_eq!(acls(None).refusal(code, "", &attempt), None, "{code:?}");
        }
        // `explain` goes by the consume classification.
        let refused = KafkaError::MessageConsumption(Code::TopicAuthorizationFailed);
        assert!(acls(None).explain(&refused, &attempt).is_some());
        assert_eq!(acls(None).explain(&KafkaError::MessageConsumption(Code::BrokerTransportFailure), &attempt), None);
    }

    #[test]
    fn code_names_are_kafkas() {
        assert_eq!(code_name(Code::TopicAuthorizationFailed), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(code_name(Code::SaslAuthenticationFailed), "SASL_AUTHENTICATION_FAILED");
        assert_eq!(code_name(Code::Authentication), "AUTHENTICATION");
    }
}

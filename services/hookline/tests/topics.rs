//! `hookline topics check` and the access check every role makes at start, against the real
//! broker: topics made wrong on purpose are named with what differs and the command that
//! fixes it; a role whose topics are missing, or whose SASL password is wrong, stops at once
//! saying what to do, where it used to wait forever.
//!
//! Refused ACLs cannot be provoked here (the test broker runs no authorizer); their
//! messages are unit-tested in `hookline_runtime::preflight`.

mod common;

use hookline_core::config::Config;
use hookline_runtime::preflight::{self, Access, PreflightError, Refused};
use hookline_runtime::topics::{self, Problem, TopicStatus, TopicsError};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An installation of its own (prefix `t<uuid>`), small, with two retry tiers.
fn config() -> Config {
    let mut c = Config::default();
    c.kafka.bootstrap_servers = common::bootstrap();
    c.kafka.topic_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    c.kafka.partitions.events = 2;
    c.kafka.partitions.deliveries = 3;
    c.kafka.partitions.attempts = 1;
    c.kafka.partitions.dlq = 1;
    c.kafka.partitions.retry = 1;
    c.retry.schedule = hookline_core::retry::RetrySchedule::parse(&["1s", "1m"]).expect("schedule");
    c.admin.listen = None;
    c
}

fn admin(c: &Config) -> AdminClient<DefaultClientContext> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &c.kafka.bootstrap_servers);
    for (k, v) in &c.kafka.client {
        client.set(k, v);
    }
    client.create().expect("admin client")
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Creates `name` by hand, as an operator might have, with `configs`.
async fn create_by_hand(c: &Config, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin(c).create_topics(&[topic], &options()).await.expect("create");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

/// `hookline <args>` with `config` written to a file, with a deadline.
fn hookline(config: &Config, args: &[&str], timeout: Duration) -> Output {
    let dir = std::env::temp_dir().join(format!("hookline-test-{}", config.kafka.topic_prefix));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path: PathBuf = dir.join("hookline.toml");
    std::fs::write(&path, toml::to_string(config).expect("config as toml")).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("HOOKLINE_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hookline starts");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "hookline {args:?} still running after {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_check_names_each_difference_and_its_fix() {
    let c = config();
    let p = c.kafka.topic_prefix.clone();
    // Deliveries made by hand before `topics create`: too few partitions, short retention,
    // the broker's small message size.
    let deliveries = format!("{p}.deliveries");
    create_by_hand(&c, &deliveries, 1, &[("retention.ms", "3600000"), ("max.message.bytes", "1048576")]).await;
    let created = topics::ensure(&c).await.expect("topics create");
    let status = |name: &str| created.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone()).expect("status");
    assert_eq!(status(&format!("{p}.events")), TopicStatus::Created { problems: vec![] });
    let TopicStatus::Exists { partitions: 1, problems } = status(&deliveries) else { panic!("deliveries existed") };
    assert_eq!(problems.len(), 3, "topics create reports what differs: {problems:?}");

    // The endpoints topic loses compaction; a retry tier is deleted.
    let endpoints = format!("{p}.endpoints");
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&endpoints)).set("cleanup.policy", "delete");
    let altered = admin(&c).alter_configs(&[alter], &options()).await.expect("alter");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    let tier = format!("{p}.retry.1m");
    let deleted = admin(&c).delete_topics(&[&tier], &options()).await.expect("delete");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    // Deletion is asynchronous: check until the tier is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let checks = loop {
        let checks = topics::check(&c).await.expect("topics check");
        if checks.iter().any(|check| check.name == tier && !check.is_ok()) {
            break checks;
        }
        assert!(Instant::now() < deadline, "{tier} still seen after its deletion");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("{p}.events: ok (2 partitions, replication factor 1)"),
            format!("{p}.endpoints: cleanup.policy delete, expected compact"),
            format!(
                "{p}.deliveries: 1 partition, expected at least 3; retention.ms 3600000, expected 604800000; \
                 max.message.bytes 1048576, expected at least 4194304"
            ),
            format!("{p}.attempts: ok (1 partition, replication factor 1)"),
            format!("{p}.dlq: ok (1 partition, replication factor 1)"),
            format!("{p}.parked: ok (3 partitions, replication factor 1)"),
            format!("{p}.replays: ok (1 partition, replication factor 1)"),
            format!("{p}.event-types: ok (1 partition, replication factor 1)"),
            format!("{p}.retry.1s: ok (1 partition, replication factor 1)"),
            format!("{p}.retry.1m: missing"),
        ]
    );
    let b = &c.kafka.bootstrap_servers;
    assert_eq!(
        topics::fixes(&checks, b),
        [
            format!(
                "kafka-configs --bootstrap-server {b} --alter --entity-type topics --entity-name {p}.endpoints \
                 --add-config cleanup.policy=compact"
            ),
            format!("kafka-topics --bootstrap-server {b} --alter --topic {p}.deliveries --partitions 3"),
            format!(
                "kafka-configs --bootstrap-server {b} --alter --entity-type topics --entity-name {p}.deliveries \
                 --add-config retention.ms=604800000,max.message.bytes=4194304"
            ),
            "hookline topics create   # as a principal allowed to create topics".to_owned(),
        ]
    );

    // The same topics checked for a replicated cluster: every topic lacks replicas.
    let mut replicated = c.clone();
    replicated.kafka.replication_factor = 3;
    replicated.kafka.min_insync_replicas = 2;
    let checks = topics::check(&replicated).await.expect("topics check");
    assert_eq!(
        checks[0].to_string(),
        format!("{p}.events: replication factor 1, expected 3; min.insync.replicas 1, expected 2")
    );
    assert!(topics::fixes(&checks, b).iter().any(|f| f.starts_with("kafka-reassign-partitions")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_topics_check_exits_non_zero_until_every_topic_is_right() {
    let c = config();
    let p = c.kafka.topic_prefix.clone();
    let minute = Duration::from_secs(60);

    let missing = hookline(&c, &["topics", "check"], minute);
    assert!(!missing.status.success(), "nothing exists yet");
    let stdout = text(&missing.stdout);
    assert!(stdout.contains(&format!("{p}.events: missing\n")), "{stdout}");
    assert!(stdout.contains("to fix:\n  hookline topics create"), "{stdout}");
    assert!(text(&missing.stderr).contains("10 of 10 topics differ from the configuration"), "{}", text(&missing.stderr));

    let create = hookline(&c, &["topics", "create"], minute);
    assert!(create.status.success(), "{}", text(&create.stderr));
    let good = hookline(&c, &["topics", "check"], minute);
    assert!(good.status.success(), "{}{}", text(&good.stdout), text(&good.stderr));
    assert_eq!(text(&good.stdout).lines().filter(|l| l.contains(": ok (")).count(), 10, "{}", text(&good.stdout));

    let replays = format!("{p}.replays");
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&replays)).set("cleanup.policy", "compact,delete");
    admin(&c).alter_configs(&[alter], &options()).await.expect("alter");
    let broken = hookline(&c, &["topics", "check"], minute);
    assert!(!broken.status.success());
    let stdout = text(&broken.stdout);
    assert!(stdout.contains(&format!("{replays}: cleanup.policy compact,delete, expected compact\n")), "{stdout}");
    assert!(stdout.contains(&format!("--entity-name {replays} --add-config cleanup.policy=compact")), "{stdout}");
    // `topics create` never changes an existing topic: it says what differs, and succeeds.
    let again = hookline(&c, &["topics", "create"], minute);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains(&format!("exists   {replays} (1 partition): cleanup.policy compact,delete")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_topic_with_more_than_one_partition_stops_topics_create() {
    let c = config();
    let endpoints = format!("{}.endpoints", c.kafka.topic_prefix);
    create_by_hand(&c, &endpoints, 3, &[("cleanup.policy", "compact")]).await;
    let refused = topics::ensure(&c).await.expect_err("a spread endpoints topic is refused");
    assert_eq!(
        refused.to_string(),
        format!("topic {endpoints}: 3 partitions, expected exactly 1 (a compacted state topic is read as one ordered log)")
    );
    let checks = topics::check(&c).await.expect("check");
    let fixes = topics::fixes(&checks, &c.kafka.bootstrap_servers);
    let recreate = format!("--delete --topic {endpoints} && hookline topics create");
    assert!(fixes.iter().any(|f| f.contains(&recreate)), "{fixes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_passes_its_access_check_on_a_complete_installation() {
    let c = config();
    topics::ensure(&c).await.expect("topics");
    for access in [Access::router(&c), Access::sender(&c), Access::replay(&c), Access::api(&c), Access::dev(&c)] {
        let started = Instant::now();
        let unverified = preflight::check(&c.kafka, &access).await.expect("access granted");
        assert!(unverified.is_empty(), "{}: everything answered: {unverified:?}", access.role);
        assert!(started.elapsed() < Duration::from_secs(10), "{}: checked in {:?}", access.role, started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliveries_topic_grown_without_its_parked_topic_is_named_before_a_sender_starts() {
    let c = config();
    let p = c.kafka.topic_prefix.clone();
    topics::ensure(&c).await.expect("topics");
    // An operator grows the deliveries topic by hand (3 -> 5) and leaves the parked topic.
    let deliveries = format!("{p}.deliveries");
    let grown = admin(&c).create_partitions(&[NewPartitions::new(&deliveries, 5)], &options()).await.expect("grow");
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");

    let parked = format!("{p}.parked");
    let deadline = Instant::now() + Duration::from_secs(30);
    let check = loop {
        let checks = topics::check(&c).await.expect("topics check");
        let check = checks.into_iter().find(|check| check.name == parked).expect("parked checked");
        if !check.is_ok() || Instant::now() > deadline {
            break check;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        check.to_string(),
        format!("{parked}: 3 partitions, fewer than the 5 of {deliveries} (partition p here takes what leaves partition p there)")
    );
    let b = &c.kafka.bootstrap_servers;
    assert_eq!(topics::fixes(&[check], b), [format!("kafka-topics --bootstrap-server {b} --alter --topic {parked} --partitions 5")]);
    // `topics create` names it too.
    let report = topics::ensure(&c).await.expect("topics create");
    let status = report.into_iter().find(|(name, _)| *name == parked).map(|(_, s)| s);
    let Some(TopicStatus::Exists { partitions: 3, problems }) = status else { panic!("parked existed: {status:?}") };
    assert!(matches!(&problems[..], [Problem::FewerThanPaired { expected: 5, .. }]), "{problems:?}");

    // A sender (and `hookline dev`) refuses to start, where it used to stop at its first
    // park on a new partition; the other roles do not read the parked topic.
    for access in [Access::sender(&c), Access::dev(&c)] {
        let refused = preflight::check(&c.kafka, &access).await.expect_err("unpaired");
        assert!(matches!(&refused, PreflightError::Unpaired(t, _) if *t == parked), "{}: {refused}", access.role);
        assert!(refused.to_string().starts_with(&format!("kafka: topic {parked}: 3 partitions, fewer than the 5")), "{refused}");
    }
    preflight::check(&c.kafka, &Access::router(&c)).await.expect("the router does not need the parked topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_whose_topics_are_missing_stops_at_once_naming_them() {
    let c = config();
    let p = c.kafka.topic_prefix.clone();
    let refused = preflight::check(&c.kafka, &Access::router(&c)).await.expect_err("missing topics");
    assert!(matches!(&refused, PreflightError::Missing(t) if t.len() == 5), "{refused}");
    // Before, the router waited for the endpoints topic forever.
    let router = hookline(&c, &["router"], Duration::from_secs(30));
    assert!(!router.status.success());
    assert_eq!(
        text(&router.stderr).lines().last().unwrap_or_default(),
        format!(
            "hookline: kafka: missing topics {p}.events, {p}.endpoints, {p}.event-types, {p}.deliveries, {p}.dlq: run `hookline topics \
             create` (as a principal allowed to create topics), then `hookline topics check`"
        )
    );
}

fn sasl_config(password: &str) -> Config {
    let bootstrap = std::env::var("HOOKLINE_TEST_KAFKA_SASL").unwrap_or_else(|_| "127.0.0.1:19095".into());
    let ca = std::env::var("HOOKLINE_TEST_KAFKA_CA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.cache/kafka-state/19092/tls/ca.pem").into());
    let hint = "start Kafka with KAFKA_SASL_PORT (scripts/test.sh does)";
    assert!(std::path::Path::new(&ca).exists(), "no test CA at {ca}: {hint}");
    let mut c = config();
    c.kafka.bootstrap_servers = bootstrap;
    for (k, v) in [
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "hookline"),
        ("sasl.password", password),
    ] {
        c.kafka.client.insert(k.into(), v.into());
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sasl_password_is_named_at_once_by_every_command() {
    let right = sasl_config("hookline-test-secret");
    topics::ensure(&right).await.expect("topics over SASL_SSL");
    let unverified = preflight::check(&right.kafka, &Access::sender(&right)).await.expect("the right password passes");
    assert!(unverified.is_empty(), "{unverified:?}");

    let mut wrong = sasl_config("not-the-password");
    wrong.kafka.topic_prefix = right.kafka.topic_prefix.clone();
    let bound = Duration::from_secs(10);
    let started = Instant::now();
    let refused = preflight::check(&wrong.kafka, &Access::router(&wrong)).await.expect_err("refused");
    assert!(started.elapsed() < bound, "named in {:?}", started.elapsed());
    let PreflightError::Refused(refusals) = &refused else { panic!("{refused}") };
    assert!(matches!(refusals[..], [Refused::NotAuthenticated { .. }]), "{refused}");
    assert!(
        refused.to_string().starts_with("kafka: authentication failed (AUTHENTICATION: ")
            && refused.to_string().contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "{refused}"
    );

    let started = Instant::now();
    let checked = topics::check(&wrong).await;
    assert!(matches!(checked, Err(TopicsError::Refused(Refused::NotAuthenticated { .. }))), "{checked:?}");
    let created = topics::ensure(&wrong).await;
    assert!(matches!(created, Err(TopicsError::Refused(Refused::NotAuthenticated { .. }))), "{created:?}");
    assert!(started.elapsed() < bound * 2, "topics check and create named it in {:?}", started.elapsed());

    let sender = hookline(&wrong, &["sender"], Duration::from_secs(30));
    assert!(!sender.status.success());
    let stderr = text(&sender.stderr);
    assert!(stderr.lines().last().unwrap_or_default().starts_with("hookline: kafka: authentication failed"), "{stderr}");
}

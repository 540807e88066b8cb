//! Test harness: a whole pipeline (registry follower, router, sender) in-process against
//! the real Kafka broker, with its own topic prefix so tests never see each other's records.
#![allow(dead_code)]

pub mod api;
pub mod faulty;
pub mod lanes;
pub mod procs;

use futures::StreamExt;
use hookline_core::config::Config;
use hookline_core::retry::RetrySchedule;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::health::Health;
use hookline_runtime::registry::{self, EndpointRegistry, SecretKeys};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::{kafka, time::now_ms, topics};
use hookline_sink::{Ledger, Sink, SinkConfig};
use rdkafka::consumer::{Consumer, StreamConsumer};
use hookline_runtime::kafka::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn bootstrap() -> String {
    std::env::var("HOOKLINE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A fixed pseudo-random number for `n` (splitmix64's finaliser): failures "at random"
/// that are the same in every run.
pub fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Waits until `check` holds, polling; fails the test with `what` at the deadline.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`eventually`], for a check that is itself async.
pub async fn eventually_async<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct TestSink {
    pub addr: SocketAddr,
    pub ledger: Arc<Ledger>,
    pub secret: String,
    stop: Shutdown,
    https: bool,
}

impl TestSink {
    /// A receiver on 127.0.0.1:0 verifying with `secret`, keeping bodies.
    pub async fn start(secret: &str) -> Self {
        Self::start_with(secret, None).await
    }

    /// The same, serving HTTPS with `tls`.
    pub async fn start_with(secret: &str, tls: Option<hookline_sink::TlsFiles>) -> Self {
        let https = tls.is_some();
        let config = SinkConfig { secrets: vec![secret.to_owned()], keep_bodies: true, print: false, latency_field: None, tls };
        let sink = Sink::bind("127.0.0.1:0".parse().expect("addr"), config).await.expect("sink binds");
        let stop = Shutdown::new();
        let (addr, ledger) = (sink.local_addr(), sink.ledger());
        let s = stop.clone();
        tokio::spawn(sink.serve(async move { s.cancelled().await }));
        Self { addr, ledger, secret: secret.to_owned(), stop, https }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/{path}", self.addr)
    }
}

impl Drop for TestSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn secret(n: u8) -> String {
    hookline_core::signing::secret_from_bytes(&[n; 32])
}

pub struct TestPipeline {
    pub config: Config,
    pub registry: Arc<EndpointRegistry>,
    pub producer: FutureProducer,
    /// The in-process router's and sender's health (what their `/readyz` would say).
    pub health: Arc<Health>,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A role task that can be stopped on its own.
pub struct Worker {
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("stops in time").expect("task");
    }
}

pub struct Builder {
    config: Config,
    roles: bool,
}

impl Builder {
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.config.sender.allow_loopback = allow;
        self
    }

    pub fn retry_schedule(mut self, delays: &[&str]) -> Self {
        self.config.retry.schedule = RetrySchedule::parse(delays).expect("a valid schedule");
        self
    }

    pub fn breaker(mut self, failure_threshold: u32, cooldown_ms: u64) -> Self {
        self.config.breaker.failure_threshold = failure_threshold;
        self.config.breaker.initial_cooldown_ms = cooldown_ms;
        self.config.breaker.max_cooldown_ms = cooldown_ms * 4;
        self
    }

    pub fn request_timeout_ms(mut self, ms: u64) -> Self {
        self.config.sender.request_timeout_ms = ms;
        self.config.sender.connect_timeout_ms = ms.min(self.config.sender.connect_timeout_ms);
        self
    }

    /// Per-endpoint requests in flight and deliveries held.
    pub fn endpoint_queue(mut self, in_flight: usize, queued: usize) -> Self {
        self.config.sender.max_in_flight_per_endpoint = in_flight;
        self.config.sender.max_queued_per_endpoint = queued;
        self
    }

    /// `sender.max_in_flight`: records in flight per sender consumer.
    pub fn sender_window(mut self, n: usize) -> Self {
        self.config.sender.max_in_flight = n;
        self
    }

    /// `sender.lane_park_after_ms`: how long a lane's head fails before the lane is parked.
    pub fn lane_park_after_ms(mut self, ms: u64) -> Self {
        self.config.sender.lane_park_after_ms = ms;
        self
    }

    pub fn deliveries_partitions(mut self, n: i32) -> Self {
        self.config.kafka.partitions.deliveries = n;
        self
    }

    /// Every Kafka client over TLS to `bootstrap`, trusting the CA in `ca_pem`.
    pub fn kafka_tls(mut self, bootstrap: &str, ca_pem: &str) -> Self {
        self.config.kafka.bootstrap_servers = bootstrap.to_owned();
        self.config.kafka.client.insert("security.protocol".into(), "ssl".into());
        self.config.kafka.client.insert("ssl.ca.location".into(), ca_pem.to_owned());
        self
    }

    /// One more librdkafka property for every client.
    pub fn kafka_client(mut self, key: &str, value: &str) -> Self {
        self.config.kafka.client.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Trust the CA certificates in `pem` for endpoint TLS (`sender.ca_file`).
    pub fn endpoint_ca_file(mut self, pem: &str) -> Self {
        self.config.sender.ca_file = pem.to_owned();
        self
    }

    pub fn replay_keep_finished_ms(mut self, ms: i64) -> Self {
        self.config.replay.keep_finished_ms = ms;
        self
    }

    /// Export traces to `otlp_endpoint` and send trace context to endpoints.
    pub fn traces(mut self, otlp_endpoint: &str) -> Self {
        self.config.traces.otlp_endpoint = otlp_endpoint.to_owned();
        self.config.traces.propagate_to_endpoints = true;
        self
    }

    /// `sender.recent_deliveries`: pairs remembered to drop re-routed copies.
    pub fn recent(mut self, n: usize) -> Self {
        self.config.sender.recent_deliveries = n;
        self
    }

    /// `router.max_payload_bytes`: larger payloads are dead-lettered.
    pub fn max_payload_bytes(mut self, n: usize) -> Self {
        self.config.router.max_payload_bytes = n;
        self
    }

    /// The topics of another pipeline (e.g. to restart on them with another configuration).
    pub fn topic_prefix(mut self, prefix: &str) -> Self {
        self.config.kafka.topic_prefix = prefix.to_owned();
        self
    }

    /// `[secrets]`: the keys that seal endpoint secrets in the endpoints topic.
    pub fn secrets(mut self, secrets: hookline_core::config::SecretsConfig) -> Self {
        self.config.secrets = secrets;
        self
    }

    pub fn disable_after_ms(mut self, ms: i64) -> Self {
        self.config.retry.disable_after_ms = ms;
        self
    }

    /// `breaker.recovered_after_ms`: the debounce of `hookline.endpoint.recovered`.
    pub fn recovered_after_ms(mut self, ms: u64) -> Self {
        self.config.breaker.recovered_after_ms = ms;
        self
    }

    /// `sender.failover_probe_ms`: how often a primary is probed while on its failover.
    pub fn failover_probe_ms(mut self, ms: u64) -> Self {
        self.config.sender.failover_probe_ms = ms;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Run no router or sender in-process (the test starts them as processes).
    pub fn without_roles(mut self) -> Self {
        self.roles = false;
        self
    }

    pub async fn start(self) -> TestPipeline {
        let config = self.config;
        topics::ensure(&config).await.expect("topics (is Kafka running? scripts/kafka.sh start)");
        let shutdown = Shutdown::new();
        let registry = EndpointRegistry::with_keys(SecretKeys::load(&config.secrets).expect("secret keys"));
        let mut tasks = Vec::new();
        let health = Health::new();
        let (k, t, r, s) = (config.kafka.clone(), config.topics().endpoints, Arc::clone(&registry), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            registry::follow(&k, &t, "test-registry", r, s).await.expect("registry follower");
        }));
        if self.roles {
            let (c, r, h, s) = (config.clone(), Arc::clone(&registry), Arc::clone(&health), shutdown.clone());
            tasks.push(tokio::spawn(async move { hookline_router::run(c, r, h, s).await.expect("router") }));
            let (c, r, h, s) = (config.clone(), Arc::clone(&registry), Arc::clone(&health), shutdown.clone());
            tasks.push(tokio::spawn(async move { hookline_sender::run(c, r, h, s).await.expect("sender") }));
        }
        let producer = kafka::producer(&config.kafka, "test-producer").expect("producer");
        tokio::time::timeout(Duration::from_secs(30), registry.wait_ready()).await.expect("registry ready");
        TestPipeline { config, registry, producer, health, shutdown, tasks }
    }
}

impl TestPipeline {
    /// A pipeline on fresh topics `t<uuid>.*`, loopback allowed (test receivers are local).
    pub fn builder() -> Builder {
        let mut config = Config::default();
        config.kafka.bootstrap_servers = bootstrap();
        config.kafka.topic_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        config.kafka.partitions.events = 2;
        config.kafka.partitions.deliveries = 3;
        config.kafka.partitions.attempts = 1;
        config.kafka.partitions.dlq = 1;
        config.sender.allow_loopback = true;
        config.sender.request_timeout_ms = 5_000;
        config.sender.connect_timeout_ms = 2_000;
        // Seconds-scale schedules keep fault tests short; no jitter keeps timings exact.
        config.retry.schedule = RetrySchedule::parse(&["1s", "1s"]).expect("a valid schedule");
        config.retry.jitter = 0.0;
        config.kafka.partitions.retry = 2;
        // Role processes of parallel tests would fight over one admin port.
        config.admin.listen = None;
        Builder { config, roles: true }
    }

    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Writes an endpoint and waits until this pipeline's registry has applied it.
    pub async fn add_endpoint(&self, id: &str, url: &str, types: &[&str], tenant: &str, secret: &str) -> v1::Endpoint {
        self.put_endpoint(endpoint(id, url, types, tenant, secret)).await
    }

    /// Writes `endpoint` as given and waits until this pipeline's registry has applied it.
    pub async fn put_endpoint(&self, endpoint: v1::Endpoint) -> v1::Endpoint {
        let keys = self.registry.secret_keys();
        let written = registry::put_endpoint(&self.producer, &self.config.topics().endpoints, keys, &endpoint).await.expect("put");
        tokio::time::timeout(Duration::from_secs(10), self.registry.wait_applied(written))
            .await
            .unwrap_or_else(|_| panic!("endpoint {} not applied within 10 s", endpoint.id));
        endpoint
    }

    pub async fn publish(&self, events: &[v1::Event]) {
        for e in events {
            self.publish_raw(&e.id, &e.encode_to_vec()).await;
        }
    }

    /// Publishes `n` events (`<prefix>_<i>`) at about `rate` per second, stamping each one's
    /// `occurred_at_ms` as it goes; returns their ids.
    pub async fn publish_paced(&self, prefix: &str, n: usize, rate: f64) -> Vec<String> {
        let topic = self.config.topics().events;
        let started = tokio::time::Instant::now();
        let mut acks = futures::stream::FuturesUnordered::new();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
            let e = event(&format!("{prefix}_{i:05}"), "order.created", "", r#"{"load": true}"#);
            let ack = kafka::enqueue(&self.producer, &topic, &e.id, &e.encode_to_vec(), None).await.expect("enqueue");
            acks.push(kafka::acked(ack));
            ids.push(e.id);
        }
        while let Some(r) = acks.next().await {
            r.expect("published");
        }
        ids
    }

    pub async fn publish_raw(&self, key: &str, value: &[u8]) {
        let ack = kafka::enqueue(&self.producer, &self.config.topics().events, key, value, None).await.expect("enqueue");
        kafka::acked(ack).await.expect("acked");
    }

    /// Reads `topic` from the start until `n` records arrived (or fails at the timeout).
    pub async fn read(&self, topic: &str, partitions: i32, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.read_items(topic, partitions, n, timeout, |bytes| vec![bytes.to_vec()]).await
    }

    /// Reads `topic` from the beginning until `n` items have come out of its records (a
    /// record may hold several: attempt batches).
    pub async fn read_items<T>(
        &self,
        topic: &str,
        partitions: i32,
        n: usize,
        timeout: Duration,
        items: impl Fn(&[u8]) -> Vec<T>,
    ) -> Vec<T> {
        self.read_messages(topic, partitions, n, timeout, |m| items(m.payload().unwrap_or_default())).await
    }

    /// [`Self::read_items`], with the whole record (its timestamp, headers) at hand.
    async fn read_messages<T>(
        &self,
        topic: &str,
        partitions: i32,
        n: usize,
        timeout: Duration,
        items: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> Vec<T>,
    ) -> Vec<T> {
        let consumer: StreamConsumer = self
            .client()
            .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut stream = consumer.stream();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(m))) => out.extend(items(&m)),
                Ok(Some(Err(e))) => panic!("reading {topic}: {e}"),
                Ok(None) | Err(_) => panic!("timed out reading {topic}: {} of {n} items", out.len()),
            }
        }
        out.truncate(n);
        out
    }

    /// The first `n` dead letters; each record's time must be its `dead_at_ms`, whichever
    /// role wrote it (a replay of chosen dead letters selects by record time).
    pub async fn dead_letters(&self, n: usize) -> Vec<v1::DeadLetter> {
        let dlq = self.config.topics().dlq;
        let timed = self
            .read_messages(&dlq, self.config.kafka.partitions.dlq, n, Duration::from_secs(30), |m| {
                let dead = v1::DeadLetter::decode(m.payload().unwrap_or_default()).expect("dead letter decodes");
                vec![(m.timestamp().to_millis(), dead)]
            })
            .await;
        timed
            .into_iter()
            .map(|(at, dead)| {
                assert_eq!(at, Some(dead.dead_at_ms), "a dead letter's record time is its dead_at_ms ({:?})", dead.reason());
                dead
            })
            .collect()
    }

    /// Records in the DLQ now (the sum of its partitions' high watermarks).
    pub fn dead_letter_count(&self) -> i64 {
        self.record_count(&self.config.topics().dlq, self.config.kafka.partitions.dlq)
    }

    /// A client of the test broker, for the reads and counts below.
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.config.kafka.bootstrap_servers);
        config
    }

    /// Records ever written to the first `partitions` of `topic` (their high watermarks).
    pub fn record_count(&self, topic: &str, partitions: i32) -> i64 {
        let consumer: StreamConsumer = self.client().create().expect("consumer");
        (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1).sum()
    }

    /// Waits until the router has committed every partition of the events topic to its end:
    /// every event published so far is routed (or matched no endpoint), so an endpoint added
    /// after this gets none of them from the router.
    pub async fn routed(&self) {
        let topics = self.config.topics();
        let consumer: StreamConsumer = self
            .client()
            .set("group.id", topics.group("router"))
            .create()
            .expect("consumer");
        let partitions = self.config.kafka.partitions.events;
        let mut wanted = TopicPartitionList::new();
        for p in 0..partitions {
            wanted.add_partition(&topics.events, p);
        }
        eventually("the router committed every published event", Duration::from_secs(30), || {
            let Ok(committed) = consumer.committed_offsets(wanted.clone(), Duration::from_secs(5)) else { return false };
            (0..partitions).all(|p| {
                let high = consumer.fetch_watermarks(&topics.events, p, Duration::from_secs(5)).map_or(-1, |(_, high)| high);
                let at = committed.find_partition(&topics.events, p).and_then(|e| e.offset().to_raw());
                // An empty partition has nothing to commit.
                high == 0 || at == Some(high)
            })
        })
        .await;
    }

    pub async fn attempts(&self, n: usize) -> Vec<v1::Attempt> {
        let topic = self.config.topics().attempts;
        let decode = |bytes: &[u8]| hookline_proto::attempts_in(bytes).expect("attempt record decodes");
        self.read_items(&topic, self.config.kafka.partitions.attempts, n, Duration::from_secs(30), decode).await
    }

    /// The management API over this pipeline's registry, called in-process.
    pub fn api(&self, require_https: bool) -> api::TestApi {
        let mut config = self.config.clone();
        config.api.require_https = require_https;
        config.api.history_lookback_ms = 60_000;
        api::TestApi::new(config, Arc::clone(&self.registry), &self.shutdown)
    }

    /// A replay worker on this pipeline's topics; it stops with the pipeline or on its own.
    pub fn replay_worker(&self) -> Worker {
        let stop = self.shutdown.child_token();
        let (c, r, s) = (self.config.clone(), Arc::clone(&self.registry), stop.clone());
        let task = tokio::spawn(async move { hookline_replay::run(c, r, Health::new(), s).await.expect("replay worker") });
        Worker { stop, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(30), t).await.expect("role stops in time").expect("role task");
        }
    }
}

pub fn endpoint(id: &str, url: &str, types: &[&str], tenant: &str, secret: &str) -> v1::Endpoint {
    v1::Endpoint {
        id: id.into(),
        tenant: tenant.into(),
        url: url.into(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        secrets: vec![v1::Secret { key: secret.into(), ..Default::default() }],
        created_at_ms: now_ms(),
        ..Default::default()
    }
}

pub fn event(id: &str, event_type: &str, tenant: &str, body: &str) -> v1::Event {
    v1::Event {
        id: id.into(),
        r#type: event_type.into(),
        tenant: tenant.into(),
        source: "test".into(),
        occurred_at_ms: now_ms(),
        content_type: "application/json".into(),
        payload: body.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// A throw-away CA and a certificate for 127.0.0.1 it signed (scripts/test-ca.sh), in `dir`:
/// the CA to trust, and the server's certificate and key.
pub fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, hookline_sink::TlsFiles) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-ca.sh");
    let out = std::process::Command::new("bash").arg(script).arg(dir).output().expect("bash runs");
    assert!(out.status.success(), "test-ca.sh: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("ca.pem"), hookline_sink::TlsFiles { cert_chain: dir.join("server.pem"), key: dir.join("server.key") })
}

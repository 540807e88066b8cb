//! `hookline bench`: the load generators of `load-tests/run.sh`, and the limits Hookline's
//! throughput is measured against, on the same machine and with the same clients.
//!
//! - `ingest` offers events to the HTTP ingest path at a constant arrival rate (open model:
//!   [`ingest`]); `produce` offers them to the events topic (the Kafka path: [`produce`]).
//!   Both build events the same way ([`event`]), follow the same arrival [`schedule`] and
//!   print a JSON [`summary`].
//! - `http` is a tight loop of signed POSTs with the sender's own pooled client; `kafka`
//!   produces and then consumes records of the same size with the same producer and
//!   consumer settings.
//!
//! Each prints one JSON line.

mod event;
mod ingest;
mod produce;
mod schedule;
mod summary;

use clap::Subcommand;
use futures::stream::{FuturesUnordered, StreamExt};
use hookline_core::address::AddressPolicy;
use hookline_core::config::Config;
use hookline_core::signing::{signature_header, SigningKey};
use hookline_runtime::kafka;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Offer events to the HTTP ingest API at a constant arrival rate (open model).
    Ingest(ingest::IngestArgs),
    /// Produce events straight to the events topic at a constant rate (or `--rate 0`).
    Produce(LoadArgs),
    /// Signed POSTs to one URL as fast as it answers.
    Http {
        #[arg(long)]
        url: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 256)]
        payload_bytes: usize,
    },
    /// Produce then consume `count` records on a fresh topic.
    Kafka {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 512)]
        payload_bytes: usize,
    },
}

pub async fn run(config: Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args).await,
        BenchCommand::Produce(args) => produce::run(&config, args).await,
        BenchCommand::Http { url, secret, concurrency, count, payload_bytes } => {
            http(&url, &secret, concurrency, count, payload_bytes).await
        }
        BenchCommand::Kafka { count, payload_bytes } => kafka_bench(&config, count, payload_bytes).await,
    }
}

/// What both load generators offer: how much, for how long, in which shape, and the events.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Events per second offered (ingest: requests per second are this divided by --batch;
    /// produce: 0 is as fast as Kafka takes them).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to offer it (`30s`, `10m`, ...); not used by `--shape burst`.
    #[arg(long, value_parser = duration, default_value = "30s")]
    pub duration: Duration,
    #[arg(long, value_enum, default_value_t = schedule::Shape::Steady)]
    pub shape: schedule::Shape,
    /// About this many bytes of JSON `data` per event.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    #[arg(long = "type", default_value = "load.created")]
    pub event_type: String,
    /// Give every request (ingest) or event (produce) a sampled W3C trace context of its own.
    #[arg(long)]
    pub traced: bool,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    pub summary: Option<std::path::PathBuf>,
}

impl LoadArgs {
    fn validate(&self) -> anyhow::Result<()> {
        hookline_core::event::validate("x", &self.event_type).map_err(|e| anyhow::anyhow!("--type: {e}"))?;
        anyhow::ensure!(self.rate >= 0.0 && self.rate.is_finite(), "--rate must be a number of events per second");
        Ok(())
    }

    /// The arrivals: `per_second` of them (requests, or events) in the shape and duration.
    fn schedule(&self, per_second: f64) -> schedule::Schedule {
        schedule::Schedule::new(self.shape, per_second, self.duration)
    }
}

/// A duration as delays are written (`500ms`, `20s`, `30m`, `2h`).
fn duration(text: &str) -> Result<Duration, hookline_core::retry::DelayError> {
    text.parse::<hookline_core::retry::Delay>().map(|d| d.duration())
}

/// The sender's own pooled HTTP client, keeping up to `pool` idle connections.
fn client(policy: AddressPolicy, pool: usize) -> anyhow::Result<hookline_sender::client::HttpClient> {
    let settings = hookline_sender::client::ClientSettings {
        connect_timeout: Duration::from_secs(5),
        pool_max_idle_per_host: pool,
        extra_roots: Vec::new(),
    };
    Ok(hookline_sender::client::build(hookline_sender::client::PolicyResolver::system(Arc::new(policy)), &settings)?)
}

async fn http(url: &str, secret: &str, concurrency: usize, count: u64, payload_bytes: usize) -> anyhow::Result<()> {
    let client = client(AddressPolicy::new(Vec::new(), true), concurrency)?;
    let key = SigningKey::from_secret(secret)?;
    let body = bytes::Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(payload_bytes.saturating_sub(10))));
    let uri: http::Uri = url.parse()?;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, key, body, uri, next, failed) =
            (client.clone(), key.clone(), body.clone(), uri.clone(), Arc::clone(&next), Arc::clone(&failed));
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let id = format!("bench_{i}");
                let ts = hookline_runtime::time::now_ms() / 1000;
                let request = http::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts)
                    .header("webhook-signature", signature_header([&key], &id, ts, &body))
                    .body(http_body_util::Full::new(body.clone()))
                    .expect("valid request");
                let ok = match client.request(request).await {
                    Ok(response) => {
                        let success = response.status().is_success();
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                        success
                    }
                    Err(_) => false,
                };
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"bench": "http", "requests": count, "failed": failed.load(Ordering::Relaxed),
            "concurrency": concurrency, "seconds": secs, "per_second": count as f64 / secs})
    );
    Ok(())
}

async fn kafka_bench(config: &Config, count: u64, payload_bytes: usize) -> anyhow::Result<()> {
    let topic = format!("{}.bench.{}", config.kafka.topic_prefix, uuid::Uuid::new_v4().simple());
    let mut admin_config = rdkafka::ClientConfig::new();
    admin_config.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    let admin: AdminClient<DefaultClientContext> = admin_config.create()?;
    let partitions = config.kafka.partitions.deliveries;
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(i32::from(config.kafka.replication_factor)));
    admin.create_topics(&[new], &AdminOptions::new()).await?;

    let producer = kafka::producer(&config.kafka, "hookline-bench")?;
    let value = vec![b'x'; payload_bytes];
    let started = Instant::now();
    let mut acks = FuturesUnordered::new();
    for i in 0..count {
        while acks.len() >= 20_000 {
            acks.next().await.transpose()?;
        }
        let key = format!("k{}", i % 1024);
        acks.push(kafka::acked(kafka::enqueue(&producer, &topic, &key, &value, None).await?));
    }
    while let Some(r) = acks.next().await {
        r?;
    }
    let produce_secs = started.elapsed().as_secs_f64();

    let consumer = kafka::group_consumer(&config.kafka, &format!("{topic}.reader"), "hookline-bench")?;
    consumer.subscribe(&[&topic])?;
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(Ok(_)) => seen += 1,
            Ok(Err(e)) => anyhow::bail!("consume: {e}"),
            Err(_) => anyhow::bail!("consume stalled after {seen} of {count}"),
        }
    }
    let consume_secs = started.elapsed().as_secs_f64();
    admin.delete_topics(&[&topic], &AdminOptions::new()).await?;
    println!(
        "{}",
        serde_json::json!({"bench": "kafka", "records": count, "payload_bytes": payload_bytes, "partitions": partitions,
            "produce_per_second": count as f64 / produce_secs, "consume_per_second": count as f64 / consume_secs,
            "consume_seconds_include_group_join": consume_secs})
    );
    Ok(())
}

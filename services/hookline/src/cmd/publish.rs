//! `hookline publish`: produce events to the events topic from the command line; the
//! smallest publish path, and (with `--count`) a load generator. Prints the id of every
//! event the broker acknowledged on stdout, and progress and a summary on stderr.

use anyhow::Context as _;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt as _;
use hookline_core::event;
use hookline_proto::v1;
use hookline_proto::Message as _;
use hookline_runtime::{kafka, time::now_ms};
use hookline_runtime::kafka::FutureProducer;
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use super::endpoint::key_value;
use hookline_core::config::Config;

#[derive(clap::Args)]
pub struct PublishArgs {
    /// Event type, e.g. `order.created`.
    #[arg(long = "type")]
    pub event_type: String,
    /// The JSON payload, delivered byte for byte.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Event id (default: a new `evt_...` id; ignored with --count > 1).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long, default_value = "hookline-cli")]
    pub source: String,
    /// Attribute `key=value` (repeatable), for subscription filters.
    #[arg(long = "attr", value_parser = key_value)]
    pub attributes: Vec<(String, String)>,
    /// Publish this many events (each with its own id).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Events per second (0: as fast as Kafka takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// Acknowledgements awaited at most at once.
const WINDOW: usize = 20_000;

/// A paced producer wakes at most this often and sends what fell due since. Sends within
/// the producer's linger (5 ms) leave in the same batch anyway; waking every millisecond
/// (the timer's resolution) cost `hookline bench produce` 40% more CPU in thread switches
/// (4.6 against 2.7 CPU-s for 400,000 events at 20,000/s). Events are stamped when they
/// are sent, so latency is measured from the send, and the schedule lag reported includes
/// the tick.
const TICK: Duration = Duration::from_millis(5);

pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

pub async fn run(config: Config, args: PublishArgs) -> anyhow::Result<()> {
    event::validate("x", &args.event_type).context("--type")?;
    serde_json::from_str::<serde_json::Value>(&args.data).context("--data must be valid JSON")?;
    if let Some(id) = &args.id {
        event::validate(id, &args.event_type).context("--id")?;
    }
    let producer = kafka::producer(&config.kafka, "hookline-publish")?;
    let topic = config.topics().events;
    let template = v1::Event {
        id: String::new(),
        r#type: args.event_type.clone(),
        tenant: args.tenant.clone(),
        source: args.source.clone(),
        content_type: "application/json".into(),
        payload: args.data.clone().into_bytes().into(),
        attributes: args.attributes.iter().cloned().collect(),
        ..Default::default()
    };
    let single_id = if args.count == 1 { args.id.clone() } else { None };
    let started = Instant::now();
    let (template, single_id_ref) = (&template, &single_id);
    let items = (0..args.count).map(move |i| {
        (paced(i, args.rate), move || {
            let mut e = stamped(template);
            if let Some(id) = single_id_ref {
                e.id.clone_from(id);
            }
            e
        })
    });
    // Ids on stdout, one a line as each is acknowledged (for scripts); the rest on stderr.
    let mut ids = std::io::BufWriter::new(std::io::stdout());
    let mut progress = Progress::new(args.count, std::io::stderr().is_terminal());
    let produced = produce_observed(&producer, &topic, items, |id, so_far| {
        // A closed stdout (`| head`) must not stop the publish.
        let _ = writeln!(ids, "{id}");
        progress.tick(so_far);
    })
    .await?;
    let _ = ids.flush();
    progress.clear();
    let published = produced.all_acknowledged()?;
    eprintln!("{}", summary(published, &topic, started.elapsed()));
    Ok(())
}

/// The last line of a publish, on stderr.
fn summary(published: u64, topic: &str, took: Duration) -> String {
    let secs = took.as_secs_f64();
    let events = if published == 1 { "event" } else { "events" };
    format!("published {published} {events} to {topic} in {secs:.2}s ({:.0}/s)", published as f64 / secs.max(1e-9))
}

/// A progress line for `--count`, redrawn in place on a terminal at most every 200 ms;
/// nothing when stderr is not one (a log file gets only the summary).
struct Progress {
    total: u64,
    shown: bool,
    on_terminal: bool,
    started: Instant,
    drawn: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_millis(200);

    fn new(total: u64, on_terminal: bool) -> Self {
        let now = Instant::now();
        Self { total, shown: false, on_terminal: on_terminal && total > 1, started: now, drawn: now }
    }

    fn tick(&mut self, so_far: &Produced) {
        if !self.on_terminal || self.drawn.elapsed() < Self::EVERY {
            return;
        }
        self.drawn = Instant::now();
        self.shown = true;
        eprint!("\r\x1b[K{}", self.line(so_far.acknowledged, so_far.failed(), self.started.elapsed()));
    }

    fn line(&self, acknowledged: u64, failed: u64, took: Duration) -> String {
        let pct = acknowledged as f64 * 100.0 / self.total.max(1) as f64;
        let rate = acknowledged as f64 / took.as_secs_f64().max(1e-9);
        let failed = if failed > 0 { format!(", {failed} failed") } else { String::new() };
        format!("published {acknowledged}/{} ({pct:.0}%, {rate:.0}/s{failed})", self.total)
    }

    /// Erases the progress line so the summary takes its place.
    fn clear(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

/// When the `i`-th of a run at `rate` per second is due (at once when `rate` is 0).
fn paced(i: u64, rate: f64) -> Duration {
    if rate > 0.0 {
        Duration::from_secs_f64(i as f64 / rate)
    } else {
        Duration::ZERO
    }
}

/// A copy of `template` as a new event: its own id, occurred now.
pub fn stamped(template: &v1::Event) -> v1::Event {
    let mut e = template.clone();
    e.id = new_event_id();
    e.occurred_at_ms = now_ms();
    e
}

/// What a run of produces did.
#[derive(Debug, Default)]
pub struct Produced {
    pub sent: u64,
    pub acknowledged: u64,
    /// Produces the broker did not acknowledge, by error.
    pub failed_by: BTreeMap<String, u64>,
    /// How late the latest send went out after its due time (back-pressure from Kafka).
    pub max_lag: Duration,
}

impl Produced {
    pub fn failed(&self) -> u64 {
        self.failed_by.values().sum()
    }

    /// The number acknowledged, or an error naming the failures.
    pub fn all_acknowledged(self) -> anyhow::Result<u64> {
        anyhow::ensure!(self.failed_by.is_empty(), "publish: {} of {} not acknowledged: {:?}", self.failed(), self.sent, self.failed_by);
        Ok(self.acknowledged)
    }
}

/// Produces one event per item, no earlier than its due time (an offset from the start),
/// each built by its closure when it is sent (so its timestamps are the send time) and
/// keyed by its id, keeping up to [`WINDOW`] acknowledgements in flight. A failed
/// acknowledgement is counted; a local produce error (not a full queue, which waits) ends
/// the run.
pub async fn produce<F: FnOnce() -> v1::Event>(
    producer: &FutureProducer,
    topic: &str,
    items: impl Iterator<Item = (Duration, F)>,
) -> anyhow::Result<Produced> {
    produce_observed(producer, topic, items, |_, _| {}).await
}

/// [`produce`], calling `acknowledged` with each event id the broker acknowledged and the
/// counts so far.
pub async fn produce_observed<F: FnOnce() -> v1::Event>(
    producer: &FutureProducer,
    topic: &str,
    items: impl Iterator<Item = (Duration, F)>,
    mut acknowledged: impl FnMut(&str, &Produced),
) -> anyhow::Result<Produced> {
    let started = Instant::now();
    let mut acks = FuturesUnordered::new();
    let mut out = Produced::default();
    let mut settle = |out: &mut Produced, (id, r): (String, rdkafka::error::KafkaResult<()>)| match r {
        Ok(()) => {
            out.acknowledged += 1;
            acknowledged(&id, out);
        }
        Err(e) => *out.failed_by.entry(e.to_string()).or_insert(0) += 1,
    };
    let mut woke = started;
    for (due, build) in items {
        let at = started + due;
        if Instant::now() < at {
            // Not before the next tick: what is due by then goes in one burst.
            woke = at.max(woke + TICK);
            tokio::time::sleep_until(woke.into()).await;
        }
        while acks.len() >= WINDOW {
            if let Some(r) = acks.next().await {
                settle(&mut out, r);
            }
        }
        out.max_lag = out.max_lag.max(Instant::now().saturating_duration_since(at));
        let e = build();
        let ack = kafka::enqueue(producer, topic, &e.id, &e.encode_to_vec(), None).await.context("publish")?;
        let id = e.id;
        acks.push(kafka::acked(ack).map(move |r| (id, r)));
        out.sent += 1;
    }
    while let Some(r) = acks.next().await {
        settle(&mut out, r);
    }
    Ok(out)
}

/// Produces `events` keyed by id, at most `rate` per second when `rate > 0`; fails if any
/// is not acknowledged. Returns how many were.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    events: impl Iterator<Item = v1::Event>,
    rate: f64,
) -> anyhow::Result<u64> {
    let items = (0..).zip(events).map(|(i, e)| (paced(i, rate), move || e));
    produce(producer, topic, items).await?.all_acknowledged()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_summary_lines() {
        let p = Progress::new(1000, false);
        assert_eq!(p.line(250, 0, Duration::from_secs(2)), "published 250/1000 (25%, 125/s)");
        assert_eq!(p.line(1000, 3, Duration::from_secs(1)), "published 1000/1000 (100%, 1000/s, 3 failed)");
        assert_eq!(summary(1, "t.events", Duration::from_millis(500)), "published 1 event to t.events in 0.50s (2/s)");
        assert!(summary(10, "t.events", Duration::from_secs(1)).starts_with("published 10 events"));
    }

    #[test]
    fn progress_is_silent_off_a_terminal_and_for_one_event() {
        let mut p = Progress::new(1000, false);
        p.drawn -= Duration::from_secs(1);
        p.tick(&Produced { acknowledged: 5, ..Default::default() });
        assert!(!p.shown);
        assert!(!Progress::new(1, true).on_terminal);
    }
}

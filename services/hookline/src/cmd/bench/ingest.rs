//! `hookline bench ingest`: an open-model load generator for the HTTP ingest path.
//!
//! Requests arrive at a constant rate (or in the burst shape) whatever the API does: each
//! arrival takes one of `--max-in-flight` slots and an arrival that finds none free is
//! counted as dropped, never delayed, so an overloaded API shows up as drops and latency
//! instead of a quietly lower offered load (the closed-model trap). `--rate` is in events
//! per second; each request carries `--batch` events, so requests per second are
//! `rate / batch`. `load-tests/ingest.js` sends the same requests (checked by
//! `load-tests/ingest.test.mjs` against `--print-request`).

use super::event;
use super::LoadArgs;
use super::summary::{self, Histogram};
use bytes::Bytes;
use hookline_core::address::AddressPolicy;
use hookline_runtime::time::now_ms;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Base URL of the management API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Bearer token with the `publish` scope (no `authorization` header when empty).
    #[arg(long, default_value = "")]
    pub token: String,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Events per request, to `POST /v1/events/batch` (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch: u64,
    /// One event per request, to `POST /v1/events` (instead of one-event batches).
    #[arg(long, conflicts_with = "batch")]
    pub single: bool,
    /// Requests outstanding at most; an arrival that finds them all taken is dropped.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// A request unanswered for this long fails (`timeout`).
    #[arg(long, value_parser = super::duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print one request as it would be sent (method, url, headers, JSON body) and exit.
    #[arg(long)]
    pub print_request: bool,
}

/// What every request of a run is made of.
struct Target {
    url: http::Uri,
    single: bool,
    batch: u64,
    event_type: String,
    pad: String,
    authorization: Option<String>,
}

impl Target {
    fn new(args: &IngestArgs) -> anyhow::Result<Self> {
        args.load.validate()?;
        anyhow::ensure!(args.load.rate > 0.0, "--rate must be more than 0 events per second");
        let route = if args.single { "/v1/events" } else { "/v1/events/batch" };
        let url = format!("{}{route}", args.api.trim_end_matches('/'));
        Ok(Self {
            url: url.parse().map_err(|e| anyhow::anyhow!("--api {}: {e}", args.api))?,
            single: args.single,
            batch: if args.single { 1 } else { args.batch },
            event_type: args.load.event_type.clone(),
            pad: event::padding(args.load.payload_bytes),
            authorization: (!args.token.is_empty()).then(|| format!("Bearer {}", args.token)),
        })
    }

    /// Headers and body of one request made at `now_ms`.
    fn request(&self, now_ms: i64, traceparent: Option<String>) -> (Vec<(&'static str, String)>, Bytes) {
        let event = |seq| {
            serde_json::json!({"type": self.event_type, "occurred_at": now_ms, "data": event::data(now_ms, seq, &self.pad)})
        };
        let body = if self.single {
            event(0)
        } else {
            serde_json::json!({"events": (0..self.batch).map(event).collect::<Vec<_>>()})
        };
        let mut headers = vec![("content-type", "application/json".to_owned())];
        headers.extend(self.authorization.clone().map(|a| ("authorization", a)));
        headers.extend(traceparent.map(|t| ("traceparent", t)));
        (headers, Bytes::from(body.to_string()))
    }

    fn http_request(&self, traced: bool) -> http::Request<http_body_util::Full<Bytes>> {
        let (headers, body) = self.request(now_ms(), traced.then(event::sampled_traceparent));
        let mut request = http::Request::post(self.url.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(http_body_util::Full::new(body)).expect("valid request")
    }
}

/// What the answered requests did.
struct Tally {
    latency: Histogram,
    accepted_requests: u64,
    failed_by: BTreeMap<String, u64>,
}

impl Tally {
    fn fail(&mut self, cause: String) {
        *self.failed_by.entry(cause).or_insert(0) += 1;
    }
}

pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let target = Arc::new(Target::new(&args)?);
    if args.print_request {
        let (headers, body) = target.request(now_ms(), args.load.traced.then(event::sampled_traceparent));
        let headers: serde_json::Map<String, serde_json::Value> = headers.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        println!("{}", serde_json::json!({"method": "POST", "url": target.url.to_string(), "headers": headers, "body": body}));
        return Ok(());
    }
    // Any address: this is pointed at the user's own deployment, not at a webhook endpoint.
    let anywhere = vec!["0.0.0.0/0".parse()?, "::/0".parse()?];
    let client = super::client(AddressPolicy::new(anywhere, true), args.max_in_flight as usize)?;
    let schedule = args.load.schedule(args.load.rate / target.batch as f64);
    let slots = Arc::new(Semaphore::new(args.max_in_flight as usize));
    let tally = Arc::new(Mutex::new(Tally { latency: summary::micros(), accepted_requests: 0, failed_by: BTreeMap::new() }));
    let (mut sent, mut dropped, mut max_lag) = (0u64, 0u64, Duration::ZERO);
    let cpu_before = summary::cpu_seconds();
    let started = Instant::now();
    for due in schedule.arrivals() {
        let at = started + due;
        if Instant::now() < at {
            tokio::time::sleep_until(at.into()).await;
        }
        max_lag = max_lag.max(Instant::now().saturating_duration_since(at));
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        sent += 1;
        let request = target.http_request(args.load.traced);
        let (client, tally, timeout) = (client.clone(), Arc::clone(&tally), args.timeout);
        tokio::spawn(async move {
            let t0 = Instant::now();
            let answer = tokio::time::timeout(timeout, async {
                let response = client.request(request).await.map_err(|e| if e.is_connect() { "connect" } else { "request" })?;
                let status = response.status();
                http_body_util::BodyExt::collect(response.into_body()).await.map_err(|_| "body")?;
                Ok::<_, &'static str>(status)
            })
            .await;
            let elapsed = t0.elapsed();
            let mut tally = tally.lock().expect("tally lock");
            match answer {
                Ok(Ok(status)) => {
                    summary::record(&mut tally.latency, elapsed);
                    if status == http::StatusCode::ACCEPTED {
                        tally.accepted_requests += 1;
                    } else {
                        tally.fail(format!("status {}", status.as_u16()));
                    }
                }
                Ok(Err(cause)) => tally.fail(cause.into()),
                Err(_) => tally.fail("timeout".into()),
            }
            drop(slot);
        });
    }
    let sending = started.elapsed();
    // Every slot back: every request answered or timed out.
    let _all = slots.acquire_many(args.max_in_flight).await?;
    let wall = started.elapsed();
    let tally = tally.lock().expect("tally lock");
    let accepted_events = tally.accepted_requests * target.batch;
    let failed: u64 = tally.failed_by.values().sum();
    // Over the schedule's length (the last arrival is due before its end), or longer if the
    // generator fell behind.
    let per_second = |n: u64| n as f64 / sending.max(schedule.length()).as_secs_f64().max(1e-9);
    let report = serde_json::json!({
        "generator": "hookline bench ingest",
        "url": target.url.to_string(),
        "shape": args.load.shape.name(),
        "offered_events_per_second": args.load.rate,
        "offered_requests_per_second": args.load.rate / target.batch as f64,
        "batch": target.batch,
        "payload_bytes": args.load.payload_bytes,
        "traced": args.load.traced,
        "max_in_flight": args.max_in_flight,
        "schedule_seconds": schedule.length().as_secs_f64(),
        "arrivals": schedule.count(),
        "requests_sent": sent,
        "dropped_arrivals": dropped,
        "accepted_requests": tally.accepted_requests,
        "accepted_events": accepted_events,
        "failed": failed,
        "failed_by": tally.failed_by,
        "request_latency_ms": summary::percentiles_ms(&tally.latency),
        "achieved_requests_per_second": per_second(sent),
        "achieved_events_per_second": per_second(accepted_events),
        "max_schedule_lag_ms": max_lag.as_secs_f64() * 1000.0,
        "wall_seconds": wall.as_secs_f64(),
        "cpu_seconds": cpu_before.zip(summary::cpu_seconds()).map(|(a, b)| b - a),
    });
    summary::emit(&report, args.load.summary.as_deref())?;
    // k6's thresholds, kept: no dropped arrival, no failed request.
    anyhow::ensure!(dropped == 0 && failed == 0, "bench ingest: {dropped} dropped arrivals, {failed} failed requests");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: IngestArgs,
    }

    fn target(argv: &[&str]) -> Target {
        let cli = Cli::try_parse_from(std::iter::once("ingest").chain(argv.iter().copied())).expect("arguments");
        Target::new(&cli.args).expect("target")
    }

    fn body(t: &Target) -> serde_json::Value {
        serde_json::from_slice(&t.request(1_000, None).1).expect("JSON body")
    }

    #[test]
    fn a_batch_request_carries_batch_events_each_with_its_creation_time() {
        let t = target(&["--api", "http://api:8080/", "--batch", "3", "--token", "s3cret"]);
        assert_eq!(t.url.to_string(), "http://api:8080/v1/events/batch");
        let (headers, _) = t.request(1_000, Some("00-ab-cd-01".into()));
        assert_eq!(
            headers,
            vec![
                ("content-type", "application/json".to_owned()),
                ("authorization", "Bearer s3cret".to_owned()),
                ("traceparent", "00-ab-cd-01".to_owned()),
            ]
        );
        let events = body(&t)["events"].as_array().expect("events").clone();
        assert_eq!(events.len(), 3);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["type"], "load.created");
            assert_eq!(e["occurred_at"], 1_000);
            assert_eq!(e["data"]["occurred_at"], 1_000);
            assert_eq!(e["data"]["seq"], i);
        }
    }

    #[test]
    fn single_posts_one_event_to_the_single_route_without_a_token_header() {
        let t = target(&["--single", "--type", "order.created"]);
        assert_eq!(t.url.path(), "/v1/events");
        assert_eq!(t.batch, 1);
        let b = body(&t);
        assert_eq!((b["type"].as_str(), b["data"]["occurred_at"].as_i64()), (Some("order.created"), Some(1_000)));
        assert!(t.request(1, None).0.iter().all(|(name, _)| *name != "authorization"));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Cli::try_parse_from(["ingest", "--single", "--batch", "5"]).is_err());
        assert!(Cli::try_parse_from(["ingest", "--batch", "1001"]).is_err());
        assert!(Cli::try_parse_from(["ingest", "--duration", "soon"]).is_err());
        let cli = Cli::try_parse_from(["ingest", "--type", "not a type"]).expect("parses");
        assert!(Target::new(&cli.args).is_err());
    }
}

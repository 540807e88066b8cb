//! The replay worker: runs one job at a time, oldest first. It plans the job's offset range
//! once (`offsets_for_times`), reads it at the job's rate, produces deliveries, and writes
//! its position only after every delivery before it is acknowledged, so a killed worker
//! resumes where its last status says: duplicates are possible, loss is not.

use crate::jobs::{self, Job, JobStore};
use crate::plan::{self, Decision, Selector};
use hookline_core::config::{Config, Topics};
use hookline_core::ratelimit::TokenBucket;
use hookline_proto::v1::{self, ReplaySource, ReplayState};
use hookline_proto::Message as _;
use hookline_runtime::health::Health;
use hookline_runtime::kafka;
use hookline_runtime::metric_catalog;
use hookline_runtime::registry::EndpointRegistry;
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::time::now_ms;
use hookline_runtime::kafka::Reader;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use hookline_runtime::kafka::FutureProducer;
use rdkafka::producer::DeliveryFuture;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job that fails this many times in a row (Kafka unreachable, topic missing) is marked
/// failed; before that it is resumed from its last status after a pause.
const ATTEMPTS_PER_JOB: u32 = 5;
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries produced but not yet confirmed, at most.
const MAX_UNCONFIRMED: usize = 1_000;

struct Ctx {
    config: Config,
    topics: Topics,
    registry: Arc<EndpointRegistry>,
    jobs: Arc<JobStore>,
    producer: FutureProducer,
    health: Arc<Health>,
    shutdown: Shutdown,
}

/// How one run of a job ended.
enum Ended {
    /// Completed, cancelled or failed: its final status is written.
    Done,
    /// Shutdown: its position is written; the next worker resumes it.
    Interrupted,
}

/// Runs replay jobs until `shutdown`.
pub async fn run(config: Config, registry: Arc<EndpointRegistry>, health: Arc<Health>, shutdown: Shutdown) -> anyhow::Result<()> {
    let topics = config.topics();
    // The worker reads its own last status back while it stops, so the store's follower
    // outlives the shutdown signal and stops when this function returns.
    let store_stop = Shutdown::new();
    let _stop_store_on_return = store_stop.clone().drop_guard();
    let jobs = jobs::start_store(&config.kafka, &topics.replays, "hookline-replay-jobs", &store_stop);
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async { registry.wait_ready().await; jobs.position.wait_ready().await } => {}
    }
    let producer = kafka::producer(&config.kafka, "hookline-replay")?;
    let ctx = Ctx { config, topics, registry, jobs, producer, health, shutdown };
    let mut changes = ctx.jobs.position.subscribe();
    let mut failures = 0;
    let mut last_purge: Option<Instant> = None;
    tracing::info!("replay worker ready");
    loop {
        ctx.health.tick("replay", true);
        let keep_ms = ctx.config.replay.keep_finished_ms;
        let purge_every = Duration::from_millis(u64::try_from(keep_ms).unwrap_or(0)).min(Duration::from_secs(60));
        if last_purge.is_none_or(|at| at.elapsed() >= purge_every) {
            last_purge = Some(Instant::now());
            for id in ctx.jobs.expired(now_ms(), keep_ms) {
                match jobs::delete(&ctx.producer, &ctx.topics.replays, &id).await {
                    Ok(()) => tracing::info!(replay_id = %id, "finished replay job deleted after replay.keep_finished_ms"),
                    Err(error) => tracing::warn!(replay_id = %id, error = format!("{error:#}"), "finished replay job not deleted"),
                }
            }
        }
        let Some(job) = ctx.jobs.next_unfinished() else {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let id = job.request.id.clone();
        metric_catalog::REPLAY_JOBS_RUNNING.get().set(1.0);
        let ended = execute(&ctx, job).await;
        metric_catalog::REPLAY_JOBS_RUNNING.get().set(0.0);
        match ended {
            Ok(Ended::Done) => failures = 0,
            Ok(Ended::Interrupted) => return Ok(()),
            Err(error) => {
                failures += 1;
                tracing::warn!(replay_id = %id, error = format!("{error:#}"), failures, "replay job interrupted by an error");
                if failures >= ATTEMPTS_PER_JOB {
                    failures = 0;
                    let mut status = ctx.jobs.get(&id).and_then(|j| j.status).unwrap_or_else(|| fresh_status(&id));
                    let detail = format!("gave up after {ATTEMPTS_PER_JOB} tries; last error: {error:#}");
                    if let Err(error) = finish(&ctx, &mut status, ReplayState::Failed, detail).await {
                        tracing::error!(replay_id = %id, error = format!("{error:#}"), "replay job failure not recorded");
                    }
                }
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

fn fresh_status(id: &str) -> v1::ReplayStatus {
    let now = now_ms();
    v1::ReplayStatus { id: id.to_owned(), state: ReplayState::Running as i32, started_at_ms: now, updated_at_ms: now, ..Default::default() }
}

/// Writes `status` and waits until the job store shows it, so the worker never picks up
/// a job again from an older status.
async fn write(ctx: &Ctx, status: &mut v1::ReplayStatus) -> anyhow::Result<()> {
    status.updated_at_ms = now_ms();
    let offset = jobs::put_status(&ctx.producer, &ctx.topics.replays, status).await?;
    tokio::time::timeout(Duration::from_secs(30), ctx.jobs.position.wait_applied(offset))
        .await
        .map_err(|_| anyhow::anyhow!("replay status written but not read back within 30 s"))
}

async fn finish(ctx: &Ctx, status: &mut v1::ReplayStatus, state: ReplayState, detail: String) -> anyhow::Result<Ended> {
    status.state = state as i32;
    status.detail = detail;
    status.finished_at_ms = now_ms();
    write(ctx, status).await?;
    let (done, total) = plan::progress(status);
    tracing::info!(
        replay_id = %status.id, state = plan::state_name(state), detail = %status.detail,
        records_read = done, records_in_range = total, replayed = status.replayed,
        filtered = status.filtered, unreplayable = status.unreplayable, "replay job ended"
    );
    Ok(Ended::Done)
}

/// Waits until every produced delivery is acknowledged.
async fn confirm(unconfirmed: &mut Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for ack in unconfirmed.drain(..) {
        kafka::acked(ack).await?;
    }
    Ok(())
}

/// Each partition's offsets for the records written in `[from_ms, to_ms)`: the first at or
/// after `from_ms`, and the first at or after `to_ms` (the end, exclusive).
fn plan_range(consumer: &Reader, topic: &str, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<v1::ReplayPartition>> {
    let metadata = consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions (does it exist? hookline topics create)");
    let lookup = |at_ms: i64| -> anyhow::Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Offset(at_ms))?;
        }
        Ok(consumer.offsets_for_times(tpl, KAFKA_TIMEOUT)?)
    };
    let (starts, ends) = (lookup(from_ms)?, lookup(to_ms)?);
    let mut planned = Vec::with_capacity(partitions.len());
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, KAFKA_TIMEOUT)?;
        // No record at or after the time: the range reaches the partition's end.
        let at = |tpl: &TopicPartitionList| match tpl.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= 0 => o.min(high),
            _ => high,
        };
        let (start, end) = (at(&starts), at(&ends));
        planned.push(v1::ReplayPartition { partition: p, start_offset: start, end_offset: end.max(start), next_offset: start });
    }
    Ok(planned)
}

/// Moves each unfinished partition past records retention has deleted (its log now starts
/// after `next_offset`); says whether any moved.
fn skip_deleted(consumer: &Reader, topic: &str, status: &mut v1::ReplayStatus) -> anyhow::Result<bool> {
    let mut moved = false;
    for p in status.partitions.iter_mut().filter(|p| p.next_offset < p.end_offset) {
        let (low, _) = consumer.fetch_watermarks(topic, p.partition, KAFKA_TIMEOUT)?;
        if low > p.next_offset {
            tracing::warn!(topic, partition = p.partition, from = p.next_offset, to = low.min(p.end_offset), "replay range partly deleted by retention; skipping it");
            p.next_offset = low.min(p.end_offset);
            moved = true;
        }
    }
    Ok(moved)
}

/// Points the consumer at the unfinished partitions, from their next offsets.
fn assign_unfinished(consumer: &Reader, topic: &str, status: &v1::ReplayStatus) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in status.partitions.iter().filter(|p| p.next_offset < p.end_offset) {
        tpl.add_partition_offset(topic, p.partition, Offset::Offset(p.next_offset))?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

async fn execute(ctx: &Ctx, job: Job) -> anyhow::Result<Ended> {
    let Job { request, status } = job;
    let mut status = status.unwrap_or_else(|| fresh_status(&request.id));
    status.state = ReplayState::Running as i32;
    if request.cancel_requested {
        let detail = if status.partitions.is_empty() { "cancelled before it started" } else { "cancelled" };
        return finish(ctx, &mut status, ReplayState::Cancelled, detail.into()).await;
    }
    let selector = Selector::new(&request);
    let topic = match selector.source() {
        ReplaySource::Dlq => ctx.topics.dlq.as_str(),
        ReplaySource::Events => ctx.topics.events.as_str(),
        ReplaySource::Unspecified => return finish(ctx, &mut status, ReplayState::Failed, "the request names no source".into()).await,
    };
    let consumer = kafka::reader(&ctx.config.kafka, &format!("hookline-replay-{}", request.id))?;
    if status.partitions.is_empty() {
        status.partitions = tokio::task::block_in_place(|| plan_range(&consumer, topic, request.from_ms, request.to_ms))?;
        let (_, total) = plan::progress(&status);
        tracing::info!(replay_id = %request.id, topic, records_in_range = total, "replay job planned");
        write(ctx, &mut status).await?;
    } else {
        tracing::info!(replay_id = %request.id, topic, "replay job resumed from its last status");
    }
    assign_unfinished(&consumer, topic, &status)?;

    let rate = f64::from(request.rate_per_second.max(1));
    let mut bucket = TokenBucket::new(rate, (rate / 10.0).max(1.0), Instant::now());
    let progress_every = Duration::from_millis(ctx.config.replay.progress_interval_ms);
    let mut last_progress = Instant::now();
    let mut unconfirmed = Vec::new();
    while !plan::finished(&status) {
        if ctx.shutdown.is_cancelled() {
            confirm(&mut unconfirmed).await?;
            write(ctx, &mut status).await?;
            tracing::info!(replay_id = %request.id, "replay job paused by shutdown; it resumes on the next start");
            return Ok(Ended::Interrupted);
        }
        if last_progress.elapsed() >= progress_every {
            ctx.health.tick("replay", true);
            confirm(&mut unconfirmed).await?;
            if ctx.jobs.get(&request.id).is_none_or(|j| j.request.cancel_requested) {
                return finish(ctx, &mut status, ReplayState::Cancelled, "cancelled".into()).await;
            }
            write(ctx, &mut status).await?;
            last_progress = Instant::now();
        }
        let message = tokio::select! {
            _ = ctx.shutdown.cancelled() => continue,
            m = tokio::time::timeout(Duration::from_millis(500), consumer.recv()) => m,
        };
        let message = match message {
            Err(_idle) => {
                // Nothing to read although the range is not done: its records may have been
                // deleted by retention since the job was planned.
                if tokio::task::block_in_place(|| skip_deleted(&consumer, topic, &mut status))? {
                    assign_unfinished(&consumer, topic, &status)?;
                }
                continue;
            }
            Ok(m) => m?,
        };
        let (partition, offset) = (message.partition(), message.offset());
        let Some(p) = status.partitions.iter_mut().find(|p| p.partition == partition) else { continue };
        if offset < p.next_offset {
            continue;
        }
        if offset >= p.end_offset {
            // Past the range: this partition is done; stop reading it.
            p.next_offset = p.end_offset;
            drop(message);
            assign_unfinished(&consumer, topic, &status)?;
            continue;
        }
        let timestamp_ms = message.timestamp().to_millis().unwrap_or(0);
        let value = message.payload().unwrap_or_default();
        let decision = match selector.source() {
            ReplaySource::Dlq => selector.dead_letter(value, timestamp_ms, &ctx.registry, now_ms()),
            _ => selector.event(value, timestamp_ms, &ctx.registry, now_ms()),
        };
        drop(message);
        status.scanned += 1;
        let outcome = match decision {
            Decision::Replay(delivery) => {
                while let Err(wait) = bucket.try_take(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let ack = kafka::enqueue(&ctx.producer, &ctx.topics.deliveries, &delivery.endpoint_id, &delivery.encode_to_vec(), None).await?;
                unconfirmed.push(ack);
                status.replayed += 1;
                "replayed"
            }
            Decision::Filtered => {
                status.filtered += 1;
                "filtered"
            }
            Decision::Unreplayable(why) => {
                tracing::debug!(replay_id = %request.id, partition, offset, why, "record not replayable");
                status.unreplayable += 1;
                "unreplayable"
            }
        };
        metric_catalog::REPLAY_RECORDS.with([outcome]).increment(1);
        if let Some(p) = status.partitions.iter_mut().find(|p| p.partition == partition) {
            p.next_offset = offset + 1;
        }
        if unconfirmed.len() >= MAX_UNCONFIRMED {
            confirm(&mut unconfirmed).await?;
        }
    }
    confirm(&mut unconfirmed).await?;
    finish(ctx, &mut status, ReplayState::Completed, String::new()).await
}

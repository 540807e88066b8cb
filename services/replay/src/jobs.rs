//! Replay jobs as every process sees them: the compacted replays topic, read into memory.
//! A job is two records with one writer each: `<id>` the request (the API), `<id>/status`
//! the progress (the replay worker), so neither can undo what the other wrote.

use crate::plan;
use hookline_core::config::KafkaConfig;
use hookline_proto::v1::{self, ReplayState};
use hookline_proto::Message as _;
use hookline_runtime::compacted::{self, Position};
use hookline_runtime::shutdown::Shutdown;
use parking_lot::RwLock;
use hookline_runtime::kafka::FutureProducer;
use std::collections::BTreeMap;
use std::sync::Arc;

const STATUS_SUFFIX: &str = "/status";

/// One job: what was asked, and how far it has got (no status: not picked up yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Job {
    pub request: v1::ReplayRequest,
    pub status: Option<v1::ReplayStatus>,
}

impl Job {
    pub fn state(&self) -> ReplayState {
        self.status.as_ref().map_or(ReplayState::Pending, v1::ReplayStatus::state)
    }
}

#[derive(Default)]
pub struct JobStore {
    /// By id; ids are time-ordered (UUIDv7), so this is also the order they were asked for.
    jobs: RwLock<BTreeMap<String, Job>>,
    /// A status whose request has not been read yet (or was deleted): kept aside.
    orphans: RwLock<BTreeMap<String, v1::ReplayStatus>>,
    pub position: Position,
}

impl JobStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        self.jobs.read().get(id).cloned()
    }

    /// Newest first.
    pub fn all(&self) -> Vec<Job> {
        self.jobs.read().values().rev().cloned().collect()
    }

    /// The oldest job that still has work (or a cancellation to record).
    pub fn next_unfinished(&self) -> Option<Job> {
        self.jobs.read().values().find(|j| !plan::is_terminal(j.state())).cloned()
    }

    /// Finished jobs that ended more than `keep_ms` before `now_ms`.
    pub fn expired(&self, now_ms: i64, keep_ms: i64) -> Vec<String> {
        let jobs = self.jobs.read();
        let old = |j: &&Job| {
            let finished = j.status.as_ref().map_or(0, |s| s.finished_at_ms);
            plan::is_terminal(j.state()) && finished > 0 && finished.saturating_add(keep_ms) < now_ms
        };
        jobs.values().filter(old).map(|j| j.request.id.clone()).collect()
    }

    /// Applies one record of the replays topic; a record that does not decode is skipped.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key = String::from_utf8_lossy(key);
        if let Some(id) = key.strip_suffix(STATUS_SUFFIX) {
            let status = match value {
                None => None,
                Some(v) => Some(v1::ReplayStatus::decode(v).map_err(|e| format!("status {id}: {e}"))?),
            };
            let mut jobs = self.jobs.write();
            match (jobs.get_mut(id), status) {
                (Some(job), Some(status)) => job.status = Some(status),
                (None, Some(status)) => {
                    self.orphans.write().insert(id.to_owned(), status);
                }
                // A deleted status deletes the job: it must never look pending again.
                (_, None) => {
                    jobs.remove(id);
                    self.orphans.write().remove(id);
                }
            }
            return Ok(());
        }
        let Some(value) = value else {
            self.jobs.write().remove(key.as_ref());
            return Ok(());
        };
        let request = v1::ReplayRequest::decode(value).map_err(|e| format!("request {key}: {e}"))?;
        if request.id != key {
            return Err(format!("record key {key:?} differs from the request id {:?}", request.id));
        }
        let mut jobs = self.jobs.write();
        let status = jobs.get(&request.id).and_then(|j| j.status.clone()).or_else(|| self.orphans.write().remove(&request.id));
        jobs.insert(request.id.clone(), Job { request, status });
        Ok(())
    }
}

/// Reads the replays topic into `store` until `shutdown`.
pub async fn follow(cfg: &KafkaConfig, topic: &str, client_id: &str, store: Arc<JobStore>, shutdown: Shutdown) -> anyhow::Result<()> {
    let loaded = Arc::clone(&store);
    let apply = |key: &[u8], value: Option<&[u8]>, offset: i64| {
        if let Err(error) = store.apply(key, value) {
            tracing::warn!(%error, offset, "replay record skipped");
        }
        store.position.mark_applied(offset + 1);
    };
    let caught_up = move || {
        tracing::info!(jobs = loaded.jobs.read().len(), "replay jobs loaded");
        loaded.position.mark_ready();
    };
    compacted::follow(cfg, topic, client_id, shutdown, apply, caught_up).await
}

/// Starts a follower of the replays topic; a failed follower stops the process.
pub fn start_store(cfg: &KafkaConfig, topic: &str, client_id: &str, shutdown: &Shutdown) -> Arc<JobStore> {
    let store = JobStore::new();
    let (kafka, topic, client_id, s, stop) = (cfg.clone(), topic.to_owned(), client_id.to_owned(), Arc::clone(&store), shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = follow(&kafka, &topic, &client_id, s, stop.clone()).await {
            tracing::error!(%error, "replay job follower stopped; shutting down");
            stop.cancel();
        }
    });
    store
}

/// Deletes a job: tombstones for its request, then its status (the API writes nothing to a
/// finished job, so the worker may delete both).
pub async fn delete(producer: &FutureProducer, topic: &str, id: &str) -> anyhow::Result<()> {
    compacted::put(producer, topic, id, None).await?;
    compacted::put(producer, topic, &format!("{id}{STATUS_SUFFIX}"), None).await?;
    Ok(())
}

/// Writes a job's request; returns its offset once Kafka has it.
pub async fn put_request(producer: &FutureProducer, topic: &str, request: &v1::ReplayRequest) -> anyhow::Result<i64> {
    compacted::put(producer, topic, &request.id, Some(&request.encode_to_vec())).await
}

/// Writes a job's status; returns its offset once Kafka has it.
pub async fn put_status(producer: &FutureProducer, topic: &str, status: &v1::ReplayStatus) -> anyhow::Result<i64> {
    compacted::put(producer, topic, &format!("{}{STATUS_SUFFIX}", status.id), Some(&status.encode_to_vec())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> Vec<u8> {
        v1::ReplayRequest { id: id.into(), ..Default::default() }.encode_to_vec()
    }

    fn status(id: &str, state: ReplayState) -> Vec<u8> {
        v1::ReplayStatus { id: id.into(), state: state as i32, ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn request_and_status_meet_in_either_order() {
        let store = JobStore::default();
        store.apply(b"rp_1", Some(&request("rp_1"))).expect("request");
        store.apply(b"rp_1/status", Some(&status("rp_1", ReplayState::Running))).expect("status");
        // After compaction the status may come first.
        store.apply(b"rp_2/status", Some(&status("rp_2", ReplayState::Completed))).expect("status");
        assert!(store.get("rp_2").is_none(), "a status alone is not a job");
        store.apply(b"rp_2", Some(&request("rp_2"))).expect("request");
        store.apply(b"rp_3", Some(&request("rp_3"))).expect("request");
        assert_eq!(store.get("rp_1").map(|j| j.state()), Some(ReplayState::Running));
        assert_eq!(store.get("rp_2").map(|j| j.state()), Some(ReplayState::Completed));
        assert_eq!(store.get("rp_3").map(|j| j.state()), Some(ReplayState::Pending));
        // A request rewritten (cancel_requested) keeps its status.
        store.apply(b"rp_1", Some(&request("rp_1"))).expect("request");
        assert_eq!(store.get("rp_1").map(|j| j.state()), Some(ReplayState::Running));
        assert_eq!(store.next_unfinished().map(|j| j.request.id), Some("rp_1".into()));
        let ids: Vec<String> = store.all().into_iter().map(|j| j.request.id).collect();
        assert_eq!(ids, ["rp_3", "rp_2", "rp_1"], "newest first");

        let finished = |at: i64| v1::ReplayStatus { id: "rp_2".into(), state: ReplayState::Completed as i32, finished_at_ms: at, ..Default::default() };
        store.apply(b"rp_2/status", Some(&finished(1_000).encode_to_vec())).expect("status");
        assert_eq!(store.expired(5_000, 3_000), ["rp_2"], "finished 4 s ago, kept 3 s");
        assert!(store.expired(3_500, 3_000).is_empty());
        assert!(store.expired(i64::MAX, 0).iter().all(|id| id == "rp_2"), "running and pending jobs never expire");
        assert!(store.apply(b"rp_9", Some(b"\xff\xff")).is_err());
        assert!(store.apply(b"rp_x", Some(&request("rp_y"))).is_err(), "key and id must agree");
        store.apply(b"rp_1", None).expect("tombstone");
        assert!(store.get("rp_1").is_none());
        store.apply(b"rp_3/status", None).expect("status tombstone");
        assert!(store.get("rp_3").is_none(), "a deleted status never leaves a pending job behind");
    }
}

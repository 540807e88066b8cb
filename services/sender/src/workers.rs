//! Long-lived per-endpoint workers. The intake loop hands each record to the worker of its
//! endpoint (the record key: deliveries and retry-tier records are keyed by endpoint id),
//! which runs that endpoint's deliveries as futures of its own task: one task per busy
//! endpoint instead of one spawned task per record, and one place where an endpoint's
//! deliveries meet (the place ordered lanes and per-endpoint batching build on).
//!
//! Within a worker, the records of one ordered lane ([`LaneOf`]) run one at a time, in
//! offset order: the next starts when the one before it has ended. Records of no lane run
//! concurrently.
//!
//! A worker that has had nothing to do for [`IDLE_EXIT`] ends; the next record of its
//! endpoint starts a new one. The window permit travels with the record and is released when
//! its delivery has ended, so the window still bounds the work held in memory.

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hookline_runtime::kafka::OwnedRecord;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

/// A worker with no record queued or running for this long ends by default (bounded memory with many
/// endpoints; a busy endpoint keeps its worker).
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

type Job = (OwnedRecord, OwnedSemaphorePermit);

/// What a worker does with one record (the sender: [`crate::deliver::deliver`]): `true` when
/// the record ended here, `false` when it was abandoned (shutdown, or its partition went to
/// another member), in which case its lane's waiting records are abandoned too, so that the
/// lane resumes in order at its new owner.
/// It gets the record's lane as [`LaneOf`] found it, so the lane is worked out once.
pub type Handler = Arc<dyn Fn(OwnedRecord, Option<String>) -> BoxFuture<'static, bool> + Send + Sync>;

/// The ordered lane of a record, if it has one (the sender: its endpoint's ordering).
pub type LaneOf = Arc<dyn Fn(&OwnedRecord) -> Option<String> + Send + Sync>;

/// The workers, owned by the intake loop.
pub struct Workers {
    handler: Handler,
    lane_of: LaneOf,
    idle_exit: Duration,
    by_endpoint: HashMap<Vec<u8>, Worker>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

impl Workers {
    pub fn new(handler: Handler, lane_of: LaneOf, idle_exit: Duration) -> Self {
        Self { handler, lane_of, idle_exit, by_endpoint: HashMap::new() }
    }

    /// Hands `record` to its endpoint's worker, starting one if there is none (or it ended).
    pub fn dispatch(&mut self, record: OwnedRecord, permit: OwnedSemaphorePermit) {
        let mut job = (record, permit);
        loop {
            let key = &job.0.key;
            if let Some(worker) = self.by_endpoint.get(key) {
                match worker.jobs.send(job) {
                    Ok(()) => return,
                    // It ended while idle: drop it and start another.
                    Err(mpsc::error::SendError(back)) => {
                        job = back;
                        self.by_endpoint.remove(&job.0.key);
                    }
                }
            }
            let (jobs, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run(Arc::clone(&self.handler), Arc::clone(&self.lane_of), self.idle_exit, rx));
            self.by_endpoint.insert(job.0.key.clone(), Worker { jobs, task });
        }
    }

    /// Workers alive (for the gauge), forgetting those that ended.
    pub fn alive(&mut self) -> usize {
        self.by_endpoint.retain(|_, w| !w.task.is_finished());
        self.by_endpoint.len()
    }

}

/// One endpoint's worker: takes its records in offset order and runs their deliveries
/// concurrently (the endpoint's own limits, breaker and rate apply inside each delivery),
/// except that a lane's records wait for the one before them.
async fn run(handler: Handler, lane_of: LaneOf, idle_exit: Duration, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut running = FuturesUnordered::new();
    let mut lanes = Lanes::default();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => {
                    let lane = lane_of(&job.0);
                    if let Some(job) = lanes.admit(lane.as_deref(), job) {
                        running.push(delivery(&handler, job, lane));
                    }
                }
                None => break,
            },
            Some((lane, ended)) = running.next(), if !running.is_empty() => {
                if let Some((lane, job)) = lane.and_then(|lane| lanes.next(lane, ended)) {
                    running.push(delivery(&handler, job, Some(lane)));
                }
            }
            () = tokio::time::sleep(idle_exit), if running.is_empty() => {
                // Refuse new records first (the intake then starts another worker), then
                // take any that came meanwhile. Nothing is running, so no lane is busy.
                jobs.close();
                while let Ok(job) = jobs.try_recv() {
                    let lane = lane_of(&job.0);
                    if let Some(job) = lanes.admit(lane.as_deref(), job) {
                        running.push(delivery(&handler, job, lane));
                    }
                }
                break;
            }
        }
    }
    while let Some((lane, ended)) = running.next().await {
        if let Some((lane, job)) = lane.and_then(|lane| lanes.next(lane, ended)) {
            running.push(delivery(&handler, job, Some(lane)));
        }
    }
}

/// The busy lanes of a worker and the records waiting in each.
#[derive(Default)]
struct Lanes {
    waiting: HashMap<String, VecDeque<Job>>,
}

impl Lanes {
    /// The job to start now, or `None` when its lane is busy (it then waits its turn).
    fn admit(&mut self, lane: Option<&str>, job: Job) -> Option<Job> {
        let Some(lane) = lane else { return Some(job) };
        match self.waiting.get_mut(lane) {
            Some(queue) => {
                queue.push_back(job);
                None
            }
            None => {
                self.waiting.insert(lane.to_owned(), VecDeque::new());
                Some(job)
            }
        }
    }

    /// The lane's next job once its running one is over; the lane is free when none waits.
    /// When it was abandoned (`ended` false), so are the jobs waiting behind it: their
    /// slots are freed, their offsets stay, and the next owner delivers them in order.
    fn next(&mut self, lane: String, ended: bool) -> Option<(String, Job)> {
        if !ended {
            self.waiting.remove(&lane);
            return None;
        }
        match self.waiting.get_mut(&lane).and_then(VecDeque::pop_front) {
            Some(job) => Some((lane, job)),
            None => {
                self.waiting.remove(&lane);
                None
            }
        }
    }
}

/// One record's delivery, releasing its window slot at the end; yields its lane and
/// whether it ended (not abandoned).
fn delivery(handler: &Handler, (record, permit): Job, lane: Option<String>) -> impl std::future::Future<Output = (Option<String>, bool)> {
    let work = handler(record, lane.clone());
    async move {
        let ended = work.await;
        drop(permit);
        (lane, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use tokio::sync::Semaphore;

    fn record(endpoint: &str, offset: i64) -> OwnedRecord {
        OwnedRecord {
            topic: "deliveries".into(),
            partition: 0,
            offset,
            key: endpoint.as_bytes().to_vec(),
            value: None,
            headers: Vec::new(),
            timestamp_ms: 0,
        }
    }

    fn no_lanes() -> LaneOf {
        Arc::new(|_| None)
    }

    /// A handler that records (endpoint, offset, worker task id) and waits `hold`.
    fn recording(seen: Arc<Mutex<Vec<(String, i64, tokio::task::Id)>>>, hold: Duration) -> Handler {
        Arc::new(move |r: OwnedRecord, _lane| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                let task = tokio::task::id();
                seen.lock().push((String::from_utf8(r.key).expect("utf-8"), r.offset, task));
                tokio::time::sleep(hold).await;
                true
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn one_worker_per_endpoint_runs_its_records_concurrently_and_frees_their_slots() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(6));
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::from_secs(1)), no_lanes(), IDLE_EXIT);
        for (endpoint, offset) in [("a", 0), ("b", 1), ("a", 2), ("a", 3), ("b", 4), ("c", 5)] {
            let permit = Arc::clone(&window).acquire_owned().await.expect("slot");
            workers.dispatch(record(endpoint, offset), permit);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(workers.alive(), 3, "one worker per endpoint");
        let seen_now = seen.lock().clone();
        assert_eq!(seen_now.len(), 6, "every record started at once: concurrently, not one after another");
        for endpoint in ["a", "b", "c"] {
            let tasks: std::collections::HashSet<_> = seen_now.iter().filter(|s| s.0 == endpoint).map(|s| s.2).collect();
            assert_eq!(tasks.len(), 1, "all of {endpoint}'s records ran in its one worker task");
        }
        let a: Vec<i64> = seen_now.iter().filter(|s| s.0 == "a").map(|s| s.1).collect();
        assert_eq!(a, [0, 2, 3], "a worker takes its records in offset order");
        assert_eq!(window.available_permits(), 0, "slots are held while the deliveries run");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(window.available_permits(), 6, "each slot is released when its delivery ended");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_worker_ends_and_the_next_record_starts_another() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(2));
        let idle = Duration::from_secs(5);
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::ZERO), no_lanes(), idle);
        workers.dispatch(record("a", 0), Arc::clone(&window).acquire_owned().await.expect("slot"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(workers.alive(), 1, "a worker stays while it was busy recently");
        tokio::time::sleep(idle * 2).await;
        assert_eq!(workers.alive(), 0, "an idle worker ends");
        workers.dispatch(record("a", 1), Arc::clone(&window).acquire_owned().await.expect("slot"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let seen = seen.lock().clone();
        assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 1], "nothing is lost across the restart");
        assert_ne!(seen[0].2, seen[1].2, "the second record ran in a new worker");
        assert_eq!(window.available_permits(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lanes_records_run_one_at_a_time_in_order_and_lanes_run_side_by_side() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(16));
        // Lane by offset parity: even offsets in lane "even", odd in "odd"; offset 100 none.
        let lane_of: LaneOf = Arc::new(|r: &OwnedRecord| (r.offset < 100).then(|| if r.offset % 2 == 0 { "even" } else { "odd" }.to_owned()));
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::from_secs(1)), lane_of, IDLE_EXIT);
        for offset in [0, 1, 2, 3, 4, 100] {
            workers.dispatch(record("a", offset), Arc::clone(&window).acquire_owned().await.expect("slot"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = |seen: &Mutex<Vec<(String, i64, tokio::task::Id)>>| seen.lock().iter().map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(started(&seen), [0, 1, 100], "each lane's head and the record of no lane start at once");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started(&seen), [0, 1, 100, 2, 3], "a lane's next starts when the one before ended");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started(&seen), [0, 1, 100, 2, 3, 4]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(window.available_permits(), 16, "every slot released");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_record_abandons_the_rest_of_its_lane() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(8));
        // Offset 1 is abandoned; 0..4 are one lane, 10 is of no lane.
        let handler: Handler = {
            let seen = Arc::clone(&seen);
            Arc::new(move |r: OwnedRecord, _lane| {
                let seen = Arc::clone(&seen);
                Box::pin(async move {
                    seen.lock().push(r.offset);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    r.offset != 1
                })
            })
        };
        let lane_of: LaneOf = Arc::new(|r: &OwnedRecord| (r.offset < 10).then(|| "lane".to_owned()));
        let mut workers = Workers::new(handler, lane_of, IDLE_EXIT);
        for offset in [0, 1, 2, 3, 10] {
            workers.dispatch(record("a", offset), Arc::clone(&window).acquire_owned().await.expect("slot"));
        }
        // 0 runs, then 1 (abandoned after a second), with 2 and 3 waiting behind them.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut started = seen.lock().clone();
        started.sort_unstable();
        assert_eq!(started, [0, 1, 10], "2 and 3 were never started");
        assert_eq!(window.available_permits(), 8, "their slots were freed");
        workers.dispatch(record("a", 4), Arc::clone(&window).acquire_owned().await.expect("slot"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(seen.lock().last(), Some(&4), "the lane takes records again afterwards");
    }
}

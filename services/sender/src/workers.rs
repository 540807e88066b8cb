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
//! A lane that cannot move is parked ([`Spill`], the sender's [`crate::parked`]): when its
//! head ends as [`Ended::Park`], the worker parks it and then the records waiting behind it,
//! in order; every later record of a parked lane follows them, and so does any record of a
//! lane once the endpoint holds `limit` lane records. Parked records come back through the
//! same worker (read from the parked topic) and queue in their lane.
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

/// How a record's handling ended.
#[derive(Debug)]
pub enum Ended {
    /// Delivered, handed on or dead-lettered: its lane goes on.
    Done,
    /// Abandoned (shutdown, or its partition went to another member): so are the records
    /// waiting behind it in its lane, so that the lane resumes in order at its new owner.
    Abandoned,
    /// Moved to the parked topic (the spill's own end).
    Parked,
    /// A lane's head that cannot move, as it is now (with its attempts so far): the worker
    /// parks it, then the records waiting behind it.
    Park(Box<OwnedRecord>),
}

/// What a worker does with one record (the sender: [`crate::deliver::deliver`]).
/// It gets the record's lane as [`LaneOf`] found it, so the lane is worked out once.
pub type Handler = Arc<dyn Fn(OwnedRecord, Option<String>) -> BoxFuture<'static, Ended> + Send + Sync>;

/// The ordered lane of a record, if it has one (the sender: its endpoint's ordering).
pub type LaneOf = Arc<dyn Fn(&OwnedRecord) -> Option<String> + Send + Sync>;

/// Where a worker parks lanes.
pub trait Spill: Send + Sync {
    /// Whether the record was read back from the parked topic (it is never parked again).
    fn is_parked_record(&self, record: &OwnedRecord) -> bool;
    /// Whether the record's lane is parked (its records go behind the parked ones).
    fn lane_is_parked(&self, record: &OwnedRecord, lane: &str) -> bool;
    /// Parks the record: enqueues it behind its lane's parked records (records are enqueued
    /// in call order), then yields what waits for its acknowledgement and releases its own
    /// offset: [`Ended::Parked`], or [`Ended::Abandoned`] when it could not be parked.
    fn park(&self, record: OwnedRecord, lane: String) -> BoxFuture<'static, BoxFuture<'static, Ended>>;
}

/// The workers, owned by the intake loop.
pub struct Workers {
    handler: Handler,
    lane_of: LaneOf,
    idle_exit: Duration,
    spill: Option<(Arc<dyn Spill>, usize)>,
    by_endpoint: HashMap<Vec<u8>, Worker, hookline_core::keyed::FastHasher>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

impl Workers {
    pub fn new(handler: Handler, lane_of: LaneOf, idle_exit: Duration) -> Self {
        Self { handler, lane_of, idle_exit, spill: None, by_endpoint: HashMap::default() }
    }

    /// Parks lanes through `spill`; an endpoint's worker holds at most `limit` lane records
    /// (running or waiting) before the next ones are parked.
    pub fn with_spill(mut self, spill: Arc<dyn Spill>, limit: usize) -> Self {
        self.spill = Some((spill, limit.max(1)));
        self
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
            let worker = Run {
                handler: Arc::clone(&self.handler),
                lane_of: Arc::clone(&self.lane_of),
                spill: self.spill.clone(),
                lanes: Lanes::default(),
                running: FuturesUnordered::new(),
            };
            let task = tokio::spawn(worker.run(self.idle_exit, rx));
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
struct Run {
    handler: Handler,
    lane_of: LaneOf,
    spill: Option<(Arc<dyn Spill>, usize)>,
    lanes: Lanes,
    running: FuturesUnordered<BoxFuture<'static, (Option<String>, Ended)>>,
}

impl Run {
    async fn run(mut self, idle_exit: Duration, mut jobs: mpsc::UnboundedReceiver<Job>) {
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => self.accept(job).await,
                    None => break,
                },
                Some((lane, ended)) = self.running.next(), if !self.running.is_empty() => self.after(lane, ended).await,
                () = tokio::time::sleep(idle_exit), if self.running.is_empty() => {
                    // Refuse new records first (the intake then starts another worker), then
                    // take any that came meanwhile. Nothing is running, so no lane is busy.
                    jobs.close();
                    while let Ok(job) = jobs.try_recv() {
                        self.accept(job).await;
                    }
                    break;
                }
            }
        }
        while let Some((lane, ended)) = self.running.next().await {
            self.after(lane, ended).await;
        }
    }

    /// Starts a record, queues it in its busy lane, or parks it.
    async fn accept(&mut self, job: Job) {
        let lane = (self.lane_of)(&job.0);
        if let (Some(lane), Some((spill, limit))) = (&lane, &self.spill) {
            let live = !spill.is_parked_record(&job.0);
            if live && (spill.lane_is_parked(&job.0, lane) || self.lanes.held >= *limit) {
                let spill = Arc::clone(spill);
                self.park(&spill, job, lane.clone()).await;
                return;
            }
        }
        if let Some(job) = self.lanes.admit(lane.as_deref(), job) {
            self.running.push(delivery(&self.handler, job, lane));
        }
    }

    /// A record's handling ended: its lane's next starts, or they all follow it.
    async fn after(&mut self, lane: Option<String>, ended: Ended) {
        let Some(lane) = lane else { return };
        match self.lanes.next(&lane, ended) {
            Next::Start(job) => self.running.push(delivery(&self.handler, job, Some(lane))),
            Next::Park(head, waiting) => {
                let spill = Arc::clone(&self.spill.as_ref().expect("only a spill parks").0);
                // The head first (its slot was released with its delivery), then the rest.
                let acked = spill.park(*head, lane.clone()).await;
                self.running.push(Box::pin(async move { (None, acked.await) }));
                for job in waiting {
                    self.park(&spill, job, lane.clone()).await;
                }
            }
            Next::Idle => {}
        }
    }

    async fn park(&mut self, spill: &Arc<dyn Spill>, (record, permit): Job, lane: String) {
        let acked = spill.park(record, lane).await;
        self.running.push(Box::pin(async move {
            let ended = acked.await;
            drop(permit);
            (None, ended)
        }));
    }
}

/// The busy lanes of a worker and the records waiting in each.
#[derive(Default)]
struct Lanes {
    waiting: HashMap<String, VecDeque<Job>>,
    /// Lane records held: running heads and those waiting.
    held: usize,
}

enum Next {
    Start(Job),
    /// The head to park, and the jobs waiting behind it.
    Park(Box<OwnedRecord>, VecDeque<Job>),
    Idle,
}

impl Lanes {
    /// The job to start now, or `None` when its lane is busy (it then waits its turn).
    fn admit(&mut self, lane: Option<&str>, job: Job) -> Option<Job> {
        let Some(lane) = lane else { return Some(job) };
        self.held += 1;
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

    /// What follows the lane's running record once it `ended`: its next job; or, when it
    /// was abandoned, nothing (the jobs waiting behind it are abandoned too: their slots are
    /// freed, their offsets stay, and the next owner delivers them in order); or, when it was
    /// parked, every job waiting behind it, to park after it.
    fn next(&mut self, lane: &str, ended: Ended) -> Next {
        self.held -= 1;
        if !matches!(ended, Ended::Done) {
            let waiting = self.waiting.remove(lane).unwrap_or_default();
            self.held -= waiting.len();
            return match ended {
                Ended::Park(head) => Next::Park(head, waiting),
                _ => Next::Idle,
            };
        }
        match self.waiting.get_mut(lane).and_then(VecDeque::pop_front) {
            Some(job) => Next::Start(job),
            None => {
                self.waiting.remove(lane);
                Next::Idle
            }
        }
    }
}

/// One record's delivery, releasing its window slot at the end; yields its lane and how
/// it ended.
fn delivery(handler: &Handler, (record, permit): Job, lane: Option<String>) -> BoxFuture<'static, (Option<String>, Ended)> {
    let work = handler(record, lane.clone());
    Box::pin(async move {
        let ended = work.await;
        drop(permit);
        (lane, ended)
    })
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
                Ended::Done
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
                    if r.offset == 1 { Ended::Abandoned } else { Ended::Done }
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

    /// A spill that records what it parked, in order, and the records read back from it
    /// (topic "parked").
    #[derive(Default)]
    struct FakeSpill {
        parked: Mutex<Vec<i64>>,
        parked_lanes: Mutex<std::collections::HashSet<String>>,
    }

    impl Spill for FakeSpill {
        fn is_parked_record(&self, record: &OwnedRecord) -> bool {
            record.topic == "parked"
        }
        fn lane_is_parked(&self, _record: &OwnedRecord, lane: &str) -> bool {
            self.parked_lanes.lock().contains(lane)
        }
        #[allow(clippy::async_yields_async)]
        fn park(&self, record: OwnedRecord, lane: String) -> BoxFuture<'static, BoxFuture<'static, Ended>> {
            self.parked.lock().push(record.offset);
            self.parked_lanes.lock().insert(lane);
            Box::pin(async { Box::pin(async { Ended::Parked }) as BoxFuture<'static, Ended> })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_head_takes_its_lane_along_in_order_and_the_other_lanes_keep_going() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(16));
        // Offset 0, the head of lane "a", fails for 5 s and is then parked; lane "b" and
        // the records of no lane are healthy.
        let handler: Handler = {
            let seen = Arc::clone(&seen);
            Arc::new(move |r: OwnedRecord, _lane| {
                let seen = Arc::clone(&seen);
                Box::pin(async move {
                    if r.offset == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        return Ended::Park(Box::new(r));
                    }
                    seen.lock().push(r.offset);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ended::Done
                })
            })
        };
        let lane_of: LaneOf = Arc::new(|r: &OwnedRecord| match r.offset {
            0..=3 | 7 => Some("a".to_owned()),
            4 | 5 => Some("b".to_owned()),
            _ => None,
        });
        let spill = Arc::new(FakeSpill::default());
        let mut workers = Workers::new(handler, lane_of, IDLE_EXIT).with_spill(Arc::clone(&spill) as Arc<dyn Spill>, 100);
        for offset in [0, 1, 2, 3, 4, 5, 6] {
            workers.dispatch(record("e", offset), Arc::clone(&window).acquire_owned().await.expect("slot"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*seen.lock(), [4, 6, 5], "lane b and the record of no lane went on while a's head failed");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(*spill.parked.lock(), [0, 1, 2, 3], "the worker parked a's head, then the records waiting behind it, in order");
        assert!(!seen.lock().contains(&1), "none of them was delivered here");
        workers.dispatch(record("e", 7), Arc::clone(&window).acquire_owned().await.expect("slot"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*spill.parked.lock(), [0, 1, 2, 3, 7], "a later record of the parked lane is parked behind them");
        // Read back from the parked topic, a's records run in their lane, one at a time.
        for offset in [1, 2] {
            let mut r = record("e", offset);
            r.topic = "parked".into();
            workers.dispatch(r, Arc::clone(&window).acquire_owned().await.expect("slot"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.lock()[3..], [1], "a parked record is not parked again; its lane's next waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.lock()[3..], [1, 2]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(window.available_permits(), 16, "every slot released");
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_holding_its_limit_of_lane_records_parks_the_next() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(16));
        let lane_of: LaneOf = Arc::new(|_: &OwnedRecord| Some("a".to_owned()));
        let spill = Arc::new(FakeSpill::default());
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::from_secs(1)), lane_of, IDLE_EXIT)
            .with_spill(Arc::clone(&spill) as Arc<dyn Spill>, 3);
        for offset in 0..6 {
            workers.dispatch(record("e", offset), Arc::clone(&window).acquire_owned().await.expect("slot"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*spill.parked.lock(), [3, 4, 5], "three held (one running, two waiting); the rest parked");
        assert_eq!(window.available_permits(), 16 - 3, "parked records gave their slots back");
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(seen.lock().iter().map(|s| s.1).collect::<Vec<_>>(), [0, 1, 2]);
    }
}

//! Long-lived per-endpoint workers. The intake loop hands each record to the worker of its
//! endpoint (the record key: deliveries and retry-tier records are keyed by endpoint id),
//! which runs that endpoint's deliveries as futures of its own task: one task per busy
//! endpoint instead of one spawned task per record, and one place where an endpoint's
//! deliveries meet (the place ordered lanes and per-endpoint batching build on).
//!
//! A worker that has had nothing to do for [`IDLE_EXIT`] ends; the next record of its
//! endpoint starts a new one. The window permit travels with the record and is released when
//! its delivery has ended, so the window still bounds the work held in memory.

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hookline_runtime::kafka::OwnedRecord;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;

/// A worker with no record queued or running for this long ends by default (bounded memory with many
/// endpoints; a busy endpoint keeps its worker).
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

type Job = (OwnedRecord, OwnedSemaphorePermit);

/// What a worker does with one record (the sender: [`crate::deliver::deliver`]).
pub type Handler = Arc<dyn Fn(OwnedRecord) -> BoxFuture<'static, ()> + Send + Sync>;

/// The workers, owned by the intake loop.
pub struct Workers {
    handler: Handler,
    idle_exit: Duration,
    by_endpoint: HashMap<Vec<u8>, Worker>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

impl Workers {
    pub fn new(handler: Handler, idle_exit: Duration) -> Self {
        Self { handler, idle_exit, by_endpoint: HashMap::new() }
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
            let task = tokio::spawn(run(Arc::clone(&self.handler), self.idle_exit, rx));
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
/// concurrently (the endpoint's own limits, breaker and rate apply inside each delivery).
async fn run(handler: Handler, idle_exit: Duration, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => running.push(delivery(&handler, job)),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
            () = tokio::time::sleep(idle_exit), if running.is_empty() => {
                // Refuse new records first (the intake then starts another worker), then
                // take any that came meanwhile.
                jobs.close();
                while let Ok(job) = jobs.try_recv() {
                    running.push(delivery(&handler, job));
                }
                break;
            }
        }
    }
    while running.next().await.is_some() {}
}

/// One record's delivery, releasing its window slot at the end.
fn delivery(handler: &Handler, (record, permit): Job) -> impl std::future::Future<Output = ()> {
    let work = handler(record);
    async move {
        work.await;
        drop(permit);
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

    /// A handler that records (endpoint, offset, worker task id) and waits `hold`.
    fn recording(seen: Arc<Mutex<Vec<(String, i64, tokio::task::Id)>>>, hold: Duration) -> Handler {
        Arc::new(move |r: OwnedRecord| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                let task = tokio::task::id();
                seen.lock().push((String::from_utf8(r.key).expect("utf-8"), r.offset, task));
                tokio::time::sleep(hold).await;
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn one_worker_per_endpoint_runs_its_records_concurrently_and_frees_their_slots() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(Semaphore::new(6));
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::from_secs(1)), IDLE_EXIT);
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
        let mut workers = Workers::new(recording(Arc::clone(&seen), Duration::ZERO), idle);
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
}

//! What `/healthz` and `/readyz` report. Each role's consuming loop ticks its handle at
//! least once a second and says whether its consumer holds partitions; the process is live
//! while every loop ticks, and ready when, in addition, the endpoint registry is loaded and
//! every role has joined its group and been assigned partitions.

use crate::time::now_ms;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A loop that has not ticked for this long is considered stuck.
pub const STALL_MS: i64 = 30_000;

#[derive(Debug, Clone, Copy, Default)]
struct Part {
    last_tick_ms: i64,
    assigned: bool,
}

#[derive(Default)]
struct Parts {
    loops: BTreeMap<&'static str, Part>,
    /// Per role: why consume errors keep it from being ready.
    consuming: BTreeMap<&'static str, String>,
}

#[derive(Default)]
pub struct Health {
    parts: Mutex<Parts>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub live: bool,
    pub ready: bool,
    pub problems: Vec<String>,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records that `role`'s loop is running, and whether it holds partitions.
    pub fn tick(&self, role: &'static str, assigned: bool) {
        self.parts.lock().loops.insert(role, Part { last_tick_ms: now_ms(), assigned });
    }

    /// Records whether consume errors stall `role` (not ready), or no longer do. Errors do
    /// not make a process not live: a broker outage must not get pods restarted.
    pub fn consuming(&self, role: &'static str, problem: Option<String>) {
        let mut parts = self.parts.lock();
        match problem {
            Some(p) => parts.consuming.insert(role, p),
            None => parts.consuming.remove(role),
        };
    }

    pub fn report(&self, registry_ready: bool, now_ms: i64) -> Report {
        let mut problems = Vec::new();
        let mut live = true;
        let parts = self.parts.lock();
        if parts.loops.is_empty() {
            problems.push("no role has started its loop yet".to_owned());
        }
        for (role, part) in parts.loops.iter() {
            let silent = now_ms - part.last_tick_ms;
            if silent > STALL_MS {
                live = false;
                problems.push(format!("{role}: loop silent for {silent} ms"));
            }
            if !part.assigned {
                problems.push(format!("{role}: no partitions assigned yet"));
            }
        }
        for (role, problem) in &parts.consuming {
            problems.push(format!("{role}: {problem}"));
        }
        if !registry_ready {
            problems.push("endpoint registry still loading".to_owned());
        }
        Report { live, ready: problems.is_empty(), problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_registry_assignment_and_ticks() {
        let h = Health::default();
        assert!(!h.report(true, now_ms()).ready);
        h.tick("router", false);
        let r = h.report(true, now_ms());
        assert!(r.live && !r.ready);
        assert_eq!(r.problems, ["router: no partitions assigned yet"]);
        h.tick("router", true);
        assert!(h.report(true, now_ms()).ready);
        assert!(!h.report(false, now_ms()).ready);
        let later = h.report(true, now_ms() + STALL_MS + 1);
        assert!(!later.live && !later.ready);
    }

    #[test]
    fn consume_errors_make_a_role_unready_but_never_not_live() {
        let h = Health::default();
        h.tick("router", true);
        h.consuming("router", Some("consume errors for 31 s with no record read (last: broker_unavailable)".into()));
        let r = h.report(true, now_ms());
        assert!(r.live && !r.ready);
        assert_eq!(r.problems, ["router: consume errors for 31 s with no record read (last: broker_unavailable)"]);
        h.consuming("router", None);
        assert!(h.report(true, now_ms()).ready);
    }
}

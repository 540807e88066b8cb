//! Consume errors, as data: what kind each is, and what a role does about a run of them.
//!
//! A consume error is never only a log line. Each one is counted by [`ConsumeErrorKind`];
//! [`ErrorRuns`] decides when to log (the first of a kind, then a summary at most every
//! [`LOG_EVERY_MS`]), when to look for records that can never be read (so they can be
//! dead-lettered and skipped), and when the role must stop reporting ready: errors that go
//! on for [`STALL_MS`] with no record read, or unreadable records that could not be located.
//! An error that can heal (a broker down, an authorization not yet granted) only makes the
//! role unready; it never stops the process, so liveness probes do not restart pods for a
//! broker outage.

/// Bounded kinds of consume errors (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumeErrorKind {
    /// A record or batch the client can never read: corrupt, an unsupported codec, a
    /// format it refuses. Reading it again fails again; it must be skipped.
    Unreadable,
    /// No broker or partition leader reachable, timeouts: heals when the cluster does.
    BrokerUnavailable,
    /// Topic or group access denied: heals when the ACLs are granted.
    Authorization,
    /// The topic or partition does not exist (yet).
    UnknownTopic,
    /// Offsets out of range and everything else; librdkafka retries these itself.
    Other,
}

impl ConsumeErrorKind {
    pub const ALL: [Self; 5] = [Self::Unreadable, Self::BrokerUnavailable, Self::Authorization, Self::UnknownTopic, Self::Other];

    pub fn label(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::BrokerUnavailable => "broker_unavailable",
            Self::Authorization => "authorization",
            Self::UnknownTopic => "unknown_topic",
            Self::Other => "other",
        }
    }
}

/// Errors going on this long with no record read make the role unready.
pub const STALL_MS: i64 = 30_000;
/// A run of errors ends when none came for this long.
pub const QUIET_MS: i64 = 10_000;
/// After the first error of a kind is logged, at most one summary line per this period.
pub const LOG_EVERY_MS: i64 = 10_000;
/// A search for unreadable records that found none is not repeated sooner than this.
pub const LOCATE_EVERY_MS: i64 = 5_000;

/// Log folding: a line repeated over and over is logged once, then at most once per
/// [`LOG_EVERY_MS`] with the count of repeats since the last time it was logged.
#[derive(Debug, Clone)]
pub struct LogFold<K> {
    /// Per key: when last logged, and how many since.
    logged: std::collections::HashMap<K, (i64, u64)>,
}

impl<K> Default for LogFold<K> {
    fn default() -> Self {
        Self { logged: std::collections::HashMap::new() }
    }
}

impl<K: std::hash::Hash + Eq> LogFold<K> {
    /// Keys remembered at most; past this, counting starts again (a source of endless distinct lines).
    const MAX_KEYS: usize = 1_000;

    /// Counts one occurrence of `key`; returns the count to log with when a line is due.
    pub fn due(&mut self, key: K, now_ms: i64) -> Option<u64> {
        if self.logged.len() >= Self::MAX_KEYS && !self.logged.contains_key(&key) {
            self.logged.clear();
        }
        let entry = self.logged.entry(key).or_insert((i64::MIN, 0));
        entry.1 += 1;
        if entry.0 != i64::MIN && now_ms - entry.0 < LOG_EVERY_MS {
            return None;
        }
        let repeats = entry.1;
        *entry = (now_ms, 0);
        Some(repeats)
    }
}

/// A run of events: since when, and the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Run {
    since_ms: Option<i64>,
    last_ms: i64,
}

impl Run {
    fn hit(&mut self, now_ms: i64) {
        if self.since_ms.is_none() || now_ms - self.last_ms > QUIET_MS {
            self.since_ms = Some(now_ms);
        }
        self.last_ms = now_ms;
    }

    /// How long the run has gone on, if it is still going (an error within [`QUIET_MS`]).
    fn ongoing(&self, now_ms: i64) -> Option<i64> {
        self.since_ms.filter(|_| now_ms - self.last_ms <= QUIET_MS).map(|since| now_ms - since)
    }
}

/// What to do about one consume error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAction {
    /// Log it, with this many errors of the kind folded in since the last line.
    pub log: Option<u64>,
    /// Look for the partition that holds unreadable records.
    pub locate: bool,
}

/// One role's consume errors over time.
#[derive(Debug, Default, Clone)]
pub struct ErrorRuns {
    /// Errors of any kind with no record read in between.
    unread: Run,
    last_kind: Option<ConsumeErrorKind>,
    /// Unreadable errors not followed by a skip.
    unreadable: Run,
    last_locate_ms: Option<i64>,
    /// Per kind: one line, then a summary at most every [`LOG_EVERY_MS`].
    logged: LogFold<ConsumeErrorKind>,
}

impl ErrorRuns {
    pub fn on_error(&mut self, kind: ConsumeErrorKind, now_ms: i64) -> ErrorAction {
        self.unread.hit(now_ms);
        self.last_kind = Some(kind);
        let log = self.logged.due(kind, now_ms);
        let mut locate = false;
        if kind == ConsumeErrorKind::Unreadable {
            self.unreadable.hit(now_ms);
            locate = self.last_locate_ms.is_none_or(|at| now_ms - at >= LOCATE_EVERY_MS);
        }
        ErrorAction { log, locate }
    }

    /// A search for unreadable records ran; `skipped` says whether it found and skipped some.
    pub fn on_located(&mut self, skipped: bool, now_ms: i64) {
        if skipped {
            self.unreadable = Run::default();
            self.last_locate_ms = None;
        } else {
            self.last_locate_ms = Some(now_ms);
        }
    }

    /// A record was read: the run of errors without progress is over.
    pub fn on_record(&mut self) {
        if self.unread.since_ms.is_some() {
            self.unread = Run::default();
        }
    }

    /// Why the role is not ready, if it is stalled by errors.
    pub fn problem(&self, now_ms: i64) -> Option<String> {
        if let Some(for_ms) = self.unreadable.ongoing(now_ms).filter(|&ms| ms >= STALL_MS) {
            return Some(format!("unreadable records for {} s that could not be located and skipped", for_ms / 1000));
        }
        let for_ms = self.unread.ongoing(now_ms).filter(|&ms| ms >= STALL_MS)?;
        let kind = self.last_kind.map_or("unknown", ConsumeErrorKind::label);
        Some(format!("consume errors for {} s with no record read (last: {kind})", for_ms / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ConsumeErrorKind::*;

    #[test]
    fn the_first_error_of_a_kind_is_logged_then_summaries_at_most_every_period() {
        let mut r = ErrorRuns::default();
        assert_eq!(r.on_error(BrokerUnavailable, 0).log, Some(1));
        for t in 1..100 {
            assert_eq!(r.on_error(BrokerUnavailable, t * 10).log, None);
        }
        assert_eq!(r.on_error(Authorization, 995).log, Some(1), "another kind is logged at once");
        assert_eq!(r.on_error(BrokerUnavailable, LOG_EVERY_MS).log, Some(100), "99 folded in, plus this one");
    }

    #[test]
    fn errors_without_progress_make_the_role_unready_until_a_record_is_read() {
        let mut r = ErrorRuns::default();
        for t in (0..=STALL_MS).step_by(1000) {
            r.on_error(BrokerUnavailable, t);
        }
        let problem = r.problem(STALL_MS).expect("stalled");
        assert!(problem.contains("30 s") && problem.contains("broker_unavailable"), "{problem}");
        r.on_record();
        assert_eq!(r.problem(STALL_MS), None);
    }

    #[test]
    fn a_healed_outage_is_forgotten_after_a_quiet_period() {
        let mut r = ErrorRuns::default();
        for t in (0..=STALL_MS).step_by(1000) {
            r.on_error(BrokerUnavailable, t);
        }
        assert!(r.problem(STALL_MS + QUIET_MS).is_some());
        assert_eq!(r.problem(STALL_MS + QUIET_MS + 1), None, "idle topic after the outage: ready again");
        r.on_error(BrokerUnavailable, STALL_MS + QUIET_MS + 5_000);
        assert_eq!(r.problem(STALL_MS + QUIET_MS + 5_000), None, "a new run starts from zero");
    }

    #[test]
    fn unreadable_records_are_located_again_only_after_a_pause_unless_skipped() {
        let mut r = ErrorRuns::default();
        assert!(r.on_error(Unreadable, 0).locate);
        r.on_located(false, 0);
        assert!(!r.on_error(Unreadable, 100).locate);
        assert!(r.on_error(Unreadable, LOCATE_EVERY_MS).locate);
        r.on_located(true, LOCATE_EVERY_MS);
        assert!(r.on_error(Unreadable, LOCATE_EVERY_MS + 1).locate, "the next batch may be unreadable too");
        assert!(!r.on_error(BrokerUnavailable, LOCATE_EVERY_MS + 2).locate);
    }

    #[test]
    fn unreadable_records_that_cannot_be_located_make_the_role_unready_even_while_others_flow() {
        let mut r = ErrorRuns::default();
        for t in (0..=STALL_MS).step_by(500) {
            r.on_error(Unreadable, t);
            r.on_located(false, t);
            r.on_record();
        }
        assert!(r.problem(STALL_MS).expect("stalled").contains("unreadable"));
    }

    proptest! {
        /// Whatever the sequence, a role that reads a record after its last error is ready,
        /// unless unreadable records are still pending; and nothing is ever logged twice
        /// within the period for one kind.
        #[test]
        fn progress_always_clears_the_plain_stall(steps in prop::collection::vec((0usize..5, 0i64..3_000), 1..200)) {
            let mut r = ErrorRuns::default();
            let mut now = 0;
            let mut logged_at = std::collections::BTreeMap::new();
            for (k, dt) in steps {
                now += dt;
                let kind = ConsumeErrorKind::ALL[k];
                if r.on_error(kind, now).log.is_some() {
                    if let Some(prev) = logged_at.insert(kind, now) {
                        prop_assert!(now - prev >= LOG_EVERY_MS);
                    }
                }
            }
            r.on_record();
            if let Some(p) = r.problem(now) {
                prop_assert!(p.contains("unreadable"), "{}", p);
            }
        }
    }
}

//! Every metric Hookline exports, declared once: its name, kind, help text, unit, labels
//! (with the values they can take when they are an enum's spelling) and, for a histogram,
//! its buckets. Call sites record through these declarations, never a literal name:
//! `metric_catalog::SENDER_ATTEMPTS.with([outcome]).increment(1)`. The kind and the number
//! of labels are in the type ([`Counter`]`<1>`), so a call with the wrong ones does not
//! compile; a label value the catalog does not declare fails a debug assertion, so tests
//! catch an unbounded label before a Prometheus does.
//!
//! [`ALL`] is the list the rest reads: the recorder's install (`admin::metrics_recorder`)
//! describes each metric (`# HELP`, `# TYPE`) and sets each histogram's buckets from it;
//! the tests below check the naming rules, that the docs table (docs/architecture.md,
//! "Health and metrics") is this catalog, and that the Grafana dashboard, the alert rules
//! and the docs name only metrics declared here.
//!
//! It lives in `hookline-runtime`, not `hookline-core`, although it is mostly data: every
//! crate that records metrics depends on this one, the recorder is installed here, and the
//! typed handles call the `metrics` facade (a process-wide recorder), which core, pure
//! logic without IO, does not depend on.

use hookline_core::consume::ConsumeErrorKind;
use hookline_proto::v1::DeadLetterReason;
use metrics::{Key, Metadata, SharedString, Unit};
use std::marker::PhantomData;

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// As in the exposition format's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One label of a metric.
#[derive(Debug)]
pub struct Label {
    pub name: &'static str,
    pub values: Values,
}

/// What a label's values can be. Never an endpoint, event or tenant id.
#[derive(Debug)]
pub enum Values {
    /// An enum's spelling, written here: only these.
    OneOf(&'static [&'static str]),
    /// The spelling of an enum that names itself (`DeadLetterReason::label`): only those,
    /// listed by the enum, so a new variant needs no edit here.
    Spelled(fn() -> Vec<&'static str>),
    /// Not an enum, bounded by the deployment: says by what.
    BoundedBy(&'static str),
}

impl Values {
    /// The values, unless bounded by the deployment.
    pub fn listed(&self) -> Option<Vec<&'static str>> {
        match self {
            Values::OneOf(values) => Some(values.to_vec()),
            Values::Spelled(list) => Some(list()),
            Values::BoundedBy(_) => None,
        }
    }
}

impl Label {
    /// Whether `value` is one this label declares (any, when bounded by the deployment).
    /// Checked on every recording in debug builds: a listed set is searched in place.
    pub fn admits(&self, value: &str) -> bool {
        match self.values {
            Values::OneOf(values) => values.contains(&value),
            Values::Spelled(list) => list().contains(&value),
            Values::BoundedBy(_) => true,
        }
    }
}

/// One metric as declared, whatever its kind: what describing, docs and tests read.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub unit: Unit,
    pub labels: &'static [Label],
    /// A histogram's bucket upper bounds, in its unit; empty for the other kinds.
    pub buckets: &'static [f64],
}

impl Spec {
    /// Registers the help text and unit with the installed recorder.
    pub fn describe(&self) {
        match self.kind {
            Kind::Counter => metrics::describe_counter!(self.name, self.unit, self.help),
            Kind::Gauge => metrics::describe_gauge!(self.name, self.unit, self.help),
            Kind::Histogram => metrics::describe_histogram!(self.name, self.unit, self.help),
        }
    }

    fn key<V: Into<SharedString>, const L: usize>(&self, values: [V; L]) -> Key {
        let labels: Vec<metrics::Label> = self
            .labels
            .iter()
            .zip(values)
            .map(|(label, value)| {
                let value = value.into();
                debug_assert!(
                    label.admits(&value),
                    "{} {{{}={value:?}}}: a value metric_catalog does not declare",
                    self.name,
                    label.name
                );
                metrics::Label::new(label.name, value)
            })
            .collect();
        Key::from_parts(self.name, labels)
    }
}

/// A metric of kind `K` with `L` labels. Its handle: [`Metric::with`] the label values in
/// the declared order, or [`Metric::get`] when it has none.
#[derive(Debug)]
pub struct Metric<K, const L: usize> {
    spec: Spec,
    kind: PhantomData<K>,
}

pub type Counter<const L: usize> = Metric<kind::Counter, L>;
pub type Gauge<const L: usize> = Metric<kind::Gauge, L>;
pub type Histogram<const L: usize> = Metric<kind::Histogram, L>;

/// Marker types of the three kinds, each registering its own handle.
pub mod kind {
    use metrics::{Key, Metadata};

    pub trait Registered {
        type Handle;
        fn register(key: &Key, metadata: &Metadata<'static>) -> Self::Handle;
    }

    #[derive(Debug)]
    pub struct Counter;
    #[derive(Debug)]
    pub struct Gauge;
    #[derive(Debug)]
    pub struct Histogram;

    impl Registered for Counter {
        type Handle = metrics::Counter;
        fn register(key: &Key, metadata: &Metadata<'static>) -> metrics::Counter {
            metrics::with_recorder(|r| r.register_counter(key, metadata))
        }
    }

    impl Registered for Gauge {
        type Handle = metrics::Gauge;
        fn register(key: &Key, metadata: &Metadata<'static>) -> metrics::Gauge {
            metrics::with_recorder(|r| r.register_gauge(key, metadata))
        }
    }

    impl Registered for Histogram {
        type Handle = metrics::Histogram;
        fn register(key: &Key, metadata: &Metadata<'static>) -> metrics::Histogram {
            metrics::with_recorder(|r| r.register_histogram(key, metadata))
        }
    }
}

/// What the `metrics` macros would pass: the recording module (here, not the call site).
static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl<K: kind::Registered, const L: usize> Metric<K, L> {
    /// The handle of the series with these label values (in the declared order).
    pub fn with<V: Into<SharedString>>(&'static self, values: [V; L]) -> K::Handle {
        K::register(&self.spec.key(values), &METADATA)
    }
}

impl<K: kind::Registered> Metric<K, 1> {
    /// A handle for each value its label declares, registered now: for a path that records
    /// on every delivery, where registering on each call (building the key, hashing it and
    /// finding it in the recorder) costs more than the recording. Handles belong to the
    /// recorder current when this is called. Panics for a label bounded by the deployment.
    pub fn series(&'static self) -> Series<K::Handle> {
        let values = self.spec.labels[0].values.listed().expect("series of a label whose values are declared");
        let handles = values.iter().map(|value| self.with([*value])).collect();
        Series { values, handles }
    }
}

/// One handle per declared value of a metric's one label ([`Metric::series`]).
#[derive(Debug)]
pub struct Series<H> {
    values: Vec<&'static str>,
    handles: Vec<H>,
}

impl<H> Series<H> {
    /// The handle of the series labelled `value`, one the catalog declares.
    pub fn of(&self, value: &str) -> &H {
        let at = self.values.iter().position(|v| *v == value);
        &self.handles[at.unwrap_or_else(|| panic!("{value:?}: a value metric_catalog does not declare"))]
    }
}

impl<K, const L: usize> Metric<K, L> {
    /// The exported name (for a test that reads `/metrics`).
    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

impl<K: kind::Registered> Metric<K, 0> {
    /// The handle of a metric without labels.
    pub fn get(&'static self) -> K::Handle {
        K::register(&Key::from_static_name(self.spec.name), &METADATA)
    }
}

const fn counter<const L: usize>(name: &'static str, help: &'static str, labels: &'static [Label; L]) -> Counter<L> {
    Metric { spec: Spec { name, kind: Kind::Counter, help, unit: Unit::Count, labels, buckets: &[] }, kind: PhantomData }
}

const fn gauge<const L: usize>(name: &'static str, help: &'static str, labels: &'static [Label; L]) -> Gauge<L> {
    Metric { spec: Spec { name, kind: Kind::Gauge, help, unit: Unit::Count, labels, buckets: &[] }, kind: PhantomData }
}

/// Histograms are of durations, in seconds.
const fn seconds<const L: usize>(
    name: &'static str,
    help: &'static str,
    labels: &'static [Label; L],
    buckets: &'static [f64],
) -> Histogram<L> {
    Metric { spec: Spec { name, kind: Kind::Histogram, help, unit: Unit::Seconds, labels, buckets }, kind: PhantomData }
}

// --- Buckets ---------------------------------------------------------------------------

/// One HTTP attempt: 5 ms to 30 s (the longest request timeout worth having).
pub const ATTEMPT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How late webhooks are: 50 ms to 1 h (at 30 s a webhook's lateness only starts to matter).
pub const LATENESS_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

// --- Labels ----------------------------------------------------------------------------

/// `DeadLetterReason::label`: the one spelling of a reason in metrics, logs and the API.
const REASON: Label = Label {
    name: "reason",
    values: Values::Spelled(|| DeadLetterReason::all().map(DeadLetterReason::label).collect()),
};

const CONSUME_ERROR_KIND: Label =
    Label { name: "kind", values: Values::Spelled(|| ConsumeErrorKind::ALL.map(ConsumeErrorKind::label).to_vec()) };

/// An attempt's class (`outcome::Class`); `deferred`: not attempted, its breaker is open.
const ATTEMPT_OUTCOME: Label = Label {
    name: "outcome",
    values: Values::OneOf(&["success", "retryable", "permanent", "gone", "blocked_by_policy", "deferred"]),
};

/// An attempt made: its class.
const ANSWERED_OUTCOME: Label = Label {
    name: "outcome",
    values: Values::OneOf(&["success", "retryable", "permanent", "gone", "blocked_by_policy"]),
};

// --- The catalog -------------------------------------------------------------------------

pub static ROUTER_EVENTS: Counter<1> = counter(
    "hookline_router_events_total",
    "Events the router read, by what became of them.",
    &[Label { name: "result", values: Values::OneOf(&["routed", "unmatched", "dead_lettered"]) }],
);

pub static ROUTER_DELIVERIES: Counter<0> =
    counter("hookline_router_deliveries_total", "Deliveries the router produced: one per event and endpoint it matched.", &[]);

pub static ROUTER_NOT_ADMITTED: Counter<1> = counter(
    "hookline_router_not_admitted_total",
    "Subscribed endpoints an event did not go to: another version than the endpoint pins, its content filter said no, or the filter failed on it.",
    &[Label { name: "reason", values: Values::OneOf(&["version", "filter", "filter_error"]) }],
);

pub static ROUTER_FILTER_ERRORS: Counter<1> = counter(
    "hookline_router_filter_errors_total",
    "Content filters that failed on an event (the endpoint does not get it).",
    &[Label {
        name: "kind",
        values: Values::OneOf(&["missing_field", "wrong_type", "not_bool", "arithmetic", "function", "internal"]),
    }],
);

pub static ROUTER_DEAD_LETTERS: Counter<1> =
    counter("hookline_router_dead_letters_total", "Records the router dead-lettered, by reason (as the API and the logs name it).", &[REASON]);

pub static ROUTER_CONSUME_ERRORS: Counter<1> =
    counter("hookline_router_consume_errors_total", "Errors of the router's consumer, by kind.", &[CONSUME_ERROR_KIND]);

pub static SENDER_ATTEMPTS: Counter<1> = counter(
    "hookline_sender_attempts_total",
    "Delivery attempts, by outcome (deferred: not attempted while the endpoint's breaker is open).",
    &[ATTEMPT_OUTCOME],
);

pub static SENDER_ATTEMPT_DURATION: Histogram<1> = seconds(
    "hookline_sender_attempt_duration_seconds",
    "Time of one HTTP attempt, from the request to the answer or the error.",
    &[ANSWERED_OUTCOME],
    ATTEMPT_BUCKETS,
);

pub static DELIVERY_LATENCY: Histogram<1> = seconds(
    "hookline_delivery_latency_seconds",
    "Event time to the endpoint's 2xx, once per delivery (not replays), by whether the first attempt or a retry succeeded.",
    &[Label { name: "attempt", values: Values::OneOf(&["first", "retry"]) }],
    LATENESS_BUCKETS,
);

pub static SENDER_FIRST_ATTEMPT_DELAY: Histogram<0> = seconds(
    "hookline_sender_first_attempt_delay_seconds",
    "The delivery's creation by the router to its first attempt (not replays).",
    &[],
    LATENESS_BUCKETS,
);

pub static SENDER_RETRIES: Counter<1> = counter(
    "hookline_sender_retries_total",
    "Deliveries forwarded to a retry tier.",
    &[Label { name: "tier", values: Values::BoundedBy("one per delay of the retry schedule") }],
);

pub static SENDER_DEAD_LETTERS: Counter<1> =
    counter("hookline_sender_dead_letters_total", "Deliveries and records the sender dead-lettered, by reason (as the API and the logs name it).", &[REASON]);

pub static SENDER_CONSUME_ERRORS: Counter<1> =
    counter("hookline_sender_consume_errors_total", "Errors of the sender's consumer, by kind.", &[CONSUME_ERROR_KIND]);

pub static SENDER_BREAKER_TRANSITIONS: Counter<1> = counter(
    "hookline_sender_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    &[Label { name: "to", values: Values::OneOf(&["open", "half_open", "closed"]) }],
);

pub static SENDER_FAILOVER_SWITCHES: Counter<1> = counter(
    "hookline_sender_failover_switches_total",
    "Endpoints whose deliveries moved to their failover URL or back to the primary.",
    &[Label { name: "to", values: Values::OneOf(&["failover", "primary"]) }],
);

pub static SENDER_LANES_BLOCKED: Counter<1> = counter(
    "hookline_sender_lanes_blocked_total",
    "Ordered lanes whose head exhausted its retries: skipped (dead-lettered) or the endpoint halted.",
    &[Label { name: "action", values: Values::OneOf(&["skip", "halt"]) }],
);

pub static SENDER_DELIVERIES_PARKED: Counter<0> = counter(
    "hookline_sender_deliveries_parked_total",
    "Deliveries of ordered lanes moved to the parked topic (a blocked or overfull lane).",
    &[],
);

pub static SENDER_DUPLICATES_SUPPRESSED: Counter<0> = counter(
    "hookline_sender_duplicates_suppressed_total",
    "Copies of an already delivered first attempt (routed again after a restart) not sent again.",
    &[],
);

pub static SENDER_TRANSFORM_ERRORS: Counter<0> = counter(
    "hookline_sender_transform_errors_total",
    "Endpoint payload transformations that failed (the delivery is dead-lettered).",
    &[],
);

pub static SENDER_ATTEMPT_RECORDS: Counter<0> =
    counter("hookline_sender_attempt_records_total", "Records written to the attempts topic (each a batch of attempts).", &[]);

pub static SENDER_DELIVERIES_IN_PROGRESS: Gauge<0> =
    gauge("hookline_sender_deliveries_in_progress", "Deliveries taken from Kafka and not finished.", &[]);

pub static SENDER_BREAKERS_OPEN: Gauge<0> =
    gauge("hookline_sender_breakers_open", "Endpoints whose circuit breaker is not closed.", &[]);

pub static SENDER_TIER_PARTITIONS_HELD: Gauge<0> =
    gauge("hookline_sender_tier_partitions_held", "Retry-tier partitions paused until their head is due.", &[]);

pub static SENDER_ENDPOINT_WORKERS: Gauge<0> =
    gauge("hookline_sender_endpoint_workers", "Per-endpoint delivery workers alive.", &[]);

pub static SENDER_LANES_PARKED: Gauge<0> =
    gauge("hookline_sender_lanes_parked", "Ordered lanes parked now (deliveries waiting on the parked topic), on this sender's partitions.", &[]);

pub static CONSUMER_LAG: Gauge<3> = gauge(
    "hookline_consumer_lag",
    "Records between each partition's committed offset and its end, from librdkafka's statistics every 10 s; a member sets a partition it no longer reads to 0.",
    &[
        Label { name: "group", values: Values::BoundedBy("the roles' consumer groups") },
        Label { name: "topic", values: Values::BoundedBy("the topics the roles consume") },
        Label { name: "partition", values: Values::BoundedBy("their partitions") },
    ],
);

pub static REGISTRY_ENDPOINTS: Gauge<0> =
    gauge("hookline_registry_endpoints", "Endpoints in this process's registry (set on each scrape).", &[]);

pub static OFFSETS_INHERITED_SKIPS: Counter<0> = counter(
    "hookline_offsets_inherited_skips_total",
    "Records skipped because the partition's previous owner had finished them (commit metadata).",
    &[],
);

pub static SCHEMA_VIOLATIONS: Counter<1> = counter(
    "hookline_schema_violations_total",
    "Event payloads that break their type's JSON Schema, by the type's validation mode.",
    &[Label { name: "validation", values: Values::OneOf(&["enforce", "warn"]) }],
);

pub static OPS_EVENTS_PUBLISHED: Counter<1> = counter(
    "hookline_ops_events_published_total",
    "Operational webhooks published to the events topic, by type.",
    &[Label {
        name: "type",
        values: Values::OneOf(&[
            "hookline.endpoint.disabled",
            "hookline.endpoint.enabled",
            "hookline.endpoint.failing",
            "hookline.endpoint.recovered",
            "hookline.delivery.exhausted",
        ]),
    }],
);

pub static API_EVENTS_INGESTED: Counter<0> =
    counter("hookline_api_events_ingested_total", "Events the HTTP ingest wrote to the events topic.", &[]);

pub static REPLAY_RECORDS: Counter<1> = counter(
    "hookline_replay_records_total",
    "Records a replay job read, by what it did with them.",
    &[Label { name: "outcome", values: Values::OneOf(&["replayed", "filtered", "unreplayable"]) }],
);

pub static REPLAY_JOBS_RUNNING: Gauge<0> =
    gauge("hookline_replay_jobs_running", "Replay jobs running in this process (0 or 1).", &[]);

/// Every metric above, in the order of the docs table.
pub static ALL: &[&Spec] = &[
    &ROUTER_EVENTS.spec,
    &ROUTER_DELIVERIES.spec,
    &ROUTER_NOT_ADMITTED.spec,
    &ROUTER_FILTER_ERRORS.spec,
    &ROUTER_DEAD_LETTERS.spec,
    &ROUTER_CONSUME_ERRORS.spec,
    &SENDER_ATTEMPTS.spec,
    &SENDER_ATTEMPT_DURATION.spec,
    &DELIVERY_LATENCY.spec,
    &SENDER_FIRST_ATTEMPT_DELAY.spec,
    &SENDER_RETRIES.spec,
    &SENDER_DEAD_LETTERS.spec,
    &SENDER_CONSUME_ERRORS.spec,
    &SENDER_BREAKER_TRANSITIONS.spec,
    &SENDER_FAILOVER_SWITCHES.spec,
    &SENDER_LANES_BLOCKED.spec,
    &SENDER_DELIVERIES_PARKED.spec,
    &SENDER_DUPLICATES_SUPPRESSED.spec,
    &SENDER_TRANSFORM_ERRORS.spec,
    &SENDER_ATTEMPT_RECORDS.spec,
    &SENDER_DELIVERIES_IN_PROGRESS.spec,
    &SENDER_BREAKERS_OPEN.spec,
    &SENDER_TIER_PARTITIONS_HELD.spec,
    &SENDER_ENDPOINT_WORKERS.spec,
    &SENDER_LANES_PARKED.spec,
    &CONSUMER_LAG.spec,
    &REGISTRY_ENDPOINTS.spec,
    &OFFSETS_INHERITED_SKIPS.spec,
    &SCHEMA_VIOLATIONS.spec,
    &OPS_EVENTS_PUBLISHED.spec,
    &API_EVENTS_INGESTED.spec,
    &REPLAY_RECORDS.spec,
    &REPLAY_JOBS_RUNNING.spec,
];

/// Describes every metric to the installed recorder (help text and unit).
pub fn describe_all() {
    for spec in ALL {
        spec.describe();
    }
}

#[cfg(test)]
mod tests;

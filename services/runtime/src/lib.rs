//! Shared adapters of Hookline's roles: everything that touches the outside world and is
//! used by more than one role.
//!
//! - [`admin`]: the `/healthz`, `/readyz` and `/metrics` listener of every role.
//! - [`health`]: what liveness and readiness mean.
//! - [`settings`]: load the typed config (defaults, file, `HOOKLINE_*`) and validate it.
//! - [`consume`]: consume errors counted, readiness, unreadable records dead-lettered and skipped.
//! - [`intake`]: the consuming loop the router and the sender share.
//! - [`kafka`]: rdkafka producers and consumers with Hookline's durability settings.
//! - [`net`]: TCP listeners with a listen queue sized for bursts of connections.
//! - [`metric_catalog`]: every metric exported (name, kind, help, unit, labels, buckets), recorded through it.
//! - [`ops`]: operational webhooks published to the events topic (sender and API).
//! - [`offsets`]: store offsets only for the finished prefix of each partition.
//! - [`preflight`]: a role's Kafka access checked at start; refusals named with the ACL to add.
//! - [`topics`]: create or check every topic (`hookline topics create|check`).
//! - [`registry`]: the endpoint registry, read from the compacted endpoints topic.
//! - [`shutdown`]: one shutdown signal shared by every task of a process.
//! - [`telemetry`]: structured logging.
//! - [`time`]: the wall clock, read in one place.

pub mod admin;
pub mod catalog;
pub mod compacted;
pub mod consume;
pub mod endpoint_check;
pub mod health;
pub mod intake;
pub mod kafka;
pub mod metric_catalog;
pub mod net;
pub mod offsets;
pub mod ops;
pub mod preflight;
pub mod registry;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod topics;
pub mod traces;

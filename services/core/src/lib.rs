//! Pure domain logic of Hookline. Nothing here does IO, reads a clock or draws randomness:
//! callers pass time and entropy in, so every rule is testable on its own.
//!
//! - [`matching`]: event-type patterns and the subscription index the router consults.
//! - [`signing`]: Standard Webhooks signatures (sign for the sender, verify for the sink).
//! - [`watermark`]: the committable low-water mark of a partition's out-of-order work.
//! - [`config`]: typed configuration, its defaults and its validation; topic names.
//! - [`event`]: the rules a published event must follow, and reading one from a record.
//! - [`framing`]: Confluent Schema Registry framing, recognised and taken off.
//! - [`consume`]: consume errors classified, and when a role counts as stalled by them.
//! - [`outcome`]: how an HTTP attempt's result is classified.
//! - [`address`]: the SSRF address policy.
//! - [`retry`]: the retry schedule, its Kafka tiers, and when the next attempt is due.
//! - [`breaker`]: the per-endpoint circuit breaker.
//! - [`failover`]: which of an endpoint's URLs (primary or failover) a delivery goes to.
//! - [`ops`]: operational webhooks (`hookline.endpoint.*`, `hookline.delivery.exhausted`) and their debounce.
//! - [`ratelimit`]: the per-endpoint token bucket.
//! - [`lane`]: ordered lanes: a delivery's lane, and its head's retries in place.
//! - [`verdict`]: the sender's decisions about a delivery (gate, admit, after an attempt or a deferral).
//! - [`recent`]: the (event, endpoint) pairs a sender delivered recently, to drop re-routed copies.
//! - [`endpoint_auth`]: basic, bearer and OAuth2 endpoint auth: rules, the token cache, a 401's retry.
//! - [`client_cert`]: an endpoint's mTLS client certificate, checked and fingerprinted.
//! - [`keyed`]: `String`-keyed maps reached with a `&str`.

pub mod address;
pub mod breaker;
pub mod client_cert;
pub mod config;
pub mod consume;
pub mod contracts;
pub mod endpoint_auth;
pub mod endpoint_rules;
pub mod event;
pub mod failover;
pub mod framing;
pub mod keyed;
pub mod lane;
pub mod matching;
pub mod ops;
pub mod outcome;
pub mod ratelimit;
pub mod recent;
pub mod retry;
pub mod sealing;
pub mod signing;
pub mod verdict;
pub mod watermark;

//! Hookline replay: delivers dead letters again, or backfills one endpoint from the events
//! topic, as durable jobs kept in the compacted replays topic. See `docs/replay.md`.

pub mod jobs;
pub mod plan;
mod worker;

pub use worker::run;

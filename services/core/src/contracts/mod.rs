//! Event contracts: the declarative rules between a producer, Hookline and a consumer.
//! Nothing here runs customer code or does IO; each rule is compiled once (when the
//! catalog or an endpoint is written, or when a role loads them) and then applied per
//! event or delivery.
//!
//! - [`version`]: which version of its type an event is, and whether an endpoint's pin takes it.
//! - [`schema`]: JSON Schema per event type and version, compiled offline and cached.
//! - [`filter`]: an endpoint's CEL content filter over the event, with static cost limits.
//! - [`transform`]: an endpoint's payload operations (include, exclude, mask, rename) and envelope.

pub mod filter;
pub mod schema;
pub mod transform;
pub mod version;

//! One module per subcommand.

pub mod api;
pub mod bench;
pub mod dev;
pub mod endpoint;
pub mod event_types;
pub mod publish;
pub mod roles;
pub mod secrets;
pub mod sink;
pub mod topics;

//! The Hookline wire contract (`proto/hookline/v1/hookline.proto`), compiled with prost.
//!
//! Every topic carries one of these messages; `docs/contract.md` describes the fields and
//! the evolution rules. Payload bytes are opaque: nothing here decodes them.
#![allow(clippy::all)]

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hookline.v1.rs"));
}

pub use prost::Message;

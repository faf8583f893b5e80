//! What every component shares: config, the NATS bus, storage, keys, HTTP
//! glue, and `api/`, the contracts between components.

pub mod api;
pub mod auth;
pub mod bus;
pub mod config;
pub mod federation;
pub mod http;
pub mod keys;
pub mod members;
pub mod metrics;
pub mod outbound;
pub mod pdu;
pub mod power_levels;
pub mod push;
pub mod runtime;
pub mod storage;

pub use runtime::{Runtime, Service};

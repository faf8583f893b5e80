//! The contracts between components: the messages on each stream and the RPC
//! methods, one file per component that owns them.

pub mod federationreceiver;
pub mod federationsender;
pub mod roomserver;
pub mod syncapi;
pub mod userapi;

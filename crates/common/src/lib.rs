//! The wire contract of Herald.
//!
//! Everything that crosses a process boundary is defined here as plain data with serde:
//! ids, channel names, JWT claims, domain events, the Centrifugo client protocol v2 (JSON)
//! and REST error bodies. No I/O lives in this crate.
//!
//! Layout:
//! - [`ids`]: `UserId`, `TaskId`, `ClientId`, `EventId`.
//! - [`channel`]: [`channel::ChannelName`], parsed once at the edge.
//! - [`protocol`]: client-protocol commands, replies, pushes, codes and frame batching.

pub mod auth;
pub mod channel;
pub mod protocol;

//! The wire contract of Herald.
//!
//! Everything that crosses a process boundary is defined here as plain data with serde:
//! ids, channel names, JWT claims, domain events, the Centrifugo client protocol v2 (JSON)
//! and REST error bodies. No I/O lives in this crate.
//!
//! Layout:
//! - [`ids`]: `UserId`, `TaskId`, `ClientId`, `EventId` (UUID v7 strings).
//! - [`channel`]: [`channel::ChannelName`], parsed once at the edge, and
//!   [`channel::ChannelKind`], the design's channel table as a type.
//! - [`claims`]: the access token's claims; [`auth`]: their verification.
//! - [`task`]: the task snapshot; [`events`]: the domain events on the events stream.
//! - [`payload`]: what Herald publishes (task notifications, chat messages) and the lines
//!   of the simple text endpoints.
//! - [`protocol`]: client-protocol commands, replies, pushes, codes and frame batching.
//! - [`server_api`]: the gateway's Centrifugo-compatible `/api/*` bodies.
//! - [`control`]: instructions to every gateway node (revocation, disconnects).
//! - [`error`]: the REST error body.
//!
//! Serde details that matter: payloads (`data`, `info`) stay raw JSON end to end, so a
//! publication is encoded once and never re-parsed; nothing here uses `#[serde(flatten)]`
//! or untagged enums, which would buffer and break raw values.

pub mod auth;
pub mod channel;
pub mod claims;
pub mod control;
pub mod error;
pub mod events;
pub mod ids;
pub mod payload;
pub mod protocol;
pub mod server_api;
pub mod task;

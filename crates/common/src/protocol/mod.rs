//! The Centrifugo client protocol v2, JSON variant (design section 3): what
//! `/connection/websocket` speaks, so the official SDKs work against Herald unchanged.
//!
//! `bytes` fields of `client.proto` (`data`, `info`, `conn_info`, `chan_info`) carry raw
//! embedded JSON, so they are [`RawValue`]s here: Herald never re-encodes a user's payload.
//!
//! Layout, each module using only those listed before it:
//! - [`base`]: what several messages carry ([`ClientInfo`], [`Publication`],
//!   [`StreamPosition`]) and the rule every top-level message decodes by (objects only);
//! - [`codes`]: error, unsubscribe and disconnect codes and their reconnect meaning, with the
//!   bodies that carry them ([`ProtocolError`], [`Unsubscribe`], [`Disconnect`]);
//! - [`command`]: [`Command`] `{id, <method>}` with the typed [`Method`] and its requests;
//! - [`reply`]: [`Reply`] `{id, error | <result>}` and the results;
//! - [`push`]: [`Push`] (publication, join, leave, unsubscribe, subscribe, message, connect,
//!   disconnect, refresh) and the encode-once fan-out encoders;
//! - [`message`]: [`ServerMessage`], anything the server writes (a reply, a push or a ping);
//! - [`frame`]: newline-batched frames, split and joined.
//!
//! Every public item is also re-exported here, so `protocol::Push` and
//! `protocol::push::Push` name the same type.
//!
//! Everything here decodes with unknown fields ignored and encodes with zero, false and
//! empty fields left out, like the reference implementation.

pub mod base;
pub mod codes;
pub mod command;
pub mod frame;
pub mod message;
pub mod push;
pub mod reply;

pub use base::{ClientInfo, Publication, StreamPosition};
pub use codes::{
    DisconnectCode, DisconnectError, ErrorCode, MAX_CLOSE_REASON_LEN, ProtocolError,
    UnsubscribeCode, should_reconnect, should_resubscribe,
};
pub use command::{
    Command, ConnectRequest, HistoryRequest, Method, PingRequest, PresenceRequest,
    PresenceStatsRequest, PublishRequest, RefreshRequest, RpcRequest, SendRequest,
    SubRefreshRequest, SubscribeRequest, UnsubscribeRequest,
};
pub use frame::{
    FrameBuilder, decode_commands, decode_server_messages, join_messages, split_frame,
};
pub use message::ServerMessage;
pub use push::{
    Disconnect, Message, Push, PushError, Refresh, Subscribe, Unsubscribe, encode_join_push,
    encode_leave_push, encode_publication_push,
};
pub use reply::{
    ConnectResult, HistoryResult, PING, PingResult, PresenceResult, PresenceStatsResult,
    PublishResult, RefreshResult, Reply, ReplyBody, RpcResult, SubRefreshResult, SubscribeResult,
    UnsubscribeResult,
};

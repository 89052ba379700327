//! Replies: the server's answer to a command, `{"id":N,"<method>":{…}}` or
//! `{"id":N,"error":{…}}`. (Decoding any server message, a reply or a push, is
//! [`ServerMessage`](super::message::ServerMessage)'s.)
//!
//! Zero, false and empty fields are left out, as the reference encoder does; the fields it
//! always writes are always written here too (`presence`; `num_clients` and `num_users`;
//! history's `publications`, `epoch` and `offset`). Herald never sets the negotiated
//! feature fields (`flag`, `dict`, a subscribe result's `id`), so SDKs that ask for them
//! fall back to the plain protocol.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::base::{ClientInfo, Publication};
use super::codes::{ErrorCode, ProtocolError};
use crate::channel::ChannelName;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// The `{}` message: a server ping, and the client's pong.
pub const PING: &str = "{}";

/// Result of `connect` (also the body of the `connect` push).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    /// The connection's client id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The connection expires (the token has an `exp`): the SDK refreshes before `ttl`.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the connection expires.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Custom data: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Server-side subscriptions, keyed by channel.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<ChannelName, SubscribeResult>,
    /// Server ping interval, seconds.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// The client must answer pings with `{}`.
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    /// Session id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Node name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Server time, Unix milliseconds (not sent by default).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub time: i64,
}

/// Result of `subscribe` (also each entry of a connect result's `subs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    /// The subscription expires (subscription token).
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until it does.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// The channel keeps history: the client may recover later.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Recovered publications, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// Recovery succeeded (all-or-nothing).
    #[serde(skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Top offset of the stream.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// The server checks the client's position.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom subscription data: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// The client asked to recover.
    #[serde(skip_serializing_if = "is_false")]
    pub was_recovering: bool,
    /// Delta compression is on for this subscription (never, in Herald).
    #[serde(skip_serializing_if = "is_false")]
    pub delta: bool,
}

/// Result of `unsubscribe`: `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnsubscribeResult {}

/// Result of `publish`: `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublishResult {}

/// Result of `ping`: `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PingResult {}

/// Result of `presence`: who is subscribed, keyed by client id (always written).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PresenceResult {
    /// Client id → client info.
    #[serde(default)]
    pub presence: BTreeMap<String, ClientInfo>,
}

/// Result of `presence_stats` (both counts always written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PresenceStatsResult {
    /// Connections subscribed.
    #[serde(default)]
    pub num_clients: u32,
    /// Distinct users among them.
    #[serde(default)]
    pub num_users: u32,
}

/// Result of `history` (all fields always written).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryResult {
    /// Publications, in the requested order.
    #[serde(default)]
    pub publications: Vec<Publication>,
    /// Stream epoch.
    #[serde(default)]
    pub epoch: String,
    /// Top offset of the stream.
    #[serde(default)]
    pub offset: u64,
}

/// Result of `rpc`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RpcResult {
    /// The answer: raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// Result of `refresh` (a new connection token).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    /// The connection's client id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Server version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The connection expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until it does.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// Result of `sub_refresh` (a new subscription token).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubRefreshResult {
    /// The subscription expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until it does.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// What a reply carries: an error or the result matching the command.
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// `error`.
    Error(ProtocolError),
    /// `connect`.
    Connect(ConnectResult),
    /// `subscribe`.
    Subscribe(SubscribeResult),
    /// `unsubscribe`.
    Unsubscribe(UnsubscribeResult),
    /// `publish`.
    Publish(PublishResult),
    /// `presence`.
    Presence(PresenceResult),
    /// `presence_stats`.
    PresenceStats(PresenceStatsResult),
    /// `history`.
    History(HistoryResult),
    /// `ping`.
    Ping(PingResult),
    /// `rpc`.
    Rpc(RpcResult),
    /// `refresh`.
    Refresh(RefreshResult),
    /// `sub_refresh`.
    SubRefresh(SubRefreshResult),
}

impl ReplyBody {
    /// The JSON field that carries this body.
    pub const fn field(&self) -> &'static str {
        match self {
            ReplyBody::Error(_) => "error",
            ReplyBody::Connect(_) => "connect",
            ReplyBody::Subscribe(_) => "subscribe",
            ReplyBody::Unsubscribe(_) => "unsubscribe",
            ReplyBody::Publish(_) => "publish",
            ReplyBody::Presence(_) => "presence",
            ReplyBody::PresenceStats(_) => "presence_stats",
            ReplyBody::History(_) => "history",
            ReplyBody::Ping(_) => "ping",
            ReplyBody::Rpc(_) => "rpc",
            ReplyBody::Refresh(_) => "refresh",
            ReplyBody::SubRefresh(_) => "sub_refresh",
        }
    }
}

macro_rules! reply_body_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(
            impl From<$ty> for ReplyBody {
                fn from(result: $ty) -> Self {
                    ReplyBody::$variant(result)
                }
            }
        )*
    };
}

reply_body_from!(
    Error(ProtocolError),
    Connect(ConnectResult),
    Subscribe(SubscribeResult),
    Unsubscribe(UnsubscribeResult),
    Publish(PublishResult),
    Presence(PresenceResult),
    PresenceStats(PresenceStatsResult),
    History(HistoryResult),
    Ping(PingResult),
    Rpc(RpcResult),
    Refresh(RefreshResult),
    SubRefresh(SubRefreshResult),
);

impl From<ErrorCode> for ReplyBody {
    fn from(code: ErrorCode) -> Self {
        ReplyBody::Error(code.into())
    }
}

/// The reply to command `id`.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The command's id, echoed (> 0 for every command that expects a reply).
    pub id: u32,
    /// Error or result.
    pub body: ReplyBody,
}

impl Reply {
    /// A reply to command `id` with `body` (any result type, a [`ProtocolError`] or an
    /// [`ErrorCode`]).
    pub fn new(id: u32, body: impl Into<ReplyBody>) -> Self {
        Self {
            id,
            body: body.into(),
        }
    }

    /// An error reply to command `id`.
    pub fn error(id: u32, error: impl Into<ProtocolError>) -> Self {
        Self {
            id,
            body: ReplyBody::Error(error.into()),
        }
    }

    /// The reply as one message.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.id != 0 {
            map.serialize_entry("id", &self.id)?;
        }
        let field = self.body.field();
        match &self.body {
            ReplyBody::Error(error) => map.serialize_entry(field, error)?,
            ReplyBody::Connect(result) => map.serialize_entry(field, result)?,
            ReplyBody::Subscribe(result) => map.serialize_entry(field, result)?,
            ReplyBody::Unsubscribe(result) => map.serialize_entry(field, result)?,
            ReplyBody::Publish(result) => map.serialize_entry(field, result)?,
            ReplyBody::Presence(result) => map.serialize_entry(field, result)?,
            ReplyBody::PresenceStats(result) => map.serialize_entry(field, result)?,
            ReplyBody::History(result) => map.serialize_entry(field, result)?,
            ReplyBody::Ping(result) => map.serialize_entry(field, result)?,
            ReplyBody::Rpc(result) => map.serialize_entry(field, result)?,
            ReplyBody::Refresh(result) => map.serialize_entry(field, result)?,
            ReplyBody::SubRefresh(result) => map.serialize_entry(field, result)?,
        }
        map.end()
    }
}

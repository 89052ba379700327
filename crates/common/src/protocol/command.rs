//! Commands: what a client sends, `{"id":N,"<method>":{…}}`.
//!
//! `client.proto` has no `oneof`: the JSON field name is the discriminator and the server
//! takes the first non-null request field in schema order (connect, subscribe, unsubscribe,
//! publish, presence, presence_stats, history, ping, send, rpc, refresh, sub_refresh).
//! Decoding is forgiving where the protocol is: unknown fields are ignored (the SDK sends
//! feature fields such as `flag`), and a command with no known method decodes to
//! [`Method::Unknown`] so the gateway can answer it. Channels stay plain strings here, so a
//! bad channel name is answered with error 107 under the command's id rather than failing
//! the whole frame; parse them with [`ChannelName::parse`](crate::channel::ChannelName::parse).
//!
//! How the gateway reads a command (mirroring the reference server):
//! - [`Command::is_pong`] (`{}`): a pong to the last ping;
//! - `id == 0` with any method but `send`: a malformed frame (disconnect 3501);
//! - [`Method::Unknown`] with an id: a method this server does not know.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::base::StreamPosition;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// `connect`: authenticate and open the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// The access token (JWT).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Custom data: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Server-side subscriptions to recover, keyed by channel.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, SubscribeRequest>,
    /// Client (SDK) name, such as `js`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Application version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Headers, for transports that cannot send real ones.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Connection features the client supports (bitmask); Herald enables none.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub flag: i64,
}

/// `subscribe`: subscribe to a channel, optionally recovering from a position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// The channel (unparsed; see the module docs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// Subscription token, when the channel needs one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Recover missed publications since `epoch`/`offset`.
    #[serde(skip_serializing_if = "is_false")]
    pub recover: bool,
    /// Epoch of the last publication seen.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Offset of the last publication seen.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Custom data: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Ask the server to check the position.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Ask for a recoverable subscription.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    #[serde(skip_serializing_if = "is_false")]
    pub join_leave: bool,
    /// Delta compression format requested (Herald sends full publications).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub delta: String,
    /// Subscription features the client supports (bitmask); Herald enables none.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub flag: i64,
}

impl SubscribeRequest {
    /// The position to recover from, when the client asked to recover.
    pub fn recover_since(&self) -> Option<StreamPosition> {
        self.recover.then(|| StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        })
    }
}

/// `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnsubscribeRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// `publish`: publish into a channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// The payload: raw JSON (required; a publish without data is a bad request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// `presence`: who is subscribed to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// `presence_stats`: how many are subscribed to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceStatsRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
}

/// `history`: a page of a channel's history. Also the body of the server API's
/// `/api/history`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// How many publications: 0 returns only the stream position, a negative value all
    /// (up to the server's cap).
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub limit: i32,
    /// Only publications after this position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[serde(skip_serializing_if = "is_false")]
    pub reverse: bool,
}

/// `ping`: `{}`, answered with `{"id":N,"ping":{}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PingRequest {}

/// `send`: a message to the server that expects no reply (sent without an id).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendRequest {
    /// The payload: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// `rpc`: call a server method.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcRequest {
    /// The arguments: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// The method name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
}

/// `refresh`: a new connection token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// The new access token.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// `sub_refresh`: a new subscription token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubRefreshRequest {
    /// The channel.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// The new subscription token.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// The request a command carries.
#[derive(Debug, Clone)]
pub enum Method {
    /// `connect`.
    Connect(ConnectRequest),
    /// `subscribe`.
    Subscribe(SubscribeRequest),
    /// `unsubscribe`.
    Unsubscribe(UnsubscribeRequest),
    /// `publish`.
    Publish(PublishRequest),
    /// `presence`.
    Presence(PresenceRequest),
    /// `presence_stats`.
    PresenceStats(PresenceStatsRequest),
    /// `history`.
    History(HistoryRequest),
    /// `ping`.
    Ping(PingRequest),
    /// `send`.
    Send(SendRequest),
    /// `rpc`.
    Rpc(RpcRequest),
    /// `refresh`.
    Refresh(RefreshRequest),
    /// `sub_refresh`.
    SubRefresh(SubRefreshRequest),
    /// No known request field was set: `{}` (a pong) or a method this server does not
    /// know. Encodes as nothing.
    Unknown,
}

impl Method {
    /// The JSON field of the method, or `"unknown"`; stable, for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Method::Connect(_) => "connect",
            Method::Subscribe(_) => "subscribe",
            Method::Unsubscribe(_) => "unsubscribe",
            Method::Publish(_) => "publish",
            Method::Presence(_) => "presence",
            Method::PresenceStats(_) => "presence_stats",
            Method::History(_) => "history",
            Method::Ping(_) => "ping",
            Method::Send(_) => "send",
            Method::Rpc(_) => "rpc",
            Method::Refresh(_) => "refresh",
            Method::SubRefresh(_) => "sub_refresh",
            Method::Unknown => "unknown",
        }
    }

    /// The channel the request names, for requests about a channel.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Method::Subscribe(r) => Some(&r.channel),
            Method::Unsubscribe(r) => Some(&r.channel),
            Method::Publish(r) => Some(&r.channel),
            Method::Presence(r) => Some(&r.channel),
            Method::PresenceStats(r) => Some(&r.channel),
            Method::History(r) => Some(&r.channel),
            Method::SubRefresh(r) => Some(&r.channel),
            Method::Connect(_)
            | Method::Ping(_)
            | Method::Send(_)
            | Method::Rpc(_)
            | Method::Refresh(_)
            | Method::Unknown => None,
        }
    }
}

/// A client command: an id (0 for `send` and the pong) and a request.
#[derive(Debug, Clone)]
pub struct Command {
    /// Chosen by the client, echoed in the reply; 0 when no reply is expected.
    pub id: u32,
    /// The request.
    pub method: Method,
}

impl Command {
    /// A command with id `id`.
    pub fn new(id: u32, method: Method) -> Self {
        Self { id, method }
    }

    /// The pong `{}`: no id and no known method.
    pub fn pong() -> Self {
        Self {
            id: 0,
            method: Method::Unknown,
        }
    }

    /// Whether this is a pong: an empty command (no id, no known method).
    pub fn is_pong(&self) -> bool {
        self.id == 0 && matches!(self.method, Method::Unknown)
    }

    /// Decodes one command (one line of a frame). Unknown fields are ignored.
    pub fn decode(message: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(message)
    }

    /// The command as one message.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.id != 0 {
            map.serialize_entry("id", &self.id)?;
        }
        let field = self.method.name();
        match &self.method {
            Method::Connect(r) => map.serialize_entry(field, r)?,
            Method::Subscribe(r) => map.serialize_entry(field, r)?,
            Method::Unsubscribe(r) => map.serialize_entry(field, r)?,
            Method::Publish(r) => map.serialize_entry(field, r)?,
            Method::Presence(r) => map.serialize_entry(field, r)?,
            Method::PresenceStats(r) => map.serialize_entry(field, r)?,
            Method::History(r) => map.serialize_entry(field, r)?,
            Method::Ping(r) => map.serialize_entry(field, r)?,
            Method::Send(r) => map.serialize_entry(field, r)?,
            Method::Rpc(r) => map.serialize_entry(field, r)?,
            Method::Refresh(r) => map.serialize_entry(field, r)?,
            Method::SubRefresh(r) => map.serialize_entry(field, r)?,
            Method::Unknown => {}
        }
        map.end()
    }
}

/// A command as it appears on the wire: every field optional.
#[derive(Deserialize)]
struct CommandWire {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    connect: Option<ConnectRequest>,
    #[serde(default)]
    subscribe: Option<SubscribeRequest>,
    #[serde(default)]
    unsubscribe: Option<UnsubscribeRequest>,
    #[serde(default)]
    publish: Option<PublishRequest>,
    #[serde(default)]
    presence: Option<PresenceRequest>,
    #[serde(default)]
    presence_stats: Option<PresenceStatsRequest>,
    #[serde(default)]
    history: Option<HistoryRequest>,
    #[serde(default)]
    ping: Option<PingRequest>,
    #[serde(default)]
    send: Option<SendRequest>,
    #[serde(default)]
    rpc: Option<RpcRequest>,
    #[serde(default)]
    refresh: Option<RefreshRequest>,
    #[serde(default)]
    sub_refresh: Option<SubRefreshRequest>,
}

impl From<CommandWire> for Command {
    /// Takes the first request field set, in `client.proto` order.
    fn from(wire: CommandWire) -> Self {
        let method = if let Some(r) = wire.connect {
            Method::Connect(r)
        } else if let Some(r) = wire.subscribe {
            Method::Subscribe(r)
        } else if let Some(r) = wire.unsubscribe {
            Method::Unsubscribe(r)
        } else if let Some(r) = wire.publish {
            Method::Publish(r)
        } else if let Some(r) = wire.presence {
            Method::Presence(r)
        } else if let Some(r) = wire.presence_stats {
            Method::PresenceStats(r)
        } else if let Some(r) = wire.history {
            Method::History(r)
        } else if let Some(r) = wire.ping {
            Method::Ping(r)
        } else if let Some(r) = wire.send {
            Method::Send(r)
        } else if let Some(r) = wire.rpc {
            Method::Rpc(r)
        } else if let Some(r) = wire.refresh {
            Method::Refresh(r)
        } else if let Some(r) = wire.sub_refresh {
            Method::SubRefresh(r)
        } else {
            Method::Unknown
        };
        Command {
            id: wire.id,
            method,
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::base::deserialize_object::<_, CommandWire>(deserializer).map(Command::from)
    }
}

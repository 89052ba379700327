//! [`ServerMessage`]: anything the server writes on a bidirectional connection, a reply
//! ([`Reply`]), a push (`{"push":{…}}`, [`Push`]) or the `{}` ping, and how a client decodes
//! one line of a frame into it.

#![warn(missing_docs)]

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::base::deserialize_object;
use super::codes::ProtocolError;
use super::push::{Envelope, Push};
use super::reply::{
    ConnectResult, HistoryResult, PingResult, PresenceResult, PresenceStatsResult, PublishResult,
    RefreshResult, Reply, ReplyBody, RpcResult, SubRefreshResult, SubscribeResult,
    UnsubscribeResult,
};

/// Anything the server writes on a bidirectional connection.
#[derive(Debug, Clone)]
pub enum ServerMessage {
    /// `{}`: a ping (answer with `{}` when the connect result said `pong`).
    Ping,
    /// A reply to a command.
    Reply(Reply),
    /// An asynchronous push, `{"push":{…}}`.
    Push(Push),
}

impl ServerMessage {
    /// Decodes one message (one line of a frame). Unknown fields are ignored.
    pub fn decode(message: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(message)
    }

    /// The message, encoded.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerMessage::Ping => serializer.serialize_map(Some(0))?.end(),
            ServerMessage::Reply(reply) => reply.serialize(serializer),
            ServerMessage::Push(push) => Envelope {
                push: push.as_push_ref(),
            }
            .serialize(serializer),
        }
    }
}

/// A server message as it appears on the wire: every field optional.
#[derive(Deserialize)]
struct ReplyWire {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    error: Option<ProtocolError>,
    #[serde(default)]
    push: Option<Push>,
    #[serde(default)]
    connect: Option<ConnectResult>,
    #[serde(default)]
    subscribe: Option<SubscribeResult>,
    #[serde(default)]
    unsubscribe: Option<UnsubscribeResult>,
    #[serde(default)]
    publish: Option<PublishResult>,
    #[serde(default)]
    presence: Option<PresenceResult>,
    #[serde(default)]
    presence_stats: Option<PresenceStatsResult>,
    #[serde(default)]
    history: Option<HistoryResult>,
    #[serde(default)]
    ping: Option<PingResult>,
    #[serde(default)]
    rpc: Option<RpcResult>,
    #[serde(default)]
    refresh: Option<RefreshResult>,
    #[serde(default)]
    sub_refresh: Option<SubRefreshResult>,
}

impl<'de> Deserialize<'de> for ServerMessage {
    /// A `push` wins; then `error`; then the first result in `client.proto` order; a
    /// message with none of them and no id is a ping.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire: ReplyWire = deserialize_object(deserializer)?;
        if let Some(push) = wire.push {
            return Ok(ServerMessage::Push(push));
        }
        let body = if let Some(error) = wire.error {
            ReplyBody::Error(error)
        } else if let Some(result) = wire.connect {
            ReplyBody::Connect(result)
        } else if let Some(result) = wire.subscribe {
            ReplyBody::Subscribe(result)
        } else if let Some(result) = wire.unsubscribe {
            ReplyBody::Unsubscribe(result)
        } else if let Some(result) = wire.publish {
            ReplyBody::Publish(result)
        } else if let Some(result) = wire.presence {
            ReplyBody::Presence(result)
        } else if let Some(result) = wire.presence_stats {
            ReplyBody::PresenceStats(result)
        } else if let Some(result) = wire.history {
            ReplyBody::History(result)
        } else if let Some(result) = wire.ping {
            ReplyBody::Ping(result)
        } else if let Some(result) = wire.rpc {
            ReplyBody::Rpc(result)
        } else if let Some(result) = wire.refresh {
            ReplyBody::Refresh(result)
        } else if let Some(result) = wire.sub_refresh {
            ReplyBody::SubRefresh(result)
        } else if wire.id == 0 {
            return Ok(ServerMessage::Ping);
        } else {
            return Err(serde::de::Error::custom(format!(
                "reply {} carries neither a result nor an error",
                wire.id
            )));
        };
        Ok(ServerMessage::Reply(Reply { id: wire.id, body }))
    }
}

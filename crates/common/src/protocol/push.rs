//! Asynchronous pushes: server-to-client messages that answer no command (a `Reply` with
//! no `id` and a `push` field).
//!
//! ```json
//! {"push":{"channel":"chat:42","pub":{"data":{"text":"hi"},"offset":18,"info":{"user":"…","client":"…"}}}}
//! {"push":{"channel":"chat:42","join":{"info":{"user":"…","client":"…","conn_info":{"name":"alice"}}}}}
//! {"push":{"channel":"chat:42","leave":{"info":{…}}}}
//! {"push":{"channel":"notifications#…","subscribe":{"recoverable":true,"epoch":"e","offset":4}}}
//! {"push":{"channel":"chat:42","unsubscribe":{"code":2500,"reason":"insufficient state"}}}
//! {"push":{"message":{"data":{…}}}}
//! {"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}
//! {"push":{"connect":{…}}}   {"push":{"refresh":{"expires":true,"ttl":600}}}
//! ```
//! Fan-out pushes are encoded once per publication and shared by every subscriber:
//! [`encode_publication_push`], [`encode_join_push`] and [`encode_leave_push`] borrow their
//! parts instead of building an owned [`Push`].

#![warn(missing_docs)]

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::base::{ClientInfo, Publication, StreamPosition};
/// The unsubscribe and disconnect bodies live with their codes; they are pushes too.
pub use super::codes::{Disconnect, Unsubscribe};
use super::reply::ConnectResult;
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

/// `Subscribe` push: the server subscribed this connection to a channel (server-side
/// subscription, such as `notifications#<user id>` subscribed after connect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscribe {
    /// The channel keeps history, so the client may recover it.
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Stream epoch.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Top offset of the stream.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// The server checks the client's position.
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom subscription data: raw JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl Subscribe {
    /// A server-side subscription push at `position` (recoverable and positioned when the
    /// channel has history).
    pub fn at(position: StreamPosition, recoverable: bool) -> Self {
        Self {
            recoverable,
            epoch: position.epoch,
            offset: position.offset,
            positioned: recoverable,
            data: None,
        }
    }
}

/// `Message` push: an asynchronous message to this connection (no channel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// The payload: raw JSON.
    pub data: Box<RawValue>,
}

/// `Refresh` push: new connection expiry, for unidirectional transports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Refresh {
    /// The connection expires.
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until it does.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// One push, owned: what the server may send outside replies.
#[derive(Debug, Clone)]
pub enum Push {
    /// `pub`: a publication in a subscribed channel.
    Publication {
        /// The channel.
        channel: ChannelName,
        /// The publication.
        publication: Publication,
    },
    /// `join`: a client subscribed to a channel with join/leave enabled.
    Join {
        /// The channel.
        channel: ChannelName,
        /// Who joined.
        info: ClientInfo,
    },
    /// `leave`: a client left a channel with join/leave enabled.
    Leave {
        /// The channel.
        channel: ChannelName,
        /// Who left.
        info: ClientInfo,
    },
    /// `unsubscribe`: the server ended a subscription.
    Unsubscribe {
        /// The channel.
        channel: ChannelName,
        /// Code and reason.
        unsubscribe: Unsubscribe,
    },
    /// `subscribe`: the server subscribed this connection to a channel.
    Subscribe {
        /// The channel.
        channel: ChannelName,
        /// Stream position and flags.
        subscribe: Subscribe,
    },
    /// `message`: an asynchronous message to this connection.
    Message(Message),
    /// `connect`: connection result, for unidirectional transports.
    Connect(ConnectResult),
    /// `disconnect`: the server is closing the connection.
    Disconnect(Disconnect),
    /// `refresh`: new connection expiry, for unidirectional transports.
    Refresh(Refresh),
}

impl Push {
    /// The channel the push is about, when it is about one.
    pub fn channel(&self) -> Option<&ChannelName> {
        match self {
            Push::Publication { channel, .. }
            | Push::Join { channel, .. }
            | Push::Leave { channel, .. }
            | Push::Unsubscribe { channel, .. }
            | Push::Subscribe { channel, .. } => Some(channel),
            Push::Message(_) | Push::Connect(_) | Push::Disconnect(_) | Push::Refresh(_) => None,
        }
    }

    /// The push as a complete message, `{"push":{…}}`.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Envelope {
            push: self.as_push_ref(),
        })
    }

    pub(crate) fn as_push_ref(&self) -> PushRef<'_> {
        match self {
            Push::Publication {
                channel,
                publication,
            } => PushRef::Publication(channel.as_str(), publication),
            Push::Join { channel, info } => PushRef::Join(channel.as_str(), info),
            Push::Leave { channel, info } => PushRef::Leave(channel.as_str(), info),
            Push::Unsubscribe {
                channel,
                unsubscribe,
            } => PushRef::Unsubscribe(channel.as_str(), unsubscribe),
            Push::Subscribe { channel, subscribe } => {
                PushRef::Subscribe(channel.as_str(), subscribe)
            }
            Push::Message(message) => PushRef::Message(message),
            Push::Connect(connect) => PushRef::Connect(connect),
            Push::Disconnect(disconnect) => PushRef::Disconnect(disconnect),
            Push::Refresh(refresh) => PushRef::Refresh(refresh),
        }
    }
}

/// Encodes the publication push `{"push":{"channel":…,"pub":{…}}}` once, for every
/// subscriber of `channel`.
pub fn encode_publication_push(
    channel: &ChannelName,
    publication: &Publication,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        push: PushRef::Publication(channel.as_str(), publication),
    })
}

/// Encodes the join push `{"push":{"channel":…,"join":{"info":{…}}}}` once.
pub fn encode_join_push(
    channel: &ChannelName,
    info: &ClientInfo,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        push: PushRef::Join(channel.as_str(), info),
    })
}

/// Encodes the leave push `{"push":{"channel":…,"leave":{"info":{…}}}}` once.
pub fn encode_leave_push(
    channel: &ChannelName,
    info: &ClientInfo,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        push: PushRef::Leave(channel.as_str(), info),
    })
}

/// `{"push": …}`: the push envelope (a `Reply` with only `push` set).
#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    pub(crate) push: PushRef<'a>,
}

/// A push made of borrowed parts; the one place that writes a push object.
pub(crate) enum PushRef<'a> {
    Publication(&'a str, &'a Publication),
    Join(&'a str, &'a ClientInfo),
    Leave(&'a str, &'a ClientInfo),
    Unsubscribe(&'a str, &'a Unsubscribe),
    Subscribe(&'a str, &'a Subscribe),
    Message(&'a Message),
    Connect(&'a ConnectResult),
    Disconnect(&'a Disconnect),
    Refresh(&'a Refresh),
}

/// `{"info": …}`: the body of join and leave pushes.
#[derive(Serialize)]
struct InfoRef<'a> {
    info: &'a ClientInfo,
}

impl Serialize for PushRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            PushRef::Publication(channel, publication) => {
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("pub", publication)?;
            }
            PushRef::Join(channel, info) => {
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("join", &InfoRef { info })?;
            }
            PushRef::Leave(channel, info) => {
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("leave", &InfoRef { info })?;
            }
            PushRef::Unsubscribe(channel, unsubscribe) => {
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("unsubscribe", unsubscribe)?;
            }
            PushRef::Subscribe(channel, subscribe) => {
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("subscribe", subscribe)?;
            }
            PushRef::Message(message) => map.serialize_entry("message", message)?,
            PushRef::Connect(connect) => map.serialize_entry("connect", connect)?,
            PushRef::Disconnect(disconnect) => map.serialize_entry("disconnect", disconnect)?,
            PushRef::Refresh(refresh) => map.serialize_entry("refresh", refresh)?,
        }
        map.end()
    }
}

impl Serialize for Push {
    /// The push object (without the `{"push": …}` envelope).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_push_ref().serialize(serializer)
    }
}

/// `{"info": …}` of join and leave pushes, when decoding.
#[derive(Deserialize)]
struct InfoWire {
    info: ClientInfo,
}

/// A push object as it appears on the wire: every field optional.
#[derive(Deserialize)]
pub(crate) struct PushWire {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, rename = "pub")]
    publication: Option<Publication>,
    #[serde(default)]
    join: Option<InfoWire>,
    #[serde(default)]
    leave: Option<InfoWire>,
    #[serde(default)]
    unsubscribe: Option<Unsubscribe>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    subscribe: Option<Subscribe>,
    #[serde(default)]
    connect: Option<ConnectResult>,
    #[serde(default)]
    disconnect: Option<Disconnect>,
    #[serde(default)]
    refresh: Option<Refresh>,
}

/// Why a push object could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// A channel push without a valid `channel`.
    #[error("push without a valid channel")]
    MissingChannel,
    /// None of the known push fields was set.
    #[error("push of an unknown type")]
    Unknown,
}

impl TryFrom<PushWire> for Push {
    type Error = PushError;

    /// Takes the first push field set, in `client.proto` order.
    fn try_from(wire: PushWire) -> Result<Self, Self::Error> {
        let channel = || {
            wire.channel
                .clone()
                .and_then(|raw| ChannelName::parse(raw).ok())
                .ok_or(PushError::MissingChannel)
        };
        if let Some(publication) = wire.publication {
            return Ok(Push::Publication {
                channel: channel()?,
                publication,
            });
        }
        if let Some(join) = wire.join {
            return Ok(Push::Join {
                channel: channel()?,
                info: join.info,
            });
        }
        if let Some(leave) = wire.leave {
            return Ok(Push::Leave {
                channel: channel()?,
                info: leave.info,
            });
        }
        if let Some(unsubscribe) = wire.unsubscribe {
            return Ok(Push::Unsubscribe {
                channel: channel()?,
                unsubscribe,
            });
        }
        if let Some(message) = wire.message {
            return Ok(Push::Message(message));
        }
        if let Some(subscribe) = wire.subscribe {
            return Ok(Push::Subscribe {
                channel: channel()?,
                subscribe,
            });
        }
        if let Some(connect) = wire.connect {
            return Ok(Push::Connect(connect));
        }
        if let Some(disconnect) = wire.disconnect {
            return Ok(Push::Disconnect(disconnect));
        }
        if let Some(refresh) = wire.refresh {
            return Ok(Push::Refresh(refresh));
        }
        Err(PushError::Unknown)
    }
}

impl<'de> Deserialize<'de> for Push {
    /// Decodes a push object (without the envelope); unknown fields are ignored.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire: PushWire = super::base::deserialize_object(deserializer)?;
        Push::try_from(wire).map_err(serde::de::Error::custom)
    }
}

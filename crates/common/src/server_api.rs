//! The gateway's server API (`/api/*`, design section 2): Centrifugo-compatible JSON bodies
//! for the user's own backend, authenticated with `X-API-Key`.
//!
//! Every answer is HTTP 200 with either `{"result":{…}}` or, for a protocol-level failure,
//! `{"error":{"code":102,"message":"unknown channel"}}` ([`ApiResponse`], whose error is
//! the client protocol's [`ProtocolError`]). A missing or wrong key is HTTP 401 instead.
//! `/api/presence`, `/api/presence_stats` and `/api/history` take the same bodies as the
//! client commands and return the same results, so those types are re-exported here.
//! Channels and users stay plain strings so that a bad one is answered with error 107.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::{Disconnect, ErrorCode};
pub use crate::protocol::{
    HistoryRequest, HistoryResult, PresenceRequest, PresenceResult, PresenceStatsRequest,
    PresenceStatsResult, ProtocolError,
};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A server API answer: `{"result":…}` or `{"error":{"code","message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiResponse<T> {
    /// Success.
    Result(T),
    /// A protocol-level failure (still HTTP 200).
    Error(ProtocolError),
}

impl<T> ApiResponse<T> {
    /// An error answer with the code's documented message.
    pub fn error(code: ErrorCode) -> Self {
        ApiResponse::Error(code.into())
    }

    /// The answer as a `Result`.
    pub fn into_result(self) -> Result<T, ProtocolError> {
        match self {
            ApiResponse::Result(result) => Ok(result),
            ApiResponse::Error(error) => Err(error),
        }
    }
}

impl<T> From<Result<T, ProtocolError>> for ApiResponse<T> {
    fn from(result: Result<T, ProtocolError>) -> Self {
        match result {
            Ok(result) => ApiResponse::Result(result),
            Err(error) => ApiResponse::Error(error),
        }
    }
}

/// `/api/publish`: publish `data` into `channel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The channel.
    pub channel: String,
    /// The payload: raw JSON.
    pub data: Box<RawValue>,
    /// A repeated publish with the same key (per channel, within a few minutes) is a
    /// no-op that answers the first publish's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Publication tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Do not keep the publication in the channel's history.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_history: bool,
}

/// Result of `/api/publish`: where the publication landed in the channel's stream.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublishResult {
    /// The publication's offset.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// The stream's epoch.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
}

/// `/api/broadcast`: publish the same `data` into many channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastRequest {
    /// The channels.
    pub channels: Vec<String>,
    /// The payload: raw JSON.
    pub data: Box<RawValue>,
    /// Idempotency key, applied per channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Publication tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Do not keep the publications in history.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_history: bool,
}

/// Result of `/api/broadcast`: one answer per channel, in request order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BroadcastResult {
    /// Per-channel answers.
    #[serde(default)]
    pub responses: Vec<ApiResponse<PublishResult>>,
}

/// `/api/disconnect`: disconnect a user's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DisconnectRequest {
    /// The user.
    pub user: String,
    /// Only this client, when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
    /// Only this session, when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Client ids to keep connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whitelist: Vec<String>,
    /// Custom code and reason (default: 3503 force disconnect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<Disconnect>,
}

/// Result of calls that return nothing (`/api/disconnect`): `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmptyResult {}

/// `/api/channels`: active channels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelsRequest {
    /// Glob pattern the channels must match (`*` any run, `?` one character); all when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pattern: String,
}

/// One entry of [`ChannelsResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Connections subscribed.
    #[serde(default)]
    pub num_clients: u32,
}

/// Result of `/api/channels`: channel → info (always written).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelsResult {
    /// The channels.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelInfo>,
}

/// `/api/info`: `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InfoRequest {}

/// One gateway node in [`InfoResult`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique id of the running process.
    pub uid: String,
    /// Node name.
    pub name: String,
    /// Herald version.
    #[serde(default)]
    pub version: String,
    /// Connections.
    #[serde(default)]
    pub num_clients: u32,
    /// Distinct users.
    #[serde(default)]
    pub num_users: u32,
    /// Channels with subscribers.
    #[serde(default)]
    pub num_channels: u32,
    /// Seconds since start.
    #[serde(default)]
    pub uptime: u64,
}

/// Result of `/api/info`: every known node (always written).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InfoResult {
    /// The nodes.
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::{Value, json};

    use super::*;

    fn same(actual: &impl Serialize, expected: &str) {
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(serde_json::to_value(actual).unwrap(), expected);
    }

    #[test]
    fn publish_request_and_result_have_the_design_shape() {
        let request: PublishRequest = serde_json::from_str(
            r#"{"channel":"chat:42","data":{"text":"hello"},"idempotency_key":"e1","b64data":"x"}"#,
        )
        .unwrap();
        assert_eq!(request.channel, "chat:42");
        assert_eq!(request.data.get(), r#"{"text":"hello"}"#);
        assert_eq!(request.idempotency_key.as_deref(), Some("e1"));
        same(
            &request,
            r#"{"channel":"chat:42","data":{"text":"hello"},"idempotency_key":"e1"}"#,
        );
        let ok = ApiResponse::Result(PublishResult {
            offset: 7,
            epoch: "x7".to_owned(),
        });
        same(&ok, r#"{"result":{"offset":7,"epoch":"x7"}}"#);
        assert!(serde_json::from_str::<PublishRequest>(r#"{"channel":"c"}"#).is_err());
    }

    #[test]
    fn protocol_failures_use_the_protocol_error() {
        let unknown: ApiResponse<PublishResult> = ApiResponse::error(ErrorCode::UnknownChannel);
        same(
            &unknown,
            r#"{"error":{"code":102,"message":"unknown channel"}}"#,
        );
        let back: ApiResponse<PublishResult> =
            serde_json::from_str(r#"{"error":{"code":102,"message":"unknown channel"}}"#).unwrap();
        assert_eq!(
            back.into_result().unwrap_err().error_code(),
            Some(ErrorCode::UnknownChannel)
        );
    }

    #[test]
    fn broadcast_answers_per_channel() {
        let result = BroadcastResult {
            responses: vec![
                ApiResponse::Result(PublishResult {
                    offset: 1,
                    epoch: "a".to_owned(),
                }),
                Err(ErrorCode::BadRequest.to_error()).into(),
            ],
        };
        same(
            &ApiResponse::Result(result),
            r#"{"result":{"responses":[{"result":{"offset":1,"epoch":"a"}},{"error":{"code":107,"message":"bad request"}}]}}"#,
        );
        let request: BroadcastRequest =
            serde_json::from_str(r#"{"channels":["tasks","chat:1"],"data":{"n":1}}"#).unwrap();
        assert_eq!(request.channels, ["tasks", "chat:1"]);
    }

    #[test]
    fn disconnect_channels_and_info_shapes() {
        let request: DisconnectRequest = serde_json::from_str(
            r#"{"user":"u1","disconnect":{"code":4000,"reason":"bye"},"whitelist":["c1"]}"#,
        )
        .unwrap();
        assert_eq!(request.disconnect.unwrap().code, 4000);
        assert_eq!(request.whitelist, ["c1"]);
        same(&ApiResponse::Result(EmptyResult {}), r#"{"result":{}}"#);

        let channels = ChannelsResult {
            channels: BTreeMap::from([("tasks".to_owned(), ChannelInfo { num_clients: 3 })]),
        };
        same(&channels, r#"{"channels":{"tasks":{"num_clients":3}}}"#);
        same(&ChannelsResult::default(), r#"{"channels":{}}"#);

        let info = InfoResult {
            nodes: vec![NodeInfo {
                uid: "n1".to_owned(),
                name: "gw-1".to_owned(),
                ..NodeInfo::default()
            }],
        };
        same(
            &info,
            r#"{"nodes":[{"uid":"n1","name":"gw-1","version":"","num_clients":0,"num_users":0,"num_channels":0,"uptime":0}]}"#,
        );
        assert_eq!(
            serde_json::from_value::<InfoRequest>(json!({})).unwrap(),
            InfoRequest {}
        );
    }

    #[test]
    fn presence_and_history_reuse_the_client_protocol_shapes() {
        let request: HistoryRequest =
            serde_json::from_str(r#"{"channel":"chat:1","limit":2}"#).unwrap();
        assert_eq!(request.limit, 2);
        same(
            &ApiResponse::Result(PresenceStatsResult {
                num_clients: 0,
                num_users: 0,
            }),
            r#"{"result":{"num_clients":0,"num_users":0}}"#,
        );
    }
}

//! The Centrifugo client protocol v2, JSON variant.
//!
//! `bytes` fields of `client.proto` (`data`, `info`, `conn_info`, `chan_info`) carry raw
//! embedded JSON, so they are [`RawValue`]s here: Herald never re-encodes a user's payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Who published or joined: `ClientInfo` in `client.proto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The user id (JWT `sub`); empty for anonymous or server-side publications.
    #[serde(default)]
    pub user: String,
    /// The client (connection) id.
    #[serde(default)]
    pub client: String,
    /// Connection info: raw JSON, for Herald `{"name":"<username>"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_info: Option<Box<RawValue>>,
    /// Channel info: raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chan_info: Option<Box<RawValue>>,
}

/// One message in a channel: `Publication` in `client.proto`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publication {
    /// Position in the channel's stream; 0 (omitted) when the channel keeps no history.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// The payload: raw JSON.
    pub data: Box<RawValue>,
    /// Who published it, when a client did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// Free-form string tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A position in a channel's stream: the epoch names one incarnation of the history, the
/// offset counts publications within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamPosition {
    /// Offset of the last publication seen (0 = none).
    #[serde(default)]
    pub offset: u64,
    /// Epoch of the stream.
    #[serde(default)]
    pub epoch: String,
}

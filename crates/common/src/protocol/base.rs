//! What several protocol messages carry: who published ([`ClientInfo`]), a publication
//! ([`Publication`]) and a position in a channel's stream ([`StreamPosition`]), plus the
//! decoding rule every top-level message follows ([`deserialize_object`]). Uses no other
//! protocol module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Deserializes `T` from a JSON object only. Derived struct impls also accept an array
/// (fields by position), which no protocol message is; top-level messages go through this.
pub(crate) fn deserialize_object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectVisitor<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Compares two optional raw JSON values by their text.
fn raw_eq(a: &Option<Box<RawValue>>, b: &Option<Box<RawValue>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.get() == b.get(),
        (None, None) => true,
        _ => false,
    }
}

/// Who published or joined: `ClientInfo` in `client.proto`. `user` and `client` are
/// always written (possibly empty), as the reference encoder does.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Equal when the ids are equal and the raw JSON infos are the same text.
impl PartialEq for ClientInfo {
    fn eq(&self, other: &Self) -> bool {
        self.user == other.user
            && self.client == other.client
            && raw_eq(&self.conn_info, &other.conn_info)
            && raw_eq(&self.chan_info, &other.chan_info)
    }
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

/// Equal when every field is, comparing the payload's raw JSON text.
impl PartialEq for Publication {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.data.get() == other.data.get()
            && self.info == other.info
            && self.tags == other.tags
    }
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

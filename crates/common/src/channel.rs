//! Channel names and the namespaces they belong to.
//!
//! A channel name is at most 255 bytes of `[A-Za-z0-9_\-:#.@=]`. The part before the first
//! `:` is the namespace (`chat:lobby` is in `chat`); a `#` introduces a user boundary
//! (`notifications#<user id>` may only ever reach that user).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Why a string is not a channel name. Clients see these as protocol error 107.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than [`MAX_CHANNEL_LEN`] bytes.
    #[error("channel name is longer than 255 bytes")]
    TooLong,
    /// The name contains a byte outside `[A-Za-z0-9_\-:#.@=]`.
    #[error("channel name contains a character outside [A-Za-z0-9_-:#.@=]")]
    BadCharacter,
}

/// A validated channel name. The only way to build one is [`ChannelName::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    /// Parses `raw` into a channel name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ChannelNameError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if raw.len() > MAX_CHANNEL_LEN {
            return Err(ChannelNameError::TooLong);
        }
        if !raw.bytes().all(is_channel_byte) {
            return Err(ChannelNameError::BadCharacter);
        }
        Ok(Self(raw))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the part before the first `:`, or `None` for a channel without one
    /// (such as `tasks`). For `notifications#<id>` the namespace is the part before `#`.
    pub fn namespace(&self) -> Option<&str> {
        let end = self.0.find([':', '#'])?;
        Some(&self.0[..end])
    }

    /// The user boundary: for `notifications#<user id>` this is `Some("<user id>")`.
    pub fn user_boundary(&self) -> Option<&str> {
        self.0.split_once('#').map(|(_, user)| user)
    }
}

fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'#' | b'.' | b'@' | b'=')
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

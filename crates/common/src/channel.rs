//! Channel names and the namespaces they belong to (design section 3).
//!
//! A channel name is at most 255 bytes of `[A-Za-z0-9_\-:#.@=]`; anything else is protocol
//! error 107 (bad request). The part before the first `:` or `#` is the namespace
//! (`chat:lobby` is in `chat`, `notifications#<id>` in `notifications`); a `#` introduces a
//! user boundary: `notifications#<user id>` may only ever reach that user.
//!
//! The design's default channels are built with typed constructors
//! ([`ChannelName::chat`], [`ChannelName::tasks`], [`ChannelName::notifications`],
//! [`ChannelName::public`]) and
//! recognised with [`ChannelName::kind`], so the gateway applies the permission table of
//! section 3 with a `match` instead of string matching:
//!
//! | [`ChannelKind`] | subscribe | publish | history | presence |
//! |---|---|---|---|---|
//! | `Chat { room }` | any signed-in user | any subscriber | yes | yes, join/leave |
//! | `Tasks` | any signed-in user | server only | yes | no |
//! | `Notifications { user }` | server-side only | server only | yes | no |
//! | `Public { name }` | any signed-in user; anonymous readers when configured | server only | yes | no |
//! | `Other` | not a default channel: unknown unless configured | | | |

#![warn(missing_docs)]

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::UserId;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Namespace of the chat rooms: `chat:{room}`.
pub const CHAT_NAMESPACE: &str = "chat";

/// The task board's channel (no namespace).
pub const TASKS_CHANNEL: &str = "tasks";

/// Namespace of the per-user notification feeds: `notifications#{user id}`.
pub const NOTIFICATIONS_NAMESPACE: &str = "notifications";

/// Namespace of the public feeds: `public:{name}` (a live scoreboard, say), which anonymous
/// clients may read when the gateway allows it.
pub const PUBLIC_NAMESPACE: &str = "public";

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
    /// A chat room name passed to [`ChannelName::chat`] is empty or contains `#` (which
    /// would turn the room into a user-bounded channel).
    #[error("chat room name is empty or contains '#'")]
    BadRoom,
    /// A public feed name passed to [`ChannelName::public`] is empty or contains `#`.
    #[error("public channel name is empty or contains '#'")]
    BadPublicName,
}

/// A validated channel name. Built by [`ChannelName::parse`] or one of the typed
/// constructors; [`Display`](fmt::Display) and serde use the name itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

/// What a channel is, in terms of the design's channel table (section 3). Borrowed from a
/// [`ChannelName`] by [`ChannelName::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    /// `chat:{room}`: a chat room. `room` is non-empty and has no `#`.
    Chat {
        /// The room: everything after `chat:`.
        room: &'a str,
    },
    /// `tasks`: the task board feed.
    Tasks,
    /// `notifications#{user id}`: one user's notification feed; the suffix is the user's
    /// id in its canonical form.
    Notifications {
        /// The only user who may receive this channel.
        user: UserId,
    },
    /// `public:{name}`: a public feed. `name` is non-empty and has no `#`.
    Public {
        /// The feed: everything after `public:`.
        name: &'a str,
    },
    /// Any other valid name, including malformed variants of the default channels
    /// (`chat:`, `chat:room#x`, `notifications#not-a-uuid`, `tasks:x`, `public:`).
    Other,
}

impl ChannelName {
    /// Parses `raw` into a channel name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ChannelNameError> {
        let raw = raw.into();
        validate(&raw)?;
        Ok(Self(raw))
    }

    /// The chat room channel `chat:{room}`. The room must be non-empty, must not contain
    /// `#`, and the whole name must be a valid channel name.
    pub fn chat(room: &str) -> Result<Self, ChannelNameError> {
        if room.is_empty() || room.contains('#') {
            return Err(ChannelNameError::BadRoom);
        }
        let mut name = String::with_capacity(CHAT_NAMESPACE.len() + 1 + room.len());
        name.push_str(CHAT_NAMESPACE);
        name.push(':');
        name.push_str(room);
        Self::parse(name)
    }

    /// The public feed `public:{name}`. The name must be non-empty, must not contain `#`
    /// (public feeds have no user boundary), and the whole name must be a valid channel name.
    pub fn public(name: &str) -> Result<Self, ChannelNameError> {
        if name.is_empty() || name.contains('#') {
            return Err(ChannelNameError::BadPublicName);
        }
        Self::parse(format!("{PUBLIC_NAMESPACE}:{name}"))
    }

    /// The task board channel `tasks`.
    pub fn tasks() -> Self {
        Self(TASKS_CHANNEL.to_owned())
    }

    /// The notification feed of `user`: `notifications#{user id}`.
    pub fn notifications(user: &UserId) -> Self {
        Self(format!("{NOTIFICATIONS_NAMESPACE}#{user}"))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The namespace: the part before the first `:` or `#`, or `None` for a channel
    /// without one (such as `tasks`). For `notifications#<id>` it is `notifications`.
    pub fn namespace(&self) -> Option<&str> {
        let end = self.0.find([':', '#'])?;
        Some(&self.0[..end])
    }

    /// The user boundary: the part after the first `#`, so for
    /// `notifications#<user id>` this is `Some("<user id>")`.
    pub fn user_boundary(&self) -> Option<&str> {
        self.0.split_once('#').map(|(_, user)| user)
    }

    /// Whether the `#` user boundary lets `user` receive this channel: true for a channel
    /// without a boundary, else only for the user whose canonical id follows the `#`.
    pub fn allows_user(&self, user: &UserId) -> bool {
        match self.user_boundary() {
            None => true,
            Some(boundary) => canonical_user(boundary).is_some_and(|owner| owner == *user),
        }
    }

    /// Classifies the channel against the design's default channels.
    pub fn kind(&self) -> ChannelKind<'_> {
        let name = self.as_str();
        if name == TASKS_CHANNEL {
            return ChannelKind::Tasks;
        }
        if let Some(room) = strip_namespace(name, CHAT_NAMESPACE, ':') {
            if !room.is_empty() && !room.contains('#') {
                return ChannelKind::Chat { room };
            }
            return ChannelKind::Other;
        }
        if let Some(feed) = strip_namespace(name, PUBLIC_NAMESPACE, ':') {
            if !feed.is_empty() && !feed.contains('#') {
                return ChannelKind::Public { name: feed };
            }
            return ChannelKind::Other;
        }
        if let Some(suffix) = strip_namespace(name, NOTIFICATIONS_NAMESPACE, '#') {
            // Only the canonical text form names a user's feed: one user, one channel.
            if let Some(user) = canonical_user(suffix) {
                return ChannelKind::Notifications { user };
            }
        }
        ChannelKind::Other
    }
}

/// The user whose id `raw` is in its canonical (lowercase, hyphenated) text form.
fn canonical_user(raw: &str) -> Option<UserId> {
    if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    UserId::parse(raw).ok()
}

/// `name` without `"{namespace}{separator}"`, when it starts with it.
fn strip_namespace<'a>(name: &'a str, namespace: &str, separator: char) -> Option<&'a str> {
    name.strip_prefix(namespace)?.strip_prefix(separator)
}

fn validate(raw: &str) -> Result<(), ChannelNameError> {
    if raw.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if raw.len() > MAX_CHANNEL_LEN {
        return Err(ChannelNameError::TooLong);
    }
    if !raw.bytes().all(is_channel_byte) {
        return Err(ChannelNameError::BadCharacter);
    }
    Ok(())
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

/// Lets maps keyed by [`ChannelName`] be queried with a `&str`.
impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChannelName {
    type Err = ChannelNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl TryFrom<&str> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ChannelName> for String {
    fn from(name: ChannelName) -> Self {
        name.0
    }
}

impl PartialEq<str> for ChannelName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ChannelName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const ALICE: &str = "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c";

    fn alice() -> UserId {
        UserId::parse(ALICE).unwrap()
    }

    #[test]
    fn a_name_of_255_bytes_is_accepted_and_256_is_too_long() {
        let longest = "a".repeat(MAX_CHANNEL_LEN);
        assert_eq!(
            ChannelName::parse(longest.clone()).unwrap().as_str(),
            longest
        );
        assert_eq!(
            ChannelName::parse("a".repeat(MAX_CHANNEL_LEN + 1)),
            Err(ChannelNameError::TooLong)
        );
    }

    #[test]
    fn every_allowed_character_is_accepted() {
        let all = "azAZ09_-:#.@=";
        assert!(ChannelName::parse(all).is_ok());
    }

    #[test]
    fn characters_outside_the_allowed_set_are_rejected() {
        for bad in [
            "chat room",
            "chat/room",
            "chat$room",
            "chat%23x",
            "chat\nroom",
            "chät",
            "a,b",
            "*",
            "chat:\u{0}",
        ] {
            assert_eq!(
                ChannelName::parse(bad),
                Err(ChannelNameError::BadCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(ChannelName::parse(""), Err(ChannelNameError::Empty));
    }

    #[test]
    fn multibyte_characters_count_in_bytes_and_are_rejected() {
        // 128 two-byte characters: 256 bytes, too long before the character check.
        assert_eq!(
            ChannelName::parse("é".repeat(128)),
            Err(ChannelNameError::TooLong)
        );
    }

    #[test]
    fn namespace_is_the_part_before_the_first_colon_or_hash() {
        let ns = |raw: &str| {
            ChannelName::parse(raw)
                .unwrap()
                .namespace()
                .map(str::to_owned)
        };
        assert_eq!(ns("chat:lobby"), Some("chat".to_owned()));
        assert_eq!(ns("chat:a:b"), Some("chat".to_owned()));
        assert_eq!(
            ns(&format!("notifications#{ALICE}")),
            Some("notifications".to_owned())
        );
        assert_eq!(ns("tasks"), None);
        assert_eq!(ns(":x"), Some(String::new()));
    }

    #[test]
    fn user_boundary_is_the_part_after_the_first_hash() {
        let name = ChannelName::notifications(&alice());
        assert_eq!(name.user_boundary(), Some(ALICE));
        assert_eq!(ChannelName::tasks().user_boundary(), None);
    }

    #[test]
    fn only_the_owner_passes_the_user_boundary() {
        let feed = ChannelName::notifications(&alice());
        assert!(feed.allows_user(&alice()));
        assert!(!feed.allows_user(&UserId::new()));
        let upper = ChannelName::parse(format!("notifications#{}", ALICE.to_uppercase())).unwrap();
        assert!(
            !upper.allows_user(&alice()),
            "only the canonical form names a user"
        );
        assert!(ChannelName::chat("lobby").unwrap().allows_user(&alice()));
        assert!(!ChannelName::parse("chat:x#").unwrap().allows_user(&alice()));
    }

    #[test]
    fn typed_constructors_build_the_design_channels() {
        assert_eq!(ChannelName::chat("lobby").unwrap().as_str(), "chat:lobby");
        assert_eq!(ChannelName::tasks().as_str(), "tasks");
        assert_eq!(
            ChannelName::notifications(&alice()).as_str(),
            format!("notifications#{ALICE}")
        );
        assert_eq!(ChannelName::chat(""), Err(ChannelNameError::BadRoom));
        assert_eq!(ChannelName::chat("a#b"), Err(ChannelNameError::BadRoom));
        assert_eq!(
            ChannelName::chat("a b"),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::chat(&"r".repeat(MAX_CHANNEL_LEN - "chat:".len()))
                .unwrap()
                .as_str()
                .len(),
            MAX_CHANNEL_LEN
        );
        assert_eq!(
            ChannelName::chat(&"r".repeat(MAX_CHANNEL_LEN - "chat:".len() + 1)),
            Err(ChannelNameError::TooLong)
        );
    }

    #[test]
    fn public_feeds_are_built_without_a_user_boundary() {
        assert_eq!(
            ChannelName::public("scores").unwrap().as_str(),
            "public:scores"
        );
        assert_eq!(
            ChannelName::public(""),
            Err(ChannelNameError::BadPublicName)
        );
        assert_eq!(
            ChannelName::public("a#b"),
            Err(ChannelNameError::BadPublicName)
        );
        assert_eq!(
            ChannelName::public("a b"),
            Err(ChannelNameError::BadCharacter)
        );
        assert!(ChannelName::public("scores").unwrap().allows_user(&alice()));
    }

    #[test]
    fn kind_classifies_the_design_channels() {
        assert_eq!(
            ChannelName::chat("42").unwrap().kind(),
            ChannelKind::Chat { room: "42" }
        );
        assert_eq!(ChannelName::tasks().kind(), ChannelKind::Tasks);
        assert_eq!(
            ChannelName::public("scores").unwrap().kind(),
            ChannelKind::Public { name: "scores" }
        );
        assert_eq!(
            ChannelName::parse("public:league:cup").unwrap().kind(),
            ChannelKind::Public { name: "league:cup" }
        );
        assert_eq!(
            ChannelName::notifications(&alice()).kind(),
            ChannelKind::Notifications { user: alice() }
        );
        for other in [
            "chat:",
            "chat:room#x",
            "chat",
            "chatroom:x",
            "tasks:x",
            "tasksx",
            "notifications",
            "notifications#",
            "notifications#42",
            "notifications:x",
            "notifications#0191E0C4-7D2A-7C3E-9B1A-2F4D5E6A7B8C",
            "news",
            "public",
            "public:",
            "public:scores#x",
            "public#scores",
            "publicx:scores",
        ] {
            let name = ChannelName::parse(other).unwrap();
            assert_eq!(name.kind(), ChannelKind::Other, "{other}");
        }
    }

    #[test]
    fn serde_round_trips_and_rejects_bad_names() {
        let name: ChannelName = serde_json::from_str("\"chat:42\"").unwrap();
        assert_eq!(name, "chat:42");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"chat:42\"");
        assert!(serde_json::from_str::<ChannelName>("\"chat 42\"").is_err());
        assert!(serde_json::from_str::<ChannelName>("\"\"").is_err());
    }

    #[test]
    fn maps_keyed_by_channel_name_can_be_queried_with_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(ChannelName::tasks(), 1);
        assert_eq!(map.get("tasks"), Some(&1));
    }
}

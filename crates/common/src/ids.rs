//! Identifiers: users, tasks, client connections and domain events.
//!
//! Every id in Herald is a UUID (version 7, so ids sort by creation time) written on the
//! wire as the canonical lowercase, hyphenated string (design section 5a). A user's id is
//! the JWT `sub`, the `user` of publication info and the suffix of its
//! `notifications#<user id>` channel, so there is exactly one text form of each id:
//! [`Display`](std::fmt::Display) always writes it, and parsing accepts only the
//! hyphenated form.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Length of the hyphenated text form of a UUID.
const HYPHENATED_LEN: usize = 36;

/// Why a string is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a hyphenated UUID")]
pub struct IdError {
    kind: &'static str,
}

impl IdError {
    /// Which kind of id was expected (`"user id"`, `"task id"`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: UUID version 7, so ids created later sort after earlier ones.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the hyphenated text form (`0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c`);
            /// upper-case hex digits are accepted and normalised to lower case.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                if raw.len() != HYPHENATED_LEN {
                    return Err(IdError { kind: $kind });
                }
                Uuid::try_parse(raw).map(Self).map_err(|_| IdError { kind: $kind })
            }

            /// Wraps a UUID read from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID (for storage).
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            /// Same as [`Self::new`]: a fresh id.
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buf = Uuid::encode_buffer();
                serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", $kind, " (hyphenated UUID string)"))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

uuid_id!(
    /// A user: the JWT `sub`, the `user` in publication info, the owner of a
    /// `notifications#<user id>` channel.
    UserId,
    "user id"
);

uuid_id!(
    /// A task of the task board (`/tasks/{id}`).
    TaskId,
    "task id"
);

uuid_id!(
    /// One client connection to the gateway: the `client` of the connect reply, of
    /// publication info and of presence.
    ClientId,
    "client id"
);

uuid_id!(
    /// A domain event on the events stream. The notifier uses it as the publication
    /// idempotency key, so a redelivered event never produces a second notification.
    EventId,
    "event id"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn new_ids_are_version_7_and_sort_by_creation() {
        let first = TaskId::new();
        let second = TaskId::new();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second);
    }

    #[test]
    fn display_is_the_canonical_lowercase_form_and_parses_back() {
        let raw = "0191E0C4-7D2A-7C3E-9B1A-2F4D5E6A7B8C";
        let id = UserId::parse(raw).unwrap();
        assert_eq!(id.to_string(), raw.to_ascii_lowercase());
        assert_eq!(UserId::parse(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn only_the_hyphenated_form_is_accepted() {
        for bad in [
            "",
            "42",
            "0191e0c47d2a7c3e9b1a2f4d5e6a7b8c",
            "{0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c}",
            "urn:uuid:0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c",
            "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8g",
        ] {
            let err = UserId::parse(bad).unwrap_err();
            assert_eq!(err.kind(), "user id", "{bad}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = ClientId::parse("0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c\"");
        assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), id);
        let err = serde_json::from_str::<ClientId>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("client id"), "{err}");
        assert!(serde_json::from_str::<ClientId>("42").is_err());
    }
}

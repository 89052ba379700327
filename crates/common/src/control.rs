//! Control messages between services: instructions to every gateway node, carried as JSON
//! on the broker's control channel (design sections 2 and 4).
//!
//! ```json
//! {"type":"revoke_user","user":"…"}
//! {"type":"disconnect_user","user":"…","client":"…","keep":["…"],"disconnect":{"code":4000,"reason":"bye","reconnect":true}}
//! ```
//! auth sends `revoke_user` on logout; the gateway's `/api/disconnect` sends
//! `disconnect_user`, so the node that holds the session acts on it whichever node took
//! the API call.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, UserId};
use crate::protocol::{Disconnect, DisconnectCode};

/// An instruction to every gateway node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// The user signed out: end every session of theirs, with
    /// [`DisconnectCode::InvalidToken`] (terminal, so the SDK stops and the app asks the
    /// user to sign in again).
    RevokeUser {
        /// Whose sessions end.
        user: UserId,
    },
    /// End a user's sessions (or one of them) with the given advice.
    DisconnectUser {
        /// Whose sessions end.
        user: UserId,
        /// Only this connection, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<ClientId>,
        /// Connections to leave alone (the server API's `whitelist`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keep: Vec<ClientId>,
        /// Close code, reason and reconnect advice.
        disconnect: Disconnect,
    },
}

impl ControlMessage {
    /// The user whose sessions the message is about.
    pub fn user(&self) -> &UserId {
        match self {
            ControlMessage::RevokeUser { user } | ControlMessage::DisconnectUser { user, .. } => {
                user
            }
        }
    }

    /// Whether a connection of `user` with client id `client` is affected.
    pub fn applies_to(&self, user: &UserId, client: &ClientId) -> bool {
        match self {
            ControlMessage::RevokeUser { user: target } => target == user,
            ControlMessage::DisconnectUser {
                user: target,
                client: only,
                keep,
                ..
            } => {
                target == user
                    && only.as_ref().is_none_or(|only| only == client)
                    && !keep.contains(client)
            }
        }
    }

    /// How affected connections are closed.
    pub fn disconnect(&self) -> Disconnect {
        match self {
            ControlMessage::RevokeUser { .. } => DisconnectCode::InvalidToken.to_disconnect(),
            ControlMessage::DisconnectUser { disconnect, .. } => disconnect.clone(),
        }
    }

    /// Decodes a message from the control channel.
    pub fn decode(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Encodes the message for the control channel.
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::{Value, json};

    use super::*;

    const ALICE: &str = "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c";
    const CLIENT: &str = "0191e0c4-7d2a-7c3e-9b1a-00000000c1c1";

    #[test]
    fn revoke_user_round_trips_and_closes_with_invalid_token() {
        let fixture = format!(r#"{{"type":"revoke_user","user":"{ALICE}"}}"#);
        let message = ControlMessage::decode(&fixture).unwrap();
        let alice = UserId::parse(ALICE).unwrap();
        assert_eq!(message, ControlMessage::RevokeUser { user: alice });
        assert_eq!(message.encode().unwrap(), fixture);
        assert!(message.applies_to(&alice, &ClientId::new()));
        assert!(!message.applies_to(&UserId::new(), &ClientId::new()));
        let advice = message.disconnect();
        assert_eq!(advice.code, 3500);
        assert!(!advice.reconnect);
    }

    #[test]
    fn disconnect_user_carries_its_advice_and_optional_client() {
        let fixture = json!({
            "type": "disconnect_user",
            "user": ALICE,
            "client": CLIENT,
            "disconnect": {"code": 4000, "reason": "bye", "reconnect": true},
        });
        let message: ControlMessage = serde_json::from_value(fixture.clone()).unwrap();
        assert_eq!(serde_json::to_value(&message).unwrap(), fixture);
        let alice = UserId::parse(ALICE).unwrap();
        assert_eq!(message.user(), &alice);
        assert!(message.applies_to(&alice, &ClientId::parse(CLIENT).unwrap()));
        assert!(!message.applies_to(&alice, &ClientId::new()));
        assert_eq!(
            message.disconnect(),
            Disconnect::custom(4000, "bye").unwrap()
        );

        let every_session = ControlMessage::DisconnectUser {
            user: alice,
            client: None,
            keep: Vec::new(),
            disconnect: DisconnectCode::ForceNoReconnect.to_disconnect(),
        };
        let value: Value = serde_json::to_value(&every_session).unwrap();
        assert!(value.get("client").is_none());
        assert_eq!(
            value["disconnect"],
            json!({"code": 3503, "reason": "force disconnect"})
        );
        assert!(every_session.applies_to(&alice, &ClientId::new()));

        let kept = ClientId::new();
        let all_but_one = ControlMessage::DisconnectUser {
            user: alice,
            client: None,
            keep: vec![kept],
            disconnect: DisconnectCode::ForceNoReconnect.to_disconnect(),
        };
        assert!(!all_but_one.applies_to(&alice, &kept));
        assert!(all_but_one.applies_to(&alice, &ClientId::new()));
    }

    #[test]
    fn unknown_control_messages_are_rejected() {
        assert!(ControlMessage::decode(r#"{"type":"reboot"}"#).is_err());
        assert!(ControlMessage::decode(r#"{"type":"revoke_user","user":"42"}"#).is_err());
    }
}

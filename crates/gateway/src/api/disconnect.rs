//! `/api/disconnect`: ends a user's connections on every node.
//!
//! The call is announced on the broker's control channel
//! ([`ControlMessage::DisconnectUser`]); every node, this one included, closes the matching
//! connections it holds (see `fanout::dispatch`). `client` limits it to one connection,
//! `whitelist` spares the listed ones; `disconnect` sets the close code (4000-4499
//! reconnect, 4500-4999 terminal) and reason, by default 3503 force disconnect (terminal).
//! Herald has no per-connection sessions, so `session` is refused with 107.

use actix_web::HttpResponse;
use actix_web::web::{Bytes, Data};
use herald_common::control::ControlMessage;
use herald_common::ids::{ClientId, UserId};
use herald_common::protocol::{Disconnect, DisconnectCode, ErrorCode, ProtocolError};
use herald_common::server_api::{DisconnectRequest, EmptyResult};

use super::{ApiError, Authorized, answer, internal, parse};
use crate::state::Shared;

/// `POST /api/disconnect`.
pub async fn disconnect(
    _: Authorized,
    shared: Data<Shared>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: DisconnectRequest = parse(&body)?;
    Ok(answer(announce(&shared, request).await))
}

async fn announce(
    shared: &Shared,
    request: DisconnectRequest,
) -> Result<EmptyResult, ProtocolError> {
    let message = control_message(request)?;
    let payload = message.encode().map_err(|err| {
        tracing::error!(error = %err, "control message not encodable");
        ProtocolError::from(ErrorCode::Internal)
    })?;
    shared
        .broker
        .publish_control(payload.into())
        .await
        .map_err(|err| internal(&err))?;
    Ok(EmptyResult {})
}

fn bad(message: &'static str) -> ProtocolError {
    ProtocolError::with_message(ErrorCode::BadRequest, message)
}

fn control_message(request: DisconnectRequest) -> Result<ControlMessage, ProtocolError> {
    let user = UserId::parse(&request.user).map_err(|_| bad("user must be a user id"))?;
    if !request.session.is_empty() {
        return Err(bad("sessions are not supported; use client"));
    }
    let client = if request.client.is_empty() {
        None
    } else {
        Some(ClientId::parse(&request.client).map_err(|_| bad("client must be a client id"))?)
    };
    let keep = request
        .whitelist
        .iter()
        .map(|raw| ClientId::parse(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("whitelist must list client ids"))?;
    let disconnect = match request.disconnect {
        None => DisconnectCode::ForceNoReconnect.to_disconnect(),
        Some(Disconnect { code, reason, .. }) => Disconnect::custom(code, reason.into_owned())
            .map_err(|_| bad("disconnect code must be 4000-4999 with a reason under 124 bytes"))?,
    };
    Ok(ControlMessage::DisconnectUser {
        user,
        client,
        keep,
        disconnect,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn request(json: serde_json::Value) -> DisconnectRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_user_is_disconnected_with_force_disconnect_by_default() {
        let user = UserId::new();
        let message =
            control_message(request(serde_json::json!({"user": user.to_string()}))).unwrap();
        assert_eq!(message.disconnect().code, 3503);
        assert!(message.applies_to(&user, &ClientId::new()));
    }

    #[test]
    fn bad_users_clients_codes_and_sessions_are_refused() {
        let user = UserId::new().to_string();
        for body in [
            serde_json::json!({"user": "42"}),
            serde_json::json!({"user": user, "client": "c1"}),
            serde_json::json!({"user": user, "whitelist": ["c1"]}),
            serde_json::json!({"user": user, "session": "s1"}),
            serde_json::json!({"user": user, "disconnect": {"code": 3001, "reason": "x"}}),
        ] {
            let error = control_message(request(body.clone())).unwrap_err();
            assert_eq!(error.code, 107, "{body}");
        }
    }
}

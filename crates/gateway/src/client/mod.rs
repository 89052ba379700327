//! `/connection/websocket`: the Centrifugo client protocol v2, JSON variant (design
//! section 3).
//!
//! Layers, from the socket up:
//! - this module: the handshake (Origin allow-list, node connection limit) and the reader
//!   loop: WebSocket messages, size limit (1009), binary frames (3501), timers;
//! - [`session`]: the connection's state and command dispatch, replies and closes;
//! - [`connect`]: `connect` and `refresh` (tokens, the user limit, the server-side
//!   `notifications#<user>` subscription with recovery through the connect `subs` map);
//! - [`channels`]: `subscribe` / `unsubscribe`, presence upkeep, cleanup;
//! - [`publish`]: `publish` (rate limit, author info);
//! - [`read`]: `presence`, `presence_stats`, `history`.
//!
//! The writer half is [`crate::fanout::outbox::run_writer`]: one task per connection.

mod channels;
mod connect;
mod publish;
mod read;
mod session;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, ProtocolError};
use herald_common::protocol::DisconnectCode;

use crate::fanout::outbox::run_writer;
use crate::fanout::{Format, Target};
use crate::state::Shared;
use crate::token::redacted_uri;
use session::Client;

/// `GET /connection/websocket`.
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    if !shared.origins.allows(&req) {
        tracing::info!(uri = %redacted_uri(&req), "websocket refused: origin not allowed");
        return Ok(HttpResponse::Forbidden().finish());
    }
    if shared.is_draining() {
        // The node is shutting down: the client (or the proxy in front) tries another node.
        return Ok(HttpResponse::ServiceUnavailable().finish());
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let shared = shared.into_inner();
    let limits = &shared.settings.limits;
    let target = Arc::new(Target::new(
        Format::Protocol,
        limits.send_queue_size,
        Arc::clone(&shared.stats),
    ));
    let pong_session = session.clone();
    actix_web::rt::spawn(run_writer(
        Arc::clone(&target.outbox),
        session,
        limits.close_timeout,
        target.done.clone(),
    ));
    let admission = match shared.registry.admit(&target) {
        Ok(admission) => admission,
        Err(err) => {
            tracing::warn!(error = %err, "connection refused");
            target
                .outbox
                .close(DisconnectCode::ConnectionLimit.to_disconnect());
            return Ok(response);
        }
    };
    let stream = stream
        .max_frame_size(limits.max_message_size)
        .aggregate_continuations()
        .max_continuation_size(limits.max_message_size);
    actix_web::rt::spawn(async move {
        let mut client = Client::new(shared, target, admission);
        client.run(stream, pong_session).await;
    });
    Ok(response)
}

/// What the reader does with one WebSocket message.
enum Inbound {
    Text(bytestring::ByteString),
    Ping(actix_web::web::Bytes),
    Ignore,
    Close(DisconnectCode),
    Gone,
}

fn classify(message: Option<Result<AggregatedMessage, ProtocolError>>) -> Inbound {
    match message {
        None | Some(Ok(AggregatedMessage::Close(_))) => Inbound::Gone,
        Some(Ok(AggregatedMessage::Text(text))) => Inbound::Text(text),
        Some(Ok(AggregatedMessage::Binary(_))) => Inbound::Close(DisconnectCode::BadRequest),
        Some(Ok(AggregatedMessage::Ping(bytes))) => Inbound::Ping(bytes),
        Some(Ok(AggregatedMessage::Pong(_))) => Inbound::Ignore,
        Some(Err(err)) => Inbound::Close(protocol_error_code(&err)),
    }
}

/// The close code for a WebSocket-level error: 1009 for a message over the size limit
/// (a single frame, or continuations added up), 3501 for anything else.
pub(crate) fn protocol_error_code(err: &ProtocolError) -> DisconnectCode {
    match err {
        ProtocolError::Overflow => DisconnectCode::MessageTooBig,
        ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
            DisconnectCode::MessageTooBig
        }
        other => {
            tracing::debug!(error = %other, "websocket protocol error");
            DisconnectCode::BadRequest
        }
    }
}

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
//! The writer half is [`crate::fanout::outbox::run_writer`]; reader and writer run together
//! in the connection's one task, on the bare socket ([`crate::transport::ws`]).

mod channels;
mod connect;
mod publish;
mod read;
mod session;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use herald_common::protocol::DisconnectCode;

use crate::fanout::outbox::run_writer;
use crate::fanout::{Format, Target};
use crate::state::Shared;
use crate::token::redacted_uri;
use crate::transport::ws::{self, Message, WsError};
use session::Client;

/// `GET /connection/websocket`.
pub async fn websocket(
    req: HttpRequest,
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
    let mut response = ws::handshake(&req, shared.settings.websocket.compression())?;
    let ip = shared.settings.trusted_proxies.client_ip(&req);
    let shared = shared.into_inner();
    let limits = &shared.settings.limits;
    let (max_message, close_timeout) = (limits.max_message_size, limits.close_timeout);
    let target = Arc::new(Target::new(
        Format::Protocol,
        limits.send_queue_size,
        Arc::clone(&shared.stats),
    ));
    let admission = shared.registry.admit(&target);
    ws::upgrade(&mut response, move |mut socket| async move {
        if let Some(direct) = socket.direct_writer() {
            target.outbox.attach_direct(direct);
        }
        let (reader, writer) = socket.split(max_message);
        let writing = run_writer(
            Arc::clone(&target.outbox),
            writer,
            close_timeout,
            target.done.clone(),
        );
        match admission {
            Ok(admission) => {
                let mut client = Client::new(shared, target, admission, ip);
                futures_util::future::join(writing, client.run(reader)).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "connection refused");
                target
                    .outbox
                    .close(DisconnectCode::ConnectionLimit.to_disconnect());
                writing.await;
            }
        }
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

fn classify(message: Option<Result<Message, WsError>>) -> Inbound {
    match message {
        None | Some(Ok(Message::Close(_))) => Inbound::Gone,
        Some(Ok(Message::Text(text))) => Inbound::Text(text),
        Some(Ok(Message::Binary(_))) => Inbound::Close(DisconnectCode::BadRequest),
        Some(Ok(Message::Ping(bytes))) => Inbound::Ping(bytes),
        Some(Ok(Message::Pong)) => Inbound::Ignore,
        Some(Err(WsError::Io(err))) => {
            tracing::debug!(error = %err, "websocket read failed");
            Inbound::Gone
        }
        Some(Err(err)) => {
            tracing::debug!(error = %err, "websocket protocol error");
            Inbound::Close(err.close_code())
        }
    }
}

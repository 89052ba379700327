//! `/ws/echo`: every text and binary message goes back unchanged.
//!
//! It is the conformance contract of the Autobahn|Testsuite (which `make autobahn` runs
//! against it, so the framing every other endpoint shares is tested end to end) and a
//! debugging tool: no token, no channels, no Redis. It still counts against the node's
//! connection limit, obeys the message size limit and the ping/pong timeouts, closes on a
//! drain, and is switched off with `HERALD_WEBSOCKET__ECHO=false` (then 404). Close codes
//! are plain RFC 6455 ones (1002, 1007, 1009), since no Herald client speaks here.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use herald_common::error::ErrorCode as RestErrorCode;
use herald_service::ApiError;
use tokio::time::{Instant, sleep_until};

use crate::fanout::{Format, Target};
use crate::state::Shared;
use crate::transport::ws::{self, FrameReader, FrameWriter, Message};

/// How often an open echo connection looks whether the node is draining.
const DRAIN_CHECK: Duration = Duration::from_millis(250);

/// Close code for a connection that stayed silent past the pong timeout (RFC 6455 "going
/// away"; the Herald endpoints say 3012).
const CLOSE_GOING_AWAY: u16 = 1001;

/// `GET /ws/echo`.
pub async fn echo(req: HttpRequest, shared: web::Data<Shared>) -> Result<HttpResponse, ApiError> {
    let shared = shared.into_inner();
    if !shared.settings.websocket.echo {
        return Err(ApiError::not_found("the echo endpoint is switched off"));
    }
    crate::simple::check_upgrade(&req, &shared)?;
    // A registry entry, so the connection counts against the node limit and a drain sees
    // (and closes) it; it never joins a channel.
    let target = Arc::new(Target::new(
        Format::NotificationLines,
        shared.settings.limits.send_queue_size,
        Arc::clone(&shared.stats),
    ));
    let admission = shared.registry.admit(&target).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            RestErrorCode::RateLimited,
            "connection limit reached",
        )
    })?;
    let mut response = ws::handshake(&req, shared.settings.websocket.compression())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    ws::upgrade(&mut response, move |mut socket| async move {
        let _admission = admission;
        let (mut reader, mut writer) = socket.split(shared.settings.limits.max_message_size);
        let code = serve(&shared, &target, &mut reader, &mut writer).await;
        if let Some(code) = code {
            let closing = writer.close_code(code);
            let _ = tokio::time::timeout(shared.settings.limits.close_timeout, closing).await;
        }
        target.done.cancel();
    });
    Ok(response)
}

/// Echoes until the connection ends; the close code to send, if any is still due.
async fn serve(
    shared: &Shared,
    target: &Target,
    reader: &mut FrameReader<'_>,
    writer: &mut FrameWriter<'_>,
) -> Option<u16> {
    let settings = &shared.settings;
    let write_timeout = settings.limits.close_timeout.max(Duration::from_secs(1));
    let mut last_heard = Instant::now();
    let mut next_ping = Instant::now() + settings.ping_interval;
    loop {
        if target.outbox.is_closing() || shared.is_draining() {
            return Some(CLOSE_GOING_AWAY);
        }
        let silent_by = last_heard + settings.ping_interval + settings.pong_timeout;
        let deadline = next_ping.min(silent_by).min(Instant::now() + DRAIN_CHECK);
        let message = tokio::select! {
            () = sleep_until(deadline) => {
                let now = Instant::now();
                if now >= silent_by {
                    return Some(CLOSE_GOING_AWAY);
                }
                if now >= next_ping {
                    next_ping = now + settings.ping_interval;
                    if write(writer.ping(), write_timeout).await.is_err() {
                        return None;
                    }
                }
                continue;
            }
            message = reader.recv() => message,
        };
        last_heard = Instant::now();
        let written = match message {
            None => return None,
            // The client's close is answered with its own code (RFC 6455 5.5.1).
            Some(Ok(Message::Close(code))) => return Some(code.unwrap_or(1000)),
            Some(Ok(Message::Text(text))) => write(writer.text(&[text]), write_timeout).await,
            Some(Ok(Message::Binary(bytes))) => write(writer.binary(&bytes), write_timeout).await,
            Some(Ok(Message::Ping(bytes))) => write(writer.pong(&bytes), write_timeout).await,
            Some(Ok(Message::Pong)) => Ok(()),
            Some(Err(ws::WsError::Io(_))) => return None,
            Some(Err(err)) => return Some(err.rfc_close_code()),
        };
        if written.is_err() {
            return None;
        }
    }
}

/// A write that gives up after `timeout` (a client that stopped reading).
async fn write(
    writing: impl std::future::Future<Output = std::io::Result<()>>,
    timeout: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(timeout, writing)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

//! The simple text endpoints, for `websocat`, `curl` and scripts (design section 2):
//!
//! - `/ws/chat/{room}`: each text frame in is a chat message to `chat:{room}`; each message
//!   out is the line `<username>: <text>`, and `* alice joined` / `* alice left` when
//!   someone enters or leaves the room (namespaces with join/leave); `/ws/chat` is the room
//!   `lobby`;
//! - `/ws/notifications/{channel}`: receive only; each line is the publication's `text`, else
//!   its JSON (`#` is written `%23` in the path).
//!
//! The token comes from `Authorization: Bearer` or `?token=` (query tokens are never
//! logged). `/ws/notifications/{channel}` needs none for a namespace that admits anonymous
//! readers (`HERALD_CHANNELS__PUBLIC__ANONYMOUS`): such a connection counts against the
//! per-address limit of anonymous connections (429) and never expires. Refusals happen
//! before the upgrade, as plain HTTP: 401 without a valid token,
//! 403 for a channel the user may not read (or a foreign Origin), 404 for an unknown one,
//! 429 / 503 at the per-user / per-node connection limit, 503 while the node drains. Once
//! open, the connection gets WebSocket pings; a rate-limited or failed chat message is answered with a line starting
//! with `* `. Gaps close with 3010, an expired token with 3005, silence with 3012.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use herald_broker::PublishRequest;
use herald_common::channel::ChannelName;
use herald_common::error::ErrorCode as RestErrorCode;
use herald_common::ids::ClientId;
use herald_common::payload::{ChatMessage, ConnInfo};
use herald_common::protocol::{ClientInfo, DisconnectCode, ErrorCode};
use herald_service::ApiError;
use tokio::time::{Instant, sleep_until};

use crate::fanout::outbox::{Control, run_writer};
use crate::fanout::slot::{SlotKind, Started};
use crate::fanout::{Format, Identity, Target};
use crate::policy::{ChannelOptions, Viewer};
use crate::ratelimit::TokenBucket;
use crate::registry::Admission;
use crate::state::Shared;
use crate::subscription::{self, Subscription};
use crate::token::{self, Grant, Refusal, redacted_uri};
use crate::transport::ws::{self, FrameReader, Message, WsError};

/// `GET /ws/chat/{room}`.
pub async fn chat(
    req: HttpRequest,
    room: web::Path<String>,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, ApiError> {
    let channel = ChannelName::chat(&room).map_err(|err| ApiError::bad_request(err.to_string()))?;
    open(req, shared.into_inner(), channel, Format::ChatLines).await
}

/// The room of `/ws/chat` without a room name: where a client written against the
/// tutorial's `ws://host/ws/chat` lands.
pub const LOBBY: &str = "lobby";

/// `GET /ws/chat`: the [`LOBBY`] room.
pub async fn lobby(req: HttpRequest, shared: web::Data<Shared>) -> Result<HttpResponse, ApiError> {
    let channel = ChannelName::chat(LOBBY).map_err(|err| ApiError::bad_request(err.to_string()))?;
    open(req, shared.into_inner(), channel, Format::ChatLines).await
}

/// `GET /ws/notifications/{channel}`.
pub async fn notifications(
    req: HttpRequest,
    channel: web::Path<String>,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, ApiError> {
    let channel = ChannelName::parse(channel.into_inner())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    open(req, shared.into_inner(), channel, Format::NotificationLines).await
}

async fn open(
    req: HttpRequest,
    shared: Arc<Shared>,
    channel: ChannelName,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let (grant, options) = authorize(&req, &shared, &channel, format).await?;
    let target = Arc::new(Target::new(
        format,
        shared.settings.limits.send_queue_size,
        Arc::clone(&shared.stats),
    ));
    let client = ClientId::new();
    let info = match &grant {
        Some(grant) => {
            target.set_identity(Identity {
                user: grant.user,
                client,
            });
            let conn_info = ConnInfo {
                name: grant.name.clone(),
            }
            .to_raw()
            .map_err(|err| ApiError::internal(anyhow::Error::from(err)))?;
            ClientInfo {
                user: grant.user.to_string(),
                client: client.to_string(),
                conn_info: Some(conn_info),
                chan_info: None,
            }
        }
        None => ClientInfo {
            user: String::new(),
            client: client.to_string(),
            conn_info: None,
            chan_info: None,
        },
    };
    let admission = admit(&req, &shared, &target, grant.as_ref())?;

    let mut response = ws::handshake(&req, shared.settings.websocket.compression())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let limits = &shared.settings.limits;
    let (max_message, close_timeout) = (limits.max_message_size, limits.close_timeout);
    let line = LineConnection {
        shared,
        target,
        _admission: admission,
        channel,
        options,
        info,
        grant,
    };
    ws::upgrade(&mut response, move |mut socket| async move {
        if let Some(direct) = socket.direct_writer() {
            line.target.outbox.attach_direct(direct);
        }
        let (reader, writer) = socket.split(max_message);
        let writing = run_writer(
            Arc::clone(&line.target.outbox),
            writer,
            close_timeout,
            line.target.done.clone(),
        );
        futures_util::future::join(writing, line.run(reader)).await;
    });
    Ok(response)
}

/// The checks every WebSocket endpoint makes before anything else: an allowed Origin, and a
/// node that is not draining.
pub(crate) fn check_upgrade(req: &HttpRequest, shared: &Shared) -> Result<(), ApiError> {
    if !shared.origins.allows(req) {
        tracing::info!(uri = %redacted_uri(req), "websocket refused: origin not allowed");
        return Err(ApiError::forbidden("origin not allowed"));
    }
    if shared.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            RestErrorCode::Internal,
            "this node is shutting down; connect to another one",
        ));
    }
    Ok(())
}

/// Checks the Origin, the token and the channel table, before the upgrade. Without a token,
/// a notifications endpoint of a namespace open to anonymous readers is allowed (no
/// grant); anything else is 401.
async fn authorize(
    req: &HttpRequest,
    shared: &Shared,
    channel: &ChannelName,
    format: Format,
) -> Result<(Option<Grant>, ChannelOptions), ApiError> {
    check_upgrade(req, shared)?;
    let Some(token) = token::request_token(req) else {
        return match (format, shared.policy.read(channel, Viewer::Anonymous)) {
            (Format::NotificationLines, Ok(options)) => Ok((None, options)),
            _ => Err(ApiError::unauthorized("missing token")),
        };
    };
    let grant = match token::verify(&shared.verifier, &token).await {
        Ok(grant) => grant,
        Err(Refusal::Expired) => return Err(ApiError::unauthorized("token expired")),
        Err(refusal) => {
            tracing::info!(uri = %redacted_uri(req), reason = %refusal, "simple endpoint: token refused");
            return Err(ApiError::unauthorized("invalid token"));
        }
    };
    let viewer = Viewer::User(grant.user);
    let allowed = match format {
        Format::ChatLines => shared.policy.subscribe(channel, viewer),
        Format::NotificationLines | Format::Protocol => shared.policy.read(channel, viewer),
    };
    match allowed {
        Ok(options) => Ok((Some(grant), options)),
        Err(ErrorCode::UnknownChannel) => Err(ApiError::not_found("unknown channel")),
        Err(_) => Err(ApiError::forbidden("permission denied")),
    }
}

/// Takes the connection's place under the node limit and the user's (the client
/// address's, for an anonymous connection).
fn admit(
    req: &HttpRequest,
    shared: &Arc<Shared>,
    target: &Arc<Target>,
    grant: Option<&Grant>,
) -> Result<Admission, ApiError> {
    let limited = |status, message| ApiError::new(status, RestErrorCode::RateLimited, message);
    let mut admission = shared
        .registry
        .admit(target)
        .map_err(|_| limited(StatusCode::SERVICE_UNAVAILABLE, "connection limit reached"))?;
    match grant {
        Some(grant) => admission.assign_user(grant.user),
        None => admission.assign_anonymous(shared.settings.trusted_proxies.client_ip(req)),
    }
    .map_err(|_| limited(StatusCode::TOO_MANY_REQUESTS, "too many connections"))?;
    Ok(admission)
}

/// One open simple-endpoint connection.
struct LineConnection {
    shared: Arc<Shared>,
    target: Arc<Target>,
    /// Held for the connection's life (never read): its place under the connection limits,
    /// released when the connection is dropped.
    _admission: Admission,
    channel: ChannelName,
    options: ChannelOptions,
    info: ClientInfo,
    /// `None` for an anonymous reader: no expiry.
    grant: Option<Grant>,
}

impl LineConnection {
    async fn run(&self, mut reader: FrameReader<'_>) {
        let shared = Arc::clone(&self.shared);
        shared.stats.connection_opened();
        if let Some(subscription) = self.subscribe().await {
            self.serve(&mut reader).await;
            subscription::detach(
                &shared,
                &self.target,
                &self.channel,
                &subscription,
                &self.info,
            )
            .await;
        }
        self.target
            .outbox
            .close_now(DisconnectCode::ConnectionClosed.to_disconnect());
        shared.stats.connection_closed();
    }

    async fn subscribe(&self) -> Option<Subscription> {
        let shared = &self.shared;
        let slot = match subscription::attach(
            shared,
            &self.target,
            &self.channel,
            SlotKind::ServerSide,
            self.announces_join_leave(),
        )
        .await
        {
            Ok(slot) => slot,
            Err(err) => {
                tracing::warn!(channel = %self.channel, error = %err, "simple endpoint: subscribe failed");
                self.target
                    .outbox
                    .close(DisconnectCode::ServerError.to_disconnect());
                return None;
            }
        };
        let mut subscription = Subscription {
            slot,
            options: self.options,
            in_presence: false,
            announced: false,
        };
        if self.options.presence {
            subscription.in_presence =
                subscription::enter_presence(shared, &self.channel, &self.info)
                    .await
                    .is_ok();
        }
        if subscription.slot.go_live(&self.target, None, None) != Started::Live {
            self.target
                .outbox
                .close(DisconnectCode::InsufficientState.to_disconnect());
        } else if self.announces_join_leave() {
            match shared.broker.publish_join(&self.channel, &self.info).await {
                Ok(()) => subscription.announced = true,
                Err(err) => {
                    tracing::warn!(channel = %self.channel, error = %err, "join not announced");
                }
            }
        }
        Some(subscription)
    }

    /// Chat rooms whose namespace announces joins and leaves tell the room who came and
    /// went (`* alice joined`, `* alice left`); notification feeds never do.
    fn announces_join_leave(&self) -> bool {
        self.options.join_leave && self.target.format == Format::ChatLines
    }

    async fn serve(&self, reader: &mut FrameReader<'_>) {
        let settings = &self.shared.settings;
        let done = self.target.done.clone();
        let mut bucket =
            TokenBucket::new(settings.limits.publish_rate, settings.limits.publish_burst);
        let mut last_heard = Instant::now();
        let mut next_ping = Instant::now() + settings.ping_interval;
        let mut next_presence = Instant::now() + (settings.limits.presence_ttl / 3);
        let expires_at = self.grant.as_ref().map(|grant| {
            Instant::now()
                + std::time::Duration::from_secs(grant.ttl())
                + settings.limits.expired_close_delay
        });
        while !self.target.outbox.is_closing() {
            let silent_by = last_heard + settings.ping_interval + settings.pong_timeout;
            let mut deadline = next_ping.min(next_presence).min(silent_by);
            if let Some(expires_at) = expires_at {
                deadline = deadline.min(expires_at);
            }
            tokio::select! {
                biased;
                () = done.cancelled() => return,
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    if expires_at.is_some_and(|at| now >= at) {
                        self.close(DisconnectCode::Expired);
                    } else if now >= silent_by {
                        self.close(DisconnectCode::NoPong);
                    }
                    if now >= next_ping {
                        next_ping = now + settings.ping_interval;
                        self.target.outbox.control(Control::Ping);
                    }
                    if now >= next_presence {
                        next_presence = now + settings.limits.presence_ttl / 3;
                        if self.options.presence {
                            let _ = subscription::enter_presence(&self.shared, &self.channel, &self.info).await;
                        }
                    }
                }
                message = reader.recv() => {
                    last_heard = Instant::now();
                    match message {
                        None | Some(Ok(Message::Close(_))) => return,
                        Some(Ok(Message::Text(text))) => self.on_text(&text, &mut bucket).await,
                        Some(Ok(Message::Binary(_))) => self.close(DisconnectCode::BadRequest),
                        Some(Ok(Message::Ping(bytes))) => {
                            self.target.outbox.control(Control::Pong(bytes));
                        }
                        Some(Ok(Message::Pong)) => {}
                        Some(Err(WsError::Io(_))) => return,
                        Some(Err(err)) => self.close(err.close_code()),
                    }
                }
            }
        }
    }

    async fn on_text(&self, text: &str, bucket: &mut TokenBucket) {
        ::metrics::counter!(crate::metrics::MESSAGES_IN).increment(1);
        if self.target.format != Format::ChatLines {
            return;
        }
        let text = text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return;
        }
        if !bucket.try_take() {
            self.notice("too many messages; this one was dropped");
            return;
        }
        let data = match serde_json::value::to_raw_value(&ChatMessage {
            text: text.to_owned(),
        }) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(error = %err, "chat message not encodable");
                return;
            }
        };
        let request = PublishRequest::new(data)
            .with_info(self.info.clone())
            .with_history(self.options.history);
        let started = std::time::Instant::now();
        let published = self.shared.broker.publish(&self.channel, request).await;
        ::metrics::histogram!(crate::metrics::PUBLISH_DURATION)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = published {
            tracing::warn!(channel = %self.channel, error = %err, "simple endpoint: publish failed");
            self.notice("message not sent; try again");
        }
    }

    /// A line from the server itself (not a chat message): starts with `* `.
    fn notice(&self, text: &str) {
        let _ = self
            .target
            .outbox
            .push(ByteString::from(format!("* {text}")).into());
    }

    fn close(&self, code: DisconnectCode) {
        self.target.outbox.close(code.to_disconnect());
    }
}

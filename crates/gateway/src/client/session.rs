//! One protocol connection's state: the reader loop, timers, command dispatch, replies and
//! closes.
//!
//! Commands of one connection are handled one after another, in the order they arrive (an
//! SDK sends `connect` and its subscribes in one frame and relies on that order), with one
//! exception: publishes are pipelined. They go to the broker in batches while the reader
//! goes on reading, and any other command waits until every publish before it was
//! answered, so replies keep the command order and a command sees the effects of the
//! publishes sent before it (see [`super::publish`]). Every broker call is bounded by the
//! broker's own time-outs, so a command never hangs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use herald_common::channel::ChannelName;
use herald_common::protocol::{
    ClientInfo, Command, DisconnectCode, ErrorCode, Method, PING, PingResult, ProtocolError, Reply,
    ReplyBody, split_frame,
};
use tokio::time::{Instant, sleep_until};

use super::publish::Publishes;
use super::{Inbound, classify};
use crate::fanout::Target;
use crate::fanout::outbox::Control;
use crate::metrics;
use crate::ratelimit::TokenBucket;
use crate::registry::Admission;
use crate::state::Shared;
use crate::subscription::Subscription;
use crate::token::Grant;
use crate::transport::ws::FrameReader;

/// How a command failed: an error reply, or the end of the connection.
#[derive(Debug)]
pub(super) enum Failure {
    /// Answer the command with this error.
    Error(ProtocolError),
    /// Close the connection with this code.
    Close(DisconnectCode),
}

impl From<ErrorCode> for Failure {
    fn from(code: ErrorCode) -> Self {
        Failure::Error(code.into())
    }
}

/// What a command handler returns.
pub(super) type Handled = Result<(), Failure>;

/// Who a connected connection is.
#[derive(Debug)]
pub(super) struct Identity {
    /// The token in force; `None` for an anonymous connection (no token, no expiry).
    pub grant: Option<Grant>,
    /// `{user, client, conn_info: {"name"}}`: publication info, presence, joins. An
    /// anonymous connection's user is `""`.
    pub info: ClientInfo,
}

/// One protocol connection.
pub(super) struct Client {
    pub shared: Arc<Shared>,
    pub target: Arc<Target>,
    pub admission: Admission,
    /// The client's address (behind trusted proxies, the forwarded one): anonymous
    /// connections are limited per address.
    pub ip: IpAddr,
    /// `None` until `connect` succeeds.
    pub identity: Option<Identity>,
    /// Subscriptions, server-side ones included.
    pub subs: HashMap<ChannelName, Subscription>,
    pub publish_bucket: TokenBucket,
    /// Publishes waiting for a batch, and the batch at the broker.
    pub publishes: Publishes,
    pub timers: Timers,
}

/// The connection's deadlines; `None` when not armed.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// `connect` must arrive before this (3502).
    pub connect_by: Option<Instant>,
    /// Next server ping.
    pub next_ping: Option<Instant>,
    /// The pong to the last ping must arrive before this (3012).
    pub pong_by: Option<Instant>,
    /// The token (plus its grace) expires (3005) unless refreshed.
    pub expires_at: Option<Instant>,
    /// Next presence refresh.
    pub next_presence: Option<Instant>,
}

impl Timers {
    fn next(&self) -> Instant {
        [
            self.connect_by,
            self.next_ping,
            self.pong_by,
            self.expires_at,
            self.next_presence,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }
}

impl Client {
    pub fn new(shared: Arc<Shared>, target: Arc<Target>, admission: Admission, ip: IpAddr) -> Self {
        let limits = &shared.settings.limits;
        let publish_bucket = TokenBucket::new(limits.publish_rate, limits.publish_burst);
        let timers = Timers {
            connect_by: Some(Instant::now() + shared.settings.connect_timeout),
            ..Timers::default()
        };
        Self {
            shared,
            target,
            admission,
            ip,
            identity: None,
            subs: HashMap::new(),
            publish_bucket,
            publishes: Publishes::default(),
            timers,
        }
    }

    /// Reads until the connection ends, then releases everything it held.
    pub async fn run(&mut self, mut reader: FrameReader<'_>) {
        self.shared.stats.connection_opened();
        let target = Arc::clone(&self.target);
        let done = target.done.clone();
        // The handlers below are boxed: their state (broker calls, token checks) lives on
        // the heap only while one runs, so the future an idle connection keeps is just this
        // loop's (see docs/benchmarks.md, "Idle connections").
        loop {
            if self.target.outbox.is_closing() {
                break;
            }
            let deadline = self.timers.next();
            tokio::select! {
                biased;
                () = done.cancelled() => break,
                () = target.attention.notified() => Box::pin(self.drop_ended_subscriptions()).await,
                () = sleep_until(deadline) => Box::pin(self.on_timers()).await,
                landing = self.publishes.landed(), if self.publishes.is_flying() => {
                    self.publishes_landed(landing);
                }
                message = reader.recv() => match classify(message) {
                    Inbound::Text(text) => Box::pin(self.on_frame(&text)).await,
                    Inbound::Ping(bytes) => self.target.outbox.control(Control::Pong(bytes)),
                    Inbound::Ignore => {}
                    Inbound::Close(code) => self.close(code),
                    Inbound::Gone => break,
                },
            }
        }
        // Whatever ended the loop, make sure the writer ends too.
        self.target
            .outbox
            .close_now(DisconnectCode::ConnectionClosed.to_disconnect());
        Box::pin(self.release_all()).await;
        self.shared.stats.connection_closed();
    }

    async fn on_frame(&mut self, frame: &str) {
        for line in split_frame(frame) {
            ::metrics::counter!(metrics::MESSAGES_IN).increment(1);
            let command = match Command::decode(line) {
                Ok(command) => command,
                Err(err) => {
                    tracing::debug!(error = %err, "undecodable command");
                    // The publishes before it are still made and answered, as before it.
                    self.drain_publishes().await;
                    self.close(DisconnectCode::BadRequest);
                    return;
                }
            };
            self.handle(command).await;
            if self.target.outbox.is_closing() {
                return;
            }
        }
        // The frame's publishes go out as one batch (or after the batch in flight).
        self.send_publishes();
    }

    async fn handle(&mut self, command: Command) {
        if command.is_pong() {
            self.timers.pong_by = None;
            return;
        }
        if !matches!(command.method, Method::Publish(_)) {
            // Nothing overtakes a publish: whatever this command reads or changes (a
            // subscription, presence, history) is seen after the publishes before it.
            self.drain_publishes().await;
        }
        let id = command.id;
        if id == 0 && !matches!(command.method, Method::Send(_)) {
            // Every command but `send` expects a reply, so it needs an id.
            self.close(DisconnectCode::BadRequest);
            return;
        }
        let outcome = if self.identity.is_none() {
            match command.method {
                Method::Connect(request) => self.connect(id, request).await,
                _ => Err(Failure::Close(DisconnectCode::BadRequest)),
            }
        } else {
            self.dispatch(id, command.method).await
        };
        match outcome {
            Ok(()) => {}
            Err(Failure::Error(error)) => self.reply(id, error),
            Err(Failure::Close(code)) => self.close(code),
        }
    }

    async fn dispatch(&mut self, id: u32, method: Method) -> Handled {
        match method {
            Method::Connect(_) => Err(Failure::Close(DisconnectCode::BadRequest)),
            Method::Subscribe(request) => self.subscribe(id, request).await,
            Method::Unsubscribe(request) => self.unsubscribe(id, &request.channel).await,
            Method::Publish(request) => self.publish(id, request).await,
            Method::Presence(request) => self.presence(id, &request.channel).await,
            Method::PresenceStats(request) => self.presence_stats(id, &request.channel).await,
            Method::History(request) => self.history(id, request).await,
            Method::Refresh(request) => self.refresh(id, &request.token).await,
            Method::Ping(_) => {
                self.reply(id, PingResult {});
                Ok(())
            }
            // Nothing listens for `send`; it expects no reply.
            Method::Send(_) => Ok(()),
            Method::Rpc(_) | Method::SubRefresh(_) | Method::Unknown => {
                Err(ErrorCode::MethodNotFound.into())
            }
        }
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.timers.connect_by) {
            self.timers.connect_by = None;
            self.close(DisconnectCode::Stale);
            return;
        }
        if due(self.timers.pong_by) {
            self.timers.pong_by = None;
            self.close(DisconnectCode::NoPong);
            return;
        }
        if due(self.timers.expires_at) {
            self.timers.expires_at = None;
            self.close(DisconnectCode::Expired);
            return;
        }
        if due(self.timers.next_ping) {
            let settings = &self.shared.settings;
            self.timers.next_ping = Some(now + settings.ping_interval);
            if self.timers.pong_by.is_none() {
                self.timers.pong_by = Some(now + settings.pong_timeout);
            }
            self.send(ByteString::from_static(PING));
        }
        if due(self.timers.next_presence) {
            self.timers.next_presence = Some(now + self.presence_refresh_interval());
            self.refresh_presence().await;
        }
    }

    /// Queues an encoded message for the client.
    pub fn send(&self, message: ByteString) {
        // A refused push means the connection is already closing; nothing else to do.
        let _ = self.target.outbox.push(message.into());
    }

    /// Queues the reply to command `id`.
    pub fn reply(&self, id: u32, body: impl Into<ReplyBody>) {
        match Reply::new(id, body).encode() {
            Ok(text) => self.send(ByteString::from(text)),
            Err(err) => {
                tracing::error!(error = %err, "reply not encodable");
                self.close(DisconnectCode::ServerError);
            }
        }
    }

    /// Closes the connection after what is already queued.
    pub fn close(&self, code: DisconnectCode) {
        self.target.outbox.close(code.to_disconnect());
    }

    /// How often presence entries are refreshed: three times per presence TTL.
    pub fn presence_refresh_interval(&self) -> Duration {
        (self.shared.settings.limits.presence_ttl / 3).max(Duration::from_millis(100))
    }
}

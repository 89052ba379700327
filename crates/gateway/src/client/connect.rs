//! `connect` and `refresh`.
//!
//! - A missing or invalid token (forged, unknown key, `alg: none`, wrong audience, ...)
//!   closes with 3500, which the SDK treats as terminal; an expired one is answered with
//!   error 109, so the SDK fetches a new token and connects again.
//! - The per-user connection limit closes with 3504.
//! - Every connection is subscribed server-side to `notifications#<own user id>`; when the
//!   connect carries that channel in `subs` with `recover`, the missed publications come
//!   back in the connect reply's `subs` (all or nothing), and nothing published meanwhile is
//!   lost or duplicated (the reply goes out through the subscription's slot, which then
//!   skips whatever the reply already carried, even when its live message comes later).
//! - The reply's `expires`/`ttl` come from the token's `exp`; `refresh` with a new token of
//!   the same user moves the deadline; without it the connection closes with 3005 a grace
//!   period after the token expired.
//! - When some namespace lets anonymous readers in (`HERALD_CHANNELS__PUBLIC__ANONYMOUS`),
//!   a connect without a token is an anonymous connection: user `""`, its own client id,
//!   no expiry, no server-side subscription, within the per-address limit of anonymous
//!   connections (else 3504). It may only subscribe to and read those namespaces; it has
//!   nothing to refresh (3501). Otherwise a missing token closes with 3500 as above.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytestring::ByteString;
use herald_common::ids::ClientId;
use herald_common::payload::ConnInfo;
use herald_common::protocol::{
    ClientInfo, ConnectRequest, ConnectResult, DisconnectCode, ErrorCode, RefreshResult, Reply,
    SubscribeResult,
};
use tokio::time::Instant;

use super::session::{Client, Failure, Handled, Identity};
use crate::fanout::{self, slot::SlotKind, slot::Started};
use crate::registry::LimitReached;
use crate::subscription::{self, Subscription};
use crate::token::{self, Grant, Refusal};

/// The server version reported to clients.
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Client {
    pub(super) async fn connect(&mut self, id: u32, request: ConnectRequest) -> Handled {
        if request.token.is_empty() && self.shared.policy.allows_anonymous() {
            return self.connect_anonymous(id);
        }
        let grant = self.check_token(&request.token).await?;
        // A connect retried on the same socket (after a temporary error) keeps its user and
        // client id: the registry already files the connection under them.
        let earlier = self.target.identity().cloned();
        if earlier
            .as_ref()
            .is_some_and(|earlier| earlier.user != grant.user)
        {
            return Err(Failure::Close(DisconnectCode::BadRequest));
        }
        if let Err(err) = self.admission.assign_user(grant.user) {
            tracing::info!(user = %grant.user, error = %err, "connection refused");
            return Err(Failure::Close(match err {
                LimitReached::Node | LimitReached::User | LimitReached::Address => {
                    DisconnectCode::ConnectionLimit
                }
            }));
        }
        let client = earlier.map_or_else(ClientId::new, |earlier| earlier.client);
        self.target.set_identity(fanout::Identity {
            user: grant.user,
            client,
        });
        let conn_info = ConnInfo {
            name: grant.name.clone(),
        }
        .to_raw()
        .map_err(|err| {
            tracing::error!(error = %err, "conn_info not encodable");
            Failure::Error(ErrorCode::Internal.into())
        })?;
        let info = ClientInfo {
            user: grant.user.to_string(),
            client: client.to_string(),
            conn_info: Some(conn_info),
            chan_info: None,
        };

        // The server-side subscription, recovered through the connect `subs` map.
        let (channel, options) = self.shared.policy.server_side(&grant.user);
        let history = options.history.is_enabled();
        let since = request
            .subs
            .get(channel.as_str())
            .and_then(|sub| sub.recover_since())
            .filter(|_| history);
        let slot = subscription::attach(
            &self.shared,
            &self.target,
            &channel,
            SlotKind::ServerSide,
            false,
        )
        .await
        .map_err(|err| {
            tracing::warn!(%channel, error = %err, "server-side subscription failed");
            Failure::Error(ErrorCode::Internal.into())
        })?;
        let start = match subscription::start(&self.shared, &channel, &options, since.as_ref())
            .await
        {
            Ok(start) => start,
            Err(err) => {
                tracing::warn!(%channel, error = %err, "server-side subscription position unavailable");
                subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
                return Err(ErrorCode::Internal.into());
            }
        };
        let position = start.position;
        if history {
            slot.set_positioned();
        }
        let sub_result = SubscribeResult {
            recoverable: history,
            positioned: history,
            epoch: position.epoch.clone(),
            offset: position.offset,
            recovered: start.recovered && since.is_some(),
            was_recovering: since.is_some(),
            publications: if start.recovered {
                start.publications
            } else {
                Vec::new()
            },
            ..SubscribeResult::default()
        };
        let ttl = grant.ttl();
        let result = ConnectResult {
            client: info.client.clone(),
            version: VERSION.to_owned(),
            expires: true,
            ttl: reported_ttl(ttl),
            subs: BTreeMap::from([(channel.clone(), sub_result)]),
            ping: ping_seconds(self.shared.settings.ping_interval),
            pong: true,
            ..ConnectResult::default()
        };
        let reply = Reply::new(id, result).encode().map_err(|err| {
            tracing::error!(error = %err, "connect reply not encodable");
            Failure::Error(ErrorCode::Internal.into())
        })?;

        self.subs.insert(
            channel.clone(),
            Subscription {
                slot: Arc::clone(&slot),
                options,
                in_presence: false,
                announced: false,
            },
        );
        self.identity = Some(Identity {
            grant: Some(grant),
            info,
        });
        let now = Instant::now();
        self.timers.connect_by = None;
        self.timers.next_ping = Some(now + self.shared.settings.ping_interval);
        self.timers.next_presence = Some(now + self.presence_refresh_interval());
        self.arm_expiry(ttl);
        // As for a subscribe: the client has everything up to the reply's position, and
        // nothing at or below it is delivered live.
        match slot.go_live(
            &self.target,
            Some(ByteString::from(reply)),
            history.then_some(&position),
        ) {
            Started::Live => Ok(()),
            Started::Gap | Started::Ended => Err(Failure::Close(DisconnectCode::InsufficientState)),
        }
    }

    /// A connect without a token, when some namespace admits anonymous readers.
    fn connect_anonymous(&mut self, id: u32) -> Handled {
        if self.target.identity().is_some() {
            // A signed-in connect retried on this socket without its token.
            return Err(Failure::Close(DisconnectCode::BadRequest));
        }
        if let Err(err) = self.admission.assign_anonymous(self.ip) {
            tracing::info!(error = %err, "anonymous connection refused");
            return Err(Failure::Close(DisconnectCode::ConnectionLimit));
        }
        let info = ClientInfo {
            user: String::new(),
            client: ClientId::new().to_string(),
            conn_info: None,
            chan_info: None,
        };
        self.reply(
            id,
            ConnectResult {
                client: info.client.clone(),
                version: VERSION.to_owned(),
                ping: ping_seconds(self.shared.settings.ping_interval),
                pong: true,
                ..ConnectResult::default()
            },
        );
        self.identity = Some(Identity { grant: None, info });
        self.timers.connect_by = None;
        self.timers.next_ping = Some(Instant::now() + self.shared.settings.ping_interval);
        Ok(())
    }

    pub(super) async fn refresh(&mut self, id: u32, token: &str) -> Handled {
        if self
            .identity
            .as_ref()
            .is_some_and(|identity| identity.grant.is_none())
        {
            // An anonymous connection never expires: it has no token to refresh.
            return Err(Failure::Close(DisconnectCode::BadRequest));
        }
        let grant = self.check_token(token).await?;
        let Some(identity) = self.identity.as_mut() else {
            return Err(Failure::Close(DisconnectCode::BadRequest));
        };
        let Some(current) = identity.grant.as_mut() else {
            return Err(Failure::Close(DisconnectCode::BadRequest));
        };
        if grant.user != current.user {
            tracing::info!("refresh with another user's token");
            return Err(Failure::Close(DisconnectCode::InvalidToken));
        }
        let ttl = grant.ttl();
        let client = identity.info.client.clone();
        *current = grant;
        self.arm_expiry(ttl);
        self.reply(
            id,
            RefreshResult {
                client,
                version: VERSION.to_owned(),
                expires: true,
                ttl: reported_ttl(ttl),
            },
        );
        Ok(())
    }

    async fn check_token(&self, token: &str) -> Result<Grant, Failure> {
        match token::verify(&self.shared.verifier, token).await {
            Ok(grant) => Ok(grant),
            Err(Refusal::Expired) => Err(ErrorCode::TokenExpired.into()),
            Err(refusal) => {
                tracing::info!(reason = %refusal, "token refused");
                Err(Failure::Close(DisconnectCode::InvalidToken))
            }
        }
    }

    /// Closes the connection `ttl` seconds from now plus the grace period, unless a
    /// refresh moves it.
    fn arm_expiry(&mut self, ttl: u64) {
        let grace = self.shared.settings.limits.expired_close_delay;
        self.timers.expires_at = Some(Instant::now() + std::time::Duration::from_secs(ttl) + grace);
    }
}

/// The `ttl` of a reply: at least 1, since 0 would be left out of the JSON while `expires`
/// is true (a token in its last second is refreshed at once).
fn reported_ttl(ttl: u64) -> u32 {
    u32::try_from(ttl.max(1)).unwrap_or(u32::MAX)
}

/// The ping interval as the whole seconds the connect reply carries (at least 1).
fn ping_seconds(interval: std::time::Duration) -> u32 {
    let secs = interval.as_secs_f64().ceil();
    if secs < 1.0 {
        1
    } else {
        secs.min(f64::from(u32::MAX)) as u32
    }
}

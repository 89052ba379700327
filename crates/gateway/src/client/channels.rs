//! `subscribe` and `unsubscribe`, presence upkeep, and releasing everything at the end.
//!
//! Subscribe checks, in order: the channel name (107), the channel table (102, 103, 105),
//! a duplicate (105), the channel limit (106); then subscribes without losing or
//! reordering anything (see [`crate::subscription`]): recovery is all or nothing, and a
//! client that asked for it with the SDK's "reject unrecovered" flag gets 112 instead of a
//! fresh start.

use bytestring::ByteString;
use futures_util::future::join_all;
use herald_common::channel::ChannelName;
use herald_common::protocol::{
    ErrorCode, Reply, SubscribeRequest, SubscribeResult, UnsubscribeResult,
};

use super::session::{Client, Failure, Handled};
use crate::fanout::dispatch::insufficient_state_push;
use crate::fanout::slot::{SlotKind, Started};
use crate::policy::Viewer;
use crate::subscription::{self, AttachError, Subscription};

/// The SDK's subscribe flag asking for error 112 rather than an unrecovered start.
const FLAG_REJECT_UNRECOVERED: i64 = 2;

/// Parses a channel name from a request (107 when it is not one).
pub(super) fn parse_channel(raw: &str) -> Result<ChannelName, Failure> {
    ChannelName::parse(raw).map_err(|_| ErrorCode::BadRequest.into())
}

impl Client {
    pub(super) async fn subscribe(&mut self, id: u32, request: SubscribeRequest) -> Handled {
        let channel = parse_channel(&request.channel)?;
        let options = self.shared.policy.subscribe(&channel, self.viewer()?)?;
        if let Some(existing) = self.subs.get(&channel) {
            if !existing.slot.is_ended() {
                return Err(ErrorCode::AlreadySubscribed.into());
            }
            // Ended by a gap and not cleaned up yet: the client is resubscribing.
            self.drop_subscription(&channel).await;
        }
        if self.subs.len() >= self.shared.settings.limits.max_channels {
            return Err(ErrorCode::LimitExceeded.into());
        }
        let history = options.history.is_enabled();
        let join_leave = request.join_leave && options.join_leave;
        let since = request.recover_since().filter(|_| history);
        let slot = match subscription::attach(
            &self.shared,
            &self.target,
            &channel,
            SlotKind::Client,
            join_leave,
        )
        .await
        {
            Ok(slot) => slot,
            Err(AttachError::AlreadySubscribed) => return Err(ErrorCode::AlreadySubscribed.into()),
            Err(AttachError::Broker(err)) => {
                tracing::warn!(%channel, error = %err, "subscribe failed");
                return Err(ErrorCode::Internal.into());
            }
        };
        let start =
            match subscription::start(&self.shared, &channel, &options, since.as_ref()).await {
                Ok(start) => start,
                Err(err) => {
                    tracing::warn!(%channel, error = %err, "subscribe position unavailable");
                    subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
                    return Err(ErrorCode::Internal.into());
                }
            };
        let recovering = since.is_some();
        if recovering && !start.recovered && request.flag & FLAG_REJECT_UNRECOVERED != 0 {
            subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
            return Err(ErrorCode::UnrecoverablePosition.into());
        }
        let position = start.position;
        let positioned = history && (request.positioned || request.recoverable);
        if positioned {
            slot.set_positioned();
        }
        let result = SubscribeResult {
            recoverable: history,
            positioned,
            epoch: position.epoch.clone(),
            offset: position.offset,
            recovered: recovering && start.recovered,
            was_recovering: recovering,
            publications: if start.recovered {
                start.publications
            } else {
                Vec::new()
            },
            ..SubscribeResult::default()
        };
        let reply = match Reply::new(id, result).encode() {
            Ok(reply) => ByteString::from(reply),
            Err(err) => {
                tracing::error!(error = %err, "subscribe reply not encodable");
                subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
                return Err(ErrorCode::Internal.into());
            }
        };
        // The client's position is the reply's: its top offset, which is also the last
        // publication it recovered; nothing at or below it is delivered live.
        match slot.go_live(&self.target, Some(reply), history.then_some(&position)) {
            Started::Live => {}
            Started::Gap => {
                // Something may be missing after the reply: the client resubscribes and recovers.
                self.send(insufficient_state_push(&channel));
                subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
                return Ok(());
            }
            Started::Ended => {
                subscription::abandon(&self.shared, &self.target, &channel, &slot).await;
                return Ok(());
            }
        }
        let mut subscription = Subscription {
            slot,
            options,
            in_presence: false,
            announced: false,
        };
        if let Some(info) = self.identity.as_ref().map(|identity| identity.info.clone()) {
            if options.presence {
                match subscription::enter_presence(&self.shared, &channel, &info).await {
                    Ok(()) => subscription.in_presence = true,
                    Err(err) => tracing::warn!(%channel, error = %err, "presence not recorded"),
                }
            }
            if options.join_leave {
                match self.shared.broker.publish_join(&channel, &info).await {
                    Ok(()) => subscription.announced = true,
                    Err(err) => tracing::warn!(%channel, error = %err, "join not announced"),
                }
            }
        }
        self.subs.insert(channel, subscription);
        Ok(())
    }

    pub(super) async fn unsubscribe(&mut self, id: u32, raw: &str) -> Handled {
        let channel = parse_channel(raw)?;
        let server_side = self
            .subs
            .get(&channel)
            .is_some_and(|sub| sub.slot.kind() == SlotKind::ServerSide);
        // Server-side subscriptions are the server's to end; unknown channels are a no-op.
        if !server_side {
            self.drop_subscription(&channel).await;
        }
        self.reply(id, UnsubscribeResult {});
        Ok(())
    }

    /// Cleans up subscriptions the fan-out ended (gaps); their clients already got the
    /// unsubscribe push.
    pub(super) async fn drop_ended_subscriptions(&mut self) {
        for channel in self.target.take_ended() {
            if self
                .subs
                .get(&channel)
                .is_some_and(|sub| sub.slot.is_ended())
            {
                self.drop_subscription(&channel).await;
            }
        }
    }

    /// Ends one subscription, if there is one.
    pub(super) async fn drop_subscription(&mut self, channel: &ChannelName) {
        let Some(subscription) = self.subs.remove(channel) else {
            return;
        };
        match self.identity.as_ref() {
            Some(identity) => {
                subscription::detach(
                    &self.shared,
                    &self.target,
                    channel,
                    &subscription,
                    &identity.info,
                )
                .await;
            }
            None => {
                subscription::abandon(&self.shared, &self.target, channel, &subscription.slot).await
            }
        }
    }

    /// Ends every subscription (the connection is over).
    pub(super) async fn release_all(&mut self) {
        let subs: Vec<_> = self.subs.drain().collect();
        let shared = &self.shared;
        let target = &self.target;
        let info = self.identity.as_ref().map(|identity| &identity.info);
        join_all(subs.iter().map(|(channel, subscription)| async move {
            match info {
                Some(info) => {
                    subscription::detach(shared, target, channel, subscription, info).await
                }
                None => subscription::abandon(shared, target, channel, &subscription.slot).await,
            }
        }))
        .await;
    }

    /// Refreshes the presence entries of this connection.
    pub(super) async fn refresh_presence(&self) {
        let Some(identity) = self.identity.as_ref() else {
            return;
        };
        let refreshes =
            self.subs
                .iter()
                .filter(|(_, sub)| sub.in_presence)
                .map(|(channel, _)| async move {
                    if let Err(err) =
                        subscription::enter_presence(&self.shared, channel, &identity.info).await
                    {
                        tracing::debug!(%channel, error = %err, "presence refresh failed");
                    }
                });
        join_all(refreshes).await;
    }

    /// Who the connection is for the channel table: its user, or anonymous (only called
    /// after `connect`).
    pub(super) fn viewer(&self) -> Result<Viewer, Failure> {
        let identity = self.identity.as_ref().ok_or(Failure::Close(
            herald_common::protocol::DisconnectCode::BadRequest,
        ))?;
        Ok(identity
            .grant
            .as_ref()
            .map_or(Viewer::Anonymous, |grant| Viewer::User(grant.user)))
    }
}

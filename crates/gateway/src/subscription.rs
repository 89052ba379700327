//! Subscribing a connection to a channel without losing or reordering anything, and
//! unsubscribing it; shared by the client protocol and the simple endpoints.
//!
//! The order is what makes it safe (see [`crate::fanout::slot`]):
//! 1. [`attach`]: register the (channel, connection) in the hub, buffering;
//! 2. take the node's broker reference (the first one subscribes Redis and waits for the
//!    confirmation);
//! 3. [`start`]: read the recovery or the channel's position, **after** the subscription is
//!    effective, so every later publication reaches the buffer;
//! 4. the caller queues its reply with [`Slot::go_live`], which flushes what the reply does
//!    not contain and switches to live delivery.
//!
//! [`detach`] undoes all of it, plus presence and the leave announcement.

use std::sync::Arc;

use herald_broker::BrokerError;
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, Publication, StreamPosition};

use crate::fanout::Target;
use crate::fanout::hub::Member;
use crate::fanout::slot::{Slot, SlotKind};
use crate::policy::ChannelOptions;
use crate::state::Shared;

/// Why a subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The connection is already subscribed to the channel.
    #[error("already subscribed")]
    AlreadySubscribed,
    /// The broker could not subscribe the node (Redis unreachable).
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A connection's subscription, owned by the connection's task.
#[derive(Debug)]
pub struct Subscription {
    /// Its delivery state in the hub.
    pub slot: Arc<Slot>,
    /// What the namespace offers.
    pub options: ChannelOptions,
    /// The connection is in the channel's presence (refresh it, remove it at the end).
    pub in_presence: bool,
    /// A join was announced (announce the leave at the end).
    pub announced: bool,
}

/// Where a new subscription starts: the stream position and, when recovering, what was
/// missed.
#[derive(Debug, Clone)]
pub struct Start {
    /// The channel's current position (empty without history).
    pub position: StreamPosition,
    /// The missed publications, oldest first, when recovered.
    pub publications: Vec<Publication>,
    /// Whether the recovery returned everything that was missed.
    pub recovered: bool,
}

/// Steps 1 and 2: registers the subscription in the hub (buffering) and takes the node's
/// broker reference.
pub async fn attach(
    shared: &Shared,
    target: &Arc<Target>,
    channel: &ChannelName,
    kind: SlotKind,
    join_leave: bool,
) -> Result<Arc<Slot>, AttachError> {
    let slot = Arc::new(Slot::new(kind));
    let member = Member {
        target: Arc::clone(target),
        slot: Arc::clone(&slot),
        join_leave,
    };
    if !shared.hub.insert(channel, member) {
        return Err(AttachError::AlreadySubscribed);
    }
    if let Err(err) = shared.subscriber.subscribe(channel).await {
        slot.end();
        shared.hub.remove(channel, target.id);
        return Err(err.into());
    }
    shared.stats.subscribed();
    shared.node.channel_joined(channel);
    Ok(slot)
}

/// Step 3: the recovery from `since` (all or nothing), or the current position.
pub async fn start(
    shared: &Shared,
    channel: &ChannelName,
    options: &ChannelOptions,
    since: Option<&StreamPosition>,
) -> Result<Start, BrokerError> {
    if !options.history.is_enabled() {
        return Ok(Start {
            position: empty_position(),
            publications: Vec::new(),
            recovered: since.is_some(),
        });
    }
    let start = match since {
        Some(since) => {
            let max = shared.settings.limits.history_max;
            let recovery = shared.broker.recover(channel, since, max).await?;
            Start {
                position: recovery.position,
                publications: recovery.publications,
                recovered: recovery.recovered,
            }
        }
        None => Start {
            position: shared.broker.position(channel).await?,
            publications: Vec::new(),
            recovered: false,
        },
    };
    // Read after the node's subscription was effective: a reconnect of the node's pub/sub
    // connection can recover the channel in place from here.
    shared.subscriber.note_position(channel, &start.position);
    Ok(start)
}

fn empty_position() -> StreamPosition {
    StreamPosition {
        offset: 0,
        epoch: String::new(),
    }
}

/// Undoes [`attach`] after a failed start (nothing was announced).
pub async fn abandon(shared: &Shared, target: &Target, channel: &ChannelName, slot: &Slot) {
    slot.end();
    if shared.hub.remove(channel, target.id).is_some() {
        shared.stats.unsubscribed();
        shared.node.channel_left(channel);
        shared.subscriber.unsubscribe(channel).await;
    }
}

/// Ends a subscription: no more deliveries, out of the hub, broker reference released,
/// presence entry removed, leave announced. Broker failures are logged: presence entries
/// expire by themselves.
pub async fn detach(
    shared: &Shared,
    target: &Target,
    channel: &ChannelName,
    subscription: &Subscription,
    info: &ClientInfo,
) {
    abandon(shared, target, channel, &subscription.slot).await;
    if subscription.in_presence
        && let Err(err) = shared.broker.presence_remove(channel, &info.client).await
    {
        tracing::debug!(%channel, error = %err, "presence removal failed; the entry will expire");
    }
    if subscription.announced
        && let Err(err) = shared.broker.publish_leave(channel, info).await
    {
        tracing::debug!(%channel, error = %err, "leave not announced");
    }
}

/// Adds (or refreshes) the connection in the channel's presence.
pub async fn enter_presence(
    shared: &Shared,
    channel: &ChannelName,
    info: &ClientInfo,
) -> Result<(), BrokerError> {
    shared
        .broker
        .presence_add(
            channel,
            &info.client,
            info,
            shared.settings.limits.presence_ttl,
        )
        .await
}

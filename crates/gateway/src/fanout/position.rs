//! The position check of positioned subscriptions (protocol: `positioned`).
//!
//! The dispatcher notices a lost publication when the next one arrives with a skipped
//! offset. When the lost one was the last, nothing arrives: this task catches it. Every
//! `HERALD_POSITION_CHECK_INTERVAL` it reads the stream top of each channel that has a
//! positioned subscriber on this node and compares it with what the node delivered (or,
//! before any delivery, with where the subscriptions started). A publication may be in
//! flight between Redis and the node, so one look is only a suspicion: the top is
//! remembered, and when the next check finds the node still short of it (or on another
//! epoch) it reports a gap through the node's broker subscriber
//! ([`Subscriber::report_gap`]): the gap reaches the dispatcher in the same receiver as the
//! channel's events, in order with them, and goes through its gap path (unsubscribe 2500
//! for client-side subscriptions, close 3010 for server-side ones). This task never
//! delivers anything itself.
//!
//! The work per tick is bounded: at most [`CHANNELS_PER_TICK`] channels (the others on the
//! next ticks), [`CONCURRENCY`] broker calls at a time, each with a timeout. A failing
//! broker is logged and the channel is checked again later.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use herald_broker::{Broker, Subscriber};
use herald_common::channel::ChannelName;
use herald_common::protocol::StreamPosition;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;

/// Most channels checked per tick.
pub const CHANNELS_PER_TICK: usize = 2_000;

/// Broker calls in flight at a time.
pub const CONCURRENCY: usize = 16;

/// Longest wait for one channel's position.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the check every `interval` until `shutdown` fires; a zero interval disables it.
pub async fn run(
    hub: Arc<Hub>,
    broker: Broker,
    subscriber: Subscriber,
    interval: Duration,
    shutdown: CancellationToken,
) {
    if interval.is_zero() {
        tracing::info!("position check disabled (HERALD_POSITION_CHECK_INTERVAL=0)");
        return;
    }
    let mut checker = Checker {
        hub,
        broker,
        subscriber,
        timeout: CALL_TIMEOUT.min(interval),
        suspects: HashMap::new(),
        cursor: 0,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = checker.check() => {}
        }
    }
}

/// The check's state between ticks.
struct Checker {
    hub: Arc<Hub>,
    broker: Broker,
    /// Where found gaps are reported (the dispatcher's receiver).
    subscriber: Subscriber,
    timeout: Duration,
    /// Channels found behind at their last check, with the stream top seen then.
    suspects: HashMap<ChannelName, StreamPosition>,
    /// Where the next tick starts among the positioned channels.
    cursor: usize,
}

impl Checker {
    /// One tick: the next slice of positioned channels.
    async fn check(&mut self) {
        let (channels, total) = self.hub.positioned_channels(self.cursor, CHANNELS_PER_TICK);
        let next = self.cursor + channels.len();
        if next >= total {
            self.cursor = 0;
            // A full round is done: forget channels nobody here is subscribed to any more.
            let hub = &self.hub;
            self.suspects
                .retain(|channel, _| hub.with_channel(channel.as_str(), |_| ()).is_some());
        } else {
            self.cursor = next;
        }
        let broker = &self.broker;
        let timeout = self.timeout;
        let tops: Vec<_> = stream::iter(channels)
            .map(|channel| async move {
                let top = tokio::time::timeout(timeout, broker.position(&channel)).await;
                (channel, top)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (channel, top) in tops {
            match top {
                Ok(Ok(top)) => self.compare(channel, top),
                Ok(Err(err)) => {
                    tracing::warn!(%channel, error = %err, "position check: position unavailable");
                }
                Err(_) => {
                    tracing::warn!(%channel, "position check: position read timed out");
                }
            }
        }
    }

    /// Compares the node's position on `channel` with the stream's `top`.
    fn compare(&mut self, channel: ChannelName, top: StreamPosition) {
        let behind = |position: &StreamPosition| {
            self.hub
                .with_channel(channel.as_str(), |entry| {
                    entry.is_behind(&position.epoch, position.offset)
                })
                .unwrap_or(false)
        };
        if let Some(previous) = self.suspects.remove(&channel)
            && behind(&previous)
        {
            tracing::info!(
                %channel,
                epoch = %previous.epoch,
                offset = previous.offset,
                "position check: a publication never arrived; subscribers recover"
            );
            self.subscriber.report_gap(&channel);
            return;
        }
        if behind(&top) {
            self.suspects.insert(channel, top);
        }
    }
}

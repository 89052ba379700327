//! The fan-out task: consumes the node's broker events and delivers them to local
//! subscribers.
//!
//! - **Publication**: checked against the channel's last delivered offset, encoded once per
//!   format that some member needs (protocol push, chat line, notification line) into a
//!   shared `ByteString`, and pushed into each member's outbox (or its buffer while it
//!   subscribes) unless that member's client already has it (its subscribe or connect
//!   reply carried it, see [`super::slot`]). Per delivery that is an offset compare, a
//!   reference-count increment and a short lock. The message is an [`Outgoing::shared`]:
//!   its permessage-deflate form, too, is computed once, by the first subscriber that
//!   negotiated compression, and reused by the others.
//! - **Gap** (an offset jump, a changed epoch, or the broker's `GapPossible` after a Redis
//!   reconnect or a full receiver): client-side subscriptions get an unsubscribe push with
//!   2500 (the SDK resubscribes and recovers), connections holding it server-side (and the
//!   simple endpoints) are closed with 3010 (they reconnect and recover).
//! - **Join / leave**: encoded once per format, pushed to protocol members that asked for
//!   them and written as `* alice joined` / `* alice left` lines to simple chat members.
//! - **Control** (revocation on logout, server-side disconnects): the affected connections
//!   of this node are closed with the message's code.
//!
//! The run loop is the fan-out's only writer: every input (the broker's events, the gaps
//! the position check reports through [`herald_broker::Subscriber::report_gap`], node-wide
//! control messages) arrives through the one receiver it consumes, and it handles them one
//! after another. That, not the hub's read lock (which only keeps a channel's members from
//! changing during a pass, and admits any number of readers), is what orders the deliveries
//! of one subscription: nothing delivered after a gap's unsubscribe or close can overtake
//! it. Each event is handled synchronously; nothing awaits while delivering.

use std::sync::Arc;

use bytestring::ByteString;
use herald_broker::BrokerEvent;
use herald_common::channel::ChannelName;
use herald_common::control::ControlMessage;
use herald_common::payload::{chat_line, join_leave_line, notification_line};
use herald_common::protocol::{
    ClientInfo, DisconnectCode, Publication, Push, Unsubscribe, UnsubscribeCode, encode_join_push,
    encode_leave_push, encode_publication_push,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Format;
use super::hub::{ChannelEntry, Continuity, Hub};
use super::outbox::Wakes;
use super::slot::SlotKind;
use crate::metrics::NodeStats;
use crate::registry::Registry;
use crate::transport::Outgoing;

/// Events taken from the broker's receiver per wake-up.
const BATCH: usize = 256;

/// Most members of a channel whose lone publication is written to their sockets by the
/// fan-out itself. Those writes happen one after another on the fan-out's thread, about
/// 5 µs each on loopback; for more members, queueing lets the connections' own tasks write
/// in parallel on every worker thread, which wins once the sequence would take over a
/// millisecond (docs/benchmarks.md: at 1000 subscribers p99 fell from 57–79 ms to 12 ms, at
/// 500 from 10–12 ms to 6 ms, while at 200 direct writes stay cheaper).
const DIRECT_MAX_MEMBERS: usize = 256;

/// Whether a publication goes straight to the idle members' sockets: when it arrived alone
/// (`lone`) and the channel is small enough that one thread writing them all is quickest.
fn writes_directly(lone: bool, members: usize) -> bool {
    lone && members <= DIRECT_MAX_MEMBERS
}

/// Delivers broker events to this node's connections. Not `Clone`: [`Dispatcher::run`]
/// consumes it, so it is the only writer of the fan-out.
#[derive(Debug)]
pub struct Dispatcher {
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    stats: Arc<NodeStats>,
}

impl Dispatcher {
    /// A dispatcher over the node's hub and registry.
    pub fn new(hub: Arc<Hub>, registry: Arc<Registry>, stats: Arc<NodeStats>) -> Self {
        Self {
            hub,
            registry,
            stats,
        }
    }

    /// Consumes `events` until `shutdown` fires or the broker subscriber is gone.
    ///
    /// Each batch of events is delivered before the writers are woken (every
    /// [`super::outbox::WAKE_AFTER`] deliveries at the latest): a writer then joins what
    /// the batch queued for it into one frame. An event that arrives alone is written
    /// straight to the sockets of idle connections ([`Wakes::set_direct`]), unless its
    /// channel has more than [`DIRECT_MAX_MEMBERS`] members.
    pub async fn run(self, mut events: mpsc::Receiver<BrokerEvent>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut wakes = Wakes::default();
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = events.recv_many(&mut batch, BATCH) => received,
            };
            if received == 0 {
                tracing::warn!("the broker subscriber stopped; no more deliveries");
                return;
            }
            // A lone event (nothing else waiting) may be written to idle connections at
            // once; a batch is queued, so that each writer joins it into few frames.
            let lone = received == 1 && events.is_empty();
            for event in batch.drain(..) {
                self.deliver(event, lone, &mut wakes);
                if wakes.due() {
                    wakes.flush();
                }
            }
            wakes.flush();
        }
    }

    /// Delivers one event (`lone`: nothing else was waiting); the writers' wake-ups go into
    /// `wakes`.
    fn deliver(&self, event: BrokerEvent, lone: bool, wakes: &mut Wakes) {
        match event {
            BrokerEvent::Publication {
                channel,
                publication,
                epoch,
            } => {
                self.publication(&channel, &publication, &epoch, lone, wakes);
            }
            BrokerEvent::Join { channel, info } => {
                self.join_leave(&channel, &info, true, lone, wakes);
            }
            BrokerEvent::Leave { channel, info } => {
                self.join_leave(&channel, &info, false, lone, wakes);
            }
            BrokerEvent::GapPossible { channel } => {
                self.hub
                    .with_channel(channel.as_str(), |entry| self.gap(&channel, entry));
            }
            BrokerEvent::Control(payload) => self.control(&payload),
        }
    }

    fn publication(
        &self,
        channel: &ChannelName,
        publication: &Publication,
        epoch: &str,
        lone: bool,
        wakes: &mut Wakes,
    ) {
        let _span = crate::trace::deliver_span(&self.hub, channel, publication);
        self.hub.with_channel(channel.as_str(), |entry| {
            match entry.advance(epoch, publication.offset) {
                Continuity::InOrder => {}
                Continuity::Stale => return,
                Continuity::Gap => {
                    self.gap(channel, entry);
                    return;
                }
            }
            let mut encoded = Encoded::new(channel, publication);
            wakes.set_direct(writes_directly(lone, entry.members.len()));
            for member in entry.members.values() {
                if let Some(message) = encoded.get(member.target.format) {
                    member
                        .slot
                        .deliver(&member.target, epoch, publication.offset, message, wakes);
                }
            }
        });
    }

    fn join_leave(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
        join: bool,
        lone: bool,
        wakes: &mut Wakes,
    ) {
        self.hub.with_channel(channel.as_str(), |entry| {
            wakes.set_direct(writes_directly(lone, entry.members.len()));
            // Encoded once per format some member asked for: a protocol push, a chat line.
            let mut push: Option<Outgoing> = None;
            let mut line: Option<Outgoing> = None;
            for member in entry.members.values() {
                if !member.join_leave {
                    continue;
                }
                let message = match member.target.format {
                    Format::Protocol => {
                        if push.is_none() {
                            let encoded = if join {
                                encode_join_push(channel, info)
                            } else {
                                encode_leave_push(channel, info)
                            };
                            match encoded {
                                Ok(text) => push = Some(Outgoing::shared(ByteString::from(text))),
                                Err(err) => {
                                    tracing::warn!(%channel, error = %err, "join/leave push not encodable");
                                    return;
                                }
                            }
                        }
                        push.as_ref()
                    }
                    Format::ChatLines => Some(
                        &*line.get_or_insert_with(|| {
                            Outgoing::shared(ByteString::from(join_leave_line(info, join)))
                        }),
                    ),
                    Format::NotificationLines => None,
                };
                if let Some(message) = message {
                    member.slot.deliver(&member.target, "", 0, message, wakes);
                }
            }
        });
    }

    /// Makes every subscriber of the channel recover (see the module docs).
    fn gap(&self, channel: &ChannelName, entry: &ChannelEntry) {
        entry.reset();
        self.stats.gap();
        tracing::info!(%channel, subscribers = entry.members.len(), "possible gap; subscribers recover");
        let mut unsubscribe: Option<Outgoing> = None;
        for member in entry.members.values() {
            if !member.slot.gap() {
                // Buffering: the subscribe in progress reports it after its reply.
                continue;
            }
            let target = &member.target;
            match (member.slot.kind(), target.format) {
                (SlotKind::Client, Format::Protocol) => {
                    let message = unsubscribe
                        .get_or_insert_with(|| Outgoing::shared(insufficient_state_push(channel)));
                    let _ = target.outbox.push(message.clone());
                    target.subscription_ended(channel);
                }
                _ => target
                    .outbox
                    .close(DisconnectCode::InsufficientState.to_disconnect()),
            }
        }
    }

    fn control(&self, payload: &[u8]) {
        let message = match std::str::from_utf8(payload).map(ControlMessage::decode) {
            Ok(Ok(message)) => message,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "unknown control message ignored");
                return;
            }
            Err(_) => {
                tracing::warn!("control message is not UTF-8; ignored");
                return;
            }
        };
        let disconnect = message.disconnect();
        let mut closed = 0usize;
        for target in self.registry.of_user(message.user()) {
            let applies = target
                .identity()
                .is_some_and(|identity| message.applies_to(&identity.user, &identity.client));
            if applies {
                target.outbox.close(disconnect.clone());
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::info!(user = %message.user(), connections = closed, code = disconnect.code, "control message closed connections");
        }
    }
}

/// The unsubscribe push with code 2500 for `channel`.
pub fn insufficient_state_push(channel: &ChannelName) -> ByteString {
    let push = Push::Unsubscribe {
        channel: channel.clone(),
        unsubscribe: Unsubscribe::from(UnsubscribeCode::InsufficientState),
    };
    // An unsubscribe push is a channel name and two scalars: it always encodes.
    ByteString::from(push.encode().unwrap_or_default())
}

/// One publication, encoded at most once per format (and compressed at most once per
/// format, see [`Outgoing::shared`]).
struct Encoded<'a> {
    channel: &'a ChannelName,
    publication: &'a Publication,
    protocol: Option<Option<Outgoing>>,
    chat: Option<Outgoing>,
    notification: Option<Outgoing>,
}

impl<'a> Encoded<'a> {
    fn new(channel: &'a ChannelName, publication: &'a Publication) -> Self {
        Self {
            channel,
            publication,
            protocol: None,
            chat: None,
            notification: None,
        }
    }

    fn get(&mut self, format: Format) -> Option<&Outgoing> {
        match format {
            Format::Protocol => self
                .protocol
                .get_or_insert_with(|| match encode_publication_push(self.channel, self.publication) {
                    Ok(text) => Some(Outgoing::shared(ByteString::from(text))),
                    Err(err) => {
                        tracing::warn!(channel = %self.channel, error = %err, "publication not encodable");
                        None
                    }
                })
                .as_ref(),
            Format::ChatLines => {
                Some(self.chat.get_or_insert_with(|| {
                    Outgoing::shared(ByteString::from(chat_line(self.publication)))
                }))
            }
            Format::NotificationLines => Some(self.notification.get_or_insert_with(|| {
                Outgoing::shared(ByteString::from(
                    notification_line(self.publication).into_owned(),
                ))
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_publication_to_a_small_channel_is_written_directly() {
        assert!(writes_directly(true, 1));
        assert!(writes_directly(true, DIRECT_MAX_MEMBERS));
        assert!(!writes_directly(true, DIRECT_MAX_MEMBERS + 1));
        assert!(!writes_directly(false, 1));
    }
}

//! One subscription of one connection to one channel, as the fan-out sees it.
//!
//! A subscription starts **buffering**: it is in the hub before the broker subscription is
//! confirmed and before the channel's position is read, so nothing published meanwhile is
//! lost; what arrives is kept in a small buffer. [`Slot::go_live`] then queues the reply (the
//! subscribe reply, or the connect reply carrying the server-side subscription), then the
//! buffered messages that the reply does not already contain (offset above the reply's top
//! offset), records the reply's position as the one the client has, and switches to
//! **live**, all under the slot's lock, so nothing is lost or reordered.
//!
//! Live delivery takes a lock-free fast path, and it too skips every publication at or
//! below the client's position in its epoch: the recovery or position read may see a
//! publication in the stream before its pub/sub message reaches this node, and then the
//! reply carries it and the live message arrives after the reply. One integer compare per
//! delivery (the epochs are compared only for a publication at or below the position), so
//! nothing the client has is ever delivered again.
//!
//! A gap ([`Slot::gap`]) ends a live slot (the caller tells the client to recover); during
//! buffering it is remembered and reported by `go_live`, after the reply went out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use bytestring::ByteString;
use herald_common::protocol::StreamPosition;

use super::Target;
use super::outbox::Wakes;
use crate::transport::Outgoing;

/// Most bytes a buffering subscription keeps before it gives up and asks for a recovery.
const BUFFER_LIMIT: usize = 256 * 1024;

/// Whether the client subscribed itself or the server subscribed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A client-side subscription: a gap sends unsubscribe 2500 and the SDK resubscribes.
    Client,
    /// A server-side subscription (and the simple endpoints): a gap closes the connection
    /// with 3010 and the client recovers on reconnect.
    ServerSide,
}

/// What [`Slot::go_live`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The subscription is live.
    Live,
    /// Something may have been missed while buffering: the reply went out, but the
    /// subscription is over and the client must recover.
    Gap,
    /// The subscription was ended (connection closing) before it started.
    Ended,
}

#[derive(Debug)]
enum State {
    Buffering {
        items: Vec<(u64, Outgoing)>,
        bytes: usize,
        gap: bool,
    },
    Live,
    Ended,
}

/// One subscription's delivery state.
#[derive(Debug)]
pub struct Slot {
    /// `true` exactly while `state` is `Live`: the fast path of delivery.
    live: AtomicBool,
    state: Mutex<State>,
    kind: SlotKind,
    /// The stream position (epoch, offset) the client has once the reply went out: the
    /// reply's top offset, which is also the last one it recovered. Set by
    /// [`Slot::go_live`] before the slot turns live; unset for channels without history.
    position: OnceLock<(String, u64)>,
    /// The client asked for positioning: the position check compares `position` with the
    /// stream's top until the node delivers a publication of the channel.
    positioned: AtomicBool,
}

impl Slot {
    /// A buffering slot.
    pub fn new(kind: SlotKind) -> Self {
        Self {
            live: AtomicBool::new(false),
            state: Mutex::new(State::Buffering {
                items: Vec::new(),
                bytes: 0,
                gap: false,
            }),
            kind,
            position: OnceLock::new(),
            positioned: AtomicBool::new(false),
        }
    }

    /// Marks the subscription positioned (the client asked for it): the position check
    /// watches it from where it starts.
    pub fn set_positioned(&self) {
        self.positioned.store(true, Ordering::Release);
    }

    /// Where a positioned subscription started (the reply's position); `None` when it is
    /// not positioned or has not started yet.
    pub fn start(&self) -> Option<(&str, u64)> {
        if !self.positioned.load(Ordering::Acquire) {
            return None;
        }
        self.position()
    }

    /// The position the client has (its reply's epoch and top offset); `None` before
    /// [`Slot::go_live`] and for channels without history.
    pub fn position(&self) -> Option<(&str, u64)> {
        self.position
            .get()
            .map(|(epoch, offset)| (epoch.as_str(), *offset))
    }

    /// Whether the client already has the publication at (`epoch`, `offset`): at or below
    /// its position in the same epoch. Messages without an offset (0) are never had.
    #[inline]
    fn has(&self, epoch: &str, offset: u64) -> bool {
        match self.position.get() {
            Some((at_epoch, at_offset)) => {
                offset != 0 && offset <= *at_offset && at_epoch.as_str() == epoch
            }
            None => false,
        }
    }

    /// Client-side or server-side.
    pub fn kind(&self) -> SlotKind {
        self.kind
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every transition leaves the state whole, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers a message at stream position (`epoch`, `offset`) (offset 0 for messages
    /// without one, which are always delivered and which a buffering slot always flushes),
    /// unless the client already has it. The writer's wake-up goes into `wakes`.
    pub fn deliver(
        &self,
        target: &Target,
        epoch: &str,
        offset: u64,
        message: &Outgoing,
        wakes: &mut Wakes,
    ) {
        if self.live.load(Ordering::Acquire) {
            if !self.has(epoch, offset) {
                wakes.push(&target.outbox, message.clone());
            }
            return;
        }
        let mut state = self.lock();
        match &mut *state {
            State::Live => {
                if !self.has(epoch, offset) {
                    wakes.push(&target.outbox, message.clone());
                }
            }
            State::Buffering { items, bytes, gap } => {
                if *gap {
                    return;
                }
                *bytes += message.len();
                if *bytes > BUFFER_LIMIT {
                    items.clear();
                    *gap = true;
                } else {
                    items.push((offset, message.clone()));
                }
            }
            State::Ended => {}
        }
    }

    /// Queues `reply`, then the buffered messages the reply does not contain (with a
    /// `position`, the reply's, those above its offset; without, all of them), records
    /// `position` as the client's, and goes live: from then on nothing at or below it is
    /// delivered.
    pub fn go_live(
        &self,
        target: &Target,
        reply: Option<ByteString>,
        position: Option<&StreamPosition>,
    ) -> Started {
        let mut state = self.lock();
        let State::Buffering { items, gap, .. } = &mut *state else {
            if let Some(reply) = reply {
                let _ = target.outbox.push(reply.into());
            }
            return Started::Ended;
        };
        if let Some(reply) = reply {
            let _ = target.outbox.push(reply.into());
        }
        if *gap {
            *state = State::Ended;
            return Started::Gap;
        }
        let top_offset = position.map(|position| position.offset);
        for (offset, message) in items.drain(..) {
            let fresh = offset == 0 || top_offset.is_none_or(|top| offset > top);
            if fresh {
                let _ = target.outbox.push(message);
            }
        }
        if let Some(position) = position {
            // Before `live` is set (release): the fast path sees it with the flag.
            let _ = self.position.set((position.epoch.clone(), position.offset));
        }
        *state = State::Live;
        self.live.store(true, Ordering::Release);
        Started::Live
    }

    /// Records a possible gap. Returns `true` when the slot was live and is now ended: the
    /// caller tells the client (unsubscribe 2500 or close 3010) while nothing else can be
    /// delivered to it. A buffering slot reports the gap from [`Slot::go_live`] instead.
    pub fn gap(&self) -> bool {
        let mut state = self.lock();
        match &mut *state {
            State::Live => {
                *state = State::Ended;
                self.live.store(false, Ordering::Release);
                true
            }
            State::Buffering { items, gap, .. } => {
                items.clear();
                *gap = true;
                false
            }
            State::Ended => false,
        }
    }

    /// Ends the slot: nothing more is delivered.
    pub fn end(&self) {
        let mut state = self.lock();
        *state = State::Ended;
        self.live.store(false, Ordering::Release);
    }

    /// Whether the slot was ended (by a gap or by [`Slot::end`]).
    pub fn is_ended(&self) -> bool {
        matches!(*self.lock(), State::Ended)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::*;
    use crate::fanout::Format;
    use crate::metrics::NodeStats;

    fn target() -> Target {
        Target::new(Format::Protocol, 1 << 20, Arc::new(NodeStats::default()))
    }

    fn position(epoch: &str, offset: u64) -> StreamPosition {
        StreamPosition {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    /// Bytes queued for `target` after delivering `message` at (`epoch`, `offset`).
    fn queued_after(slot: &Slot, target: &Target, epoch: &str, offset: u64) -> usize {
        let before = target.outbox.queued_bytes();
        let mut wakes = Wakes::default();
        slot.deliver(target, epoch, offset, &Outgoing::from("m"), &mut wakes);
        wakes.flush();
        target.outbox.queued_bytes() - before
    }

    #[test]
    fn a_live_slot_skips_what_the_reply_carried_even_when_it_arrives_later() {
        let target = target();
        let slot = Slot::new(SlotKind::Client);
        assert_eq!(
            slot.go_live(&target, None, Some(&position("e", 5))),
            Started::Live
        );
        assert_eq!(slot.position(), Some(("e", 5)));
        // At or below the reply's top offset: the client has it.
        assert_eq!(queued_after(&slot, &target, "e", 4), 0);
        assert_eq!(queued_after(&slot, &target, "e", 5), 0);
        // Above it, of another epoch, or without an offset: delivered.
        assert_eq!(queued_after(&slot, &target, "e", 6), 1);
        assert_eq!(queued_after(&slot, &target, "f", 2), 1);
        assert_eq!(queued_after(&slot, &target, "", 0), 1);
    }

    #[test]
    fn without_a_position_everything_live_is_delivered() {
        let target = target();
        let slot = Slot::new(SlotKind::ServerSide);
        assert_eq!(slot.go_live(&target, None, None), Started::Live);
        assert_eq!(slot.position(), None);
        assert_eq!(queued_after(&slot, &target, "e", 1), 1);
    }

    #[test]
    fn buffered_messages_the_reply_contains_are_dropped_and_the_rest_follow_it() {
        let target = target();
        let slot = Slot::new(SlotKind::Client);
        assert_eq!(queued_after(&slot, &target, "e", 3), 0);
        assert_eq!(queued_after(&slot, &target, "e", 4), 0);
        assert_eq!(
            slot.go_live(
                &target,
                Some(ByteString::from("reply")),
                Some(&position("e", 3))
            ),
            Started::Live
        );
        // The reply, then offset 4; offset 3 was in the reply.
        assert_eq!(target.outbox.queued_bytes(), "reply".len() + "m".len());
    }

    #[test]
    fn a_slot_is_positioned_only_when_asked_and_once_it_started() {
        let target = target();
        let slot = Slot::new(SlotKind::Client);
        slot.set_positioned();
        assert_eq!(slot.start(), None);
        slot.go_live(&target, None, Some(&position("e", 2)));
        assert_eq!(slot.start(), Some(("e", 2)));
        let plain = Slot::new(SlotKind::Client);
        plain.go_live(&target, None, Some(&position("e", 2)));
        assert_eq!(plain.start(), None);
    }
}

//! One subscription of one connection to one channel, as the fan-out sees it.
//!
//! A subscription starts **buffering**: it is in the hub before the broker subscription is
//! confirmed and before the channel's position is read, so nothing published meanwhile is
//! lost; what arrives is kept in a small buffer. [`Slot::go_live`] then queues the reply (the
//! subscribe reply, or the connect reply carrying the server-side subscription), then the
//! buffered messages that the reply does not already contain (offset above the reply's top
//! offset), and switches to **live**, all under the slot's lock, so nothing is duplicated,
//! lost or reordered. Live delivery takes a lock-free fast path.
//!
//! A gap ([`Slot::gap`]) ends a live slot (the caller tells the client to recover); during
//! buffering it is remembered and reported by `go_live`, after the reply went out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use bytestring::ByteString;

use super::Target;
use super::outbox::Wakes;

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
        items: Vec<(u64, ByteString)>,
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
    /// Where a positioned subscription started (epoch, offset of its reply); unset for the
    /// others. The position check compares it with the stream's top until the node
    /// delivers a publication of the channel.
    start: OnceLock<(String, u64)>,
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
            start: OnceLock::new(),
        }
    }

    /// Marks the subscription positioned, starting at (`epoch`, `offset`) (first call wins).
    pub fn set_positioned(&self, epoch: &str, offset: u64) {
        let _ = self.start.set((epoch.to_owned(), offset));
    }

    /// Where a positioned subscription started; `None` when it is not positioned.
    pub fn start(&self) -> Option<(&str, u64)> {
        self.start
            .get()
            .map(|(epoch, offset)| (epoch.as_str(), *offset))
    }

    /// Client-side or server-side.
    pub fn kind(&self) -> SlotKind {
        self.kind
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every transition leaves the state whole, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers a message with stream offset `offset` (0 for messages without one, which a
    /// buffering slot always flushes). The writer's wake-up goes into `wakes`.
    pub fn deliver(&self, target: &Target, offset: u64, message: &ByteString, wakes: &mut Wakes) {
        if self.live.load(Ordering::Acquire) {
            wakes.push(&target.outbox, message.clone());
            return;
        }
        let mut state = self.lock();
        match &mut *state {
            State::Live => {
                wakes.push(&target.outbox, message.clone());
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
    /// `top_offset`, those above it; without, all of them), and goes live.
    pub fn go_live(
        &self,
        target: &Target,
        reply: Option<ByteString>,
        top_offset: Option<u64>,
    ) -> Started {
        let mut state = self.lock();
        let State::Buffering { items, gap, .. } = &mut *state else {
            if let Some(reply) = reply {
                let _ = target.outbox.push(reply);
            }
            return Started::Ended;
        };
        if let Some(reply) = reply {
            let _ = target.outbox.push(reply);
        }
        if *gap {
            *state = State::Ended;
            return Started::Gap;
        }
        for (offset, message) in items.drain(..) {
            let fresh = offset == 0 || top_offset.is_none_or(|top| offset > top);
            if fresh {
                let _ = target.outbox.push(message);
            }
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

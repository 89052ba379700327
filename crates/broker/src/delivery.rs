//! Handing events to a subscriber's bounded receiver.
//!
//! Policy when the receiver is full:
//! - channel events (publications, joins, leaves) are dropped, the channel is marked as
//!   lagging, and a [`BrokerEvent::GapPossible`] for it is delivered as soon as there is
//!   room — before any later event of that channel, which is dropped too until then. Memory
//!   stays bounded (one mark per subscribed channel) and the publisher side never waits;
//!   the clients of that channel recover from history.
//! - control events (user revocation, disconnects) cannot be recovered from history, so
//!   they wait for room, at most [`CONTROL_SEND_TIMEOUT`]; after that they are dropped and
//!   logged.
//!
//! The reader side of Redis pub/sub therefore never stops reading, and an in-memory
//! publisher never waits on a slow node.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald_common::channel::ChannelName;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::types::BrokerEvent;
use crate::util::lock;

/// Longest wait for room in the receiver before a control event is dropped.
pub(crate) const CONTROL_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to a delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued, or dropped with the channel marked as lagging.
    Accepted,
    /// The receiver is gone: the subscriber should stop.
    Closed,
}

/// The sending half of a subscriber's event channel, with the lag policy.
#[derive(Debug)]
pub(crate) struct Delivery {
    tx: mpsc::Sender<BrokerEvent>,
    /// Channels whose events were dropped and that still owe a `GapPossible`.
    lagging: Mutex<BTreeSet<ChannelName>>,
    /// Wakes the flusher when a channel starts lagging.
    lag_notify: Notify,
    dropped: AtomicU64,
}

impl Delivery {
    pub(crate) fn new(tx: mpsc::Sender<BrokerEvent>) -> Self {
        Self {
            tx,
            lagging: Mutex::new(BTreeSet::new()),
            lag_notify: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Events dropped so far because the receiver was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the receiver was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Delivers an event of `channel` without waiting (see the module policy).
    pub(crate) fn deliver(&self, channel: &ChannelName, event: BrokerEvent) -> Delivered {
        let mut lagging = lock(&self.lagging);
        if !lagging.is_empty() && self.flush_locked(&mut lagging) == Delivered::Closed {
            return Delivered::Closed;
        }
        if lagging.contains(channel) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Delivered::Accepted;
        }
        match self.tx.try_send(event) {
            Ok(()) => Delivered::Accepted,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                lagging.insert(channel.clone());
                self.lag_notify.notify_one();
                Delivered::Accepted
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivered::Closed,
        }
    }

    /// Reports that events of `channel` may have been lost; delivered as soon as there is room.
    pub(crate) fn gap(&self, channel: &ChannelName) -> Delivered {
        let mut lagging = lock(&self.lagging);
        if lagging.insert(channel.clone()) {
            self.lag_notify.notify_one();
        }
        self.flush_locked(&mut lagging)
    }

    /// Delivers a control event, waiting for room at most [`CONTROL_SEND_TIMEOUT`].
    pub(crate) async fn deliver_control(&self, payload: Bytes) -> Delivered {
        match self
            .tx
            .send_timeout(BrokerEvent::Control(payload), CONTROL_SEND_TIMEOUT)
            .await
        {
            Ok(()) => Delivered::Accepted,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("control event dropped: the subscriber's receiver stayed full");
                Delivered::Accepted
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Delivered::Closed,
        }
    }

    /// Sends as many owed `GapPossible` events as fit right now.
    fn flush_locked(&self, lagging: &mut BTreeSet<ChannelName>) -> Delivered {
        while let Some(channel) = lagging.first() {
            match self.tx.try_send(BrokerEvent::GapPossible {
                channel: channel.clone(),
            }) {
                Ok(()) => {
                    lagging.pop_first();
                }
                Err(mpsc::error::TrySendError::Full(_)) => return Delivered::Accepted,
                Err(mpsc::error::TrySendError::Closed(_)) => return Delivered::Closed,
            }
        }
        Delivered::Accepted
    }

    /// Delivers owed `GapPossible` events as room frees up, so a lagging channel that
    /// receives nothing more still gets its gap reported. Runs until `cancel` fires or the
    /// receiver is dropped.
    pub(crate) async fn run_flusher(&self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.lag_notify.notified() => {}
            }
            loop {
                if lock(&self.lagging).is_empty() {
                    break;
                }
                let permit = tokio::select! {
                    () = cancel.cancelled() => return,
                    permit = self.tx.reserve() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                let mut lagging = lock(&self.lagging);
                if let Some(channel) = lagging.pop_first() {
                    permit.send(BrokerEvent::GapPossible { channel });
                }
            }
        }
    }
}

//! Requests, results and events shared by both broker implementations.
//!
//! These types are the broker's API surface; the Redis and in-memory implementations
//! never expose their own. The recovery rule (`decide_recovery`) lives here too, so both
//! implementations apply literally the same all-or-nothing decision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, Publication, StreamPosition};
use serde_json::value::RawValue;

/// Default idempotency window: a repeated key within 5 minutes is a no-op.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long an epoch created by a read (a channel nobody has published to yet) is kept.
pub const DEFAULT_IDLE_EPOCH_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How much history a channel keeps.
///
/// History is on when both `size` and `ttl` are non-zero. Without history a publication is
/// only delivered live: it gets no offset (0) and no epoch (empty), like Centrifugo.
///
/// The history of a channel is one unit: it expires `ttl` after the channel's last
/// publication (with Redis between `ttl` and `ttl + ttl/32` after it: the expiry is pushed
/// back once per `ttl/32`, not on every publication). Losing it (expiry, eviction,
/// [`crate::Broker::remove_history`], a Redis restart without persistence) starts a new
/// epoch with offsets counting from 1 again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Most publications kept (older ones are trimmed away).
    pub size: usize,
    /// How long the history lives after the last publication.
    pub ttl: Duration,
}

impl HistoryPolicy {
    /// No history: live delivery only, no offsets.
    pub const fn none() -> Self {
        Self {
            size: 0,
            ttl: Duration::ZERO,
        }
    }

    /// Keep the last `size` publications for `ttl` after the last one.
    pub const fn new(size: usize, ttl: Duration) -> Self {
        Self { size, ttl }
    }

    /// Whether this policy keeps history (and therefore assigns offsets).
    pub fn is_enabled(&self) -> bool {
        self.size > 0 && !self.ttl.is_zero()
    }
}

/// One publication to make: see [`crate::Broker::publish`].
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The payload: raw JSON, never re-encoded.
    pub data: Box<RawValue>,
    /// Who publishes, when a client does.
    pub info: Option<ClientInfo>,
    /// Free-form tags carried with the publication.
    pub tags: BTreeMap<String, String>,
    /// A repeated publish with the same key within `idempotency_window` is a no-op that
    /// returns the first publish's result.
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Duration,
    /// History of the channel.
    pub history: HistoryPolicy,
}

impl PublishRequest {
    /// A publication of `data` without info, tags, idempotency key or history.
    pub fn new(data: Box<RawValue>) -> Self {
        Self {
            data,
            info: None,
            tags: BTreeMap::new(),
            idempotency_key: None,
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            history: HistoryPolicy::none(),
        }
    }

    /// Sets the history policy.
    pub fn with_history(mut self, history: HistoryPolicy) -> Self {
        self.history = history;
        self
    }

    /// Sets the publisher's info.
    pub fn with_info(mut self, info: ClientInfo) -> Self {
        self.info = Some(info);
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets how long the idempotency key is remembered.
    pub fn with_idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = window;
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The publication as stored and sent (offset 0: the broker assigns it).
    pub(crate) fn into_publication(self) -> Publication {
        Publication {
            offset: 0,
            data: self.data,
            info: self.info,
            tags: self.tags,
        }
    }

    /// The idempotency key, when there is one and the window is not empty.
    pub(crate) fn idempotency(&self) -> Option<(&str, Duration)> {
        match &self.idempotency_key {
            Some(key) if !self.idempotency_window.is_zero() => {
                Some((key.as_str(), self.idempotency_window))
            }
            _ => None,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishResult {
    /// Offset given to the publication (0 without history).
    pub offset: u64,
    /// Epoch of the channel's history (empty without history).
    pub epoch: String,
    /// `true` when the idempotency key was seen within its window: nothing was published
    /// and `offset`/`epoch` are those of the first publish.
    pub deduplicated: bool,
}

/// A history read: see [`crate::Broker::history`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only publications after this position (before it, when `reverse`). Its epoch must be
    /// the channel's current epoch, or the read fails with
    /// [`crate::BrokerError::UnrecoverablePosition`].
    pub since: Option<StreamPosition>,
    /// Most publications returned: `None` = all kept, `Some(0)` = none (position only).
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// The result of a history read.
#[derive(Debug, Clone)]
pub struct HistoryResult {
    /// The publications, oldest first (newest first when the query was `reverse`).
    pub publications: Vec<Publication>,
    /// The channel's current position: its epoch and the offset of its last publication.
    pub position: StreamPosition,
}

/// The result of a recovery attempt: see [`crate::Broker::recover`].
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The channel's current position.
    pub position: StreamPosition,
    /// Exactly the missed publications in offset order when `recovered`; empty otherwise.
    pub publications: Vec<Publication>,
    /// Whether every missed publication is in `publications`.
    pub recovered: bool,
}

/// Counts of a channel's presence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Distinct clients (connections).
    pub num_clients: usize,
    /// Distinct users among them.
    pub num_users: usize,
}

/// One entry of a domain-event stream read through a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id (`<ms>-<seq>`), used to acknowledge it.
    pub id: String,
    /// The payload as appended.
    pub payload: String,
    /// How many times the entry has been delivered to a consumer of the group, this
    /// delivery included (1 for a first delivery).
    pub deliveries: u64,
}

/// One consumer of a stream's consumer group, as [`crate::Broker::stream_consumers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// The consumer's name.
    pub name: String,
    /// Entries delivered to it and not acknowledged yet.
    pub pending: u64,
    /// Time since it last read from the group or claimed entries.
    pub idle: Duration,
    /// Whether its liveness mark ([`crate::Broker::stream_consumer_heartbeat`]) is live.
    pub alive: bool,
}

/// What [`crate::Broker::stream_claim_dead`] did.
#[derive(Debug, Clone, Default)]
pub struct DeadConsumerClaim {
    /// The entries taken over, oldest first per dead consumer; their `deliveries` count
    /// includes this delivery.
    pub entries: Vec<StreamEntry>,
    /// The dead consumers the entries were taken from.
    pub claimed_from: Vec<String>,
    /// Dead consumers with nothing pending, removed from the group.
    pub removed: Vec<String>,
}

/// What a [`crate::Subscriber`] receives.
#[derive(Debug, Clone)]
pub enum BrokerEvent {
    /// A publication in a subscribed channel. Publications of one channel arrive in
    /// offset order.
    Publication {
        /// The channel.
        channel: ChannelName,
        /// The publication, with its offset (0 when the channel keeps no history).
        publication: Arc<Publication>,
        /// The channel's epoch when it was published (empty without history).
        epoch: String,
    },
    /// A client joined a subscribed channel ([`crate::Broker::publish_join`]).
    Join {
        /// The channel.
        channel: ChannelName,
        /// Who joined.
        info: ClientInfo,
    },
    /// A client left a subscribed channel ([`crate::Broker::publish_leave`]).
    Leave {
        /// The channel.
        channel: ChannelName,
        /// Who left.
        info: ClientInfo,
    },
    /// A node-wide control message ([`crate::Broker::publish_control`]); every subscriber
    /// of every node receives it.
    Control(Bytes),
    /// Events of this subscribed channel may have been lost (the Redis connection was
    /// re-established, or the event receiver was full). Whoever delivers the channel's
    /// publications must make its clients recover from their last position.
    GapPossible {
        /// The channel.
        channel: ChannelName,
    },
}

/// Counters of a [`crate::Subscriber`], for metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Channels with at least one reference.
    pub channels: usize,
    /// Whether the subscriber is connected (always `true` in memory).
    pub connected: bool,
    /// How many times the pub/sub connection was re-established.
    pub reconnects: u64,
    /// Events dropped because the receiver was full (each led to a `GapPossible`).
    pub dropped_events: u64,
}

/// The history window both implementations read for a recovery or history query.
#[derive(Debug)]
pub(crate) struct HistorySnapshot {
    /// Current position of the channel.
    pub position: StreamPosition,
    /// Whether the query's `since` epoch matched (always `true` without `since`).
    pub epoch_matches: bool,
    /// Publications in the requested window and order, offsets set.
    pub publications: Vec<Publication>,
}

/// The all-or-nothing recovery rule.
///
/// `snapshot` must be the publications after `since` in ascending order, read atomically
/// with the position and limited to `max`. The result holds exactly the missed publications
/// or none: the epoch must match, the missed count must be at most `max`, and the history
/// must still hold every offset from `since.offset + 1` to the top.
pub(crate) fn decide_recovery(
    since: &StreamPosition,
    snapshot: HistorySnapshot,
    max: usize,
) -> Recovery {
    let position = snapshot.position;
    let not_recovered = |position| Recovery {
        position,
        publications: Vec::new(),
        recovered: false,
    };
    if !snapshot.epoch_matches || since.epoch != position.epoch || since.offset > position.offset {
        return not_recovered(position);
    }
    let missed = position.offset - since.offset;
    if missed > max as u64 {
        return not_recovered(position);
    }
    let complete = snapshot.publications.len() as u64 == missed
        && snapshot
            .publications
            .iter()
            .zip(since.offset + 1..)
            .all(|(publication, expected)| publication.offset == expected);
    if !complete {
        return not_recovered(position);
    }
    Recovery {
        position,
        publications: snapshot.publications,
        recovered: true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn publication(offset: u64) -> Publication {
        Publication {
            offset,
            data: RawValue::from_string("{}".to_owned()).unwrap(),
            info: None,
            tags: BTreeMap::new(),
        }
    }

    fn position(offset: u64, epoch: &str) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.to_owned(),
        }
    }

    fn snapshot(top: u64, offsets: &[u64]) -> HistorySnapshot {
        HistorySnapshot {
            position: position(top, "e1"),
            epoch_matches: true,
            publications: offsets.iter().copied().map(publication).collect(),
        }
    }

    #[test]
    fn a_complete_gap_is_recovered() {
        let recovery = decide_recovery(&position(2, "e1"), snapshot(4, &[3, 4]), 10);
        assert!(recovery.recovered);
        assert_eq!(recovery.publications.len(), 2);
    }

    #[test]
    fn a_gap_with_a_hole_is_not_recovered() {
        let recovery = decide_recovery(&position(2, "e1"), snapshot(5, &[4, 5]), 10);
        assert!(!recovery.recovered);
        assert!(recovery.publications.is_empty());
    }

    #[test]
    fn more_than_max_missed_is_not_recovered() {
        let recovery = decide_recovery(&position(0, "e1"), snapshot(3, &[1, 2]), 2);
        assert!(!recovery.recovered);
    }

    #[test]
    fn another_epoch_is_not_recovered() {
        let recovery = decide_recovery(&position(4, "e0"), snapshot(4, &[]), 10);
        assert!(!recovery.recovered);
    }

    #[test]
    fn a_position_ahead_of_the_top_is_not_recovered() {
        let recovery = decide_recovery(&position(9, "e1"), snapshot(4, &[]), 10);
        assert!(!recovery.recovered);
    }

    #[test]
    fn nothing_missed_is_recovered_with_nothing() {
        let recovery = decide_recovery(&position(4, "e1"), snapshot(4, &[]), 0);
        assert!(recovery.recovered);
        assert!(recovery.publications.is_empty());
    }
}

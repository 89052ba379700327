//! herald-broker: the one way Herald services talk to each other.
//!
//! One API, [`Broker`], with two implementations that pass one conformance suite:
//! [`RedisBroker`] for production (any number of processes sharing a Redis) and
//! [`MemoryBroker`] for the embedded single-process mode and fast tests.
//!
//! What it offers:
//! - **Channels**: [`Broker::publish`] assigns each publication the next offset of the
//!   channel, keeps it in a capped, expiring history, and delivers it to every subscriber;
//!   an idempotency key makes a repeated publish a no-op within a window.
//! - **History and recovery**: [`Broker::history`], [`Broker::position`] and
//!   [`Broker::recover`], with the all-or-nothing rule: a recovery returns exactly the
//!   missed publications in order, or says it could not (never a partial list). The epoch
//!   names one incarnation of a channel's history and changes when the history is lost.
//! - **Subscribers**: [`Broker::subscriber`] gives one [`Subscriber`] (in Redis: the one
//!   pub/sub connection of the process) with reference-counted channel subscriptions and a
//!   bounded receiver of [`BrokerEvent`]s: publications, joins and leaves, node-wide control
//!   messages, and [`BrokerEvent::GapPossible`] when events may have been lost (a Redis
//!   reconnect it could not recover in place from the history, a full receiver, or a gap a
//!   caller reported) so callers make their clients recover.
//! - **Presence** with expiry, refreshed by whoever holds the client.
//! - **Domain-event streams** read through consumer groups (at-least-once, with reclaim of
//!   entries a dead consumer left pending: at once when its liveness mark is gone, after an
//!   idle time otherwise).
//! - **Key-value** strings, for the signing-key set, and **tables** of expiring entries,
//!   for what gateway nodes announce to each other (`/api/info`, `/api/channels`).
//!
//! Redis layout and scripts are described in the `redis` module; every key and pub/sub
//! channel starts with the configured prefix ([`RedisConfig::prefix`], default `herald:`).
//!
//! Layout:
//! - [`types`] — requests, results, events (shared by both implementations);
//! - [`error`] — [`BrokerError`];
//! - `memory`, `redis` — the implementations; `delivery` — the receiver-full policy.

pub mod error;
pub mod types;

mod delivery;
mod memory;
mod redis;
mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, StreamPosition};
use tokio::sync::mpsc;

pub use crate::error::{BrokerError, BrokerResult};
pub use crate::memory::{MEMORY_STREAM_MAX_LEN, MemoryBroker};
pub use crate::redis::{
    DEFAULT_PREFIX, DEFAULT_RECONNECT_MAX_DELAY, DEFAULT_STREAM_MAX_LEN, RedisBroker, RedisConfig,
};
pub use crate::types::{
    BrokerEvent, DEFAULT_IDEMPOTENCY_WINDOW, DEFAULT_IDLE_EPOCH_TTL, DeadConsumerClaim,
    HistoryPolicy, HistoryQuery, HistoryResult, PresenceStats, PublishRequest, PublishResult,
    Recovery, StreamConsumer, StreamEntry, SubscriberStats,
};

/// The broker: Redis or in memory. Cheap to clone; clones share connections and state.
#[derive(Debug, Clone)]
pub enum Broker {
    /// Redis-backed (distributed mode).
    Redis(RedisBroker),
    /// In-process (embedded mode, tests).
    Memory(MemoryBroker),
}

/// Calls the same method on whichever implementation this is.
macro_rules! dispatch {
    ($self:expr, $broker:ident => $call:expr) => {
        match $self {
            Broker::Redis($broker) => $call,
            Broker::Memory($broker) => $call,
        }
    };
}

impl Broker {
    /// A new, empty in-memory broker.
    pub fn memory() -> Self {
        Self::Memory(MemoryBroker::new())
    }

    /// A Redis broker. Checks the configuration but does not connect: connections open on
    /// first use and reopen by themselves, so a service can start while Redis is down
    /// (use [`Broker::ping`] for readiness). Must be called within a Tokio runtime.
    pub fn redis(config: &RedisConfig) -> BrokerResult<Self> {
        Ok(Self::Redis(RedisBroker::new(config)?))
    }

    /// Readiness: `Ok` when the broker answers (always, in memory).
    pub async fn ping(&self) -> BrokerResult<()> {
        match self {
            Self::Redis(broker) => broker.ping().await,
            Self::Memory(_) => Ok(()),
        }
    }

    /// Publishes to `channel`.
    ///
    /// With history ([`HistoryPolicy::is_enabled`]) the publication gets the channel's next
    /// offset, is kept in its history and is delivered with that offset; all of it, and the
    /// delivery to subscribers, is one atomic step, so offsets strictly increase per channel
    /// and subscribers see them in order. Without history it is delivered with offset 0 and
    /// an empty epoch. With an idempotency key seen within its window nothing happens and the
    /// first publish's offset and epoch come back with `deduplicated: true`.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        request: PublishRequest,
    ) -> BrokerResult<PublishResult> {
        dispatch!(self, broker => broker.publish(channel, request).await)
    }

    /// Makes `requests` one after another, in the order given, and returns one result per
    /// request in the same order: the same as calling [`Broker::publish`] for each in turn
    /// and awaiting each before the next, in fewer round trips.
    ///
    /// With Redis, consecutive publications of one channel with the same history policy and
    /// no idempotency key are made by one script call, and all the calls go out together in
    /// one pipeline, executed by Redis in order. A failure (Redis unreachable, a time-out)
    /// fails every publication of the script call it was in; publications after a failed
    /// one may still have been made, never reordered.
    pub async fn publish_many(
        &self,
        requests: Vec<(ChannelName, PublishRequest)>,
    ) -> Vec<BrokerResult<PublishResult>> {
        match self {
            Self::Redis(broker) => broker.publish_many(requests).await,
            Self::Memory(broker) => {
                let mut results = Vec::with_capacity(requests.len());
                for (channel, request) in requests {
                    results.push(broker.publish(&channel, request).await);
                }
                results
            }
        }
    }

    /// Reads the channel's history and its current position (creating the epoch of a channel
    /// that has none yet).
    ///
    /// With `since`, only publications after it (before it when `reverse`) are returned; if
    /// its epoch is not the current one the read fails with
    /// [`BrokerError::UnrecoverablePosition`].
    pub async fn history(
        &self,
        channel: &ChannelName,
        query: HistoryQuery,
    ) -> BrokerResult<HistoryResult> {
        let snapshot = dispatch!(self, broker => broker.snapshot(channel, &query).await)?;
        if !snapshot.epoch_matches {
            return Err(BrokerError::UnrecoverablePosition);
        }
        Ok(HistoryResult {
            publications: snapshot.publications,
            position: snapshot.position,
        })
    }

    /// The channel's current position: epoch and last offset (0 before any publication).
    /// Creates the epoch when the channel has none, so a subscriber can be told its starting
    /// position before the first publication.
    pub async fn position(&self, channel: &ChannelName) -> BrokerResult<StreamPosition> {
        let query = HistoryQuery {
            limit: Some(0),
            ..HistoryQuery::default()
        };
        let snapshot = dispatch!(self, broker => broker.snapshot(channel, &query).await)?;
        Ok(snapshot.position)
    }

    /// Recovers a subscriber that last saw `since`: all or nothing.
    ///
    /// `recovered` is `true` with exactly the publications after `since` in offset order when
    /// the epoch is unchanged, at most `max` were missed and all of them are still in the
    /// history; otherwise `recovered` is `false` and the list is empty. The channel's current
    /// position comes back either way.
    pub async fn recover(
        &self,
        channel: &ChannelName,
        since: &StreamPosition,
        max: usize,
    ) -> BrokerResult<Recovery> {
        let query = HistoryQuery {
            since: Some(since.clone()),
            limit: Some(max),
            reverse: false,
        };
        let snapshot = dispatch!(self, broker => broker.snapshot(channel, &query).await)?;
        Ok(types::decide_recovery(since, snapshot, max))
    }

    /// Drops the channel's history (Centrifugo's `history_remove`). The history is lost, so
    /// the next publication or position read starts a new epoch.
    pub async fn remove_history(&self, channel: &ChannelName) -> BrokerResult<()> {
        dispatch!(self, broker => broker.remove_history(channel).await)
    }

    /// Tells every subscriber of `channel` that `info` joined it.
    pub async fn publish_join(&self, channel: &ChannelName, info: &ClientInfo) -> BrokerResult<()> {
        dispatch!(self, broker => broker.publish_join(channel, info).await)
    }

    /// Tells every subscriber of `channel` that `info` left it.
    pub async fn publish_leave(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.publish_leave(channel, info).await)
    }

    /// Sends a node-wide control message (user revocation, server-side disconnect, ...) to
    /// every subscriber of every node, whatever channels they subscribed to. The payload is
    /// opaque here; its users define it.
    pub async fn publish_control(&self, payload: Bytes) -> BrokerResult<()> {
        dispatch!(self, broker => broker.publish_control(payload).await)
    }

    /// Adds `client_id` to the channel's presence, or refreshes it. The entry disappears
    /// `ttl` after the last add unless refreshed.
    pub async fn presence_add(
        &self,
        channel: &ChannelName,
        client_id: &str,
        info: &ClientInfo,
        ttl: Duration,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.presence_add(channel, client_id, info, ttl).await)
    }

    /// Removes `client_id` from the channel's presence.
    pub async fn presence_remove(
        &self,
        channel: &ChannelName,
        client_id: &str,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.presence_remove(channel, client_id).await)
    }

    /// The channel's present clients: client id -> info. Expired entries are left out.
    pub async fn presence(
        &self,
        channel: &ChannelName,
    ) -> BrokerResult<BTreeMap<String, ClientInfo>> {
        dispatch!(self, broker => broker.presence(channel).await)
    }

    /// Counts of the channel's present clients and distinct users.
    pub async fn presence_stats(&self, channel: &ChannelName) -> BrokerResult<PresenceStats> {
        dispatch!(self, broker => broker.presence_stats(channel).await)
    }

    /// Appends `payload` to the domain-event stream `stream` (e.g. `events:tasks`, stored as
    /// `<prefix>events:tasks`) and returns the entry id. Streams are capped (Redis:
    /// [`RedisConfig::stream_max_len`], approximately; memory: [`MEMORY_STREAM_MAX_LEN`]).
    pub async fn stream_append(&self, stream: &str, payload: &str) -> BrokerResult<String> {
        dispatch!(self, broker => broker.stream_append(stream, payload).await)
    }

    /// Creates the consumer group `group` of `stream` (and the stream) if missing. A new
    /// group starts at the beginning of the stream, so events appended before any consumer
    /// ran are delivered too.
    pub async fn stream_ensure_group(&self, stream: &str, group: &str) -> BrokerResult<()> {
        dispatch!(self, broker => broker.stream_ensure_group(stream, group).await)
    }

    /// Reads up to `count` entries of `stream` never delivered to `group`, as `consumer`,
    /// waiting up to `block` for one to arrive (zero: do not wait). The entries stay pending
    /// for the group until acknowledged with [`Broker::stream_ack`]. A missing group is
    /// created (see [`Broker::stream_ensure_group`]).
    ///
    /// In Redis, blocking reads use a dedicated connection; concurrent blocking reads of
    /// one process are served one after another, so run one reading loop per process.
    pub async fn stream_read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> BrokerResult<Vec<StreamEntry>> {
        dispatch!(self, broker => broker.stream_read_group(stream, group, consumer, count, block).await)
    }

    /// Acknowledges entries of `group`; returns how many were pending.
    pub async fn stream_ack(&self, stream: &str, group: &str, ids: &[String]) -> BrokerResult<u64> {
        dispatch!(self, broker => broker.stream_ack(stream, group, ids).await)
    }

    /// Takes over, for `consumer`, up to `count` entries of `group` that were delivered but
    /// not acknowledged for at least `min_idle` (their consumer is presumably dead). Their
    /// `deliveries` count includes this delivery.
    pub async fn stream_claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> BrokerResult<Vec<StreamEntry>> {
        dispatch!(self, broker => broker.stream_claim_stale(stream, group, consumer, min_idle, count).await)
    }

    /// Marks `consumer` of `group` alive for `ttl` (Redis: the key
    /// `<prefix><stream>:alive:<group>:<consumer>`, expiring). A consumer refreshes its mark
    /// well within `ttl` for as long as it runs; once the mark is gone and the consumer has
    /// not touched the group for a while, [`Broker::stream_claim_dead`] takes its entries.
    pub async fn stream_consumer_heartbeat(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.stream_consumer_heartbeat(stream, group, consumer, ttl).await)
    }

    /// Drops the liveness mark of `consumer` (a clean stop): what it left pending, if
    /// anything, is then claimable by [`Broker::stream_claim_dead`] as soon as it has been
    /// silent for the grace time, and the consumer is removed from the group after that.
    pub async fn stream_consumer_leave(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.stream_consumer_leave(stream, group, consumer).await)
    }

    /// The consumers of `group` (Redis `XINFO CONSUMERS`), by name, with whether their
    /// liveness mark is live. Empty when the stream or the group does not exist.
    pub async fn stream_consumers(
        &self,
        stream: &str,
        group: &str,
    ) -> BrokerResult<Vec<StreamConsumer>> {
        dispatch!(self, broker => broker.stream_consumers(stream, group).await)
    }

    /// Takes over, for `consumer`, up to `count` entries pending for dead consumers of
    /// `group`, however briefly they have been pending. A consumer is dead when its liveness
    /// mark ([`Broker::stream_consumer_heartbeat`]) is gone and it has not read from the
    /// group or claimed entries for at least `grace` (so a consumer that just started and
    /// one that never marks itself are not taken for dead at once). Live consumers keep
    /// their entries, however long those are pending: for them there is
    /// [`Broker::stream_claim_stale`].
    ///
    /// Each entry is taken by one claimer even when several claim at once (the check that
    /// the dead consumer still holds it and the take-over are one atomic step). Dead
    /// consumers with nothing pending are removed from the group.
    pub async fn stream_claim_dead(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        grace: Duration,
        count: usize,
    ) -> BrokerResult<DeadConsumerClaim> {
        dispatch!(self, broker => broker.stream_claim_dead(stream, group, consumer, grace, count).await)
    }

    /// Stores `value` under `key` (Redis: `<prefix>kv:<key>`), optionally expiring.
    pub async fn kv_set(&self, key: &str, value: &str, ttl: Option<Duration>) -> BrokerResult<()> {
        dispatch!(self, broker => broker.kv_set(key, value, ttl).await)
    }

    /// The value under `key`, if any.
    pub async fn kv_get(&self, key: &str) -> BrokerResult<Option<String>> {
        dispatch!(self, broker => broker.kv_get(key).await)
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn kv_delete(&self, key: &str) -> BrokerResult<bool> {
        dispatch!(self, broker => broker.kv_delete(key).await)
    }

    /// Records `value` under `field` of the shared table `table` for `ttl` (Redis: a hash
    /// `<prefix>table:{<table>}` with an expiry sorted set, like presence). Writing again
    /// refreshes the entry; gateway nodes use it to announce themselves and their channels.
    pub async fn table_put(
        &self,
        table: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        dispatch!(self, broker => broker.table_put(table, field, value, ttl).await)
    }

    /// The live entries of `table` (expired ones are dropped), by field.
    pub async fn table_entries(&self, table: &str) -> BrokerResult<BTreeMap<String, String>> {
        dispatch!(self, broker => broker.table_entries(table).await)
    }

    /// Removes `field` from `table` (nothing when it is absent).
    pub async fn table_remove(&self, table: &str, field: &str) -> BrokerResult<()> {
        dispatch!(self, broker => broker.table_remove(table, field).await)
    }

    /// Opens the subscriber side: a [`Subscriber`] and the receiver of its events, holding
    /// at most `capacity` events (see [`Subscriber`] for the policy when it is full).
    ///
    /// In Redis this is the pub/sub connection of the process: call it once per process
    /// (the gateway does) and share the `Subscriber`. The connection opens in the background;
    /// [`Subscriber::subscribe`] waits for it up to the connect time-out. In memory each
    /// subscriber is a separate node, so two of them behave like two gateway processes.
    ///
    /// Must be called within a Tokio runtime: it spawns the subscriber's tasks.
    pub fn subscriber(&self, capacity: usize) -> (Subscriber, mpsc::Receiver<BrokerEvent>) {
        let (inner, events) = match self {
            Self::Redis(broker) => {
                let (subscriber, events) = broker.subscriber(capacity);
                (SubscriberInner::Redis(subscriber), events)
            }
            Self::Memory(broker) => {
                let (subscriber, events) = broker.subscriber(capacity);
                (SubscriberInner::Memory(subscriber), events)
            }
        };
        (
            Subscriber {
                inner: Arc::new(inner),
            },
            events,
        )
    }
}

/// Reference-counted channel subscriptions of one node, feeding one bounded receiver.
///
/// Cheap to clone; dropping the last clone stops its tasks (and, in Redis, closes the
/// pub/sub connection) and ends the receiver.
///
/// When the receiver is full, channel events are dropped and the channel gets a
/// [`BrokerEvent::GapPossible`] as soon as there is room (its later events are dropped until
/// then); control events wait for room up to 5 s. Memory stays bounded and the Redis
/// connection keeps being read. [`SubscriberStats::dropped_events`] counts the drops.
///
/// After a Redis reconnect each subscribed channel is recovered in place when its position
/// is known (the last publication delivered, else [`Subscriber::note_position`]), its epoch
/// unchanged and its history covers the gap: the missed publications arrive in order, once,
/// ahead of the channel's later events. Otherwise it gets a [`BrokerEvent::GapPossible`].
/// [`Subscriber::report_gap`] adds one on a caller's behalf.
#[derive(Debug, Clone)]
pub struct Subscriber {
    inner: Arc<SubscriberInner>,
}

#[derive(Debug)]
enum SubscriberInner {
    Redis(redis::subscriber::RedisSubscriber),
    Memory(memory::MemorySubscriber),
}

impl Subscriber {
    /// Adds a reference to `channel`. The first reference subscribes the node; the call
    /// returns once that is effective, so a publication made after it returns is delivered
    /// (read the position after subscribing to hand a client a gap-free start). Events of the
    /// channel may arrive before it returns.
    ///
    /// Fails (temporarily) when the Redis pub/sub connection is not up within the connect
    /// time-out; the reference is not taken then.
    pub async fn subscribe(&self, channel: &ChannelName) -> BrokerResult<()> {
        match &*self.inner {
            SubscriberInner::Redis(subscriber) => subscriber.subscribe(channel).await,
            SubscriberInner::Memory(subscriber) => {
                subscriber.subscribe(channel);
                Ok(())
            }
        }
    }

    /// Drops a reference to `channel`; the last one unsubscribes the node. Dropping a
    /// reference that was never taken does nothing.
    pub async fn unsubscribe(&self, channel: &ChannelName) {
        match &*self.inner {
            SubscriberInner::Redis(subscriber) => subscriber.unsubscribe(channel).await,
            SubscriberInner::Memory(subscriber) => subscriber.unsubscribe(channel),
        }
    }

    /// Tells the subscriber that a subscriber of `channel` starts at `position`, read after
    /// its [`Subscriber::subscribe`] returned. In Redis, until a publication of the channel
    /// is delivered, a recovery after a reconnect starts from the lowest position noted, so
    /// a channel that had no publication since is recovered in place too instead of
    /// reporting a gap. Nothing happens in memory (no reconnects) or for a channel without
    /// a reference.
    pub fn note_position(&self, channel: &ChannelName, position: &StreamPosition) {
        match &*self.inner {
            SubscriberInner::Redis(subscriber) => subscriber.note_position(channel, position),
            SubscriberInner::Memory(_) => {}
        }
    }

    /// Puts a [`BrokerEvent::GapPossible`] for `channel` into this subscriber's own
    /// receiver, behind every event already in it: for a caller that found out by other
    /// means (e.g. comparing positions) that events of the channel were lost, so that the
    /// receiver stays the one ordered source of what happened. When the receiver is full
    /// the gap is owed like one the broker found itself: delivered as soon as there is room,
    /// and the channel's events are dropped until then.
    pub fn report_gap(&self, channel: &ChannelName) {
        match &*self.inner {
            SubscriberInner::Redis(subscriber) => subscriber.report_gap(channel),
            SubscriberInner::Memory(subscriber) => subscriber.report_gap(channel),
        }
    }

    /// Counters for metrics and readiness.
    pub fn stats(&self) -> SubscriberStats {
        match &*self.inner {
            SubscriberInner::Redis(subscriber) => subscriber.stats(),
            SubscriberInner::Memory(subscriber) => subscriber.stats(),
        }
    }
}

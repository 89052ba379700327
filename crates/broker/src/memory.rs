//! The in-memory broker: Redis semantics inside one process.
//!
//! Used by the embedded `herald` binary and by fast tests. It follows the Redis
//! implementation rule for rule (same epoch rule, same recovery decision, same idempotency
//! window, same presence expiry, same consumer-group behaviour), so both pass one
//! conformance suite.
//!
//! Layout:
//! - [`MemoryBroker`]: shared state behind an `Arc`; clones are the same broker.
//! - channels: one `Mutex<ChannelState>` per channel (meta, history, idempotency keys,
//!   presence). A publish assigns its offset and hands the event to every subscribed node
//!   while holding that lock, so each node sees a channel's publications in offset order.
//! - nodes: every [`MemorySubscriber`] is a node, like one gateway process with its own
//!   pub/sub connection; publishes reach every node subscribed to the channel.
//! - event streams: entries, consumer groups and pending lists like Redis streams.
//! - key-value: strings with an optional expiry.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, Publication, StreamPosition};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::delivery::Delivery;
use crate::error::{BrokerError, BrokerResult};
use crate::types::{
    BrokerEvent, DEFAULT_IDLE_EPOCH_TTL, DeadConsumerClaim, HistoryPolicy, HistoryQuery,
    HistorySnapshot, PresenceStats, PublishRequest, PublishResult, StreamConsumer, StreamEntry,
    SubscriberStats,
};
use crate::util::{lock, new_epoch};

/// Most entries an in-memory event stream keeps (the oldest are dropped), like
/// `MAXLEN` on the Redis stream.
pub const MEMORY_STREAM_MAX_LEN: usize = 100_000;

/// How often idle channels (no history, no presence, no idempotency keys) are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How often expired idempotency keys of a channel are dropped.
const IDEMPOTENCY_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// The in-memory broker. Cheap to clone; clones share all state.
#[derive(Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("nodes", &read(&self.shared.nodes).len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

struct Shared {
    channels: Mutex<ChannelMap>,
    nodes: RwLock<Vec<Arc<Node>>>,
    next_node_id: AtomicU64,
    streams: Mutex<HashMap<String, Arc<EventStream>>>,
    kv: Mutex<HashMap<String, KvEntry>>,
    /// Shared tables: table -> field -> (value, expiry).
    tables: Mutex<HashMap<String, Table>>,
    idle_epoch_ttl: Duration,
}

/// One shared table: field -> (value, expiry).
type Table = HashMap<String, (String, Instant)>;

struct ChannelMap {
    map: HashMap<ChannelName, Arc<Mutex<ChannelState>>>,
    next_sweep: Instant,
}

/// The state of one channel, mirroring the Redis keys of a channel.
#[derive(Default)]
struct ChannelState {
    /// Epoch and offset (the Redis meta hash).
    meta: Option<Meta>,
    /// Kept publications, offsets set, oldest first (the Redis stream).
    history: VecDeque<Arc<Publication>>,
    /// When the history expires; `None` while it is empty.
    history_expires: Option<Instant>,
    /// Idempotency keys within their window.
    idempotency: HashMap<String, Remembered>,
    /// When expired idempotency keys are next dropped.
    next_idempotency_prune: Option<Instant>,
    /// Present clients: client id -> (info, expiry).
    presence: HashMap<String, (ClientInfo, Instant)>,
}

struct Meta {
    epoch: String,
    offset: u64,
    expires: Instant,
}

struct Remembered {
    expires: Instant,
    offset: u64,
    epoch: String,
}

struct KvEntry {
    value: String,
    expires: Option<Instant>,
}

impl ChannelState {
    /// Drops what has expired at `now`.
    fn expire(&mut self, now: Instant) {
        if self.meta.as_ref().is_some_and(|meta| meta.expires <= now) {
            self.meta = None;
        }
        if self.history_expires.is_some_and(|expires| expires <= now) {
            self.history.clear();
            self.history_expires = None;
        }
    }

    /// The channel's meta, starting a new epoch when there is none or when its history was
    /// lost (publications were made but the history is gone). `ttl` is the life of a new
    /// epoch.
    fn ensure_epoch(&mut self, now: Instant, ttl: Duration) -> &mut Meta {
        self.expire(now);
        let lost = match &self.meta {
            None => true,
            Some(meta) => meta.offset > 0 && self.history.is_empty(),
        };
        if lost {
            self.meta = None;
            self.history.clear();
            self.history_expires = None;
        }
        self.meta.get_or_insert_with(|| Meta {
            epoch: new_epoch(),
            offset: 0,
            expires: now + ttl,
        })
    }

    fn prune_idempotency(&mut self, now: Instant) {
        if self.next_idempotency_prune.is_some_and(|at| at > now) {
            return;
        }
        self.idempotency
            .retain(|_, remembered| remembered.expires > now);
        self.next_idempotency_prune = Some(now + IDEMPOTENCY_PRUNE_INTERVAL);
    }

    fn prune_presence(&mut self, now: Instant) {
        self.presence.retain(|_, (_, expires)| *expires > now);
    }

    /// Whether nothing of the channel is left (it can be forgotten).
    fn is_idle(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.prune_presence(now);
        self.next_idempotency_prune = None;
        self.prune_idempotency(now);
        self.meta.is_none() && self.presence.is_empty() && self.idempotency.is_empty()
    }
}

/// One subscriber node: the channels it subscribed to and where its events go.
#[derive(Debug)]
struct Node {
    id: u64,
    channels: Mutex<HashMap<ChannelName, usize>>,
    delivery: Delivery,
}

impl Node {
    fn is_subscribed(&self, channel: &ChannelName) -> bool {
        lock(&self.channels).contains_key(channel)
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The state of `channel`, created when missing. Now and then drops idle channels.
    fn channel(&self, channel: &ChannelName, now: Instant) -> Arc<Mutex<ChannelState>> {
        let mut channels = lock(&self.channels);
        if channels.next_sweep <= now {
            channels.next_sweep = now + SWEEP_INTERVAL;
            // Under the map lock nobody can take a new reference, so a state held only by
            // the map is not in use and can go.
            channels
                .map
                .retain(|_, state| Arc::strong_count(state) > 1 || !lock(state).is_idle(now));
        }
        channels.map.entry(channel.clone()).or_default().clone()
    }

    /// Hands an event of `channel` to every node subscribed to it.
    fn deliver(&self, channel: &ChannelName, event: impl Fn() -> BrokerEvent) {
        for node in read(&self.nodes).iter() {
            if node.is_subscribed(channel) {
                // A closed receiver is cleaned up when its subscriber is dropped.
                let _ = node.delivery.deliver(channel, event());
            }
        }
    }

    fn stream(&self, name: &str) -> Arc<EventStream> {
        lock(&self.streams)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

impl MemoryBroker {
    /// A new, empty in-memory broker.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                channels: Mutex::new(ChannelMap {
                    map: HashMap::new(),
                    next_sweep: Instant::now() + SWEEP_INTERVAL,
                }),
                nodes: RwLock::new(Vec::new()),
                next_node_id: AtomicU64::new(1),
                streams: Mutex::new(HashMap::new()),
                kv: Mutex::new(HashMap::new()),
                tables: Mutex::new(HashMap::new()),
                idle_epoch_ttl: DEFAULT_IDLE_EPOCH_TTL,
            }),
        }
    }

    pub(crate) async fn publish(
        &self,
        channel: &ChannelName,
        request: PublishRequest,
    ) -> BrokerResult<PublishResult> {
        let now = Instant::now();
        let idempotency = request
            .idempotency()
            .map(|(key, window)| (key.to_owned(), window));
        let history: HistoryPolicy = request.history;
        let mut publication = request.into_publication();

        let state = self.shared.channel(channel, now);
        let mut state = lock(&state);
        if let Some((key, _)) = &idempotency {
            state.prune_idempotency(now);
            if let Some(first) = state.idempotency.get(key).filter(|r| r.expires > now) {
                return Ok(PublishResult {
                    offset: first.offset,
                    epoch: first.epoch.clone(),
                    deduplicated: true,
                });
            }
        }

        let (offset, epoch) = if history.is_enabled() {
            let meta = state.ensure_epoch(now, history.ttl);
            meta.offset += 1;
            meta.expires = now + history.ttl;
            let position = (meta.offset, meta.epoch.clone());
            publication.offset = position.0;
            state.history.push_back(Arc::new(publication.clone()));
            while state.history.len() > history.size {
                state.history.pop_front();
            }
            state.history_expires = Some(now + history.ttl);
            position
        } else {
            (0, String::new())
        };

        // Delivered under the channel lock, so concurrent publishers cannot reorder offsets.
        let publication = Arc::new(publication);
        self.shared.deliver(channel, || BrokerEvent::Publication {
            channel: channel.clone(),
            publication: Arc::clone(&publication),
            epoch: epoch.clone(),
        });

        if let Some((key, window)) = idempotency {
            state.idempotency.insert(
                key,
                Remembered {
                    expires: now + window,
                    offset,
                    epoch: epoch.clone(),
                },
            );
        }
        Ok(PublishResult {
            offset,
            epoch,
            deduplicated: false,
        })
    }

    pub(crate) async fn snapshot(
        &self,
        channel: &ChannelName,
        query: &HistoryQuery,
    ) -> BrokerResult<HistorySnapshot> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        let mut state = lock(&state);
        let meta = state.ensure_epoch(now, self.shared.idle_epoch_ttl);
        let position = StreamPosition {
            offset: meta.offset,
            epoch: meta.epoch.clone(),
        };
        let epoch_matches = query
            .since
            .as_ref()
            .is_none_or(|since| since.epoch == position.epoch);
        let limit = query.limit.unwrap_or(usize::MAX);
        let publications = if !epoch_matches || limit == 0 {
            Vec::new()
        } else {
            let since = query.since.as_ref().map(|since| since.offset);
            let clone = |publication: &Arc<Publication>| Publication::clone(publication);
            if query.reverse {
                state
                    .history
                    .iter()
                    .rev()
                    .filter(|p| since.is_none_or(|since| p.offset < since))
                    .take(limit)
                    .map(clone)
                    .collect()
            } else {
                state
                    .history
                    .iter()
                    .filter(|p| since.is_none_or(|since| p.offset > since))
                    .take(limit)
                    .map(clone)
                    .collect()
            }
        };
        Ok(HistorySnapshot {
            position,
            epoch_matches,
            publications,
        })
    }

    pub(crate) async fn remove_history(&self, channel: &ChannelName) -> BrokerResult<()> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        let mut state = lock(&state);
        state.history.clear();
        state.history_expires = None;
        Ok(())
    }

    pub(crate) async fn publish_join(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
    ) -> BrokerResult<()> {
        self.shared.deliver(channel, || BrokerEvent::Join {
            channel: channel.clone(),
            info: info.clone(),
        });
        Ok(())
    }

    pub(crate) async fn publish_leave(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
    ) -> BrokerResult<()> {
        self.shared.deliver(channel, || BrokerEvent::Leave {
            channel: channel.clone(),
            info: info.clone(),
        });
        Ok(())
    }

    pub(crate) async fn publish_control(&self, payload: Bytes) -> BrokerResult<()> {
        let nodes: Vec<Arc<Node>> = read(&self.shared.nodes).clone();
        for node in nodes {
            let _ = node.delivery.deliver_control(payload.clone()).await;
        }
        Ok(())
    }

    pub(crate) async fn presence_add(
        &self,
        channel: &ChannelName,
        client_id: &str,
        info: &ClientInfo,
        ttl: Duration,
    ) -> BrokerResult<()> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        lock(&state)
            .presence
            .insert(client_id.to_owned(), (info.clone(), now + ttl));
        Ok(())
    }

    pub(crate) async fn presence_remove(
        &self,
        channel: &ChannelName,
        client_id: &str,
    ) -> BrokerResult<()> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        lock(&state).presence.remove(client_id);
        Ok(())
    }

    pub(crate) async fn presence(
        &self,
        channel: &ChannelName,
    ) -> BrokerResult<BTreeMap<String, ClientInfo>> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        let mut state = lock(&state);
        state.prune_presence(now);
        Ok(state
            .presence
            .iter()
            .map(|(client, (info, _))| (client.clone(), info.clone()))
            .collect())
    }

    pub(crate) async fn presence_stats(
        &self,
        channel: &ChannelName,
    ) -> BrokerResult<PresenceStats> {
        let now = Instant::now();
        let state = self.shared.channel(channel, now);
        let mut state = lock(&state);
        state.prune_presence(now);
        let users: HashSet<&str> = state
            .presence
            .values()
            .map(|(info, _)| info.user.as_str())
            .collect();
        Ok(PresenceStats {
            num_clients: state.presence.len(),
            num_users: users.len(),
        })
    }

    pub(crate) async fn kv_set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> BrokerResult<()> {
        let expires = ttl.map(|ttl| Instant::now() + ttl);
        lock(&self.shared.kv).insert(
            key.to_owned(),
            KvEntry {
                value: value.to_owned(),
                expires,
            },
        );
        Ok(())
    }

    pub(crate) async fn kv_get(&self, key: &str) -> BrokerResult<Option<String>> {
        let now = Instant::now();
        let mut kv = lock(&self.shared.kv);
        match kv.get(key) {
            Some(entry) if entry.expires.is_some_and(|at| at <= now) => {
                kv.remove(key);
                Ok(None)
            }
            Some(entry) => Ok(Some(entry.value.clone())),
            None => Ok(None),
        }
    }

    pub(crate) async fn kv_delete(&self, key: &str) -> BrokerResult<bool> {
        let now = Instant::now();
        let removed = lock(&self.shared.kv).remove(key);
        Ok(removed.is_some_and(|entry| entry.expires.is_none_or(|at| at > now)))
    }

    pub(crate) async fn table_put(
        &self,
        table: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        let expires = Instant::now() + ttl;
        lock(&self.shared.tables)
            .entry(table.to_owned())
            .or_default()
            .insert(field.to_owned(), (value.to_owned(), expires));
        Ok(())
    }

    pub(crate) async fn table_entries(
        &self,
        table: &str,
    ) -> BrokerResult<BTreeMap<String, String>> {
        let now = Instant::now();
        let mut tables = lock(&self.shared.tables);
        let Some(entries) = tables.get_mut(table) else {
            return Ok(BTreeMap::new());
        };
        entries.retain(|_, (_, expires)| *expires > now);
        let live = entries
            .iter()
            .map(|(field, (value, _))| (field.clone(), value.clone()))
            .collect();
        if entries.is_empty() {
            tables.remove(table);
        }
        Ok(live)
    }

    pub(crate) async fn table_remove(&self, table: &str, field: &str) -> BrokerResult<()> {
        if let Some(entries) = lock(&self.shared.tables).get_mut(table) {
            entries.remove(field);
        }
        Ok(())
    }

    pub(crate) async fn stream_append(&self, stream: &str, payload: &str) -> BrokerResult<String> {
        let events = self.shared.stream(stream);
        let id = lock(&events.data).append(payload.to_owned());
        events.appended.notify_waiters();
        Ok(id.to_string())
    }

    pub(crate) async fn stream_ensure_group(&self, stream: &str, group: &str) -> BrokerResult<()> {
        let events = self.shared.stream(stream);
        lock(&events.data)
            .groups
            .entry(group.to_owned())
            .or_default();
        Ok(())
    }

    pub(crate) async fn stream_read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> BrokerResult<Vec<StreamEntry>> {
        let events = self.shared.stream(stream);
        let deadline = Instant::now() + block;
        loop {
            let appended = events.appended.notified();
            tokio::pin!(appended);
            // Registered before looking, so an append between the look and the wait wakes us.
            appended.as_mut().enable();
            let entries = lock(&events.data).read_new(group, consumer, count, Instant::now());
            if !entries.is_empty() || block.is_zero() || Instant::now() >= deadline {
                return Ok(entries);
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub(crate) async fn stream_ack(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> BrokerResult<u64> {
        let events = self.shared.stream(stream);
        let mut data = lock(&events.data);
        let Some(group) = data.groups.get_mut(group) else {
            return Ok(0);
        };
        let mut acked = 0;
        for id in ids {
            let id = StreamId::parse(id)?;
            if group.pending.remove(&id).is_some() {
                acked += 1;
            }
        }
        Ok(acked)
    }

    pub(crate) async fn stream_claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> BrokerResult<Vec<StreamEntry>> {
        let events = self.shared.stream(stream);
        let entries =
            lock(&events.data).claim_stale(group, consumer, min_idle, count, Instant::now());
        Ok(entries)
    }

    pub(crate) async fn stream_consumer_heartbeat(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        let now = Instant::now();
        let events = self.shared.stream(stream);
        let mut data = lock(&events.data);
        // Expired marks are dropped here, so the map holds at most the live consumers.
        data.heartbeats.retain(|_, expires| *expires > now);
        data.heartbeats
            .insert((group.to_owned(), consumer.to_owned()), now + ttl);
        Ok(())
    }

    pub(crate) async fn stream_consumer_leave(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> BrokerResult<()> {
        let events = self.shared.stream(stream);
        lock(&events.data)
            .heartbeats
            .remove(&(group.to_owned(), consumer.to_owned()));
        Ok(())
    }

    pub(crate) async fn stream_consumers(
        &self,
        stream: &str,
        group: &str,
    ) -> BrokerResult<Vec<StreamConsumer>> {
        let events = self.shared.stream(stream);
        Ok(lock(&events.data).consumers(group, Instant::now()))
    }

    pub(crate) async fn stream_claim_dead(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        grace: Duration,
        count: usize,
    ) -> BrokerResult<DeadConsumerClaim> {
        let events = self.shared.stream(stream);
        let claim = lock(&events.data).claim_dead(group, consumer, grace, count, Instant::now());
        Ok(claim)
    }

    /// Registers a new subscriber node.
    pub(crate) fn subscriber(
        &self,
        capacity: usize,
    ) -> (MemorySubscriber, mpsc::Receiver<BrokerEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let node = Arc::new(Node {
            id: self.shared.next_node_id.fetch_add(1, Ordering::Relaxed),
            channels: Mutex::new(HashMap::new()),
            delivery: Delivery::new(tx),
        });
        write(&self.shared.nodes).push(Arc::clone(&node));
        let cancel = CancellationToken::new();
        let flusher = Arc::clone(&node);
        let flusher_cancel = cancel.clone();
        tokio::spawn(async move { flusher.delivery.run_flusher(flusher_cancel).await });
        (
            MemorySubscriber {
                node,
                shared: Arc::clone(&self.shared),
                cancel,
            },
            rx,
        )
    }
}

/// The in-memory side of a [`crate::Subscriber`]: one node.
pub(crate) struct MemorySubscriber {
    node: Arc<Node>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl fmt::Debug for MemorySubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscriber")
            .field("node", &self.node.id)
            .finish_non_exhaustive()
    }
}

impl MemorySubscriber {
    pub(crate) fn subscribe(&self, channel: &ChannelName) {
        *lock(&self.node.channels)
            .entry(channel.clone())
            .or_insert(0) += 1;
    }

    pub(crate) fn unsubscribe(&self, channel: &ChannelName) {
        let mut channels = lock(&self.node.channels);
        if let Some(refs) = channels.get_mut(channel) {
            *refs -= 1;
            if *refs == 0 {
                channels.remove(channel);
            }
        }
    }

    pub(crate) fn report_gap(&self, channel: &ChannelName) {
        // A closed receiver means the subscriber is stopping: nothing to report to.
        let _ = self.node.delivery.gap(channel);
    }

    pub(crate) fn stats(&self) -> SubscriberStats {
        SubscriberStats {
            channels: lock(&self.node.channels).len(),
            connected: !self.node.delivery.is_closed(),
            reconnects: 0,
            dropped_events: self.node.delivery.dropped(),
        }
    }
}

impl Drop for MemorySubscriber {
    fn drop(&mut self) {
        self.cancel.cancel();
        write(&self.shared.nodes).retain(|node| node.id != self.node.id);
    }
}

// ---------------------------------------------------------------------------------------
// Event streams.

/// A stream entry id, `<ms>-<seq>` like Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    fn parse(raw: &str) -> BrokerResult<Self> {
        let malformed = || BrokerError::Malformed(format!("stream entry id {raw:?}"));
        let (ms, seq) = raw.split_once('-').ok_or_else(malformed)?;
        Ok(Self {
            ms: ms.parse().map_err(|_| malformed())?,
            seq: seq.parse().map_err(|_| malformed())?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Default)]
struct EventStream {
    data: Mutex<StreamData>,
    appended: Notify,
}

#[derive(Default)]
struct StreamData {
    entries: BTreeMap<StreamId, String>,
    last_id: StreamId,
    groups: HashMap<String, Group>,
    /// Liveness marks: (group, consumer) -> expiry (the Redis heartbeat keys).
    heartbeats: HashMap<(String, String), Instant>,
}

/// A consumer group: everything up to `last_delivered` was handed out; `pending` holds
/// what is not acknowledged yet, `consumers` when each consumer last read or claimed.
#[derive(Default)]
struct Group {
    last_delivered: StreamId,
    pending: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<String, Instant>,
}

struct Pending {
    owner: String,
    delivered_at: Instant,
    deliveries: u64,
}

impl StreamData {
    fn append(&mut self, payload: String) -> StreamId {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let id = if ms > self.last_id.ms {
            StreamId { ms, seq: 0 }
        } else {
            StreamId {
                ms: self.last_id.ms,
                seq: self.last_id.seq + 1,
            }
        };
        self.last_id = id;
        self.entries.insert(id, payload);
        while self.entries.len() > MEMORY_STREAM_MAX_LEN {
            self.entries.pop_first();
        }
        id
    }

    fn read_new(
        &mut self,
        group: &str,
        consumer: &str,
        count: usize,
        now: Instant,
    ) -> Vec<StreamEntry> {
        let group = self.groups.entry(group.to_owned()).or_default();
        // Like XREADGROUP, a read joins the consumer to the group, whatever it returns.
        group.consumers.insert(consumer.to_owned(), now);
        let mut out = Vec::new();
        let start = std::ops::Bound::Excluded(group.last_delivered);
        for (id, payload) in self
            .entries
            .range((start, std::ops::Bound::Unbounded))
            .take(count.max(1))
        {
            group.pending.insert(
                *id,
                Pending {
                    owner: consumer.to_owned(),
                    delivered_at: now,
                    deliveries: 1,
                },
            );
            group.last_delivered = *id;
            out.push(StreamEntry {
                id: id.to_string(),
                payload: payload.clone(),
                deliveries: 1,
            });
        }
        out
    }

    fn claim_stale(
        &mut self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
        now: Instant,
    ) -> Vec<StreamEntry> {
        let Some(group) = self.groups.get_mut(group) else {
            return Vec::new();
        };
        group.consumers.insert(consumer.to_owned(), now);
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, pending) in group.pending.iter_mut() {
            if out.len() >= count.max(1) {
                break;
            }
            if now.duration_since(pending.delivered_at) < min_idle {
                continue;
            }
            let Some(payload) = self.entries.get(id) else {
                // Trimmed away: Redis drops such ids from the pending list too.
                gone.push(*id);
                continue;
            };
            consumer.clone_into(&mut pending.owner);
            pending.delivered_at = now;
            pending.deliveries += 1;
            out.push(StreamEntry {
                id: id.to_string(),
                payload: payload.clone(),
                deliveries: pending.deliveries,
            });
        }
        for id in gone {
            group.pending.remove(&id);
        }
        out
    }

    fn alive(&self, group: &str, consumer: &str, now: Instant) -> bool {
        self.heartbeats
            .get(&(group.to_owned(), consumer.to_owned()))
            .is_some_and(|expires| *expires > now)
    }

    fn consumers(&self, group_name: &str, now: Instant) -> Vec<StreamConsumer> {
        let Some(group) = self.groups.get(group_name) else {
            return Vec::new();
        };
        let mut pending: HashMap<&str, u64> = HashMap::new();
        for entry in group.pending.values() {
            *pending.entry(entry.owner.as_str()).or_default() += 1;
        }
        group
            .consumers
            .iter()
            .map(|(name, seen)| StreamConsumer {
                name: name.clone(),
                pending: pending.get(name.as_str()).copied().unwrap_or(0),
                idle: now.duration_since(*seen),
                alive: self.alive(group_name, name, now),
            })
            .collect()
    }

    fn claim_dead(
        &mut self,
        group_name: &str,
        consumer: &str,
        grace: Duration,
        count: usize,
        now: Instant,
    ) -> DeadConsumerClaim {
        let mut claim = DeadConsumerClaim::default();
        let dead: Vec<String> = match self.groups.get(group_name) {
            Some(group) => group
                .consumers
                .iter()
                .filter(|(name, seen)| {
                    name.as_str() != consumer
                        && now.duration_since(**seen) >= grace
                        && !self.alive(group_name, name, now)
                })
                .map(|(name, _)| name.clone())
                .collect(),
            None => return claim,
        };
        let Some(group) = self.groups.get_mut(group_name) else {
            return claim;
        };
        let count = count.max(1);
        for name in dead {
            if claim.entries.len() >= count {
                break;
            }
            let held: Vec<StreamId> = group
                .pending
                .iter()
                .filter(|(_, pending)| pending.owner == name)
                .map(|(id, _)| *id)
                .take(count - claim.entries.len())
                .collect();
            if held.is_empty() {
                group.consumers.remove(&name);
                claim.removed.push(name);
                continue;
            }
            group.consumers.insert(consumer.to_owned(), now);
            for id in held {
                let Some(payload) = self.entries.get(&id) else {
                    // Trimmed away: dropped from the pending list, as XCLAIM does.
                    group.pending.remove(&id);
                    continue;
                };
                if let Some(pending) = group.pending.get_mut(&id) {
                    consumer.clone_into(&mut pending.owner);
                    pending.delivered_at = now;
                    pending.deliveries += 1;
                    claim.entries.push(StreamEntry {
                        id: id.to_string(),
                        payload: payload.clone(),
                        deliveries: pending.deliveries,
                    });
                }
            }
            claim.claimed_from.push(name);
        }
        claim
    }
}

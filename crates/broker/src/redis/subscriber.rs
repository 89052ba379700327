//! The one pub/sub connection of a process, with reference-counted subscriptions.
//!
//! A reader task owns the connection. It connects (with capped, jittered backoff),
//! subscribes the control channel, publishes the sink for [`RedisSubscriber::subscribe`],
//! resubscribes every channel that still has references, and then reads messages into the
//! subscriber's bounded [`Delivery`]. The redis crate's pub/sub connection does not
//! reconnect by itself: when its stream ends (Redis restarted, connection reset) or a
//! periodic `PING` goes unanswered, the task starts over. After resubscribing, each channel
//! whose position the subscriber knows (the last publication it delivered, else the start
//! noted with [`RedisSubscriber::note_position`]) is **recovered in place**: what was
//! published since is read from the history and delivered, in order, before anything the
//! new connection reads (which skips what the recovery already delivered), so a blip costs
//! its subscribers nothing. A channel whose position is unknown, whose epoch changed, or
//! whose history no longer covers the gap (or more than [`RECOVER_MAX`] were missed) gets a
//! [`crate::BrokerEvent::GapPossible`] instead.
//!
//! Subscriptions are kept in shards. A shard's operation lock serializes SUBSCRIBE /
//! UNSUBSCRIBE of its channels (and the resubscription after a reconnect), so only the first
//! reference sends SUBSCRIBE, only the last one sends UNSUBSCRIBE, and a subscribe returns
//! after Redis confirmed it. A channel is registered before its SUBSCRIBE is sent, so a
//! publication that arrives between the confirmation and the return is delivered, not lost.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use herald_common::channel::ChannelName;
use herald_common::protocol::{Publication, StreamPosition};
use rand::Rng;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::delivery::{Delivered, Delivery};
use crate::error::{BrokerError, BrokerResult};
use crate::redis::RedisBroker;
use crate::redis::keys::Keys;
use crate::types::{BrokerEvent, HistoryQuery, SubscriberStats, decide_recovery};
use crate::util::lock;

/// Number of subscription shards (independent operation locks).
const SHARDS: usize = 64;

/// Channels per SUBSCRIBE command when resubscribing.
const RESUBSCRIBE_BATCH: usize = 256;

/// Most publications of one channel recovered in place after a reconnect; beyond it the
/// channel reports a gap.
pub(crate) const RECOVER_MAX: usize = 10_000;

/// First pause after a failed connection attempt; doubled up to the configured maximum.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(25);

/// Pauses between failed connection attempts: doubling from [`MIN_BACKOFF`], with up to a
/// quarter of jitter so a fleet of gateways does not knock in step, and never longer than
/// the cap, jitter included. The cap is what bounds how late the connection is back after
/// Redis answers again (one pause at most), so it stays short (100 ms by default): a refused
/// connection attempt costs next to nothing, a late reconnect costs every client a gap.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff capped at `max` (at least [`MIN_BACKOFF`]).
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: MIN_BACKOFF.min(max.max(MIN_BACKOFF)),
            max: max.max(MIN_BACKOFF),
        }
    }

    /// The pause before the next attempt; the one after it doubles (up to the cap).
    pub(crate) fn pause(&mut self) -> Duration {
        let base = self.next;
        let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(0);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=quarter));
        self.next = (base * 2).min(self.max);
        (base + jitter).min(self.max)
    }

    /// A connection succeeded: the next failure starts from the shortest pause again.
    pub(crate) fn reset(&mut self) {
        self.next = MIN_BACKOFF.min(self.max);
    }
}

/// The Redis side of a [`crate::Subscriber`]. Dropping it stops the reader task and closes
/// the connection.
#[derive(Debug)]
pub(crate) struct RedisSubscriber {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

#[derive(Debug)]
struct Shared {
    /// Reads the history when recovering after a reconnect.
    broker: RedisBroker,
    client: redis::Client,
    keys: Keys,
    control: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    ping_interval: Duration,
    reconnect_max_delay: Duration,
    delivery: Delivery,
    shards: Box<[Shard]>,
    hasher: RandomState,
    /// The sink of the current connection; `None` while disconnected.
    sink: Mutex<Option<PubSubSink>>,
    /// `true` while `sink` is set.
    connected: watch::Sender<bool>,
    reconnects: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    /// Held across SUBSCRIBE / UNSUBSCRIBE round trips of this shard's channels.
    ops: tokio::sync::Mutex<()>,
    /// Pub/sub channel name -> subscription. `refs == 0` only while the first SUBSCRIBE is
    /// in flight (under `ops`).
    channels: Mutex<HashMap<String, Subscription>>,
}

#[derive(Debug)]
struct Subscription {
    channel: ChannelName,
    refs: usize,
    /// Epoch and offset of the last publication delivered (read or recovered).
    last: Option<(String, u64)>,
    /// The lowest start position noted while nothing was delivered.
    noted: Option<(String, u64)>,
}

impl Subscription {
    fn new(channel: &ChannelName) -> Self {
        Self {
            channel: channel.clone(),
            refs: 0,
            last: None,
            noted: None,
        }
    }

    /// Where a recovery after a reconnect starts.
    fn recover_from(&self) -> Option<StreamPosition> {
        self.last
            .as_ref()
            .or(self.noted.as_ref())
            .map(|(epoch, offset)| StreamPosition {
                epoch: epoch.clone(),
                offset: *offset,
            })
    }

    /// Records a delivered publication; `false` when it is at or below the last one of its
    /// epoch (already delivered by a recovery).
    fn advance(&mut self, epoch: &str, offset: u64) -> bool {
        if offset == 0 {
            return true;
        }
        match &mut self.last {
            Some((last_epoch, last_offset)) if last_epoch == epoch => {
                if offset <= *last_offset {
                    return false;
                }
                *last_offset = offset;
            }
            other => *other = Some((epoch.to_owned(), offset)),
        }
        true
    }
}

/// Why reading stopped.
enum ReadEnd {
    /// The connection is gone: reconnect.
    Lost,
    /// The subscriber was dropped or its receiver closed: stop.
    Stop,
}

impl RedisSubscriber {
    pub(crate) fn start(
        broker: &RedisBroker,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<BrokerEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let config = broker.config();
        let shared = Arc::new(Shared {
            broker: broker.clone(),
            client: broker.client().clone(),
            keys: broker.keys().clone(),
            control: broker.keys().control(),
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            ping_interval: config.ping_interval,
            reconnect_max_delay: config.reconnect_max_delay,
            delivery: Delivery::new(tx),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            sink: Mutex::new(None),
            connected: watch::Sender::new(false),
            reconnects: AtomicU64::new(0),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(Arc::clone(&shared).run(cancel.clone()));
        let flusher = Arc::clone(&shared);
        let flusher_cancel = cancel.clone();
        tokio::spawn(async move { flusher.delivery.run_flusher(flusher_cancel).await });
        (
            Self {
                shared,
                _stop: cancel.drop_guard(),
            },
            rx,
        )
    }

    pub(crate) async fn subscribe(&self, channel: &ChannelName) -> BrokerResult<()> {
        let shared = &self.shared;
        let name = shared.keys.channel(channel).tag;
        let shard = shared.shard(&name);
        let _op = shard.ops.lock().await;
        {
            let mut channels = lock(&shard.channels);
            if let Some(subscription) = channels.get_mut(&name)
                && subscription.refs > 0
            {
                subscription.refs += 1;
                return Ok(());
            }
            channels.insert(name.clone(), Subscription::new(channel));
        }
        let subscribed = async {
            let mut sink = shared.wait_for_sink().await?;
            shared.within_command_timeout(sink.subscribe(&name)).await
        }
        .await;
        let mut channels = lock(&shard.channels);
        match subscribed {
            Ok(()) => {
                channels
                    .entry(name)
                    .or_insert_with(|| Subscription::new(channel))
                    .refs += 1;
                Ok(())
            }
            Err(err) => {
                if channels.get(&name).is_some_and(|s| s.refs == 0) {
                    channels.remove(&name);
                }
                Err(err)
            }
        }
    }

    pub(crate) async fn unsubscribe(&self, channel: &ChannelName) {
        let shared = &self.shared;
        let name = shared.keys.channel(channel).tag;
        let shard = shared.shard(&name);
        let _op = shard.ops.lock().await;
        let last = {
            let mut channels = lock(&shard.channels);
            match channels.get_mut(&name) {
                Some(subscription) if subscription.refs > 1 => {
                    subscription.refs -= 1;
                    false
                }
                Some(_) => {
                    channels.remove(&name);
                    true
                }
                None => false,
            }
        };
        if !last {
            return;
        }
        let sink = lock(&shared.sink).clone();
        if let Some(mut sink) = sink {
            // The local count is what matters: messages of an unknown channel are dropped,
            // and a reconnect does not resubscribe it, so a failure here only costs traffic.
            if let Err(err) = shared.within_command_timeout(sink.unsubscribe(&name)).await {
                tracing::warn!(channel = %channel, error = %err, "redis UNSUBSCRIBE failed");
            }
        }
    }

    /// Notes that a subscriber of `channel` starts at `position` (read after its
    /// subscription was effective): until a publication is delivered, a recovery after a
    /// reconnect starts from the lowest such position.
    pub(crate) fn note_position(&self, channel: &ChannelName, position: &StreamPosition) {
        let name = self.shared.keys.channel(channel).tag;
        let mut channels = lock(&self.shared.shard(&name).channels);
        let Some(subscription) = channels.get_mut(&name) else {
            return;
        };
        if subscription.last.is_some() {
            return;
        }
        let lower = match &subscription.noted {
            Some((epoch, offset)) => *epoch != position.epoch || position.offset < *offset,
            None => true,
        };
        if lower {
            subscription.noted = Some((position.epoch.clone(), position.offset));
        }
    }

    pub(crate) fn report_gap(&self, channel: &ChannelName) {
        // A closed receiver means the subscriber is stopping: nothing to report to.
        let _ = self.shared.delivery.gap(channel);
    }

    pub(crate) fn stats(&self) -> SubscriberStats {
        let shared = &self.shared;
        SubscriberStats {
            channels: shared
                .shards
                .iter()
                .map(|shard| {
                    lock(&shard.channels)
                        .values()
                        .filter(|s| s.refs > 0)
                        .count()
                })
                .sum(),
            connected: *shared.connected.borrow(),
            reconnects: shared.reconnects.load(Ordering::Relaxed),
            dropped_events: shared.delivery.dropped(),
        }
    }
}

impl Shared {
    fn shard(&self, name: &str) -> &Shard {
        let index = usize::try_from(self.hasher.hash_one(name) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    async fn within_command_timeout<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> BrokerResult<T> {
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BrokerError::Timeout(self.command_timeout)),
        }
    }

    /// The current sink, waiting up to the connect time-out for a connection.
    async fn wait_for_sink(&self) -> BrokerResult<PubSubSink> {
        let mut connected = self.connected.subscribe();
        match tokio::time::timeout(self.connect_timeout, connected.wait_for(|up| *up)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(BrokerError::Unavailable("the subscriber stopped")),
            Err(_) => return Err(BrokerError::Unavailable("no redis pub/sub connection")),
        }
        lock(&self.sink)
            .clone()
            .ok_or(BrokerError::Unavailable("no redis pub/sub connection"))
    }

    /// The reader task: connect, resubscribe, read; again after every loss.
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut backoff = Backoff::new(self.reconnect_max_delay);
        let mut was_connected = false;
        loop {
            let connection = tokio::select! {
                () = cancel.cancelled() => return,
                connection = self.connect() => connection,
            };
            match connection {
                Ok((sink, stream)) => {
                    backoff.reset();
                    if was_connected {
                        self.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("redis pub/sub connection re-established");
                    }
                    let resubscribed = tokio::select! {
                        () = cancel.cancelled() => return,
                        resubscribed = self.resubscribe(&sink, was_connected) => resubscribed,
                    };
                    was_connected = true;
                    let end = match resubscribed {
                        Ok(()) => self.read(stream, sink, &cancel).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "redis pub/sub resubscription failed");
                            ReadEnd::Lost
                        }
                    };
                    *lock(&self.sink) = None;
                    self.connected.send_replace(false);
                    match end {
                        ReadEnd::Stop => return,
                        // Try at once: a lost connection is often back immediately.
                        ReadEnd::Lost => {
                            tracing::warn!("redis pub/sub connection lost; reconnecting");
                            continue;
                        }
                    }
                }
                Err(err) => {
                    let pause = backoff.pause();
                    tracing::warn!(error = %err, retry_in = ?pause, "redis pub/sub connection failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    async fn connect(&self) -> BrokerResult<(PubSubSink, PubSubStream)> {
        let pubsub = match tokio::time::timeout(
            self.connect_timeout,
            self.client.get_async_pubsub(),
        )
        .await
        {
            Ok(pubsub) => pubsub?,
            Err(_) => return Err(BrokerError::Timeout(self.connect_timeout)),
        };
        let (mut sink, stream) = pubsub.split();
        self.within_command_timeout(sink.subscribe(&self.control))
            .await?;
        Ok((sink, stream))
    }

    /// Makes `sink` current and subscribes it to every referenced channel, shard by shard.
    /// After a reconnect (`report_gaps`) every one of them gets a `GapPossible`.
    async fn resubscribe(&self, sink: &PubSubSink, report_gaps: bool) -> BrokerResult<()> {
        *lock(&self.sink) = Some(sink.clone());
        self.connected.send_replace(true);
        let mut sink = sink.clone();
        for shard in &self.shards {
            let _op = shard.ops.lock().await;
            let (names, channels): (Vec<String>, Vec<(ChannelName, Option<StreamPosition>)>) =
                lock(&shard.channels)
                    .iter()
                    .map(|(name, subscription)| {
                        (
                            name.clone(),
                            (subscription.channel.clone(), subscription.recover_from()),
                        )
                    })
                    .unzip();
            for batch in names.chunks(RESUBSCRIBE_BATCH) {
                self.within_command_timeout(sink.subscribe(batch)).await?;
            }
            if report_gaps {
                for (name, (channel, since)) in names.iter().zip(&channels) {
                    if self.recover(shard, name, channel, since.as_ref()).await == Delivered::Closed
                    {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// After a reconnect (the channel is subscribed again, nothing of the new connection
    /// read yet): delivers what was published since `since`, or reports a gap when that
    /// cannot be done exactly.
    async fn recover(
        &self,
        shard: &Shard,
        name: &str,
        channel: &ChannelName,
        since: Option<&StreamPosition>,
    ) -> Delivered {
        let Some(since) = since else {
            return self.delivery.gap(channel);
        };
        let query = HistoryQuery {
            since: Some(since.clone()),
            limit: Some(RECOVER_MAX),
            reverse: false,
        };
        let recovery = match self
            .within_command_timeout_result(self.broker.snapshot(channel, &query))
            .await
        {
            Ok(snapshot) => decide_recovery(since, snapshot, RECOVER_MAX),
            Err(err) => {
                tracing::warn!(%channel, error = %err, "recovery after a reconnect failed; reporting a gap");
                return self.delivery.gap(channel);
            }
        };
        if !recovery.recovered {
            return self.delivery.gap(channel);
        }
        let epoch = recovery.position.epoch;
        let recovered = recovery.publications.len();
        for publication in recovery.publications {
            let offset = publication.offset;
            let event = BrokerEvent::Publication {
                channel: channel.clone(),
                publication: Arc::new(publication),
                epoch: epoch.clone(),
            };
            let fresh = lock(&shard.channels)
                .get_mut(name)
                .is_some_and(|subscription| subscription.advance(&epoch, offset));
            if fresh && self.delivery.deliver(channel, event) == Delivered::Closed {
                return Delivered::Closed;
            }
        }
        if recovered > 0 {
            tracing::info!(%channel, recovered, "recovered in place after a reconnect");
        }
        Delivered::Accepted
    }

    async fn within_command_timeout_result<T>(
        &self,
        command: impl Future<Output = BrokerResult<T>>,
    ) -> BrokerResult<T> {
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(result) => result,
            Err(_) => Err(BrokerError::Timeout(self.command_timeout)),
        }
    }

    async fn read(
        &self,
        mut stream: PubSubStream,
        mut sink: PubSubSink,
        cancel: &CancellationToken,
    ) -> ReadEnd {
        let start = tokio::time::Instant::now() + self.ping_interval;
        let mut ping = tokio::time::interval_at(start, self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return ReadEnd::Stop,
                message = stream.next() => match message {
                    Some(message) => {
                        if self.handle(&message).await == Delivered::Closed {
                            return ReadEnd::Stop;
                        }
                    }
                    None => return ReadEnd::Lost,
                },
                _ = ping.tick() => {
                    if let Err(err) = self.within_command_timeout(sink.ping::<redis::Value>()).await {
                        tracing::warn!(error = %err, "redis pub/sub PING failed");
                        return ReadEnd::Lost;
                    }
                    if self.delivery.is_closed() {
                        return ReadEnd::Stop;
                    }
                }
            }
        }
    }

    async fn handle(&self, message: &redis::Msg) -> Delivered {
        let name = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if name == self.control {
            return self
                .delivery
                .deliver_control(Bytes::copy_from_slice(payload))
                .await;
        }
        let channel = lock(&self.shard(name).channels)
            .get(name)
            .map(|subscription| subscription.channel.clone());
        let Some(channel) = channel else {
            // Unsubscribed meanwhile.
            return Delivered::Accepted;
        };
        match parse_message(&channel, payload) {
            Ok(event) => {
                if let BrokerEvent::Publication {
                    publication, epoch, ..
                } = &event
                {
                    let fresh = lock(&self.shard(name).channels)
                        .get_mut(name)
                        .is_none_or(|subscription| subscription.advance(epoch, publication.offset));
                    if !fresh {
                        // Delivered already by the recovery after a reconnect.
                        return Delivered::Accepted;
                    }
                }
                self.delivery.deliver(&channel, event)
            }
            Err(err) => {
                tracing::warn!(channel = %channel, error = %err, "malformed pub/sub message dropped");
                Delivered::Accepted
            }
        }
    }
}

/// Decodes a pub/sub message of a channel: `p<offset>:<epoch>:<publication JSON>`,
/// `j<client info JSON>` or `l<client info JSON>`.
fn parse_message(channel: &ChannelName, payload: &[u8]) -> BrokerResult<BrokerEvent> {
    let malformed = || BrokerError::Malformed("pub/sub message".to_owned());
    match payload.split_first() {
        Some((b'p', rest)) => {
            let mut parts = rest.splitn(3, |byte| *byte == b':');
            let offset = parts.next().ok_or_else(malformed)?;
            let epoch = parts.next().ok_or_else(malformed)?;
            let json = parts.next().ok_or_else(malformed)?;
            let offset = std::str::from_utf8(offset)
                .ok()
                .and_then(|offset| offset.parse().ok())
                .ok_or_else(malformed)?;
            let epoch = String::from_utf8(epoch.to_vec()).map_err(|_| malformed())?;
            let mut publication: Publication = serde_json::from_slice(json)?;
            publication.offset = offset;
            Ok(BrokerEvent::Publication {
                channel: channel.clone(),
                publication: Arc::new(publication),
                epoch,
            })
        }
        Some((b'j', json)) => Ok(BrokerEvent::Join {
            channel: channel.clone(),
            info: serde_json::from_slice(json)?,
        }),
        Some((b'l', json)) => Ok(BrokerEvent::Leave {
            channel: channel.clone(),
            info: serde_json::from_slice(json)?,
        }),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::RedisConfig;

    /// However long Redis stays down, no pause of the default configuration exceeds 100 ms,
    /// so the connection is back within one short pause of Redis answering.
    #[test]
    fn default_reconnect_pauses_never_exceed_100_ms() {
        let config = RedisConfig::new("redis://127.0.0.1:6379");
        let mut backoff = Backoff::new(config.reconnect_max_delay);
        let pauses: Vec<Duration> = (0..50).map(|_| backoff.pause()).collect();
        assert!(pauses[0] >= MIN_BACKOFF, "{pauses:?}");
        assert!(
            pauses.iter().all(|p| *p <= Duration::from_millis(100)),
            "{pauses:?}"
        );
        // It still backs off: the pauses grow to the cap.
        assert_eq!(pauses[49], Duration::from_millis(100));
    }

    #[test]
    fn pauses_double_to_the_cap_and_restart_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(1000));
        let bases = [25, 50, 100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let pause = backoff.pause();
            let base = Duration::from_millis(base);
            assert!(pause >= base && pause <= (base + base / 4).min(Duration::from_millis(1000)));
        }
        backoff.reset();
        assert!(backoff.pause() <= MIN_BACKOFF + MIN_BACKOFF / 4);
    }

    #[test]
    fn a_cap_below_the_first_pause_is_raised_to_it() {
        let mut backoff = Backoff::new(Duration::ZERO);
        assert_eq!(backoff.pause(), MIN_BACKOFF);
        assert_eq!(backoff.pause(), MIN_BACKOFF);
    }
}

//! The Redis broker.
//!
//! Connections (none opened per client or per request):
//! - one auto-reconnecting multiplexed command connection (`ConnectionManager`) shared by
//!   every clone of a [`RedisBroker`]: publish, history, presence, key-value, stream writes;
//! - one more, opened on first use, without a response time-out, for blocking
//!   `XREADGROUP` reads (the default 500 ms response time-out would cut every `BLOCK`);
//! - one pub/sub connection per [`crate::Subscriber`] (see [`subscriber`]); a gateway
//!   process makes exactly one.
//!
//! Nothing contacts Redis at construction: a service starts while Redis is down and
//! reports not ready through [`crate::Broker::ping`] until it is back.
//!
//! Layout: [`keys`] names every key, [`scripts`] holds the Lua scripts, [`subscriber`] runs
//! the pub/sub connection, and this module issues the commands.

pub(crate) mod keys;
pub(crate) mod scripts;
pub(crate) mod subscriber;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, Publication, StreamPosition};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Value};
use tokio::sync::{OnceCell, mpsc};

use crate::error::{BrokerError, BrokerResult};
use crate::types::{
    BrokerEvent, DEFAULT_IDLE_EPOCH_TTL, DeadConsumerClaim, HistoryQuery, HistorySnapshot,
    PresenceStats, PublishRequest, PublishResult, StreamConsumer, StreamEntry,
};
use crate::util::{millis, new_epoch};
use keys::Keys;
use scripts::{
    CLAIM_DEAD_SCRIPT, HISTORY_SCRIPT, PRESENCE_ADD_SCRIPT, PRESENCE_GET_SCRIPT,
    PRESENCE_REMOVE_SCRIPT, PUBLISH_SCRIPT, PUBLISH_SOURCE,
};

/// Default prefix of every key and pub/sub channel (`HERALD_REDIS_PREFIX`).
pub const DEFAULT_PREFIX: &str = "herald:";

/// Default cap of a domain-event stream (`MAXLEN ~`).
pub const DEFAULT_STREAM_MAX_LEN: usize = 100_000;

/// Default cap of the pause between two reconnection attempts: a refused attempt is cheap,
/// and every millisecond of pause after Redis is back is a millisecond of lost pub/sub.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_millis(100);

/// How to reach Redis and how patient to be with it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (`HERALD_REDIS_URL`).
    pub url: String,
    /// Prefix of every key and pub/sub channel (`HERALD_REDIS_PREFIX`); no braces.
    pub prefix: String,
    /// Longest wait for one connection attempt.
    pub connect_timeout: Duration,
    /// Longest wait for one command (a blocking stream read gets its block time on top).
    pub command_timeout: Duration,
    /// How often the pub/sub connection is checked with a `PING`, so a silently dead
    /// connection is noticed and replaced.
    pub ping_interval: Duration,
    /// Longest pause between two reconnection attempts (pub/sub and command connections),
    /// jitter included: the connection is back at most this long after Redis answers again.
    pub reconnect_max_delay: Duration,
    /// How long an epoch created by a read of a channel without publications is kept.
    pub idle_epoch_ttl: Duration,
    /// Approximate cap of each domain-event stream (`None` = no cap).
    pub stream_max_len: Option<usize>,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `herald:`, 2 s connect and command time-outs, pub/sub
    /// ping every 5 s, reconnect pauses up to 100 ms, streams capped near 100 000 entries.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(5),
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            idle_epoch_ttl: DEFAULT_IDLE_EPOCH_TTL,
            stream_max_len: Some(DEFAULT_STREAM_MAX_LEN),
        }
    }

    /// Sets the prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The Redis broker. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    commands: ConnectionManager,
    blocking: OnceCell<ConnectionManager>,
    keys: Keys,
    config: RedisConfig,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only the prefix is shown.
        f.debug_struct("RedisBroker")
            .field("prefix", &self.inner.keys.prefix())
            .finish_non_exhaustive()
    }
}

fn manager_config(
    config: &RedisConfig,
    response_timeout: Option<Duration>,
) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(response_timeout)
        // Few retries per attempt: a command fails fast while Redis is down, and the next
        // command starts a new attempt.
        .set_number_of_retries(1)
        .set_min_delay(subscriber::MIN_BACKOFF.min(config.reconnect_max_delay))
        .set_max_delay(config.reconnect_max_delay)
}

impl RedisBroker {
    /// Checks `config` and prepares the connections without opening them.
    pub fn new(config: &RedisConfig) -> BrokerResult<Self> {
        let keys = Keys::new(&config.prefix)?;
        let client = redis::Client::open(config.url.as_str())?;
        let commands = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(config, Some(config.command_timeout)),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                commands,
                blocking: OnceCell::new(),
                keys,
                config: config.clone(),
            }),
        })
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// Runs a command future on the command connection with the command time-out.
    async fn run<T, F, Fut>(&self, command: F) -> BrokerResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = self.inner.config.command_timeout;
        match tokio::time::timeout(timeout, command(self.inner.commands.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BrokerError::Timeout(timeout)),
        }
    }

    pub(crate) async fn ping(&self) -> BrokerResult<()> {
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(drop)
    }

    pub(crate) async fn publish(
        &self,
        channel: &ChannelName,
        request: PublishRequest,
    ) -> BrokerResult<PublishResult> {
        self.publish_many(vec![(channel.clone(), request)])
            .await
            .pop()
            .unwrap_or_else(|| Err(malformed("no publish result")))
    }

    /// Publishes `requests` in order: see [`crate::Broker::publish_many`].
    ///
    /// Consecutive publications of one channel with the same history policy and no
    /// idempotency key become one script call (up to [`MAX_SCRIPT_PUBLICATIONS`]), and
    /// every call goes out in one pipeline on the command connection. Redis runs the calls
    /// of a pipeline in the order they were written, and the multiplexed connection writes
    /// one pipeline as one contiguous request (`MultiplexedConnection::send_packed_commands`
    /// queues it as one message), so the publications are made in the order given. Separate
    /// `publish` futures have no such guarantee: each is queued when it is first polled, so
    /// futures made in one order can be queued in another (a pending connection or a full
    /// queue wakes them in any order).
    pub(crate) async fn publish_many(
        &self,
        requests: Vec<(ChannelName, PublishRequest)>,
    ) -> Vec<BrokerResult<PublishResult>> {
        let mut results: Vec<Option<BrokerResult<PublishResult>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut calls: Vec<ScriptCall> = Vec::new();
        for (index, (channel, request)) in requests.into_iter().enumerate() {
            let idempotency = request
                .idempotency()
                .map(|(key, window)| (key.to_owned(), millis(window)));
            let history = if request.history.is_enabled() {
                (request.history.size, millis(request.history.ttl))
            } else {
                (0, 0)
            };
            let json = match serde_json::to_vec(&request.into_publication()) {
                Ok(json) => json,
                Err(err) => {
                    results[index] = Some(Err(err.into()));
                    continue;
                }
            };
            match calls.last_mut() {
                Some(call) if idempotency.is_none() && call.joins(&channel, history, index) => {
                    call.publications.push(json);
                }
                _ => calls.push(ScriptCall {
                    channel,
                    history,
                    idempotency,
                    first: index,
                    publications: vec![json],
                }),
            }
        }
        let replies = self.run_publish_calls(&calls).await;
        for (call, reply) in calls.iter().zip(replies) {
            let count = call.publications.len();
            match reply.and_then(parse_publish_reply) {
                Ok((deduplicated, offset, epoch)) => {
                    for n in 0..count {
                        results[call.first + n] = Some(Ok(PublishResult {
                            // Without history every publication has offset 0.
                            offset: if offset == 0 { 0 } else { offset + n as u64 },
                            epoch: epoch.clone(),
                            deduplicated,
                        }));
                    }
                }
                Err(err) => {
                    for n in 0..count {
                        results[call.first + n] = Some(Err(duplicate(&err)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(malformed("no publish result"))))
            .collect()
    }

    /// Sends the script calls in one pipeline; one reply per call.
    ///
    /// After a `NOSCRIPT` (Redis restarted or its scripts were flushed) the script is loaded
    /// and the calls from the first refused one are sent again, but only when every one of
    /// them was refused: had a later one run (another process loaded the script meanwhile),
    /// running the earlier ones now would reorder them, so they fail instead.
    async fn run_publish_calls(&self, calls: &[ScriptCall]) -> Vec<BrokerResult<Value>> {
        if calls.is_empty() {
            return Vec::new();
        }
        let mut replies = self.pipeline_publish_calls(calls).await;
        let refused = |reply: &BrokerResult<Value>| {
            matches!(reply, Err(BrokerError::Redis(err))
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        };
        if let Some(first) = replies.iter().position(refused)
            && replies[first..].iter().all(refused)
        {
            let loaded = self
                .run(|mut conn| async move {
                    redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(PUBLISH_SOURCE)
                        .query_async::<String>(&mut conn)
                        .await
                })
                .await;
            match loaded {
                Ok(_) => {
                    let again = self.pipeline_publish_calls(&calls[first..]).await;
                    replies.truncate(first);
                    replies.extend(again);
                }
                Err(err) => {
                    for reply in &mut replies[first..] {
                        *reply = Err(duplicate(&err));
                    }
                }
            }
        }
        replies
    }

    async fn pipeline_publish_calls(&self, calls: &[ScriptCall]) -> Vec<BrokerResult<Value>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for call in calls {
            pipe.add_command(call.command(&self.inner.keys));
        }
        let replies: BrokerResult<Vec<RedisResult<Value>>> = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await;
        match replies {
            Ok(replies) if replies.len() == calls.len() => replies
                .into_iter()
                .map(|reply| reply.map_err(BrokerError::from))
                .collect(),
            Ok(replies) => {
                let err = malformed(&format!(
                    "{} replies to {} publish calls",
                    replies.len(),
                    calls.len()
                ));
                calls.iter().map(|_| Err(duplicate(&err))).collect()
            }
            Err(err) => calls.iter().map(|_| Err(duplicate(&err))).collect(),
        }
    }

    pub(crate) async fn snapshot(
        &self,
        channel: &ChannelName,
        query: &HistoryQuery,
    ) -> BrokerResult<HistorySnapshot> {
        let keys = self.inner.keys.channel(channel);
        let (since_offset, since_epoch) = match &query.since {
            Some(since) => (since.offset.to_string(), since.epoch.clone()),
            None => (String::new(), String::new()),
        };
        let limit: i64 = query
            .limit
            .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let mut invocation = HISTORY_SCRIPT.prepare_invoke();
        invocation
            .key(keys.stream())
            .key(keys.meta())
            .arg(new_epoch())
            .arg(millis(self.inner.config.idle_epoch_ttl))
            .arg(since_offset)
            .arg(since_epoch)
            .arg(limit)
            .arg(if query.reverse { "1" } else { "0" });
        let value: Value = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        parse_snapshot(value)
    }

    pub(crate) async fn remove_history(&self, channel: &ChannelName) -> BrokerResult<()> {
        let stream = self.inner.keys.channel(channel).stream();
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(stream)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }

    async fn publish_raw(&self, pubsub: String, message: Vec<u8>) -> BrokerResult<()> {
        self.run(|mut conn| async move {
            redis::cmd("PUBLISH")
                .arg(pubsub)
                .arg(message)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }

    pub(crate) async fn publish_join(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
    ) -> BrokerResult<()> {
        let mut message = b"j".to_vec();
        serde_json::to_writer(&mut message, info)?;
        let pubsub = self.inner.keys.channel(channel).tag;
        self.publish_raw(pubsub, message).await
    }

    pub(crate) async fn publish_leave(
        &self,
        channel: &ChannelName,
        info: &ClientInfo,
    ) -> BrokerResult<()> {
        let mut message = b"l".to_vec();
        serde_json::to_writer(&mut message, info)?;
        let pubsub = self.inner.keys.channel(channel).tag;
        self.publish_raw(pubsub, message).await
    }

    pub(crate) async fn publish_control(&self, payload: Bytes) -> BrokerResult<()> {
        self.publish_raw(self.inner.keys.control(), payload.to_vec())
            .await
    }

    pub(crate) async fn presence_add(
        &self,
        channel: &ChannelName,
        client_id: &str,
        info: &ClientInfo,
        ttl: Duration,
    ) -> BrokerResult<()> {
        let keys = self.inner.keys.channel(channel);
        let mut invocation = PRESENCE_ADD_SCRIPT.prepare_invoke();
        invocation
            .key(keys.presence())
            .key(keys.presence_expiry())
            .arg(client_id)
            .arg(serde_json::to_vec(info)?)
            .arg(millis(ttl));
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    pub(crate) async fn presence_remove(
        &self,
        channel: &ChannelName,
        client_id: &str,
    ) -> BrokerResult<()> {
        let keys = self.inner.keys.channel(channel);
        let mut invocation = PRESENCE_REMOVE_SCRIPT.prepare_invoke();
        invocation
            .key(keys.presence())
            .key(keys.presence_expiry())
            .arg(client_id);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    pub(crate) async fn presence(
        &self,
        channel: &ChannelName,
    ) -> BrokerResult<BTreeMap<String, ClientInfo>> {
        let keys = self.inner.keys.channel(channel);
        let mut invocation = PRESENCE_GET_SCRIPT.prepare_invoke();
        invocation.key(keys.presence()).key(keys.presence_expiry());
        let entries: Vec<(String, Vec<u8>)> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        entries
            .into_iter()
            .map(|(client, info)| Ok((client, serde_json::from_slice(&info)?)))
            .collect()
    }

    pub(crate) async fn presence_stats(
        &self,
        channel: &ChannelName,
    ) -> BrokerResult<PresenceStats> {
        let presence = self.presence(channel).await?;
        let users: HashSet<&str> = presence.values().map(|info| info.user.as_str()).collect();
        Ok(PresenceStats {
            num_clients: presence.len(),
            num_users: users.len(),
        })
    }

    pub(crate) async fn kv_set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> BrokerResult<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.inner.keys.kv(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        self.run(|mut conn| async move { cmd.query_async::<()>(&mut conn).await })
            .await
    }

    pub(crate) async fn kv_get(&self, key: &str) -> BrokerResult<Option<String>> {
        let key = self.inner.keys.kv(key);
        self.run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await
    }

    pub(crate) async fn kv_delete(&self, key: &str) -> BrokerResult<bool> {
        let key = self.inner.keys.kv(key);
        let removed: i64 = self
            .run(|mut conn| async move { redis::cmd("DEL").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(removed > 0)
    }

    pub(crate) async fn table_put(
        &self,
        table: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        // A table is laid out like a channel's presence (hash + expiry sorted set), so the
        // presence scripts serve it unchanged.
        let mut invocation = PRESENCE_ADD_SCRIPT.prepare_invoke();
        invocation
            .key(self.inner.keys.table(table))
            .key(self.inner.keys.table_expiry(table))
            .arg(field)
            .arg(value)
            .arg(millis(ttl));
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    pub(crate) async fn table_entries(
        &self,
        table: &str,
    ) -> BrokerResult<BTreeMap<String, String>> {
        let mut invocation = PRESENCE_GET_SCRIPT.prepare_invoke();
        invocation
            .key(self.inner.keys.table(table))
            .key(self.inner.keys.table_expiry(table));
        let entries: Vec<(String, String)> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(entries.into_iter().collect())
    }

    pub(crate) async fn table_remove(&self, table: &str, field: &str) -> BrokerResult<()> {
        let mut invocation = PRESENCE_REMOVE_SCRIPT.prepare_invoke();
        invocation
            .key(self.inner.keys.table(table))
            .key(self.inner.keys.table_expiry(table))
            .arg(field);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(drop)
    }

    pub(crate) async fn stream_append(&self, stream: &str, payload: &str) -> BrokerResult<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.inner.keys.stream(stream));
        if let Some(max_len) = self.inner.config.stream_max_len {
            cmd.arg("MAXLEN").arg("~").arg(max_len);
        }
        cmd.arg("*").arg("p").arg(payload);
        self.run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    pub(crate) async fn stream_ensure_group(&self, stream: &str, group: &str) -> BrokerResult<()> {
        let key = self.inner.keys.stream(stream);
        let created = self
            .run(|mut conn| async move {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(key)
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        match created {
            Err(BrokerError::Redis(err)) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The connection for blocking reads, opened on first use.
    async fn blocking(&self) -> BrokerResult<ConnectionManager> {
        let connection = self
            .inner
            .blocking
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(
                    self.inner.client.clone(),
                    manager_config(&self.inner.config, None),
                )
            })
            .await?;
        Ok(connection.clone())
    }

    pub(crate) async fn stream_read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> BrokerResult<Vec<StreamEntry>> {
        match self
            .read_group_once(stream, group, consumer, count, block)
            .await
        {
            // The group vanishes with the stream (Redis restarted without persistence):
            // make it again and read once more.
            Err(BrokerError::Redis(err)) if err.code() == Some("NOGROUP") => {
                self.stream_ensure_group(stream, group).await?;
                self.read_group_once(stream, group, consumer, count, block)
                    .await
            }
            other => other,
        }
    }

    async fn read_group_once(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> BrokerResult<Vec<StreamEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1));
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(millis(block));
        }
        cmd.arg("STREAMS")
            .arg(self.inner.keys.stream(stream))
            .arg(">");
        let mut conn = self.blocking().await?;
        let limit = block + self.inner.config.command_timeout;
        let value: Value = match tokio::time::timeout(limit, cmd.query_async(&mut conn)).await {
            Ok(result) => result?,
            Err(_) => return Err(BrokerError::Timeout(limit)),
        };
        let mut entries = Vec::new();
        if let Value::Array(streams) = value {
            for stream in streams {
                let [_, stream_entries] = <[Value; 2]>::try_from(array(stream)?)
                    .map_err(|_| malformed("XREADGROUP reply"))?;
                for entry in array(stream_entries)? {
                    if let Some((id, payload)) = parse_stream_entry(entry)? {
                        entries.push(StreamEntry {
                            id,
                            payload,
                            deliveries: 1,
                        });
                    }
                }
            }
        }
        Ok(entries)
    }

    pub(crate) async fn stream_ack(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> BrokerResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let key = self.inner.keys.stream(stream);
        self.run(|mut conn| async move {
            redis::cmd("XACK")
                .arg(key)
                .arg(group)
                .arg(ids)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    pub(crate) async fn stream_claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> BrokerResult<Vec<StreamEntry>> {
        /// Bound on XAUTOCLAIM round trips per call (each scans at most 10 × COUNT entries).
        const MAX_ROUNDS: usize = 8;
        let key = self.inner.keys.stream(stream);
        let count = count.max(1);
        let mut claimed: Vec<(String, String)> = Vec::new();
        let mut cursor = "0-0".to_owned();
        for _ in 0..MAX_ROUNDS {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&key)
                .arg(group)
                .arg(consumer)
                .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(count - claimed.len());
            let reply: Value = match self
                .run(|mut conn| async move { cmd.query_async(&mut conn).await })
                .await
            {
                Err(BrokerError::Redis(err)) if err.code() == Some("NOGROUP") => {
                    return Ok(Vec::new());
                }
                other => other?,
            };
            let mut parts = array(reply)?.into_iter();
            let next = parts.next().map(string).transpose()?;
            for entry in parts.next().map(array).transpose()?.unwrap_or_default() {
                if let Some(entry) = parse_stream_entry(entry)? {
                    claimed.push(entry);
                }
            }
            match next {
                Some(next) if next != "0-0" && claimed.len() < count => cursor = next,
                _ => break,
            }
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries = self
            .delivery_counts(&key, group, consumer, &claimed)
            .await?;
        Ok(claimed
            .into_iter()
            .map(|(id, payload)| StreamEntry {
                deliveries: deliveries.get(&id).copied().unwrap_or(1),
                id,
                payload,
            })
            .collect())
    }

    pub(crate) async fn stream_consumer_heartbeat(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ttl: Duration,
    ) -> BrokerResult<()> {
        let key = self.inner.keys.consumer_alive(stream, group, consumer);
        self.run(|mut conn| async move {
            redis::cmd("SET")
                .arg(key)
                .arg("1")
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    pub(crate) async fn stream_consumer_leave(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> BrokerResult<()> {
        let key = self.inner.keys.consumer_alive(stream, group, consumer);
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await
        .map(drop)
    }

    pub(crate) async fn stream_consumers(
        &self,
        stream: &str,
        group: &str,
    ) -> BrokerResult<Vec<StreamConsumer>> {
        let key = self.inner.keys.stream(stream);
        let reply: Value = match self
            .run(|mut conn| async move {
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(key)
                    .arg(group)
                    .query_async(&mut conn)
                    .await
            })
            .await
        {
            Err(BrokerError::Redis(err)) if no_group(&err) => return Ok(Vec::new()),
            other => other?,
        };
        let mut consumers = Vec::new();
        for info in array(reply)? {
            let mut consumer = StreamConsumer {
                name: String::new(),
                pending: 0,
                idle: Duration::ZERO,
                alive: false,
            };
            for (field, value) in fields(info)? {
                match field.as_str() {
                    "name" => consumer.name = string(value)?,
                    "pending" => consumer.pending = integer(value)?,
                    "idle" => consumer.idle = Duration::from_millis(integer(value)?),
                    _ => {}
                }
            }
            consumers.push(consumer);
        }
        if consumers.is_empty() {
            return Ok(consumers);
        }
        let marks: Vec<String> = consumers
            .iter()
            .map(|consumer| {
                self.inner
                    .keys
                    .consumer_alive(stream, group, &consumer.name)
            })
            .collect();
        let alive: Vec<Option<String>> =
            self.run(|mut conn| async move {
                redis::cmd("MGET").arg(marks).query_async(&mut conn).await
            })
            .await?;
        for (consumer, mark) in consumers.iter_mut().zip(alive) {
            consumer.alive = mark.is_some();
        }
        Ok(consumers)
    }

    pub(crate) async fn stream_claim_dead(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        grace: Duration,
        count: usize,
    ) -> BrokerResult<DeadConsumerClaim> {
        /// Bound on the entries of one claim (the script passes them to XCLAIM at once).
        const MAX_CLAIM: usize = 1_000;
        let key = self.inner.keys.stream(stream);
        let count = count.clamp(1, MAX_CLAIM);
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let mut claim = DeadConsumerClaim::default();
        let dead = self
            .stream_consumers(stream, group)
            .await?
            .into_iter()
            .filter(|other| other.name != consumer && !other.alive && other.idle >= grace);
        for dead in dead {
            let left = count.saturating_sub(claim.entries.len());
            if left == 0 {
                break;
            }
            let mut invocation = CLAIM_DEAD_SCRIPT.prepare_invoke();
            invocation
                .key(&key)
                .arg(group)
                .arg(consumer)
                .arg(&dead.name)
                .arg(grace_ms)
                .arg(left);
            let reply: Value = match self
                .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
                .await
            {
                Err(BrokerError::Redis(err)) if no_group(&err) => return Ok(claim),
                other => other?,
            };
            let [removed, entries] =
                <[Value; 2]>::try_from(array(reply)?).map_err(|_| malformed("claim reply"))?;
            if integer(removed)? == 1 {
                claim.removed.push(dead.name);
                continue;
            }
            let before = claim.entries.len();
            for entry in array(entries)? {
                let [id, fields, deliveries] = <[Value; 3]>::try_from(array(entry)?)
                    .map_err(|_| malformed("claimed entry"))?;
                if let Some((id, payload)) = parse_stream_entry(Value::Array(vec![id, fields]))? {
                    claim.entries.push(StreamEntry {
                        id,
                        payload,
                        deliveries: integer(deliveries)?,
                    });
                }
            }
            if claim.entries.len() > before {
                claim.claimed_from.push(dead.name);
            }
        }
        Ok(claim)
    }

    /// Delivery counts of entries just claimed by `consumer` (`XPENDING` over their range).
    async fn delivery_counts(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        claimed: &[(String, String)],
    ) -> BrokerResult<HashMap<String, u64>> {
        let (Some((first, _)), Some((last, _))) = (claimed.first(), claimed.last()) else {
            return Ok(HashMap::new());
        };
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(key)
            .arg(group)
            .arg(first)
            .arg(last)
            .arg(claimed.len().saturating_mul(4).max(16))
            .arg(consumer);
        let rows: Vec<(String, String, u64, u64)> = self
            .run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, _, _, deliveries)| (id, deliveries))
            .collect())
    }

    /// Opens the pub/sub side: see [`crate::Broker::subscriber`].
    pub(crate) fn subscriber(
        &self,
        capacity: usize,
    ) -> (subscriber::RedisSubscriber, mpsc::Receiver<BrokerEvent>) {
        subscriber::RedisSubscriber::start(self, capacity)
    }
}

/// The stream or its group does not exist (`XINFO` on a missing key, `NOGROUP`).
fn no_group(err: &redis::RedisError) -> bool {
    err.code() == Some("NOGROUP") || err.to_string().contains("no such key")
}

/// The field-value pairs of a reply: a RESP3 map, or a RESP2 flat array.
fn fields(value: Value) -> BrokerResult<Vec<(String, Value)>> {
    if let Value::Map(pairs) = value {
        return pairs
            .into_iter()
            .map(|(field, value)| Ok((string(field)?, value)))
            .collect();
    }
    let mut items = array(value)?.into_iter();
    let mut pairs = Vec::new();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        pairs.push((string(field)?, value));
    }
    Ok(pairs)
}

/// Most publications one publish script call carries.
pub(crate) const MAX_SCRIPT_PUBLICATIONS: usize = 64;

/// One call of the publish script: publications of one channel, in order.
struct ScriptCall {
    channel: ChannelName,
    /// History size and ttl in ms; `(0, 0)` without history.
    history: (usize, u64),
    /// Idempotency key and window in ms (then the only publication of the call).
    idempotency: Option<(String, u64)>,
    /// Index of the first publication in the caller's list.
    first: usize,
    publications: Vec<Vec<u8>>,
}

impl ScriptCall {
    /// Whether the publication at `index` (without idempotency key) can join this call.
    fn joins(&self, channel: &ChannelName, history: (usize, u64), index: usize) -> bool {
        self.idempotency.is_none()
            && self.channel == *channel
            && self.history == history
            && self.first + self.publications.len() == index
            && self.publications.len() < MAX_SCRIPT_PUBLICATIONS
    }

    fn command(&self, keys: &Keys) -> redis::Cmd {
        let keys = keys.channel(&self.channel);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(PUBLISH_SCRIPT.get_hash());
        match &self.idempotency {
            Some((key, _)) => cmd
                .arg(3)
                .arg(keys.stream())
                .arg(keys.meta())
                .arg(keys.idempotency(key)),
            None => cmd.arg(2).arg(keys.stream()).arg(keys.meta()),
        };
        cmd.arg(self.history.0)
            .arg(self.history.1)
            .arg(new_epoch())
            .arg(keys.pubsub())
            .arg(self.idempotency.as_ref().map_or(0, |(_, window)| *window));
        for publication in &self.publications {
            cmd.arg(publication.as_slice());
        }
        cmd
    }
}

/// `{deduplicated, "<first offset>:<epoch>"}` of the publish script.
fn parse_publish_reply(value: Value) -> BrokerResult<(bool, u64, String)> {
    let (deduplicated, result): (i64, String) = redis::from_redis_value(value)
        .map_err(|err| BrokerError::Malformed(format!("publish reply: {err}")))?;
    let (offset, epoch) = result
        .split_once(':')
        .and_then(|(offset, epoch)| Some((offset.parse().ok()?, epoch.to_owned())))
        .ok_or_else(|| BrokerError::Malformed(format!("publish result {result:?}")))?;
    Ok((deduplicated == 1, offset, epoch))
}

/// The same failure again, for each publication of a call that failed as a whole.
fn duplicate(err: &BrokerError) -> BrokerError {
    match err {
        BrokerError::Redis(err) => BrokerError::Redis(err.clone()),
        BrokerError::Timeout(timeout) => BrokerError::Timeout(*timeout),
        BrokerError::Unavailable(why) => BrokerError::Unavailable(why),
        BrokerError::UnrecoverablePosition => BrokerError::UnrecoverablePosition,
        other => BrokerError::Malformed(other.to_string()),
    }
}

fn malformed(what: &str) -> BrokerError {
    BrokerError::Malformed(what.to_owned())
}

fn array(value: Value) -> BrokerResult<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(BrokerError::Malformed(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

fn bytes(value: Value) -> BrokerResult<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        other => Err(BrokerError::Malformed(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

fn string(value: Value) -> BrokerResult<String> {
    String::from_utf8(bytes(value)?).map_err(|_| malformed("non-UTF-8 string"))
}

fn integer(value: Value) -> BrokerResult<u64> {
    match value {
        Value::Int(n) => u64::try_from(n).map_err(|_| malformed("negative integer")),
        other => string(other)?
            .parse()
            .map_err(|_| malformed("expected an integer")),
    }
}

/// `[id, [field, value, ...]]` of a stream entry: the id and the first field's value.
/// `None` for an entry deleted while pending (Redis 6.2 replies nil for those).
fn parse_stream_entry(entry: Value) -> BrokerResult<Option<(String, String)>> {
    if entry == Value::Nil {
        return Ok(None);
    }
    let mut parts = array(entry)?.into_iter();
    let id = string(parts.next().ok_or_else(|| malformed("stream entry"))?)?;
    let mut fields = parts
        .next()
        .map(array)
        .transpose()?
        .unwrap_or_default()
        .into_iter();
    let _field = fields.next();
    match fields.next() {
        Some(value) => Ok(Some((id, string(value)?))),
        None => Ok(None),
    }
}

/// The offset an entry id `<offset>-0` of a history stream stands for.
fn offset_of(id: &str) -> BrokerResult<u64> {
    id.split_once('-')
        .and_then(|(offset, _)| offset.parse().ok())
        .ok_or_else(|| BrokerError::Malformed(format!("history entry id {id:?}")))
}

fn parse_snapshot(value: Value) -> BrokerResult<HistorySnapshot> {
    let [epoch, top, matches, entries] =
        <[Value; 4]>::try_from(array(value)?).map_err(|_| malformed("history reply"))?;
    let position = StreamPosition {
        epoch: string(epoch)?,
        offset: integer(top)?,
    };
    let epoch_matches = integer(matches)? == 1;
    let mut publications = Vec::new();
    for entry in array(entries)? {
        let mut parts = array(entry)?.into_iter();
        let id = string(parts.next().ok_or_else(|| malformed("history entry"))?)?;
        let mut fields = parts
            .next()
            .map(array)
            .transpose()?
            .unwrap_or_default()
            .into_iter();
        let _field = fields.next();
        let data = bytes(
            fields
                .next()
                .ok_or_else(|| malformed("history entry data"))?,
        )?;
        let mut publication: Publication = serde_json::from_slice(&data)?;
        publication.offset = offset_of(&id)?;
        publications.push(publication);
    }
    Ok(HistorySnapshot {
        position,
        epoch_matches,
        publications,
    })
}

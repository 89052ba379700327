//! Test harness: one broker per test, in memory or on the test Redis with its own prefix.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use herald_broker::{Broker, BrokerEvent, HistoryPolicy, PublishRequest, RedisConfig};
use herald_common::channel::ChannelName;
use herald_common::protocol::{ClientInfo, Publication};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// Longest wait for an expected event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A random prefix, so tests never see each other's keys or channels.
pub fn random_prefix() -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(char::from)
        .collect();
    format!("herald-test-{suffix}:")
}

/// Redis settings short enough for tests.
pub fn test_config(url: &str, prefix: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.connect_timeout = Duration::from_secs(1);
    config.ping_interval = Duration::from_secs(1);
    config.reconnect_max_delay = Duration::from_millis(200);
    config
}

/// Which implementation a test runs against.
pub enum Kind {
    Memory,
    Redis { config: RedisConfig },
}

/// One test's broker.
pub struct Harness {
    pub broker: Broker,
    pub kind: Kind,
}

impl Harness {
    pub fn memory() -> Self {
        Self {
            broker: Broker::memory(),
            kind: Kind::Memory,
        }
    }

    pub async fn redis() -> Self {
        let config = test_config(&redis_url(), &random_prefix());
        let broker = Broker::redis(&config).expect("valid redis config");
        broker.ping().await.expect("the test redis answers");
        Self {
            broker,
            kind: Kind::Redis { config },
        }
    }

    /// Another handle on the same broker through its own connections (Redis), or a clone
    /// of the shared state (memory): what a second process would have.
    pub fn another_broker(&self) -> Broker {
        match &self.kind {
            Kind::Memory => self.broker.clone(),
            Kind::Redis { config } => Broker::redis(config).expect("valid redis config"),
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self.kind, Kind::Redis { .. })
    }

    /// Deletes every key of this test's prefix.
    pub async fn cleanup(&self) {
        let Kind::Redis { config } = &self.kind else {
            return;
        };
        delete_prefixed(&config.url, &config.prefix).await;
    }
}

/// All keys starting with `prefix`.
pub async fn keys_with_prefix(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

pub async fn delete_prefixed(url: &str, prefix: &str) {
    let keys = keys_with_prefix(url, prefix).await;
    if keys.is_empty() {
        return;
    }
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

pub fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

pub fn json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

/// A publication of `{"n":<n>}` with `policy`.
pub fn numbered(n: u64, policy: HistoryPolicy) -> PublishRequest {
    PublishRequest::new(json(&format!(r#"{{"n":{n}}}"#))).with_history(policy)
}

/// The `n` of a publication made by [`numbered`].
pub fn number_of(publication: &Publication) -> u64 {
    let value: serde_json::Value = serde_json::from_str(publication.data.get()).unwrap();
    value["n"].as_u64().unwrap()
}

pub fn keep(size: usize) -> HistoryPolicy {
    HistoryPolicy::new(size, Duration::from_secs(60))
}

pub fn client_info(user: &str, client: &str) -> ClientInfo {
    ClientInfo {
        user: user.to_owned(),
        client: client.to_owned(),
        conn_info: Some(json(&format!(r#"{{"name":"{user}"}}"#))),
        chan_info: None,
    }
}

pub async fn next_event(events: &mut mpsc::Receiver<BrokerEvent>) -> BrokerEvent {
    tokio::time::timeout(EVENT_TIMEOUT, events.recv())
        .await
        .expect("an event within the timeout")
        .expect("the subscriber is alive")
}

/// The next event, which must be a publication: (channel, publication, epoch).
pub async fn next_publication(
    events: &mut mpsc::Receiver<BrokerEvent>,
) -> (ChannelName, Arc<Publication>, String) {
    match next_event(events).await {
        BrokerEvent::Publication {
            channel,
            publication,
            epoch,
        } => (channel, publication, epoch),
        other => panic!("expected a publication, got {other:?}"),
    }
}

/// A redis-server of the test's own, on a spare port (for tests that kill it).
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    pub fn spare_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts redis-server on `port` without persistence and waits until it answers.
    pub async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = Self { port, child };
        let client = redis::Client::open(server.url()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return server;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

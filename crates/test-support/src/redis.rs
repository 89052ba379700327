//! Redis for tests: the shared test server under a prefix of the test's own (Redis pub/sub
//! ignores the database index, so prefixes are what keeps tests apart), and a redis-server
//! of the test's own on a spare port for tests that stop and restart Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_broker::{Broker, RedisConfig};
use uuid::Uuid;

use crate::block_on_thread;

/// The shared Redis tests use (`HERALD_TEST_REDIS_URL`).
pub fn test_redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh `HERALD_REDIS_PREFIX`, so tests never see each other's keys.
pub fn random_prefix() -> String {
    format!("herald-test-{}:", Uuid::new_v4().simple())
}

/// A broker on `url` under `prefix`, with short time-outs so tests against a stopped Redis
/// stay quick.
pub fn redis_broker(url: &str, prefix: &str) -> Broker {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.connect_timeout = Duration::from_millis(500);
    config.command_timeout = Duration::from_secs(1);
    config.reconnect_max_delay = Duration::from_millis(200);
    Broker::redis(&config).expect("redis config")
}

/// Deletes every key under `prefix` at `url` (on a thread of its own: callable from `Drop`).
pub fn delete_prefix(url: String, prefix: String) {
    block_on_thread(move || async move {
        let Ok(client) = redis::Client::open(url) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL")
                .arg(keys)
                .query_async::<i64>(&mut conn)
                .await;
        }
    });
}

/// Deletes every key under `prefix` when dropped (the shared test Redis stays clean).
#[derive(Debug)]
pub struct PrefixGuard {
    /// The Redis.
    pub url: String,
    /// The prefix to clean up.
    pub prefix: String,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        delete_prefix(self.url.clone(), self.prefix.clone());
    }
}

/// A redis-server of the test's own on a spare port, so the test can stop and restart it.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server; without persistence its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! Test harness of the notifier: brokers with a prefix of their own, events to append,
//! in-process notifiers, notifier processes (the real binary, to kill), a redis-server of
//! the test's own (to stop), and the real tasks-api on a fresh Postgres database for the
//! end-to-end tests.
//!
//! Servers are found through `HERALD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `HERALD_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`; each test gets a
//! database of its own, dropped at the end).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_auth::keys::{SigningKey, unix_now};
use herald_broker::{Broker, HistoryQuery, RedisConfig};
use herald_common::auth::KeySet;
use herald_common::channel::ChannelName;
use herald_common::claims::Claims;
use herald_common::events::{Actor, DomainEvent, TASK_EVENTS_STREAM, TaskEventKind, TraceContext};
use herald_common::ids::{EventId, TaskId, UserId};
use herald_common::payload::TaskNotification;
use herald_common::task::{Task, TaskStatus};
use herald_notifier::notify::EVENT_ID_TAG;
use herald_notifier::{Notifier, Settings};
use herald_service::Secret;
use herald_service::tokens::KEY_SET_KV_KEY;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Longest wait for something asynchronous to happen.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

pub fn test_redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub fn test_database_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh prefix, so tests never see each other's keys.
pub fn random_prefix() -> String {
    format!("herald-test-{}:", Uuid::new_v4().simple())
}

/// A broker on `url` under `prefix`, with short time-outs.
pub fn redis_broker(url: &str, prefix: &str) -> Broker {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.connect_timeout = Duration::from_millis(500);
    config.command_timeout = Duration::from_secs(1);
    config.reconnect_max_delay = Duration::from_millis(200);
    Broker::redis(&config).expect("redis config")
}

/// Notifier settings for tests: quick claims, short reads, generous board history.
pub fn notifier_settings(redis_url: Option<&str>, prefix: &str) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".to_owned(),
        redis_url: redis_url.map(|url| Secret::new(url.to_owned())),
        redis_prefix: prefix.to_owned(),
        ..Settings::default()
    };
    settings.notifier.block = Duration::from_millis(200);
    settings.notifier.claim_interval = Duration::from_millis(200);
    settings.notifier.claim_min_idle = Duration::from_secs(1);
    settings.notifier.retry_max_delay = Duration::from_millis(200);
    settings.channels.tasks.history_size = 2_000;
    settings.channels.notifications.history_size = 2_000;
    settings
}

/// A notifier running in this process; stopped when dropped.
pub struct RunningNotifier {
    pub notifier: Notifier,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl RunningNotifier {
    pub fn start(settings: &Settings, broker: Broker) -> Self {
        let notifier = Notifier::new(settings, broker);
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        notifier.spawn_background(&tracker, shutdown.clone());
        tracker.close();
        Self {
            notifier,
            shutdown,
            tracker,
        }
    }

    /// Stops the loop and waits for it (it finishes the event in hand).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.wait().await;
    }
}

impl Drop for RunningNotifier {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The real `herald-notifier` binary, run as a child process.
pub struct NotifierProcess {
    child: Child,
}

impl NotifierProcess {
    /// Starts the binary against `redis_url` / `prefix` with the test settings.
    pub fn spawn(redis_url: &str, prefix: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_herald-notifier"))
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_REDIS_URL", redis_url)
            .env("HERALD_REDIS_PREFIX", prefix)
            .env("HERALD_NOTIFIER__BLOCK", "0.2")
            .env("HERALD_NOTIFIER__CLAIM_INTERVAL", "0.2")
            .env("HERALD_NOTIFIER__CLAIM_MIN_IDLE", "1")
            .env("HERALD_NOTIFIER__RETRY_MAX_DELAY", "0.2")
            .env("HERALD_CHANNELS__TASKS__HISTORY_SIZE", "2000")
            .env("HERALD_CHANNELS__NOTIFICATIONS__HISTORY_SIZE", "2000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald-notifier");
        Self { child }
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `timeout` for the exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill is available");
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for the notifier") {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for NotifierProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A redis-server of the test's own on a spare port, so the test can stop and restart it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
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

/// Deletes every key under `prefix` when dropped (the shared test Redis stays clean).
pub struct PrefixGuard {
    pub url: String,
    pub prefix: String,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
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
        });
        let _ = cleanup.join();
    }
}

/// A domain event about a fresh task.
pub fn event(
    kind: TaskEventKind,
    title: &str,
    actor: &Actor,
    assignee: Option<UserId>,
) -> DomainEvent {
    let now = time::OffsetDateTime::now_utc();
    DomainEvent {
        id: EventId::new(),
        kind,
        at: now,
        actor: actor.clone(),
        task: Task {
            id: TaskId::new(),
            title: title.to_owned(),
            description: String::new(),
            status: TaskStatus::Todo,
            assignee,
            created_by: actor.id,
            created_at: now,
            updated_at: now,
            version: 1,
        },
        trace: TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    }
}

pub fn actor(name: &str) -> Actor {
    Actor {
        id: UserId::new(),
        name: name.to_owned(),
    }
}

/// Appends `event` to the events stream, as the outbox relay does.
pub async fn append(broker: &Broker, event: &DomainEvent) {
    broker
        .stream_append(TASK_EVENTS_STREAM, &serde_json::to_string(event).unwrap())
        .await
        .expect("append to the events stream");
}

/// One publication as a test sees it.
#[derive(Debug, Clone)]
pub struct Published {
    pub offset: u64,
    pub notification: TaskNotification,
    pub tags: BTreeMap<String, String>,
}

/// Every publication kept in `channel`'s history, oldest first (empty when unreachable).
pub async fn history(broker: &Broker, channel: &ChannelName) -> Vec<Published> {
    let Ok(result) = broker.history(channel, HistoryQuery::default()).await else {
        return Vec::new();
    };
    result
        .publications
        .into_iter()
        .map(|publication| Published {
            offset: publication.offset,
            notification: serde_json::from_str(publication.data.get())
                .expect("a task notification"),
            tags: publication.tags,
        })
        .collect()
}

/// Waits until `channel`'s history holds at least `count` publications; returns them.
pub async fn wait_for_history(
    broker: &Broker,
    channel: &ChannelName,
    count: usize,
) -> Vec<Published> {
    let found = eventually(EVENTUALLY, || async {
        let publications = history(broker, channel).await;
        (publications.len() >= count).then_some(publications)
    })
    .await;
    match found {
        Some(publications) => publications,
        None => panic!(
            "expected {count} publications in {channel}, found {}",
            history(broker, channel).await.len()
        ),
    }
}

/// Entries of the events stream the group has not acknowledged (Redis `XPENDING`).
pub async fn pending(url: &str, prefix: &str, group: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{prefix}{TASK_EVENTS_STREAM}"))
        .arg(group)
        .query_async(&mut conn)
        .await
        .unwrap();
    match reply {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(count)) => u64::try_from(*count).unwrap(),
            other => panic!("unexpected XPENDING reply {other:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event ids of `publications`, checked to be all different.
pub fn distinct_event_ids(publications: &[Published]) -> std::collections::HashSet<String> {
    let ids: std::collections::HashSet<String> = publications
        .iter()
        .map(|publication| publication.tags[EVENT_ID_TAG].clone())
        .collect();
    assert_eq!(
        ids.len(),
        publications.len(),
        "an event was published twice"
    );
    ids
}

/// A new, empty Postgres database; dropped when the guard drops.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

fn with_database(base: &str, database: &str) -> String {
    let (main, query) = base
        .split_once('?')
        .map_or((base, None), |(main, query)| (main, Some(query)));
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let server = main[scheme_end..]
        .find('/')
        .map_or(main, |slash| &main[..scheme_end + slash]);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("herald_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&with_database(&test_database_url(), "postgres"))
            .await
            .expect("connect to the test Postgres server");
        // The name is hex digits generated above, so formatting it into SQL is safe.
        admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{name}""#
            ))))
            .await
            .expect("create the test database");
        Self {
            url: with_database(&test_database_url(), &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    PgConnection::connect(&with_database(&test_database_url(), "postgres")).await
                {
                    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = admin.execute(sqlx::raw_sql(AssertSqlSafe(drop))).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The real tasks-api on a fresh database, with tokens minted by auth's key type.
pub struct TasksService {
    pub address: String,
    pub client: reqwest::Client,
    key: SigningKey,
    shutdown: CancellationToken,
    _database: TestDatabase,
}

impl Drop for TasksService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A user and a token for it.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: UserId,
    pub name: String,
    pub token: String,
}

impl TasksService {
    /// Starts tasks-api on `redis_url` / `prefix` and publishes the key set there first.
    pub async fn start(redis_url: &str, prefix: &str) -> Self {
        herald_service::telemetry::init_for_tests();
        let database = TestDatabase::create().await;
        let mut settings = herald_tasks_api::Settings {
            listen: "127.0.0.1:0".to_owned(),
            database_url: Secret::new(database.url.clone()),
            redis_url: Some(Secret::new(redis_url.to_owned())),
            redis_prefix: prefix.to_owned(),
            auto_migrate: true,
            ..herald_tasks_api::Settings::default()
        };
        settings.outbox.fallback_interval = Duration::from_millis(500);
        settings.outbox.retry_max_delay = Duration::from_millis(200);
        let key = SigningKey::generate();
        let set = KeySet {
            keys: vec![key.jwk().clone()],
        };
        redis_broker(redis_url, prefix)
            .kv_set(KEY_SET_KV_KEY, &serde_json::to_string(&set).unwrap(), None)
            .await
            .expect("publish the key set");
        let app = herald_tasks_api::Application::build_with_broker(
            settings,
            redis_broker(redis_url, prefix),
        )
        .await
        .expect("start tasks-api");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            client: reqwest::Client::new(),
            key,
            shutdown,
            _database: database,
        }
    }

    pub fn user(&self, name: &str) -> TestUser {
        let id = UserId::new();
        let claims = Claims::new(&id, name, "herald", "herald", unix_now(), 900);
        TestUser {
            id,
            name: name.to_owned(),
            token: self.key.sign(&claims).unwrap(),
        }
    }

    /// `POST /tasks`; returns the status and body.
    pub async fn post_task(
        &self,
        user: &TestUser,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/tasks", self.address))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// `PATCH /tasks/{id}`; returns the status.
    pub async fn patch_task(&self, user: &TestUser, id: &str, body: &serde_json::Value) -> u16 {
        self.client
            .patch(format!("{}/tasks/{id}", self.address))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

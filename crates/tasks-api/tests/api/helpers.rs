//! `spawn_app()`: the real tasks service on port 0, against a fresh Postgres database (or
//! SQLite file) and a Redis namespace of its own, plus typed helpers for the calls tests
//! make.
//!
//! Servers are found through `HERALD_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432`; each test gets a new database `herald_test_<uuid>`,
//! dropped when the test ends) and `HERALD_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`, with a random prefix per test). Tokens are minted with auth's
//! signing key type and its key set is published to the broker the way auth does it, so
//! tasks-api verifies them exactly as in production.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_auth::keys::{SigningKey, unix_now};
use herald_broker::{Broker, RedisConfig};
use herald_common::auth::KeySet;
use herald_common::claims::Claims;
use herald_common::events::{DomainEvent, TASK_EVENTS_STREAM};
use herald_common::ids::UserId;
use herald_service::Secret;
use herald_service::tokens::KEY_SET_KV_KEY;
use herald_tasks_api::{Application, Settings, TasksApi};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for something a background loop does (relay, key refresh).
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// The Postgres server tests use (any database name in it is replaced).
pub fn test_database_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The Redis tests use.
pub fn test_redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `base` with its database name replaced by `database`.
pub fn with_database(base: &str, database: &str) -> String {
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

/// A new, empty Postgres database; dropped (with its connections) when the guard drops.
pub struct TestDatabase {
    pub url: String,
    name: String,
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
        // Drop cannot await: a short-lived runtime on its own thread does the clean-up.
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

/// A temporary SQLite database file (and its WAL companions), removed on drop.
pub struct SqliteFile {
    pub path: PathBuf,
}

impl SqliteFile {
    pub fn new() -> Self {
        Self {
            path: std::env::temp_dir()
                .join(format!("herald-tasks-test-{}.db", Uuid::new_v4().simple())),
        }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A redis-server of the test's own on a spare port, so the test can stop and restart it.
pub struct RedisServer {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
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

/// Which store a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// How to start a test app.
pub struct Options {
    pub backend: Backend,
    /// Redis URL; the shared test Redis by default.
    pub redis_url: String,
    /// Last word on the settings.
    pub customize: Box<dyn FnOnce(&mut Settings)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            redis_url: test_redis_url(),
            customize: Box::new(|_| {}),
        }
    }
}

/// A user with a valid access token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: UserId,
    pub name: String,
    pub token: String,
}

/// A running tasks service and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub api: TasksApi,
    /// The test's own handle on the service's Redis namespace.
    pub broker: Broker,
    pub settings: Settings,
    /// Signs the test's tokens; its public key is the published key set.
    pub key: SigningKey,
    shutdown: CancellationToken,
    _database: Option<TestDatabase>,
    _sqlite: Option<SqliteFile>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        delete_prefix(
            self.settings
                .redis_url
                .as_ref()
                .map(|url| url.expose().clone()),
            self.settings.redis_prefix.clone(),
        );
    }
}

/// A test broker handle: short time-outs so tests against a stopped Redis stay quick.
pub fn broker_for(url: &str, prefix: &str) -> Broker {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.connect_timeout = Duration::from_millis(500);
    config.command_timeout = Duration::from_secs(1);
    config.reconnect_max_delay = Duration::from_millis(200);
    Broker::redis(&config).expect("redis config")
}

/// The tasks service on Postgres and the shared Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The tasks service as `options` say.
pub async fn spawn_app_with(options: Options) -> TestApp {
    herald_service::telemetry::init_for_tests();
    let (database, sqlite, database_url) = match options.backend {
        Backend::Postgres => {
            let database = TestDatabase::create().await;
            let url = database.url.clone();
            (Some(database), None, url)
        }
        Backend::Sqlite => {
            let file = SqliteFile::new();
            let url = file.url();
            (None, Some(file), url)
        }
    };
    let mut settings = Settings {
        listen: "127.0.0.1:0".to_owned(),
        database_url: Secret::new(database_url),
        redis_url: Some(Secret::new(options.redis_url.clone())),
        redis_prefix: format!("herald-test-{}:", Uuid::new_v4().simple()),
        auto_migrate: true,
        ..Settings::default()
    };
    settings.outbox.poll_interval = Duration::from_millis(50);
    settings.outbox.fallback_interval = Duration::from_millis(500);
    settings.outbox.retry_max_delay = Duration::from_millis(200);
    settings.key_refresh_interval = Duration::from_millis(200);
    (options.customize)(&mut settings);

    // Publish the key set before the service starts, as auth would have.
    let broker = broker_for(&options.redis_url, &settings.redis_prefix);
    let key = SigningKey::generate();
    let set = KeySet {
        keys: vec![key.jwk().clone()],
    };
    broker
        .kv_set(KEY_SET_KV_KEY, &serde_json::to_string(&set).unwrap(), None)
        .await
        .expect("publish the key set");

    let service_broker = broker_for(&options.redis_url, &settings.redis_prefix);
    let app = Application::build_with_broker(settings.clone(), service_broker)
        .await
        .expect("build the application");
    let port = app.port();
    let api = app.api().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        api,
        broker,
        settings,
        key,
        shutdown,
        _database: database,
        _sqlite: sqlite,
    }
}

/// The JSON body and status of a response.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
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

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A user with a token valid for 15 minutes.
    pub fn user(&self, name: &str) -> TestUser {
        let id = UserId::new();
        TestUser {
            id,
            name: name.to_owned(),
            token: self.token(&id, name, unix_now(), 900),
        }
    }

    /// A token for `user` issued at `issued_at` (Unix seconds), valid for `ttl` seconds.
    pub fn token(&self, user: &UserId, name: &str, issued_at: u64, ttl: u64) -> String {
        let claims = Claims::new(
            user,
            name,
            &self.settings.jwt.issuer,
            &self.settings.jwt.audience,
            issued_at,
            ttl,
        );
        self.key.sign(&claims).unwrap()
    }

    pub async fn post_task(&self, user: &TestUser, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/tasks"))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a task; panics unless 201. Returns the task JSON.
    pub async fn create_task(&self, user: &TestUser, body: &Value) -> Value {
        let (status, task) = status_and_json(self.post_task(user, body).await).await;
        assert_eq!(status, 201, "create task: {task}");
        task
    }

    pub async fn get_task(&self, user: &TestUser, id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/tasks/{id}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_task(
        &self,
        user: &TestUser,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .patch(self.url(&format!("/tasks/{id}")))
            .bearer_auth(&user.token)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        request.send().await.unwrap()
    }

    pub async fn delete_task(&self, user: &TestUser, id: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/tasks/{id}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /tasks?<query>`.
    pub async fn list_tasks(&self, user: &TestUser, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/tasks?{query}")))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
    }

    /// Every event on the events stream so far, oldest first (read with `XRANGE`, which
    /// consumes nothing).
    pub async fn stream_events(&self) -> Vec<DomainEvent> {
        stream_events(
            self.settings.redis_url.as_ref().unwrap().expose(),
            &self.settings.redis_prefix,
        )
        .await
    }

    /// Waits until the events stream holds at least `count` events; returns them all.
    pub async fn wait_for_events(&self, count: usize) -> Vec<DomainEvent> {
        let found = eventually(EVENTUALLY, || async {
            let events = self.stream_events().await;
            (events.len() >= count).then_some(events)
        })
        .await;
        match found {
            Some(events) => events,
            None => panic!(
                "expected {count} events on the stream, saw {}",
                self.stream_events().await.len()
            ),
        }
    }
}

/// The domain events of the stream in `prefix` at `url`.
pub async fn stream_events(url: &str, prefix: &str) -> Vec<DomainEvent> {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Vec::new();
    };
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{prefix}{TASK_EVENTS_STREAM}"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    reply
        .ids
        .iter()
        .map(|entry| {
            let payload: String = entry.get("p").expect("payload field");
            serde_json::from_str(&payload).expect("a domain event")
        })
        .collect()
}

/// Deletes every key of `prefix` (on a thread of its own: called from `Drop`).
fn delete_prefix(url: Option<String>, prefix: String) {
    let Some(url) = url else { return };
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

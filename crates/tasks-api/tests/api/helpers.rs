//! `spawn_app()`: the real tasks service on port 0, against a fresh Postgres database (or
//! SQLite file) and a Redis namespace of its own, plus typed helpers for the calls tests
//! make.
//!
//! The databases, Redis prefixes, private redis-servers and token minting come from
//! `herald-test-support` (servers found through `HERALD_TEST_DATABASE_URL` and
//! `HERALD_TEST_REDIS_URL`). Tokens are EdDSA JWTs like auth's, and their key set is
//! published to the broker the way auth does it, so tasks-api verifies them exactly as in
//! production.

#![allow(dead_code)]

use std::time::Duration;

use herald_broker::Broker;
use herald_common::claims::Claims;
use herald_common::events::{DomainEvent, TASK_EVENTS_STREAM};
use herald_common::ids::UserId;
use herald_service::{Context, Secret};
use herald_tasks_api::{Application, Settings, TasksApi};
pub use herald_test_support::{
    Backend, RedisServer, TestUser, eventually, redis_broker as broker_for, status_and_json,
    test_redis_url,
};
use herald_test_support::{TestDb, TokenMinter, delete_prefix, http_client, random_prefix};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Longest wait for something a background loop does (relay, key refresh).
pub const EVENTUALLY: Duration = Duration::from_secs(15);

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

/// A running tasks service and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub api: TasksApi,
    /// The test's own handle on the service's Redis namespace.
    pub broker: Broker,
    pub settings: Settings,
    /// Signs the test's tokens; its public key is the published key set.
    pub key: TokenMinter,
    shutdown: CancellationToken,
    _database: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(url) = &self.settings.redis_url {
            delete_prefix(url.expose().clone(), self.settings.redis_prefix.clone());
        }
    }
}

/// The tasks service on Postgres and the shared Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The tasks service as `options` say.
pub async fn spawn_app_with(options: Options) -> TestApp {
    herald_service::telemetry::init_for_tests();
    let database = TestDb::create(options.backend).await;
    let mut settings = Settings {
        listen: "127.0.0.1:0".to_owned(),
        database_url: Secret::new(database.url()),
        redis_url: Some(Secret::new(options.redis_url.clone())),
        redis_prefix: random_prefix(),
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
    let key = TokenMinter::new();
    key.publish(&broker).await;

    let service_broker = broker_for(&options.redis_url, &settings.redis_prefix);
    let app = Application::build_with(settings.clone(), Context::new(service_broker))
        .await
        .expect("build the application");
    let port = app.port();
    let api = app.service().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: http_client(),
        api,
        broker,
        settings,
        key,
        shutdown,
        _database: database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A user with a token valid for 15 minutes.
    pub fn user(&self, name: &str) -> TestUser {
        let jwt = &self.settings.jwt;
        self.key.user(name, &jwt.issuer, &jwt.audience)
    }

    /// A token for `user` issued at `issued_at` (Unix seconds), valid for `ttl` seconds.
    pub fn token(&self, user: &UserId, name: &str, issued_at: u64, ttl: u64) -> String {
        let jwt = &self.settings.jwt;
        self.key.sign(&Claims::new(
            user,
            name,
            &jwt.issuer,
            &jwt.audience,
            issued_at,
            ttl,
        ))
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

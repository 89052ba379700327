//! Test harness of the notifier: brokers with a prefix of their own, events to append,
//! in-process notifiers, notifier processes (the real binary, to kill), a redis-server of
//! the test's own (to stop), and the real tasks-api on a fresh Postgres database for the
//! end-to-end tests.
//!
//! The Redis prefixes, the private redis-server, databases and token minting come from
//! `herald-test-support` (servers found through `HERALD_TEST_REDIS_URL` and
//! `HERALD_TEST_DATABASE_URL`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_broker::{Broker, HistoryQuery};
use herald_common::channel::ChannelName;
use herald_common::events::{Actor, DomainEvent, TASK_EVENTS_STREAM, TaskEventKind, TraceContext};
use herald_common::ids::{EventId, TaskId, UserId};
use herald_common::payload::TaskNotification;
use herald_common::task::{Task, TaskStatus};
use herald_notifier::notify::EVENT_ID_TAG;
use herald_notifier::{Notifier, Settings};
use herald_service::Secret;
pub use herald_test_support::{
    PrefixGuard, RedisServer, TestUser, eventually, random_prefix, redis_broker, test_redis_url,
};
use herald_test_support::{TestDatabase, TokenMinter};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for something asynchronous to happen.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

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
        Self::spawn_with(redis_url, prefix, &[])
    }

    /// Like [`Self::spawn`], with `changes` to the environment: `Some` sets a variable,
    /// `None` removes one of the test settings (back to the default).
    pub fn spawn_with(redis_url: &str, prefix: &str, changes: &[(&str, Option<&str>)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald-notifier"));
        command
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
            .stderr(Stdio::null());
        for (name, value) in changes {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command.spawn().expect("start herald-notifier");
        Self { child }
    }

    /// SIGSTOP: the process stops running (its sockets stay open) until killed.
    pub fn pause(&mut self) {
        self.signal("STOP");
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `timeout` for the exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal("TERM");
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

impl NotifierProcess {
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill is available");
        assert!(status.success());
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for NotifierProcess {
    fn drop(&mut self) {
        self.kill();
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

/// The real tasks-api on a fresh database, with tokens of a test key it trusts.
pub struct TasksService {
    pub address: String,
    pub client: reqwest::Client,
    key: TokenMinter,
    shutdown: CancellationToken,
    _database: TestDatabase,
}

impl Drop for TasksService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
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
        let key = TokenMinter::new();
        key.publish(&redis_broker(redis_url, prefix)).await;
        let app = herald_tasks_api::Application::build_with(
            settings,
            herald_service::Context::new(redis_broker(redis_url, prefix)),
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

    /// A user with a token valid for 15 minutes (default issuer and audience).
    pub fn user(&self, name: &str) -> TestUser {
        self.key.user(name, "herald", "herald")
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

//! `spawn_app()`: the real auth service on port 0, against a fresh Postgres database and a
//! Redis namespace of its own, plus typed helpers for the calls tests make.
//!
//! The databases, Redis prefixes and polling come from `herald-test-support` (servers found
//! through `HERALD_TEST_DATABASE_URL` and `HERALD_TEST_REDIS_URL`); what is auth's own stays
//! here: its settings, the signing key file and the account and token calls.

use std::{path::PathBuf, time::Duration};

use herald_auth::{Application, AuthState, Settings, keys::SigningKey};
use herald_broker::{Broker, RedisConfig};
use herald_common::{
    auth::{KeySet, Verifier, VerifierConfig},
    ids::UserId,
};
use herald_service::{
    Context, Secret,
    tokens::{BrokerKeySource, KEY_SET_KV_KEY, TokenVerifier},
};
use herald_test_support::{Backend, TestDb, http_client, random_prefix};
pub use herald_test_support::{TestDatabase, eventually, status_and_json, test_redis_url};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A signing key written to a temporary PEM file (rewrite it to rotate).
pub struct KeyFile {
    /// The file.
    pub path: PathBuf,
}

impl KeyFile {
    /// A file holding a new random key.
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("herald-auth-test-{}.pem", Uuid::new_v4().simple()));
        let file = Self { path };
        file.rotate();
        file
    }

    /// Replaces the key with a new random one; returns its kid.
    pub fn rotate(&self) -> String {
        let pem = SigningKey::generate_pem();
        let kid = SigningKey::from_pem(&pem)
            .expect("generated PEM parses")
            .kid()
            .to_owned();
        // Write then rename, as a mounted secret update does, so readers never see half a file.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, pem).expect("write key file");
        std::fs::rename(&tmp, &self.path).expect("replace key file");
        kid
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A running auth service and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client (no redirects, no cookies).
    pub client: reqwest::Client,
    /// The service's state (store, keys).
    pub state: AuthState,
    /// A broker handle on the same Redis namespace (or the same in-memory broker).
    pub broker: Broker,
    /// The settings the service runs with.
    pub settings: Settings,
    /// The signing key file.
    pub key_file: KeyFile,
    shutdown: CancellationToken,
    _database: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for tests: Postgres (fresh), Redis (own prefix), a key file, generous limits.
fn test_settings(database_url: String, key_file: &KeyFile) -> Settings {
    let mut settings = Settings {
        listen: "127.0.0.1:0".to_owned(),
        database_url: Secret::new(database_url),
        redis_url: Some(Secret::new(test_redis_url())),
        redis_prefix: random_prefix(),
        jwt_private_key_file: Some(key_file.path.clone()),
        auto_migrate: true,
        ..Settings::default()
    };
    settings.rate_limit.token_per_ip_per_minute = 10_000;
    settings.rate_limit.token_per_username_per_minute = 10_000;
    settings.jwt.key_refresh_interval = Duration::from_millis(200);
    settings
}

/// The broker `settings` describe, as a second handle (the test's own view of Redis).
pub fn broker_for(settings: &Settings) -> Broker {
    match settings.redis_url.as_ref() {
        Some(url) => Broker::redis(
            &RedisConfig::new(url.expose().clone()).with_prefix(settings.redis_prefix.clone()),
        )
        .expect("redis broker config"),
        None => Broker::memory(),
    }
}

/// The auth service on Postgres and Redis with test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The auth service with test settings adjusted by `customize`.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    herald_service::telemetry::init_for_tests();
    let database = TestDb::create(Backend::Postgres).await;
    let key_file = KeyFile::new();
    let mut settings = test_settings(database.url(), &key_file);
    customize(&mut settings);
    let broker = broker_for(&settings);
    start(settings, broker, key_file, database).await
}

/// The embedded configuration: SQLite file and an in-memory broker shared with the test.
pub async fn spawn_embedded_app() -> TestApp {
    herald_service::telemetry::init_for_tests();
    let database = TestDb::create(Backend::Sqlite).await;
    let key_file = KeyFile::new();
    let mut settings = test_settings(database.url(), &key_file);
    settings.redis_url = None;
    let broker = Broker::memory();
    start(settings, broker, key_file, database).await
}

async fn start(settings: Settings, broker: Broker, key_file: KeyFile, database: TestDb) -> TestApp {
    let app = Application::build_with(settings.clone(), Context::new(broker.clone()))
        .await
        .expect("build the application");
    let port = app.port();
    let state = app.service().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: http_client(),
        state,
        broker,
        settings,
        key_file,
        shutdown,
        _database: database,
    }
}

/// A registered user with a password.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// User id.
    pub id: UserId,
    /// Username as registered.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Tokens from `/auth/token` or `/auth/refresh`.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

impl TestApp {
    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /auth/register` with JSON.
    pub async fn post_register(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/auth/register"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Registers a user with a random name (prefix `u`) and password; panics unless 201.
    pub async fn register(&self) -> TestUser {
        let username = format!("u{}", &Uuid::new_v4().simple().to_string()[..12]);
        self.register_named(&username).await
    }

    /// Registers `username` with a random password; panics unless 201.
    pub async fn register_named(&self, username: &str) -> TestUser {
        let password = format!("pw-{}", Uuid::new_v4().simple());
        let response = self
            .post_register(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(response.status(), 201, "register {username}");
        let body: Value = response.json().await.expect("json");
        TestUser {
            id: UserId::parse(body["id"].as_str().expect("id")).expect("user id"),
            username: username.to_owned(),
            password,
        }
    }

    /// `POST /auth/token` as an OAuth2 password form.
    pub async fn post_token_form(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .expect("request")
    }

    /// Signs `user` in; panics unless 200.
    pub async fn sign_in(&self, user: &TestUser) -> Tokens {
        let response = self.post_token_form(&user.username, &user.password).await;
        assert_eq!(response.status(), 200, "sign in {}", user.username);
        tokens_of(response).await
    }

    /// `POST /auth/refresh` with JSON.
    pub async fn post_refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/refresh"))
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with a bearer token.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// The key set as the test's broker handle sees it.
    pub async fn published_key_set(&self) -> Option<KeySet> {
        let json = self.broker.kv_get(KEY_SET_KV_KEY).await.expect("kv_get")?;
        Some(serde_json::from_str(&json).expect("key set JSON"))
    }

    /// A verifier as the gateway and tasks-api build one: fed from the broker.
    pub async fn broker_verifier(&self) -> TokenVerifier {
        let verifier = TokenVerifier::new(
            Verifier::new(VerifierConfig::default()),
            BrokerKeySource::new(self.broker.clone()),
            Duration::from_millis(1),
        );
        verifier.refresh().await.expect("key set readable");
        verifier
    }
}

/// The tokens of a 200 token response.
pub async fn tokens_of(response: reqwest::Response) -> Tokens {
    let body: Value = response.json().await.expect("json");
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

/// Decodes the JSON of one base64url part of a JWT.
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

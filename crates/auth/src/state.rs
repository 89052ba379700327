//! [`AuthState`]: everything the handlers and background loops share, built once.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use herald_broker::Broker;
use herald_common::{claims::Claims, ids::UserId};
use herald_service::{
    Environment, Readiness, TrustedProxies,
    error::source_text,
    tokens::{BrokerKeySource, DEFAULT_REFETCH_INTERVAL, TokenVerifier},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    domain::User,
    error::AuthError,
    keys::{KeyRing, KeyTiming, SigningKey, unix_now},
    password::PasswordHasher,
    rate_limit::TokenRateLimits,
    settings::{Settings, TokenSettings},
    store::{self, NewRefreshToken, Store},
    tokens::RefreshToken,
};

/// How often expired refresh tokens are deleted and idle rate-limit entries forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Longest wait for the first key-set publication at start-up.
const FIRST_PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// The state of the auth service. Cheap to clone: every part is shared.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub(crate) store: Store,
    pub(crate) hasher: PasswordHasher,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) verifier: TokenVerifier,
    pub(crate) broker: Broker,
    pub(crate) limits: Arc<TokenRateLimits>,
    pub(crate) tokens: TokenSettings,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) body_limit: usize,
}

/// An access token and refresh token just issued.
#[derive(Debug)]
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: RefreshToken,
}

impl AuthState {
    /// Opens the store (migrating SQLite, or Postgres with `auto_migrate`), prepares password
    /// hashing, loads or generates the signing key and publishes the key set through `broker`
    /// (a failure there is logged and retried by the background loop).
    pub async fn build(settings: &Settings, broker: Broker) -> anyhow::Result<Self> {
        let store = Store::connect(settings.database_url.expose(), Duration::from_secs(5))
            .await
            .context("opening the database")?;
        if store.migrates_at_start(settings.auto_migrate) {
            store.migrate().await.context("applying migrations")?;
        }
        let hasher = PasswordHasher::new(settings.password_hash)
            .await
            .context("preparing password hashing")?;
        let keys = Arc::new(load_keys(settings)?);
        let verifier = TokenVerifier::new(
            settings
                .jwt
                .common
                .verifier()
                .context("token settings")?
                .with_keys(&keys.local_set(unix_now(), None)),
            BrokerKeySource::new(broker.clone()),
            DEFAULT_REFETCH_INTERVAL,
        );
        match tokio::time::timeout(FIRST_PUBLISH_TIMEOUT, keys.publish(&broker, &verifier)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(
                error = format!("{err:#}"),
                "key set not published yet; will retry"
            ),
            Err(_) => tracing::warn!("key set publication timed out; will retry"),
        }
        Ok(Self {
            store,
            hasher,
            keys,
            verifier,
            broker,
            limits: Arc::new(TokenRateLimits::new(settings.rate_limit)),
            tokens: settings.jwt.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            body_limit: settings.body_limit,
        })
    }

    /// The store (tests and the `migrate` subcommand use it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The verifier of auth's own bearer checks, kept in step with the published key set.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// The signing keys.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// Readiness of auth: the database answers. (A Redis outage does not make auth unready:
    /// sign-in keeps working with the published keys, and publication retries.)
    pub fn readiness(&self) -> Readiness {
        let store = self.store.clone();
        Readiness::new().with_check("database", move || {
            let store = store.clone();
            async move {
                store
                    .ping()
                    .await
                    .map_err(|e| format!("{e}: {}", source_text(&e)))
            }
        })
    }

    /// Starts the background loops on `tracker`: key-file checks and key-set publication
    /// every `key_refresh_interval`, and a periodic sweep of expired refresh tokens and idle
    /// rate-limit entries. Each stops when `shutdown` is cancelled.
    pub fn spawn_background(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        let state = self.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let interval = state.tokens.key_refresh_interval;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(err) = state.keys.publish(&state.broker, &state.verifier).await {
                    tracing::warn!(error = format!("{err:#}"), "key set publication failed");
                }
            }
        });
        let state = self.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(SWEEP_INTERVAL) => {}
                }
                state.limits.sweep();
                match state
                    .store
                    .delete_expired_refresh_tokens(store::now())
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "expired refresh tokens deleted"),
                    Err(err) => tracing::warn!(error = %err, "refresh token sweep failed"),
                }
            }
        });
    }

    /// Signs an access token for `user` and stores a new refresh token in `family`.
    pub(crate) async fn issue(
        &self,
        user: &User,
        family: uuid::Uuid,
    ) -> Result<IssuedTokens, AuthError> {
        let refresh_token = RefreshToken::generate();
        let now = store::now();
        self.store
            .insert_refresh_token(&NewRefreshToken {
                id: uuid::Uuid::now_v7(),
                user_id: user.id,
                family_id: family,
                token_hash: refresh_token.hash(),
                created_at: now,
                expires_at: now + self.tokens.refresh_ttl,
            })
            .await?;
        let (access_token, expires_in) = self.sign_access_token(user.id, user.username.as_str())?;
        Ok(IssuedTokens {
            access_token,
            expires_in,
            refresh_token,
        })
    }

    /// An access token for `user`, and its lifetime in seconds.
    pub(crate) fn sign_access_token(
        &self,
        user: UserId,
        name: &str,
    ) -> Result<(String, u64), AuthError> {
        let ttl = self.tokens.access_ttl.as_secs();
        let claims = Claims::new(
            &user,
            name,
            &self.tokens.common.issuer,
            &self.tokens.common.audience,
            unix_now(),
            ttl,
        );
        Ok((self.keys.current().sign(&claims)?, ttl))
    }
}

fn load_keys(settings: &Settings) -> anyhow::Result<KeyRing> {
    let timing = KeyTiming {
        access_ttl: settings.jwt.access_ttl,
        leeway: Duration::from_secs(settings.jwt.common.leeway),
        refresh_interval: settings.jwt.key_refresh_interval,
    };
    match (&settings.jwt_private_key_file, settings.environment) {
        (Some(file), _) => {
            let ring = KeyRing::from_file(file, timing)?;
            tracing::info!(kid = ring.current().kid(), file = %file.display(), "signing key loaded");
            Ok(ring)
        }
        (None, Environment::Production) => {
            anyhow::bail!(
                "HERALD_JWT_PRIVATE_KEY_FILE is required when HERALD_ENVIRONMENT=production"
            )
        }
        (None, Environment::Development) => {
            let key = SigningKey::generate();
            tracing::warn!(
                kid = key.kid(),
                "NO SIGNING KEY CONFIGURED: generated a throwaway Ed25519 key; every restart makes a \
                 new one. Set HERALD_JWT_PRIVATE_KEY_FILE (PKCS#8 PEM, e.g. from \
                 `openssl genpkey -algorithm ed25519`) for anything but development."
            );
            Ok(KeyRing::with_key(key, timing))
        }
    }
}

//! [`TasksApi`]: everything the handlers and background loops share, built once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use herald_broker::Broker;
use herald_service::error::source_text;
use herald_service::tokens::{BrokerKeySource, DEFAULT_REFETCH_INTERVAL, TokenVerifier};
use herald_service::{Context, Readiness};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::settings::Settings;
use crate::store::Store;
use crate::{outbox, sweep};

/// Longest wait for the first read of the signing keys at start-up. Without keys every
/// request is refused until the key set arrives, so it is worth a short wait; a broker that
/// is down must not stop the service from starting.
const FIRST_KEY_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for a database connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The state of the tasks service. Cheap to clone: every part is shared.
#[derive(Debug, Clone)]
pub struct TasksApi {
    pub(crate) store: Store,
    pub(crate) broker: Broker,
    pub(crate) verifier: TokenVerifier,
    /// Whether the verifier is this service's own, read again in its background (a
    /// verifier from the [`Context`] is kept up to date by whoever made it).
    owns_verifier: bool,
    /// Wakes the outbox relay of this process right after a write commits.
    pub(crate) relay_wake: Arc<Notify>,
    pub(crate) settings: Arc<Settings>,
}

impl TasksApi {
    /// Opens the store (migrating SQLite, or Postgres with `auto_migrate`) and takes the
    /// context's broker and verifier. Without a verifier in the context it makes one and
    /// reads the signing keys through the broker (a failure there is logged; the keys are
    /// read again in the background and on the first unknown `kid`).
    pub async fn build(settings: &Settings, context: &Context) -> anyhow::Result<Self> {
        let store = Store::connect(settings.database_url.expose(), ACQUIRE_TIMEOUT)
            .await
            .context("opening the database")?;
        if store.migrates_at_start(settings.auto_migrate) {
            store.migrate().await.context("applying migrations")?;
        }
        Self::with_store(settings, store, context).await
    }

    /// Like [`Self::build`] over an opened (and migrated) store.
    pub async fn with_store(
        settings: &Settings,
        store: Store,
        context: &Context,
    ) -> anyhow::Result<Self> {
        let broker = context.broker.clone();
        let (verifier, owns_verifier) = match &context.verifier {
            Some(shared) => (shared.clone(), false),
            None => (own_verifier(settings, &broker).await?, true),
        };
        Ok(Self {
            store,
            broker,
            verifier,
            owns_verifier,
            relay_wake: Arc::new(Notify::new()),
            settings: Arc::new(settings.clone()),
        })
    }

    /// The store (tests and the `migrate` subcommand use it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The broker the relay appends to.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The token verifier of the bearer checks.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Readiness of tasks-api: the database answers. Redis is deliberately not checked
    /// (design section 5): tasks are still written, with their events kept in the outbox,
    /// and tokens are still verified with the last key set while Redis is down.
    pub fn readiness(&self) -> Readiness {
        let store = self.store.clone();
        Readiness::new().with_check("database", move || {
            let store = store.clone();
            async move {
                store
                    .ping()
                    .await
                    .map_err(|err| format!("{err}: {}", source_text(&err)))
            }
        })
    }

    /// Starts the background loops on `tracker`, each stopping when `shutdown` is
    /// cancelled: the outbox relay, the outbox backlog gauges, the sweep of sent outbox rows
    /// and expired idempotency keys, and the periodic read of the signing keys (when the
    /// verifier is its own).
    pub fn spawn_background(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        tracker.spawn(outbox::run_relay(
            self.store.clone(),
            self.broker.clone(),
            self.relay_wake.clone(),
            self.settings.outbox.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(outbox::run_backlog_gauges(
            self.store.clone(),
            shutdown.clone(),
        ));
        let policy = sweep::SweepPolicy {
            interval: self.settings.outbox.sweep_interval,
            sent_retention: self.settings.outbox.sent_retention,
            idempotency_ttl: self.settings.idempotency_ttl,
        };
        tracker.spawn(sweep::run_sweep(
            self.store.clone(),
            policy,
            shutdown.clone(),
        ));
        if self.owns_verifier {
            tracker.spawn(
                self.verifier
                    .clone()
                    .run(self.settings.key_refresh_interval, shutdown),
            );
        }
    }
}

/// A verifier of the key set auth publishes through `broker`, read once now (a broker that
/// is down must not stop the service from starting).
async fn own_verifier(settings: &Settings, broker: &Broker) -> anyhow::Result<TokenVerifier> {
    let verifier = TokenVerifier::new(
        settings.jwt.verifier().context("token settings")?,
        BrokerKeySource::new(broker.clone()),
        DEFAULT_REFETCH_INTERVAL,
    );
    match tokio::time::timeout(FIRST_KEY_READ_TIMEOUT, verifier.refresh()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(
            error = format!("{err:#}"),
            "signing keys not read yet; will retry"
        ),
        Err(_) => tracing::warn!("reading the signing keys timed out; will retry"),
    }
    Ok(verifier)
}

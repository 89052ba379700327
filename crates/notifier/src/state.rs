//! [`Notifier`]: what the consumer loop needs, built once.

use std::sync::Arc;

use herald_broker::Broker;
use herald_service::Readiness;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::consumer;
use crate::settings::Settings;

/// The notifier. Cheap to clone: every part is shared.
#[derive(Debug, Clone)]
pub struct Notifier {
    pub(crate) broker: Broker,
    pub(crate) settings: Arc<Settings>,
    /// This process's consumer name in the group.
    pub(crate) consumer: Arc<str>,
}

impl Notifier {
    /// A notifier reading from and publishing through `broker`. Nothing runs until
    /// [`Self::spawn_background`].
    pub fn new(settings: &Settings, broker: Broker) -> Self {
        let consumer = settings
            .notifier
            .consumer
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(consumer::unique_consumer_name);
        Self {
            broker,
            settings: Arc::new(settings.clone()),
            consumer: consumer.into(),
        }
    }

    /// This process's consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Readiness of the notifier: the broker answers.
    pub fn readiness(&self) -> Readiness {
        let broker = self.broker.clone();
        Readiness::new().with_check("redis", move || {
            let broker = broker.clone();
            async move { consumer::ping(&broker).await }
        })
    }

    /// Starts the consumer loop on `tracker`; it finishes the event in hand and stops when
    /// `shutdown` is cancelled.
    pub fn spawn_background(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        let consumer = consumer::Consumer {
            broker: self.broker.clone(),
            settings: Arc::clone(&self.settings),
            name: Arc::clone(&self.consumer),
        };
        tracker.spawn(consumer::run(consumer, shutdown));
    }
}

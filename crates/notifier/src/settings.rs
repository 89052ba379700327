//! herald-notifier's settings (design section 8): defaults < `--config FILE` < `HERALD_*`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HERALD_LISTEN` | bind address (health and metrics only) | `0.0.0.0:8083` |
//! | `HERALD_REDIS_URL` | Redis; empty = in-memory broker (single process) | `redis://127.0.0.1:6379` |
//! | `HERALD_REDIS_PREFIX` | prefix of Redis keys and channels | `herald:` |
//! | `HERALD_NOTIFIER__GROUP` | consumer group of the events stream, shared by every replica | `notifier` |
//! | `HERALD_NOTIFIER__CONSUMER` | this replica's consumer name, unique per running process | `<HOSTNAME>-<pid>-<random>` |
//! | `HERALD_NOTIFIER__BATCH_SIZE` | events read per call | 16 |
//! | `HERALD_NOTIFIER__BLOCK` | longest wait of one read for new events, seconds | 2 |
//! | `HERALD_NOTIFIER__CLAIM_INTERVAL` | seconds between looks for events a dead consumer left pending | 1 |
//! | `HERALD_NOTIFIER__CLAIM_MIN_IDLE` | seconds an event must have been pending before another consumer takes it over, whoever holds it | 30 |
//! | `HERALD_NOTIFIER__HEARTBEAT_INTERVAL` | seconds between refreshes of this consumer's liveness mark; 0 turns liveness off | 1 |
//! | `HERALD_NOTIFIER__HEARTBEAT_TTL` | seconds a liveness mark lives: a consumer without one, silent that long, is dead and its events are taken over at once | 3 |
//! | `HERALD_NOTIFIER__MAX_DELIVERIES` | deliveries after which an event that keeps failing is logged and dropped | 10 |
//! | `HERALD_NOTIFIER__IDEMPOTENCY_WINDOW` | seconds a publication's idempotency key (the event id) is remembered | 86400 |
//! | `HERALD_NOTIFIER__RETRY_MAX_DELAY` | longest pause between attempts while Redis fails, seconds | 2 |
//! | `HERALD_NOTIFIER__NOTIFY_SELF_ASSIGNMENT` | also notify users who assign a task to themselves | true |
//! | `HERALD_CHANNELS__TASKS__HISTORY_SIZE`, `__HISTORY_TTL` | history of the `tasks` channel (shared with the gateway's channel table) | 300, 86400 |
//! | `HERALD_CHANNELS__NOTIFICATIONS__HISTORY_SIZE`, `__HISTORY_TTL` | history of `notifications#<user>` channels | 300, 604800 |
//!
//! The publisher decides how much history a publication keeps, so the notifier reads the
//! `channels` section under the same names as the gateway's channel table: one setting
//! configures both.

use std::time::Duration;

use herald_broker::HistoryPolicy;
use herald_service::Secret;
use herald_service::config::{DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, seconds};
use serde::{Deserialize, Serialize};

/// Default listen address of the standalone service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8083";

/// Everything herald-notifier can be configured with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// `host:port` to bind; port 0 picks any free port.
    pub listen: String,
    /// Redis URL; `None` (or empty) uses an in-memory broker, which only makes sense when
    /// tasks-api and the gateway run in this process too (embedded mode).
    #[serde(skip_serializing)]
    pub redis_url: Option<Secret<String>>,
    /// Prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// The consumer.
    pub notifier: ConsumerSettings,
    /// History of the channels the notifier publishes to.
    pub channels: ChannelHistories,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            redis_url: Some(DEFAULT_REDIS_URL.into()),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            notifier: ConsumerSettings::default(),
            channels: ChannelHistories::default(),
        }
    }
}

/// The `notifier` section: how events are consumed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// Consumer group shared by every replica: each event goes to one of them.
    pub group: String,
    /// This process's consumer name; `None` makes a unique one at start-up.
    pub consumer: Option<String>,
    /// Events read per call.
    pub batch_size: usize,
    /// Longest wait of one read for new events.
    #[serde(with = "seconds")]
    pub block: Duration,
    /// Pause between looks for events left pending by dead consumers (liveness) and for
    /// stale ones (`claim_min_idle`).
    #[serde(with = "seconds")]
    pub claim_interval: Duration,
    /// How long an event must have been pending, unacknowledged, before another consumer
    /// takes it over whoever holds it. Longer than handling one event ever takes, so live
    /// consumers keep theirs. Events of a dead consumer are taken over sooner, through
    /// liveness (`heartbeat_interval`, `heartbeat_ttl`).
    #[serde(with = "seconds")]
    pub claim_min_idle: Duration,
    /// Pause between two refreshes of this consumer's liveness mark. Zero turns liveness
    /// off (no mark, no look for dead consumers): then only `claim_min_idle` takes events
    /// over. Turn it off on every replica or none, since a replica without a mark counts as
    /// dead to the others once it is silent for `heartbeat_ttl`.
    #[serde(with = "seconds")]
    pub heartbeat_interval: Duration,
    /// How long a liveness mark lives. A consumer whose mark is gone and that has not
    /// read from the group for this long is dead: another consumer takes its pending events
    /// at once and removes it from the group once it holds none. At least twice
    /// `heartbeat_interval` (a shorter value is raised to that).
    #[serde(with = "seconds")]
    pub heartbeat_ttl: Duration,
    /// Deliveries after which an event that keeps failing is dropped (logged, counted).
    pub max_deliveries: u64,
    /// How long a publication's idempotency key is remembered: a redelivered event within
    /// this window publishes nothing new.
    #[serde(with = "seconds")]
    pub idempotency_window: Duration,
    /// Longest pause between attempts while the broker fails.
    #[serde(with = "seconds")]
    pub retry_max_delay: Duration,
    /// Whether users who assign a task to themselves are notified too. The design sends a
    /// notification whenever a task has an assignee, so this is on by default.
    pub notify_self_assignment: bool,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            group: "notifier".to_owned(),
            consumer: None,
            batch_size: 16,
            block: Duration::from_secs(2),
            claim_interval: Duration::from_secs(1),
            claim_min_idle: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_ttl: Duration::from_secs(3),
            max_deliveries: 10,
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            retry_max_delay: Duration::from_secs(2),
            notify_self_assignment: true,
        }
    }
}

impl ConsumerSettings {
    /// The liveness mark's refresh pause and lifetime, `None` when liveness is off. The
    /// lifetime is at least twice the pause, so one late refresh does not look like death.
    pub fn liveness(&self) -> Option<(Duration, Duration)> {
        if self.heartbeat_interval.is_zero() {
            return None;
        }
        Some((
            self.heartbeat_interval,
            self.heartbeat_ttl.max(self.heartbeat_interval * 2),
        ))
    }
}

/// The `channels` section as far as the notifier is concerned (the gateway's channel table
/// has more per namespace; those keys are ignored here).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelHistories {
    /// `tasks`.
    pub tasks: HistorySettings,
    /// `notifications#<user id>`.
    pub notifications: HistorySettings,
}

impl Default for ChannelHistories {
    fn default() -> Self {
        Self {
            tasks: HistorySettings {
                history_size: 300,
                history_ttl: Duration::from_secs(24 * 60 * 60),
            },
            notifications: HistorySettings {
                history_size: 300,
                history_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            },
        }
    }
}

/// History of one namespace.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default)]
pub struct HistorySettings {
    /// Publications kept (0: none).
    pub history_size: usize,
    /// How long the history lives after the last publication.
    #[serde(with = "seconds")]
    pub history_ttl: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            history_size: 300,
            history_ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl HistorySettings {
    /// The broker's history policy.
    pub fn policy(&self) -> HistoryPolicy {
        HistoryPolicy::new(self.history_size, self.history_ttl)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_test_support::changed_paths;

    use super::Settings;

    #[test]
    fn a_channel_history_given_in_part_keeps_its_own_defaults_for_the_rest() {
        // The 7-day TTL of notifications is not the bare history's 24 hours.
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_CHANNELS__NOTIFICATIONS__HISTORY_SIZE", "10")]),
            ["channels.notifications.history_size"]
        );
    }

    #[test]
    fn liveness_is_off_with_a_zero_interval_and_its_ttl_covers_two_refreshes() {
        let mut settings = Settings::default().notifier;
        assert_eq!(
            settings.liveness(),
            Some((Duration::from_secs(1), Duration::from_secs(3)))
        );
        settings.heartbeat_ttl = Duration::from_secs(1);
        assert_eq!(
            settings.liveness(),
            Some((Duration::from_secs(1), Duration::from_secs(2)))
        );
        settings.heartbeat_interval = Duration::ZERO;
        assert_eq!(settings.liveness(), None);
    }

    #[test]
    fn the_notifier_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_NOTIFIER__BATCH_SIZE", "7")]),
            ["notifier.batch_size"]
        );
    }
}

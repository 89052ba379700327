//! The consumer loop (design section 4): reads the events stream through a consumer group,
//! publishes each event's notifications, then acknowledges it.
//!
//! Delivery is at least once, and publication exactly once per event and channel:
//! - an event is acknowledged only after all its publications were accepted, so a
//!   consumer that dies in between leaves it pending;
//! - every consumer keeps a liveness mark in the broker, refreshed every
//!   `heartbeat_interval` beside the loop (so a consumer busy with a slow publish stays
//!   alive) and living `heartbeat_ttl`;
//! - every [`ConsumerSettings::claim_interval`](crate::settings::ConsumerSettings) the loop
//!   takes over the events of dead consumers (mark gone, silent in the group for
//!   `heartbeat_ttl`) however briefly they were pending, and removes dead consumers that
//!   hold nothing from the group; then events pending for longer than `claim_min_idle`
//!   whoever holds them (a consumer that failed them, or runs without liveness); it handles
//!   them again. A live consumer that is merely slow keeps its events until
//!   `claim_min_idle`;
//! - the event id is each publication's idempotency key, so handling an event again
//!   publishes nothing new.
//!
//! Any number of replicas share one group; each event goes to one of them. While Redis
//! fails, the event in hand is retried with a doubling pause (its order kept). An event
//! that fails for another reason (say, an invalid channel) is left pending and retried on
//! reclaim; after `max_deliveries` it is dropped with an error log. A payload that is not
//! a domain event is dropped at once.
//!
//! Traces (when exported): each event is a `notifier.handle` span, child of the event's
//! `trace`, with one `notifier.publish` span per publication, whose context replaces the
//! event's in the publication's tags.
//!
//! Shutdown: the loop finishes the event in hand (publications and acknowledgement), then
//! returns and the liveness mark is dropped; events read but not started stay pending, and
//! another replica claims them once this consumer has been silent for `heartbeat_ttl`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_broker::{Broker, BrokerError, PublishRequest, StreamEntry};
use herald_common::channel::ChannelKind;
use herald_common::events::{DomainEvent, TASK_EVENTS_STREAM, TraceContext};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Span};

use crate::notify;
use crate::settings::Settings;

/// What the loop works with: handed over by its owner (the notifier's state), so this
/// module depends on nothing above it.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    /// Reads the events stream and publishes the notifications.
    pub(crate) broker: Broker,
    /// The whole settings: the loop's section and the channels' history policies.
    pub(crate) settings: Arc<Settings>,
    /// This process's consumer name in the group.
    pub(crate) name: Arc<str>,
}

/// First pause after a failure; it doubles up to the configured maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Published (or found already published) and acknowledged.
    Done,
    /// Left pending: it will be claimed and handled again.
    Pending,
    /// Shutdown came while waiting for the broker; the event stays pending.
    Stopped,
}

/// Doubling pauses between attempts.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            next: FIRST_RETRY_DELAY,
            max: max.max(FIRST_RETRY_DELAY),
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY_DELAY;
    }

    /// Sleeps for the next pause; `false` when `shutdown` came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }
}

/// Runs the consumer until `shutdown`: the loop and, with liveness on, the refresh of this
/// consumer's liveness mark beside it.
pub(crate) async fn run(notifier: Consumer, shutdown: CancellationToken) {
    let Some((interval, ttl)) = notifier.settings.notifier.liveness() else {
        consume(&notifier, &shutdown).await;
        return;
    };
    // Both run in this task, so the mark is refreshed while the loop waits on a slow
    // publish; it outlives the loop (which finishes the event in hand on shutdown) and is
    // dropped after it.
    let consumed = CancellationToken::new();
    tokio::join!(
        async {
            consume(&notifier, &shutdown).await;
            consumed.cancel();
        },
        heartbeat(&notifier, interval, ttl, &consumed),
    );
}

/// Refreshes this consumer's liveness mark every `interval` (lifetime `ttl`) until `stop`,
/// then drops it, so the events this consumer read but did not start are taken over by
/// another replica within seconds.
async fn heartbeat(
    notifier: &Consumer,
    interval: Duration,
    ttl: Duration,
    stop: &CancellationToken,
) {
    let group = notifier.settings.notifier.group.as_str();
    let consumer: &str = &notifier.name;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let beat =
            notifier
                .broker
                .stream_consumer_heartbeat(TASK_EVENTS_STREAM, group, consumer, ttl);
        let result = tokio::select! {
            () = stop.cancelled() => break,
            result = beat => result,
        };
        if let Err(err) = result {
            record_broker_error("heartbeat", &err);
        }
    }
    if let Err(err) = notifier
        .broker
        .stream_consumer_leave(TASK_EVENTS_STREAM, group, consumer)
        .await
    {
        record_broker_error("heartbeat", &err);
    }
}

/// What one claim round did.
enum Round {
    /// Claimed and handled; `full` when a claim filled its batch (more may be waiting).
    Done { full: bool },
    /// A claim failed.
    Failed,
    /// Shutdown came.
    Stopped,
}

/// The loop: join the group, then read, claim, publish and acknowledge until `shutdown`.
async fn consume(notifier: &Consumer, shutdown: &CancellationToken) {
    let settings = &notifier.settings.notifier;
    let broker = &notifier.broker;
    let group = settings.group.as_str();
    let consumer: &str = &notifier.name;
    let batch = settings.batch_size.max(1);
    // Reads wake up at least once per claim interval to look for stale events.
    let block = settings
        .block
        .min(settings.claim_interval)
        .max(Duration::from_millis(10));
    let mut backoff = Backoff::new(settings.retry_max_delay);
    tracing::info!(group, consumer, "notifier consuming {TASK_EVENTS_STREAM}");
    while !shutdown.is_cancelled() {
        match broker.stream_ensure_group(TASK_EVENTS_STREAM, group).await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(error = %err, "creating the consumer group failed; retrying");
                if !backoff.wait(shutdown).await {
                    return;
                }
            }
        }
    }
    backoff.reset();
    // Claim first: a restarted replica picks up what its previous life left pending.
    let mut next_claim = Instant::now();
    while !shutdown.is_cancelled() {
        if Instant::now() >= next_claim {
            match claim_round(notifier, shutdown).await {
                Round::Done { full } => {
                    backoff.reset();
                    // A full batch may mean more are waiting: claim again right away.
                    if !full {
                        next_claim = Instant::now() + settings.claim_interval;
                    }
                }
                Round::Failed => {
                    next_claim = Instant::now() + settings.claim_interval;
                    if !backoff.wait(shutdown).await {
                        return;
                    }
                }
                Round::Stopped => return,
            }
            continue;
        }
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = broker.stream_read_group(TASK_EVENTS_STREAM, group, consumer, batch, block) => read,
        };
        match read {
            Ok(entries) => {
                backoff.reset();
                if handle_all(notifier, entries, shutdown).await == Outcome::Stopped {
                    return;
                }
            }
            Err(err) => {
                record_broker_error("read", &err);
                if !backoff.wait(shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Takes over and handles what dead consumers hold (with liveness on), then what has been
/// pending longer than `claim_min_idle`, whoever holds it.
async fn claim_round(notifier: &Consumer, shutdown: &CancellationToken) -> Round {
    let settings = &notifier.settings.notifier;
    let broker = &notifier.broker;
    let group = settings.group.as_str();
    let consumer: &str = &notifier.name;
    let batch = settings.batch_size.max(1);
    let mut full = false;
    if let Some((_, ttl)) = settings.liveness() {
        match broker
            .stream_claim_dead(TASK_EVENTS_STREAM, group, consumer, ttl, batch)
            .await
        {
            Ok(claim) => {
                for dead in &claim.removed {
                    tracing::info!(dead = %dead, "removed a dead consumer holding nothing from the group");
                }
                metrics::counter!("herald_notifier_dead_consumers_removed_total")
                    .increment(claim.removed.len() as u64);
                if !claim.entries.is_empty() {
                    tracing::warn!(
                        count = claim.entries.len(),
                        from = ?claim.claimed_from,
                        "claimed events a dead consumer left pending"
                    );
                    metrics::counter!("herald_notifier_claimed_from_dead_total")
                        .increment(claim.entries.len() as u64);
                }
                full = claim.entries.len() >= batch;
                if handle_all(notifier, claim.entries, shutdown).await == Outcome::Stopped {
                    return Round::Stopped;
                }
            }
            Err(err) => {
                record_broker_error("claim", &err);
                return Round::Failed;
            }
        }
    }
    match broker
        .stream_claim_stale(
            TASK_EVENTS_STREAM,
            group,
            consumer,
            settings.claim_min_idle,
            batch,
        )
        .await
    {
        Ok(entries) => {
            full |= entries.len() >= batch;
            if !entries.is_empty() {
                tracing::info!(
                    count = entries.len(),
                    "claimed events left pending by another consumer"
                );
                metrics::counter!("herald_notifier_reclaimed_total")
                    .increment(entries.len() as u64);
            }
            if handle_all(notifier, entries, shutdown).await == Outcome::Stopped {
                return Round::Stopped;
            }
            Round::Done { full }
        }
        Err(err) => {
            record_broker_error("claim", &err);
            Round::Failed
        }
    }
}

/// Handles `entries` in order; stops early (leaving the rest pending) on shutdown.
async fn handle_all(
    notifier: &Consumer,
    entries: Vec<StreamEntry>,
    shutdown: &CancellationToken,
) -> Outcome {
    for entry in entries {
        if shutdown.is_cancelled() || handle(notifier, &entry, shutdown).await == Outcome::Stopped {
            return Outcome::Stopped;
        }
    }
    Outcome::Done
}

/// Handles one event: publish, then acknowledge.
async fn handle(notifier: &Consumer, entry: &StreamEntry, shutdown: &CancellationToken) -> Outcome {
    let settings = &notifier.settings.notifier;
    if entry.deliveries > settings.max_deliveries {
        tracing::error!(
            entry = %entry.id,
            deliveries = entry.deliveries,
            payload = %truncated(&entry.payload),
            "event failed too many times; dropping it"
        );
        count_event("unknown", "dropped");
        return acknowledge(notifier, entry, shutdown).await;
    }
    let event: DomainEvent = match serde_json::from_str(&entry.payload) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(entry = %entry.id, error = %err, payload = %truncated(&entry.payload), "not a domain event; dropping it");
            count_event("unknown", "malformed");
            return acknowledge(notifier, entry, shutdown).await;
        }
    };
    let span = tracing::info_span!(
        "notifier.handle",
        otel.kind = "consumer",
        event.id = %event.id,
        "event.type" = event.kind.as_str(),
        messaging.message.id = %entry.id,
    );
    herald_service::trace::set_parent(&span, &event.trace);
    publish_and_acknowledge(notifier, entry, &event, shutdown)
        .instrument(span)
        .await
}

/// Publishes the notifications of `event`, then acknowledges its entry.
async fn publish_and_acknowledge(
    notifier: &Consumer,
    entry: &StreamEntry,
    event: &DomainEvent,
    shutdown: &CancellationToken,
) -> Outcome {
    let settings = &notifier.settings.notifier;
    let outgoing = match notify::publications(event, &notifier.settings) {
        Ok(outgoing) => outgoing,
        Err(err) => {
            tracing::error!(event = %event.id, error = %err, "encoding the notification failed");
            count_event(event.kind.as_str(), "failed");
            return Outcome::Pending;
        }
    };
    let mut backoff = Backoff::new(settings.retry_max_delay);
    for publication in outgoing {
        let span = tracing::info_span!(
            "notifier.publish",
            otel.kind = "producer",
            messaging.destination.name = %publication.channel,
        );
        let request = traced(&span, publication.request);
        loop {
            match notifier
                .broker
                .publish(&publication.channel, request.clone())
                .instrument(span.clone())
                .await
            {
                Ok(result) => {
                    let namespace = match publication.channel.kind() {
                        ChannelKind::Notifications { .. } => "notifications",
                        _ => "tasks",
                    };
                    metrics::counter!(
                        "herald_notifier_publications_total",
                        "namespace" => namespace,
                        "deduplicated" => if result.deduplicated { "true" } else { "false" }
                    )
                    .increment(1);
                    if result.deduplicated {
                        tracing::debug!(event = %event.id, channel = %publication.channel, "already published");
                    }
                    break;
                }
                Err(err) if err.is_temporary() => {
                    record_broker_error("publish", &err);
                    if !backoff.wait(shutdown).await {
                        return Outcome::Stopped;
                    }
                }
                Err(err) => {
                    tracing::error!(event = %event.id, channel = %publication.channel, error = %err, "publishing failed; the event stays pending");
                    count_event(event.kind.as_str(), "failed");
                    return Outcome::Pending;
                }
            }
        }
    }
    let lag = time::OffsetDateTime::now_utc() - event.at;
    metrics::histogram!("herald_notifier_lag_duration_seconds")
        .record(lag.as_seconds_f64().max(0.0));
    let outcome = acknowledge(notifier, entry, shutdown).await;
    if outcome == Outcome::Done {
        count_event(event.kind.as_str(), "published");
        tracing::debug!(event = %event.id, kind = %event.kind, entry = %entry.id, "event handled");
    }
    outcome
}

/// `request` with the trace context of its publish span in its tags, when traces are
/// exported: each gateway's delivery span then hangs below it. Otherwise the tags keep the
/// event's own context.
fn traced(span: &Span, mut request: PublishRequest) -> PublishRequest {
    if let Some(trace) = herald_service::trace::context_of(span) {
        request.tags.remove(TraceContext::TRACESTATE);
        for (name, value) in trace.pairs() {
            request.tags.insert(name.to_owned(), value.to_owned());
        }
    }
    request
}

/// Acknowledges `entry`, retrying while the broker is unreachable. Giving up on shutdown
/// is harmless: the event is handled again after a claim, and publishes nothing new.
async fn acknowledge(
    notifier: &Consumer,
    entry: &StreamEntry,
    shutdown: &CancellationToken,
) -> Outcome {
    let settings = &notifier.settings.notifier;
    let ids = [entry.id.clone()];
    let mut backoff = Backoff::new(settings.retry_max_delay);
    loop {
        match notifier
            .broker
            .stream_ack(TASK_EVENTS_STREAM, &settings.group, &ids)
            .await
        {
            Ok(_) => return Outcome::Done,
            Err(err) => {
                record_broker_error("ack", &err);
                if !err.is_temporary() {
                    return Outcome::Pending;
                }
                if !backoff.wait(shutdown).await {
                    return Outcome::Stopped;
                }
            }
        }
    }
}

fn count_event(kind: &'static str, outcome: &'static str) {
    metrics::counter!("herald_notifier_events_total", "type" => kind, "outcome" => outcome)
        .increment(1);
}

fn record_broker_error(stage: &'static str, err: &BrokerError) {
    tracing::warn!(stage, error = %err, "broker call failed");
    metrics::counter!("herald_notifier_broker_errors_total", "stage" => stage).increment(1);
}

/// The start of a payload, for logs.
fn truncated(payload: &str) -> &str {
    let end = payload
        .char_indices()
        .nth(200)
        .map_or(payload.len(), |(index, _)| index);
    &payload[..end]
}

/// Builds a consumer name unique to this process: `<host>-<pid>-<random>`.
pub fn unique_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "notifier".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Whether `broker` answers (readiness).
pub(crate) async fn ping(broker: &Broker) -> Result<(), String> {
    broker.ping().await.map_err(|err| err.to_string())
}

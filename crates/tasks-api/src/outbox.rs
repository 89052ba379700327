//! The outbox relay (design section 5): moves committed outbox rows to the events stream
//! (`<prefix>events:tasks`) in order, and marks them sent.
//!
//! It wakes when this process commits a change, when Postgres notifies a commit of any
//! replica (LISTEN on [`crate::store::OUTBOX_CHANNEL`]), and otherwise every poll interval
//! (SQLite) or fallback interval (Postgres). Each round drains the outbox batch by batch;
//! on Postgres one replica at a time holds the relay lock, so the stream keeps the order of
//! the outbox. A row is marked sent only after the broker accepted it: if the process dies
//! between the two, the row is appended again, which the notifier absorbs (the event id is
//! the publication's idempotency key). While the broker fails, rounds are retried with a
//! doubling pause, and the rows wait in the outbox: a task created while Redis is down
//! still produces its notification when Redis returns.
//!
//! On Postgres the round's own commit (the rows marked sent, the relay lock released) does
//! not wait for its WAL flush (`synchronous_commit = off` for that transaction alone): the
//! appends are already in Redis, and a mark lost in a database crash only makes the rows be
//! appended once more, which the notifier absorbs. So a slow disk delays the POSTs' commits,
//! which must be durable, but not the relay behind them as well.
//!
//! Metrics: `herald_tasks_outbox_backlog` (unsent rows), `herald_tasks_outbox_oldest_age_seconds`
//! (age of the oldest unsent row; both gauges are refreshed every second by a task
//! of their own, off the relay's path), `herald_tasks_outbox_relayed_total`,
//! `herald_tasks_outbox_relay_errors_total` and `herald_tasks_outbox_lag_duration_seconds`
//! (commit to append).
//!
//! Traces: each append is an `outbox.relay` span, child of the event's `trace` (the span that
//! wrote it), when traces are exported.

use std::sync::Arc;
use std::time::Duration;

use herald_common::events::{TASK_EVENTS_STREAM, TraceContext};
use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Span};

use herald_broker::Broker;
use herald_service::db;
use tokio::sync::Notify;

use crate::settings::OutboxSettings;
use crate::store::{self, OutboxRow, Store};

/// First pause after a failed round; it doubles up to the configured maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// How often the backlog gauges are refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// How a round ended.
enum Round {
    /// Everything unsent was appended (or another replica is appending it).
    Drained,
    /// The broker or the database failed; the rest waits for the next round.
    Failed,
}

/// Runs the relay until `shutdown`. A round in progress is finished first (its batch is
/// marked), so nothing appended is left unmarked by a shutdown.
pub(crate) async fn run_relay(
    store: Store,
    broker: Broker,
    wake: Arc<Notify>,
    settings: OutboxSettings,
    shutdown: CancellationToken,
) {
    let mut listener: Option<PgListener> = None;
    let mut retry_delay = FIRST_RETRY_DELAY;
    loop {
        if let db::Store::Postgres(pg) = &*store
            && listener.is_none()
        {
            match pg.outbox_listener().await {
                Ok(new) => listener = Some(new),
                Err(err) => tracing::debug!(error = %err, "outbox LISTEN not available; polling"),
            }
        }
        let round = relay_round(&store, &broker, settings.batch_size).await;
        let pause = match round {
            Round::Drained => {
                retry_delay = FIRST_RETRY_DELAY;
                match (&*store, &listener) {
                    (db::Store::Postgres(_), Some(_)) => settings.fallback_interval,
                    _ => settings.poll_interval,
                }
            }
            Round::Failed => {
                let pause = retry_delay;
                retry_delay =
                    (retry_delay * 2).min(settings.retry_max_delay.max(FIRST_RETRY_DELAY));
                // While failing, wake-ups are ignored: only the pause paces the retries.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified() => {}
            lost = notification(&mut listener) => {
                if lost {
                    listener = None;
                }
            }
            () = tokio::time::sleep(pause) => {}
        }
        // Several commits may have notified while the round ran: one round covers them all.
        if let Some(listener) = listener.as_mut() {
            while listener.next_buffered().is_some() {}
        }
    }
}

/// Waits for the next outbox notification; returns `true` when the listener failed and
/// should be replaced. Never returns without a listener.
async fn notification(listener: &mut Option<PgListener>) -> bool {
    let Some(listener) = listener.as_mut() else {
        return std::future::pending().await;
    };
    match listener.try_recv().await {
        // `None`: the connection was lost and re-established; notifications in between are
        // lost, so a round is due either way.
        Ok(_) => false,
        Err(err) => {
            tracing::warn!(error = %err, "outbox listener failed; reconnecting");
            true
        }
    }
}

/// Appends unsent rows batch by batch until none is left or something fails.
async fn relay_round(store: &Store, broker: &Broker, batch_size: u32) -> Round {
    let batch_size = batch_size.max(1);
    loop {
        let batch = match store.claim_outbox(batch_size).await {
            Ok(Some(batch)) => batch,
            // Another replica holds the relay lock and is appending these very rows.
            Ok(None) => return Round::Drained,
            Err(err) => {
                tracing::warn!(error = %err, cause = herald_service::error::source_text(&err), "reading the outbox failed");
                metrics::counter!("herald_tasks_outbox_relay_errors_total").increment(1);
                return Round::Failed;
            }
        };
        let claimed = batch.rows().len();
        let mut sent = Vec::with_capacity(claimed);
        let mut failed = false;
        for row in batch.rows() {
            match broker
                .stream_append(TASK_EVENTS_STREAM, &row.payload)
                .instrument(relay_span(row))
                .await
            {
                Ok(_) => {
                    sent.push(row.id);
                    let lag = store::now() - row.created_at;
                    metrics::histogram!("herald_tasks_outbox_lag_duration_seconds")
                        .record(lag.as_seconds_f64().max(0.0));
                }
                Err(err) => {
                    tracing::warn!(error = %err, event = %row.event_id, "appending to the events stream failed; will retry");
                    metrics::counter!("herald_tasks_outbox_relay_errors_total").increment(1);
                    failed = true;
                    break;
                }
            }
        }
        let appended = sent.len();
        if let Err(err) = batch.finish(&sent, store::now()).await {
            // The appended rows stay unsent and are appended again later: duplicates on the
            // stream, which the notifier's idempotency keys absorb.
            tracing::warn!(error = %err, appended, "marking outbox rows sent failed");
            metrics::counter!("herald_tasks_outbox_relay_errors_total").increment(1);
            return Round::Failed;
        }
        metrics::counter!("herald_tasks_outbox_relayed_total").increment(appended as u64);
        if failed {
            return Round::Failed;
        }
        if claimed < usize::try_from(batch_size).unwrap_or(usize::MAX) {
            return Round::Drained;
        }
    }
}

/// The span of one append, child of the span that wrote the event (its `trace`); a disabled
/// span when traces are not exported, so the payload is not parsed for nothing.
fn relay_span(row: &OutboxRow) -> Span {
    /// The one member of the payload the span needs.
    #[derive(Deserialize)]
    struct Traced {
        #[serde(default)]
        trace: TraceContext,
    }
    if !herald_service::trace::enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "outbox.relay",
        otel.kind = "producer",
        event.id = %row.event_id,
        messaging.destination.name = TASK_EVENTS_STREAM,
    );
    if let Ok(Traced { trace }) = serde_json::from_str(&row.payload) {
        herald_service::trace::set_parent(&span, &trace);
    }
    span
}

/// Refreshes the backlog gauges every [`BACKLOG_EVERY`] until `shutdown`; the first time at
/// once, so the gauges exist from the start.
pub(crate) async fn run_backlog_gauges(store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(BACKLOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Bounded: a database that does not answer must not stall the next refreshes.
        let _ = tokio::time::timeout(BACKLOG_EVERY * 5, record_backlog(&store)).await;
    }
}

/// Updates the backlog gauges.
async fn record_backlog(store: &Store) {
    match store.outbox_stats().await {
        Ok(stats) => {
            let age = stats.oldest_unsent.map_or(0.0, |oldest| {
                (store::now() - oldest).as_seconds_f64().max(0.0)
            });
            #[allow(clippy::cast_precision_loss)] // a backlog beyond 2^52 rows is not a concern
            metrics::gauge!("herald_tasks_outbox_backlog").set(stats.unsent as f64);
            metrics::gauge!("herald_tasks_outbox_oldest_age_seconds").set(age);
        }
        Err(err) => tracing::debug!(error = %err, "reading the outbox backlog failed"),
    }
}

//! The sweep: deletes outbox rows sent longer ago than the retention and idempotency keys
//! older than their time to live, every sweep interval.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{self, Store};

/// What the sweep deletes and how often: the parts of the settings it needs, so the loop
/// depends on the store and not on the whole service state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SweepPolicy {
    /// Pause between two sweeps.
    pub(crate) interval: Duration,
    /// Sent outbox rows older than this are deleted.
    pub(crate) sent_retention: Duration,
    /// Idempotency keys older than this are deleted.
    pub(crate) idempotency_ttl: Duration,
}

/// Runs the sweep until `shutdown`.
pub(crate) async fn run_sweep(store: Store, policy: SweepPolicy, shutdown: CancellationToken) {
    let interval = policy.interval;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = store::now();
        let sent_before = now - policy.sent_retention;
        let keys_before = now - policy.idempotency_ttl;
        match store.sweep(sent_before, keys_before).await {
            Ok(swept) if swept.outbox_rows + swept.idempotency_keys > 0 => tracing::debug!(
                outbox_rows = swept.outbox_rows,
                idempotency_keys = swept.idempotency_keys,
                "swept"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sweep failed"),
        }
    }
}

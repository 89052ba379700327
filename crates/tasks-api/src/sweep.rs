//! The sweep: deletes outbox rows sent longer ago than the retention and idempotency keys
//! older than their time to live, every sweep interval.

use tokio_util::sync::CancellationToken;

use crate::state::TasksApi;
use crate::store;

/// Runs the sweep until `shutdown`.
pub(crate) async fn run_sweep(api: TasksApi, shutdown: CancellationToken) {
    let interval = api.settings.outbox.sweep_interval;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = store::now();
        let sent_before = now - api.settings.outbox.sent_retention;
        let keys_before = now - api.settings.idempotency_ttl;
        match api.store.sweep(sent_before, keys_before).await {
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

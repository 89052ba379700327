//! The gateway's metrics (design section 7), recorded with the `metrics` macros into the
//! process-wide recorder that `herald-service` installs, and a few counters kept in
//! [`NodeStats`] so that tests and the metrics ticker can read them without a recorder.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `herald_gateway_connections` | gauge | open WebSocket connections |
//! | `herald_gateway_subscriptions` | gauge | (connection, channel) subscriptions |
//! | `herald_gateway_channels` | gauge | channels this node is subscribed to in the broker |
//! | `herald_gateway_messages_in_total` | counter | client messages (commands, chat lines) received |
//! | `herald_gateway_messages_out_total` | counter | messages written to clients (replies and pushes) |
//! | `herald_gateway_frames_out_total` | counter | WebSocket frames written (messages are batched) |
//! | `herald_gateway_queue_drops_total` | counter | connections closed with 3008 because their send queue overflowed |
//! | `herald_gateway_outbox_bytes` | gauge | bytes queued for clients on this node (sampled) |
//! | `herald_gateway_outbox_peak_bytes` | gauge | the most bytes one connection ever had queued |
//! | `herald_gateway_publish_duration_seconds` | histogram | client publish latency (broker round trip) |
//! | `herald_gateway_redis_reconnects_total` | counter | pub/sub reconnections |
//! | `herald_gateway_broker_events_dropped_total` | counter | broker events dropped (each led to a recovery) |
//! | `herald_gateway_gaps_total` | counter | channels whose subscribers had to recover |
//! | `herald_gateway_disconnects_total{code}` | counter | connections closed by the server, by close code |
//! | `herald_gateway_deflate_frames_total` | counter | frames written compressed (permessage-deflate) |
//! | `herald_gateway_deflate_bytes_in_total` | counter | bytes of those frames' messages before compression |
//! | `herald_gateway_deflate_bytes_out_total` | counter | their payload bytes after compression |
//! | `herald_gateway_deflate_compressions_total` | counter | messages compressed (a publication once, whatever its audience) |
//! | `herald_gateway_inflated_messages_total` | counter | compressed messages received and inflated |

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Open connections.
pub const CONNECTIONS: &str = "herald_gateway_connections";
/// Subscriptions.
pub const SUBSCRIPTIONS: &str = "herald_gateway_subscriptions";
/// Channels subscribed in the broker.
pub const CHANNELS: &str = "herald_gateway_channels";
/// Inbound messages.
pub const MESSAGES_IN: &str = "herald_gateway_messages_in_total";
/// Outbound messages.
pub const MESSAGES_OUT: &str = "herald_gateway_messages_out_total";
/// Outbound frames.
pub const FRAMES_OUT: &str = "herald_gateway_frames_out_total";
/// Slow-consumer closes.
pub const QUEUE_DROPS: &str = "herald_gateway_queue_drops_total";
/// Queued bytes.
pub const OUTBOX_BYTES: &str = "herald_gateway_outbox_bytes";
/// Largest queue of one connection.
pub const OUTBOX_PEAK: &str = "herald_gateway_outbox_peak_bytes";
/// Publish latency.
pub const PUBLISH_DURATION: &str = "herald_gateway_publish_duration_seconds";
/// Pub/sub reconnects.
pub const REDIS_RECONNECTS: &str = "herald_gateway_redis_reconnects_total";
/// Broker events dropped.
pub const BROKER_DROPS: &str = "herald_gateway_broker_events_dropped_total";
/// Recoveries forced on subscribers.
pub const GAPS: &str = "herald_gateway_gaps_total";
/// Server-side closes by code.
pub const DISCONNECTS: &str = "herald_gateway_disconnects_total";
/// Frames written compressed.
pub const DEFLATE_FRAMES: &str = "herald_gateway_deflate_frames_total";
/// Bytes of compressed frames before compression.
pub const DEFLATE_BYTES_IN: &str = "herald_gateway_deflate_bytes_in_total";
/// Bytes of compressed frames after compression.
pub const DEFLATE_BYTES_OUT: &str = "herald_gateway_deflate_bytes_out_total";
/// Messages compressed.
pub const DEFLATE_COMPRESSIONS: &str = "herald_gateway_deflate_compressions_total";
/// Compressed messages received.
pub const INFLATED: &str = "herald_gateway_inflated_messages_total";

/// Counters of this node that tests and the metrics ticker read directly.
#[derive(Debug, Default)]
pub struct NodeStats {
    connections: AtomicUsize,
    subscriptions: AtomicUsize,
    peak_outbox_bytes: AtomicUsize,
    slow_closes: AtomicU64,
    gaps: AtomicU64,
}

/// A snapshot of [`NodeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Open connections (both endpoints).
    pub connections: usize,
    /// (connection, channel) subscriptions.
    pub subscriptions: usize,
    /// Bytes queued for clients right now (filled in by the gateway, which samples every
    /// connection's queue).
    pub outbox_bytes: usize,
    /// The most bytes one connection ever had queued (within 4 KiB).
    pub peak_outbox_bytes: usize,
    /// Connections closed with 3008.
    pub slow_closes: u64,
    /// Channels whose subscribers were made to recover.
    pub gaps: u64,
}

impl NodeStats {
    /// A snapshot of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections: self.connections.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            outbox_bytes: 0,
            peak_outbox_bytes: self.peak_outbox_bytes.load(Ordering::Relaxed),
            slow_closes: self.slow_closes.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn connection_opened(&self) {
        let now = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(CONNECTIONS).set(now as f64);
    }

    pub(crate) fn connection_closed(&self) {
        let now = self
            .connections
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(CONNECTIONS).set(now as f64);
    }

    pub(crate) fn subscribed(&self) {
        let now = self.subscriptions.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(SUBSCRIPTIONS).set(now as f64);
    }

    pub(crate) fn unsubscribed(&self) {
        let now = self
            .subscriptions
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(SUBSCRIPTIONS).set(now as f64);
    }

    /// One connection's queue reached `bytes` (reported in steps, off the hot path).
    pub(crate) fn queue_peak(&self, bytes: usize) {
        self.peak_outbox_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    pub(crate) fn slow_close(&self) {
        self.slow_closes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(QUEUE_DROPS).increment(1);
    }

    pub(crate) fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(GAPS).increment(1);
    }

    /// Publishes the gauges that are cheaper to sample than to track per event.
    pub(crate) fn export(&self, outbox_bytes: usize) {
        metrics::gauge!(OUTBOX_BYTES).set(outbox_bytes as f64);
        metrics::gauge!(OUTBOX_PEAK).set(self.peak_outbox_bytes.load(Ordering::Relaxed) as f64);
    }
}

/// Counts a server-side close with `code`.
pub(crate) fn disconnect(code: u16) {
    metrics::counter!(DISCONNECTS, "code" => code.to_string()).increment(1);
}

//! The fan-out core: from the node's one broker subscriber to every local subscriber.
//!
//! ```text
//! Redis pub/sub ─▶ broker Subscriber ─▶ dispatch task ─▶ Hub (channel → members)
//!                   (one per process,    (encode once    ─▶ Slot (buffering / live)
//!                    ref-counted)         per format)       ─▶ Outbox (bounded) ─▶ writer ─▶ socket
//! ```
//!
//! Layout:
//! - [`outbox`]: the bounded per-connection queue and its writer task (batching, 3008);
//! - [`slot`]: one subscription's delivery state (buffering while subscribing, then live);
//! - [`hub`]: channel → members, sharded `std` read-write locks, never held across an await;
//! - [`dispatch`]: the task that consumes broker events (publications, joins, leaves,
//!   gaps, control messages), the fan-out's only writer;
//! - [`position`]: the periodic check that catches a lost last publication of a channel
//!   with positioned subscribers and reports it as a gap into the broker subscriber's
//!   receiver, so it reaches the dispatcher in order with everything else.
//!
//! No lock is held across an await on the delivery path; every push is non-blocking.

pub mod dispatch;
pub mod hub;
pub mod outbox;
pub mod position;
pub mod slot;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use herald_common::channel::ChannelName;
use herald_common::ids::{ClientId, UserId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::NodeStats;
pub use outbox::Outbox;

/// A connection's number on this node (cheaper to hash than its client id).
pub type ConnId = u64;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// How a connection wants publications written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Client protocol pushes (`/connection/websocket`).
    Protocol,
    /// `<username>: <text>` lines (`/ws/chat/{room}`).
    ChatLines,
    /// The publication's `text`, else its JSON (`/ws/notifications/{channel}`).
    NotificationLines,
}

/// Who a connection belongs to, known once it authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user (JWT `sub`).
    pub user: UserId,
    /// The connection's client id.
    pub client: ClientId,
}

/// A connection as the fan-out sees it: where its messages go and how to reach its task.
#[derive(Debug)]
pub struct Target {
    /// Node-local number.
    pub id: ConnId,
    /// How publications are written for it.
    pub format: Format,
    /// Its send queue.
    pub outbox: Arc<Outbox>,
    /// Fires when the connection is over (its writer ended).
    pub done: CancellationToken,
    identity: OnceLock<Identity>,
    /// Channels whose subscription the fan-out ended (a gap): the connection's task cleans
    /// them up. At most one entry per subscription, so bounded by the channel limit.
    ended: Mutex<Vec<ChannelName>>,
    /// Wakes the connection's task when `ended` grows.
    pub attention: Notify,
}

impl Target {
    /// A new connection with a send queue of `queue_limit` bytes.
    pub fn new(format: Format, queue_limit: usize, stats: Arc<NodeStats>) -> Self {
        Self {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            format,
            outbox: Arc::new(Outbox::new(queue_limit, stats)),
            done: CancellationToken::new(),
            identity: OnceLock::new(),
            ended: Mutex::new(Vec::new()),
            attention: Notify::new(),
        }
    }

    /// Records who the connection belongs to (once).
    pub fn set_identity(&self, identity: Identity) {
        let _ = self.identity.set(identity);
    }

    /// Who the connection belongs to, once known.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.get()
    }

    /// Tells the connection's task that the fan-out ended its subscription to `channel`.
    pub fn subscription_ended(&self, channel: &ChannelName) {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(channel.clone());
        self.attention.notify_one();
    }

    /// The channels whose subscriptions the fan-out ended since the last call.
    pub fn take_ended(&self) -> Vec<ChannelName> {
        std::mem::take(&mut *self.ended.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

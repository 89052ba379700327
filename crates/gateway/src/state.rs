//! The node's shared state, built once by [`crate::Gateway::new`] and handed to every
//! handler and task as an `Arc` (no globals).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use herald_broker::{Broker, BrokerEvent, Subscriber};
use herald_service::TokenVerifier;
use tokio::sync::mpsc;

use crate::fanout::hub::Hub;
use crate::metrics::NodeStats;
use crate::node::Node;
use crate::origin::Origins;
use crate::policy::ChannelPolicy;
use crate::registry::Registry;
use crate::settings::Settings;

/// Capacity of the broker subscriber's event receiver. When it is full the broker drops
/// channel events and reports a gap, so subscribers recover instead of memory growing.
pub const BROKER_EVENTS_CAPACITY: usize = 16 * 1024;

/// Everything a connection or task of this node needs.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// The channel table.
    pub policy: ChannelPolicy,
    /// Publishing, history, presence.
    pub broker: Broker,
    /// The node's one pub/sub subscriber (reference-counted channels).
    pub subscriber: Subscriber,
    /// Token verification over the broker's key set.
    pub verifier: TokenVerifier,
    /// Channel → local subscribers.
    pub hub: Arc<Hub>,
    /// Open connections and their limits.
    pub registry: Arc<Registry>,
    /// Counters.
    pub stats: Arc<NodeStats>,
    /// The Origin allow-list.
    pub origins: Origins,
    /// The subscriber's events, until the fan-out task takes them.
    pub events: Mutex<Option<mpsc::Receiver<BrokerEvent>>>,
    /// This node's identity and channel counts (`/api/info`, `/api/channels`).
    pub node: Node,
    /// Set once the node drains (SIGTERM): new WebSockets get HTTP 503, `/readyz` fails.
    draining: AtomicBool,
}

impl Shared {
    /// Builds the state and opens the broker subscriber (needs a Tokio runtime).
    pub fn new(settings: Settings, broker: Broker, verifier: TokenVerifier) -> Self {
        let (subscriber, events) = broker.subscriber(BROKER_EVENTS_CAPACITY);
        Self {
            policy: ChannelPolicy::new(&settings.channels),
            origins: Origins::new(&settings.allowed_origins),
            registry: Arc::new(Registry::new(
                settings.limits.max_connections,
                settings.limits.max_connections_per_user,
                settings.limits.max_anonymous_connections_per_ip,
            )),
            hub: Arc::new(Hub::default()),
            stats: Arc::new(NodeStats::default()),
            events: Mutex::new(Some(events)),
            node: Node::new(settings.node_name()),
            draining: AtomicBool::new(false),
            settings,
            broker,
            subscriber,
            verifier,
        }
    }
}

impl Shared {
    /// Whether the node is draining: it accepts no new connection.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining; returns `false` when it already was.
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }
}

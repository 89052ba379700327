//! This node as the other nodes see it: its identity, its per-channel subscriber counts, and
//! the announcements that let any node answer `/api/info` and `/api/channels` for all of
//! them (design section 2).
//!
//! Every node writes, every [`Settings::node_info_interval`](crate::Settings), two entries
//! into shared broker tables: its [`NodeInfo`] into [`NODES_TABLE`] and its channel counts
//! into [`CHANNELS_TABLE`], both keyed by the node's uid and living three intervals, so a
//! node that dies disappears by itself. A node answering the API reads the other nodes'
//! latest announcements and its own live counts. A stopping node removes its entries.
//!
//! Bounded: a node announces at most [`MAX_ANNOUNCED_CHANNELS`] channels (the busiest);
//! `/api/channels` is an overview, not an exact census of every channel of every node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use herald_broker::BrokerError;
use herald_common::channel::ChannelName;
use herald_common::server_api::{ChannelInfo, NodeInfo};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// Broker table of node announcements: uid → [`NodeInfo`] JSON.
pub const NODES_TABLE: &str = "gateway:nodes";
/// Broker table of channel counts: uid → `{"<channel>": <subscribers>}` JSON.
pub const CHANNELS_TABLE: &str = "gateway:channels";
/// Most channels one node announces (the ones with the most subscribers).
pub const MAX_ANNOUNCED_CHANNELS: usize = 10_000;

/// Longest wait to withdraw the announcements at stop.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// An announcement lives this many announce intervals.
const ANNOUNCEMENT_LIVES: u32 = 3;

/// The node's identity and channel counts.
#[derive(Debug)]
pub struct Node {
    /// Unique id of this process (a new one at every start).
    pub uid: String,
    /// Name shown in `/api/info`.
    pub name: String,
    started: Instant,
    channels: Mutex<HashMap<ChannelName, u32>>,
}

impl Node {
    /// A new node named `name`.
    pub fn new(name: String) -> Self {
        Self {
            uid: uuid::Uuid::new_v4().to_string(),
            name,
            started: Instant::now(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelName, u32>> {
        // Counter updates cannot leave the map half-written.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection of this node subscribed to `channel`.
    pub fn channel_joined(&self, channel: &ChannelName) {
        *self.lock().entry(channel.clone()).or_default() += 1;
    }

    /// A connection of this node left `channel`.
    pub fn channel_left(&self, channel: &ChannelName) {
        let mut channels = self.lock();
        if let Some(count) = channels.get_mut(channel) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                channels.remove(channel);
            }
        }
    }

    /// This node's channels and their subscriber counts, the busiest
    /// [`MAX_ANNOUNCED_CHANNELS`] of them.
    pub fn channels(&self) -> BTreeMap<String, u32> {
        let channels = self.lock();
        if channels.len() <= MAX_ANNOUNCED_CHANNELS {
            return channels
                .iter()
                .map(|(channel, count)| (channel.to_string(), *count))
                .collect();
        }
        let mut busiest: Vec<(&ChannelName, &u32)> = channels.iter().collect();
        busiest.sort_unstable_by(|a, b| b.1.cmp(a.1));
        busiest
            .into_iter()
            .take(MAX_ANNOUNCED_CHANNELS)
            .map(|(channel, count)| (channel.to_string(), *count))
            .collect()
    }

    /// Channels with at least one subscriber on this node.
    pub fn channel_count(&self) -> usize {
        self.lock().len()
    }

    /// This node's live counters.
    pub fn info(&self, shared: &Shared) -> NodeInfo {
        NodeInfo {
            uid: self.uid.clone(),
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            num_clients: saturate(shared.registry.len()),
            num_users: saturate(shared.registry.user_count()),
            num_channels: saturate(self.channel_count()),
            uptime: self.started.elapsed().as_secs(),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How long one announcement lives.
fn announcement_ttl(shared: &Shared) -> Duration {
    shared.settings.node_info_interval * ANNOUNCEMENT_LIVES
}

/// Writes this node's announcements once.
pub async fn announce(shared: &Shared) -> Result<(), BrokerError> {
    let node = &shared.node;
    let ttl = announcement_ttl(shared);
    let info = serde_json::to_string(&node.info(shared))?;
    let channels = serde_json::to_string(&node.channels())?;
    shared
        .broker
        .table_put(NODES_TABLE, &node.uid, &info, ttl)
        .await?;
    shared
        .broker
        .table_put(CHANNELS_TABLE, &node.uid, &channels, ttl)
        .await
}

/// Removes this node's announcements (it is stopping); gives up after [`WITHDRAW_TIMEOUT`]
/// (they expire by themselves) so a stop never waits for an unreachable Redis.
pub async fn withdraw(shared: &Shared) {
    let uid = &shared.node.uid;
    let removals = async {
        for table in [NODES_TABLE, CHANNELS_TABLE] {
            shared.broker.table_remove(table, uid).await?;
        }
        Ok::<(), BrokerError>(())
    };
    match tokio::time::timeout(WITHDRAW_TIMEOUT, removals).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "node announcement not withdrawn; it will expire")
        }
        Err(_) => tracing::debug!("node announcement not withdrawn in time; it will expire"),
    }
}

/// Announces the node every interval until `shutdown`, then withdraws it.
pub async fn run_announcer(shared: std::sync::Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(shared.settings.node_info_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(err) = announce(&shared).await {
                    tracing::debug!(error = %err, "node announcement failed; retrying next interval");
                }
            }
        }
    }
    withdraw(&shared).await;
}

/// Every node's info: this node's live counters and the others' latest announcements,
/// ordered by name.
pub async fn cluster_info(shared: &Shared) -> Result<Vec<NodeInfo>, BrokerError> {
    let own = shared.node.info(shared);
    let mut nodes: Vec<NodeInfo> = shared
        .broker
        .table_entries(NODES_TABLE)
        .await?
        .into_iter()
        .filter(|(uid, _)| *uid != own.uid)
        .filter_map(|(uid, json)| match serde_json::from_str(&json) {
            Ok(info) => Some(info),
            Err(err) => {
                tracing::debug!(%uid, error = %err, "unreadable node announcement skipped");
                None
            }
        })
        .collect();
    nodes.push(own);
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.uid.cmp(&b.uid)));
    Ok(nodes)
}

/// Active channels of every node matching `pattern`, with their subscriber counts added up.
pub async fn cluster_channels(
    shared: &Shared,
    pattern: &str,
) -> Result<BTreeMap<String, ChannelInfo>, BrokerError> {
    let own_uid = &shared.node.uid;
    let mut per_node: Vec<BTreeMap<String, u32>> = shared
        .broker
        .table_entries(CHANNELS_TABLE)
        .await?
        .into_iter()
        .filter(|(uid, _)| uid != own_uid)
        .filter_map(|(_, json)| serde_json::from_str(&json).ok())
        .collect();
    per_node.push(shared.node.channels());
    let mut channels: BTreeMap<String, ChannelInfo> = BTreeMap::new();
    for counts in per_node {
        for (channel, count) in counts {
            if count == 0 || !glob_match(pattern, &channel) {
                continue;
            }
            let entry = channels.entry(channel).or_default();
            entry.num_clients = entry.num_clients.saturating_add(count);
        }
    }
    Ok(channels)
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` one character, anything
/// else itself); an empty pattern matches everything.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn globs_match_runs_single_characters_and_literals() {
        assert!(glob_match("", "chat:lobby"));
        assert!(glob_match("chat:*", "chat:lobby"));
        assert!(glob_match("chat:*", "chat:"));
        assert!(!glob_match("chat:*", "tasks"));
        assert!(glob_match("*", "tasks"));
        assert!(glob_match("chat:l?bby", "chat:lobby"));
        assert!(!glob_match("chat:l?bby", "chat:lobbby"));
        assert!(glob_match("*#*", "notifications#42"));
        assert!(glob_match("*a*b", "xxaxxab"));
        assert!(!glob_match("*a*b", "xxaxxa"));
        assert!(glob_match("tasks", "tasks"));
        assert!(!glob_match("tasks", "tasks2"));
    }

    #[test]
    fn channel_counts_follow_joins_and_leaves() {
        let node = Node::new("n".to_owned());
        let lobby = ChannelName::chat("lobby").unwrap();
        node.channel_joined(&lobby);
        node.channel_joined(&lobby);
        node.channel_joined(&ChannelName::tasks());
        assert_eq!(node.channels()["chat:lobby"], 2);
        node.channel_left(&lobby);
        node.channel_left(&ChannelName::tasks());
        node.channel_left(&ChannelName::tasks());
        assert_eq!(
            node.channels().into_iter().collect::<Vec<_>>(),
            [("chat:lobby".to_owned(), 1)]
        );
        assert_eq!(node.channel_count(), 1);
    }
}

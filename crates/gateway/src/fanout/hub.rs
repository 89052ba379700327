//! The node's channel → subscribers map.
//!
//! Sharded by channel name; each shard is a `std::sync::RwLock`, held only for map
//! operations and for one delivery pass, never across an await. The fan-out task reads
//! (many deliveries may run concurrently with reads from other shards); subscribing and
//! unsubscribing write.
//!
//! Each channel entry also remembers the last stream position the node delivered, so the
//! dispatcher can tell when offsets jump (something was lost between Redis and this node).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use herald_common::channel::ChannelName;

use super::slot::Slot;
use super::{ConnId, Target};

const SHARDS: usize = 64;

/// One subscriber of a channel.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection.
    pub target: Arc<Target>,
    /// The subscription's delivery state.
    pub slot: Arc<Slot>,
    /// The client asked for join/leave pushes (and the namespace announces them).
    pub join_leave: bool,
}

/// Whether a publication follows the last one the node delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// Next in order (or the first one seen, or a channel without history).
    InOrder,
    /// An offset was skipped or the epoch changed: subscribers may have missed something.
    Gap,
    /// At or below the last delivered offset: a duplicate, skipped.
    Stale,
}

/// A channel's local subscribers.
#[derive(Debug, Default)]
pub struct ChannelEntry {
    /// Subscribers by connection.
    pub members: HashMap<ConnId, Member>,
    /// Epoch and offset of the last publication delivered.
    last: Mutex<Option<(String, u64)>>,
}

impl ChannelEntry {
    /// Checks a publication at (`epoch`, `offset`) against the last one and records it.
    pub fn advance(&self, epoch: &str, offset: u64) -> Continuity {
        if offset == 0 {
            return Continuity::InOrder;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let continuity = match &*last {
            None => Continuity::InOrder,
            Some((last_epoch, last_offset)) if last_epoch == epoch => {
                if offset == last_offset + 1 {
                    Continuity::InOrder
                } else if offset <= *last_offset {
                    return Continuity::Stale;
                } else {
                    Continuity::Gap
                }
            }
            Some(_) => Continuity::Gap,
        };
        match &mut *last {
            // Same epoch: only the offset moves (no allocation per publication).
            Some((last_epoch, last_offset)) if last_epoch == epoch => *last_offset = offset,
            other => *other = Some((epoch.to_owned(), offset)),
        }
        continuity
    }

    /// Forgets the last position (after a reported gap: the next publication starts over).
    pub fn reset(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Epoch and offset of the last publication the node delivered on this channel, if any
    /// since the last reset.
    pub fn last_delivered(&self) -> Option<(String, u64)> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether some positioned subscriber (one whose subscription reported a position, see
    /// [`Slot::start`]) is still live here.
    pub fn has_positioned(&self) -> bool {
        self.members
            .values()
            .any(|member| member.slot.start().is_some() && !member.slot.is_ended())
    }

    /// Whether the node's subscribers may be behind the stream position (`epoch`,
    /// `offset`): the last delivered publication is older (or of another epoch); with
    /// nothing delivered yet, some live positioned subscriber started before it.
    pub fn is_behind(&self, epoch: &str, offset: u64) -> bool {
        let behind = |(at_epoch, at_offset): (&str, u64)| at_epoch != epoch || at_offset < offset;
        if let Some((last_epoch, last_offset)) =
            &*self.last.lock().unwrap_or_else(PoisonError::into_inner)
        {
            return behind((last_epoch, *last_offset));
        }
        self.members.values().any(|member| {
            member
                .slot
                .start()
                .is_some_and(|start| behind(start) && !member.slot.is_ended())
        })
    }
}

/// Channel → local subscribers.
#[derive(Debug)]
pub struct Hub {
    shards: Box<[RwLock<HashMap<ChannelName, ChannelEntry>>]>,
    hasher: RandomState,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Hub {
    fn shard(&self, channel: &str) -> &RwLock<HashMap<ChannelName, ChannelEntry>> {
        let index = (self.hasher.hash_one(channel) % SHARDS as u64) as usize;
        &self.shards[index]
    }

    fn read_shard(&self, channel: &str) -> RwLockReadGuard<'_, HashMap<ChannelName, ChannelEntry>> {
        // Map operations cannot leave a shard half-updated, so a poisoned lock is usable.
        self.shard(channel)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_shard(
        &self,
        channel: &str,
    ) -> RwLockWriteGuard<'_, HashMap<ChannelName, ChannelEntry>> {
        self.shard(channel)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a subscriber; `false` when this connection is already subscribed.
    pub fn insert(&self, channel: &ChannelName, member: Member) -> bool {
        let mut shard = self.write_shard(channel.as_str());
        let entry = shard.entry(channel.clone()).or_default();
        if entry.members.contains_key(&member.target.id) {
            return false;
        }
        entry.members.insert(member.target.id, member);
        true
    }

    /// Removes a subscriber (dropping the channel when it was the last one); returns it.
    pub fn remove(&self, channel: &ChannelName, conn: ConnId) -> Option<Member> {
        let mut shard = self.write_shard(channel.as_str());
        let entry = shard.get_mut(channel.as_str())?;
        let member = entry.members.remove(&conn);
        if entry.members.is_empty() {
            shard.remove(channel.as_str());
        }
        member
    }

    /// Runs `f` on the channel's entry under the shard's read lock; `None` when nobody on
    /// this node is subscribed. `f` must not block.
    pub fn with_channel<R>(&self, channel: &str, f: impl FnOnce(&ChannelEntry) -> R) -> Option<R> {
        let shard = self.read_shard(channel);
        shard.get(channel).map(f)
    }

    /// Channels with at least one live positioned subscriber, at most `limit` of them,
    /// starting after the `skip` first ones in the hub's order (the position check walks
    /// the channels a slice per tick). Returns them with the number of positioned
    /// channels seen in all.
    pub fn positioned_channels(&self, skip: usize, limit: usize) -> (Vec<ChannelName>, usize) {
        let mut seen = 0usize;
        let mut channels = Vec::new();
        for shard in &self.shards {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            for (channel, entry) in shard.iter() {
                if !entry.has_positioned() {
                    continue;
                }
                if seen >= skip && channels.len() < limit {
                    channels.push(channel.clone());
                }
                seen += 1;
            }
        }
        (channels, seen)
    }

    /// Channels with at least one local subscriber.
    pub fn channel_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use herald_common::protocol::StreamPosition;

    use super::*;
    use crate::fanout::Format;
    use crate::fanout::slot::SlotKind;
    use crate::metrics::NodeStats;

    fn member() -> Member {
        Member {
            target: Arc::new(Target::new(
                Format::Protocol,
                1024,
                Arc::new(NodeStats::default()),
            )),
            slot: Arc::new(Slot::new(SlotKind::Client)),
            join_leave: false,
        }
    }

    #[test]
    fn offsets_in_order_pass_and_jumps_or_new_epochs_are_gaps() {
        let entry = ChannelEntry::default();
        assert_eq!(entry.advance("e", 5), Continuity::InOrder);
        assert_eq!(entry.advance("e", 6), Continuity::InOrder);
        assert_eq!(entry.advance("e", 6), Continuity::Stale);
        assert_eq!(entry.advance("e", 8), Continuity::Gap);
        assert_eq!(entry.advance("f", 1), Continuity::Gap);
        assert_eq!(entry.advance("f", 0), Continuity::InOrder);
        entry.reset();
        assert_eq!(entry.advance("f", 9), Continuity::InOrder);
    }

    #[test]
    fn the_position_check_compares_deliveries_else_positioned_starts() {
        let hub = Hub::default();
        let channel = ChannelName::tasks();
        let plain = member();
        assert!(hub.insert(&channel, plain.clone()));
        assert_eq!(hub.positioned_channels(0, 10), (Vec::new(), 0));
        let positioned = member();
        positioned.slot.set_positioned();
        let start = StreamPosition {
            epoch: "e".to_owned(),
            offset: 3,
        };
        positioned
            .slot
            .go_live(&positioned.target, None, Some(&start));
        assert!(hub.insert(&channel, positioned.clone()));
        assert_eq!(hub.positioned_channels(0, 10), (vec![channel.clone()], 1));
        assert_eq!(hub.positioned_channels(1, 10), (Vec::new(), 1));
        let behind = |epoch: &str, offset| {
            hub.with_channel("tasks", |entry| entry.is_behind(epoch, offset))
                .unwrap()
        };
        // Nothing delivered yet: the positioned start counts.
        assert!(!behind("e", 3));
        assert!(behind("e", 4));
        assert!(behind("f", 3));
        // Once something was delivered, the last delivery counts.
        hub.with_channel("tasks", |entry| entry.advance("e", 5));
        assert_eq!(
            hub.with_channel("tasks", ChannelEntry::last_delivered)
                .unwrap(),
            Some(("e".to_owned(), 5))
        );
        assert!(!behind("e", 5));
        assert!(behind("e", 6));
        // Ended subscriptions are not checked.
        positioned.slot.end();
        hub.with_channel("tasks", ChannelEntry::reset);
        assert!(!behind("e", 9));
        assert_eq!(hub.positioned_channels(0, 10), (Vec::new(), 0));
    }

    #[test]
    fn the_last_member_leaving_drops_the_channel() {
        let hub = Hub::default();
        let channel = ChannelName::tasks();
        let (a, b) = (member(), member());
        assert!(hub.insert(&channel, a.clone()));
        assert!(!hub.insert(&channel, a.clone()));
        assert!(hub.insert(&channel, b.clone()));
        assert_eq!(hub.with_channel("tasks", |e| e.members.len()), Some(2));
        assert!(hub.remove(&channel, a.target.id).is_some());
        assert!(hub.remove(&channel, a.target.id).is_none());
        assert!(hub.remove(&channel, b.target.id).is_some());
        assert_eq!(hub.channel_count(), 0);
    }
}

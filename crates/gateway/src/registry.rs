//! The node's open connections: the per-node, per-user and per-address (anonymous
//! connections) limits, and the index the control messages (revocation, server-side
//! disconnects) and shutdown use to reach connections.
//!
//! A connection holds an [`Admission`] for its whole life; dropping it (however the
//! connection ends) releases its place, so the counts cannot leak.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use herald_common::ids::UserId;

use crate::fanout::{ConnId, Target};

/// A limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    /// The node holds its maximum number of connections.
    #[error("node connection limit reached")]
    Node,
    /// The user holds their maximum number of connections on this node.
    #[error("user connection limit reached")]
    User,
    /// The client address holds its maximum number of anonymous connections on this node.
    #[error("anonymous connection limit of the address reached")]
    Address,
}

#[derive(Debug, Default)]
struct Index {
    all: HashMap<ConnId, Arc<Target>>,
    by_user: HashMap<UserId, Vec<Arc<Target>>>,
    /// Anonymous connections per client address.
    anonymous_by_ip: HashMap<IpAddr, usize>,
}

/// Open connections of this node.
#[derive(Debug)]
pub struct Registry {
    count: AtomicUsize,
    max_connections: usize,
    max_per_user: usize,
    max_anonymous_per_ip: usize,
    index: Mutex<Index>,
}

impl Registry {
    /// A registry enforcing these limits.
    pub fn new(max_connections: usize, max_per_user: usize, max_anonymous_per_ip: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            max_connections,
            max_per_user,
            max_anonymous_per_ip,
            index: Mutex::new(Index::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Map operations cannot leave the index half-updated.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits `target` under the per-node limit.
    pub fn admit(self: &Arc<Self>, target: &Arc<Target>) -> Result<Admission, LimitReached> {
        let previous = self.count.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max_connections {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitReached::Node);
        }
        self.lock().all.insert(target.id, Arc::clone(target));
        Ok(Admission {
            registry: Arc::clone(self),
            target: Arc::clone(target),
            user: None,
            anonymous_ip: None,
        })
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open connections of `user`.
    pub fn of_user(&self, user: &UserId) -> Vec<Arc<Target>> {
        self.lock().by_user.get(user).cloned().unwrap_or_default()
    }

    /// Distinct users with an authenticated connection.
    pub fn user_count(&self) -> usize {
        self.lock().by_user.len()
    }

    /// Anonymous connections of `ip`.
    pub fn anonymous_of(&self, ip: &IpAddr) -> usize {
        self.lock().anonymous_by_ip.get(ip).copied().unwrap_or(0)
    }

    /// Every open connection.
    pub fn all(&self) -> Vec<Arc<Target>> {
        self.lock().all.values().cloned().collect()
    }
}

/// A connection's place in the registry; released on drop.
#[derive(Debug)]
pub struct Admission {
    registry: Arc<Registry>,
    target: Arc<Target>,
    user: Option<UserId>,
    anonymous_ip: Option<IpAddr>,
}

impl Admission {
    /// Files the connection under `user`, within the per-user limit (once).
    pub fn assign_user(&mut self, user: UserId) -> Result<(), LimitReached> {
        if self.user.is_some() {
            return Ok(());
        }
        let mut index = self.registry.lock();
        let connections = index.by_user.entry(user).or_default();
        if connections.len() >= self.registry.max_per_user {
            if connections.is_empty() {
                index.by_user.remove(&user);
            }
            return Err(LimitReached::User);
        }
        connections.push(Arc::clone(&self.target));
        self.user = Some(user);
        Ok(())
    }

    /// Counts the connection as anonymous from `ip`, within the per-address limit of
    /// anonymous connections (once; never for a connection filed under a user).
    pub fn assign_anonymous(&mut self, ip: IpAddr) -> Result<(), LimitReached> {
        if self.user.is_some() || self.anonymous_ip.is_some() {
            return Ok(());
        }
        let mut index = self.registry.lock();
        let count = index.anonymous_by_ip.entry(ip).or_default();
        if *count >= self.registry.max_anonymous_per_ip {
            if *count == 0 {
                index.anonymous_by_ip.remove(&ip);
            }
            return Err(LimitReached::Address);
        }
        *count += 1;
        self.anonymous_ip = Some(ip);
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut index = self.registry.lock();
        index.all.remove(&self.target.id);
        if let Some(user) = self.user
            && let Some(connections) = index.by_user.get_mut(&user)
        {
            connections.retain(|c| c.id != self.target.id);
            if connections.is_empty() {
                index.by_user.remove(&user);
            }
        }
        if let Some(ip) = self.anonymous_ip
            && let Some(count) = index.anonymous_by_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                index.anonymous_by_ip.remove(&ip);
            }
        }
        drop(index);
        self.registry.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::fanout::Format;
    use crate::metrics::NodeStats;

    fn target() -> Arc<Target> {
        Arc::new(Target::new(
            Format::Protocol,
            16,
            Arc::new(NodeStats::default()),
        ))
    }

    #[test]
    fn node_and_user_limits_hold_and_dropping_releases_the_place() {
        let registry = Arc::new(Registry::new(2, 1, 1));
        let alice = UserId::new();
        let mut first = registry.admit(&target()).unwrap();
        first.assign_user(alice).unwrap();
        let mut second = registry.admit(&target()).unwrap();
        assert_eq!(second.assign_user(alice), Err(LimitReached::User));
        assert_eq!(registry.admit(&target()).unwrap_err(), LimitReached::Node);
        assert_eq!(registry.of_user(&alice).len(), 1);
        assert_eq!(registry.user_count(), 1);
        drop(first);
        assert!(registry.of_user(&alice).is_empty());
        second.assign_user(alice).unwrap();
        assert_eq!(registry.len(), 1);
        drop(second);
        assert!(registry.is_empty());
        assert!(registry.all().is_empty());
    }

    #[test]
    fn anonymous_connections_are_limited_per_address_and_released_on_drop() {
        let registry = Arc::new(Registry::new(10, 10, 2));
        let fan: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        let mut first = registry.admit(&target()).unwrap();
        first.assign_anonymous(fan).unwrap();
        let mut second = registry.admit(&target()).unwrap();
        second.assign_anonymous(fan).unwrap();
        let mut third = registry.admit(&target()).unwrap();
        assert_eq!(third.assign_anonymous(fan), Err(LimitReached::Address));
        third.assign_anonymous(other).unwrap();
        assert_eq!(registry.anonymous_of(&fan), 2);
        assert_eq!(
            registry.user_count(),
            0,
            "anonymous connections have no user"
        );
        drop(first);
        assert_eq!(registry.anonymous_of(&fan), 1);
        let mut fourth = registry.admit(&target()).unwrap();
        fourth.assign_anonymous(fan).unwrap();
        drop((second, third, fourth));
        assert_eq!(registry.anonymous_of(&fan), 0);
        assert_eq!(registry.anonymous_of(&other), 0);
        assert!(registry.is_empty());
    }
}

//! Names of every Redis key and pub/sub channel the broker uses.
//!
//! All names start with the configured prefix. The keys of one Herald channel share the
//! hash tag `{<channel>}` so a script can touch them together in Redis Cluster, and the
//! pub/sub channel carries the same tag for sharded pub/sub. Channel names never contain
//! braces (see `ChannelName`), and the prefix is checked not to either.
//!
//! | name | what |
//! |---|---|
//! | `<prefix>{<channel>}` | pub/sub channel of `<channel>` |
//! | `<prefix>{<channel>}:stream` | history stream (entry id `<offset>-0`, field `d`) |
//! | `<prefix>{<channel>}:meta` | hash: `e` epoch, `o` last offset |
//! | `<prefix>{<channel>}:idem:<key>` | result of the first publish with an idempotency key |
//! | `<prefix>{<channel>}:presence` | hash: client id -> client info JSON |
//! | `<prefix>{<channel>}:presence:exp` | sorted set: client id by expiry (ms) |
//! | `<prefix>control` | pub/sub channel for node-wide control messages |
//! | `<prefix><stream>` | a domain-event stream, e.g. `herald:events:tasks` |
//! | `<prefix><stream>:alive:<group>:<consumer>` | liveness mark of a consumer of the stream's group (expiring) |
//! | `<prefix>kv:<key>` | key-value entries (signing-key sets) |
//! | `<prefix>table:{<table>}` | hash: field -> value of a shared table (gateway nodes) |
//! | `<prefix>table:{<table>}:exp` | sorted set: field by expiry (ms) |

use herald_common::channel::ChannelName;

use crate::error::{BrokerError, BrokerResult};

/// Builds the prefixed names.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The keys of one channel.
#[derive(Debug)]
pub(crate) struct ChannelKeys {
    /// `<prefix>{<channel>}`, also the pub/sub channel.
    pub(crate) tag: String,
}

impl ChannelKeys {
    pub(crate) fn pubsub(&self) -> &str {
        &self.tag
    }
    pub(crate) fn stream(&self) -> String {
        format!("{}:stream", self.tag)
    }
    pub(crate) fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }
    pub(crate) fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.tag)
    }
    pub(crate) fn presence(&self) -> String {
        format!("{}:presence", self.tag)
    }
    pub(crate) fn presence_expiry(&self) -> String {
        format!("{}:presence:exp", self.tag)
    }
}

impl Keys {
    /// Checks and keeps `prefix`.
    pub(crate) fn new(prefix: &str) -> BrokerResult<Self> {
        if prefix.contains(['{', '}']) {
            return Err(BrokerError::Config(format!(
                "redis prefix {prefix:?} must not contain braces (they would break hash tags)"
            )));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn channel(&self, channel: &ChannelName) -> ChannelKeys {
        ChannelKeys {
            tag: format!("{}{{{}}}", self.prefix, channel.as_str()),
        }
    }

    pub(crate) fn control(&self) -> String {
        format!("{}control", self.prefix)
    }

    pub(crate) fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn consumer_alive(&self, stream: &str, group: &str, consumer: &str) -> String {
        format!("{}{stream}:alive:{group}:{consumer}", self.prefix)
    }

    pub(crate) fn kv(&self, key: &str) -> String {
        format!("{}kv:{key}", self.prefix)
    }

    pub(crate) fn table(&self, table: &str) -> String {
        format!("{}table:{{{table}}}", self.prefix)
    }

    pub(crate) fn table_expiry(&self, table: &str) -> String {
        format!("{}table:{{{table}}}:exp", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn keys_of_a_channel_share_its_hash_tag() {
        let keys = Keys::new("herald:").unwrap();
        let channel = keys.channel(&ChannelName::parse("chat:42").unwrap());
        assert_eq!(channel.pubsub(), "herald:{chat:42}");
        assert_eq!(channel.stream(), "herald:{chat:42}:stream");
        assert_eq!(channel.meta(), "herald:{chat:42}:meta");
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        assert!(Keys::new("a{b}:").is_err());
    }
}

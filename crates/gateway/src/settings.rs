//! The gateway's settings (design sections 6 and 8): defaults < `--config FILE` < `HERALD_*`.
//!
//! The fixed names of the design keep their top-level keys (`HERALD_PING_INTERVAL`,
//! `HERALD_PONG_TIMEOUT`, `HERALD_CONNECT_TIMEOUT`, `HERALD_ALLOWED_ORIGINS`, ...). Limits live
//! in the `limits` section (`HERALD_LIMITS__MAX_CHANNELS=64`) and the channel table in the
//! `channels` section, one entry per namespace (`HERALD_CHANNELS__CHAT__HISTORY_SIZE=100`).

use std::path::PathBuf;
use std::time::Duration;

use herald_broker::HistoryPolicy;
use herald_service::config::{self, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_URL, seconds};
use herald_service::{JwtSettings, Secret, TrustedProxies};
use serde::{Deserialize, Serialize};

/// Default listen address of the standalone service.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Everything the gateway can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// `host:port` to bind; port 0 picks any free port (`HERALD_LISTEN`).
    pub listen: String,
    /// HTTP worker threads (`HERALD_WORKERS`); `None`: one per core.
    pub workers: Option<usize>,
    /// Redis URL (`HERALD_REDIS_URL`); may carry a password, so never logged.
    #[serde(skip_serializing)]
    pub redis_url: Secret<String>,
    /// Prefix of every Redis key and channel (`HERALD_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Token issuer, audience and leeway (`HERALD_JWT__*`).
    pub jwt: JwtSettings,
    /// Server ping interval (`HERALD_PING_INTERVAL`, seconds).
    #[serde(with = "seconds")]
    pub ping_interval: Duration,
    /// How long a client has to answer a ping (`HERALD_PONG_TIMEOUT`, seconds).
    #[serde(with = "seconds")]
    pub pong_timeout: Duration,
    /// How long a new connection has to send `connect` (`HERALD_CONNECT_TIMEOUT`, seconds).
    #[serde(with = "seconds")]
    pub connect_timeout: Duration,
    /// Origins allowed to open WebSockets (`HERALD_ALLOWED_ORIGINS`, comma-separated; `*`
    /// allows any). Empty: only pages served from the gateway's own host.
    #[serde(deserialize_with = "config::comma_separated")]
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`HERALD_TRUSTED_PROXIES`).
    #[serde(skip_serializing)]
    pub trusted_proxies: TrustedProxies,
    /// Folder of the web client served at `/` (`HERALD_WEB_DIR`); skipped when missing.
    pub web_dir: PathBuf,
    /// Connection and message limits (`HERALD_LIMITS__*`).
    pub limits: Limits,
    /// The channel table (`HERALD_CHANNELS__<NAMESPACE>__*`).
    pub channels: ChannelSettings,
    /// WebSocket endpoint switches (`HERALD_WEBSOCKET__*`).
    pub websocket: WebSocketSettings,
    /// Key of the server API (`HERALD_API_KEY`); `None` disables `/api/*` (HTTP 404).
    #[serde(skip_serializing)]
    pub api_key: Option<Secret<String>>,
    /// On SIGTERM, clients are closed with 3001 spread evenly over this window
    /// (`HERALD_DRAIN_WINDOW`, seconds).
    #[serde(with = "seconds")]
    pub drain_window: Duration,
    /// This node's name in `/api/info` (`HERALD_NODE_NAME`); default: `HOSTNAME`, else
    /// `herald-gateway`.
    pub node_name: Option<String>,
    /// How often the node announces its counts to the other nodes (`/api/info`,
    /// `/api/channels`) through the broker (`HERALD_NODE_INFO_INTERVAL`, seconds); an
    /// announcement lives three intervals.
    #[serde(with = "seconds")]
    pub node_info_interval: Duration,
    /// How often the node compares what it delivered on channels with positioned
    /// subscribers with the streams' tops (`HERALD_POSITION_CHECK_INTERVAL`, seconds; 0
    /// disables it). A publication still missing at the next check makes them recover.
    #[serde(with = "seconds")]
    pub position_check_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            workers: None,
            redis_url: Secret::new(DEFAULT_REDIS_URL.to_owned()),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            jwt: JwtSettings::default(),
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            web_dir: PathBuf::from("web/dist"),
            limits: Limits::default(),
            channels: ChannelSettings::default(),
            websocket: WebSocketSettings::default(),
            api_key: None,
            drain_window: Duration::from_secs(10),
            node_name: None,
            node_info_interval: Duration::from_secs(5),
            position_check_interval: Duration::from_secs(10),
        }
    }
}

/// Limits of connections and messages (design section 6).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Largest inbound WebSocket message in bytes; bigger closes with 1009.
    pub max_message_size: usize,
    /// Channels per connection, server-side ones included; more is error 106.
    pub max_channels: usize,
    /// Publications per second a connection may make (sustained); more is error 111.
    pub publish_rate: f64,
    /// Publications a connection may make in a burst.
    pub publish_burst: u32,
    /// Connections this node accepts; more closes with 3504 (or HTTP 503 on the simple
    /// endpoints).
    pub max_connections: usize,
    /// Connections one user may hold on this node; more closes with 3504 (HTTP 429 on the
    /// simple endpoints).
    pub max_connections_per_user: usize,
    /// Anonymous connections (no token, reading namespaces that allow it) one client IP
    /// address may hold on this node; more closes with 3504 (HTTP 429 on the simple
    /// endpoints). The address honours `HERALD_TRUSTED_PROXIES`.
    pub max_anonymous_connections_per_ip: usize,
    /// Bytes queued for one connection; beyond it the connection is closed with 3008.
    pub send_queue_size: usize,
    /// How long after its token expired a connection that did not refresh is closed with
    /// 3005 (seconds): the SDK refreshes when the token expires, this is its margin.
    #[serde(with = "seconds")]
    pub expired_close_delay: Duration,
    /// Presence entries expire this long after their last refresh (seconds); the gateway
    /// refreshes them three times per period while the client stays.
    #[serde(with = "seconds")]
    pub presence_ttl: Duration,
    /// Most publications one recovery or history read returns.
    pub history_max: usize,
    /// Longest wait for a close frame to reach a client that does not read (seconds).
    #[serde(with = "seconds")]
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_channels: 128,
            publish_rate: 10.0,
            publish_burst: 20,
            max_connections: 50_000,
            max_connections_per_user: 64,
            max_anonymous_connections_per_ip: 100,
            send_queue_size: 1024 * 1024,
            expired_close_delay: Duration::from_secs(25),
            presence_ttl: Duration::from_secs(60),
            history_max: 300,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// One namespace of the channel table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct NamespaceSettings {
    /// Publications kept in history (0: none, and no recovery).
    pub history_size: usize,
    /// How long the history lives after the last publication (seconds).
    #[serde(with = "seconds")]
    pub history_ttl: Duration,
    /// Whether subscribers are listed in presence.
    pub presence: bool,
    /// Whether joins and leaves are announced to subscribers that ask for them.
    pub join_leave: bool,
    /// Whether subscribers may publish (otherwise only the server does, error 103).
    pub publish: bool,
    /// Whether connections without a token may subscribe and read history (never publish,
    /// never presence). Honoured for namespaces not bound to a user: never for
    /// `notifications`.
    pub anonymous: bool,
}

impl Default for NamespaceSettings {
    fn default() -> Self {
        Self {
            history_size: 300,
            history_ttl: Duration::from_secs(24 * 60 * 60),
            presence: false,
            join_leave: false,
            publish: false,
            anonymous: false,
        }
    }
}

impl NamespaceSettings {
    /// The broker's history policy for this namespace.
    pub fn history(&self) -> HistoryPolicy {
        HistoryPolicy::new(self.history_size, self.history_ttl)
    }
}

/// WebSocket endpoint switches (`HERALD_WEBSOCKET__*`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WebSocketSettings {
    /// Serve `/ws/echo` (`HERALD_WEBSOCKET__ECHO`, default on); off: 404.
    pub echo: bool,
    /// Accept permessage-deflate offers on every WebSocket endpoint
    /// (`HERALD_WEBSOCKET__COMPRESSION`, default off: some compressed messages fail to
    /// inflate in the Autobahn suite's client, see docs/configuration.md).
    pub compression: bool,
    /// Messages shorter than this many bytes go uncompressed
    /// (`HERALD_WEBSOCKET__COMPRESSION_MIN_SIZE`, default 128).
    pub compression_min_size: usize,
    /// zlib compression level, 0 to 9 (`HERALD_WEBSOCKET__COMPRESSION_LEVEL`, default 1;
    /// higher values are capped at 9).
    pub compression_level: u32,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            echo: true,
            compression: false,
            compression_min_size: 128,
            compression_level: 1,
        }
    }
}

impl WebSocketSettings {
    /// What the handshakes offer for permessage-deflate; `None` when it is switched off.
    pub fn compression(&self) -> Option<crate::transport::deflate::Config> {
        self.compression
            .then_some(crate::transport::deflate::Config {
                level: self.compression_level.min(9),
                min_size: self.compression_min_size,
            })
    }
}

/// The channel table of design section 3, one entry per namespace.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelSettings {
    /// `chat:{room}`: any signed-in user subscribes and publishes; presence, join/leave.
    pub chat: NamespaceSettings,
    /// `tasks`: any signed-in user subscribes; the server publishes.
    pub tasks: NamespaceSettings,
    /// `notifications#{user}`: server-side subscription of its user only.
    pub notifications: NamespaceSettings,
    /// `public:{name}`: any signed-in user subscribes (anonymous readers too when
    /// `anonymous` is on); the server publishes.
    pub public: NamespaceSettings,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            chat: NamespaceSettings {
                presence: true,
                join_leave: true,
                publish: true,
                ..NamespaceSettings::default()
            },
            tasks: NamespaceSettings::default(),
            notifications: NamespaceSettings {
                history_ttl: Duration::from_secs(7 * 24 * 60 * 60),
                ..NamespaceSettings::default()
            },
            public: NamespaceSettings {
                history_size: 100,
                history_ttl: Duration::from_secs(60 * 60),
                ..NamespaceSettings::default()
            },
        }
    }
}

impl Settings {
    /// Loads the settings: defaults < `config_file` < `HERALD_*` variables.
    pub fn load(config_file: Option<&std::path::Path>) -> Result<Self, config::ConfigError> {
        config::load(config_file)
    }

    /// The node's name in `/api/info`.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "herald-gateway".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use herald_test_support::changed_paths;

    use super::Settings;

    #[test]
    fn a_namespace_given_in_part_keeps_its_own_defaults_for_the_rest() {
        // chat's documented TTL alone: chat keeps presence, join/leave and client publish.
        assert!(
            changed_paths::<Settings>(&[("HERALD_CHANNELS__CHAT__HISTORY_TTL", "86400")])
                .is_empty()
        );
        // notifications keeps its 7-day history when only its size is set.
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_CHANNELS__NOTIFICATIONS__HISTORY_SIZE", "10")]),
            ["channels.notifications.history_size"]
        );
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_CHANNELS__TASKS__PRESENCE", "true")]),
            ["channels.tasks.presence"]
        );
    }

    #[test]
    fn public_feeds_keep_their_short_history_when_anonymous_readers_are_allowed() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_CHANNELS__PUBLIC__ANONYMOUS", "true")]),
            ["channels.public.anonymous"]
        );
        // The documented defaults given explicitly change nothing.
        assert!(
            changed_paths::<Settings>(&[
                ("HERALD_CHANNELS__PUBLIC__HISTORY_SIZE", "100"),
                ("HERALD_CHANNELS__PUBLIC__HISTORY_TTL", "3600"),
                ("HERALD_CHANNELS__PUBLIC__ANONYMOUS", "false"),
                ("HERALD_LIMITS__MAX_ANONYMOUS_CONNECTIONS_PER_IP", "100"),
            ])
            .is_empty()
        );
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_LIMITS__MAX_ANONYMOUS_CONNECTIONS_PER_IP", "5")]),
            ["limits.max_anonymous_connections_per_ip"]
        );
    }

    #[test]
    fn the_limits_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_LIMITS__MAX_CHANNELS", "4")]),
            ["limits.max_channels"]
        );
    }

    #[test]
    fn the_jwt_section_given_in_part_keeps_its_defaults_for_the_rest() {
        assert_eq!(
            changed_paths::<Settings>(&[("HERALD_JWT__AUDIENCE", "crm")]),
            ["jwt.audience"]
        );
    }
}

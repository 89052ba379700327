//! `herald-service`: the process plumbing every Herald service shares, so that auth,
//! tasks-api, notifier, gateway and the embedded `herald` binary write it once.
//!
//! Layout:
//! - [`config`]: layered typed settings (defaults < `--config FILE` < `HERALD_*`), shared
//!   setting types ([`JwtSettings`], [`TrustedProxies`]) and [`Secret`] for values never logged.
//! - [`telemetry`]: JSON logs filtered by `RUST_LOG`, and OTLP trace export when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - [`trace`]: the W3C trace context between processes (spans' parents from `traceparent`,
//!   spans' contexts into events and publications) and the HTTP server span middleware.
//! - [`metrics`]: the process-wide Prometheus recorder, `/metrics`, an HTTP metrics middleware.
//! - [`health`]: `/healthz`, `/readyz` with pluggable [`Readiness`] checks, and
//!   [`configure_ops`] mounting both plus `/metrics`.
//! - [`error`]: [`ApiError`], the design's REST error body, and extractor configs that turn
//!   malformed or oversized bodies into 400/413/415/422 JSON errors; [`FormOrJson`].
//! - [`client_ip`]: the client's address honouring `HERALD_TRUSTED_PROXIES`.
//! - [`shutdown`]: a `CancellationToken` cancelled on SIGTERM/SIGINT.
//! - [`tokens`]: [`TokenVerifier`] (the shared verifier kept up to date from the broker) and
//!   the [`Authenticated`] extractor for REST handlers.
//! - [`openapi`]: the OpenAPI document of routes declared with `utoipa-actix-web`, and its
//!   `GET` handler.
//! - [`component`]: one way to compose a service: the [`Component`] trait (routes,
//!   readiness, drain and stop), its [`Background`] loops, the [`Context`] a process shares,
//!   and [`Service`], a component built from its settings.
//! - [`standalone`]: the one runner: a [`Composition`] of components served on one port
//!   ([`Standalone`]), and [`Application`], one service as its own process.
//! - [`server`]: the HTTP server every process runs, with connection upgrades (WebSockets)
//!   taken off the HTTP/1 dispatcher.
//! - `db` (feature `db`): which database a URL names, the Postgres and SQLite pools, and
//!   "now" at the stores' precision.

pub mod client_ip;
pub mod component;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod standalone;
pub mod telemetry;
pub mod tokens;
pub mod trace;

pub use client_ip::{ClientIp, TrustedProxies};
pub use component::{Background, Component, Context, Service};
pub use config::{ConfigArgs, ConfigError, Environment, ExternalTokenSettings, JwtSettings};
pub use error::{ApiError, FormOrJson};
pub use health::{Readiness, configure_ops};
pub use secret::Secret;
pub use standalone::{Application, Composition, Standalone};
pub use tokens::{Authenticated, TokenVerifier};

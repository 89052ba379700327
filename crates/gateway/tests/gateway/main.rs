//! The gateway booted for real (HTTP server, WebSockets on the bare socket, Redis) and driven
//! over WebSockets.
//! Every test gets its own gateway and Redis key prefix, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anonymous;
mod api;
mod cluster;
mod deflate;
mod drain;
mod follower;
mod frames;
mod http;
mod limits;
mod pipelining;
mod position;
mod processes;
mod protocol;
mod recovery;
mod simple_endpoints;
mod slow_consumer;
mod support;
mod tokens;

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Tests of herald-notifier: the consumer in this process (in-memory broker and real
//! Redis), the real binary killed and replicated, and the whole path from `POST /tasks`
//! through the outbox to the publications, on real Redis and Postgres (see `helpers`).

mod helpers;

mod consumer;
mod end_to_end;
mod processes;

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Black-box tests of herald-tasks-api: the real service on port 0, a fresh Postgres database
//! (or SQLite file) and a Redis namespace per test (see `helpers`), plus the store suite that
//! runs against Postgres and SQLite alike.

mod helpers;

mod create;
mod list;
mod ops;
mod outbox;
mod read;
mod store;
mod tokens;
mod update;

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Black-box tests of herald-auth: the real service on port 0, a fresh Postgres database per
//! test and a Redis namespace per test (see `helpers`), plus the store suite that runs against
//! Postgres and SQLite alike.

mod helpers;

mod accounts;
mod forged_tokens;
mod keys;
mod logs;
mod ops;
mod refresh;
mod register;
mod store;
mod token;

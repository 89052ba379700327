//! Small utilities shared by the implementations.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rand::Rng;
use rand::distr::Alphanumeric;

/// Length of a generated epoch.
const EPOCH_LEN: usize = 8;

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that could panic, so the data behind a poisoned lock is valid.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new random epoch: 8 alphanumeric characters.
pub(crate) fn new_epoch() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(EPOCH_LEN)
        .map(char::from)
        .collect()
}

/// Whole milliseconds of a duration, at least 1 (Redis rejects a zero expiry).
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

//! Locking shared state.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a panic poisoned it: the state taskflow guards is consistent between statements (a
/// panicking holder leaves no half-made change), and one panic must not take every worker down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

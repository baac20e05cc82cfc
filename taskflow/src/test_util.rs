//! Test support (feature `test-util`): what a test suite of an application built on taskflow may check.
//!
//! Enable it in the dev-dependencies only: `taskflow = { version = "...", features = ["test-util"] }`. It also adds
//! [`StepContext::for_test`](crate::StepContext::for_test), to unit-test a step without an engine.

use std::sync::atomic::Ordering;

/// How many task drivers panicked in this process, on every worker (see
/// [`Worker::driver_panics`](crate::Worker::driver_panics)). A driver panic is an engine bug that the worker survives
/// (it releases the claim and another driver takes over), so a test suite checks that this stays 0.
pub fn driver_panics() -> usize {
    crate::engine::DRIVER_PANICS.load(Ordering::Relaxed)
}

//! Test support shared by the integration tests: backends to run the semantic suite on, and steps built from
//! closures.
//!
//! The semantic suite is written once as `async fn scenario(backend: TestBackend)` functions and instantiated for
//! every backend by [`backend_tests!`]: a `memory` module always, an `etcd` module with the `etcd` feature.

use std::sync::Arc;
use taskflow::Backend;

pub mod event_log;
pub mod hooks;

/// A private etcd server and backends on it (feature `etcd`).
#[cfg(feature = "etcd")]
pub mod etcd;

/// A backend for one test, with whatever keeps it alive (e.g. a private etcd server).
pub struct TestBackend {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// Dropped with the test (stops servers, removes data dirs).
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl TestBackend {
    /// An engine builder on this backend, without link-time registrations (each test registers what it uses).
    pub fn engine(&self) -> taskflow::EngineBuilder {
        taskflow::Engine::builder()
            .shared_backend(Arc::clone(&self.backend))
            .without_inventory()
    }
}

/// A fresh in-memory backend.
pub async fn memory() -> TestBackend {
    TestBackend {
        backend: Arc::new(taskflow::MemoryBackend::new()),
        guard: None,
    }
}

/// Fails if a task driver panicked anywhere in this test process: the worker survives such an engine bug (another
/// driver takes over), so a scenario would pass without this check.
pub fn assert_no_engine_bug() {
    assert_eq!(
        taskflow::test_util::driver_panics(),
        0,
        "a task driver panicked (an engine bug): see `worker bug` in the log"
    );
}

/// Instantiates scenario functions `async fn name(backend: TestBackend)` as tests on every backend; each also fails
/// on an engine bug ([`assert_no_engine_bug`]).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::memory().await).await;
                    $crate::assert_no_engine_bug();
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::etcd::backend().await).await;
                    $crate::assert_no_engine_bug();
                }
            )*
        }
    };
}

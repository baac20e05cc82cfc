//! Test support shared by the integration tests (the etcd harness lives here).

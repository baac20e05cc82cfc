//! Mapping etcd-client errors to [`BackendError`]s.

use crate::error::BackendError;
use std::fmt;

/// A failed etcd request, cheap to clone (one batch failure is reported to every request in it).
#[derive(Debug, Clone)]
pub(crate) enum Fail {
    /// Transport failure, timeout, no leader, server busy: retry later.
    Unavailable(String),
    /// The lease of the request is gone.
    LeaseNotFound(String),
    /// The request was compacted away (a read at an old revision).
    Compacted(String),
    /// Anything else (invalid request, permission denied, ...).
    Other(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) | Self::LeaseNotFound(m) | Self::Compacted(m) | Self::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

impl From<etcd_client::Error> for Fail {
    fn from(error: etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        // gRPC status codes (tonic is not re-exported by etcd-client).
        const CANCELLED: i32 = 1;
        const UNKNOWN: i32 = 2;
        const DEADLINE_EXCEEDED: i32 = 4;
        const NOT_FOUND: i32 = 5;
        const RESOURCE_EXHAUSTED: i32 = 8;
        const ABORTED: i32 = 10;
        const OUT_OF_RANGE: i32 = 11;
        const INTERNAL: i32 = 13;
        const UNAVAILABLE: i32 = 14;
        let message = format!("etcd: {error}");
        match &error {
            E::GRpcStatus(status) => {
                let code: i32 = status.code().into();
                match code {
                    NOT_FOUND if status.message().contains("lease") => Self::LeaseNotFound(message),
                    OUT_OF_RANGE if status.message().contains("compacted") => {
                        Self::Compacted(message)
                    }
                    CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED
                    | INTERNAL | UNAVAILABLE => Self::Unavailable(message),
                    _ => Self::Other(message),
                }
            }
            E::LeaseKeepAliveError(m) if m.contains("not found") => Self::LeaseNotFound(message),
            E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => {
                Self::Unavailable(message)
            }
            _ => Self::Other(message),
        }
    }
}

impl From<Fail> for BackendError {
    fn from(fail: Fail) -> Self {
        match fail {
            Fail::Unavailable(m) | Fail::Compacted(m) => BackendError::Unavailable(m),
            Fail::LeaseNotFound(m) => BackendError::SessionClosed(m),
            Fail::Other(m) => BackendError::Other(m),
        }
    }
}

impl From<etcd_client::Error> for BackendError {
    fn from(error: etcd_client::Error) -> Self {
        Fail::from(error).into()
    }
}

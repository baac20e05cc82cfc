//! Mapping etcd-client errors to [`BackendError`]s.

use crate::error::{BackendError, ErrorSource};
use std::fmt;
use std::sync::Arc;

/// A failed etcd request, cheap to clone (one batch failure is reported to every request in it).
#[derive(Debug, Clone)]
pub(crate) enum Fail {
    /// Transport failure, timeout, no leader, server busy: retry later.
    Unavailable(Cause),
    /// etcd is out of space (`NOSPACE`): writes fail until an operator frees space.
    NoSpace(Cause),
    /// The lease of the request is gone.
    LeaseNotFound(Cause),
    /// The request was compacted away (a read at an old revision).
    Compacted(Cause),
    /// Anything else (invalid request, permission denied, ...).
    Other(Cause),
}

/// What went wrong: a message, and the etcd-client error behind it when there is one.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    message: String,
    source: Option<Arc<etcd_client::Error>>,
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Fail {
    /// An [`Unavailable`](Self::Unavailable) failure saying `message`, caused by `cause`: keeps the etcd-client error
    /// behind it, if any.
    pub(crate) fn unavailable_because(message: String, cause: &Fail) -> Self {
        Self::Unavailable(Cause {
            message,
            source: cause.cause().source.clone(),
        })
    }

    fn cause(&self) -> &Cause {
        match self {
            Self::Unavailable(c)
            | Self::NoSpace(c)
            | Self::LeaseNotFound(c)
            | Self::Compacted(c)
            | Self::Other(c) => c,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause().fmt(f)
    }
}

/// What etcd answers to a write once its database reached `--quota-backend-bytes` (and to every write while its
/// `NOSPACE` alarm is raised).
const NO_SPACE: &str = "database space exceeded";

/// What an operator does about [`NO_SPACE`].
const NO_SPACE_REMEDY: &str = "etcd refuses writes until space is freed: compact its history (`etcdctl compact \
    <revision>`, or run it with `--auto-compaction-retention`) and defragment it (`etcdctl defrag`), or raise its \
    `--quota-backend-bytes`; then disarm its NOSPACE alarm (`etcdctl alarm disarm`)";

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
        let kind: fn(Cause) -> Self = match &error {
            E::GRpcStatus(status) => {
                let code: i32 = status.code().into();
                match code {
                    RESOURCE_EXHAUSTED if status.message().contains(NO_SPACE) => {
                        return Self::NoSpace(Cause {
                            message: format!("etcd: {error}. {NO_SPACE_REMEDY}"),
                            source: Some(Arc::new(error)),
                        });
                    }
                    NOT_FOUND if status.message().contains("lease") => Self::LeaseNotFound,
                    OUT_OF_RANGE if status.message().contains("compacted") => Self::Compacted,
                    CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED
                    | INTERNAL | UNAVAILABLE => Self::Unavailable,
                    _ => Self::Other,
                }
            }
            E::LeaseKeepAliveError(m) if m.contains("not found") => Self::LeaseNotFound,
            E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => {
                Self::Unavailable
            }
            _ => Self::Other,
        };
        kind(Cause {
            message: format!("etcd: {error}"),
            source: Some(Arc::new(error)),
        })
    }
}

impl From<Fail> for BackendError {
    fn from(fail: Fail) -> Self {
        match fail {
            Fail::Unavailable(cause) | Fail::Compacted(cause) => BackendError::Unavailable {
                reason: cause.message,
                source: cause.source.map(|source| ErrorSource::shared(source)),
            },
            Fail::NoSpace(cause) => BackendError::NoSpace {
                reason: cause.message,
                source: cause.source.map(|source| ErrorSource::shared(source)),
            },
            Fail::LeaseNotFound(cause) => BackendError::SessionClosed(cause.message),
            Fail::Other(cause) => BackendError::Other(cause.message),
        }
    }
}

impl From<etcd_client::Error> for BackendError {
    fn from(error: etcd_client::Error) -> Self {
        Fail::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_unavailable_etcd_keeps_the_client_error_as_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let fail = Fail::from(etcd_client::Error::IoError(io));
        // One failure reported to every request of a batch: each gets the same source.
        let error = BackendError::from(fail.clone());
        assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");
        assert!(error.to_string().contains("refused"), "{error}");
        let source = error.source().expect("the etcd-client error is kept");
        assert!(matches!(
            source.downcast_ref::<etcd_client::Error>(),
            Some(etcd_client::Error::IoError(_))
        ));
        assert!(BackendError::from(fail).source().is_some());
    }
}

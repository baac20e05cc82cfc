//! Configuration of the etcd backend.

use super::EtcdBackend;
use super::session::Timing;
use crate::RetryPolicy;
use crate::error::BackendError;
use std::time::Duration;

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const ETCD_MAX_REQUEST_BYTES: usize = 1_572_864;

/// How to reach etcd and how to use it. Build with [`EtcdConfig::new`] and the `with_*`-less setters, then
/// [`connect`](Self::connect).
///
/// ```no_run
/// # async fn demo() -> Result<(), taskflow::BackendError> {
/// use taskflow::backend::etcd::EtcdConfig;
/// use std::time::Duration;
/// let backend = EtcdConfig::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
///     .prefix("/taskflow/prod")
///     .user("taskflow", "secret")
///     .lease_ttl(Duration::from_secs(10))
///     .retention(Some(Duration::from_secs(7 * 24 * 3600)))
///     .connect()
///     .await?;
/// # let _ = backend; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) user: Option<(String, String)>,
    pub(crate) prefix: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retention: Option<Duration>,
    pub(crate) retention_interval: Option<Duration>,
    pub(crate) cancel_ttl: Duration,
    pub(crate) reconnect_delay: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) batching: bool,
    pub(crate) max_batch_ops: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_document_bytes: usize,
    #[cfg(feature = "etcd-tls")]
    pub(crate) tls: Option<etcd_client::TlsOptions>,
}

impl EtcdConfig {
    /// A configuration for these endpoints (`host:port` or `http://host:port`; give every member of the cluster), with
    /// the defaults: prefix `/taskflow`, lease TTL 10 s, connect timeout 5 s, request timeout 5 s, retention 7 days,
    /// batching on.
    ///
    /// Requests go to one member, the leader as far as the backend knows; when it fails (down, unreachable, without a
    /// leader, or not answering a read within half the time left), the members are asked who leads now and the request
    /// goes there, and an answer from a later raft term has them asked again in the background. So while a majority of
    /// the members is alive, losing one costs a request the wait for a new leader (up to twice etcd's
    /// `--election-timeout`), plus half the time left when the lost member hangs instead of dying; it fails with
    /// [`BackendError::Unavailable`] when that exceeds the request timeout.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            user: None,
            prefix: "/taskflow".to_owned(),
            lease_ttl: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_interval: None,
            cancel_ttl: Duration::from_secs(60),
            reconnect_delay: Duration::from_millis(250),
            retry: RetryPolicy::default(),
            batching: true,
            max_batch_ops: 128,
            max_in_flight: 4,
            max_document_bytes: ETCD_MAX_REQUEST_BYTES - 64 * 1024,
            #[cfg(feature = "etcd-tls")]
            tls: None,
        }
    }

    /// Adds an endpoint.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Authenticates with etcd's user / password auth.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((name.into(), password.into()));
        self
    }

    /// TLS (the endpoints must use `https://`). Needs the cargo feature `etcd-tls`.
    #[cfg(feature = "etcd-tls")]
    pub fn tls(mut self, tls: etcd_client::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The namespace: every key lives under `{prefix}/` (default `/taskflow`), so applications can share an etcd.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTL of a worker's lease, in whole seconds (default 10 s): how long after a worker died its claims are
    /// given to others. The lease is renewed every TTL/6 and counted lost 3/4 TTL after the last renewal etcd
    /// confirmed, when the worker drops its running steps: before etcd can give them to another worker.
    ///
    /// [`connect`](Self::connect) refuses a TTL under 2 s (etcd's own minimum lease TTL is 1.5 × its
    /// `--election-timeout`), and warns under 5 s: an etcd leader election (up to 2 × `--election-timeout`, 2 s with
    /// etcd's defaults) may then outlast the time left between a renewal due and the loss threshold (7/12 TTL), and
    /// healthy workers would lose their leases (and re-run their steps elsewhere).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long [`connect`](Self::connect) waits for etcd to answer (default 5 s): the search for the leader and a read
    /// of the namespace on it, together. A TCP connection to a member must be made within this and within half the
    /// request timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The timeout of each request (default 5 s), moves to another member included; a timed out request fails with
    /// [`BackendError::Unavailable`]. For requests to ride through the loss of the leader, keep it above the time the
    /// cluster takes to elect another (up to twice etcd's `--election-timeout`: 2 s by default).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long ended tasks are kept (default 7 days; `None` keeps them forever). Expired tasks are deleted by one
    /// elected worker.
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// How often the elected worker looks for expired tasks (default: retention / 10, between 1 s and 5 min).
    pub fn retention_interval(mut self, interval: Duration) -> Self {
        self.retention_interval = Some(interval.max(Duration::from_millis(100)));
        self
    }

    /// How long a worker waits before reopening its watch or lease keep-alive after the stream broke, and between
    /// attempts while etcd is unreachable (default 250 ms).
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = delay.max(Duration::from_millis(10));
        self
    }

    /// How the backend's own loops retry while etcd is unreachable (default [`RetryPolicy::default`]): releasing a
    /// claim, cleaning up a claim whose answer was lost, re-listing the feed, re-registering a worker whose lease was
    /// lost, and waiting for a task change. These go on until they succeed or their session closes, so they use the
    /// policy's delays without its time limit ([`RetryPolicy::unbounded`]). The lease keep-alive and the feed watch
    /// reconnect every [`reconnect_delay`](Self::reconnect_delay) instead: the lease must be renewed within its TTL
    /// whatever happened before.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whether concurrent claims and commits are grouped into one etcd transaction (default on).
    pub fn batching(mut self, batching: bool) -> Self {
        self.batching = batching;
        self
    }

    /// The most operations in one batched transaction (default 128, etcd's `--max-txn-ops`).
    pub fn max_batch_ops(mut self, ops: usize) -> Self {
        self.max_batch_ops = ops.clamp(8, 10_000);
        self
    }

    /// How many write transactions may be in flight at once (default 4); more requests wait and are batched.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The largest write of a task accepted: its document, its listing summary (compared, then written) and its message
    /// together (default 1.5 MiB less 64 KiB, for etcd's default `--max-request-bytes`). Dispatches and steps' results
    /// leave 16 KiB of it free, for cancellations and for the failures recorded in place of a write that did not fit.
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// The prefix (namespace).
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoints.
    pub fn get_endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The interval of the retention cleaner.
    pub(crate) fn retention_every(&self) -> Option<Duration> {
        let retention = self.retention?;
        Some(self.retention_interval.unwrap_or_else(|| {
            (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
        }))
    }

    /// The options of each member's client. A TCP connection to a member must be made within half a request (so a
    /// request has time left for another member), and a member without a leader refuses requests at once instead of
    /// holding them (`require_leader`). HTTP/2 pings find a dead connection under open streams (a watch, the lease
    /// keep-alive) within 9 s: every 6 s, since etcd closes the connection of a client that pings more often than its
    /// `--grpc-keepalive-min-time` (5 s by default), and only while streams are open, since it counts any ping without
    /// one as too many (GOAWAY `too_many_pings` after three).
    pub(crate) fn connect_options(&self) -> etcd_client::ConnectOptions {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout.min(self.request_timeout / 2))
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(3))
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let Some((name, password)) = &self.user {
            options = options
                .with_user(name.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        #[cfg(feature = "etcd-tls")]
        if let Some(tls) = &self.tls {
            options = options.with_tls(tls.clone());
        }
        options
    }

    /// Connects, checks that etcd answers, and returns the backend. Fails with [`BackendError::Unavailable`] naming
    /// the endpoints when etcd cannot be reached within the connect timeout, and with [`BackendError::Other`] when
    /// the lease TTL is under 2 s (see [`lease_ttl`](Self::lease_ttl)).
    pub async fn connect(self) -> Result<EtcdBackend, BackendError> {
        EtcdBackend::connect(self).await
    }

    /// Refuses a lease TTL under [`Timing::MIN_TTL`], warns under [`Timing::SAFE_TTL`] (see
    /// [`lease_ttl`](Self::lease_ttl)).
    pub(crate) fn check_lease_ttl(&self) -> Result<(), BackendError> {
        let ttl = self.lease_ttl;
        if ttl < Timing::MIN_TTL {
            return Err(BackendError::Other(format!(
                "etcd backend: lease TTL {ttl:?} is under {:?}, etcd's minimum lease TTL with its default \
                 --election-timeout (1 s); a worker counts its lease lost after 3/4 of it",
                Timing::MIN_TTL
            )));
        }
        if ttl < Timing::SAFE_TTL {
            let timing = Timing::of(ttl);
            tracing::warn!(
                ttl = ?timing.ttl,
                lost_after = ?timing.lost_after,
                "etcd lease TTL under {:?}: a worker counts its lease lost {:?} after its last confirmed renewal, so \
                 an etcd leader election (up to 2 × --election-timeout: 2 s with etcd's defaults) may cost healthy \
                 workers their leases and re-run their steps elsewhere",
                Timing::SAFE_TTL,
                timing.lost_after,
            );
        }
        Ok(())
    }
}

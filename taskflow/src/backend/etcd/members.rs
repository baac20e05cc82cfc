//! The members of the etcd cluster as this process reaches them: one client per endpoint, and the member in use, which
//! is the leader as far as this process knows. Every request goes to the member in use. When that member cannot be
//! reached, has no leader or does not answer within its share of the request's time, the members are asked who leads
//! now (maintenance status; see `search.rs`) and the request goes there, all within one request timeout; a member that
//! is down costs a refused connection, one that hangs half of the time left. An answer from a later raft term than the
//! one the member in use was chosen in (an election since) has the search run again in the background, so that requests
//! follow a leader that moved while the old one stays alive. The lease keep-alive alone may go to every member at once
//! (`on_any_within`): a renewal must not wait for the search.
//!
//! Why not etcd-client's balanced channel over all the endpoints: tonic's balancer keeps a dead endpoint "ready" (its
//! reconnecting service stores the connect error, reports ready, and fails the next request sent there with it), so
//! about one request in three failed with `tcp connect error` for as long as one member of three was down.
//!
//! Why the leader: a follower forwards writes to the leader, and etcd drops a write forwarded to a leader that has just
//! died without an answer (measured: every put sent to a follower in the ~1.5 s after the leader was killed failed
//! with `request timed out` after 7 s, a failure that does not tell whether the write was applied). A write sent to
//! the leader itself fails at once with a connect error when the leader is gone, and can be sent elsewhere.

use super::error::Fail;
use crate::retry::RetryPolicy;
use etcd_client::{Client, ConnectOptions, GetOptions, ResponseHeader};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use search::search;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

mod search;

/// The pause between two searches for the leader while the cluster elects one, and between two attempts at the same
/// member.
fn backoff() -> RetryPolicy {
    RetryPolicy::default()
        .min_delay(Duration::from_millis(25))
        .max_delay(Duration::from_millis(500))
        .unbounded()
}

/// The etcd members (see the module doc).
pub(crate) struct Members {
    members: Vec<Member>,
    in_use: std::sync::Mutex<InUse>,
    /// One search for the leader at a time (the requests that failed meanwhile use what it found).
    search: tokio::sync::Mutex<()>,
    options: ConnectOptions,
    request_timeout: Duration,
    /// A key of this client's namespace, read to know that a member serves this client (a user limited to the
    /// namespace may read it, and may not be allowed to ask a member for its status).
    probe: String,
}

/// One member: its endpoint, its client (connected on first use: with user/password auth, connecting authenticates),
/// and its member id once it told it (0 until then).
struct Member {
    endpoint: String,
    client: OnceCell<Client>,
    id: AtomicU64,
}

/// The member requests go to.
#[derive(Clone)]
struct InUse {
    index: usize,
    client: Client,
    /// Grows with every search, so that a request that failed on a member already replaced does not search again.
    generation: u64,
    /// A request failed on it in a way that does not show whether it is alive (a timeout, a broken connection): the
    /// next request searches for the leader first.
    suspect: bool,
    /// The raft term it was chosen in (raised when a later one was seen and a search started for it).
    term: u64,
}

/// Whether a request may be sent again after a failure that leaves unknown whether etcd applied it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Repeat {
    /// Reads, watches, keep-alives, and writes whose repetition changes nothing.
    Safe,
    /// Other writes: sent again only when the failure shows they were not delivered.
    IfUndelivered,
}

/// An answer of etcd that may tell the raft term of the member that gave it (its response header).
pub(crate) trait Answered {
    /// The response header, if the answer has one.
    fn header(&self) -> Option<&ResponseHeader>;
}

macro_rules! answered {
    ($($response:ty),*) => {$(
        impl Answered for $response {
            fn header(&self) -> Option<&ResponseHeader> {
                <$response>::header(self)
            }
        }
    )*};
}

answered!(
    etcd_client::GetResponse,
    etcd_client::PutResponse,
    etcd_client::DeleteResponse,
    etcd_client::TxnResponse,
    etcd_client::LeaseGrantResponse,
    etcd_client::LeaseRevokeResponse
);

/// Streams tell their terms later, in their messages: not looked at.
impl Answered for etcd_client::WatchStream {
    fn header(&self) -> Option<&ResponseHeader> {
        None
    }
}

impl Member {
    async fn client(&self, options: &ConnectOptions) -> Result<Client, etcd_client::Error> {
        let connect = || Client::connect([self.endpoint.as_str()], Some(options.clone()));
        self.client.get_or_try_init(connect).await.cloned()
    }
}

impl Members {
    /// The members of these endpoints: finds the leader (or a member that knows one, or one that serves when none
    /// may tell) and reads `probe` there (a key of this client's namespace: the member serves this client, e.g. takes
    /// its credentials), all within `connect_timeout`.
    pub(crate) async fn connect(
        endpoints: &[String],
        options: ConnectOptions,
        probe: String,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Arc<Self>, Fail> {
        let deadline = Instant::now() + connect_timeout;
        let members: Vec<Member> = endpoints
            .iter()
            .map(|endpoint| Member {
                endpoint: endpoint.clone(),
                client: OnceCell::new(),
                id: AtomicU64::new(0),
            })
            .collect();
        let found = search(&members, &options, &probe, deadline).await?;
        let members = Arc::new(Self {
            members,
            in_use: std::sync::Mutex::new(InUse {
                index: found.index,
                client: found.client,
                generation: 0,
                suspect: false,
                term: found.term,
            }),
            search: tokio::sync::Mutex::new(()),
            options,
            request_timeout,
            probe,
        });
        let left = deadline.saturating_duration_since(Instant::now());
        let probe = members.probe.as_str();
        members
            .call(left, Repeat::Safe, |mut c| async move {
                c.get(probe, Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await?;
        Ok(members)
    }

    /// The client of the member in use.
    pub(crate) fn client(&self) -> Client {
        self.in_use().client
    }

    fn in_use(&self) -> InUse {
        crate::sync::lock(&self.in_use).clone()
    }

    /// Runs a request that may be sent again (a read, a watch, a keep-alive, a write whose repetition changes nothing)
    /// on the member in use, and on the leader found after any transient failure, within the request timeout. An
    /// attempt may take half of the time left: a member that hangs is left for another.
    pub(crate) async fn repeatable<T, F>(
        self: &Arc<Self>,
        request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        T: Answered,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.request(Repeat::Safe, request).await
    }

    /// Runs a request that may be sent again on every member at once (a follower forwards it to the leader) and
    /// returns the first answer within `timeout`, or at once the first refusal that is not a member's failure (e.g. a
    /// lease not found): for the lease keep-alive, which must not wait for the search for the leader, nor for a member
    /// that holds requests (one starting up, or frozen) while another one could answer.
    pub(crate) async fn on_any_within<T, F>(
        &self,
        timeout: Duration,
        request: impl Fn(Client) -> F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let options = &self.options;
        let request = &request;
        let mut attempts: FuturesUnordered<_> = self
            .members
            .iter()
            .map(|member| async move {
                let answer = async { request(member.client(options).await?).await }.await;
                (&member.endpoint, answer.map_err(Fail::from))
            })
            .collect();
        let mut failure = None;
        let started = Instant::now();
        let first = async {
            while let Some((endpoint, answer)) = attempts.next().await {
                let elapsed = started.elapsed();
                match answer {
                    Ok(value) => {
                        tracing::debug!(%endpoint, ?elapsed, "etcd: answered first of all members");
                        return Ok(value);
                    }
                    Err(fail @ Fail::Unavailable(_)) => {
                        tracing::debug!(%endpoint, ?elapsed, error = %fail, "etcd: a member failed the request");
                        failure = Some(fail);
                    }
                    Err(fail) => return Err(fail),
                }
            }
            Err(failure
                .take()
                .unwrap_or_else(|| Fail::Unavailable("no etcd member".into())))
        };
        match tokio::time::timeout(timeout, first).await {
            Ok(answer) => answer,
            Err(_) => Err(Fail::Unavailable(
                format!("no etcd member answered within {timeout:?}").into(),
            )),
        }
    }

    /// Runs a request on the member in use within the request timeout: [`repeatable`](Self::repeatable), or, for a
    /// write that must not be applied twice ([`Repeat::IfUndelivered`]), sent again to another member only when it
    /// surely did not reach etcd (the connection could not be made, or the member refused it for want of a leader);
    /// any other transient failure is then returned as [`Fail::Unavailable`]: the write may or may not have been
    /// applied.
    pub(crate) async fn request<T, F>(
        self: &Arc<Self>,
        repeat: Repeat,
        request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        T: Answered,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(self.request_timeout, repeat, request).await
    }

    async fn call<T, F>(
        self: &Arc<Self>,
        timeout: Duration,
        repeat: Repeat,
        mut request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        T: Answered,
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut delays = backoff().delays();
        let mut in_use = self.in_use();
        if in_use.suspect {
            in_use = self.replace(&in_use, deadline).await?;
        }
        loop {
            // A request that may be repeated gets half of the time left, so that another member has the rest.
            let attempt = match repeat {
                Repeat::Safe => {
                    Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2
                }
                Repeat::IfUndelivered => deadline,
            };
            let endpoint = &self.members[in_use.index].endpoint;
            let (fail, undelivered) =
                match tokio::time::timeout_at(attempt, request(in_use.client.clone())).await {
                    Ok(Ok(value)) => {
                        if let Some(term) = value.header().map(ResponseHeader::raft_term) {
                            self.observe(&in_use, term);
                        }
                        return Ok(value);
                    }
                    Ok(Err(error)) => {
                        let undelivered = undelivered(&error);
                        (Fail::from(error), undelivered)
                    }
                    Err(_) if attempt < deadline => {
                        let message =
                            format!("etcd ({endpoint}) did not answer within half the time left");
                        (Fail::Unavailable(message.into()), false)
                    }
                    Err(_) => {
                        self.suspect(&in_use);
                        return Err(Fail::Unavailable(
                            format!("etcd ({endpoint}) did not answer within {timeout:?}").into(),
                        ));
                    }
                };
            // Only a failure of the member is worth another member; not, e.g., etcd being out of space.
            if !matches!(fail, Fail::Unavailable(_)) {
                return Err(fail);
            }
            if repeat == Repeat::IfUndelivered && !undelivered {
                self.suspect(&in_use);
                return Err(fail);
            }
            tracing::debug!(%endpoint, error = %fail, "etcd request failed; looking for the leader");
            let failed = in_use.index;
            in_use = self
                .replace(&in_use, deadline)
                .await
                .map_err(|search| Fail::unavailable_because(format!("{fail}; {search}"), &fail))?;
            if in_use.index == failed {
                // The same member again (e.g. it had no leader for a moment): not at once.
                let pause = delays.next().unwrap_or(Duration::from_millis(500));
                if Instant::now() + pause >= deadline {
                    return Err(fail);
                }
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Marks the member in use as suspect (unless it was replaced meanwhile).
    fn suspect(&self, seen: &InUse) {
        let mut in_use = crate::sync::lock(&self.in_use);
        if in_use.generation == seen.generation {
            in_use.suspect = true;
        }
    }

    /// An answer of `term` from the member `seen`: if that term is later than the one the member in use was chosen
    /// in, the leader was elected since, maybe elsewhere: the search runs again, in the background (once per term).
    fn observe(self: &Arc<Self>, seen: &InUse, term: u64) {
        {
            let mut in_use = crate::sync::lock(&self.in_use);
            if in_use.generation != seen.generation || term <= in_use.term {
                return;
            }
            in_use.term = term;
        }
        let members = Arc::clone(self);
        let seen = seen.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + members.request_timeout;
            if let Err(fail) = members.replace(&seen, deadline).await {
                tracing::debug!(error = %fail, "etcd: looking for the leader after an election failed");
            }
        });
    }

    /// The member to use instead of `failed`: the one another request found meanwhile, else the leader found now.
    async fn replace(&self, failed: &InUse, deadline: Instant) -> Result<InUse, Fail> {
        let Ok(_search) = tokio::time::timeout_at(deadline, self.search.lock()).await else {
            return Err(Fail::Unavailable(
                "no etcd leader found within the request timeout".into(),
            ));
        };
        let current = self.in_use();
        if current.generation != failed.generation {
            return Ok(current);
        }
        let found = search(&self.members, &self.options, &self.probe, deadline).await?;
        if found.index != failed.index {
            tracing::info!(from = %self.members[failed.index].endpoint, to = %self.members[found.index].endpoint, "etcd requests move to another member");
        }
        let found = InUse {
            index: found.index,
            client: found.client,
            generation: failed.generation + 1,
            suspect: false,
            term: found.term,
        };
        *crate::sync::lock(&self.in_use) = found.clone();
        Ok(found)
    }
}

/// A member refused a request because it has no leader (etcd's answer to a request that requires one): the request
/// was not processed.
fn no_leader(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.code() == tonic::Code::Unavailable && status.message() == "etcdserver: no leader")
}

/// Whether a failed request surely did not reach etcd: the connection to the member could not be made (tonic's
/// `ConnectError`: refused, timed out, TLS handshake failed), the connection closed before the request was taken from
/// its queue (hyper's `Canceled`, e.g. the member was killed a moment ago), or the member refused it before processing
/// it because it has no leader.
fn undelivered(error: &etcd_client::Error) -> bool {
    if no_leader(error) {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = match error {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        etcd_client::Error::TransportError(error) => Some(error),
        _ => None,
    };
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>()
            || error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request to a port nobody listens on fails as undelivered: the classification that lets a write go to another
    /// member holds for the tonic version etcd-client uses (a mismatch would make every such write fail instead).
    #[tokio::test]
    async fn a_refused_connection_is_undelivered() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("an ephemeral port");
        let mut client = Client::connect([format!("http://127.0.0.1:{port}")], None)
            .await
            .expect("a lazy client");
        let error = client.get("k", None).await.expect_err("nothing listens");
        assert!(undelivered(&error), "{error:?}");
        assert!(matches!(Fail::from(error), Fail::Unavailable(_)));
    }
}

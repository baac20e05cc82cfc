//! The members of the etcd cluster as this process reaches them: one client per endpoint, and the member in use, which
//! is the leader as far as this process knows. Every request goes to the member in use. When that member cannot be
//! reached or has no leader, the members are asked who leads now (maintenance status) and the request goes there, all
//! within one request timeout; a member that is down costs a refused connection, not a timeout.
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
use etcd_client::{Client, ConnectOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long a member may take to tell its status while the leader is searched for (a live member answers in
/// milliseconds; one that does not is no use as the member in use).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

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
}

/// Whether a request may be sent again after a failure that leaves unknown whether etcd applied it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Repeat {
    /// Reads, watches, keep-alives, and writes whose repetition changes nothing.
    Safe,
    /// Other writes: sent again only when the failure shows they were not delivered.
    IfUndelivered,
}

impl Member {
    async fn client(&self, options: &ConnectOptions) -> Result<Client, etcd_client::Error> {
        let connect = || Client::connect([self.endpoint.as_str()], Some(options.clone()));
        self.client.get_or_try_init(connect).await.cloned()
    }

    /// What this member says of the leader, within `limit`.
    async fn ask(&self, options: &ConnectOptions, limit: Duration) -> Answer {
        let ask = async {
            let mut client = self.client(options).await?;
            let status = client.status().await?;
            Ok::<_, etcd_client::Error>((client, status))
        };
        match tokio::time::timeout(limit, ask).await {
            Ok(Ok((client, status))) => {
                let id = status.header().map_or(0, |h| h.member_id());
                self.id.store(id, Ordering::Relaxed);
                if id != 0 && status.leader() == id {
                    Answer::Leads(client)
                } else {
                    Answer::Follows(client, status.leader())
                }
            }
            Ok(Err(error)) if no_leader(&error) => Answer::NoLeader,
            Ok(Err(error)) => Answer::Silent(Fail::from(error)),
            Err(_) => Answer::Silent(Fail::Unavailable(
                format!(
                    "etcd at {} did not tell its status within {limit:?}",
                    self.endpoint
                )
                .into(),
            )),
        }
    }
}

/// What a member says when asked who leads.
enum Answer {
    /// It leads.
    Leads(Client),
    /// It follows this leader (0: none known).
    Follows(Client, u64),
    /// It is up but has no leader.
    NoLeader,
    /// It does not answer (down, unreachable, or refusing).
    Silent(Fail),
}

impl Members {
    /// The members of these endpoints; finds the leader (or a member that knows one) within `connect_timeout`.
    pub(crate) async fn connect(
        endpoints: &[String],
        options: ConnectOptions,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, Fail> {
        let members: Vec<Member> = endpoints
            .iter()
            .map(|endpoint| Member {
                endpoint: endpoint.clone(),
                client: OnceCell::new(),
                id: AtomicU64::new(0),
            })
            .collect();
        let (index, client) = search(&members, &options, Instant::now() + connect_timeout).await?;
        Ok(Self {
            members,
            in_use: std::sync::Mutex::new(InUse {
                index,
                client,
                generation: 0,
                suspect: false,
            }),
            search: tokio::sync::Mutex::new(()),
            options,
            request_timeout,
        })
    }

    /// The client of the member in use.
    pub(crate) fn client(&self) -> Client {
        self.in_use().client
    }

    fn in_use(&self) -> InUse {
        crate::sync::lock(&self.in_use).clone()
    }

    /// Runs a request that may be sent again (a read, a watch, a keep-alive, a write whose repetition changes nothing)
    /// on the member in use, and on the leader found after any transient failure, within the request timeout.
    pub(crate) async fn repeatable<T, F>(&self, request: impl FnMut(Client) -> F) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.request(Repeat::Safe, request).await
    }

    /// [`repeatable`](Self::repeatable) within `timeout` instead of the request timeout.
    pub(crate) async fn repeatable_within<T, F>(
        &self,
        timeout: Duration,
        request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(timeout, Repeat::Safe, request).await
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
            .map(|member| async move { request(member.client(options).await?).await })
            .collect();
        let mut failure = None;
        let first = async {
            while let Some(answer) = attempts.next().await {
                match answer.map_err(Fail::from) {
                    Ok(value) => return Ok(value),
                    Err(fail @ Fail::Unavailable(_)) => failure = Some(fail),
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

    /// Runs a write that must not be applied twice: sent again to another member only when it surely did not reach
    /// etcd (the connection could not be made, or the member refused it for want of a leader). Any other transient
    /// failure is returned as [`Fail::Unavailable`]: the write may or may not have been applied.
    pub(crate) async fn at_most_once<T, F>(
        &self,
        request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.request(Repeat::IfUndelivered, request).await
    }

    /// [`repeatable`](Self::repeatable) or [`at_most_once`](Self::at_most_once).
    pub(crate) async fn request<T, F>(
        &self,
        repeat: Repeat,
        request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(self.request_timeout, repeat, request).await
    }

    async fn call<T, F>(
        &self,
        timeout: Duration,
        repeat: Repeat,
        mut request: impl FnMut(Client) -> F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + timeout;
        let mut delays = backoff().delays();
        let mut in_use = self.in_use();
        if in_use.suspect {
            in_use = self.replace(&in_use, deadline).await?;
        }
        loop {
            let error =
                match tokio::time::timeout_at(deadline, request(in_use.client.clone())).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(error)) => error,
                    Err(_) => {
                        self.suspect(&in_use);
                        return Err(Fail::Unavailable(
                            format!(
                                "etcd ({}) did not answer within {timeout:?}",
                                self.members[in_use.index].endpoint
                            )
                            .into(),
                        ));
                    }
                };
            let undelivered = undelivered(&error);
            let fail = Fail::from(error);
            // Only a failure of the member is worth another member; not, e.g., etcd being out of space.
            if !matches!(fail, Fail::Unavailable(_)) {
                return Err(fail);
            }
            if repeat == Repeat::IfUndelivered && !undelivered {
                self.suspect(&in_use);
                return Err(fail);
            }
            tracing::debug!(endpoint = %self.members[in_use.index].endpoint, error = %fail, "etcd request failed; looking for the leader");
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
        let (index, client) = search(&self.members, &self.options, deadline).await?;
        if index != failed.index {
            tracing::info!(from = %self.members[failed.index].endpoint, to = %self.members[index].endpoint, "etcd requests move to another member");
        }
        let found = InUse {
            index,
            client,
            generation: failed.generation + 1,
            suspect: false,
        };
        *crate::sync::lock(&self.in_use) = found.clone();
        Ok(found)
    }
}

/// Asks every member who leads until one says it does (or, when the leader is not among these endpoints, one knows
/// a leader elsewhere); waits while the cluster elects one. Fails at `deadline`, or at once when no member answers.
async fn search(
    members: &[Member],
    options: &ConnectOptions,
    deadline: Instant,
) -> Result<(usize, Client), Fail> {
    let endpoints = || {
        members
            .iter()
            .map(|m| m.endpoint.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut delays = backoff().delays();
    loop {
        let limit = STATUS_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let mut answers: FuturesUnordered<_> = members
            .iter()
            .enumerate()
            .map(|(index, member)| async move { (index, member.ask(options, limit).await) })
            .collect();
        let mut followers = Vec::new();
        let mut up = false;
        let mut silence = None;
        while let Some((index, answer)) = answers.next().await {
            match answer {
                Answer::Leads(client) => return Ok((index, client)),
                Answer::Follows(client, leader) => {
                    up = true;
                    followers.push((index, client, leader));
                }
                Answer::NoLeader => up = true,
                Answer::Silent(fail) => silence = Some(fail),
            }
        }
        if !up {
            let message = format!("no etcd member answers ({})", endpoints());
            return Err(match silence {
                Some(fail) => Fail::unavailable_because(format!("{message}: {fail}"), &fail),
                None => Fail::Unavailable(message.into()),
            });
        }
        // A leader that is none of these endpoints (rather than one of them that did not answer): a follower forwards
        // to it.
        let ours = |id: u64| members.iter().any(|m| m.id.load(Ordering::Relaxed) == id);
        if let Some((index, client, _)) = followers
            .into_iter()
            .find(|&(_, _, leader)| leader != 0 && !ours(leader))
        {
            return Ok((index, client));
        }
        let pause = delays.next().unwrap_or(Duration::from_millis(500));
        if Instant::now() + pause >= deadline {
            return Err(Fail::Unavailable(
                format!("the etcd cluster ({}) has no leader", endpoints()).into(),
            ));
        }
        tokio::time::sleep(pause).await;
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

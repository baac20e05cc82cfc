//! The search for the member to use: every member is asked who leads (maintenance status); a member that refuses to
//! tell (etcd 3.6 and 3.5.28+ let only the root role ask for the status) is up with an unknown role, and the first of
//! those that answers a read of the probe key serves when no member says it leads.

use super::super::error::Fail;
use super::{Member, backoff, no_leader};
use etcd_client::{Client, ConnectOptions, GetOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// How long a member may take to tell its status while the leader is searched for (a live member answers in
/// milliseconds; one that does not is no use as the member in use).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// The member found: its index, its client, and the raft term it told.
pub(super) struct Found {
    pub(super) index: usize,
    pub(super) client: Client,
    pub(super) term: u64,
}

/// What a member says when asked who leads.
enum Answer {
    /// It leads, in this term.
    Leads(Client, u64),
    /// It follows this leader (0: none known), in this term.
    Follows(Client, u64, u64),
    /// It is up but has no leader.
    NoLeader,
    /// It is up but refused to tell its status (this user may not ask for it): its role is unknown.
    Refused(Client),
    /// It does not answer (down, unreachable, or refusing the credentials).
    Silent(Fail),
}

impl Member {
    /// What this member says of the leader, within `limit` (`cut`: the limit is what is left of the request's time).
    async fn ask(&self, options: &ConnectOptions, limit: Duration, cut: bool) -> Answer {
        let ask = async {
            let mut client = self.client(options).await?;
            let status = client.status().await;
            Ok::<_, etcd_client::Error>((client, status))
        };
        match tokio::time::timeout(limit, ask).await {
            Ok(Ok((client, Ok(status)))) => {
                let (id, term) = status
                    .header()
                    .map_or((0, 0), |h| (h.member_id(), h.raft_term()));
                self.id.store(id, Ordering::Relaxed);
                if id != 0 && status.leader() == id {
                    Answer::Leads(client, term)
                } else {
                    Answer::Follows(client, status.leader(), term)
                }
            }
            Ok(Ok((client, Err(error)))) if refused(&error) => Answer::Refused(client),
            Ok(Ok((_, Err(error)))) | Ok(Err(error)) if no_leader(&error) => Answer::NoLeader,
            Ok(Ok((_, Err(error)))) | Ok(Err(error)) => Answer::Silent(Fail::from(error)),
            Err(_) => Answer::Silent(Fail::Unavailable(
                if cut {
                    format!(
                        "etcd at {} did not tell its status in the {limit:?} left of the request's time",
                        self.endpoint
                    )
                } else {
                    format!(
                        "etcd at {} did not tell its status within {limit:?}",
                        self.endpoint
                    )
                }
                .into(),
            )),
        }
    }
}

/// Whether a member refused to tell its status to this user (not the root role): it is up and took the credentials.
pub(super) fn refused(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if matches!(status.code(), tonic::Code::PermissionDenied | tonic::Code::Unauthenticated))
}

/// Reads `probe` (a key this client may read) on each of `refused`, within `limit`: the first that answers serves (a
/// member without a leader refuses at once: the clients require one).
async fn probe(
    refused: Vec<(usize, Client)>,
    probe: &str,
    limit: Duration,
) -> Result<Option<Found>, Fail> {
    let mut reads: FuturesUnordered<_> = refused
        .into_iter()
        .map(|(index, mut client)| async move {
            let read = client.get(probe, Some(GetOptions::new().with_count_only()));
            let read = tokio::time::timeout(limit, read).await;
            (index, client, read)
        })
        .collect();
    let mut failure = None;
    while let Some((index, client, read)) = reads.next().await {
        match read {
            Ok(Ok(resp)) => {
                let term = resp.header().map_or(0, |h| h.raft_term());
                return Ok(Some(Found {
                    index,
                    client,
                    term,
                }));
            }
            Ok(Err(error)) if no_leader(&error) => {}
            Ok(Err(error)) => failure = Some(Fail::from(error)),
            Err(_) => {}
        }
    }
    failure.map_or(Ok(None), Err)
}

/// Asks every member who leads until one says it does (or, when the leader is not among these endpoints, one knows
/// a leader elsewhere; or, when no member may tell, one answers a read of `probe_key`); waits while the cluster elects
/// a leader. Fails at `deadline`, or at once when no member answers.
pub(super) async fn search(
    members: &[Member],
    options: &ConnectOptions,
    probe_key: &str,
    deadline: Instant,
) -> Result<Found, Fail> {
    let endpoints = || {
        members
            .iter()
            .map(|m| m.endpoint.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut delays = backoff().delays();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::Unavailable(
                format!(
                    "no time was left to look for the etcd leader among {}",
                    endpoints()
                )
                .into(),
            ));
        }
        let limit = STATUS_TIMEOUT.min(left);
        let cut = limit < STATUS_TIMEOUT;
        let mut answers: FuturesUnordered<_> = members
            .iter()
            .enumerate()
            .map(|(index, member)| async move { (index, member.ask(options, limit, cut).await) })
            .collect();
        let mut followers = Vec::new();
        let mut refusing = Vec::new();
        let mut up = false;
        let mut silence = None;
        while let Some((index, answer)) = answers.next().await {
            match answer {
                Answer::Leads(client, term) => {
                    return Ok(Found {
                        index,
                        client,
                        term,
                    });
                }
                Answer::Follows(client, leader, term) => {
                    up = true;
                    followers.push((index, client, leader, term));
                }
                Answer::NoLeader => up = true,
                Answer::Refused(client) => refusing.push((index, client)),
                Answer::Silent(fail) => silence = Some(fail),
            }
        }
        // A leader that is none of these endpoints (rather than one of them that did not answer): a follower forwards
        // to it.
        let ours = |id: u64| members.iter().any(|m| m.id.load(Ordering::Relaxed) == id);
        if let Some((index, client, _, term)) = followers
            .into_iter()
            .find(|&(_, _, leader, _)| leader != 0 && !ours(leader))
        {
            return Ok(Found {
                index,
                client,
                term,
            });
        }
        if !refusing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match probe(refusing, probe_key, STATUS_TIMEOUT.min(left)).await {
                Ok(Some(found)) => return Ok(found),
                // Up, without a leader (or slow).
                Ok(None) => up = true,
                Err(fail) => silence = Some(fail),
            }
        }
        if !up {
            let message = format!("no etcd member answers ({})", endpoints());
            return Err(match silence {
                Some(fail) => Fail::unavailable_because(format!("{message}: {fail}"), &fail),
                None => Fail::Unavailable(message.into()),
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd 3.6 (and 3.5.28+) refuse the maintenance status to a user without the root role: such a member is up and
    /// serves (`refused`), unlike one that is down or has no leader.
    #[test]
    fn a_status_refused_to_a_user_is_not_silence() {
        let status = |code, message: &str| {
            etcd_client::Error::GRpcStatus(tonic::Status::new(code, message.to_owned()))
        };
        assert!(refused(&status(
            tonic::Code::PermissionDenied,
            "etcdserver: permission denied"
        )));
        assert!(refused(&status(
            tonic::Code::Unauthenticated,
            "etcdserver: user name is empty"
        )));
        let down = status(tonic::Code::Unavailable, "connection refused");
        assert!(!refused(&down));
        let leaderless = status(tonic::Code::Unavailable, "etcdserver: no leader");
        assert!(!refused(&leaderless) && no_leader(&leaderless));
    }
}

//! A private etcd cluster: `n` [`EtcdServer`] members on ephemeral loopback ports (client, peer and metrics ports of
//! their own), each with its own temporary data dir; one member can be killed and restarted, or paused, while the
//! others keep the quorum.

use super::{EtcdServer, cannot_start, free_ports, temp_root, unique_prefix};
use std::time::Duration;
use taskflow::backend::etcd::{EtcdConfig, etcd_client};

/// A private etcd cluster, stopped (every member killed) on drop.
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts a fresh cluster of `n` members and waits until every member is healthy (the cluster has a leader).
    /// Panics with a clear message when it cannot start.
    pub fn start(n: usize) -> Self {
        assert!(n > 0, "a cluster has at least one member");
        let root = temp_root();
        let mut last_error = String::new();
        for _ in 0..3 {
            let ports = free_ports(3 * n);
            let mut members: Vec<EtcdServer> = ports
                .chunks(3)
                .enumerate()
                .map(|(i, ports)| EtcdServer::member(&root, &format!("member{i}"), ports))
                .collect();
            let initial_cluster = members
                .iter()
                .map(EtcdServer::peer)
                .collect::<Vec<_>>()
                .join(",");
            for member in &mut members {
                member.initial_cluster.clone_from(&initial_cluster);
            }
            // Every member waits for the others to form the cluster: launch them all, then wait for each.
            let started = members
                .iter_mut()
                .try_for_each(EtcdServer::launch)
                .and_then(|()| {
                    members
                        .iter_mut()
                        .try_for_each(|member| member.wait_healthy(Duration::from_secs(30)))
                });
            match started {
                Ok(()) => return Self { members },
                // Dropping the members kills those that started.
                Err(e) => last_error = e,
            }
        }
        panic!("{}", cannot_start(&last_error));
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never: [`start`](Self::start) refuses 0).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member's client endpoint, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &EtcdServer {
        &self.members[i]
    }

    /// Kills member `i` (SIGKILL, waited for); its data stays for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on the same ports with the same data and waits until it is healthy (it rejoined the
    /// cluster and knows the leader).
    pub fn restart(&mut self, i: usize) {
        self.members[i].restart();
    }

    /// Pauses member `i` (SIGSTOP): it hangs, neither dead nor answering, until the returned guard is dropped
    /// (SIGCONT).
    pub fn pause(&self, i: usize) -> Paused<'_> {
        let member = &self.members[i];
        member.signal("STOP");
        Paused { member }
    }

    /// The index of the current leader, asked of the running members through the maintenance status API (the member
    /// id of a member that reports itself as the leader). Waits up to 30 s for a leader to be elected.
    pub async fn leader(&self) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            for (i, member) in self.members.iter().enumerate() {
                if member.pid().is_some()
                    && status(&member.endpoint())
                        .await
                        .is_some_and(|(id, leader)| id == leader)
                {
                    return i;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the etcd cluster has no leader"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes member `to` the leader (the current leader hands over, maintenance `MoveLeader`) and waits until it is.
    pub async fn move_leader(&self, to: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.leader().await;
            if leader == to {
                return;
            }
            let target = status(&self.members[to].endpoint()).await;
            if let Some((target, _)) = target
                && let Ok(mut client) =
                    etcd_client::Client::connect([self.members[leader].endpoint()], None).await
            {
                let _ = client.move_leader(target).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "member {to} did not become the leader"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The configuration tests use: every member's endpoint, a unique prefix, the default timeouts (a request must
    /// outlast a leader election, up to 2 s with etcd's defaults).
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig::new(self.endpoints()).prefix(unique_prefix())
    }
}

/// A paused member (see [`EtcdCluster::pause`]), resumed on drop, whatever happened meanwhile.
pub struct Paused<'a> {
    member: &'a EtcdServer,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.member.signal("CONT");
    }
}

/// A member's `(member id, leader id)` from its maintenance status; `None` if it does not answer within 2 s.
async fn status(endpoint: &str) -> Option<(u64, u64)> {
    let ask = async {
        let mut client = etcd_client::Client::connect([endpoint], None).await.ok()?;
        let status = client.status().await.ok()?;
        Some((status.header()?.member_id(), status.leader()))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

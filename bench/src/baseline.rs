//! The etcd baseline: the minimal design written directly against etcd-client. Per step, one claim transaction (claim
//! key on the worker's lease, read the message) and one completion transaction (guarded by the claim: delete the
//! message and the claim, put the next step's message). Work is handed to the C workers through an in-process channel,
//! the cheapest possible discovery, so the baseline is an optimistic bar.

use crate::Sizes;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// Runs T tasks × S steps with C workers; returns the elapsed time (dispatch included).
pub(crate) async fn run(endpoint: &str, sizes: Sizes) -> Duration {
    let client = Client::connect([endpoint], None)
        .await
        .expect("baseline connects to etcd");
    let lease = client
        .clone()
        .lease_grant(60, None)
        .await
        .expect("lease")
        .id();
    let (work_tx, work_rx) = mpsc::unbounded_channel::<(usize, usize)>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..sizes.concurrency {
        let (mut client, work_rx, work_tx, done_tx) = (
            client.clone(),
            Arc::clone(&work_rx),
            work_tx.clone(),
            done_tx.clone(),
        );
        let steps = sizes.steps;
        workers.push(tokio::spawn(async move {
            loop {
                let next = work_rx.lock().await.recv().await;
                let Some((task, step)) = next else { break };
                let (message, claim) =
                    (format!("bl/msg/{task}/{step}"), format!("bl/claim/{task}"));
                let claimed = client
                    .txn(
                        Txn::new()
                            .when([Compare::create_revision(
                                claim.as_str(),
                                CompareOp::Equal,
                                0,
                            )])
                            .and_then([
                                TxnOp::put(
                                    claim.as_str(),
                                    "worker",
                                    Some(PutOptions::new().with_lease(lease)),
                                ),
                                TxnOp::get(message.as_str(), None),
                            ]),
                    )
                    .await
                    .expect("claim txn");
                assert!(claimed.succeeded(), "baseline claims never conflict");
                let claim_revision = claimed.header().expect("header").revision();
                let mut then = vec![
                    TxnOp::delete(message.as_str(), None),
                    TxnOp::delete(claim.as_str(), None),
                ];
                if step + 1 < steps {
                    then.push(TxnOp::put(
                        format!("bl/msg/{task}/{}", step + 1),
                        "{}",
                        None,
                    ));
                }
                let completed = client
                    .txn(
                        Txn::new()
                            .when([Compare::create_revision(
                                claim.as_str(),
                                CompareOp::Equal,
                                claim_revision,
                            )])
                            .and_then(then),
                    )
                    .await
                    .expect("completion txn");
                assert!(completed.succeeded(), "the claim is still ours");
                if step + 1 < steps {
                    work_tx.send((task, step + 1)).expect("queue open");
                } else {
                    let _ = done_tx.send(());
                }
            }
        }));
    }
    // Dispatch: one put per task's first message, C at a time.
    futures::stream::iter(0..sizes.tasks)
        .map(|task| {
            let (mut client, work_tx) = (client.clone(), work_tx.clone());
            async move {
                client
                    .put(format!("bl/msg/{task}/0"), "{}", None)
                    .await
                    .expect("dispatch put");
                work_tx.send((task, 0)).expect("queue open");
            }
        })
        .buffer_unordered(sizes.concurrency)
        .collect::<()>()
        .await;
    for _ in 0..sizes.tasks {
        done_rx.recv().await.expect("a task ends");
    }
    let elapsed = began.elapsed();
    for worker in workers {
        worker.abort();
    }
    let _ = client
        .clone()
        .delete("bl/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await;
    elapsed
}

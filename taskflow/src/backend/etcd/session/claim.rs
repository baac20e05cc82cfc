//! Claims: the claim transaction (which deletes a message whose task document does not exist), releases (retried in
//! the background while etcd is unreachable) and the clean-up of a claim whose answer was lost.

use super::Shared;
use super::feed::{claimed, known};
use crate::backend::etcd::batch::Job;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::retries::Retries;
use crate::backend::etcd::{got, message_json};
use crate::backend::{ClaimToken, Claimed, CorruptTask, Message, Stored};
use crate::error::BackendError;
use crate::model::Task;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Claims a message for the session: see [`Session::claim`](crate::backend::Session::claim). A message whose task
/// document does not exist (deleted by hand) is deleted instead, in the same transaction (so a task created again
/// meanwhile keeps its message), and logged: a claim of it would be released and announced again, forever.
pub(super) async fn claim(
    shared: &Arc<Shared>,
    message: &Message,
) -> Result<Option<Claimed>, BackendError> {
    let lease = shared.lease()?;
    let inner = &shared.inner;
    let keys = &inner.keys;
    let task_id = &message.task_id;
    if claimed(&shared.claimed).contains(task_id) {
        // Another claim is known already: spare etcd a transaction that would fail (it would still be a raft
        // proposal). If that claim goes away, the feed announces the message again.
        return Ok(None);
    }
    let claim_key = keys.claim(task_id);
    let doc_key = keys.task(task_id);
    let message_key = keys.message(&message.route, task_id);
    let unclaimed = Compare::create_revision(claim_key.clone(), CompareOp::Equal, 0);
    let unchanged = message_guard(shared, &message_key, message);
    // The claim's write stays at the top level: etcd versions that ignore nested writes in their space quota (see
    // `KeyLayout::space_check`) would let a nested claim through while they refuse every other write.
    let clean_up = Txn::new()
        .when([
            unclaimed.clone(),
            unchanged.clone(),
            Compare::create_revision(doc_key.clone(), CompareOp::Equal, 0),
        ])
        .and_then([TxnOp::delete(message_key.clone(), None)]);
    let txn = Txn::new()
        .when([
            unclaimed,
            unchanged,
            Compare::create_revision(doc_key.clone(), CompareOp::Greater, 0),
        ])
        .and_then([
            TxnOp::put(
                claim_key,
                shared.spec.worker_id.clone(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::get(doc_key, None),
        ])
        .or_else([TxnOp::txn(clean_up)]);
    let attempt = inner.claims.attempt(task_id);
    let reply = match inner
        .submit(Job {
            task: task_id.clone(),
            txn,
            ops: 10,
            bytes: 512,
        })
        .await
    {
        Ok(reply) => reply,
        Err(fail) => {
            if let Fail::Unavailable(_) | Fail::NoSpace(_) = fail {
                // The claim may have been applied although its answer was lost, or although etcd answered that it
                // is out of space (its quota check runs after the write that crossed it): such a claim would hold
                // the message as long as the session lives. Look for it once etcd answers again (a release is a
                // delete, which etcd accepts while out of space).
                let orphan = drop_orphan(Arc::clone(shared), task_id.clone(), lease, fail.clone());
                tokio::spawn(orphan);
            }
            return Err(fail.into());
        }
    };
    if !reply.resp.succeeded() {
        if let Some(TxnOpResponse::Txn(clean_up)) = reply.resp.op_responses().into_iter().next()
            && clean_up.succeeded()
        {
            tracing::warn!(key = %message_key, "deleted a message whose task document does not exist");
        }
        return Ok(None);
    }
    inner.has_space();
    let fence = reply.revision as u64;
    inner.claims.held(task_id, fence);
    drop(attempt);
    let token = ClaimToken {
        task_id: task_id.clone(),
        fence,
    };
    let Some(doc) = got(reply.resp.op_responses().into_iter().nth(1)) else {
        let _ = release(shared, &token).await;
        return Err(BackendError::Other(
            "etcd answered a claim without the task document".to_owned(),
        ));
    };
    let task = match serde_json::from_slice::<Task>(doc.value()) {
        Ok(value) => Ok(Stored {
            value: Arc::new(value),
            revision: doc.mod_revision() as u64,
        }),
        Err(e) => Err(CorruptTask {
            revision: doc.mod_revision() as u64,
            raw: String::from_utf8_lossy(doc.value()).into_owned(),
            error: e.to_string(),
        }),
    };
    Ok(Some(Claimed { token, task }))
}

/// Gives a claim back: see [`Session::release`](crate::backend::Session::release). While etcd is unreachable it is retried in the background.
pub(super) async fn release(shared: &Arc<Shared>, token: &ClaimToken) -> Result<(), BackendError> {
    let key = shared.inner.keys.claim(&token.task_id);
    shared.inner.claims.released(&token.task_id, token.fence);
    match release_key(shared, &key, token.fence as i64).await {
        Ok(()) => Ok(()),
        Err(mut fail @ Fail::Unavailable(_)) => {
            // Keep trying in the background: a claim nobody releases would hold the message as long as the
            // session lives.
            let shared = Arc::clone(shared);
            let fence = token.fence as i64;
            let what = format!("releasing the claim of task {}", token.task_id);
            tokio::spawn(async move {
                let mut retries = Retries::new(&shared.inner);
                while retries.after(&fail, &what, shared.closed.cancelled()).await {
                    match release_key(&shared, &key, fence).await {
                        Err(again @ Fail::Unavailable(_)) => fail = again,
                        _ => return,
                    }
                }
            });
            Ok(())
        }
        Err(fail) => Err(fail.into()),
    }
}

/// After a claim whose answer was lost: deletes the claim of the task if it is on this session's lease and no claim
/// this process knows (held, or being made) explains it.
async fn drop_orphan(shared: Arc<Shared>, task_id: String, lease: i64, fail: Fail) {
    let inner = Arc::clone(&shared.inner);
    let key = inner.keys.claim(&task_id);
    let mut retries = Retries::new(&inner);
    let mut fail = fail;
    while retries
        .after(
            &fail,
            "looking for a claim whose answer was lost",
            shared.closed.cancelled(),
        )
        .await
    {
        if shared.lease.load(Ordering::Acquire) != lease {
            return;
        }
        if inner.claims.attempting(&task_id) {
            continue;
        }
        let claim = match inner.get(&key).await {
            Ok(resp) => resp.kvs().first().cloned(),
            Err(again) => {
                fail = again;
                continue;
            }
        };
        let Some(claim) = claim else { return };
        if claim.lease() != lease
            || inner
                .claims
                .is_held(&task_id, claim.create_revision() as u64)
        {
            return;
        }
        tracing::info!(task_id, "releasing a claim whose answer was lost");
        match release_key(&shared, &key, claim.create_revision()).await {
            Err(again @ Fail::Unavailable(_)) => fail = again,
            _ => return,
        }
    }
}

/// The guard that the message is still the one the worker saw: its mod revision as the feed saw it when the feed
/// knows the same message (the engine may only have postponed its due time), else its exact value.
fn message_guard(shared: &Shared, key: &str, message: &Message) -> Compare {
    let seen = known(&shared.known).get(&message.task_id).cloned();
    match seen {
        Some((seen, revision))
            if seen.work == message.work
                && seen.route == message.route
                && seen.deadline == message.deadline
                && seen.due <= message.due =>
        {
            Compare::mod_revision(key, CompareOp::Equal, revision)
        }
        _ => Compare::value(key, CompareOp::Equal, message_json(message)),
    }
}

/// Deletes a claim if it is still the one created at `fence`.
async fn release_key(shared: &Shared, key: &str, fence: i64) -> Result<(), Fail> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, fence)])
        .and_then([TxnOp::delete(key, None)]);
    let task = key.rsplit('/').next().unwrap_or_default().to_owned();
    shared
        .inner
        .submit_repeatable(Job {
            task,
            txn,
            ops: 2,
            bytes: key.len(),
        })
        .await
        .map(|_| ())
}

//! The retention election: the worker holding `{prefix}/retention/leader` (a key on its session lease) deletes
//! expired tasks every interval.

use super::Shared;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::listing;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::sync::Arc;
use std::time::Duration;

/// The retention cleaner: the worker holding `{prefix}/retention/leader` (on its lease) deletes expired tasks.
pub(super) async fn retention(shared: Arc<Shared>, every: Duration) {
    let Some(retention) = shared.inner.config.retention else {
        return;
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.closed.cancelled() => return,
        }
        let Ok(lease) = shared.lease() else { continue };
        let inner = &shared.inner;
        match lead(&shared, lease).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(fail @ Fail::NoSpace(_)) => {
                inner.out_of_space("the retention election", &fail);
                continue;
            }
            Err(fail) => {
                tracing::debug!(error = %fail, "the retention election failed");
                continue;
            }
        }
        if let Err(fail) = listing::clean_expired(inner, retention).await {
            tracing::debug!(error = %fail, "retention pass failed");
        }
    }
}

/// Whether this session (on `lease`) is the retention cleaner, becoming it if nobody is. A sitting cleaner only reads
/// (no raft proposal, and it goes on deleting while etcd is out of space: deletes need no space).
async fn lead(shared: &Shared, lease: i64) -> Result<bool, Fail> {
    let inner = &shared.inner;
    let key = inner.keys.retention_leader();
    let leader = inner.get(&key).await?;
    if let Some(leader) = leader.kvs().first() {
        return Ok(leader.lease() == lease);
    }
    let campaign = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            shared.spec.worker_id.clone(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    // Sent again after a lost answer, the campaign finds its own key and reports a loss: this session leads from the
    // next pass on (when it reads the key on its lease).
    let campaign = &campaign;
    let won = inner
        .members
        .repeatable(|mut c| async move { c.txn(campaign.clone()).await })
        .await?
        .succeeded();
    inner.has_space();
    Ok(won)
}

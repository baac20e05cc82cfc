//! The retention election: the worker holding `{prefix}/retention/leader` (a key on its session lease) deletes
//! expired tasks every interval.

use super::Shared;
use crate::backend::etcd::{got, listing, timed};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::sync::Arc;
use std::time::Duration;

/// The retention cleaner: the worker holding `{prefix}/retention/leader` (on its lease) deletes expired tasks.
pub(super) async fn retention(shared: Arc<Shared>, every: Duration) {
    let Some(retention) = shared.inner.config.retention else {
        return;
    };
    let key = shared.inner.keys.retention_leader();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.closed.cancelled() => return,
        }
        let Ok(lease) = shared.lease() else { continue };
        let inner = &shared.inner;
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                shared.spec.worker_id.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let leader = match timed(inner.config.request_timeout, inner.client().txn(txn)).await {
            Ok(resp) => {
                resp.succeeded()
                    || got(resp.op_responses().into_iter().next())
                        .is_some_and(|kv| kv.lease() == lease)
            }
            Err(_) => false,
        };
        if !leader {
            continue;
        }
        if let Err(fail) = listing::clean_expired(inner, retention).await {
            tracing::debug!(error = %fail, "retention pass failed");
        }
    }
}

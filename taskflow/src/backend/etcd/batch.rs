//! Write batching: concurrent claims, commits, creates and releases of different tasks are grouped into one etcd
//! transaction made of nested transactions, each keeping its own guard.
//!
//! A request goes out at once while fewer than `max_in_flight` transactions are in flight; otherwise it waits and is
//! sent with the others that queued meanwhile (so an idle system has no added latency and a busy one writes fewer,
//! larger transactions). A batch holds at most one request per task (etcd evaluates every nested guard before any
//! write and rejects a transaction that writes a key twice), at most `max_batch_ops` operations and ~1 MiB. If etcd
//! rejects a batch for a reason that is not a transport failure (e.g. a lease that expired), its requests are sent
//! one by one so only the faulty one fails. Every batch carries a write that is never made, so that etcd counts it
//! against its space quota (see [`KeyLayout::space_check`](super::KeyLayout::space_check)).

use super::error::Fail;
use super::members::{Members, Repeat};
use etcd_client::{Txn, TxnOp, TxnOpResponse, TxnResponse};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// The largest answer accepted from etcd.
pub(crate) const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// The result of one request: its (possibly nested) transaction response and the revision of the whole transaction.
pub(crate) struct Reply {
    pub(crate) resp: TxnResponse,
    pub(crate) revision: i64,
}

/// One transaction to send, alone or in a batch.
pub(crate) struct Job {
    /// The task it writes (one request per task in a batch).
    pub(crate) task: String,
    pub(crate) txn: Txn,
    /// Operations in the transaction, nested ones included.
    pub(crate) ops: usize,
    /// Approximate size in bytes.
    pub(crate) bytes: usize,
}

struct Queued {
    job: Job,
    repeat: Repeat,
    reply: oneshot::Sender<Result<Reply, Fail>>,
}

/// The most requests in one batch.
const MAX_JOBS: usize = 64;

/// Sends write transactions, batching them under load.
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Queued>,
}

/// Limits of the batcher.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) batching: bool,
    pub(crate) max_ops: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_in_flight: usize,
}

impl Batcher {
    /// Starts the batcher; `space_check` is the key of [`KeyLayout::space_check`](super::KeyLayout::space_check).
    pub(crate) fn start(members: Arc<Members>, limits: Limits, space_check: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(members, limits, rx, Arc::from(space_check)));
        Self { tx }
    }

    /// Sends a transaction and waits for its response. `repeat` tells whether it may be sent again after a failure
    /// that leaves unknown whether etcd applied it (a batch is sent again only if all its transactions may be).
    pub(crate) async fn submit(&self, job: Job, repeat: Repeat) -> Result<Reply, Fail> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Queued { job, repeat, reply })
            .map_err(|_| Fail::Other("etcd backend dropped".into()))?;
        rx.await
            .map_err(|_| Fail::Unavailable("etcd request abandoned".into()))?
    }
}

async fn run(
    members: Arc<Members>,
    limits: Limits,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    space_check: Arc<str>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight));
    let mut deferred: VecDeque<Queued> = VecDeque::new();
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let first = match deferred.pop_front() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        if limits.batching {
            let mut tasks: HashSet<String> = HashSet::from([batch[0].job.task.clone()]);
            let mut ops = batch[0].job.ops;
            let mut bytes = batch[0].job.bytes;
            let mut carry = VecDeque::new();
            loop {
                let next = match deferred.pop_front() {
                    Some(next) => next,
                    None => match rx.try_recv() {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                if ops + next.job.ops > limits.max_ops
                    || bytes + next.job.bytes > limits.max_bytes
                    || batch.len() >= MAX_JOBS
                {
                    carry.push_back(next);
                    break;
                }
                if !tasks.insert(next.job.task.clone()) {
                    carry.push_back(next);
                    continue;
                }
                ops += next.job.ops;
                bytes += next.job.bytes;
                batch.push(next);
            }
            carry.extend(deferred.drain(..));
            deferred = carry;
        }
        let members = Arc::clone(&members);
        let space_check = Arc::clone(&space_check);
        tokio::spawn(async move {
            send(&members, batch, &space_check).await;
            drop(permit);
        });
    }
}

/// Sends a write transaction.
async fn txn(members: &Arc<Members>, txn: &Txn, repeat: Repeat) -> Result<TxnResponse, Fail> {
    members
        .request(repeat, |client| async move {
            // Claims answer with task documents (up to 1.5 MiB each): a batch's answer may exceed tonic's 4 MiB default.
            let mut kv = client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            kv.txn(txn.clone()).await
        })
        .await
}

async fn send(members: &Arc<Members>, mut batch: Vec<Queued>, space_check: &str) {
    if batch.len() == 1 {
        let Some(one) = batch.pop() else { return };
        let result = txn(members, &one.job.txn, one.repeat)
            .await
            .map(|resp| Reply {
                revision: resp.header().map_or(0, |h| h.revision()),
                resp,
            });
        let _ = one.reply.send(result);
        return;
    }
    let ops: Vec<TxnOp> = batch
        .iter()
        .map(|q| TxnOp::txn(q.job.txn.clone()))
        .collect();
    let repeat = if batch.iter().all(|q| q.repeat == Repeat::Safe) {
        Repeat::Safe
    } else {
        Repeat::IfUndelivered
    };
    // No guard: the `else` branch is never taken; its write makes etcd count the batch against its space quota.
    let batched = Txn::new()
        .and_then(ops)
        .or_else([TxnOp::put(space_check, "", None)]);
    match txn(members, &batched, repeat).await {
        Ok(resp) => {
            let revision = resp.header().map_or(0, |h| h.revision());
            let mut responses = resp.op_responses().into_iter();
            for queued in batch {
                let result = match responses.next() {
                    Some(TxnOpResponse::Txn(resp)) => Ok(Reply { resp, revision }),
                    _ => Err(Fail::Other(
                        "etcd answered a batch with a malformed response".into(),
                    )),
                };
                let _ = queued.reply.send(result);
            }
        }
        Err(fail @ Fail::Unavailable(_)) => {
            for queued in batch {
                let _ = queued.reply.send(Err(fail.clone()));
            }
        }
        Err(fail) => {
            tracing::debug!(error = %fail, size = batch.len(), "etcd rejected a batch; sending its requests one by one");
            for queued in batch {
                let result = txn(members, &queued.job.txn, queued.repeat)
                    .await
                    .map(|resp| Reply {
                        revision: resp.header().map_or(0, |h| h.revision()),
                        resp,
                    });
                let _ = queued.reply.send(result);
            }
        }
    }
}

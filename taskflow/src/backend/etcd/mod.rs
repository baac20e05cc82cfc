//! The etcd backend: any number of worker processes, on any number of machines, share the work through etcd.
//!
//! * Every state change is one transaction guarded by the task document's `mod_revision` and, for a worker, by its
//!   claim (`create_revision` of the claim key = the fencing token). A worker that lost its claim has its late commit
//!   rejected.
//! * Claims live on the worker session's lease, renewed every TTL/6; when a worker dies its claims expire after
//!   the TTL and the messages go to the others. [`Session::close`] revokes the lease (claims released at once).
//! * A worker learns of work from one watch (resumed from the last seen revision; re-listed after a compaction), never
//!   by polling.
//! * Concurrent claims and commits of different tasks are batched into one transaction of nested transactions.
//! * Listing reads small per-task summaries, and only the bodies of the page.
//! * Ended tasks are deleted after the retention by one elected worker.
//! * Every request goes to the leader among the configured members and follows it when a member fails (`members.rs`).
//! * Waits for tasks share one watch per kind of wait, opened from the current revision (`waiters.rs`).
//!
//! The key layout is documented on [`KeyLayout`] and in `ARCHITECTURE.md` ("etcd backend").

#[cfg(feature = "cli")]
mod args;
mod batch;
mod config;
mod error;
mod keys;
mod listing;
mod members;
mod requests;
mod retries;
mod session;
mod wait;
mod waiters;

#[cfg(feature = "cli")]
pub use args::EtcdArgs;
pub use config::{ETCD_MAX_REQUEST_BYTES, EtcdConfig};
pub use etcd_client;
pub use keys::KeyLayout;

use super::{
    Backend, Commit, Created, FeedEvent, Message, Session, Stored, TaskPage, TaskQuery, Transition,
    WorkerSpec, is_resend,
};
use crate::error::BackendError;
use crate::model::{Fingerprint, Task};
use crate::sync::lock;
use batch::{Batcher, Job, Limits};
use error::Fail;
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use members::{Members, Repeat};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The etcd backend. Cheap to clone (one client per etcd member, shared).
#[derive(Clone)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Every request goes through it: to the leader, and to the next leader when that one fails.
    members: Arc<Members>,
    config: EtcdConfig,
    keys: KeyLayout,
    batcher: Batcher,
    /// A short lease shared by the cancellation keys written in a while: (id, granted at).
    cancel_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
    /// The claims this process holds or is making.
    claims: Claims,
    /// etcd refused a write for lack of space and no write went through since (see `retries.rs`).
    out_of_space: crate::retry::Episode,
    /// The waits for tasks and their shared watches (see `waiters.rs`).
    waiters: waiters::Waiters,
}

/// The claims this process holds (task id → fence) and the claim requests in flight (task id → count), to tell a
/// claim whose answer was lost (an orphan) from one in use.
#[derive(Default)]
pub(crate) struct Claims {
    held: std::sync::Mutex<HashMap<String, u64>>,
    attempts: std::sync::Mutex<HashMap<String, usize>>,
}

/// A claim request in flight (until dropped).
pub(crate) struct Attempt<'a> {
    claims: &'a Claims,
    task_id: String,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut attempts = lock(&self.claims.attempts);
        if let Some(n) = attempts.get_mut(&self.task_id) {
            *n -= 1;
            if *n == 0 {
                attempts.remove(&self.task_id);
            }
        }
    }
}

impl Claims {
    pub(crate) fn attempt(&self, task_id: &str) -> Attempt<'_> {
        *lock(&self.attempts).entry(task_id.to_owned()).or_default() += 1;
        Attempt {
            claims: self,
            task_id: task_id.to_owned(),
        }
    }

    pub(crate) fn attempting(&self, task_id: &str) -> bool {
        lock(&self.attempts).contains_key(task_id)
    }

    pub(crate) fn held(&self, task_id: &str, fence: u64) {
        lock(&self.held).insert(task_id.to_owned(), fence);
    }

    pub(crate) fn is_held(&self, task_id: &str, fence: u64) -> bool {
        lock(&self.held).get(task_id) == Some(&fence)
    }

    pub(crate) fn released(&self, task_id: &str, fence: u64) {
        let mut held = lock(&self.held);
        if held.get(task_id) == Some(&fence) {
            held.remove(task_id);
        }
    }
}

impl Inner {
    /// Sends a write that must not be applied twice (see [`Repeat::IfUndelivered`]).
    async fn submit(&self, job: Job) -> Result<batch::Reply, Fail> {
        self.batcher.submit(job, Repeat::IfUndelivered).await
    }

    /// Sends a write whose guard makes a second application a no-op that reports the first one (a commit, a release, a
    /// create with a dispatch fingerprint): it is sent again after any transient failure, within the request timeout.
    async fn submit_repeatable(&self, job: Job) -> Result<batch::Reply, Fail> {
        self.batcher.submit(job, Repeat::Safe).await
    }

    /// A lease for cancellation keys: they only need to live long enough to be seen by the watching workers.
    async fn cancel_lease(&self, fresh: bool) -> Result<i64, Fail> {
        let mut cached = self.cancel_lease.lock().await;
        if let Some((id, granted)) = *cached
            && !fresh
            && granted.elapsed() < self.config.cancel_ttl / 2
        {
            return Ok(id);
        }
        let ttl = self.config.cancel_ttl.as_secs().max(2) as i64;
        let id = self.lease_grant(ttl).await?;
        *cached = Some((id, Instant::now()));
        Ok(id)
    }
}

/// The room every write of a task leaves free for the writes that may use it (see [`Transition::use_reserve`]): a
/// failure recorded in place of a write that did not fit adds less than this to the last stored document.
const SIZE_RESERVE: usize = 16 * 1024;

/// Reads every key in `[start, end)` at one revision (`0` = the latest), page by page. Returns the revision read.
pub(crate) async fn range(
    inner: &Inner,
    start: Vec<u8>,
    end: Vec<u8>,
    revision: i64,
    keys_only: bool,
) -> Result<(Vec<KeyValue>, i64), Fail> {
    const PAGE: i64 = 1000;
    let mut revision = revision;
    let mut from = start;
    let mut out = Vec::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        if keys_only {
            options = options.with_keys_only();
        }
        let (key, options) = (&from, &options);
        let mut resp = inner
            .members
            .repeatable(|mut c| async move { c.get(key.clone(), Some(options.clone())).await })
            .await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last() else { break };
        let mut next = last.key().to_vec();
        next.push(0);
        out.extend(kvs);
        if !more {
            break;
        }
        from = next;
    }
    Ok((out, revision))
}

/// Reads every key under `prefix` (see [`range`]).
pub(crate) async fn range_prefix(
    inner: &Inner,
    prefix: &str,
    revision: i64,
    keys_only: bool,
) -> Result<(Vec<KeyValue>, i64), Fail> {
    let start = prefix.as_bytes().to_vec();
    range(inner, start, keys::prefix_end(prefix), revision, keys_only).await
}

impl EtcdBackend {
    /// Connects with this configuration (see [`EtcdConfig::connect`]).
    pub async fn connect(config: EtcdConfig) -> Result<Self, BackendError> {
        config.check_lease_ttl()?;
        if config.endpoints.is_empty() {
            return Err(BackendError::Other(
                "etcd backend: no endpoint configured".to_owned(),
            ));
        }
        let unreachable = |fail: Fail| {
            let reason = format!(
                "cannot reach etcd at {} within {:?}: {fail}",
                config.endpoints.join(", "),
                config.connect_timeout
            );
            BackendError::from(Fail::unavailable_because(reason, &fail))
        };
        let keys = KeyLayout::new(&config.prefix);
        let members = Members::connect(
            &config.endpoints,
            config.connect_options(),
            keys.space_check(),
            config.connect_timeout,
            config.request_timeout,
        )
        .await
        .map_err(unreachable)?;
        let limits = Limits {
            batching: config.batching,
            max_ops: config.max_batch_ops,
            max_bytes: 1024 * 1024,
            max_in_flight: config.max_in_flight,
        };
        let batcher = Batcher::start(Arc::clone(&members), limits, keys.space_check());
        Ok(Self {
            inner: Arc::new(Inner {
                members,
                keys,
                batcher,
                config,
                cancel_lease: tokio::sync::Mutex::new(None),
                claims: Claims::default(),
                out_of_space: crate::retry::Episode::default(),
                waiters: waiters::Waiters::default(),
            }),
        })
    }

    /// The key layout of this backend's namespace.
    pub fn keys(&self) -> &KeyLayout {
        &self.inner.keys
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The etcd client of the member this backend uses now, the leader as far as it knows (for tooling: inspecting
    /// keys, compaction, ...). Requests made with it do not move to another member when this one fails.
    pub fn client(&self) -> Client {
        self.inner.members.client()
    }

    /// The live workers (their specs: node, queues, executors), e.g. to explain why a step waits.
    pub async fn workers(&self) -> Result<Vec<WorkerSpec>, BackendError> {
        let prefix = self.inner.keys.workers();
        let (kvs, _) = range_prefix(&self.inner, &prefix, 0, false).await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }

    /// Runs one pass of the retention cleaner now (whoever is elected also does it periodically); returns how many
    /// expired tasks were deleted.
    pub async fn purge_expired(&self) -> Result<usize, BackendError> {
        match self.inner.config.retention {
            Some(retention) => Ok(listing::clean_expired(&self.inner, retention).await?),
            None => Ok(0),
        }
    }

    /// Refuses a write of a task whose values (document, listing summary, message) add up to more than the limit, less
    /// the reserve unless the write may use it (see [`Transition::use_reserve`]).
    fn check_size(&self, bytes: usize, use_reserve: bool) -> Result<(), BackendError> {
        let limit = self.inner.config.max_document_bytes;
        let limit = if use_reserve {
            limit
        } else {
            limit.saturating_sub(SIZE_RESERVE)
        };
        if bytes > limit {
            return Err(BackendError::TooLarge { size: bytes, limit });
        }
        Ok(())
    }

    fn check_id(task_id: &str) -> Result<(), BackendError> {
        if task_id.is_empty() || task_id.contains('/') {
            return Err(BackendError::Other(format!(
                "task id `{task_id}` is not usable in an etcd key (empty or has `/`)"
            )));
        }
        Ok(())
    }
}

fn message_json(message: &Message) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_default()
}

fn parse_task(key: &str, kv: &KeyValue) -> Result<Stored<Task>, BackendError> {
    match serde_json::from_slice::<Task>(kv.value()) {
        Ok(value) => Ok(Stored {
            value,
            revision: kv.mod_revision() as u64,
        }),
        Err(e) => Err(BackendError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The dispatch fingerprint of a stored document (`None` if it has none or does not parse).
fn stored_fingerprint(kv: &KeyValue) -> Option<Fingerprint> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Fingerprinted {
        dispatch_fingerprint: Option<Fingerprint>,
    }
    serde_json::from_slice::<Fingerprinted>(kv.value())
        .ok()
        .and_then(|doc| doc.dispatch_fingerprint)
}

/// The document read in a transaction's `get` response, if any.
fn got(op: Option<TxnOpResponse>) -> Option<KeyValue> {
    match op {
        Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn create(&self, task: &Arc<Task>) -> Result<Created, BackendError> {
        Self::check_id(&task.task_id)?;
        let inner = &self.inner;
        let keys = &inner.keys;
        let doc = serde_json::to_vec(task).map_err(|e| BackendError::Other(e.to_string()))?;
        let doc_key = keys.task(&task.task_id);
        let (summary, summary_ops, summary_bytes) = listing::summary_op(inner, task);
        let mut ops = vec![TxnOp::put(doc_key.clone(), doc.clone(), None), summary];
        let mut bytes = doc.len() + summary_bytes;
        if let Some(message) = Message::of(task) {
            let json = message_json(&message);
            bytes += json.len();
            ops.push(TxnOp::put(
                keys.message(&message.route, &task.task_id),
                json,
                None,
            ));
        }
        self.check_size(bytes, false)?;
        // The guard, the writes, and the read of the stored document if the guard fails.
        let count = 1 + ops.len() + summary_ops + 1;
        let txn = Txn::new()
            .when([Compare::create_revision(
                doc_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(ops)
            .or_else([TxnOp::get(doc_key, None)]);
        let job = Job {
            task: task.task_id.clone(),
            txn,
            ops: count,
            bytes,
        };
        // With a fingerprint, a create sent again after an ambiguous failure whose first attempt was applied finds its
        // own document and reports it as existing: it may be repeated.
        let reply = if task.dispatch_fingerprint.is_some() {
            inner.submit_repeatable(job).await?
        } else {
            inner.submit(job).await?
        };
        if reply.resp.succeeded() {
            return Ok(Created::Stored {
                revision: reply.revision as u64,
            });
        }
        // The id is taken: by this very call if the document read with the failed guard is byte for byte this one (a
        // create with a fingerprint was sent again, to another member, after a failure that hid its success: the document carries the
        // times of this call, so another dispatch does not write the same bytes); by this very task if it has its
        // fingerprint (a re-send after an answer was lost, or by a caller).
        match got(reply.resp.op_responses().into_iter().next()) {
            Some(kv) if task.dispatch_fingerprint.is_some() && kv.value() == doc.as_slice() => {
                Ok(Created::Stored {
                    revision: kv.mod_revision() as u64,
                })
            }
            Some(kv) if is_resend(stored_fingerprint(&kv), task) => Ok(Created::Existing {
                revision: kv.mod_revision() as u64,
            }),
            _ => Err(BackendError::AlreadyExists(task.task_id.clone())),
        }
    }

    async fn get(&self, task_id: &str) -> Result<Option<Stored<Task>>, BackendError> {
        let key = self.inner.keys.task(task_id);
        let resp = self.inner.get(&key).await?;
        resp.kvs()
            .first()
            .map(|kv| parse_task(&key, kv))
            .transpose()
    }

    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, BackendError> {
        Ok(listing::list(&self.inner, query).await?)
    }

    async fn commit(&self, t: &Transition<'_>) -> Result<Commit, BackendError> {
        let inner = &self.inner;
        let keys = &inner.keys;
        let task_id = t.task.task_id.clone();
        let doc = serde_json::to_vec(&t.task).map_err(|e| BackendError::Other(e.to_string()))?;
        let doc_key = keys.task(&task_id);
        let mut fresh_lease = false;
        loop {
            let cancel_lease = if t.cancel {
                Some(inner.cancel_lease(fresh_lease).await?)
            } else {
                None
            };
            let mut compares = vec![Compare::mod_revision(
                doc_key.clone(),
                CompareOp::Equal,
                t.expected_revision as i64,
            )];
            if let Some(token) = &t.claim {
                compares.push(Compare::create_revision(
                    keys.claim(&task_id),
                    CompareOp::Equal,
                    token.fence as i64,
                ));
            }
            let mut ops = vec![TxnOp::put(doc_key.clone(), doc.clone(), None)];
            let mut bytes = doc.len();
            let next = Message::of(&t.task);
            let previous_key = t
                .previous
                .as_ref()
                .map(|m| keys.message(&m.route, &task_id));
            let next_key = next.as_ref().map(|m| keys.message(&m.route, &task_id));
            if let Some(previous_key) = &previous_key
                && next_key.as_ref() != Some(previous_key)
            {
                ops.push(TxnOp::delete(previous_key.clone(), None));
            }
            if let (Some(next), Some(next_key)) = (&next, next_key)
                && t.previous != Some(next)
            {
                let json = message_json(next);
                bytes += json.len();
                ops.push(TxnOp::put(next_key, json, None));
            }
            let (summary, summary_ops, summary_bytes) = listing::summary_op(inner, &t.task);
            ops.push(summary);
            bytes += summary_bytes;
            self.check_size(bytes, t.use_reserve)?;
            if let (true, Some(_)) = (t.release_claim, &t.claim) {
                ops.push(TxnOp::delete(keys.claim(&task_id), None));
            }
            if let Some(lease) = cancel_lease {
                ops.push(TxnOp::put(
                    keys.cancel(&task_id),
                    "1",
                    Some(PutOptions::new().with_lease(lease)),
                ));
            }
            let count = ops.len() + summary_ops + compares.len();
            let txn = Txn::new()
                .when(compares)
                .and_then(ops)
                .or_else([TxnOp::get(doc_key.clone(), None)]);
            let reply = match inner
                .submit_repeatable(Job {
                    task: task_id.clone(),
                    txn,
                    ops: count,
                    bytes,
                })
                .await
            {
                Ok(reply) => reply,
                Err(Fail::LeaseNotFound(_)) if t.cancel && !fresh_lease => {
                    fresh_lease = true;
                    continue;
                }
                Err(fail) => return Err(fail.into()),
            };
            let applied = || {
                inner.has_space();
                if let (true, Some(token)) = (t.release_claim, &t.claim) {
                    inner.claims.released(&task_id, token.fence);
                }
            };
            if reply.resp.succeeded() {
                applied();
                return Ok(Commit::Applied {
                    revision: reply.revision as u64,
                });
            }
            // Rejected, unless the stored document is byte for byte ours (a commit sent again after an ambiguous
            // failure whose first attempt was applied).
            return Ok(match got(reply.resp.op_responses().into_iter().next()) {
                Some(kv) if kv.value() == doc.as_slice() => {
                    applied();
                    Commit::Applied {
                        revision: kv.mod_revision() as u64,
                    }
                }
                other => {
                    tracing::debug!(task_id, expected = t.expected_revision, found = ?other.map(|kv| kv.mod_revision()), claim = ?t.claim, release = t.release_claim, "commit conflict");
                    Commit::Conflict
                }
            });
        }
    }

    async fn wait_change(
        &self,
        task_id: &str,
        after: u64,
    ) -> Result<Option<Stored<Task>>, BackendError> {
        self.wait_for(task_id, waiters::Kind::Change, &|stored| {
            stored.revision > after
        })
        .await
    }

    async fn wait_settled(&self, task_id: &str) -> Result<Option<Stored<Arc<Task>>>, BackendError> {
        let settled = self.wait_for(task_id, waiters::Kind::Settle, &|stored| {
            stored.value.is_settled()
        });
        Ok(settled.await?.map(|stored| Stored {
            value: Arc::new(stored.value),
            revision: stored.revision,
        }))
    }

    async fn workers(&self) -> Result<Vec<WorkerSpec>, BackendError> {
        EtcdBackend::workers(self).await
    }

    async fn open_session(
        &self,
        spec: WorkerSpec,
    ) -> Result<(Arc<dyn Session>, mpsc::UnboundedReceiver<FeedEvent>), BackendError> {
        let (session, feed) = session::open(Arc::clone(&self.inner), spec).await?;
        Ok((session, feed))
    }
}

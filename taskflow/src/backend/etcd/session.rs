//! Worker sessions: the lease (kept alive every TTL/3), the claims on it, and the feed (one watch).

use super::batch::Job;
use super::error::Fail;
use super::keys::FeedKey;
use super::{Inner, got, listing, message_json, range_prefix};
use crate::backend::{
    ClaimToken, Claimed, CorruptTask, FeedEvent, Message, Session, Stored, WorkerSpec,
};
use crate::error::BackendError;
use crate::model::Task;
use etcd_client::{
    Compare, CompareOp, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp,
    WatchOptions, WatchResponse, WatchStream,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a session shares between its handle (claims) and its driver (lease, feed).
struct Shared {
    inner: Arc<Inner>,
    spec: WorkerSpec,
    /// The current lease (0 while the session re-registers after losing it).
    lease: AtomicI64,
    closed: CancellationToken,
    /// The messages the feed knows, with their mod revisions.
    known: Known,
    /// The claims the feed knows.
    claimed: ClaimSet,
}

impl Shared {
    fn ttl(&self) -> Duration {
        self.inner.config.lease_ttl
    }

    fn lease(&self) -> Result<i64, BackendError> {
        if self.closed.is_cancelled() {
            return Err(BackendError::SessionClosed("session closed".to_owned()));
        }
        match self.lease.load(Ordering::Acquire) {
            0 => Err(BackendError::SessionClosed(
                "session lost its lease; re-registering".to_owned(),
            )),
            lease => Ok(lease),
        }
    }

    /// Grants a lease and registers the worker on it.
    async fn register(&self) -> Result<i64, Fail> {
        let inner = &self.inner;
        let ttl = self.ttl().as_secs().max(2) as i64;
        let lease = inner.lease_grant(ttl).await?;
        let spec = &serde_json::to_vec(&self.spec).unwrap_or_default();
        let key = &inner.keys.worker(&self.spec.worker_id);
        let put = |mut c: etcd_client::Client| async move {
            let options = PutOptions::new().with_lease(lease);
            c.put(key.as_str(), spec.as_slice(), Some(options)).await
        };
        inner.members.repeatable(put).await?;
        Ok(lease)
    }
}

/// Opens a session: lease, worker key, first snapshot, then the driver task.
pub(super) async fn open(
    inner: Arc<Inner>,
    spec: WorkerSpec,
) -> Result<(Arc<EtcdSession>, mpsc::UnboundedReceiver<FeedEvent>), BackendError> {
    let shared = Arc::new(Shared {
        inner,
        spec,
        lease: AtomicI64::new(0),
        known: Known::default(),
        claimed: ClaimSet::default(),
        closed: CancellationToken::new(),
    });
    let lease = shared.register().await?;
    shared.lease.store(lease, Ordering::Release);
    let (feed, rx) = mpsc::unbounded_channel();
    let mut view = View::new(
        &shared.spec,
        Arc::clone(&shared.known),
        Arc::clone(&shared.claimed),
    );
    let revision = match view.load(&shared.inner).await {
        Ok((revision, _)) => revision,
        Err(fail) => {
            let _ = shared.inner.lease_revoke(lease).await;
            return Err(fail.into());
        }
    };
    let _ = feed.send(FeedEvent::Snapshot(view.claimable()));
    let driver = Driver {
        shared: Arc::clone(&shared),
        feed,
        view,
        revision,
        lease,
        keeper: None,
        renewed: Instant::now(),
        sent: None,
        watch: None,
        feed_closed: false,
    };
    tokio::spawn(driver.run());
    if let Some(every) = shared.inner.config.retention_every() {
        tokio::spawn(retention(Arc::clone(&shared), every));
    }
    Ok((Arc::new(EtcdSession { shared }), rx))
}

/// A worker's session on etcd.
pub(super) struct EtcdSession {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Session for EtcdSession {
    async fn claim(&self, message: &Message) -> Result<Option<Claimed>, BackendError> {
        let shared = &self.shared;
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
        let txn = Txn::new()
            .when([
                Compare::create_revision(claim_key.clone(), CompareOp::Equal, 0),
                message_guard(shared, message),
            ])
            .and_then([
                TxnOp::put(
                    claim_key.clone(),
                    shared.spec.worker_id.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::get(doc_key.clone(), None),
            ]);
        let attempt = inner.claims.attempt(task_id);
        let reply = match inner
            .submit(Job {
                task: task_id.clone(),
                txn,
                ops: 5,
                bytes: 512,
            })
            .await
        {
            Ok(reply) => reply,
            Err(fail) => {
                if let Fail::Unavailable(_) = fail {
                    // The claim may have been applied although its answer was lost: such a claim would hold the
                    // message as long as the session lives. Look for it once etcd answers again.
                    tokio::spawn(drop_orphan(Arc::clone(shared), task_id.clone(), lease));
                }
                return Err(fail.into());
            }
        };
        if !reply.resp.succeeded() {
            return Ok(None);
        }
        let fence = reply.revision as u64;
        inner.claims.held(task_id, fence);
        drop(attempt);
        let token = ClaimToken {
            task_id: task_id.clone(),
            fence,
        };
        let Some(doc) = got(reply.resp.op_responses().into_iter().nth(1)) else {
            // A message without a document (deleted meanwhile): nothing to do.
            let _ = self.release(&token).await;
            return Ok(None);
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

    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError> {
        let shared = &self.shared;
        let key = shared.inner.keys.claim(&token.task_id);
        shared.inner.claims.released(&token.task_id, token.fence);
        match release_key(shared, &key, token.fence as i64).await {
            Ok(()) => Ok(()),
            Err(Fail::Unavailable(reason)) => {
                // Keep trying in the background: a claim nobody releases would hold the message as long as the
                // session lives.
                tracing::debug!(task_id = %token.task_id, reason, "release failed; retrying in the background");
                let shared = Arc::clone(shared);
                let fence = token.fence as i64;
                tokio::spawn(async move {
                    let mut delay = Duration::from_millis(100);
                    while !shared.closed.is_cancelled() {
                        tokio::time::sleep(delay).await;
                        match release_key(&shared, &key, fence).await {
                            Err(Fail::Unavailable(_)) => {
                                delay = (delay * 2).min(Duration::from_secs(5))
                            }
                            _ => return,
                        }
                    }
                });
                Ok(())
            }
            Err(fail) => Err(fail.into()),
        }
    }

    async fn close(&self) -> Result<(), BackendError> {
        let shared = &self.shared;
        if shared.closed.is_cancelled() {
            return Ok(());
        }
        shared.closed.cancel();
        let lease = shared.lease.swap(0, Ordering::AcqRel);
        if lease != 0 {
            shared.inner.lease_revoke(lease).await?;
        }
        Ok(())
    }
}

/// After a claim whose answer was lost: deletes the claim of the task if it is on this session's lease and no claim
/// this process knows (held, or being made) explains it.
async fn drop_orphan(shared: Arc<Shared>, task_id: String, lease: i64) {
    let inner = Arc::clone(&shared.inner);
    let key = inner.keys.claim(&task_id);
    let mut delay = Duration::from_millis(200);
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.closed.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        if shared.lease.load(Ordering::Acquire) != lease {
            return;
        }
        if inner.claims.attempting(&task_id) {
            continue;
        }
        let claim = match super::get(&inner, &key).await {
            Ok(resp) => resp.kvs().first().cloned(),
            Err(_) => continue,
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
        if !matches!(
            release_key(&shared, &key, claim.create_revision()).await,
            Err(Fail::Unavailable(_))
        ) {
            return;
        }
    }
}

/// The guard that the message is still the one the worker saw: its mod revision as the feed saw it when the feed
/// knows the same message (the engine may only have postponed its due time), else its exact value.
fn message_guard(shared: &Shared, message: &Message) -> Compare {
    let key = shared.inner.keys.message(&message.route, &message.task_id);
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

impl Drop for EtcdSession {
    /// A session dropped without [`Session::close`] ends too: its lease is revoked (claims released at once).
    fn drop(&mut self) {
        let shared = &self.shared;
        if shared.closed.is_cancelled() {
            return;
        }
        shared.closed.cancel();
        let lease = shared.lease.swap(0, Ordering::AcqRel);
        if let (true, Ok(runtime)) = (lease != 0, tokio::runtime::Handle::try_current()) {
            let inner = Arc::clone(&shared.inner);
            runtime.spawn(async move {
                let _ = inner.lease_revoke(lease).await;
            });
        }
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

/// The messages of a session's routes with their mod revisions, shared by the feed (which keeps it current) and the
/// claims (which are guarded by the revision the feed saw).
type Known = Arc<std::sync::Mutex<HashMap<String, (Message, i64)>>>;

fn known(known: &Known) -> std::sync::MutexGuard<'_, HashMap<String, (Message, i64)>> {
    crate::sync::lock(known)
}

/// What the feed knows: the messages of the session's routes and every claim.
struct View {
    routes: HashSet<String>,
    messages: Known,
    claims: ClaimSet,
}

/// The tasks whose message is claimed (as far as the feed knows), shared like [`Known`].
type ClaimSet = Arc<std::sync::Mutex<HashSet<String>>>;

fn claimed(claimed: &ClaimSet) -> std::sync::MutexGuard<'_, HashSet<String>> {
    crate::sync::lock(claimed)
}

impl View {
    fn new(spec: &WorkerSpec, messages: Known, claims: ClaimSet) -> Self {
        Self {
            routes: spec.routes().iter().map(crate::model::Route::key).collect(),
            messages,
            claims,
        }
    }

    /// Reads the messages this session hears of (see [`View::hears`]) and every claim at one revision; returns it,
    /// with each claim's create revision by task id.
    async fn load(&mut self, inner: &Inner) -> Result<(i64, HashMap<String, i64>), Fail> {
        let keys = &inner.keys;
        let (claims, revision) = range_prefix(inner, &keys.claims(), 0, true).await?;
        let mut claim_revisions = HashMap::new();
        let mut loaded = HashMap::new();
        for kv in &claims {
            if let Ok(FeedKey::Claim(task_id)) = kv.key_str().map(|k| keys.parse_feed(k)) {
                claim_revisions.insert(task_id.to_owned(), kv.create_revision());
            }
        }
        let (messages, _) = range_prefix(inner, &keys.all_messages(), revision, false).await?;
        for kv in &messages {
            let Ok(FeedKey::Message { route, .. }) = kv.key_str().map(|k| keys.parse_feed(k))
            else {
                continue;
            };
            if let Ok(message) = serde_json::from_slice::<Message>(kv.value())
                && self.hears(route, &message)
            {
                loaded.insert(message.task_id.clone(), (message, kv.mod_revision()));
            }
        }
        *known(&self.messages) = loaded;
        *claimed(&self.claims) = claim_revisions.keys().cloned().collect();
        Ok((revision, claim_revisions))
    }

    /// Whether this session hears of a message on `route` (a route key): it serves the route, or the message has a
    /// deadline (every session hears of those, so that some worker times the task out even when none serves it).
    fn hears(&self, route: &str, message: &Message) -> bool {
        message.deadline.is_some() || self.routes.contains(route)
    }

    fn claimable(&self) -> Vec<Message> {
        let claims = claimed(&self.claims);
        known(&self.messages)
            .values()
            .filter(|(m, _)| !claims.contains(&m.task_id))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Applies one watched change; returns what the worker must hear (as the memory backend would say it).
    fn apply(
        &mut self,
        inner: &Inner,
        event_type: EventType,
        kv: &etcd_client::KeyValue,
        key: &str,
        out: &mut Vec<FeedEvent>,
    ) {
        let value = kv.value();
        match inner.keys.parse_feed(key) {
            FeedKey::Cancel(task_id) => {
                if event_type == EventType::Put {
                    out.push(FeedEvent::Cancel {
                        task_id: task_id.to_owned(),
                    });
                }
            }
            FeedKey::Claim(task_id) => match event_type {
                EventType::Put => {
                    claimed(&self.claims).insert(task_id.to_owned());
                }
                EventType::Delete => {
                    claimed(&self.claims).remove(task_id);
                    if let Some((message, _)) = known(&self.messages).get(task_id) {
                        out.push(FeedEvent::Upsert(message.clone()));
                    }
                }
            },
            FeedKey::Message { route, task_id } => {
                let message = match event_type {
                    EventType::Put => match serde_json::from_slice::<Message>(value) {
                        Ok(message) => Some(message),
                        Err(_) if self.routes.contains(route) => {
                            tracing::warn!(key, "ignoring a message that does not parse");
                            return;
                        }
                        Err(_) => return,
                    },
                    EventType::Delete => None,
                };
                // A message this session does not hear of is as good as gone (it may have heard of an earlier one).
                let message = message.filter(|message| self.hears(route, message));
                match message {
                    Some(message) => {
                        let old = known(&self.messages)
                            .insert(task_id.to_owned(), (message.clone(), kv.mod_revision()));
                        if old.is_some_and(|(old, _)| old != message) {
                            out.push(FeedEvent::Remove {
                                task_id: task_id.to_owned(),
                            });
                        }
                        if !claimed(&self.claims).contains(task_id) {
                            out.push(FeedEvent::Upsert(message));
                        }
                    }
                    None => {
                        let removed = known(&self.messages).remove(task_id);
                        if removed.is_some() {
                            out.push(FeedEvent::Remove {
                                task_id: task_id.to_owned(),
                            });
                        }
                    }
                }
            }
            FeedKey::Other => {}
        }
    }
}

/// Keeps the lease alive and turns the watch into feed events.
struct Driver {
    shared: Arc<Shared>,
    feed: mpsc::UnboundedSender<FeedEvent>,
    view: View,
    /// Every change up to this revision has been applied.
    revision: i64,
    lease: i64,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    /// When the last keep-alive that etcd confirmed was sent (the lease lives at least TTL from then).
    renewed: Instant,
    /// When the outstanding keep-alive was sent.
    sent: Option<Instant>,
    watch: Option<WatchStream>,
    /// The worker dropped its feed.
    feed_closed: bool,
}

/// The tasks whose cancellation signal is alive at `revision` and whose claim then (`claims`: create revisions by task
/// id, read at `revision`) was taken before the signal: the runs the signal was meant to stop. (A signal outlives a
/// retry of its task until its lease ends: a run claimed after the signal is a retried one, not to be stopped.)
async fn cancelled_at(
    inner: &Inner,
    revision: i64,
    claims: &HashMap<String, i64>,
) -> Result<Vec<String>, Fail> {
    let (signals, _) = range_prefix(inner, &inner.keys.cancels(), revision, true).await?;
    Ok(signals
        .iter()
        .filter_map(|signal| {
            let FeedKey::Cancel(task_id) = inner.keys.parse_feed(signal.key_str().ok()?) else {
                return None;
            };
            let claimed = *claims.get(task_id)?;
            (claimed < signal.mod_revision()).then(|| task_id.to_owned())
        })
        .collect())
}

enum Wake {
    Closed,
    Watch(Result<Option<WatchResponse>, etcd_client::Error>),
    KeepAlive(Result<Option<etcd_client::LeaseKeepAliveResponse>, etcd_client::Error>),
    Tick,
    FeedClosed,
}

impl Driver {
    async fn run(mut self) {
        let mut tick = Instant::now();
        loop {
            let wake = tokio::select! {
                biased;
                () = self.shared.closed.cancelled() => Wake::Closed,
                () = self.feed.closed(), if !self.feed_closed => Wake::FeedClosed,
                message = next_watch(&mut self.watch) => Wake::Watch(message),
                response = next_keep_alive(&mut self.keeper) => Wake::KeepAlive(response),
                () = tokio::time::sleep_until(tick) => Wake::Tick,
            };
            match wake {
                Wake::Closed => break,
                Wake::FeedClosed => {
                    // The worker stopped listening (it is shutting down): no more events, but its claims stay
                    // valid (its running steps may still commit) until it closes the session or drops it.
                    self.feed_closed = true;
                    self.watch = None;
                }
                Wake::Watch(Ok(Some(resp))) => self.on_watch(resp).await,
                Wake::Watch(result) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "the feed watch broke; reconnecting");
                    }
                    self.watch = None;
                    tick = tick.min(Instant::now() + self.shared.inner.config.reconnect_delay);
                }
                Wake::KeepAlive(Ok(Some(resp))) => {
                    if resp.ttl() <= 0 {
                        self.lost("the lease expired").await;
                    } else if let Some(sent) = self.sent.take() {
                        self.renewed = sent;
                    }
                }
                Wake::KeepAlive(_) => {
                    self.keeper = None;
                    self.sent = None;
                    tick = tick.min(Instant::now() + self.shared.inner.config.reconnect_delay);
                }
                Wake::Tick => tick = self.on_tick().await,
            }
        }
    }

    fn send(&self, event: FeedEvent) {
        let _ = self.feed.send(event);
    }

    /// Renews the lease, reconnects what broke; returns when to tick next.
    async fn on_tick(&mut self) -> Instant {
        let now = Instant::now();
        let ttl = self.shared.ttl();
        let retry = now + self.shared.inner.config.reconnect_delay;
        if now.duration_since(self.renewed) >= ttl {
            self.lost("the lease could not be renewed within its TTL")
                .await;
            return Instant::now() + ttl / 3;
        }
        let inner = Arc::clone(&self.shared.inner);
        let mut next = now + ttl / 3;
        match &mut self.keeper {
            Some((keeper, _)) => {
                if keeper.keep_alive().await.is_ok() {
                    self.sent.get_or_insert(now);
                } else {
                    self.keeper = None;
                    next = retry;
                }
            }
            None => {
                let lease = self.lease;
                let open =
                    |mut c: etcd_client::Client| async move { c.lease_keep_alive(lease).await };
                let limit = inner.config.request_timeout.min(ttl / 3);
                match inner.members.repeatable_within(limit, open).await {
                    Ok(keeper) => {
                        self.renewed = now;
                        self.keeper = Some(keeper);
                    }
                    Err(Fail::LeaseNotFound(_)) => {
                        self.lost("the lease expired").await;
                        return Instant::now() + ttl / 3;
                    }
                    Err(fail) => {
                        tracing::debug!(error = %fail, "lease keep-alive unavailable; retrying");
                        next = retry;
                    }
                }
            }
        }
        if self.watch.is_none() && !self.feed_closed && !self.open_watch().await {
            next = next.min(retry);
        }
        next
    }

    /// Opens the feed watch from the next revision. `false` if etcd cannot be reached.
    async fn open_watch(&mut self) -> bool {
        let inner = Arc::clone(&self.shared.inner);
        let (start, end) = inner.keys.feed_range();
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(self.revision + 1)
            .with_progress_notify();
        match inner.watch(start.as_bytes(), &options).await {
            Ok(stream) => {
                self.watch = Some(stream);
                true
            }
            Err(fail) => {
                tracing::debug!(error = %fail, "cannot open the feed watch; retrying");
                false
            }
        }
    }

    async fn on_watch(&mut self, resp: WatchResponse) {
        if resp.compact_revision() > 0 {
            tracing::info!(
                compacted = resp.compact_revision(),
                "the feed fell behind a compaction; re-listing"
            );
            self.watch = None;
            self.resync().await;
            return;
        }
        if resp.canceled() {
            tracing::debug!(
                reason = resp.cancel_reason(),
                "the feed watch was cancelled; reconnecting"
            );
            self.watch = None;
            return;
        }
        let mut out = Vec::new();
        let inner = Arc::clone(&self.shared.inner);
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            self.view
                .apply(&inner, event.event_type(), kv, key, &mut out);
            self.revision = self.revision.max(kv.mod_revision());
        }
        if resp.events().is_empty() && !resp.created() {
            // A progress notification: every change up to the header revision was sent.
            self.revision = self.revision.max(resp.header().map_or(0, |h| h.revision()));
        }
        for event in out {
            tracing::trace!(worker = %self.shared.spec.worker_id, ?event, "feed");
            self.send(event);
        }
    }

    /// Re-reads the routes' messages and the claims, sends a snapshot, and watches from there. The live cancellation
    /// signals of runs claimed before them are sent again after the snapshot: the watch events that told of them may
    /// be among those missed, and such a run may be here.
    async fn resync(&mut self) {
        let mut delay = Duration::from_millis(100);
        let inner = Arc::clone(&self.shared.inner);
        loop {
            if self.shared.closed.is_cancelled() {
                return;
            }
            let loaded = async {
                let (revision, claims) = self.view.load(&inner).await?;
                Ok::<_, Fail>((revision, cancelled_at(&inner, revision, &claims).await?))
            };
            match loaded.await {
                Ok((revision, cancelled)) => {
                    self.revision = revision;
                    self.send(FeedEvent::Snapshot(self.view.claimable()));
                    for task_id in cancelled {
                        self.send(FeedEvent::Cancel { task_id });
                    }
                    let _ = self.open_watch().await;
                    return;
                }
                Err(fail) => {
                    tracing::debug!(error = %fail, "re-listing the feed failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The lease is gone: tell the worker (every claim is void), then register again and resync.
    async fn lost(&mut self, reason: &str) {
        tracing::warn!(worker = %self.shared.spec.worker_id, reason, "worker session lost its lease");
        self.shared.lease.store(0, Ordering::Release);
        self.send(FeedEvent::Lost(reason.to_owned()));
        let old = self.lease;
        let inner = Arc::clone(&self.shared.inner);
        tokio::spawn(async move {
            let _ = inner.lease_revoke(old).await;
        });
        self.keeper = None;
        self.sent = None;
        self.watch = None;
        let mut delay = Duration::from_millis(100);
        loop {
            if self.shared.closed.is_cancelled() {
                return;
            }
            match self.shared.register().await {
                Ok(lease) => {
                    self.lease = lease;
                    self.renewed = Instant::now();
                    self.shared.lease.store(lease, Ordering::Release);
                    break;
                }
                Err(fail) => {
                    tracing::debug!(error = %fail, "re-registering the worker failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.shared.closed.cancelled() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        tracing::info!(worker = %self.shared.spec.worker_id, lease = self.lease, "worker session registered again");
        self.resync().await;
    }
}

async fn next_watch(
    watch: &mut Option<WatchStream>,
) -> Result<Option<WatchResponse>, etcd_client::Error> {
    match watch {
        Some(stream) => stream.message().await,
        None => std::future::pending().await,
    }
}

async fn next_keep_alive(
    keeper: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<Option<etcd_client::LeaseKeepAliveResponse>, etcd_client::Error> {
    match keeper {
        Some((_, stream)) => stream.message().await,
        None => std::future::pending().await,
    }
}

/// The retention cleaner: the worker holding `{prefix}/retention/leader` (on its lease) deletes expired tasks.
async fn retention(shared: Arc<Shared>, every: Duration) {
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
        // Sent again after a lost answer, the transaction finds its own key: repeatable.
        let txn = &txn;
        let elect = |mut c: etcd_client::Client| async move { c.txn(txn.clone()).await };
        let leader = match inner.members.repeatable(elect).await {
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

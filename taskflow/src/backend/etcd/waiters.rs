//! The waits of one backend and the shared watches that wake them: however many tasks are waited for, a backend has at
//! most one watch per kind of wait, opened from the current revision.
//!
//! * A wait registers (by task id) before it reads the task, then parks until its task's key changes: whatever
//!   commit follows the read, the watch sees it and wakes the wait, which reads the task again.
//! * The waits for a task's end ([`Kind::Settle`]) are woken by a watch of the listing summaries, which change only
//!   when the status, the times or [`settled`](super::listing::Summary::says_settled) change, and only when a summary
//!   says its task settled: a running task's commits cost them nothing. The waits for any change
//!   ([`Kind::Change`]) are woken by a watch of the task documents.
//! * A watch never starts in the past: etcd serves a watch whose start revision is behind its head from a catch-up
//!   loop that runs every 100 ms, which is what made a wait that read at R and watched from R + 1 take ~100 ms
//!   whenever the commit it waited for landed between the two. After it (re)opens — first start, broken stream,
//!   cancellation, another member — it wakes every wait of its kind to read its task again.
//! * A watch closes once its kind has had no wait for [`IDLE`], so that a process that waited once does not stream
//!   the changes of every task forever.

use super::Inner;
use super::error::Fail;
use super::listing::Summary;
use super::retries::Retries;
use crate::sync::lock;
use etcd_client::{EventType, WatchOptions, WatchResponse, WatchStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// How long a shared watch stays open without a wait to serve.
const IDLE: Duration = Duration::from_secs(10);

/// What a wait waits for, and so which shared watch wakes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any change of the task document (`wait_change`).
    Change,
    /// The end of the task and of its callback (`wait_settled`).
    Settle,
}

/// The waits of one backend, by kind, and how many are parked.
#[derive(Default)]
pub(crate) struct Waiters {
    change: Arc<Hub>,
    settle: Arc<Hub>,
    parked: AtomicUsize,
}

/// The waits of one kind and the state of their shared watch.
#[derive(Default)]
struct Hub {
    state: Mutex<HubState>,
    /// Told when the set of waited tasks empties or fills again (the watch closes after [`IDLE`] without a wait).
    activity: Notify,
}

#[derive(Default)]
struct HubState {
    /// The waited tasks by id: how many waits, and what wakes them.
    tasks: HashMap<String, Slot>,
    /// Whether the shared watch runs (or is being opened).
    running: bool,
}

struct Slot {
    waits: usize,
    wake: Arc<Notify>,
}

/// A wait registered with its kind's shared watch, until dropped.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    task_id: String,
    wake: Arc<Notify>,
}

impl Registration {
    /// A future that completes when the watch sees the task change (enable it before reading the task).
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.wake.notified()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = lock(&self.hub.state);
        if let Some(slot) = state.tasks.get_mut(&self.task_id) {
            slot.waits -= 1;
            if slot.waits == 0 {
                state.tasks.remove(&self.task_id);
                if state.tasks.is_empty() {
                    self.hub.activity.notify_waiters();
                }
            }
        }
    }
}

/// A parked wait, counted in [`Waiters::parked`] until dropped.
pub(crate) struct Parked<'a>(&'a AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Waiters {
    /// Registers a wait for `task_id`, starting the shared watch of its kind unless it runs.
    pub(crate) fn register(inner: &Arc<Inner>, kind: Kind, task_id: &str) -> Registration {
        let hub = Arc::clone(inner.waiters.hub(kind));
        let mut state = lock(&hub.state);
        let wake = match state.tasks.get_mut(task_id) {
            Some(slot) => {
                slot.waits += 1;
                Arc::clone(&slot.wake)
            }
            None => {
                let wake = Arc::new(Notify::new());
                let slot = Slot {
                    waits: 1,
                    wake: Arc::clone(&wake),
                };
                state.tasks.insert(task_id.to_owned(), slot);
                if state.tasks.len() == 1 {
                    hub.activity.notify_waiters();
                }
                wake
            }
        };
        if !state.running {
            state.running = true;
            tokio::spawn(watch(Arc::clone(inner), kind, Arc::clone(&hub)));
        }
        drop(state);
        Registration {
            hub,
            task_id: task_id.to_owned(),
            wake,
        }
    }

    /// Counts a wait as parked until the guard is dropped.
    pub(crate) fn park(&self) -> Parked<'_> {
        self.parked.fetch_add(1, Ordering::Relaxed);
        Parked(&self.parked)
    }

    /// How many waits are parked until their task changes.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    fn hub(&self, kind: Kind) -> &Arc<Hub> {
        match kind {
            Kind::Change => &self.change,
            Kind::Settle => &self.settle,
        }
    }
}

impl Hub {
    /// Wakes the waits of one task.
    fn wake(&self, task_id: &str) {
        if let Some(slot) = lock(&self.state).tasks.get(task_id) {
            slot.wake.notify_waiters();
        }
    }

    /// Wakes every wait (after the watch (re)opened: changes may have been missed meanwhile).
    fn wake_all(&self) {
        for slot in lock(&self.state).tasks.values() {
            slot.wake.notify_waiters();
        }
    }

    /// Completes once the hub has had no wait for [`IDLE`], marking its watch stopped: the next wait starts another.
    async fn idle(&self) {
        loop {
            let activity = self.activity.notified();
            tokio::pin!(activity);
            activity.as_mut().enable();
            if !lock(&self.state).tasks.is_empty() {
                activity.await;
                continue;
            }
            tokio::select! {
                () = activity => continue,
                () = tokio::time::sleep(IDLE) => {}
            }
            let mut state = lock(&self.state);
            if state.tasks.is_empty() {
                state.running = false;
                return;
            }
        }
    }
}

/// Runs the shared watch of a kind until it is idle: opens it from the current revision, wakes every wait, then wakes
/// the waits of each task it sees change; after a break, waits the backend's retry delay (started over after a watch
/// that opened) and opens it again.
async fn watch(inner: Arc<Inner>, kind: Kind, hub: Arc<Hub>) {
    let mut running = Running(Some(&hub));
    let mut retries = Retries::new(&inner);
    loop {
        let fail = match open(&inner, kind).await {
            Ok(mut stream) => {
                retries = Retries::new(&inner);
                hub.wake_all();
                tokio::select! {
                    fail = follow(&inner, kind, &hub, &mut stream) => fail,
                    () = hub.idle() => return running.stopped_idle(),
                }
            }
            Err(fail) => fail,
        };
        let what = format!("the shared watch of waited tasks ({kind:?})");
        if !retries.after(&fail, &what, hub.idle()).await {
            return running.stopped_idle();
        }
    }
}

/// While a hub's watch task lives: should it end other than by going idle (a panic, its runtime shutting down), marks
/// the watch stopped, so that the next wait starts another instead of waiting for one that is gone.
struct Running<'a>(Option<&'a Hub>);

impl Running<'_> {
    /// The watch stopped because the hub went idle, which marked it stopped already (a new one may run by now).
    fn stopped_idle(&mut self) {
        self.0 = None;
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(hub) = self.0 {
            lock(&hub.state).running = false;
        }
    }
}

/// Opens the watch of a kind's range from the current revision and waits until etcd created it: every commit after
/// that reaches it.
async fn open(inner: &Inner, kind: Kind) -> Result<WatchStream, Fail> {
    let prefix = prefix(inner, kind);
    let options = WatchOptions::new().with_prefix();
    let mut stream = inner.watch(prefix.as_bytes(), &options).await?;
    // A member that takes the stream but never answers must not hold every wait of this kind.
    let timeout = inner.config.request_timeout;
    let created = tokio::time::timeout(timeout, stream.message())
        .await
        .map_err(|_| {
            Fail::Unavailable(
                format!("the shared watch of waited tasks was not created within {timeout:?}")
                    .into(),
            )
        })?;
    match created? {
        Some(resp) if resp.created() && !resp.canceled() => Ok(stream),
        _ => Err(Fail::Unavailable(
            "the shared watch of waited tasks was not created".into(),
        )),
    }
}

/// Wakes the waits of the tasks the watch sees change until it breaks; returns why it broke.
async fn follow(inner: &Inner, kind: Kind, hub: &Hub, stream: &mut WatchStream) -> Fail {
    let prefix = prefix(inner, kind);
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return Fail::Unavailable("the shared watch of waited tasks ended".into()),
            Err(e) => return Fail::from(e),
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            let reason = format!(
                "the shared watch of waited tasks was cancelled: {}",
                resp.cancel_reason()
            );
            return Fail::Unavailable(reason.into());
        }
        wake_changed(kind, hub, &prefix, &resp);
    }
}

/// Wakes the waits of the tasks one watch response tells of: any change for [`Kind::Change`]; a summary that says
/// its task settled, or was deleted, for [`Kind::Settle`].
fn wake_changed(kind: Kind, hub: &Hub, prefix: &str, resp: &WatchResponse) {
    for event in resp.events() {
        let Some(kv) = event.kv() else { continue };
        let Some(task_id) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) else {
            continue;
        };
        let wakes = match (kind, event.event_type()) {
            (Kind::Change, _) | (Kind::Settle, EventType::Delete) => true,
            (Kind::Settle, EventType::Put) => Summary::says_settled(kv.value()),
        };
        if wakes {
            hub.wake(task_id);
        }
    }
}

/// The keys a kind's watch covers: the task documents, or the listing summaries.
fn prefix(inner: &Inner, kind: Kind) -> String {
    match kind {
        Kind::Change => inner.keys.tasks(),
        Kind::Settle => inner.keys.summaries(),
    }
}

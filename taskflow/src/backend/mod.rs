//! The backend contract: how the engine stores tasks, announces work to workers and commits state transitions.
//!
//! A backend stores, per task, one **document** (the [`Task`]) with a **revision**, and at most one **message**: the
//! work the task waits for (its current step, or its callback once it ended), derived from the document by
//! [`Message::of`]. Workers open a [`Session`] (a liveness lease), learn of messages on the routes they serve through
//! a feed of [`FeedEvent`]s, **claim** a message (exclusive, held by the session), run it, and **commit** a
//! [`Transition`]: the new document, guarded by the revision they read and by their claim, which atomically replaces
//! the task's message. See `ARCHITECTURE.md` for the full contract.

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;

mod query;

pub use query::{SortField, TaskPage, TaskQuery};

use crate::error::BackendError;
use crate::model::{Fingerprint, Route, RouteRef, StepStatus, Task, set};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A value with the revision it was stored at. Revisions grow with every change of the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    /// The value.
    pub value: T,
    /// Its revision (the guard of the next transition).
    pub revision: u64,
}

/// What a message asks a worker to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Work {
    /// Run the step `step` with the executor `executor`.
    Step {
        /// Step name.
        step: String,
        /// Executor name.
        executor: String,
    },
    /// Run the callback `callback` of an ended task.
    Callback {
        /// Callback name.
        callback: String,
    },
}

/// A [`Work`] borrowed from a task document.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WorkRef<'a> {
    Step(&'a str, &'a str),
    Callback(&'a str),
}

impl WorkRef<'_> {
    fn to_work(self) -> Work {
        match self {
            Self::Step(step, executor) => Work::Step {
                step: step.to_owned(),
                executor: executor.to_owned(),
            },
            Self::Callback(callback) => Work::Callback {
                callback: callback.to_owned(),
            },
        }
    }

    /// Whether `work` is this one.
    fn describes(self, work: &Work) -> bool {
        match (self, work) {
            (Self::Step(name, executor_name), Work::Step { step, executor }) => {
                name == step && executor_name == executor
            }
            (Self::Callback(name), Work::Callback { callback }) => name == callback,
            _ => false,
        }
    }

    /// Makes `work` equal to this one, reusing its buffers when the kind is the same.
    fn write_to(self, work: &mut Work) {
        match (self, work) {
            (Self::Step(name, executor_name), Work::Step { step, executor }) => {
                set(step, &[name]);
                set(executor, &[executor_name]);
            }
            (Self::Callback(name), Work::Callback { callback }) => set(callback, &[name]),
            (this, work) => *work = this.to_work(),
        }
    }
}

/// The work a task waits for, announced to the workers serving its route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The task.
    pub task_id: String,
    /// What to do.
    pub work: Work,
    /// Who may do it.
    pub route: Route,
    /// Not before this time (a delay or a retry back-off).
    pub due: DateTime<Utc>,
    /// The task deadline: every worker hears of a message that has one, whatever its routes, and at this time any of
    /// them may claim it to time the task out (even one that does not serve the route or cannot run the work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
}

impl Message {
    /// The message a task document implies: its current step while it runs, its callback once it ended and the
    /// callback has not run, otherwise none. Deterministic, so that a backend can replace the message a transition
    /// consumed by the one it produces.
    pub fn of(task: &Task) -> Option<Message> {
        Self::of_reusing(task, None)
    }

    /// [`of`](Self::of), written into the buffers of an earlier message when one is given (a driver alternates two
    /// messages instead of allocating one per step).
    pub(crate) fn of_reusing(task: &Task, buffer: Option<Message>) -> Option<Message> {
        MessageRef::of(task).map(|implied| implied.to_message(&task.task_id, buffer))
    }

    /// Whether this is the message `task` implies (`Message::of(task) == Some(self)`), without building that one.
    pub(crate) fn is_of(&self, task: &Task) -> bool {
        self.task_id == task.task_id
            && MessageRef::of(task).is_some_and(|implied| implied.describes(self))
    }

    /// When a worker should look at the message: its due time, or the task deadline if earlier.
    pub fn wake_at(&self) -> DateTime<Utc> {
        match self.deadline {
            Some(deadline) if deadline < self.due => deadline,
            _ => self.due,
        }
    }
}

/// The message a task document implies, borrowed from the document: [`Message::of`] before anything is copied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MessageRef<'a> {
    work: WorkRef<'a>,
    /// Who may do the work.
    pub(crate) route: RouteRef<'a>,
    due: DateTime<Utc>,
    /// The task deadline: every session hears of a message that has one, whatever its route, so that some worker
    /// times the task out even when none serves the route.
    pub(crate) deadline: Option<DateTime<Utc>>,
}

impl<'a> MessageRef<'a> {
    /// The task's message: its current step while it runs, its callback once it ended and the callback has not run,
    /// otherwise none.
    pub(crate) fn of(task: &'a Task) -> Option<Self> {
        if task.is_terminal() {
            if task.callback_name.is_empty() || task.callback_result.is_some() {
                return None;
            }
            return Some(Self {
                work: WorkRef::Callback(&task.callback_name),
                route: RouteRef::pick(task.node.as_deref(), task.queue.as_deref()),
                due: DateTime::<Utc>::UNIX_EPOCH,
                deadline: None,
            });
        }
        let step = task.step(&task.current_step)?;
        if matches!(step.status, StepStatus::Success)
            || (step.status == StepStatus::Failure && step.skipped)
        {
            return None;
        }
        Some(Self {
            work: WorkRef::Step(&step.name, &step.executor),
            route: step.route_ref(task.node.as_deref(), task.queue.as_deref()),
            due: step.due_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            deadline: task.deadline(),
        })
    }

    /// An owned copy for the task `task_id`, written into the buffers of `buffer` when one is given.
    pub(crate) fn to_message(self, task_id: &str, buffer: Option<Message>) -> Message {
        match buffer {
            Some(mut message) => {
                set(&mut message.task_id, &[task_id]);
                self.work.write_to(&mut message.work);
                self.route.write_to(&mut message.route);
                (message.due, message.deadline) = (self.due, self.deadline);
                message
            }
            None => Message {
                task_id: task_id.to_owned(),
                work: self.work.to_work(),
                route: self.route.to_route(),
                due: self.due,
                deadline: self.deadline,
            },
        }
    }

    /// Whether `message` is this one (its task aside).
    fn describes(self, message: &Message) -> bool {
        self.work.describes(&message.work)
            && self.route == message.route.as_ref()
            && self.due == message.due
            && self.deadline == message.deadline
    }
}

/// Proof that a session holds the claim of a task's message. `fence` grows with every new claim of the task, so a
/// stale holder can be told apart from the current one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    /// The task.
    pub task_id: String,
    /// The fencing token (etcd: the claim key's create revision).
    pub fence: u64,
}

/// A claimed message with the task document as it was when claimed.
#[derive(Debug)]
pub struct Claimed {
    /// The claim.
    pub token: ClaimToken,
    /// The task, or why its document cannot be read.
    pub task: Result<Stored<Arc<Task>>, CorruptTask>,
}

/// A stored task document that does not parse.
#[derive(Debug, Clone)]
pub struct CorruptTask {
    /// The document's revision.
    pub revision: u64,
    /// The raw document (kept in the failed task's message so nothing is lost).
    pub raw: String,
    /// The parse error.
    pub error: String,
}

/// One atomic state change of a task.
///
/// Applied only if the task is still at `expected_revision` and, when `claim` is set, the claim is still held by that
/// token. It stores `task`, deletes the message `previous` and stores [`Message::of`] the new document (one write if
/// they share a key), optionally releases the claim, and optionally signals cancellation to whoever runs the task.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The new document (shared: the worker keeps it as its current view).
    pub task: Arc<Task>,
    /// The revision the new document was derived from.
    pub expected_revision: u64,
    /// The message of the document at `expected_revision` (`Message::of` it).
    pub previous: Option<&'a Message>,
    /// Guard: the claim under which a worker commits (`None` for client operations such as cancel and retry).
    pub claim: Option<&'a ClaimToken>,
    /// Release the claim with the commit (otherwise the worker keeps it and continues with the next message).
    pub release_claim: bool,
    /// Tell the worker running this task to stop its step (cancel, timeout).
    pub cancel: bool,
    /// The write may use the room a size-limited backend keeps free in every other write of a task: set for a
    /// cancellation and for the failure the engine records in place of a write that did not fit, so that they fit.
    pub use_reserve: bool,
}

/// The result of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Stored at this revision.
    Applied {
        /// The new revision.
        revision: u64,
    },
    /// The revision moved or the claim was lost: nothing was written.
    Conflict,
}

/// What [`Backend::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The task was stored, at this revision. Also the answer of a backend that sent the create again itself (after
    /// a failure that hid whether it was applied) and found the stored document byte for byte this one: that call stored
    /// it.
    Stored {
        /// Its revision.
        revision: u64,
    },
    /// The same task was already stored (a re-send: same id, same [`dispatch_fingerprint`]); nothing was written.
    ///
    /// [`dispatch_fingerprint`]: Task::dispatch_fingerprint
    Existing {
        /// The stored task's revision.
        revision: u64,
    },
}

impl Created {
    /// The revision of the stored task.
    pub fn revision(self) -> u64 {
        match self {
            Self::Stored { revision } | Self::Existing { revision } => revision,
        }
    }
}

/// Whether `task`, created under an id that is taken, is the stored task (whose fingerprint is `stored`) sent again.
pub(crate) fn is_resend(stored: Option<Fingerprint>, task: &Task) -> bool {
    task.dispatch_fingerprint.is_some() && task.dispatch_fingerprint == stored
}

/// Who a worker is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Unique id of the worker (session).
    pub worker_id: String,
    /// The node name (steps pinned to this node run here).
    pub node: String,
    /// The queues served.
    pub queues: Vec<String>,
    /// The executors this worker can run.
    pub executors: Vec<String>,
    /// The callbacks this worker can run.
    pub callbacks: Vec<String>,
}

impl WorkerSpec {
    /// The routes this worker serves: its queues and its node.
    pub fn routes(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self.queues.iter().cloned().map(Route::Queue).collect();
        routes.push(Route::Node(self.node.clone()));
        routes
    }

    /// Whether this worker serves the route.
    pub fn serves(&self, route: &Route) -> bool {
        self.serves_ref(route.as_ref())
    }

    /// [`serves`](Self::serves), for a route borrowed from a task document.
    pub(crate) fn serves_ref(&self, route: RouteRef<'_>) -> bool {
        match route {
            RouteRef::Queue(q) => self.queues.iter().any(|mine| mine == q),
            RouteRef::Node(n) => self.node == n,
        }
    }

    /// Whether this worker can do the work.
    pub fn can_run(&self, work: &Work) -> bool {
        match work {
            Work::Step { executor, .. } => self.executors.iter().any(|e| e == executor),
            Work::Callback { callback } => self.callbacks.iter().any(|c| c == callback),
        }
    }
}

/// What a worker's feed tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// Every message on the worker's routes, and every message with a deadline, replacing what it knew (sent first,
    /// and after a resync).
    Snapshot(Vec<Message>),
    /// A message appeared, changed, or became claimable again (its claim was released).
    Upsert(Message),
    /// The task's message is gone (consumed, cancelled, or routed elsewhere).
    Remove {
        /// The task.
        task_id: String,
    },
    /// Stop the step of this task if it runs here.
    Cancel {
        /// The task.
        task_id: String,
    },
    /// The session is gone (lease lost): every claim is void.
    Lost(String),
}

/// A backend: storage of task documents, messages, claims and cancellation signals.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs (`memory`, `etcd`).
    fn name(&self) -> &'static str;

    /// Stores a new task and its first message. If the id is taken, stores nothing: [`Created::Existing`] if the
    /// stored task has the same [`dispatch_fingerprint`](Task::dispatch_fingerprint), not `None` (the same task sent
    /// again, e.g. after an answer was lost; compared atomically with the failed create), else
    /// [`BackendError::AlreadyExists`]; but [`Created::Stored`] if the backend sent the create again itself and found
    /// the stored document byte for byte this one (this call stored it). Fails with [`BackendError::TooLarge`] if the document exceeds the backend's
    /// limit.
    async fn create(&self, task: &Arc<Task>) -> Result<Created, BackendError>;

    /// Reads a task.
    async fn get(&self, task_id: &str) -> Result<Option<Stored<Task>>, BackendError>;

    /// Lists tasks matching a query, with the total count of matches.
    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, BackendError>;

    /// Applies a transition atomically (see [`Transition`]).
    async fn commit(&self, transition: &Transition<'_>) -> Result<Commit, BackendError>;

    /// Waits until the task's revision is greater than `after` and returns it (`None` if the task was deleted).
    async fn wait_change(
        &self,
        task_id: &str,
        after: u64,
    ) -> Result<Option<Stored<Task>>, BackendError>;

    /// Waits until the task has ended and its callback (if any) has run ([`Task::is_settled`]) and returns it, shared
    /// (`None` if the task was deleted). The default waits change by change; backends may wake only at the end.
    async fn wait_settled(&self, task_id: &str) -> Result<Option<Stored<Arc<Task>>>, BackendError> {
        let Some(mut stored) = self.get(task_id).await? else {
            return Ok(None);
        };
        while !stored.value.is_settled() {
            match self.wait_change(task_id, stored.revision).await? {
                Some(next) => stored = next,
                None => return Ok(None),
            }
        }
        Ok(Some(Stored {
            value: Arc::new(stored.value),
            revision: stored.revision,
        }))
    }

    /// The live workers (their specs), e.g. to explain why a step waits.
    async fn workers(&self) -> Result<Vec<WorkerSpec>, BackendError>;

    /// Opens a worker session and its feed. The feed starts with a [`FeedEvent::Snapshot`].
    async fn open_session(
        &self,
        spec: WorkerSpec,
    ) -> Result<(Arc<dyn Session>, mpsc::UnboundedReceiver<FeedEvent>), BackendError>;
}

/// A worker's session: its liveness, and the claims it holds.
#[async_trait::async_trait]
pub trait Session: Send + Sync {
    /// Claims a task's message. `None` if another session holds it, or the message changed or vanished.
    async fn claim(&self, message: &Message) -> Result<Option<Claimed>, BackendError>;

    /// Releases a claim without committing (the message becomes claimable again).
    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError>;

    /// Ends the session: releases every claim and closes the feed.
    async fn close(&self) -> Result<(), BackendError>;
}

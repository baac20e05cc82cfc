//! The embedded in-memory backend: the same contract as etcd, in one process, without persistence.

use super::{
    Backend, ClaimToken, Claimed, Commit, Created, FeedEvent, Message, MessageRef, Session, Stored,
    TaskPage, TaskQuery, Transition, WorkerSpec, is_resend,
};
use crate::error::BackendError;
use crate::model::Task;
use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{Notify, mpsc};

/// An in-memory backend: tasks, messages and claims in a mutex, feeds as channels. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    revision: u64,
    /// Everything about a task, by task id: one lookup per operation.
    tasks: HashMap<String, Entry>,
    sessions: Sessions,
    next_session: u64,
}

/// One task: its document, its claim and who waits on it. Its message is [`Message::of`] the document, built only
/// to be sent.
struct Entry {
    doc: Stored<Arc<Task>>,
    /// (session, fence) of the claim.
    claim: Option<(u64, u64)>,
    /// Whether sessions may hold the document's message (announced or in a snapshot): they must then hear of its
    /// removal.
    announced: bool,
    /// Who waits for a change of the task (`wait_change`).
    change: Weak<Notify>,
    /// Who waits for the task to settle (`wait_settled`).
    settle: Weak<Notify>,
}

impl Entry {
    fn new(doc: Stored<Arc<Task>>) -> Self {
        Self {
            doc,
            claim: None,
            announced: false,
            change: Weak::new(),
            settle: Weak::new(),
        }
    }

    /// Announces the message to the sessions that hear of it (see [`hears`]), unless the task is claimed.
    fn announce(&mut self, sessions: &mut Sessions) {
        if self.claim.is_some() {
            return;
        }
        if let Some(implied) = MessageRef::of(&self.doc.value) {
            let message = implied.to_message(&self.doc.value.task_id, None);
            send(sessions, implied, None, FeedEvent::Upsert(message));
            self.announced = true;
        }
    }

    /// Follows a change of the document from `old`: if sessions heard of the old message and it changed, they hear of
    /// its removal — except the claim holder, which took the message off its list when it claimed it.
    fn document_changed(&mut self, old: &Task, sessions: &mut Sessions) {
        if !self.announced {
            return;
        }
        let old_message = MessageRef::of(old);
        if old_message.is_some() && old_message == MessageRef::of(&self.doc.value) {
            return;
        }
        self.announced = false;
        if let Some(old_message) = old_message {
            let event = FeedEvent::Remove {
                task_id: old.task_id.clone(),
            };
            let holder = self.claim.map(|(session, _)| session);
            send(sessions, old_message, holder, event);
        }
    }
}

/// The open sessions, by id.
type Sessions = HashMap<u64, SessionEntry>;

struct SessionEntry {
    spec: WorkerSpec,
    feed: mpsc::UnboundedSender<FeedEvent>,
}

/// Sends `event` about `message` to the sessions that hear of it but `skip` (the last one gets it without a copy),
/// dropping the sessions whose feed closed.
fn send(sessions: &mut Sessions, message: MessageRef<'_>, skip: Option<u64>, event: FeedEvent) {
    let mut closed = Vec::new();
    let mut previous: Option<(u64, &SessionEntry)> = None;
    for (&id, session) in sessions.iter() {
        if Some(id) != skip
            && hears(&session.spec, message)
            && let Some((id, session)) = previous.replace((id, session))
            && session.feed.send(event.clone()).is_err()
        {
            closed.push(id);
        }
    }
    if let Some((id, session)) = previous
        && session.feed.send(event).is_err()
    {
        closed.push(id);
    }
    for id in closed {
        sessions.remove(&id);
    }
}

/// Whether a session hears of `message`: it serves its route, or the message has a deadline (see
/// [`MessageRef::deadline`]).
fn hears(spec: &WorkerSpec, message: MessageRef<'_>) -> bool {
    message.deadline.is_some() || spec.serves_ref(message.route)
}

/// Wakes whoever waits on `notify`.
fn wake(notify: &Weak<Notify>) {
    if let Some(notify) = notify.upgrade() {
        notify.notify_waiters();
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Waits until the task satisfies `ready` (or is gone), woken by commits of that task only.
    async fn wait_for(
        &self,
        task_id: &str,
        kind: Wait,
        ready: impl Fn(&Stored<Arc<Task>>) -> bool,
    ) -> Option<Stored<Arc<Task>>> {
        loop {
            let notify = {
                let mut state = self.state();
                let entry = state.tasks.get_mut(task_id)?;
                if ready(&entry.doc) {
                    return Some(entry.doc.clone());
                }
                let slot = match kind {
                    Wait::Change => &mut entry.change,
                    Wait::Settle => &mut entry.settle,
                };
                slot.upgrade().unwrap_or_else(|| {
                    let notify = Arc::new(Notify::new());
                    *slot = Arc::downgrade(&notify);
                    notify
                })
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let changed = self
                .state()
                .tasks
                .get(task_id)
                .is_none_or(|entry| ready(&entry.doc));
            if !changed {
                notified.await;
            }
        }
    }
}

/// Which waiters a wait registers with.
#[derive(Clone, Copy)]
enum Wait {
    Change,
    Settle,
}

/// A copy of a stored task for a caller.
fn detach(stored: &Stored<Arc<Task>>) -> Stored<Task> {
    Stored {
        value: Task::clone(&stored.value),
        revision: stored.revision,
    }
}

/// Advances the backend's revision counter (documents and claim fences share it) and returns the new value. A free
/// function, so that it can be called while an entry of `State::tasks` is borrowed.
fn bump(revision: &mut u64) -> u64 {
    *revision += 1;
    *revision
}

impl State {
    fn release_claims_of(&mut self, session: u64) {
        for entry in self.tasks.values_mut() {
            if entry.claim.is_some_and(|(owner, _)| owner == session) {
                entry.claim = None;
                entry.announce(&mut self.sessions);
            }
        }
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create(&self, task: &Arc<Task>) -> Result<Created, BackendError> {
        let mut guard = self.state();
        let state = &mut *guard;
        if let Some(entry) = state.tasks.get(&task.task_id) {
            let stored = &entry.doc;
            if is_resend(stored.value.dispatch_fingerprint, task) {
                return Ok(Created::Existing {
                    revision: stored.revision,
                });
            }
            return Err(BackendError::AlreadyExists(task.task_id.clone()));
        }
        let revision = bump(&mut state.revision);
        let mut entry = Entry::new(Stored {
            value: Arc::clone(task),
            revision,
        });
        entry.announce(&mut state.sessions);
        state.tasks.insert(task.task_id.clone(), entry);
        Ok(Created::Stored { revision })
    }

    async fn get(&self, task_id: &str) -> Result<Option<Stored<Task>>, BackendError> {
        Ok(self
            .state()
            .tasks
            .get(task_id)
            .map(|entry| detach(&entry.doc)))
    }

    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, BackendError> {
        let tasks: Vec<Task> = self
            .state()
            .tasks
            .values()
            .map(|entry| Task::clone(&entry.doc.value))
            .collect();
        Ok(query.apply(tasks))
    }

    async fn commit(&self, t: &Transition<'_>) -> Result<Commit, BackendError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let task_id = t.task.task_id.as_str();
        let Some(entry) = state.tasks.get_mut(task_id) else {
            return Ok(Commit::Conflict);
        };
        if entry.doc.revision != t.expected_revision {
            return Ok(Commit::Conflict);
        }
        if let Some(token) = &t.claim
            && entry.claim.map(|(_, fence)| fence) != Some(token.fence)
        {
            return Ok(Commit::Conflict);
        }
        let revision = bump(&mut state.revision);
        let old = std::mem::replace(
            &mut entry.doc,
            Stored {
                value: Arc::clone(&t.task),
                revision,
            },
        );
        wake(&entry.change);
        if t.task.is_settled() {
            wake(&entry.settle);
        }
        entry.document_changed(&old.value, &mut state.sessions);
        if t.release_claim {
            entry.claim = None;
        }
        // Announce a message that became claimable: a new one, or one given back with the claim.
        if t.release_claim || !entry.announced {
            entry.announce(&mut state.sessions);
        }
        if t.cancel {
            let event = FeedEvent::Cancel {
                task_id: task_id.to_owned(),
            };
            state
                .sessions
                .retain(|_, session| session.feed.send(event.clone()).is_ok());
        }
        Ok(Commit::Applied { revision })
    }

    async fn wait_change(
        &self,
        task_id: &str,
        after: u64,
    ) -> Result<Option<Stored<Task>>, BackendError> {
        Ok(self
            .wait_for(task_id, Wait::Change, |s| s.revision > after)
            .await
            .map(|stored| detach(&stored)))
    }

    async fn wait_settled(&self, task_id: &str) -> Result<Option<Stored<Arc<Task>>>, BackendError> {
        Ok(self
            .wait_for(task_id, Wait::Settle, |s| s.value.is_settled())
            .await)
    }

    async fn workers(&self) -> Result<Vec<WorkerSpec>, BackendError> {
        Ok(self
            .state()
            .sessions
            .values()
            .map(|s| s.spec.clone())
            .collect())
    }

    async fn open_session(
        &self,
        spec: WorkerSpec,
    ) -> Result<(Arc<dyn Session>, mpsc::UnboundedReceiver<FeedEvent>), BackendError> {
        let (feed, rx) = mpsc::unbounded_channel();
        let mut state = self.state();
        state.next_session += 1;
        let id = state.next_session;
        let mut snapshot = Vec::new();
        for entry in state.tasks.values_mut() {
            if entry.claim.is_none()
                && let Some(implied) = MessageRef::of(&entry.doc.value)
                && hears(&spec, implied)
            {
                snapshot.push(implied.to_message(&entry.doc.value.task_id, None));
                entry.announced = true;
            }
        }
        let _ = feed.send(FeedEvent::Snapshot(snapshot));
        state.sessions.insert(id, SessionEntry { spec, feed });
        Ok((
            Arc::new(MemorySession {
                backend: self.clone(),
                id,
            }),
            rx,
        ))
    }
}

/// A worker session on the memory backend.
struct MemorySession {
    backend: MemoryBackend,
    id: u64,
}

#[async_trait::async_trait]
impl Session for MemorySession {
    async fn claim(&self, message: &Message) -> Result<Option<Claimed>, BackendError> {
        let mut guard = self.backend.state();
        let state = &mut *guard;
        if !state.sessions.contains_key(&self.id) {
            return Err(BackendError::SessionClosed("session closed".to_owned()));
        }
        let Some(entry) = state.tasks.get_mut(&message.task_id) else {
            return Ok(None);
        };
        if entry.claim.is_some() || !message.is_of(&entry.doc.value) {
            return Ok(None);
        }
        let fence = bump(&mut state.revision);
        entry.claim = Some((self.id, fence));
        Ok(Some(Claimed {
            token: ClaimToken {
                task_id: message.task_id.clone(),
                fence,
            },
            task: Ok(entry.doc.clone()),
        }))
    }

    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError> {
        let mut guard = self.backend.state();
        let state = &mut *guard;
        if let Some(entry) = state.tasks.get_mut(&token.task_id)
            && entry.claim == Some((self.id, token.fence))
        {
            entry.claim = None;
            entry.announce(&mut state.sessions);
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.end();
        Ok(())
    }
}

impl MemorySession {
    /// Removes the session and releases its claims (idempotent).
    fn end(&self) {
        let mut state = self.backend.state();
        state.sessions.remove(&self.id);
        state.release_claims_of(self.id);
    }
}

impl Drop for MemorySession {
    fn drop(&mut self) {
        self.end();
    }
}

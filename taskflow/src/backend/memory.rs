//! The embedded in-memory backend: the same contract as etcd, in one process, without persistence.

use super::{
    Backend, ClaimToken, Claimed, Commit, FeedEvent, Message, Session, Stored, TaskPage, TaskQuery,
    Transition, WorkerSpec,
};
use crate::error::BackendError;
use crate::model::Task;
use std::collections::HashMap;
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
    tasks: HashMap<String, Stored<Arc<Task>>>,
    messages: HashMap<String, Message>,
    /// Task id → (session, fence).
    claims: HashMap<String, (u64, u64)>,
    sessions: HashMap<u64, SessionEntry>,
    next_session: u64,
    /// Who waits for a change of a task (`wait_change`), by task id.
    waiters: HashMap<String, Weak<Notify>>,
    /// Who waits for a task to settle (`wait_settled`), by task id.
    settle_waiters: HashMap<String, Weak<Notify>>,
}

struct SessionEntry {
    spec: WorkerSpec,
    feed: mpsc::UnboundedSender<FeedEvent>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the task satisfies `ready` (or is gone), woken by commits of that task only.
    async fn wait_for(
        &self,
        task_id: &str,
        kind: Wait,
        ready: impl Fn(&Stored<Arc<Task>>) -> bool,
    ) -> Option<Stored<Task>> {
        loop {
            let notify = {
                let mut state = self.state();
                match state.tasks.get(task_id) {
                    None => return None,
                    Some(stored) if ready(stored) => {
                        let found = detach(stored);
                        state.forget_waiter(kind, task_id);
                        return Some(found);
                    }
                    Some(_) => {}
                }
                let waiters = match kind {
                    Wait::Change => &mut state.waiters,
                    Wait::Settle => &mut state.settle_waiters,
                };
                let existing = waiters.get(task_id).and_then(Weak::upgrade);
                existing.unwrap_or_else(|| {
                    let notify = Arc::new(Notify::new());
                    waiters.insert(task_id.to_owned(), Arc::downgrade(&notify));
                    notify
                })
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let changed = self.state().tasks.get(task_id).is_none_or(&ready);
            if !changed {
                notified.await;
            }
        }
    }

    fn bump(&self, state: &mut State) -> u64 {
        state.revision += 1;
        state.revision
    }
}

/// Which waiters a wait registers with.
#[derive(Clone, Copy)]
enum Wait {
    Change,
    Settle,
}

fn wake(waiters: &mut HashMap<String, Weak<Notify>>, task_id: &str) {
    if let Some(waiter) = waiters.get(task_id) {
        match waiter.upgrade() {
            Some(notify) => notify.notify_waiters(),
            None => {
                waiters.remove(task_id);
            }
        }
    }
}

/// A copy of a stored task for a caller.
fn detach(stored: &Stored<Arc<Task>>) -> Stored<Task> {
    Stored {
        value: Task::clone(&stored.value),
        revision: stored.revision,
    }
}

impl State {
    /// Drops the waiter entry of a task once nobody waits on it any more.
    fn forget_waiter(&mut self, kind: Wait, task_id: &str) {
        let waiters = match kind {
            Wait::Change => &mut self.waiters,
            Wait::Settle => &mut self.settle_waiters,
        };
        if waiters.get(task_id).is_some_and(|w| w.strong_count() == 0) {
            waiters.remove(task_id);
        }
    }

    /// Wakes whoever waits for a change of the task, and for its end if it settled.
    fn wake(&mut self, task_id: &str, settled: bool) {
        wake(&mut self.waiters, task_id);
        if settled {
            wake(&mut self.settle_waiters, task_id);
        }
    }

    fn send(&mut self, route_of: &Message, event: &FeedEvent) {
        self.sessions.retain(|_, session| {
            if !session.spec.serves(&route_of.route) {
                return true;
            }
            session.feed.send(event.clone()).is_ok()
        });
    }

    /// Announces the task's message to the workers serving its route, if it is claimable.
    fn announce(&mut self, task_id: &str) {
        if self.claims.contains_key(task_id) {
            return;
        }
        if let Some(message) = self.messages.get(task_id).cloned() {
            self.send(&message, &FeedEvent::Upsert(message.clone()));
        }
    }

    fn release_claims_of(&mut self, session: u64) {
        let released: Vec<String> = self
            .claims
            .iter()
            .filter(|(_, (owner, _))| *owner == session)
            .map(|(task, _)| task.clone())
            .collect();
        for task_id in released {
            self.claims.remove(&task_id);
            self.announce(&task_id);
        }
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create(&self, task: &Task) -> Result<u64, BackendError> {
        let mut state = self.state();
        if state.tasks.contains_key(&task.task_id) {
            return Err(BackendError::AlreadyExists(task.task_id.clone()));
        }
        let revision = self.bump(&mut state);
        state.tasks.insert(
            task.task_id.clone(),
            Stored {
                value: Arc::new(task.clone()),
                revision,
            },
        );
        if let Some(message) = Message::of(task) {
            state.messages.insert(task.task_id.clone(), message);
            state.announce(&task.task_id);
        }
        Ok(revision)
    }

    async fn get(&self, task_id: &str) -> Result<Option<Stored<Task>>, BackendError> {
        Ok(self.state().tasks.get(task_id).map(detach))
    }

    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, BackendError> {
        let tasks: Vec<Task> = self
            .state()
            .tasks
            .values()
            .map(|s| Task::clone(&s.value))
            .collect();
        Ok(query.apply(tasks))
    }

    async fn commit(&self, t: &Transition) -> Result<Commit, BackendError> {
        let mut state = self.state();
        let task_id = t.task.task_id.as_str();
        let current = state.tasks.get(task_id).map(|s| s.revision);
        if current != Some(t.expected_revision) {
            return Ok(Commit::Conflict);
        }
        if let Some(token) = &t.claim
            && state.claims.get(task_id).map(|(_, fence)| *fence) != Some(token.fence)
        {
            return Ok(Commit::Conflict);
        }
        let revision = self.bump(&mut state);
        let next = Message::of(&t.task);
        let settled = t.task.is_settled();
        if let Some(stored) = state.tasks.get_mut(task_id) {
            *stored = Stored {
                value: Arc::clone(&t.task),
                revision,
            };
        }
        state.wake(task_id, settled);
        let old = match next {
            Some(next) => match state.messages.get_mut(task_id) {
                Some(slot) => Some(std::mem::replace(slot, next)),
                None => {
                    state.messages.insert(task_id.to_owned(), next);
                    None
                }
            },
            None => state.messages.remove(task_id),
        };
        if let Some(old) = old.as_ref().or(t.previous.as_ref())
            && state.messages.get(task_id) != Some(old)
        {
            let old = old.clone();
            state.send(
                &old,
                &FeedEvent::Remove {
                    task_id: task_id.to_owned(),
                },
            );
        }
        if t.release_claim {
            state.claims.remove(task_id);
        }
        state.announce(task_id);
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
            .await)
    }

    async fn wait_settled(&self, task_id: &str) -> Result<Option<Stored<Task>>, BackendError> {
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
        let snapshot: Vec<Message> = state
            .messages
            .values()
            .filter(|m| spec.serves(&m.route) && !state.claims.contains_key(&m.task_id))
            .cloned()
            .collect();
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
        let mut state = self.backend.state();
        if !state.sessions.contains_key(&self.id) {
            return Err(BackendError::SessionClosed("session closed".to_owned()));
        }
        if state.claims.contains_key(&message.task_id)
            || state.messages.get(&message.task_id) != Some(message)
        {
            return Ok(None);
        }
        let Some(stored) = state.tasks.get(&message.task_id).cloned() else {
            return Ok(None);
        };
        let fence = self.backend.bump(&mut state);
        state
            .claims
            .insert(message.task_id.clone(), (self.id, fence));
        Ok(Some(Claimed {
            token: ClaimToken {
                task_id: message.task_id.clone(),
                fence,
            },
            task: Ok(detach(&stored)),
        }))
    }

    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError> {
        let mut state = self.backend.state();
        if state.claims.get(&token.task_id) == Some(&(self.id, token.fence)) {
            state.claims.remove(&token.task_id);
            state.announce(&token.task_id);
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

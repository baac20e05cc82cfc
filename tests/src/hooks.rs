//! A backend wrapper that slows down claims, the commit that starts the first step or the one that chains it into the
//! next, and says when one begins: to open the windows in which a shutdown, a cancel or a deadline races a worker. It
//! can also make the commit that starts the first step panic, as an engine bug would, and make creates fail as a lost
//! connection does: before or after the task was stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskflow::backend::{
    ClaimToken, Claimed, Commit, Created, FeedEvent, Message, Session, Stored, TaskPage,
    Transition, WorkerSpec,
};
use taskflow::{Backend, BackendError, StepStatus, Task, TaskQuery};
use tokio::sync::{Notify, mpsc};

/// What to slow down.
#[derive(Default)]
pub struct Hooks {
    /// Every claim waits this long; `claiming` is told when one begins.
    pub claim_delay: Option<Duration>,
    /// Told when a slowed claim begins.
    pub claiming: Notify,
    /// A commit that ends step 0 and starts step 1 waits this long; `chaining` is told when it begins.
    pub chain_delay: Option<Duration>,
    /// Told when a slowed chaining commit begins.
    pub chaining: Notify,
    /// A commit that starts step 0 (its first attempt) waits this long; `starting` is told when it begins.
    pub start_delay: Option<Duration>,
    /// Told when a slowed starting commit begins.
    pub starting: Notify,
    /// The commit that starts step 0 (its first attempt) panics instead, this many times.
    pub start_panics: AtomicUsize,
    /// This many creates fail with `Unavailable` without reaching the backend (the request was lost).
    pub lost_creates: AtomicUsize,
    /// This many creates store the task, then fail with `Unavailable` (the answer was lost).
    pub lost_create_answers: AtomicUsize,
    /// Creates that reached the backend.
    pub creates: AtomicUsize,
}

/// Takes one from `counter` if it is not zero.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// `backend`, slowed down as `hooks` say.
pub struct Hooked {
    backend: Arc<dyn Backend>,
    hooks: Arc<Hooks>,
}

impl Hooked {
    /// Wraps `backend`; returns it with the hooks to wait on.
    pub fn wrap(backend: &Arc<dyn Backend>, hooks: Hooks) -> (Arc<dyn Backend>, Arc<Hooks>) {
        let hooks = Arc::new(hooks);
        let hooked = Hooked {
            backend: Arc::clone(backend),
            hooks: Arc::clone(&hooks),
        };
        (Arc::new(hooked), hooks)
    }
}

struct HookedSession {
    session: Arc<dyn Session>,
    hooks: Arc<Hooks>,
}

#[taskflow::async_trait]
impl Session for HookedSession {
    async fn claim(&self, message: &Message) -> Result<Option<Claimed>, BackendError> {
        if let Some(delay) = self.hooks.claim_delay {
            self.hooks.claiming.notify_one();
            tokio::time::sleep(delay).await;
        }
        self.session.claim(message).await
    }

    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError> {
        self.session.release(token).await
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.session.close().await
    }
}

#[taskflow::async_trait]
impl Backend for Hooked {
    fn name(&self) -> &'static str {
        "hooked"
    }

    async fn create(&self, task: &Arc<Task>) -> Result<Created, BackendError> {
        let lost = || BackendError::Unavailable {
            reason: "connection lost (test hook)".to_owned(),
            source: None,
        };
        if take_one(&self.hooks.lost_creates) {
            return Err(lost());
        }
        self.hooks.creates.fetch_add(1, Ordering::SeqCst);
        let created = self.backend.create(task).await?;
        if take_one(&self.hooks.lost_create_answers) {
            return Err(lost());
        }
        Ok(created)
    }

    async fn get(&self, id: &str) -> Result<Option<Stored<Task>>, BackendError> {
        self.backend.get(id).await
    }

    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, BackendError> {
        self.backend.list(query).await
    }

    async fn commit(&self, t: &Transition<'_>) -> Result<Commit, BackendError> {
        let chains = t.task.steps.len() > 1
            && t.task.steps[0].status == StepStatus::Success
            && t.task.steps[1].status == StepStatus::Running;
        if let (true, Some(delay)) = (chains, self.hooks.chain_delay) {
            self.hooks.chaining.notify_one();
            tokio::time::sleep(delay).await;
        }
        let first = &t.task.steps[0];
        let starts = first.status == StepStatus::Running && first.attempt == 1;
        if let (true, Some(delay)) = (starts, self.hooks.start_delay) {
            self.hooks.starting.notify_one();
            tokio::time::sleep(delay).await;
        }
        let panics = &self.hooks.start_panics;
        if starts
            && panics
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("the hooked backend panics in the commit that starts the first step");
        }
        self.backend.commit(t).await
    }

    async fn wait_change(
        &self,
        id: &str,
        after: u64,
    ) -> Result<Option<Stored<Task>>, BackendError> {
        self.backend.wait_change(id, after).await
    }

    async fn wait_settled(&self, id: &str) -> Result<Option<Stored<Arc<Task>>>, BackendError> {
        self.backend.wait_settled(id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerSpec>, BackendError> {
        self.backend.workers().await
    }

    async fn open_session(
        &self,
        spec: WorkerSpec,
    ) -> Result<(Arc<dyn Session>, mpsc::UnboundedReceiver<FeedEvent>), BackendError> {
        let (session, feed) = self.backend.open_session(spec).await?;
        let hooked = HookedSession {
            session,
            hooks: Arc::clone(&self.hooks),
        };
        Ok((Arc::new(hooked), feed))
    }
}

//! Waiting for a task: register with the backend's shared watch of the kind of wait, read the task, and read it again
//! each time the watch wakes the wait, until it is ready (see `waiters.rs`).

use super::error::Fail;
use super::retries::Retries;
use super::waiters::{Kind, Waiters};
use super::{EtcdBackend, parse_task};
use crate::backend::Stored;
use crate::error::BackendError;
use crate::model::Task;

/// What a wait looks for in a task document.
type Ready<'a> = &'a (dyn Fn(&Stored<Task>) -> bool + Sync);

impl EtcdBackend {
    /// Waits until the task's document satisfies `ready` (`None` once it is deleted), woken by the shared watch of
    /// `kind`; retries while etcd is unavailable, with a back-off that starts over after each read that worked.
    pub(super) async fn wait_for(
        &self,
        task_id: &str,
        kind: Kind,
        ready: Ready<'_>,
    ) -> Result<Option<Stored<Task>>, BackendError> {
        let inner = &self.inner;
        let key = inner.keys.task(task_id);
        // Registered before the first read: a commit after any read wakes the wait.
        let registration = Waiters::register(inner, kind, task_id);
        let mut retries = Retries::new(inner);
        loop {
            let woken = registration.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match inner.get(&key).await {
                Ok(resp) => {
                    let Some(kv) = resp.kvs().first() else {
                        return Ok(None);
                    };
                    match parse_task(&key, kv) {
                        Ok(stored) if !ready(&stored) => retries = Retries::new(inner),
                        found => return found.map(Some),
                    }
                }
                Err(fail @ Fail::Unavailable(_)) => {
                    let what = format!("waiting for a change of task {task_id}");
                    if !retries.after(&fail, &what, std::future::pending()).await {
                        return Err(fail.into());
                    }
                    continue;
                }
                Err(fail) => return Err(fail.into()),
            }
            let _parked = inner.waiters.park();
            woken.await;
        }
    }

    /// How many waits (`wait_change`, `wait_settled`, and so `Engine::wait` and `Engine::watch`) are parked until
    /// their task changes. They share one watch per kind of wait, whatever their number.
    pub fn parked_waits(&self) -> usize {
        self.inner.waiters.parked()
    }
}

//! Waiting for a task document to change: one read, then one watch of the document key.

use super::error::Fail;
use super::retries::Retries;
use super::{EtcdBackend, Inner, parse_task};
use crate::backend::Stored;
use crate::error::BackendError;
use crate::model::Task;

/// What a wait looks for in a task document.
type Ready<'a> = &'a (dyn Fn(&Stored<Task>) -> bool + Sync);

impl EtcdBackend {
    /// Waits until the task's document satisfies `ready` (`None` once it is deleted), retrying while etcd is
    /// unavailable.
    pub(super) async fn wait_for(
        &self,
        task_id: &str,
        ready: Ready<'_>,
    ) -> Result<Option<Stored<Task>>, BackendError> {
        let inner = &self.inner;
        let key = inner.keys.task(task_id);
        let mut retries = Retries::new(inner);
        loop {
            let fail = match wait_once(inner, &key, ready).await {
                Ok(result) => return result,
                Err(fail @ Fail::Unavailable(_)) => fail,
                Err(fail) => return Err(fail.into()),
            };
            let what = format!("waiting for a change of task {task_id}");
            if !retries.after(&fail, &what, std::future::pending()).await {
                return Err(fail.into());
            }
        }
    }
}

/// Reads the document; unless it satisfies `ready`, watches it from the revision read until a version does: one
/// watch however many changes it takes (a wait for a task's end sees every commit of a running task).
async fn wait_once(
    inner: &Inner,
    key: &str,
    ready: Ready<'_>,
) -> Result<Result<Option<Stored<Task>>, BackendError>, Fail> {
    let resp = inner.get(key).await?;
    let read_at = resp.header().map_or(0, |h| h.revision());
    let Some(kv) = resp.kvs().first() else {
        return Ok(Ok(None));
    };
    match parse_task(key, kv) {
        Ok(stored) if !ready(&stored) => {}
        found => return Ok(found.map(Some)),
    }
    let options = etcd_client::WatchOptions::new().with_start_revision(read_at + 1);
    let mut stream = inner.watch(key.as_bytes(), &options).await?;
    loop {
        let Some(resp) = stream.message().await.map_err(Fail::from)? else {
            return Err(Fail::Unavailable("the watch of a task ended".into()));
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(Fail::Unavailable(
                format!(
                    "the watch of a task was cancelled: {}",
                    resp.cancel_reason()
                )
                .into(),
            ));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                etcd_client::EventType::Delete => return Ok(Ok(None)),
                etcd_client::EventType::Put => match parse_task(key, kv) {
                    Ok(stored) if !ready(&stored) => {}
                    found => return Ok(found.map(Some)),
                },
            }
        }
    }
}

//! Listing summaries, `list`, and the retention of ended tasks.

use super::error::Fail;
use super::{Inner, range, range_prefix};
use crate::backend::{Message, TaskPage, TaskQuery};
use crate::model::{Task, TaskInfo, TaskOptions, TaskStatus};
use chrono::{DateTime, Utc};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What `list` filters and sorts on, stored per task at `{prefix}/summary/{task_id}`. Rewritten only when one of its
/// fields changes (status, start, end, ...), not on every step, so it costs no write on most commits. The last
/// update is not in it: sorting by last update uses the task document's mod revision (the commit order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    task_type: String,
    task_name: String,
    task_index: String,
    task_index_type: String,
    status: TaskStatus,
    creator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<DateTime<Utc>>,
}

impl Summary {
    pub(crate) fn of(task: &Task) -> Self {
        Self {
            task_type: task.task_type.clone(),
            task_name: task.task_name.clone(),
            task_index: task.task_index.clone(),
            task_index_type: task.task_index_type.clone(),
            status: task.status,
            creator: task.creator.clone(),
            created_at: task.created_at,
            start: task.start,
            end: task.end,
        }
    }

    /// A skeleton task carrying the summary's fields, to reuse [`TaskQuery::matches`] and [`TaskQuery::compare`].
    /// `last_update` carries the document's mod revision as seconds since the epoch (an order, not a time).
    fn skeleton(self, task_id: &str, revision: i64) -> Task {
        let mut task = Task::new(TaskInfo::default(), TaskOptions::default());
        task.task_id = task_id.to_owned();
        task.task_type = self.task_type;
        task.task_name = self.task_name;
        task.task_index = self.task_index;
        task.task_index_type = self.task_index_type;
        task.status = self.status;
        task.creator = self.creator;
        task.created_at = self.created_at;
        task.start = self.start;
        task.end = self.end;
        task.last_update = DateTime::from_timestamp(revision, 0);
        task
    }
}

/// The operation that keeps a task's summary (and its retention entry) current: a nested transaction that writes
/// only when the stored summary differs.
pub(crate) fn summary_op(inner: &Inner, task: &Task) -> (TxnOp, usize, usize) {
    let keys = &inner.keys;
    let summary = serde_json::to_vec(&Summary::of(task)).unwrap_or_default();
    let key = keys.summary(&task.task_id);
    let bytes = summary.len() * 2 + key.len() * 2;
    let mut writes = vec![TxnOp::put(key.clone(), summary.clone(), None)];
    if let (true, Some(end)) = (task.is_terminal(), task.end) {
        writes.push(TxnOp::put(keys.ended(end, &task.task_id), Vec::new(), None));
    }
    let ops = writes.len() + 1;
    let op = TxnOp::txn(
        Txn::new()
            .when([Compare::value(key, CompareOp::Equal, summary)])
            .or_else(writes),
    );
    (op, ops, bytes)
}

/// Lists tasks from the summaries; reads only the bodies of the page.
pub(crate) async fn list(inner: &Inner, query: &TaskQuery) -> Result<TaskPage, Fail> {
    let keys = &inner.keys;
    let prefix = keys.summaries();
    let (summaries, revision) = range_prefix(inner, &prefix, 0, false).await?;
    // The documents' mod revisions order tasks by last update; only read (keys only) when sorting by it.
    let mut revisions: HashMap<String, i64> = HashMap::new();
    let by_last_update = query.sort == crate::backend::SortField::LastUpdate;
    if by_last_update {
        let tasks_prefix = keys.tasks();
        let (docs, _) = range_prefix(inner, &tasks_prefix, revision, true).await?;
        for kv in &docs {
            if let Some(id) = kv
                .key_str()
                .ok()
                .and_then(|k| k.strip_prefix(tasks_prefix.as_str()))
            {
                revisions.insert(id.to_owned(), kv.mod_revision());
            }
        }
    }
    let mut matches = Vec::new();
    for kv in &summaries {
        let Some(id) = kv
            .key_str()
            .ok()
            .and_then(|k| k.strip_prefix(prefix.as_str()))
        else {
            continue;
        };
        let doc_revision = match revisions.get(id) {
            Some(revision) => *revision,
            None if by_last_update => continue,
            None => 0,
        };
        match serde_json::from_slice::<Summary>(kv.value()) {
            Ok(summary) => {
                let skeleton = summary.skeleton(id, doc_revision);
                if query.matches(&skeleton) {
                    matches.push(skeleton);
                }
            }
            Err(e) => {
                tracing::warn!(task_id = id, error = %e, "skipping a corrupt listing summary")
            }
        }
    }
    matches.sort_by(|a, b| query.compare(a, b));
    let total = matches.len();
    let page: Vec<String> = matches
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|t| t.task_id)
        .collect();
    let mut items = Vec::with_capacity(page.len());
    for chunk in page.chunks(32) {
        let gets: Vec<TxnOp> = chunk
            .iter()
            .map(|id| {
                TxnOp::get(
                    keys.task(id),
                    Some(GetOptions::new().with_revision(revision)),
                )
            })
            .collect();
        let txn = &Txn::new().and_then(gets);
        let resp = inner
            .members
            .repeatable(|client| async move {
                let mut kv = client
                    .kv_client()
                    .max_decoding_message_size(super::batch::MAX_RESPONSE_BYTES);
                kv.txn(txn.clone()).await
            })
            .await?;
        for (id, op) in chunk.iter().zip(resp.op_responses()) {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            let Some(kv) = get.kvs().first() else {
                continue;
            };
            match serde_json::from_slice::<Task>(kv.value()) {
                Ok(task) => items.push(task),
                Err(e) => {
                    tracing::warn!(task_id = %id, error = %e, "listing skips a corrupt task document")
                }
            }
        }
    }
    Ok(TaskPage { total, items })
}

/// One pass of the retention cleaner: deletes every task that ended more than `retention` ago, from the oldest, going
/// past those it must keep (a callback still to run, an unreadable document). Returns how many were deleted.
pub(crate) async fn clean_expired(
    inner: &Inner,
    retention: std::time::Duration,
) -> Result<usize, Fail> {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return Ok(0);
    };
    let cutoff = Utc::now() - retention;
    let (start, end) = inner.keys.ended_before(cutoff);
    let (entries, _) = range(inner, start.into_bytes(), end.into_bytes(), 0, true).await?;
    let mut deleted = 0;
    for entry in &entries {
        if let Ok(entry) = entry.key_str()
            && clean_entry(inner, entry, cutoff).await?
        {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the task of a retention entry if it ended before `cutoff` and has nothing left to do; drops the entry if
/// it is stale (the task is gone, was retried, or ended again at another time). Whether the task was deleted.
async fn clean_entry(inner: &Inner, entry: &str, cutoff: DateTime<Utc>) -> Result<bool, Fail> {
    let keys = &inner.keys;
    let Some((end_ms, task_id)) = keys.parse_ended(entry) else {
        return Ok(false);
    };
    let doc_key = keys.task(task_id);
    let doc = inner.get(&doc_key).await?;
    let drop_entry = || async {
        inner
            .members
            .repeatable(|mut c| async move { c.delete(entry, None).await })
            .await
            .map(drop)
    };
    let Some(doc) = doc.kvs().first() else {
        drop_entry().await?;
        return Ok(false);
    };
    let Ok(task) = serde_json::from_slice::<Task>(doc.value()) else {
        return Ok(false);
    };
    let same_end = task.is_terminal() && task.end.is_some_and(|e| e.timestamp_millis() == end_ms);
    if !same_end {
        drop_entry().await?;
        return Ok(false);
    }
    let expired = task.end.is_some_and(|e| e <= cutoff) && Message::of(&task).is_none();
    if !expired {
        return Ok(false);
    }
    let txn = Txn::new()
        .when([Compare::mod_revision(
            doc_key.clone(),
            CompareOp::Equal,
            doc.mod_revision(),
        )])
        .and_then([
            TxnOp::delete(doc_key, None),
            TxnOp::delete(keys.summary(task_id), None),
            TxnOp::delete(entry, None),
            TxnOp::delete(keys.claim(task_id), None),
            TxnOp::delete(keys.cancel(task_id), None),
        ]);
    // Sent again after a lost answer, the guard fails: the task is deleted, but not counted.
    let txn = &txn;
    let resp = inner
        .members
        .repeatable(|mut c| async move { c.txn(txn.clone()).await })
        .await?;
    if resp.succeeded() {
        tracing::debug!(task_id, "retention: deleted an expired task");
    }
    Ok(resp.succeeded())
}

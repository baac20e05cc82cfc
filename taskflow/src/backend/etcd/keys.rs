//! The key layout of the etcd backend (see `ARCHITECTURE.md`, section "etcd backend").

use crate::model::Route;
use chrono::{DateTime, Utc};

/// Where every key of a deployment lives, under one prefix (namespace).
///
/// ```text
/// {prefix}/cancel/{task_id}                       cancellation signal (short lease)
/// {prefix}/claims/{task_id}                       claim of the task's message (worker session lease; value = worker id)
/// {prefix}/msgs/{route.key()}/{task_id}           the task's message (Message JSON) on its route
/// {prefix}/retention/ends/{end_ms:020}/{task_id}  ended task, for the retention cleaner
/// {prefix}/retention/leader                       the elected retention cleaner (worker lease)
/// {prefix}/space-check                            never written (see KeyLayout::space_check)
/// {prefix}/summary/{task_id}                      listing summary (type, name, index, status, times)
/// {prefix}/tasks/{task_id}                        the task document (Task JSON)
/// {prefix}/workers/{worker_id}                    live worker (worker lease; value = WorkerSpec JSON)
/// ```
///
/// A worker's feed is one watch on the range `[{prefix}/cancel/, {prefix}/msgs0)`: it holds exactly the cancel,
/// claim and message keys (every other kind sorts after `msgs`), so its events arrive in one total order.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    root: String,
}

/// What a key of the feed range is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FeedKey<'a> {
    Cancel(&'a str),
    Claim(&'a str),
    Message { route: &'a str, task_id: &'a str },
    Other,
}

impl KeyLayout {
    /// The layout under `prefix` (trailing slashes are ignored; an empty prefix means the keys start with `/`).
    pub fn new(prefix: &str) -> Self {
        Self {
            root: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The prefix, without a trailing slash.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The task document.
    pub fn task(&self, task_id: &str) -> String {
        format!("{}/tasks/{task_id}", self.root)
    }

    /// Every task document.
    pub fn tasks(&self) -> String {
        format!("{}/tasks/", self.root)
    }

    /// The task's listing summary.
    pub fn summary(&self, task_id: &str) -> String {
        format!("{}/summary/{task_id}", self.root)
    }

    /// Every listing summary.
    pub fn summaries(&self) -> String {
        format!("{}/summary/", self.root)
    }

    /// The task's message on a route.
    pub fn message(&self, route: &Route, task_id: &str) -> String {
        format!("{}/msgs/{}/{task_id}", self.root, route.key())
    }

    /// Every message of a route (exact: ends with `/`).
    pub fn messages(&self, route: &Route) -> String {
        format!("{}/msgs/{}/", self.root, route.key())
    }

    /// Every message of every route.
    pub fn all_messages(&self) -> String {
        format!("{}/msgs/", self.root)
    }

    /// The claim of the task's message.
    pub fn claim(&self, task_id: &str) -> String {
        format!("{}/claims/{task_id}", self.root)
    }

    /// Every claim.
    pub fn claims(&self) -> String {
        format!("{}/claims/", self.root)
    }

    /// The task's cancellation signal.
    pub fn cancel(&self, task_id: &str) -> String {
        format!("{}/cancel/{task_id}", self.root)
    }

    /// Every cancellation signal.
    pub fn cancels(&self) -> String {
        format!("{}/cancel/", self.root)
    }

    /// A live worker.
    pub fn worker(&self, worker_id: &str) -> String {
        format!("{}/workers/{worker_id}", self.root)
    }

    /// Every live worker.
    pub fn workers(&self) -> String {
        format!("{}/workers/", self.root)
    }

    /// The retention entry of a task that ended at `end`.
    pub fn ended(&self, end: DateTime<Utc>, task_id: &str) -> String {
        format!(
            "{}/retention/ends/{:020}/{task_id}",
            self.root,
            end.timestamp_millis().max(0)
        )
    }

    /// Every retention entry of tasks that ended before `before` (a range `[start, end)`).
    pub fn ended_before(&self, before: DateTime<Utc>) -> (String, String) {
        let start = format!("{}/retention/ends/", self.root);
        let end = format!(
            "{}/retention/ends/{:020}",
            self.root,
            before.timestamp_millis().max(0)
        );
        (start, end)
    }

    /// Parses a retention entry into (end in ms, task id).
    pub(crate) fn parse_ended<'a>(&self, key: &'a str) -> Option<(i64, &'a str)> {
        let rest = key
            .strip_prefix(&self.root)?
            .strip_prefix("/retention/ends/")?;
        let (millis, task_id) = rest.split_once('/')?;
        Some((millis.parse().ok()?, task_id))
    }

    /// The key of the elected retention cleaner.
    pub fn retention_leader(&self) -> String {
        format!("{}/retention/leader", self.root)
    }

    /// A key that is never written. Every batch puts it in its `else` branch, which is never taken (a batch has no
    /// guard of its own), so that etcd checks its space quota for the batch (once the quota is reached or the alarm raised, the batch
    /// is refused; its nested writes may still be the ones that cross it): etcd versions without the fix of
    /// etcd-io/etcd#22134 (3.4, 3.5 before it) count only the writes of the top level of a transaction there, and let
    /// the nested writes of a batch through while it refuses every other write for lack of space.
    pub fn space_check(&self) -> String {
        format!("{}/space-check", self.root)
    }

    /// The range a worker's feed watches: `[{prefix}/cancel/, {prefix}/msgs0)`.
    pub fn feed_range(&self) -> (String, String) {
        (
            format!("{}/cancel/", self.root),
            format!("{}/msgs0", self.root),
        )
    }

    /// Classifies a key of the feed range.
    pub(crate) fn parse_feed<'a>(&self, key: &'a str) -> FeedKey<'a> {
        let Some(rest) = key
            .strip_prefix(&self.root)
            .and_then(|k| k.strip_prefix('/'))
        else {
            return FeedKey::Other;
        };
        if let Some(task_id) = rest.strip_prefix("cancel/") {
            FeedKey::Cancel(task_id)
        } else if let Some(task_id) = rest.strip_prefix("claims/") {
            FeedKey::Claim(task_id)
        } else if let Some(message) = rest.strip_prefix("msgs/") {
            match message.rsplit_once('/') {
                Some((route, task_id)) if !task_id.is_empty() => {
                    FeedKey::Message { route, task_id }
                }
                _ => FeedKey::Other,
            }
        } else {
            FeedKey::Other
        }
    }
}

/// The end of the range of every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_range_holds_exactly_cancel_claims_and_messages() {
        let keys = KeyLayout::new("/app/");
        let (start, end) = keys.feed_range();
        let inside = |k: &str| k >= start.as_str() && k < end.as_str();
        let route = Route::Queue("a".into());
        assert!(inside(&keys.cancel("t")));
        assert!(inside(&keys.claim("t")));
        assert!(inside(&keys.message(&route, "t")));
        assert!(inside(&keys.message(&Route::Node("zz".into()), "t")));
        for outside in [
            keys.task("t"),
            keys.summary("t"),
            keys.worker("w"),
            keys.retention_leader(),
            keys.space_check(),
            keys.ended(Utc::now(), "t"),
        ] {
            assert!(!inside(&outside), "{outside} must not be in the feed range");
        }
    }

    #[test]
    fn queue_prefixes_are_exact() {
        let keys = KeyLayout::new("/app");
        let a = keys.messages(&Route::Queue("a".into()));
        let ab = keys.message(&Route::Queue("ab".into()), "t");
        assert!(!ab.starts_with(&a));
        assert_eq!(
            keys.parse_feed(&keys.message(&Route::Queue("a/b".into()), "t1")),
            FeedKey::Message {
                route: "q.a/b",
                task_id: "t1"
            }
        );
        assert_eq!(keys.parse_feed("/app/claims/t1"), FeedKey::Claim("t1"));
        assert_eq!(keys.parse_feed("/app/cancel/t1"), FeedKey::Cancel("t1"));
        assert_eq!(keys.parse_feed("/other/cancel/t1"), FeedKey::Other);
        assert_eq!(prefix_end("/app/msgs/"), b"/app/msgs0".to_vec());
    }

    #[test]
    fn retention_entries_sort_by_end_time() {
        let keys = KeyLayout::new("p");
        let early = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        let late = DateTime::from_timestamp(2_000_000, 0).unwrap_or_default();
        assert!(keys.ended(early, "z") < keys.ended(late, "a"));
        let (start, end) = keys.ended_before(late);
        let k = keys.ended(early, "z");
        assert!(k >= start && k < end);
        assert!(keys.ended(late, "a") >= end);
        assert_eq!(keys.parse_ended(&k), Some((1_000_000, "z")));
    }
}

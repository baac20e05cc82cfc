//! The messages a worker knows, in the order it looks at them.

use crate::backend::{Message, WorkerSpec};
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use std::collections::BTreeMap;

/// The messages a worker knows, ordered by when to look at them (equally due ones in arrival order).
#[derive(Default)]
pub(super) struct Pending {
    /// Where each task's message is in `order`.
    by_task: HashMap<String, (DateTime<Utc>, u64)>,
    order: BTreeMap<(DateTime<Utc>, u64), Message>,
    /// Arrival counter (the tie-break of `order`).
    arrivals: u64,
}

impl Pending {
    /// Tracks a message: at its due time if this worker serves its route and can run it, else at the task deadline (to
    /// time the task out: messages with a deadline reach every worker).
    pub(super) fn upsert(&mut self, spec: &WorkerSpec, message: Message) {
        self.upsert_after(spec, message, None);
    }

    /// [`upsert`](Self::upsert), looking at the message no sooner than `not_before` (the message itself unchanged,
    /// so that a later claim still matches the stored one).
    pub(super) fn upsert_after(
        &mut self,
        spec: &WorkerSpec,
        message: Message,
        not_before: Option<DateTime<Utc>>,
    ) {
        self.remove(&message.task_id);
        let wake = if spec.serves(&message.route) && spec.can_run(&message.work) {
            Some(message.wake_at())
        } else {
            message.deadline
        };
        let wake = wake.map(|wake| not_before.map_or(wake, |later| wake.max(later)));
        if let Some(wake) = wake {
            self.arrivals += 1;
            let key = (wake, self.arrivals);
            self.by_task.insert(message.task_id.clone(), key);
            self.order.insert(key, message);
        }
    }

    /// Forgets the task's message.
    pub(super) fn remove(&mut self, task_id: &str) {
        if let Some(key) = self.by_task.remove(task_id) {
            self.order.remove(&key);
        }
    }

    /// Whether the task has a message here.
    pub(super) fn contains(&self, task_id: &str) -> bool {
        self.by_task.contains_key(task_id)
    }

    /// When the first message is to be looked at.
    pub(super) fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.order.first_key_value().map(|((wake, _), _)| *wake)
    }

    /// Takes the first message if it is to be looked at by `now`.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Message> {
        if self.next_wake()? > now {
            return None;
        }
        let (_, message) = self.order.pop_first()?;
        self.by_task.remove(&message.task_id);
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;
    use crate::backend::{Message, Work};
    use crate::engine::worker::fixtures::{at, message, spec};
    use crate::model::Route;

    /// Pops every message due by `now`, by task id.
    fn drain(pending: &mut Pending, now: i64) -> Vec<String> {
        std::iter::from_fn(|| pending.pop_due(at(now)))
            .map(|message| message.task_id)
            .collect()
    }

    #[test]
    fn messages_come_out_by_due_time_then_arrival() {
        let mut pending = Pending::default();
        for (task, due) in [("late", 20), ("b", 10), ("a", 10), ("early", 5), ("c", 10)] {
            pending.upsert(&spec(), message(task, "q", "exec", due));
        }
        assert_eq!(pending.next_wake(), Some(at(5)));
        assert_eq!(drain(&mut pending, 15), ["early", "b", "a", "c"]);
        assert_eq!(pending.next_wake(), Some(at(20)));
        assert_eq!(drain(&mut pending, 30), ["late"]);
        assert_eq!(pending.next_wake(), None);
    }

    #[test]
    fn pop_due_takes_nothing_before_its_time() {
        let mut pending = Pending::default();
        pending.upsert(&spec(), message("a", "q", "exec", 10));
        assert!(pending.pop_due(at(9)).is_none());
        assert!(pending.contains("a"));
        assert_eq!(drain(&mut pending, 10), ["a"]);
        assert!(!pending.contains("a"));
    }

    #[test]
    fn an_upsert_replaces_the_tasks_message_and_its_place() {
        let mut pending = Pending::default();
        pending.upsert(&spec(), message("a", "q", "exec", 1));
        pending.upsert(&spec(), message("b", "q", "exec", 2));
        let mut newer = message("a", "q", "exec", 3);
        newer.work = Work::Callback {
            callback: "cb".into(),
        };
        pending.upsert(&spec(), newer.clone());
        assert_eq!(pending.pop_due(at(5)).map(|m| m.task_id), Some("b".into()));
        assert_eq!(pending.pop_due(at(5)), Some(newer));
        assert!(
            pending.pop_due(at(5)).is_none(),
            "the replaced message is gone"
        );
        // Equally due: a replaced message goes behind those that arrived before its replacement.
        pending.upsert(&spec(), message("a", "q", "exec", 1));
        pending.upsert(&spec(), message("b", "q", "exec", 1));
        pending.upsert(&spec(), message("a", "q", "exec", 1));
        assert_eq!(drain(&mut pending, 1), ["b", "a"]);
    }

    #[test]
    fn messages_it_cannot_run_are_kept_only_until_the_task_deadline() {
        let mut pending = Pending::default();
        let other_queue = message("queue", "elsewhere", "exec", 1);
        let other_executor = message("executor", "q", "unknown", 1);
        let mut other_node = message("node", "q", "exec", 1);
        other_node.route = Route::Node("n2".into());
        for mut message in [other_queue, other_executor, other_node] {
            pending.upsert(&spec(), message.clone());
            assert!(
                !pending.contains(&message.task_id),
                "no deadline: nothing to do here"
            );
            message.deadline = Some(at(50));
            pending.upsert(&spec(), message.clone());
            assert!(pending.contains(&message.task_id));
        }
        assert!(
            pending.pop_due(at(49)).is_none(),
            "not at its due time: at the deadline"
        );
        assert_eq!(drain(&mut pending, 50), ["queue", "executor", "node"]);
        // A message it can run wakes it at the deadline too, when that comes before the due time.
        let mut overdue = message("overdue", "q", "exec", 100);
        overdue.deadline = Some(at(60));
        pending.upsert(&spec(), overdue);
        assert_eq!(pending.next_wake(), Some(at(60)));
    }

    #[test]
    fn upsert_after_looks_again_no_sooner_than_asked() {
        let mut pending = Pending::default();
        let message: Message = message("a", "q", "exec", 1);
        pending.upsert_after(&spec(), message.clone(), Some(at(30)));
        assert!(pending.pop_due(at(29)).is_none());
        assert_eq!(
            pending.pop_due(at(30)),
            Some(message.clone()),
            "the message itself is unchanged"
        );
        pending.upsert_after(&spec(), message, Some(at(0)));
        assert_eq!(
            pending.next_wake(),
            Some(at(1)),
            "an earlier bound changes nothing"
        );
    }

    #[test]
    fn remove_forgets_a_message() {
        let mut pending = Pending::default();
        pending.upsert(&spec(), message("a", "q", "exec", 1));
        pending.upsert(&spec(), message("b", "q", "exec", 2));
        pending.remove("a");
        pending.remove("unknown");
        assert_eq!(drain(&mut pending, 10), ["b"]);
    }
}

//! The dispatch fingerprint: a stable hash of a task as the caller gave it to `Engine::dispatch`, stored with the
//! task so that a re-sent task (the same one, or one rebuilt with the same idempotency key) is recognised even after
//! it has run.

use super::Task;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::str::FromStr;
use uuid::Uuid;
use xxhash_rust::xxh3::Xxh3;

/// A task's dispatch fingerprint ([`Task::dispatch_fingerprint`]): a 128-bit hash, written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(#[serde(with = "uuid::serde::simple")] Uuid);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl FromStr for Fingerprint {
    type Err = uuid::Error;

    /// Parses 32 hex digits.
    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(hex).map(Self)
    }
}

/// Changes whenever what is hashed changes, so that two versions never compare equal.
const VERSION: &[u8] = b"taskflow dispatch fingerprint v2";

impl Task {
    /// The fingerprint of this task as given: an xxh3-128 hash of its JSON document without the bookkeeping times that
    /// building a task sets to "now" (the task's `createdAt` and `lastUpdate`, the steps' `lastUpdate`) and without
    /// the fingerprint itself. (Those are taken out while it is hashed, and put back.)
    pub(crate) fn fingerprint(&mut self) -> Fingerprint {
        let times = (self.created_at.take(), self.last_update.take());
        let own = self.dispatch_fingerprint.take();
        let steps: Vec<_> = self
            .steps
            .iter_mut()
            .map(|s| s.last_update.take())
            .collect();
        let mut hasher = Xxh3::new();
        hasher.update(VERSION);
        // Writing into a hasher cannot fail, and a task's document always serialises (string keys only).
        let _ = serde_json::to_writer(Hashing(&mut hasher), &*self);
        (self.created_at, self.last_update) = times;
        self.dispatch_fingerprint = own;
        for (step, last_update) in self.steps.iter_mut().zip(steps) {
            step.last_update = last_update;
        }
        Fingerprint(Uuid::from_u128(hasher.digest128()))
    }
}

/// Hashes what is written into it.
struct Hashing<'a>(&'a mut Xxh3);

impl io::Write for Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus};
    use chrono::DateTime;
    use serde_json::Value;

    fn task() -> Task {
        let info = TaskInfo {
            task_name: "n".into(),
            task_type: "t".into(),
            creator: "c".into(),
            ..TaskInfo::default()
        };
        let mut task = Task::new(info, TaskOptions::default())
            .with_step(Step::new("a", "x", StepOptions::default()).param("p", "1"))
            .with_step(Step::new("b", "y", StepOptions::default()));
        task.task_id = "id-1".into();
        task.set_common_param("k", "v");
        task.common_payload = serde_json::json!({"b": [1, -2, 0.5, null, true], "a": "s"});
        task
    }

    #[test]
    fn a_rebuilt_task_has_the_same_fingerprint() {
        let mut first = task();
        let mut again = task();
        again.created_at = None;
        again.last_update = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        again.steps[0].last_update = None;
        again.dispatch_fingerprint = Some("0".repeat(32).parse().unwrap());
        assert_eq!(first.fingerprint(), again.fingerprint());
        // Stable across processes and releases: a change of what is hashed must change `VERSION`.
        let fingerprint = first.fingerprint();
        assert_eq!(fingerprint.to_string(), "347d3f4ac31c2dc96ea77cfd3ced7a85");
        // Stored as those digits.
        let json = serde_json::to_string(&fingerprint).unwrap();
        assert_eq!(json, "\"347d3f4ac31c2dc96ea77cfd3ced7a85\"");
        assert_eq!(
            serde_json::from_str::<super::Fingerprint>(&json).unwrap(),
            fingerprint
        );
    }

    #[test]
    fn any_given_field_changes_the_fingerprint() {
        let base = task().fingerprint();
        let changes: [fn(&mut Task); 16] = [
            |t| t.task_id.push('x'),
            |t| t.set_common_param("k", "w"),
            |t| t.common_payload["a"] = "t".into(),
            |t| {
                t.steps[0].params.insert("p".into(), "2".into());
            },
            |t| t.steps[1].max_retries = 1,
            |t| t.status = TaskStatus::Running,
            |t| t.steps[1].status = StepStatus::Running,
            // Moving a value between neighbouring fields of one kind changes the encoding too.
            |t| t.node = Some("q".into()),
            |t| t.queue = Some("q".into()),
            |t| t.steps[0].eta = Some(DateTime::UNIX_EPOCH),
            |t| t.steps[0].start = Some(DateTime::UNIX_EPOCH),
            |t| t.steps[0].skip_on_failed = true,
            |t| t.steps[0].skipped = true,
            // The empty value of a field is one value: `null` is not the empty payload, nor no output.
            |t| t.steps[1].payload = Value::Null,
            |t| t.steps[1].output = Some(Value::Null),
            |t| t.steps.truncate(1),
        ];
        let mut seen = vec![base];
        for change in changes {
            let mut changed = task();
            change(&mut changed);
            let fingerprint = changed.fingerprint();
            assert!(!seen.contains(&fingerprint), "{fingerprint} seen before");
            seen.push(fingerprint);
        }
    }
}

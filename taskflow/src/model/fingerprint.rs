//! The dispatch fingerprint: a stable hash of a task as the caller gave it to `Engine::dispatch`, stored with the
//! task so that a re-sent task (the same one, or one rebuilt with the same idempotency key) is recognised even after
//! it has run.

use super::{Step, Task};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Changes whenever the encoding below changes, so that two encodings never compare equal.
const ENCODING: &[u8] = b"taskflow dispatch fingerprint v1";

impl Task {
    /// The fingerprint of this task as given: every field but the bookkeeping times that building a task sets to
    /// "now" (the task's `createdAt` and `lastUpdate`, the steps' `lastUpdate`) and the fingerprint itself; 32 hex
    /// digits of an xxh3-128 hash over a canonical encoding, the same on every platform and in every process.
    pub(crate) fn fingerprint(&self) -> String {
        // Destructured without `..`: a new field does not compile until it is encoded here or deliberately left out.
        let Task {
            task_id,
            task_type,
            task_name,
            task_index,
            task_index_type,
            current_step,
            steps,
            callback_name,
            callback_result,
            callback_message,
            common_params,
            common_payload,
            status,
            message,
            start,
            end,
            execution_time,
            max_execution_seconds,
            creator,
            updater,
            created_at: _,
            last_update: _,
            node,
            queue,
            dispatch_fingerprint: _,
        } = self;
        let mut out = Encoder(Vec::with_capacity(512));
        out.0.extend_from_slice(ENCODING);
        for text in [
            task_id,
            task_type,
            task_name,
            task_index,
            task_index_type,
            current_step,
            callback_name,
            callback_message,
            message,
            creator,
            updater,
        ] {
            out.str(text);
        }
        out.opt_str(callback_result.map(|r| match r {
            super::CallbackResult::Success => "SUCCESS",
            super::CallbackResult::Failure => "FAILURE",
        }));
        out.map(common_params);
        out.value(common_payload);
        out.str(status.as_str());
        out.time(*start);
        out.time(*end);
        out.u64(*execution_time);
        out.u64(u64::from(*max_execution_seconds));
        out.opt_str(node.as_deref());
        out.opt_str(queue.as_deref());
        out.len(steps.len());
        for step in steps {
            out.step(step);
        }
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&out.0))
    }
}

/// A canonical byte encoding: every value has a fixed width or a length prefix (integers little endian), and every
/// optional value a presence tag, so that two different documents never encode alike.
struct Encoder(Vec<u8>);

impl Encoder {
    fn step(&mut self, step: &Step) {
        let Step {
            name,
            alias,
            executor,
            params,
            payload,
            status,
            message,
            eta,
            skip_on_failed,
            retry_count,
            max_retries,
            execution_time,
            max_execution_seconds,
            start,
            end,
            last_update: _,
            delay_seconds,
            due_at,
            node,
            queue,
            output,
            attempt,
            skipped,
        } = step;
        for text in [name, alias, executor, message] {
            self.str(text);
        }
        self.map(params);
        self.value(payload);
        self.str(status.as_str());
        for time in [eta, start, end, due_at] {
            self.time(*time);
        }
        for flag in [skip_on_failed, skipped] {
            self.0.push(u8::from(*flag));
        }
        for number in [
            retry_count,
            max_retries,
            max_execution_seconds,
            delay_seconds,
            attempt,
        ] {
            self.u64(u64::from(*number));
        }
        self.u64(*execution_time);
        self.opt_str(node.as_deref());
        self.opt_str(queue.as_deref());
        match output {
            None => self.0.push(0),
            Some(output) => {
                self.0.push(1);
                self.value(output);
            }
        }
    }

    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                self.0.push(1);
                self.str(text);
            }
        }
    }

    fn time(&mut self, time: Option<DateTime<Utc>>) {
        match time {
            None => self.0.push(0),
            Some(time) => {
                self.0.push(1);
                self.0.extend_from_slice(&time.timestamp().to_le_bytes());
                self.0
                    .extend_from_slice(&time.timestamp_subsec_nanos().to_le_bytes());
            }
        }
    }

    fn map(&mut self, map: &BTreeMap<String, String>) {
        self.len(map.len());
        for (key, value) in map {
            self.str(key);
            self.str(value);
        }
    }

    /// A JSON value; object members in key order (serde_json keeps insertion order with its `preserve_order`
    /// feature, which another crate of the build may turn on).
    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.0.push(b'n'),
            Value::Bool(flag) => self.0.extend_from_slice(&[b'b', u8::from(*flag)]),
            Value::Number(number) => {
                if let Some(n) = number.as_u64() {
                    self.0.push(b'u');
                    self.u64(n);
                } else if let Some(n) = number.as_i64() {
                    self.0.push(b'i');
                    self.0.extend_from_slice(&n.to_le_bytes());
                } else {
                    // Floats (and, with serde_json's `arbitrary_precision`, any other number) as written.
                    self.0.push(b'f');
                    self.str(&number.to_string());
                }
            }
            Value::String(text) => {
                self.0.push(b's');
                self.str(text);
            }
            Value::Array(items) => {
                self.0.push(b'a');
                self.len(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(members) => {
                self.0.push(b'o');
                self.len(members.len());
                if members.keys().is_sorted() {
                    members.iter().for_each(|member| self.member(member));
                } else {
                    let mut sorted: Vec<_> = members.iter().collect();
                    sorted.sort_unstable_by_key(|(key, _)| *key);
                    sorted.into_iter().for_each(|member| self.member(member));
                }
            }
        }
    }

    fn member(&mut self, (key, value): (&String, &Value)) {
        self.str(key);
        self.value(value);
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Step, StepOptions, Task, TaskInfo, TaskOptions};

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
        let first = task();
        let mut again = task();
        again.created_at = None;
        again.last_update = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        again.steps[0].last_update = None;
        again.dispatch_fingerprint = "anything".into();
        assert_eq!(first.fingerprint(), again.fingerprint());
        // Stable across processes and releases: a changed encoding must change `ENCODING`.
        assert_eq!(first.fingerprint(), "e44e7209ea1203a6c43c8b264aaa8a4b");
    }

    #[test]
    fn any_given_field_changes_the_fingerprint() {
        let base = task().fingerprint();
        let changes: [fn(&mut Task); 7] = [
            |t| t.task_id.push('x'),
            |t| t.set_common_param("k", "w"),
            |t| t.common_payload["a"] = "t".into(),
            |t| {
                t.steps[0].params.insert("p".into(), "2".into());
            },
            |t| t.steps[1].max_retries = 1,
            // Moving a value between neighbouring optional fields changes the encoding too.
            |t| t.node = Some("q".into()),
            |t| t.queue = Some("q".into()),
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

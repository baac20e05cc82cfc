//! The dispatch fingerprint: a stable hash of a task as the caller gave it to `Engine::dispatch`, stored with the
//! task so that a re-sent task (the same one, or one rebuilt with the same idempotency key) is recognised even after
//! it has run.

use super::{CallbackResult, Step, StepStatus, Task, TaskStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

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

/// Changes whenever the encoding below changes, so that two encodings never compare equal.
const ENCODING: &[u8] = b"taskflow dispatch fingerprint v1";

impl Task {
    /// The fingerprint of this task as given: every field but the bookkeeping times that building a task sets to
    /// "now" (the task's `createdAt` and `lastUpdate`, the steps' `lastUpdate`) and the fingerprint itself; an
    /// xxh3-128 hash of a canonical encoding, the same on every platform and in every process.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        BUFFER.with_borrow_mut(|out| {
            out.clear();
            out.extend_from_slice(ENCODING);
            self.encode(out);
            let fingerprint = Fingerprint(Uuid::from_u128(xxhash_rust::xxh3::xxh3_128(out)));
            if out.capacity() > BUFFER_KEPT {
                *out = Vec::new();
            }
            fingerprint
        })
    }

    /// Appends the canonical encoding of the fingerprinted fields to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
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
        let mut fields = Fields::new(out);
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
            fields.str(text);
        }
        fields.str(match callback_result {
            None => "",
            Some(CallbackResult::Success) => "SUCCESS",
            Some(CallbackResult::Failure) => "FAILURE",
        });
        fields.status(*status == TaskStatus::default(), status.as_str());
        fields.map(common_params);
        fields.payload(common_payload);
        for time in [start, end] {
            fields.time(*time);
        }
        fields.number(*execution_time);
        fields.number(u64::from(*max_execution_seconds));
        for route in [node, queue] {
            fields.opt_str(route.as_deref());
        }
        if fields.next(!steps.is_empty()) {
            put_len(fields.out, steps.len());
            for step in steps {
                step_fields(fields.out, step);
            }
        }
    }
}

/// The largest encoding buffer kept for the next fingerprint (a large task's is dropped).
const BUFFER_KEPT: usize = 64 * 1024;

thread_local! {
    /// The encoding buffer, reused (an allocation is a measurable share of a dispatch).
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Encodes a step (all its fields but `lastUpdate`).
fn step_fields(out: &mut Vec<u8>, step: &Step) {
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
    let mut fields = Fields::new(out);
    for text in [name, alias, executor, message] {
        fields.str(text);
    }
    fields.status(*status == StepStatus::default(), status.as_str());
    fields.map(params);
    fields.payload(payload);
    for time in [eta, start, end, due_at] {
        fields.time(*time);
    }
    for flag in [skip_on_failed, skipped] {
        fields.next(*flag);
    }
    for number in [
        retry_count,
        max_retries,
        max_execution_seconds,
        delay_seconds,
        attempt,
    ] {
        fields.number(u64::from(*number));
    }
    fields.number(*execution_time);
    for route in [node, queue] {
        fields.opt_str(route.as_deref());
    }
    if fields.next(output.is_some()) {
        put_value(fields.out, output.as_ref().unwrap_or(&Value::Null));
    }
}

/// The fields of one struct, encoded as a bitmap of those that are not empty followed by those fields. Each kind of
/// field has one empty value (`""`, `0`, `false`, `None`, an empty map, the empty payload `{}`, the default status),
/// so the encoding is still of one document only; and a new task's fields, mostly empty, cost a test each.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    /// Where the bitmap goes (written on drop).
    at: usize,
    present: u64,
    count: u32,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let at = out.len();
        out.extend_from_slice(&[0; 8]);
        Self {
            out,
            at,
            present: 0,
            count: 0,
        }
    }

    /// Counts the next field, present or not; returns whether it is (then its value is to be written).
    fn next(&mut self, present: bool) -> bool {
        debug_assert!(self.count < u64::BITS, "more fields than the bitmap holds");
        self.present |= u64::from(present) << self.count;
        self.count += 1;
        present
    }

    /// Counts the next field, present if it is `Some`.
    fn some<T>(&mut self, value: Option<T>) -> Option<T> {
        self.next(value.is_some());
        value
    }

    fn str(&mut self, text: &str) {
        if self.next(!text.is_empty()) {
            put_str(self.out, text);
        }
    }

    /// A status: empty when it is the default one (what a new task or step has).
    fn status(&mut self, default: bool, name: &str) {
        if self.next(!default) {
            put_str(self.out, name);
        }
    }

    fn opt_str(&mut self, text: Option<&str>) {
        if let Some(text) = self.some(text) {
            put_str(self.out, text);
        }
    }

    fn number(&mut self, n: u64) {
        if self.next(n != 0) {
            self.out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn time(&mut self, time: Option<DateTime<Utc>>) {
        if let Some(time) = self.some(time) {
            self.out.extend_from_slice(&time.timestamp().to_le_bytes());
            self.out
                .extend_from_slice(&time.timestamp_subsec_nanos().to_le_bytes());
        }
    }

    fn map(&mut self, map: &BTreeMap<String, String>) {
        if self.next(!map.is_empty()) {
            put_len(self.out, map.len());
            for (key, value) in map {
                put_str(self.out, key);
                put_str(self.out, value);
            }
        }
    }

    /// A payload: empty when it is the empty object (what a new task or step has).
    fn payload(&mut self, payload: &Value) {
        let empty = matches!(payload, Value::Object(members) if members.is_empty());
        if self.next(!empty) {
            put_value(self.out, payload);
        }
    }
}

impl Drop for Fields<'_> {
    fn drop(&mut self) {
        self.out[self.at..self.at + 8].copy_from_slice(&self.present.to_le_bytes());
    }
}

/// A length, 4 bytes little endian (documents are far below 4 GiB: a backend refuses them well before).
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A JSON value, tagged by kind; object members in key order (serde_json keeps insertion order with its
/// `preserve_order` feature, which another crate of the build may turn on).
fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(flag) => out.extend_from_slice(&[b'b', u8::from(*flag)]),
        Value::Number(number) => {
            if let Some(n) = number.as_u64() {
                out.push(b'u');
                out.extend_from_slice(&n.to_le_bytes());
            } else if let Some(n) = number.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&n.to_le_bytes());
            } else {
                // Floats (and, with serde_json's `arbitrary_precision`, any other number) as written.
                out.push(b'f');
                put_str(out, &number.to_string());
            }
        }
        Value::String(text) => {
            out.push(b's');
            put_str(out, text);
        }
        Value::Array(items) => {
            out.push(b'a');
            put_len(out, items.len());
            for item in items {
                put_value(out, item);
            }
        }
        Value::Object(members) => {
            out.push(b'o');
            put_len(out, members.len());
            let put_member = |(key, member): (&String, &Value)| {
                put_str(out, key);
                put_value(out, member);
            };
            if members.keys().is_sorted() {
                members.iter().for_each(put_member);
            } else {
                let mut sorted: Vec<_> = members.iter().collect();
                sorted.sort_unstable_by_key(|(key, _)| *key);
                sorted.into_iter().for_each(put_member);
            }
        }
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
        let first = task();
        let mut again = task();
        again.created_at = None;
        again.last_update = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        again.steps[0].last_update = None;
        again.dispatch_fingerprint = Some("0".repeat(32).parse().unwrap());
        assert_eq!(first.fingerprint(), again.fingerprint());
        // Stable across processes and releases: a changed encoding must change `ENCODING`.
        let fingerprint = first.fingerprint();
        assert_eq!(fingerprint.to_string(), "22c9fd90948aa447beb8b9166171dbfe");
        // Stored as those digits.
        let json = serde_json::to_string(&fingerprint).unwrap();
        assert_eq!(json, "\"22c9fd90948aa447beb8b9166171dbfe\"");
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

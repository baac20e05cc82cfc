//! The task state machine as pure functions on the document: what a worker does with a claimed step, and how every
//! event (start, result, timeout, cancel, callback, retry) changes the task. No I/O here, so every rule is unit-tested.

use super::{Backoff, RetryFrom, RetryRequest};
use crate::context::Writes;
use crate::model::{CallbackResult, Step, StepStatus, Task, TaskStatus, set};
use crate::time::millis_between;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The message of a task (and of its failed step) when it timed out.
pub(crate) const TIMEOUT_MESSAGE: &str = "task exec timeout";
/// The message of a task (and of its running step) when it was cancelled.
pub(crate) const REVOKED_MESSAGE: &str = "task has been revoked";
/// The message of a task that finished.
pub(crate) const SUCCESS_MESSAGE: &str = "task finished successfully";

/// What a worker does with a claimed step message.
#[derive(Debug, PartialEq)]
pub(crate) enum Plan {
    /// Run the step at this index.
    Run(usize),
    /// Commit this document without running anything (a timeout, or a stale message to replace).
    Commit(Box<Task>),
    /// Not due yet or not runnable here: release the claim.
    Release,
}

/// Decides what to do with the claimed message of step `step_name`.
pub(crate) fn plan(task: &Task, step_name: &str, now: DateTime<Utc>, can_run: bool) -> Plan {
    if task.is_terminal() || task.current_step != step_name {
        return Plan::Commit(Box::new(task.clone()));
    }
    if task.deadline().is_some_and(|deadline| now >= deadline) {
        let mut task = task.clone();
        time_out(&mut task, now);
        return Plan::Commit(Box::new(task));
    }
    let Some(index) = task.step_index(step_name) else {
        return Plan::Commit(Box::new(task.clone()));
    };
    let step = &task.steps[index];
    if step.status == StepStatus::Success || step.skipped {
        return Plan::Commit(Box::new(task.clone()));
    }
    if step.due_at.is_some_and(|due| due > now) || !can_run {
        return Plan::Release;
    }
    Plan::Run(index)
}

/// Marks the step at `index` as started (a new attempt).
pub(crate) fn start_step(task: &mut Task, index: usize, now: DateTime<Utc>) {
    let step = &mut task.steps[index];
    step.status = StepStatus::Running;
    step.attempt += 1;
    step.start = Some(now);
    step.end = None;
    set(&mut step.message, &["step ready to run"]);
    step.last_update = Some(now);
    task.current_step.clone_from(&step.name);
    task.status = TaskStatus::Running;
    task.start.get_or_insert(now);
    set(&mut task.message, &["task running"]);
    task.last_update = Some(now);
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Returned `Ok`: its output and what it wrote.
    Success(Value, Writes),
    /// Returned an error, panicked or hit the step timeout.
    Failure {
        /// Why.
        error: String,
        /// Whether retries may run.
        retryable: bool,
    },
}

/// Applies the end of an attempt of the step at `index` (the reference's state table, without its bugs).
pub(crate) fn finish_step(
    task: &mut Task,
    index: usize,
    outcome: Outcome,
    now: DateTime<Utc>,
    backoff: &Backoff,
) {
    task.last_update = Some(now);
    let step = &mut task.steps[index];
    step.end = Some(now);
    step.last_update = Some(now);
    step.execution_time = step.start.map_or(0, |start| millis_between(start, now));
    match outcome {
        Outcome::Success(output, writes) => {
            step.status = StepStatus::Success;
            set(
                &mut step.message,
                &["step ", &step.name, " running successfully"],
            );
            step.output = Some(output);
            step.due_at = None;
            if let Some(payload) = writes.payload {
                step.payload = payload;
            }
            task.common_params.extend(writes.common);
            if let Some(payload) = writes.common_payload {
                task.common_payload = payload;
            }
            let name = &task.steps[index].name;
            set(&mut task.message, &["step ", name, " running successfully"]);
            advance(task, index, now);
        }
        Outcome::Failure { error, retryable } => {
            step.status = StepStatus::Failure;
            let retries_left = retryable && step.retry_count < step.max_retries;
            let counts = if step.max_retries > 0 {
                format!(
                    ", retried={}, maxRetries={}",
                    step.retry_count, step.max_retries
                )
            } else {
                String::new()
            };
            set(
                &mut step.message,
                &["running failed, err=", &error, &counts],
            );
            let name = step.name.clone();
            if retries_left {
                let delay = backoff.delay(step.retry_count);
                step.retry_count += 1;
                step.due_at = Some(later(now, delay));
                task.message = format!("step {name} running failed, err={error}{counts}");
            } else if step.skip_on_failed {
                step.skipped = true;
                step.due_at = None;
                task.message = format!("step {name} running failed, with skip on failed");
                advance(task, index, now);
            } else {
                step.due_at = None;
                task.message = format!("step {name} running failed, err={error}{counts}");
                end(task, TaskStatus::Failure, now);
            }
        }
    }
}

/// `now + delay`, saturating at the end of year 9999 (a huge back-off must neither panic nor leave RFC 3339).
fn later(now: DateTime<Utc>, delay: std::time::Duration) -> DateTime<Utc> {
    use chrono::TimeZone;
    let end_of_time = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(now);
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .map_or(end_of_time, |due| due.min(end_of_time))
}

/// Moves to the step after `index`, or ends the task with SUCCESS after the last one.
fn advance(task: &mut Task, index: usize, now: DateTime<Utc>) {
    match task.steps.get_mut(index + 1) {
        Some(next) => {
            next.due_at = due_time(next, now);
            task.current_step.clone_from(&next.name);
        }
        None => {
            set(&mut task.message, &[SUCCESS_MESSAGE]);
            end(task, TaskStatus::Success, now);
        }
    }
}

/// When a step becomes due once its predecessor ended at `now`: its absolute ETA, else `now` + its delay.
pub(crate) fn due_time(step: &Step, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    step.eta.or_else(|| {
        (step.delay_seconds > 0)
            .then(|| now + chrono::Duration::seconds(i64::from(step.delay_seconds)))
    })
}

/// Ends the task with a terminal status.
fn end(task: &mut Task, status: TaskStatus, now: DateTime<Utc>) {
    task.status = status;
    task.end = Some(now);
    task.execution_time = task.start.map_or(0, |start| millis_between(start, now));
    task.last_update = Some(now);
}

/// The task deadline passed: the current step (if started) fails and the task ends TIMEOUT.
pub(crate) fn time_out(task: &mut Task, now: DateTime<Utc>) {
    interrupt_current_step(task, TIMEOUT_MESSAGE, now);
    task.message = TIMEOUT_MESSAGE.to_owned();
    end(task, TaskStatus::Timeout, now);
}

/// A user cancelled the task: the running step (if any) fails and the task ends REVOKED.
pub(crate) fn revoke(task: &mut Task, now: DateTime<Utc>, by: &str) {
    interrupt_current_step(task, REVOKED_MESSAGE, now);
    task.message = REVOKED_MESSAGE.to_owned();
    if !by.is_empty() {
        task.updater = by.to_owned();
    }
    end(task, TaskStatus::Revoked, now);
}

fn interrupt_current_step(task: &mut Task, message: &str, now: DateTime<Utc>) {
    let current = task.current_step.clone();
    if let Some(step) = task.step_mut(&current) {
        if matches!(step.status, StepStatus::Running | StepStatus::Failure) && !step.skipped {
            step.status = StepStatus::Failure;
            step.message = message.to_owned();
            step.end = Some(now);
            step.execution_time = step.start.map_or(0, |start| millis_between(start, now));
            step.last_update = Some(now);
        }
        step.due_at = None;
    }
}

/// Records the callback's result. A failed callback turns a SUCCESS task into FAILURE with the callback's message.
pub(crate) fn record_callback(task: &mut Task, result: Result<(), String>, now: DateTime<Utc>) {
    task.last_update = Some(now);
    match result {
        Ok(()) => {
            task.callback_result = Some(CallbackResult::Success);
            task.callback_message.clear();
        }
        Err(error) => {
            let message = format!("callback `{}` failed: {error}", task.callback_name);
            task.callback_result = Some(CallbackResult::Failure);
            task.callback_message = message.clone();
            if task.status == TaskStatus::Success {
                task.status = TaskStatus::Failure;
                task.message = message;
            }
        }
    }
}

/// Resets a terminal task so that it runs again from a step (see [`RetryRequest`]). Earlier successes and the
/// variables they wrote stay.
pub(crate) fn retry(
    task: &mut Task,
    request: &RetryRequest,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if !task.is_terminal() {
        return Err("only an ended task can be retried".to_owned());
    }
    // Checked first, so that a front end may tell its users how to force (`RetryRequest::force`, the CLI's `--force`)
    // from the status alone.
    if task.status == TaskStatus::Success && !request.force {
        return Err("the task succeeded; only a forced retry runs it again".to_owned());
    }
    if !task.is_settled() {
        return Err(format!(
            "the task's callback `{}` has not run yet; retry once it has (it runs exactly once per end)",
            task.callback_name
        ));
    }
    let mut from = match &request.from {
        RetryFrom::Start => 0,
        RetryFrom::Step(name) => task
            .step_index(name)
            .ok_or_else(|| format!("the task has no step `{name}`"))?,
        RetryFrom::FirstFailed => task
            .first_failed_step()
            .and_then(|s| task.step_index(&s.name))
            .or_else(|| task.step_index(&task.current_step))
            .unwrap_or(0),
    };
    if request.skip_failed {
        let Some(step) = task.steps.get_mut(from) else {
            return Err("the task has no step to skip".to_owned());
        };
        if step.status != StepStatus::Failure {
            return Err(format!(
                "step `{}` did not fail ({}); only a failed step can be skipped",
                step.name, step.status
            ));
        }
        step.skipped = true;
        step.message = format!("{} (skipped by a retry)", step.message);
        from += 1;
    }
    let len = task.steps.len();
    for step in &mut task.steps[from.min(len)..] {
        step.reset();
    }
    if request.skip_on_failed
        && let Some(step) = task.steps.get_mut(from)
    {
        step.skip_on_failed = true;
    }
    task.callback_result = None;
    task.callback_message.clear();
    task.start = None;
    task.end = None;
    task.execution_time = 0;
    task.last_update = Some(now);
    if !request.by.is_empty() {
        task.updater = request.by.clone();
    }
    match task.steps.get_mut(from) {
        Some(step) => {
            step.due_at = None;
            task.current_step = step.name.clone();
            task.status = TaskStatus::Running;
            task.message = "task retrying".to_owned();
        }
        None => {
            task.current_step = task
                .steps
                .last()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            task.message = SUCCESS_MESSAGE.to_owned();
            task.start = Some(now);
            end(task, TaskStatus::Success, now);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Message;
    use crate::model::{StepOptions, TaskInfo, TaskOptions};

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    fn task(steps: &[(&str, StepOptions)]) -> Task {
        let mut task = Task::new(
            TaskInfo {
                task_name: "t".into(),
                ..Default::default()
            },
            TaskOptions {
                callback: Some("cb".into()),
                ..Default::default()
            },
        );
        for (name, options) in steps {
            task.add_step(Step::new(*name, "exec", options.clone()));
        }
        task
    }

    fn ok() -> Outcome {
        Outcome::Success(Value::Null, Writes::default())
    }

    fn fail(retryable: bool) -> Outcome {
        Outcome::Failure {
            error: "boom".into(),
            retryable,
        }
    }

    #[test]
    fn a_message_describes_the_states_it_would_be_built_from_and_no_other() {
        let pinned = StepOptions {
            node: Some("n1".into()),
            ..Default::default()
        };
        let retried = StepOptions {
            max_retries: 1,
            ..Default::default()
        };
        let mut t = task(&[("a", retried), ("b", pinned)]);
        let mut states = vec![t.clone()];
        start_step(&mut t, 0, now());
        states.push(t.clone());
        finish_step(&mut t, 0, fail(true), now(), &Backoff::default());
        states.push(t.clone());
        start_step(&mut t, 0, now());
        finish_step(&mut t, 0, ok(), now(), &Backoff::default());
        states.push(t.clone());
        start_step(&mut t, 1, now());
        finish_step(&mut t, 1, ok(), now(), &Backoff::default());
        states.push(t.clone());
        record_callback(&mut t, Ok(()), now());
        states.push(t.clone());
        let mut other_task = states[0].clone();
        other_task.task_id = "another".into();
        states.push(other_task);
        for from in &states {
            let Some(message) = Message::of(from) else {
                continue;
            };
            for state in &states {
                let built = Message::of(state);
                assert_eq!(
                    message.is_of(state),
                    built.as_ref() == Some(&message),
                    "{message:?} vs {built:?}"
                );
            }
        }
    }

    #[test]
    fn success_advances_then_ends_with_a_callback_message() {
        let mut t = task(&[("a", StepOptions::default()), ("b", StepOptions::default())]);
        assert_eq!(plan(&t, "a", now(), true), Plan::Run(0));
        start_step(&mut t, 0, now());
        assert_eq!(t.status, TaskStatus::Running);
        finish_step(&mut t, 0, ok(), now(), &Backoff::default());
        assert_eq!(t.current_step, "b");
        start_step(&mut t, 1, now());
        finish_step(&mut t, 1, ok(), now(), &Backoff::default());
        assert_eq!(t.status, TaskStatus::Success);
        assert_eq!(t.message, SUCCESS_MESSAGE);
        assert!(matches!(
            Message::of(&t).unwrap().work,
            crate::backend::Work::Callback { .. }
        ));
        record_callback(&mut t, Err("nope".into()), now());
        assert_eq!(t.status, TaskStatus::Failure);
        assert_eq!(t.message, "callback `cb` failed: nope");
        assert_eq!(Message::of(&t), None);
    }

    #[test]
    fn retryable_failures_back_off_then_fail_the_task() {
        let mut t = task(&[(
            "a",
            StepOptions {
                max_retries: 2,
                ..Default::default()
            },
        )]);
        for round in 0..3 {
            start_step(&mut t, 0, now());
            finish_step(&mut t, 0, fail(true), now(), &Backoff::default());
            if round < 2 {
                assert_eq!(t.status, TaskStatus::Running);
                assert_eq!(t.steps[0].retry_count, round + 1);
                assert!(t.steps[0].due_at.unwrap() > now());
                assert_eq!(plan(&t, "a", now(), true), Plan::Release, "not due yet");
            }
        }
        assert_eq!(t.status, TaskStatus::Failure);
        assert_eq!(t.steps[0].attempt, 3);
        assert_eq!(
            t.message,
            "step a running failed, err=boom, retried=2, maxRetries=2"
        );
    }

    #[test]
    fn fatal_failures_skip_retries_and_skip_on_failed_continues() {
        let mut t = task(&[
            (
                "a",
                StepOptions {
                    max_retries: 5,
                    skip_on_failed: true,
                    ..Default::default()
                },
            ),
            ("b", StepOptions::default()),
        ]);
        start_step(&mut t, 0, now());
        finish_step(&mut t, 0, fail(false), now(), &Backoff::default());
        assert!(t.steps[0].skipped);
        assert_eq!(t.steps[0].status, StepStatus::Failure);
        assert_eq!(t.current_step, "b");
        assert_eq!(t.status, TaskStatus::Running);
    }

    #[test]
    fn deadline_times_out_a_waiting_task() {
        let mut t = task(&[(
            "a",
            StepOptions {
                max_retries: 3,
                ..Default::default()
            },
        )]);
        t.max_execution_seconds = 1;
        start_step(&mut t, 0, now());
        finish_step(&mut t, 0, fail(true), now(), &Backoff::default());
        let later = now() + chrono::Duration::seconds(2);
        let Plan::Commit(timed_out) = plan(&t, "a", later, true) else {
            panic!("expected a timeout")
        };
        assert_eq!(timed_out.status, TaskStatus::Timeout);
        assert_eq!(timed_out.steps[0].message, TIMEOUT_MESSAGE);
    }

    #[test]
    fn retry_resets_from_the_failed_step_and_keeps_earlier_successes() {
        let mut t = task(&[
            ("a", StepOptions::default()),
            ("b", StepOptions::default()),
            ("c", Default::default()),
        ]);
        start_step(&mut t, 0, now());
        let mut writes = Writes::default();
        writes.common.insert("x".into(), "1".into());
        finish_step(
            &mut t,
            0,
            Outcome::Success(Value::from(7), writes),
            now(),
            &Backoff::default(),
        );
        start_step(&mut t, 1, now());
        finish_step(&mut t, 1, fail(false), now(), &Backoff::default());
        record_callback(&mut t, Ok(()), now());
        assert_eq!(t.status, TaskStatus::Failure);

        retry(&mut t, &RetryRequest::default(), now()).unwrap();
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.current_step, "b");
        assert_eq!(t.steps[0].status, StepStatus::Success);
        assert_eq!(t.steps[0].output, Some(Value::from(7)));
        assert_eq!(t.common_params["x"], "1");
        assert_eq!(t.steps[1].status, StepStatus::NotStarted);
        assert_eq!(t.callback_result, None);
        assert_eq!(t.start, None);
        assert!(
            retry(&mut t, &RetryRequest::default(), now()).is_err(),
            "a running task cannot be retried"
        );
    }

    #[test]
    fn a_task_that_succeeded_needs_force_before_anything_else() {
        let mut t = task(&[("a", StepOptions::default())]);
        start_step(&mut t, 0, now());
        finish_step(&mut t, 0, ok(), now(), &Backoff::default());
        assert_eq!(t.status, TaskStatus::Success);
        // Its callback has not run yet, but what a retry without force hears first is that it needs force.
        let unforced = retry(&mut t.clone(), &RetryRequest::default(), now()).unwrap_err();
        assert!(unforced.contains("forced retry"), "{unforced}");
        let forced = retry(&mut t.clone(), &RetryRequest::default().force(), now()).unwrap_err();
        assert!(forced.contains("has not run yet"), "{forced}");
        record_callback(&mut t, Ok(()), now());
        retry(&mut t, &RetryRequest::default().force(), now()).unwrap();
        assert_eq!(t.status, TaskStatus::Running);
    }

    #[test]
    fn retry_can_skip_the_failed_step() {
        let mut t = task(&[("a", StepOptions::default()), ("b", StepOptions::default())]);
        start_step(&mut t, 0, now());
        finish_step(&mut t, 0, fail(false), now(), &Backoff::default());
        let pending = retry(&mut t.clone(), &RetryRequest::default(), now()).unwrap_err();
        assert!(
            pending.contains("has not run yet"),
            "the callback must run first: {pending}"
        );
        record_callback(&mut t, Ok(()), now());
        retry(&mut t, &RetryRequest::default().skip_failed(), now()).unwrap();
        assert!(t.steps[0].skipped);
        assert_eq!(t.current_step, "b");
        assert_eq!(t.status, TaskStatus::Running);
    }

    #[test]
    fn revoke_fails_the_running_step() {
        let mut t = task(&[("a", StepOptions::default())]);
        start_step(&mut t, 0, now());
        revoke(&mut t, now(), "admin");
        assert_eq!(t.status, TaskStatus::Revoked);
        assert_eq!(t.steps[0].status, StepStatus::Failure);
        assert_eq!(t.steps[0].message, REVOKED_MESSAGE);
        assert_eq!(t.updater, "admin");
        assert_eq!(
            plan(&t, "a", now(), true),
            Plan::Commit(Box::new(t.clone()))
        );
    }
}

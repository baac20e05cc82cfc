//! The semantic suite: every capability of the task flow, on every backend (see `backend_tests!`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskflow::{
    Backoff, CallbackError, CallbackResult, Engine, RetryRequest, Step, StepError, StepOptions,
    StepStatus, Task, TaskInfo, TaskOptions, TaskQuery, TaskStatus, callback_fn, step_fn,
};
use taskflow_tests::hooks::{Hooked, Hooks};
use taskflow_tests::{TestBackend, backend_tests};
use tokio::sync::mpsc;

backend_tests!(
    chain_runs_in_order_and_shares_variables,
    failure_stops_the_task,
    retry_resumes_from_the_failed_step,
    retry_with_skip_on_failed,
    retry_can_skip_the_failed_step,
    retry_from_a_named_step_or_the_start,
    skip_on_failed_continues_the_chain,
    automatic_retries_count_attempts,
    step_timeout_is_a_retryable_failure,
    task_timeout_fires_while_a_step_runs,
    task_timeout_fires_while_waiting_on_a_backoff,
    callback_runs_once_per_terminal_status,
    callback_failure_turns_success_into_failure,
    cancel_drops_the_running_step,
    cancel_works_when_no_step_runs,
    a_steps_token_does_not_reach_the_next_step,
    a_step_that_cancels_its_own_token_still_counts,
    node_pinning_per_step_and_per_task,
    queues_are_exact,
    panic_becomes_a_non_retryable_failure,
    template_error_names_step_and_param,
    templates_see_outputs_and_custom_filters,
    delays_are_relative_to_the_previous_step,
    long_polling_step_is_cancellable,
    listing_filters_sorts_and_pages,
    unknown_executor_is_rejected_and_unrunnable_steps_wait,
    graceful_shutdown_finishes_or_releases_steps,
    a_thousand_concurrent_tasks,
    panics_in_user_template_code_fail_the_step,
    a_huge_backoff_does_not_break_the_worker,
    retry_waits_for_the_pending_callback,
    a_worker_cannot_list_unknown_executors,
    a_deadline_passed_during_a_commit_stops_the_chain,
);

const WAIT: Duration = Duration::from_secs(60);

fn task(name: &str, steps: impl IntoIterator<Item = Step>) -> Task {
    task_with(name, TaskOptions::default(), steps)
}

fn task_with(name: &str, options: TaskOptions, steps: impl IntoIterator<Item = Step>) -> Task {
    let info = TaskInfo {
        task_name: name.into(),
        task_type: "test".into(),
        creator: "tester".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, options);
    for step in steps {
        task.add_step(step);
    }
    task
}

fn step(name: &str, executor: &str) -> Step {
    Step::new(name, executor, StepOptions::default())
}

fn step_with(name: &str, executor: &str, options: StepOptions) -> Step {
    Step::new(name, executor, options)
}

/// Counts calls per key (e.g. per step name).
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    fn hit(&self, key: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }
    fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// A step that records its call under its step name and succeeds with its name.
fn recorder(executor: &str, calls: &Calls) -> taskflow::FnStep {
    let calls = calls.clone();
    step_fn(executor, move |ctx| {
        let calls = calls.clone();
        async move {
            calls.hit(ctx.step_name());
            Ok(ctx.step_name().to_owned())
        }
    })
}

/// A step that fails (retryably) while the shared flag `fail` is set.
fn flaky(
    executor: &str,
    calls: &Calls,
    fail: Arc<std::sync::atomic::AtomicBool>,
) -> taskflow::FnStep {
    let calls = calls.clone();
    step_fn(executor, move |ctx| {
        let calls = calls.clone();
        let fail = fail.clone();
        async move {
            calls.hit(ctx.step_name());
            if fail.load(Ordering::SeqCst) {
                Err(StepError::new("flaky failure"))
            } else {
                Ok(())
            }
        }
    })
}

/// Builds the engine and starts one worker with the default options.
async fn start(builder: taskflow::EngineBuilder) -> (Engine, taskflow::Worker) {
    let engine = builder.build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    (engine, worker)
}

fn fast_backoff() -> Backoff {
    Backoff::fixed(Duration::from_millis(10))
}

async fn run_to_end(engine: &Engine, task: Task) -> Arc<Task> {
    let id = engine.dispatch(task).await.unwrap();
    engine.wait_timeout(&id, WAIT).await.unwrap()
}

async fn chain_runs_in_order_and_shares_variables(b: TestBackend) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let sum = step_fn("sum", move |ctx| {
        let o = o.clone();
        async move {
            let a: i64 = ctx
                .param("sumA")
                .unwrap()
                .parse()
                .map_err(StepError::fatal)?;
            let b: i64 = ctx
                .param("sumB")
                .unwrap()
                .parse()
                .map_err(StepError::fatal)?;
            ctx.set_common("sumC", (a + b).to_string());
            o.lock().unwrap().push("sum");
            Ok(a + b)
        }
    });
    let o = order.clone();
    let hello = step_fn("hello", move |ctx| {
        let o = o.clone();
        async move {
            o.lock().unwrap().push("hello");
            assert_eq!(
                ctx.common("sumC").as_deref(),
                Some("8"),
                "a later step sees the shared variable"
            );
            assert_eq!(ctx.output_of("sum"), Some(&serde_json::json!(8)));
            Ok(format!(
                "{} says {}",
                ctx.step_name(),
                ctx.param("greeting").unwrap()
            ))
        }
    });
    let (engine, worker) = start(b.engine().step(sum).step(hello)).await;
    let t = task(
        "example",
        [
            step("sum", "sum").param("sumA", "3").param("sumB", "5"),
            step("hello", "hello").param("greeting", "sum is {{ common.sumC }}"),
        ],
    );
    let done = run_to_end(&engine, t).await;
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.message, "task finished successfully");
    assert_eq!(done.common_params["sumC"], "8");
    assert_eq!(
        done.steps[1].output,
        Some(serde_json::json!("hello says sum is 8"))
    );
    assert!(
        done.steps
            .iter()
            .all(|s| s.status == StepStatus::Success && s.attempt == 1)
    );
    assert!(done.start.is_some() && done.end.is_some());
    assert_eq!(*order.lock().unwrap(), ["sum", "hello"]);
    worker.shutdown().await;
}

async fn failure_stops_the_task(b: TestBackend) {
    let calls = Calls::default();
    let boom = step_fn("boom", |_ctx| async {
        Err::<(), _>(StepError::new("disk full"))
    });
    let (engine, worker) = start(b.engine().step(recorder("rec", &calls)).step(boom)).await;
    let done = run_to_end(
        &engine,
        task("t", [step("a", "rec"), step("b", "boom"), step("c", "rec")]),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Failure);
    assert_eq!(done.message, "step b running failed, err=disk full");
    assert_eq!(done.steps[1].status, StepStatus::Failure);
    assert_eq!(done.steps[2].status, StepStatus::NotStarted);
    assert_eq!(calls.get("c"), 0, "no step runs after a failure");
    worker.shutdown().await;
}

async fn retry_resumes_from_the_failed_step(b: TestBackend) {
    let calls = Calls::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let setter = step_fn("setter", |ctx| async move {
        ctx.set_common("token", "t-1");
        Ok(())
    });
    let (engine, worker) = start(
        b.engine()
            .step(setter)
            .step(flaky("flaky", &calls, fail.clone()))
            .step(recorder("rec", &calls))
            .backoff(fast_backoff()),
    )
    .await;
    let t = task(
        "t",
        [step("a", "setter"), step("b", "flaky"), step("c", "rec")],
    );
    let failed = run_to_end(&engine, t).await;
    assert_eq!(failed.status, TaskStatus::Failure);

    fail.store(false, Ordering::SeqCst);
    let retried = engine
        .retry(&failed.task_id, RetryRequest::new().by("ops"))
        .await
        .unwrap();
    assert_eq!(retried.status, TaskStatus::Running);
    assert_eq!(retried.updater, "ops");
    let done = engine.wait_timeout(&failed.task_id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(
        done.steps[0].attempt, 1,
        "the successful step before the failed one is not run again"
    );
    assert_eq!(done.common_params["token"], "t-1", "its variables stay");
    assert_eq!(calls.get("b"), 2);
    assert_eq!(calls.get("c"), 1);
    let err = engine
        .retry(&failed.task_id, RetryRequest::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("force"),
        "a SUCCESS task needs force: {err}"
    );
    worker.shutdown().await;
}

async fn retry_with_skip_on_failed(b: TestBackend) {
    let calls = Calls::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (engine, worker) = start(
        b.engine()
            .step(flaky("flaky", &calls, fail))
            .step(recorder("rec", &calls)),
    )
    .await;
    let failed = run_to_end(&engine, task("t", [step("a", "flaky"), step("b", "rec")])).await;
    assert_eq!(failed.status, TaskStatus::Failure);
    engine
        .retry(&failed.task_id, RetryRequest::new().skip_on_failed())
        .await
        .unwrap();
    let done = engine.wait_timeout(&failed.task_id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    assert!(done.steps[0].skipped && done.steps[0].skip_on_failed);
    assert_eq!(done.steps[0].status, StepStatus::Failure);
    assert_eq!(calls.get("a"), 2, "the step ran again and failed again");
    assert_eq!(calls.get("b"), 1);
    worker.shutdown().await;
}

async fn retry_can_skip_the_failed_step(b: TestBackend) {
    let calls = Calls::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (engine, worker) = start(
        b.engine()
            .step(flaky("flaky", &calls, fail))
            .step(recorder("rec", &calls)),
    )
    .await;
    let failed = run_to_end(
        &engine,
        task(
            "t",
            [step("a", "rec"), step("b", "flaky"), step("c", "rec")],
        ),
    )
    .await;
    engine
        .retry(&failed.task_id, RetryRequest::new().skip_failed())
        .await
        .unwrap();
    let done = engine.wait_timeout(&failed.task_id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    assert!(done.steps[1].skipped);
    assert_eq!(calls.get("b"), 1, "the skipped step does not run again");
    assert_eq!(calls.get("c"), 1);
    worker.shutdown().await;
}

async fn retry_from_a_named_step_or_the_start(b: TestBackend) {
    let calls = Calls::default();
    let (engine, worker) = start(b.engine().step(recorder("rec", &calls))).await;
    let done = run_to_end(
        &engine,
        task("t", [step("a", "rec"), step("b", "rec"), step("c", "rec")]),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Success);
    engine
        .retry(&done.task_id, RetryRequest::new().from_step("b").force())
        .await
        .unwrap();
    let again = engine.wait_timeout(&done.task_id, WAIT).await.unwrap();
    assert_eq!(again.status, TaskStatus::Success);
    assert_eq!((calls.get("a"), calls.get("b"), calls.get("c")), (1, 2, 2));
    engine
        .retry(&done.task_id, RetryRequest::new().from_start().force())
        .await
        .unwrap();
    engine.wait_timeout(&done.task_id, WAIT).await.unwrap();
    assert_eq!((calls.get("a"), calls.get("b"), calls.get("c")), (2, 3, 3));
    let err = engine
        .retry(&done.task_id, RetryRequest::new().from_step("nope").force())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no step `nope`"), "{err}");
    worker.shutdown().await;
}

async fn skip_on_failed_continues_the_chain(b: TestBackend) {
    let calls = Calls::default();
    let boom = step_fn("boom", |_ctx| async {
        Err::<(), _>(StepError::new("nope"))
    });
    let (engine, worker) = start(
        b.engine()
            .step(boom)
            .step(recorder("rec", &calls))
            .backoff(fast_backoff()),
    )
    .await;
    let skip = StepOptions {
        skip_on_failed: true,
        max_retries: 1,
        ..Default::default()
    };
    let t = task(
        "t",
        [
            step_with("a", "boom", skip.clone()),
            step("b", "rec"),
            step_with("c", "boom", skip),
        ],
    );
    let done = run_to_end(&engine, t).await;
    assert_eq!(
        done.status,
        TaskStatus::Success,
        "a skipped last step still ends the task SUCCESS"
    );
    assert!(done.steps[0].skipped && done.steps[2].skipped);
    assert_eq!(done.steps[0].attempt, 2, "retries run before the skip");
    assert_eq!(calls.get("b"), 1);
    worker.shutdown().await;
}

async fn automatic_retries_count_attempts(b: TestBackend) {
    let calls = Calls::default();
    let c = calls.clone();
    let third_time = step_fn("third", move |ctx| {
        let c = c.clone();
        async move {
            if c.hit(ctx.step_name()) < 3 {
                Err(StepError::new("not yet"))
            } else {
                Ok(ctx.attempt())
            }
        }
    });
    let (engine, worker) = start(b.engine().step(third_time).backoff(fast_backoff())).await;
    let options = StepOptions {
        max_retries: 2,
        ..Default::default()
    };
    let done = run_to_end(&engine, task("t", [step_with("a", "third", options)])).await;
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(done.steps[0].attempt, 3);
    assert_eq!(done.steps[0].retry_count, 2);
    assert_eq!(done.steps[0].output, Some(serde_json::json!(3)));
    worker.shutdown().await;
}

async fn step_timeout_is_a_retryable_failure(b: TestBackend) {
    let calls = Calls::default();
    let c = calls.clone();
    let slow = step_fn("slow", move |ctx| {
        let c = c.clone();
        async move {
            c.hit("started");
            tokio::time::sleep(Duration::from_secs(3600)).await;
            c.hit(ctx.step_name());
            Ok(())
        }
    });
    let (engine, worker) = start(b.engine().step(slow).backoff(fast_backoff())).await;
    let options = StepOptions {
        max_retries: 1,
        max_execution_seconds: 1,
        ..Default::default()
    };
    let done = run_to_end(&engine, task("t", [step_with("a", "slow", options)])).await;
    assert_eq!(done.status, TaskStatus::Failure);
    assert_eq!(
        done.steps[0].attempt, 2,
        "one retry after the first timeout"
    );
    assert_eq!(calls.get("started"), 2);
    assert_eq!(
        calls.get("a"),
        0,
        "the step future was dropped at the timeout"
    );
    assert!(
        done.steps[0].message.contains("step exec timeout"),
        "{}",
        done.steps[0].message
    );
    worker.shutdown().await;
}

async fn task_timeout_fires_while_a_step_runs(b: TestBackend) {
    let calls = Calls::default();
    let c = calls.clone();
    let slow = step_fn("slow", move |_ctx| {
        let c = c.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            c.hit("finished");
            Ok(())
        }
    });
    let seen = Calls::default();
    let s = seen.clone();
    let cb = callback_fn("cb", move |outcome| {
        let s = s.clone();
        async move {
            s.hit(outcome.status.as_str());
            Ok(())
        }
    });
    let (engine, worker) = start(b.engine().step(slow).callback(cb)).await;
    let options = TaskOptions {
        max_execution_seconds: 1,
        callback: Some("cb".into()),
        ..Default::default()
    };
    let done = run_to_end(&engine, task_with("t", options, [step("a", "slow")])).await;
    assert_eq!(done.status, TaskStatus::Timeout);
    assert_eq!(done.message, "task exec timeout");
    assert_eq!(done.steps[0].status, StepStatus::Failure);
    assert_eq!(calls.get("finished"), 0);
    assert_eq!(seen.get("TIMEOUT"), 1);
    worker.shutdown().await;
}

async fn task_timeout_fires_while_waiting_on_a_backoff(b: TestBackend) {
    let calls = Calls::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (engine, worker) = start(
        b.engine()
            .step(flaky("flaky", &calls, fail))
            .backoff(Backoff::fixed(Duration::from_secs(3600))),
    )
    .await;
    let options = TaskOptions {
        max_execution_seconds: 1,
        ..Default::default()
    };
    let t = task_with(
        "t",
        options,
        [step_with(
            "a",
            "flaky",
            StepOptions {
                max_retries: 5,
                ..Default::default()
            },
        )],
    );
    let done = run_to_end(&engine, t).await;
    assert_eq!(done.status, TaskStatus::Timeout);
    assert_eq!(
        calls.get("a"),
        1,
        "no second attempt: the back-off outlives the deadline"
    );
    worker.shutdown().await;
}

async fn callback_runs_once_per_terminal_status(b: TestBackend) {
    let seen = Calls::default();
    let s = seen.clone();
    let cb = callback_fn("cb", move |outcome| {
        let s = s.clone();
        async move {
            s.hit(&format!("{}:{}", outcome.task.task_name, outcome.status));
            assert_eq!(outcome.is_success(), outcome.status == TaskStatus::Success);
            assert_eq!(outcome.error.is_some(), !outcome.is_success());
            Ok(())
        }
    });
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let hang = step_fn("hang", move |_ctx| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(());
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let ok = step_fn("ok", |_ctx| async { Ok(()) });
    let boom = step_fn("boom", |_ctx| async {
        Err::<(), _>(StepError::fatal("no"))
    });
    let (engine, worker) = start(
        b.engine()
            .step(ok)
            .step(boom)
            .step(hang)
            .callback(cb)
            .cancel_grace(Duration::from_millis(50)),
    )
    .await;
    let with_cb = |timeout| TaskOptions {
        callback: Some("cb".into()),
        max_execution_seconds: timeout,
        ..Default::default()
    };
    let skip = StepOptions {
        skip_on_failed: true,
        ..Default::default()
    };
    // Two skipped failures in the middle must not fire the callback twice.
    let success = task_with(
        "success",
        with_cb(0),
        [
            step_with("a", "boom", skip.clone()),
            step_with("b", "boom", skip),
            step("c", "ok"),
        ],
    );
    let failure = task_with("failure", with_cb(0), [step("a", "boom")]);
    let timeout = task_with("timeout", with_cb(1), [step("a", "hang")]);
    let revoked = task_with("revoked", with_cb(0), [step("a", "hang")]);
    let ids: Vec<String> =
        futures::future::join_all([success, failure, timeout].map(|t| engine.dispatch(t)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let revoked_id = engine.dispatch(revoked).await.unwrap();
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();
    engine.cancel(&revoked_id).await.unwrap();
    for id in ids.iter().chain([&revoked_id]) {
        let done = engine.wait_timeout(id, WAIT).await.unwrap();
        assert_eq!(
            done.callback_result,
            Some(CallbackResult::Success),
            "{}",
            done.task_name
        );
    }
    for key in [
        "success:SUCCESS",
        "failure:FAILURE",
        "timeout:TIMEOUT",
        "revoked:REVOKED",
    ] {
        assert_eq!(seen.get(key), 1, "{key}");
    }
    assert_eq!(
        seen.0.lock().unwrap().len(),
        4,
        "{:?}",
        seen.0.lock().unwrap()
    );
    worker.shutdown().await;
}

async fn callback_failure_turns_success_into_failure(b: TestBackend) {
    let cb = callback_fn("cb", |_outcome| async {
        Err(CallbackError::new("quota service down"))
    });
    let panicky = callback_fn("panicky", |_outcome| async { panic!("callback exploded") });
    let (engine, worker) = start(
        b.engine()
            .step(step_fn("ok", |_ctx| async { Ok(()) }))
            .callback(cb)
            .callback(panicky),
    )
    .await;
    let options = TaskOptions {
        callback: Some("cb".into()),
        ..Default::default()
    };
    let done = run_to_end(&engine, task_with("t", options, [step("a", "ok")])).await;
    assert_eq!(done.status, TaskStatus::Failure);
    assert_eq!(done.callback_result, Some(CallbackResult::Failure));
    assert_eq!(done.message, "callback `cb` failed: quota service down");
    assert_eq!(done.callback_message, done.message);
    let options = TaskOptions {
        callback: Some("panicky".into()),
        ..Default::default()
    };
    let done = run_to_end(&engine, task_with("t", options, [step("a", "ok")])).await;
    assert_eq!(done.status, TaskStatus::Failure);
    assert!(
        done.callback_message.contains("panic: callback exploded"),
        "{}",
        done.callback_message
    );
    worker.shutdown().await;
}

/// Sets its flag when dropped: proves a step future was dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A step's cancellation token is its attempt's: cancelling it (here from a helper task the step left behind) does
/// not touch the next step of the chain.
async fn a_steps_token_does_not_reach_the_next_step(b: TestBackend) {
    let b_started = Arc::new(tokio::sync::Notify::new());
    let helper_done = Arc::new(tokio::sync::Notify::new());
    let (started, done) = (b_started.clone(), helper_done.clone());
    let leave_helper = step_fn("leave_helper", move |ctx| {
        let (started, done) = (started.clone(), done.clone());
        async move {
            let token = ctx.cancellation_token();
            tokio::spawn(async move {
                started.notified().await;
                token.cancel();
                done.notify_one();
            });
            Ok(())
        }
    });
    let (started, done) = (b_started.clone(), helper_done.clone());
    let wait_for_helper = step_fn("wait_for_helper", move |ctx| {
        let (started, done) = (started.clone(), done.clone());
        async move {
            started.notify_one();
            done.notified().await;
            Ok(ctx.is_cancelled())
        }
    });
    let (engine, worker) = start(b.engine().step(leave_helper).step(wait_for_helper)).await;
    let done = run_to_end(
        &engine,
        task(
            "t",
            [step("a", "leave_helper"), step("b", "wait_for_helper")],
        ),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.steps[1].attempt, 1, "step b ran once");
    assert_eq!(
        done.steps[1].output,
        Some(serde_json::json!(false)),
        "step b did not see a cancellation"
    );
    worker.shutdown().await;
}

/// A step may cancel its own attempt's token (here to stop a helper it spawned, which it then waits for): that is no
/// cancellation of the task, so the step's result is committed and the step runs once.
async fn a_step_that_cancels_its_own_token_still_counts(b: TestBackend) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let stop_helper = step_fn("stop_helper", move |ctx| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let token = ctx.cancellation_token();
            let helper = tokio::spawn({
                let token = token.clone();
                async move { token.cancelled().await }
            });
            token.cancel();
            helper.await.map_err(StepError::fatal)?;
            Ok("stopped")
        }
    });
    let (engine, worker) = start(b.engine().step(stop_helper)).await;
    let done = run_to_end(&engine, task("t", [step("a", "stop_helper")])).await;
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.steps[0].output, Some(serde_json::json!("stopped")));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    worker.shutdown().await;
}

async fn cancel_drops_the_running_step(b: TestBackend) {
    let side_effect = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (s, d) = (side_effect.clone(), dropped.clone());
    let hang = step_fn("hang", move |_ctx| {
        let (s, d, started) = (s.clone(), d.clone(), started_tx.clone());
        async move {
            let _guard = DropFlag(d);
            let _ = started.send(());
            tokio::time::sleep(Duration::from_secs(3600)).await; // ignores cancellation on purpose
            s.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let calls = Calls::default();
    let (engine, worker) = start(
        b.engine()
            .step(hang)
            .step(recorder("rec", &calls))
            .cancel_grace(Duration::from_millis(100)),
    )
    .await;
    let id = engine
        .dispatch(task("t", [step("a", "hang"), step("b", "rec")]))
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    let revoked = engine.cancel_by(&id, "admin").await.unwrap();
    assert_eq!(revoked.status, TaskStatus::Revoked, "REVOKED at once");
    let done = engine.wait_timeout(&id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Revoked);
    assert_eq!(done.message, "task has been revoked");
    assert_eq!(done.updater, "admin");
    // The worker drops the future after the grace period.
    worker.idle().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the step future was dropped"
    );
    assert_eq!(
        side_effect.load(Ordering::SeqCst),
        0,
        "the side effect after the await never happened"
    );
    assert_eq!(calls.get("b"), 0);
    let err = engine.cancel(&id).await.unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
    worker.shutdown().await;
}

async fn cancel_works_when_no_step_runs(b: TestBackend) {
    let calls = Calls::default();
    let seen = Calls::default();
    let s = seen.clone();
    let cb = callback_fn("cb", move |outcome| {
        let s = s.clone();
        async move {
            s.hit(outcome.status.as_str());
            Ok(())
        }
    });
    let (engine, worker) = start(b.engine().step(recorder("rec", &calls)).callback(cb)).await;
    let options = TaskOptions {
        callback: Some("cb".into()),
        ..Default::default()
    };
    let delayed = StepOptions {
        delay_seconds: 3600,
        ..Default::default()
    };
    let id = engine
        .dispatch(task_with("t", options, [step_with("a", "rec", delayed)]))
        .await
        .unwrap();
    engine.cancel(&id).await.unwrap();
    let done = engine.wait_timeout(&id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Revoked);
    assert_eq!(done.steps[0].status, StepStatus::NotStarted);
    assert_eq!(calls.get("a"), 0);
    assert_eq!(seen.get("REVOKED"), 1);
    worker.shutdown().await;
}

async fn node_pinning_per_step_and_per_task(b: TestBackend) {
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let make = |node: &'static str| {
        let r = ran_on.clone();
        step_fn("where", move |ctx| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push((ctx.step_name().to_owned(), node));
                Ok(())
            }
        })
    };
    // Two engines (one per worker) so each worker's step records its own node.
    let engine_a = b.engine().step(make("a")).build().unwrap();
    let engine_b = b.engine().step(make("b")).build().unwrap();
    let worker_a = engine_a.worker().node("a").start().await.unwrap();
    let worker_b = engine_b.worker().node("b").start().await.unwrap();
    let pinned = StepOptions {
        node: Some("b".into()),
        ..Default::default()
    };
    let mut ids = Vec::new();
    for _ in 0..10 {
        let t = task(
            "t",
            [
                step("free", "where"),
                step_with("pinned", "where", pinned.clone()),
            ],
        );
        ids.push(engine_a.dispatch(t).await.unwrap());
        let whole = TaskOptions {
            node: Some("b".into()),
            ..Default::default()
        };
        ids.push(
            engine_a
                .dispatch(task_with("t", whole, [step("task-pinned", "where")]))
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        assert_eq!(
            engine_a.wait_timeout(id, WAIT).await.unwrap().status,
            TaskStatus::Success
        );
    }
    let ran_on = ran_on.lock().unwrap().clone();
    assert!(
        ran_on
            .iter()
            .filter(|(s, _)| s != "free")
            .all(|(_, node)| *node == "b"),
        "{ran_on:?}"
    );
    assert_eq!(ran_on.iter().filter(|(s, _)| s == "pinned").count(), 10);
    worker_a.shutdown().await;
    worker_b.shutdown().await;
}

async fn queues_are_exact(b: TestBackend) {
    let calls = Calls::default();
    let engine = b.engine().step(recorder("rec", &calls)).build().unwrap();
    let worker_a = engine.worker().queues(["a"]).start().await.unwrap();
    let in_ab = StepOptions {
        queue: Some("ab".into()),
        ..Default::default()
    };
    let id = engine
        .dispatch(task("t", [step_with("x", "rec", in_ab)]))
        .await
        .unwrap();
    let in_a = StepOptions {
        queue: Some("a".into()),
        ..Default::default()
    };
    let done_a = run_to_end(&engine, task("t", [step_with("y", "rec", in_a)])).await;
    assert_eq!(done_a.status, TaskStatus::Success);
    assert_eq!(
        engine.get(&id).await.unwrap().status,
        TaskStatus::Initializing,
        "queue `a` never sees queue `ab`"
    );
    let worker_ab = engine.worker().queues(["ab"]).start().await.unwrap();
    assert_eq!(
        engine.wait_timeout(&id, WAIT).await.unwrap().status,
        TaskStatus::Success
    );
    worker_a.shutdown().await;
    worker_ab.shutdown().await;
}

async fn panic_becomes_a_non_retryable_failure(b: TestBackend) {
    let calls = Calls::default();
    let c = calls.clone();
    let panics = step_fn("panics", move |_ctx| {
        let c = c.clone();
        async move {
            c.hit("attempt");
            if c.get("attempt") > 0 {
                panic!("kaboom at attempt {}", c.get("attempt"));
            }
            Ok(())
        }
    });
    let (engine, worker) = start(b.engine().step(panics).backoff(fast_backoff())).await;
    let options = StepOptions {
        max_retries: 3,
        ..Default::default()
    };
    let done = run_to_end(&engine, task("t", [step_with("a", "panics", options)])).await;
    assert_eq!(done.status, TaskStatus::Failure);
    assert!(
        done.steps[0].message.contains("panic: kaboom at attempt 1"),
        "{}",
        done.steps[0].message
    );
    assert_eq!(calls.get("attempt"), 1, "a panic is not retried");
    worker.shutdown().await;
}

async fn template_error_names_step_and_param(b: TestBackend) {
    let calls = Calls::default();
    let (engine, worker) = start(b.engine().step(recorder("rec", &calls))).await;
    let t = task(
        "t",
        [step("hello", "rec").param("greeting", "hi {{ common.nobody }}")],
    );
    let done = run_to_end(&engine, t).await;
    assert_eq!(done.status, TaskStatus::Failure);
    let message = &done.steps[0].message;
    assert!(
        message.contains("step `hello`: param `greeting`: template error"),
        "{message}"
    );
    assert!(message.contains("undefined"), "{message}");
    assert_eq!(calls.get("hello"), 0);
    let bad_syntax = task(
        "t",
        [step("hello", "rec").param("greeting", "hi {{ common.x ")],
    );
    let err = engine.dispatch(bad_syntax).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("step `hello`: param `greeting`: template error"),
        "{err}"
    );
    worker.shutdown().await;
}

async fn templates_see_outputs_and_custom_filters(b: TestBackend) {
    let produce = step_fn("produce", |_ctx| async {
        Ok(serde_json::json!({"url": "http://svc", "n": 2}))
    });
    let echo = step_fn("echo", |ctx| async move {
        Ok(ctx.param("text").unwrap().to_owned())
    });
    let (engine, worker) = start(
        b.engine()
            .step(produce)
            .step(echo)
            .filter("shout", |s: String| s.to_uppercase())
            .function("twice", |n: i64| n * 2),
    )
    .await;
    let text = "{{ steps.p.output.url | shout }} {{ twice(steps.p.output.n) }} {{ task.name }} {{ params.who }}";
    let mut t = task(
        "named",
        [step("p", "produce"), step("e", "echo").param("text", text)],
    );
    t.set_common_param("who", "ops");
    let done = run_to_end(&engine, t).await;
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(
        done.steps[1].output,
        Some(serde_json::json!("HTTP://SVC 4 named ops"))
    );
    worker.shutdown().await;
}

async fn delays_are_relative_to_the_previous_step(b: TestBackend) {
    let (engine, worker) = start(b.engine().step(step_fn("ok", |_ctx| async { Ok(()) }))).await;
    let delayed = StepOptions {
        delay_seconds: 1,
        ..Default::default()
    };
    let eta = chrono::Utc::now() + chrono::Duration::seconds(1);
    let at = StepOptions {
        eta: Some(eta),
        ..Default::default()
    };
    let done = run_to_end(
        &engine,
        task(
            "t",
            [
                step("a", "ok"),
                step_with("b", "ok", delayed),
                step_with("c", "ok", at),
            ],
        ),
    )
    .await;
    assert_eq!(done.status, TaskStatus::Success);
    let gap = done.steps[1].start.unwrap() - done.steps[0].end.unwrap();
    assert!(
        gap >= chrono::Duration::seconds(1),
        "b started {gap} after a ended"
    );
    assert!(
        done.steps[2].start.unwrap() >= eta,
        "c started before its ETA"
    );
    worker.shutdown().await;
}

async fn long_polling_step_is_cancellable(b: TestBackend) {
    use taskflow::poll::{Poll, poll_until};
    let polls = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let p = polls.clone();
    let poller = step_fn("poller", move |ctx| {
        let p = p.clone();
        async move {
            let target: usize = ctx
                .param("until")
                .unwrap()
                .parse()
                .map_err(StepError::fatal)?;
            poll_until(&ctx.cancellation_token(), Duration::from_millis(5), || {
                let mut n = 0;
                p.send_modify(|polls| {
                    *polls += 1;
                    n = *polls;
                });
                async move {
                    Ok(if n >= target {
                        Poll::Done(n)
                    } else {
                        Poll::Pending
                    })
                }
            })
            .await
        }
    });
    let (engine, worker) = start(
        b.engine()
            .step(poller)
            .cancel_grace(Duration::from_secs(30)),
    )
    .await;
    let done = run_to_end(
        &engine,
        task("t", [step("a", "poller").param("until", "3")]),
    )
    .await;
    assert_eq!(done.steps[0].output, Some(serde_json::json!(3)));
    // A poll that never finishes stops when the task is cancelled (within the grace period, not after it).
    let id = engine
        .dispatch(task(
            "t",
            [step("a", "poller").param("until", "1000000000")],
        ))
        .await
        .unwrap();
    polls.subscribe().wait_for(|n| *n >= 5).await.unwrap();
    engine.cancel(&id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), worker.idle())
        .await
        .expect("the polling step stops on cancellation without waiting out the grace period");
    worker.shutdown().await;
}

async fn listing_filters_sorts_and_pages(b: TestBackend) {
    let (engine, worker) = start(
        b.engine()
            .step(step_fn("ok", |_ctx| async { Ok(()) }))
            .step(step_fn("boom", |_ctx| async {
                Err::<(), _>(StepError::fatal("x"))
            })),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let info = TaskInfo {
            task_name: format!("task-{i:02}"),
            task_type: if i % 2 == 0 { "even" } else { "odd" }.into(),
            task_index: format!("cluster-{}", i % 3),
            task_index_type: "cluster".into(),
            creator: if i < 6 { "alice" } else { "bob" }.into(),
        };
        let t = Task::new(info, TaskOptions::default())
            .with_step(step("a", if i % 4 == 0 { "boom" } else { "ok" }));
        ids.push(engine.dispatch(t).await.unwrap());
    }
    for id in &ids {
        engine.wait_timeout(id, WAIT).await.unwrap();
    }
    let page = engine
        .list(&TaskQuery::default().task_type("even"))
        .await
        .unwrap();
    assert_eq!(page.total, 6);
    let page = engine
        .list(
            &TaskQuery::default()
                .index("cluster-1")
                .index_type("cluster"),
        )
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    let page = engine
        .list(&TaskQuery::default().status(TaskStatus::Failure))
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    let page = engine
        .list(&TaskQuery::default().statuses([TaskStatus::Failure, TaskStatus::Success]))
        .await
        .unwrap();
    assert_eq!(page.total, 12);
    let page = engine
        .list(&TaskQuery::default().creator("bob").task_type("odd"))
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    let sorted = TaskQuery::default().sort_by(taskflow::SortField::TaskName, false);
    let page = engine.list(&sorted.clone().page(10, 5)).await.unwrap();
    assert_eq!(page.total, 12);
    let names: Vec<&str> = page.items.iter().map(|t| t.task_name.as_str()).collect();
    assert_eq!(names, ["task-10", "task-11"]);
    let all = engine
        .list(&TaskQuery::default().page(0, 100))
        .await
        .unwrap();
    let created: Vec<_> = all.items.iter().map(|t| t.created_at).collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first by default"
    );
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let none = engine
        .list(&TaskQuery::default().created_between(Some(future), None))
        .await
        .unwrap();
    assert_eq!(none.total, 0);
    worker.shutdown().await;
}

async fn unknown_executor_is_rejected_and_unrunnable_steps_wait(b: TestBackend) {
    let calls = Calls::default();
    let engine = b
        .engine()
        .step(recorder("rec", &calls))
        .step(recorder("special", &calls))
        .build()
        .unwrap();
    let err = engine
        .dispatch(task("t", [step("a", "ghost")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("executor `ghost`, which is not registered"),
        "{err}"
    );
    let general = engine.worker().executors(["rec"]).start().await.unwrap();
    let id = engine
        .dispatch(task("t", [step("a", "rec"), step("b", "special")]))
        .await
        .unwrap();
    let other = engine
        .dispatch(task("t", [step("a", "rec")]))
        .await
        .unwrap();
    assert_eq!(
        engine.wait_timeout(&other, WAIT).await.unwrap().status,
        TaskStatus::Success
    );
    // Wait until `a` is done: `b` now waits for a worker that runs `special`.
    let mut task = engine.get(&id).await.unwrap();
    while task.current_step != "b" {
        task = engine
            .backend()
            .wait_change(&id, 0)
            .await
            .unwrap()
            .unwrap()
            .value;
    }
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(
        task.steps[1].status,
        StepStatus::NotStarted,
        "no worker claims a step it cannot run"
    );
    let reason = engine
        .waiting_reason(&task)
        .await
        .unwrap()
        .expect("the task says why it waits");
    assert_eq!(
        engine.get(&id).await.unwrap().message,
        reason,
        "`get` shows why it waits"
    );
    assert!(
        reason.contains("step `b` (executor `special`) waits for a worker"),
        "{reason}"
    );
    assert!(reason.contains("cannot run it"), "{reason}");
    let special = engine
        .worker()
        .executors(["special"])
        .start()
        .await
        .unwrap();
    assert_eq!(
        engine.wait_timeout(&id, WAIT).await.unwrap().status,
        TaskStatus::Success
    );
    general.shutdown().await;
    special.shutdown().await;
}

async fn graceful_shutdown_finishes_or_releases_steps(b: TestBackend) {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let gated = step_fn("gated", move |_ctx| {
        let (started, mut go) = (started_tx.clone(), go_rx.clone());
        async move {
            let _ = started.send(());
            go.wait_for(|go| *go).await.map_err(StepError::new)?;
            Ok(())
        }
    });
    let engine = b.engine().step(gated).build().unwrap();
    // A step that finishes within the grace period is committed.
    let worker = engine.worker().start().await.unwrap();
    let first = engine
        .dispatch(task("t", [step("a", "gated")]))
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    let shutdown = tokio::spawn(worker.shutdown_within(Duration::from_secs(30)));
    go_tx.send(true).unwrap();
    shutdown.await.unwrap();
    assert_eq!(
        engine.get(&first).await.unwrap().status,
        TaskStatus::Success
    );
    // A step that outlives the grace period is dropped and released; another worker runs it again.
    go_tx.send(false).unwrap();
    let worker = engine.worker().start().await.unwrap();
    let second = engine
        .dispatch(task("t", [step("a", "gated")]))
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    worker.shutdown_within(Duration::from_millis(50)).await;
    let released = engine.get(&second).await.unwrap();
    assert!(!released.is_terminal());
    let worker = engine.worker().start().await.unwrap();
    started_rx.recv().await.unwrap();
    go_tx.send(true).unwrap();
    let done = engine.wait_timeout(&second, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(done.steps[0].attempt, 2, "redelivered after the release");
    worker.shutdown().await;
}

async fn a_thousand_concurrent_tasks(b: TestBackend) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let work = step_fn("work", move |ctx| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            ctx.set_common(ctx.step_name().to_owned(), "done");
            Ok(())
        }
    });
    let fail = step_fn("fail", |_ctx| async {
        Err::<(), _>(StepError::fatal("planned"))
    });
    let engine = b.engine().step(work).step(fail).build().unwrap();
    let worker = engine.worker().concurrency(256).start().await.unwrap();
    let tasks: Vec<Task> = (0..1000)
        .map(|i| {
            let last = if i % 10 == 0 { "fail" } else { "work" };
            task(
                &format!("t{i}"),
                [step("a", "work"), step("b", "work"), step("c", last)],
            )
        })
        .collect();
    let ids: Vec<String> = futures::future::join_all(tasks.into_iter().map(|t| engine.dispatch(t)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let results = futures::future::join_all(
        ids.iter()
            .map(|id| engine.wait_timeout(id, Duration::from_secs(300))),
    )
    .await;
    let mut failures = 0;
    for (i, result) in results.into_iter().enumerate() {
        let done = result.unwrap();
        if i % 10 == 0 {
            assert_eq!(done.status, TaskStatus::Failure);
            failures += 1;
        } else {
            assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
            assert_eq!(done.common_params.len(), 3);
        }
    }
    assert_eq!(failures, 100);
    assert_eq!(calls.load(Ordering::SeqCst), 2900);
    worker.shutdown().await;
}

async fn panics_in_user_template_code_fail_the_step(b: TestBackend) {
    let calls = Calls::default();
    let (engine, worker) = start(
        b.engine()
            .step(recorder("rec", &calls))
            .filter("boom", |_value: String| -> String {
                panic!("filter exploded")
            }),
    )
    .await;
    let t = task("t", [step("a", "rec").param("x", "{{ 'v' | boom }}")]);
    let done = run_to_end(&engine, t).await;
    assert_eq!(done.status, TaskStatus::Failure);
    let message = &done.steps[0].message;
    assert!(
        message.contains("rendering its params panicked: filter exploded"),
        "{message}"
    );
    assert_eq!(calls.get("a"), 0);
    tokio::time::timeout(WAIT, worker.idle())
        .await
        .expect("no driver is left behind");
    worker.shutdown().await;
}

async fn a_huge_backoff_does_not_break_the_worker(b: TestBackend) {
    let calls = Calls::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (engine, worker) = start(
        b.engine()
            .step(flaky("flaky", &calls, fail))
            .backoff(Backoff::fixed(Duration::MAX)),
    )
    .await;
    let options = TaskOptions {
        max_execution_seconds: 1,
        ..Default::default()
    };
    let retries = StepOptions {
        max_retries: 1,
        ..Default::default()
    };
    let done = run_to_end(
        &engine,
        task_with("t", options, [step_with("a", "flaky", retries)]),
    )
    .await;
    assert_eq!(
        done.status,
        TaskStatus::Timeout,
        "the deadline still fires: {}",
        done.message
    );
    assert_eq!(calls.get("a"), 1);
    worker.shutdown().await;
}

async fn retry_waits_for_the_pending_callback(b: TestBackend) {
    let boom = step_fn("boom", |_ctx| async {
        Err::<(), _>(StepError::fatal("no"))
    });
    let engine = b
        .engine()
        .step(boom)
        .callback(callback_fn("cb", |_outcome| async { Ok(()) }))
        .build()
        .unwrap();
    // A worker that runs steps but not the callback: the task ends, its callback waits.
    let steps_only = engine
        .worker()
        .callbacks(Vec::<String>::new())
        .start()
        .await
        .unwrap();
    let options = TaskOptions {
        callback: Some("cb".into()),
        ..Default::default()
    };
    let id = engine
        .dispatch(task_with("t", options, [step("a", "boom")]))
        .await
        .unwrap();
    let mut ended = engine.get(&id).await.unwrap();
    while !ended.is_terminal() {
        ended = engine
            .backend()
            .wait_change(&id, 0)
            .await
            .unwrap()
            .unwrap()
            .value;
    }
    let err = engine.retry(&id, RetryRequest::new()).await.unwrap_err();
    assert!(
        err.to_string().contains("callback `cb` has not run yet"),
        "{err}"
    );
    let with_callbacks = engine.worker().start().await.unwrap();
    let settled = engine.wait_timeout(&id, WAIT).await.unwrap();
    assert_eq!(settled.callback_result, Some(CallbackResult::Success));
    engine.retry(&id, RetryRequest::new()).await.unwrap();
    steps_only.shutdown().await;
    with_callbacks.shutdown().await;
}

async fn a_worker_cannot_list_unknown_executors(b: TestBackend) {
    let engine = b
        .engine()
        .step(step_fn("ok", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    let err = engine
        .worker()
        .executors(["ok", "ghost"])
        .callbacks(["nope"])
        .start()
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("the worker lists executor `ghost`, which is not registered"),
        "{text}"
    );
    assert!(
        text.contains("the worker lists callback `nope`, which is not registered"),
        "{text}"
    );
}

/// A step started by the commit that ended the previous one does not run if the task deadline passed meanwhile.
async fn a_deadline_passed_during_a_commit_stops_the_chain(b: TestBackend) {
    let calls = Calls::default();
    // The commit that ends step `a` and starts step `b` is slow, as a slow or retried etcd transaction would be.
    let hooks = Hooks {
        chain_delay: Some(Duration::from_millis(1500)),
        ..Hooks::default()
    };
    let (slow_chain, _hooks) = Hooked::wrap(&b.backend, hooks);
    let engine = Engine::builder()
        .shared_backend(slow_chain)
        .without_inventory()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .step(recorder("late", &calls));
    let (engine, worker) = start(engine).await;
    let options = TaskOptions {
        max_execution_seconds: 1,
        ..Default::default()
    };
    let done = run_to_end(
        &engine,
        task_with("deadline", options, [step("a", "noop"), step("b", "late")]),
    )
    .await;
    worker.shutdown().await;
    assert_eq!(done.status, TaskStatus::Timeout, "{}", done.message);
    assert_eq!(done.steps[0].status, StepStatus::Success);
    assert_eq!(calls.get("b"), 0, "step b ran after the task deadline");
}

//! A worker's lifecycle against what races it: a shutdown that begins while a claim or a chaining commit is in
//! flight, `idle()` during a claim; and task deadlines of steps that no live worker serves. On every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskflow::{
    Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, Worker, step_fn,
};
use taskflow_tests::hooks::{Hooked, Hooks};
use taskflow_tests::{TestBackend, backend_tests};

backend_tests!(
    no_step_starts_once_shutdown_began_during_its_claim,
    no_step_starts_once_shutdown_began_during_its_start_commit,
    no_chain_continues_once_shutdown_began_during_its_commit,
    idle_waits_for_a_claim_in_flight,
    a_step_pinned_to_an_absent_node_still_times_out,
    a_step_on_a_queue_nobody_serves_still_times_out,
);

fn task(options: TaskOptions, steps: impl IntoIterator<Item = Step>) -> Task {
    let info = TaskInfo {
        task_name: "lifecycle".into(),
        task_type: "test".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, options);
    for step in steps {
        task.add_step(step);
    }
    task
}

/// A step that counts its runs.
fn counted(executor: &str, runs: &Arc<AtomicUsize>) -> taskflow::FnStep {
    let runs = Arc::clone(runs);
    step_fn(executor, move |_ctx| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

/// A worker on `b` slowed down by `hooks`, running `steps` of one dispatched task (executors: `noop`, and `count`,
/// which counts its runs).
struct Slowed {
    engine: Engine,
    worker: Worker,
    id: String,
    runs: Arc<AtomicUsize>,
    hooks: Arc<Hooks>,
}

async fn slowed(b: &TestBackend, hooks: Hooks, steps: impl IntoIterator<Item = Step>) -> Slowed {
    let (backend, hooks) = Hooked::wrap(&b.backend, hooks);
    let runs = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder()
        .shared_backend(backend)
        .without_inventory()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .step(counted("count", &runs))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let id = engine
        .dispatch(task(TaskOptions::default(), steps))
        .await
        .unwrap();
    Slowed {
        engine,
        worker,
        id,
        runs,
        hooks,
    }
}

/// A one-step task of `count` whose claim takes 300 ms; returns once the worker began to claim it.
async fn claiming_a_task(b: &TestBackend) -> Slowed {
    let slow_claims = Hooks {
        claim_delay: Some(Duration::from_millis(300)),
        ..Hooks::default()
    };
    let slowed = slowed(
        b,
        slow_claims,
        [Step::new("a", "count", StepOptions::default())],
    )
    .await;
    slowed.hooks.claiming.notified().await;
    slowed
}

/// A claim in flight when shutdown begins: the claimed step does not start here (it is released for another worker).
async fn no_step_starts_once_shutdown_began_during_its_claim(b: TestBackend) {
    let Slowed {
        engine,
        worker,
        id,
        runs,
        ..
    } = claiming_a_task(&b).await;
    worker.shutdown_within(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the step started after shutdown began"
    );
    assert!(!engine.get(&id).await.unwrap().is_terminal());
}

/// Shutdown begins while the commit that starts the step is in flight: the step does not run here (it stays started,
/// for another worker to run again).
async fn no_step_starts_once_shutdown_began_during_its_start_commit(b: TestBackend) {
    let slow_start = Hooks {
        start_delay: Some(Duration::from_millis(300)),
        ..Hooks::default()
    };
    let steps = [Step::new("a", "count", StepOptions::default())];
    let Slowed {
        worker,
        runs,
        hooks,
        ..
    } = slowed(&b, slow_start, steps).await;
    hooks.starting.notified().await;
    worker.shutdown_within(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the step ran after shutdown began"
    );
}

/// The commit that ends step `a` and starts step `b` under the same claim is in flight when shutdown begins: `b` does
/// not run here.
async fn no_chain_continues_once_shutdown_began_during_its_commit(b: TestBackend) {
    let slow_chain = Hooks {
        chain_delay: Some(Duration::from_millis(300)),
        ..Hooks::default()
    };
    let steps = [
        Step::new("a", "noop", StepOptions::default()),
        Step::new("b", "count", StepOptions::default()),
    ];
    let Slowed {
        worker,
        runs,
        hooks,
        ..
    } = slowed(&b, slow_chain, steps).await;
    hooks.chaining.notified().await;
    worker.shutdown_within(Duration::from_secs(5)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "step b ran after shutdown began"
    );
}

/// A worker claiming a message is not idle: `idle()` returns once the claimed step has run.
async fn idle_waits_for_a_claim_in_flight(b: TestBackend) {
    let Slowed {
        engine,
        worker,
        id,
        runs,
        ..
    } = claiming_a_task(&b).await;
    assert_eq!(worker.running(), 1, "a claim in flight counts");
    worker.idle().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "idle() returned before the claimed step ran"
    );
    let done = engine
        .wait_timeout(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    worker.shutdown().await;
}

/// A task whose second step waits on `route` (where no worker listens) and whose deadline is 1 s: it ends TIMEOUT,
/// timed out by a worker that does not serve the route; the step never runs.
async fn times_out_unserved(b: TestBackend, route: StepOptions) {
    let runs = Arc::new(AtomicUsize::new(0));
    let engine = b
        .engine()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .step(counted("count", &runs))
        .build()
        .unwrap();
    let worker = engine.worker().node("here").start().await.unwrap();
    let deadline = TaskOptions {
        max_execution_seconds: 1,
        ..TaskOptions::default()
    };
    let steps = [
        Step::new("a", "noop", StepOptions::default()),
        Step::new("b", "count", route),
    ];
    let id = engine.dispatch(task(deadline, steps)).await.unwrap();
    let done = engine
        .wait_timeout(&id, Duration::from_secs(30))
        .await
        .expect("the deadline ends the task");
    assert_eq!(done.status, TaskStatus::Timeout, "{}", done.message);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    worker.shutdown().await;
}

async fn a_step_pinned_to_an_absent_node_still_times_out(b: TestBackend) {
    let pinned = StepOptions {
        node: Some("absent".into()),
        ..StepOptions::default()
    };
    times_out_unserved(b, pinned).await;
}

async fn a_step_on_a_queue_nobody_serves_still_times_out(b: TestBackend) {
    let queued = StepOptions {
        queue: Some("nobody".into()),
        ..StepOptions::default()
    };
    times_out_unserved(b, queued).await;
}

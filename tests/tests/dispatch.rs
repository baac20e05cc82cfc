//! Idempotent dispatch, on every backend: the same task sent again (by the caller, or by the engine after a lost
//! answer), or rebuilt with the same idempotency key, is stored and run once; other content under a taken id or key
//! is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskflow::{
    BackendError, Engine, Error, RetryPolicy, Step, StepOptions, Task, TaskBuilder, TaskMgr,
    TaskQuery, TaskStatus, step_fn,
};
use taskflow_tests::hooks::{Hooked, Hooks};
use taskflow_tests::{TestBackend, backend_tests};

backend_tests!(
    the_same_task_sent_again_runs_once,
    a_task_rebuilt_with_the_same_idempotency_key_runs_once,
    other_content_under_a_taken_id_or_key_is_refused,
    a_create_whose_answer_was_lost_is_not_duplicated,
    lost_creates_are_sent_again_and_a_give_up_is_safe_to_resend,
);

const WAIT: Duration = Duration::from_secs(60);

/// A flow of two steps run by the counting executor.
struct Order;

impl TaskMgr for Order {
    fn name(&self) -> &str {
        "order"
    }

    fn task_type(&self) -> &str {
        "order"
    }

    fn steps(&self) -> Vec<Step> {
        ["reserve", "ship"]
            .into_iter()
            .map(|name| Step::new(name, "count", StepOptions::default()))
            .collect()
    }
}

/// An engine with one worker whose executor `count` counts its runs; retries of an unreachable backend are quick.
async fn start(
    backend: Arc<dyn taskflow::Backend>,
) -> (Engine, taskflow::Worker, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let engine = Engine::builder()
        .shared_backend(backend)
        .without_inventory()
        .retry_policy(RetryPolicy::default().min_delay(Duration::from_millis(1)))
        .step(step_fn("count", move |_ctx| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        }))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    (engine, worker, runs)
}

/// How many tasks the backend holds.
async fn stored_tasks(engine: &Engine) -> usize {
    engine.list(&TaskQuery::default()).await.unwrap().total
}

/// Waits for the task to succeed; the steps ran once each.
async fn succeeded_once(engine: &Engine, id: &str) {
    let done = engine.wait_timeout(id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert!(done.steps.iter().all(|s| s.attempt == 1), "{done:?}");
}

async fn the_same_task_sent_again_runs_once(b: TestBackend) {
    let (engine, worker, runs) = start(Arc::clone(&b.backend)).await;
    let task = TaskBuilder::new(&Order).build().unwrap();
    let id = engine.dispatch(task.clone()).await.unwrap();
    // Sent again while it may be running, and again after it ended: the same task, not a new one.
    assert_eq!(engine.dispatch(task.clone()).await.unwrap(), id);
    succeeded_once(&engine, &id).await;
    assert_eq!(engine.dispatch(task).await.unwrap(), id);
    // One task, ended, its two steps run once: nothing is left to run.
    assert_eq!(stored_tasks(&engine).await, 1);
    assert!(engine.get(&id).await.unwrap().is_settled());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    worker.shutdown().await;
}

async fn a_task_rebuilt_with_the_same_idempotency_key_runs_once(b: TestBackend) {
    let (engine, worker, runs) = start(Arc::clone(&b.backend)).await;
    let build = |key: &str| {
        TaskBuilder::new(&Order)
            .idempotency_key(key)
            .param("sku", "42")
            .build()
            .unwrap()
    };
    let first = build("order-42");
    assert_eq!(first.task_id, Task::idempotent_id("order", "order-42"));
    let id = engine.dispatch(first).await.unwrap();
    succeeded_once(&engine, &id).await;
    // Rebuilt from scratch later (its build times differ): the same task.
    let mut rebuilt = build("order-42");
    rebuilt.created_at = rebuilt.created_at.map(|t| t + chrono::Duration::hours(1));
    rebuilt.last_update = rebuilt.created_at;
    assert_eq!(engine.dispatch(rebuilt).await.unwrap(), id);
    assert_eq!(stored_tasks(&engine).await, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Another key is another task.
    let other = engine.dispatch(build("order-43")).await.unwrap();
    assert_ne!(other, id);
    succeeded_once(&engine, &other).await;
    assert_eq!(stored_tasks(&engine).await, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    worker.shutdown().await;
}

async fn other_content_under_a_taken_id_or_key_is_refused(b: TestBackend) {
    let (engine, worker, _runs) = start(Arc::clone(&b.backend)).await;
    let keyed = |sku: &str| {
        TaskBuilder::new(&Order)
            .idempotency_key("order-7")
            .param("sku", sku)
            .build()
            .unwrap()
    };
    let id = engine.dispatch(keyed("1")).await.unwrap();
    let refused = engine.dispatch(keyed("2")).await.unwrap_err();
    assert!(
        matches!(&refused, Error::IdTaken { task_id } if *task_id == id),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains(&id) && message.contains("idempotency key"),
        "{message}"
    );
    // A caller-given id, and a task changed after it was sent, are refused the same way.
    let named = TaskBuilder::new(&Order).id("my-order").build().unwrap();
    assert_eq!(engine.dispatch(named.clone()).await.unwrap(), "my-order");
    let mut changed = named;
    changed.steps[1].max_retries = 3;
    assert!(matches!(
        engine.dispatch(changed).await,
        Err(Error::IdTaken { task_id }) if task_id == "my-order"
    ));
    // The stored tasks are the first ones.
    succeeded_once(&engine, &id).await;
    assert_eq!(engine.get(&id).await.unwrap().common_params["sku"], "1");
    let mine = engine.wait_timeout("my-order", WAIT).await.unwrap();
    assert_eq!(mine.steps[1].max_retries, 0);
    worker.shutdown().await;
}

async fn a_create_whose_answer_was_lost_is_not_duplicated(b: TestBackend) {
    let hooks = Hooks {
        lost_create_answers: AtomicUsize::new(1),
        ..Hooks::default()
    };
    let (backend, hooks) = Hooked::wrap(&b.backend, hooks);
    let (engine, worker, runs) = start(backend).await;
    // Stored, but the answer is lost: the engine sends the same task again and finds it stored.
    let id = engine
        .dispatch(TaskBuilder::new(&Order).build().unwrap())
        .await
        .unwrap();
    assert_eq!(hooks.creates.load(Ordering::SeqCst), 2);
    succeeded_once(&engine, &id).await;
    assert_eq!(stored_tasks(&engine).await, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    worker.shutdown().await;
}

async fn lost_creates_are_sent_again_and_a_give_up_is_safe_to_resend(b: TestBackend) {
    let hooks = Hooks {
        lost_creates: AtomicUsize::new(3),
        ..Hooks::default()
    };
    let (backend, hooks) = Hooked::wrap(&b.backend, hooks);
    let (engine, worker, runs) = start(Arc::clone(&backend)).await;
    let id = engine
        .dispatch(TaskBuilder::new(&Order).build().unwrap())
        .await
        .unwrap();
    assert_eq!(hooks.creates.load(Ordering::SeqCst), 1);
    succeeded_once(&engine, &id).await;

    // A backend unreachable for longer than the policy: `Unavailable`, and the task may or may not be stored...
    let patient = Engine::builder()
        .shared_backend(backend)
        .without_inventory()
        .step(step_fn("count", |_ctx| async { Ok(()) }))
        .retry_policy(
            RetryPolicy::default()
                .min_delay(Duration::from_millis(1))
                .max_elapsed(Some(Duration::from_millis(20))),
        )
        .build()
        .unwrap();
    let task = TaskBuilder::new(&Order).build().unwrap();
    hooks
        .lost_create_answers
        .store(usize::MAX, Ordering::SeqCst);
    let failed = patient.dispatch(task.clone()).await.unwrap_err();
    assert!(
        matches!(failed, Error::Backend(BackendError::Unavailable { .. })),
        "{failed:?}"
    );
    // ... here it was: sending the same task again once the backend answers is safe.
    hooks.lost_create_answers.store(0, Ordering::SeqCst);
    assert_eq!(patient.dispatch(task.clone()).await.unwrap(), task.task_id);
    succeeded_once(&engine, &task.task_id).await;
    assert_eq!(stored_tasks(&engine).await, 2);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    worker.shutdown().await;
}

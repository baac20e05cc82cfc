//! A task driver that panics (an engine bug; here the backend panics inside a commit) is counted, gives its claim
//! back, and another driver takes the task over. In a test binary of its own: every other suite fails on any driver
//! panic in its process (`assert_no_engine_bug`).

use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use taskflow::{Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn};
use taskflow_tests::hooks::{Hooked, Hooks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_panic_is_counted_and_its_task_taken_over() {
    let b = taskflow_tests::memory().await;
    let hooks = Hooks {
        start_panics: AtomicUsize::new(1),
        ..Hooks::default()
    };
    let (backend, _hooks) = Hooked::wrap(&b.backend, hooks);
    let engine = Engine::builder()
        .shared_backend(backend)
        .without_inventory()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let info = TaskInfo {
        task_name: "panics once".into(),
        ..TaskInfo::default()
    };
    let task = Task::new(info, TaskOptions::default()).with_step(Step::new(
        "only",
        "noop",
        StepOptions::default(),
    ));
    let id = engine.dispatch(task).await.unwrap();
    let done = engine
        .wait_timeout(&id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(
        done.steps[0].attempt, 1,
        "the panicking commit stored nothing"
    );
    assert_eq!(worker.driver_panics(), 1);
    assert_eq!(taskflow::test_util::driver_panics(), 1);
    worker.shutdown().await;
}

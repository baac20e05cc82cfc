//! The memory-backend run and its baseline: the same chains as plain tokio tasks.

use crate::Sizes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskflow::{Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn};
use tokio::sync::Semaphore;

/// T chains of S no-op steps where each step is a tokio task that spawns the next, at most C running at once.
pub(crate) async fn tokio_baseline(sizes: Sizes) -> Duration {
    let permits = Arc::new(Semaphore::new(sizes.concurrency));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let began = Instant::now();
    for _ in 0..sizes.tasks {
        spawn_step(Arc::clone(&permits), sizes.steps, done_tx.clone());
    }
    for _ in 0..sizes.tasks {
        done_rx.recv().await.expect("a chain reports its end");
    }
    began.elapsed()
}

fn spawn_step(
    permits: Arc<Semaphore>,
    remaining: usize,
    done: tokio::sync::mpsc::UnboundedSender<()>,
) {
    tokio::spawn(async move {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        std::hint::black_box(remaining);
        drop(permit);
        if remaining > 1 {
            spawn_step(permits, remaining - 1, done);
        } else {
            let _ = done.send(());
        }
    });
}

/// T tasks of S no-op steps on the memory backend, one worker of concurrency C; time from the first dispatch to the
/// last task's end.
pub(crate) async fn taskflow_memory(sizes: Sizes) -> Duration {
    let engine = Engine::builder()
        .without_inventory()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .build()
        .expect("engine");
    let worker = engine
        .worker()
        .concurrency(sizes.concurrency)
        .start()
        .await
        .expect("worker");
    let began = Instant::now();
    run_tasks(&engine, sizes).await;
    let elapsed = began.elapsed();
    worker.shutdown().await;
    elapsed
}

/// A task of no-op steps with these names.
pub(crate) fn noop_task(names: &[String]) -> Task {
    let info = TaskInfo {
        task_name: "bench".into(),
        task_type: "bench".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, TaskOptions::default());
    for name in names {
        task.add_step(Step::new(name.clone(), "noop", StepOptions::default()));
    }
    task
}

/// Dispatches T tasks (at most C dispatches in flight) and waits for all of them; panics unless all succeed.
pub(crate) async fn run_tasks(engine: &Engine, sizes: Sizes) {
    use futures::StreamExt;
    let names: Vec<String> = (0..sizes.steps).map(|i| format!("s{i}")).collect();
    let ids: Vec<String> = futures::stream::iter(0..sizes.tasks)
        .map(|_| engine.dispatch(noop_task(&names)))
        .buffer_unordered(sizes.concurrency)
        .map(|r| r.expect("dispatch"))
        .collect()
        .await;
    let failed = futures::stream::iter(ids)
        .map(|id| async move { engine.wait(&id).await })
        .buffer_unordered(sizes.concurrency * 4)
        .filter(|r| std::future::ready(r.as_ref().expect("wait").status != TaskStatus::Success))
        .count()
        .await;
    assert_eq!(failed, 0, "{failed} benchmark tasks did not succeed");
}

//! taskflow on etcd: throughput at concurrency, etcd writes per step, and the idle hop latency.

use crate::Sizes;
use crate::memory::run_tasks;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskflow::backend::etcd::EtcdConfig;
use taskflow::{Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn};
use taskflow_tests::etcd::EtcdServer;

/// The proposals etcd committed so far (every write: put, delete, txn, lease grant/revoke).
pub(crate) fn proposals(server: &EtcdServer) -> f64 {
    server.metric("etcd_server_proposals_committed_total")
}

async fn engine(server: &EtcdServer, prefix: &str, step: taskflow::FnStep) -> Engine {
    let backend = EtcdConfig::new([server.endpoint()])
        .prefix(prefix)
        .connect()
        .await
        .expect("taskflow connects to etcd");
    Engine::builder()
        .shared_backend(Arc::new(backend))
        .without_inventory()
        .step(step)
        .build()
        .expect("engine")
}

/// T tasks of S no-op steps with one worker of concurrency C; returns the elapsed time and the etcd writes per step.
pub(crate) async fn throughput(server: &EtcdServer, sizes: Sizes) -> (Duration, f64) {
    let engine = engine(
        server,
        THROUGHPUT_PREFIX,
        step_fn("noop", |_ctx| async { Ok(()) }),
    )
    .await;
    let worker = engine
        .worker()
        .concurrency(sizes.concurrency)
        .start()
        .await
        .expect("worker");
    let before = proposals(server);
    let began = Instant::now();
    run_tasks(&engine, sizes).await;
    let elapsed = began.elapsed();
    let writes = proposals(server) - before;
    worker.shutdown().await;
    // A clean key space for the next round (the baseline deletes its keys as it goes).
    let mut client = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .expect("connects to etcd");
    client
        .delete(
            THROUGHPUT_PREFIX,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("clears the benchmark's keys");
    (elapsed, writes / (sizes.tasks * sizes.steps) as f64)
}

/// Where the throughput runs keep their keys.
const THROUGHPUT_PREFIX: &str = "/bench/throughput";

/// When one step of a task ran: task id, step index, start, end.
type Mark = (String, usize, Instant, Instant);

/// Runs `tasks` tasks of 20 no-op steps one after the other on an idle system; returns every hop (one step's end to
/// the next step's start), sorted.
pub(crate) async fn hops(server: &EtcdServer, tasks: usize) -> Vec<Duration> {
    let marks: Arc<Mutex<Vec<Mark>>> = Arc::default();
    let recorder = Arc::clone(&marks);
    let step = step_fn("hop", move |ctx| {
        let recorder = Arc::clone(&recorder);
        async move {
            let start = Instant::now();
            let index = ctx
                .task()
                .step_index(ctx.step_name())
                .expect("the step is in its task");
            recorder.lock().expect("marks").push((
                ctx.task_id().to_owned(),
                index,
                start,
                Instant::now(),
            ));
            Ok(())
        }
    });
    let engine = engine(server, "/bench/hops", step).await;
    let worker = engine
        .worker()
        .concurrency(4)
        .start()
        .await
        .expect("worker");
    for _ in 0..tasks {
        let id = engine
            .dispatch(chain("hops", "hop", 20))
            .await
            .expect("dispatch");
        assert_eq!(
            engine.wait(&id).await.expect("wait").status,
            TaskStatus::Success
        );
    }
    worker.shutdown().await;
    let mut marks = marks.lock().expect("marks").clone();
    marks.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut hops: Vec<Duration> = marks
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[0].1 + 1 == w[1].1)
        .map(|w| w[1].2.duration_since(w[0].3))
        .collect();
    hops.sort();
    hops
}

/// Runs `tasks` tasks of 3 no-op steps one after the other, after one warm-up task that is not counted (the first
/// wait opens the engine's shared watch); returns each one's time from dispatch to the result of `Engine::wait`,
/// sorted: what a caller waiting for a short task sees.
pub(crate) async fn waits(server: &EtcdServer, tasks: usize) -> Vec<Duration> {
    let engine = engine(
        server,
        "/bench/waits",
        step_fn("noop", |_ctx| async { Ok(()) }),
    )
    .await;
    let worker = engine
        .worker()
        .concurrency(4)
        .start()
        .await
        .expect("worker");
    let mut waits = Vec::with_capacity(tasks + 1);
    for _ in 0..=tasks {
        let task = chain("waits", "noop", 3);
        let began = Instant::now();
        let id = engine.dispatch(task).await.expect("dispatch");
        let done = engine.wait(&id).await.expect("wait");
        waits.push(began.elapsed());
        assert_eq!(done.status, TaskStatus::Success);
    }
    worker.shutdown().await;
    waits.remove(0);
    waits.sort();
    waits
}

/// The `q`-quantile of sorted durations, in milliseconds.
pub(crate) fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// A task named `name` of `steps` steps (`s00`, `s01`, ...) that all run `executor`.
fn chain(name: &str, executor: &str, steps: usize) -> Task {
    let info = TaskInfo {
        task_name: name.into(),
        task_type: "bench".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, TaskOptions::default());
    for i in 0..steps {
        task.add_step(Step::new(
            format!("s{i:02}"),
            executor,
            StepOptions::default(),
        ));
    }
    task
}

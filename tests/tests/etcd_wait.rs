//! Waits on etcd: however many tasks are waited for, a backend has one watch per kind of wait (a task's end, any
//! change of a task), counted by etcd itself; and parked waits survive their watch breaking (etcd restarted, the
//! leader lost). Run with `--features etcd`.
#![cfg(feature = "etcd")]

use futures::future::join_all;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use taskflow::backend::Backend;
use taskflow::backend::etcd::EtcdBackend;
use taskflow::{Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn};
use taskflow_tests::etcd::{EtcdCluster, EtcdServer, config, connect};

/// How long an operation may take before the test gives up on it (a bound against hanging, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs an operation that must succeed within [`PATIENCE`].
async fn ok<T, E: std::fmt::Display>(what: &str, op: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(PATIENCE, op).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what} failed: {e}"),
        Err(_) => panic!("{what} did not return within {PATIENCE:?}"),
    }
}

/// Checks `condition` every few milliseconds until it holds (fails the test after [`PATIENCE`]). Used where the
/// state observed has no event to wait for: how many waits the backend has parked.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An engine that starts no worker: the tasks it dispatches stay pending until cancelled.
fn engine(backend: &EtcdBackend) -> Engine {
    Engine::builder()
        .backend(backend.clone())
        .without_inventory()
        .step(step_fn("never-run", |_ctx| async { Ok(()) }))
        .build()
        .expect("engine")
}

/// Dispatches `n` one-step tasks (no worker runs them); returns their ids.
async fn dispatch(engine: &Engine, n: usize) -> Vec<String> {
    let tasks = (0..n).map(|_| {
        let info = TaskInfo {
            task_name: "wait".into(),
            task_type: "wait".into(),
            ..Default::default()
        };
        let mut task = Task::new(info, TaskOptions::default());
        task.add_step(Step::new("s", "never-run", StepOptions::default()));
        engine.dispatch(task)
    });
    let ids = join_all(tasks).await;
    ids.into_iter()
        .map(|id| id.expect("dispatch"))
        .collect::<Vec<_>>()
}

/// The parked waits of [`park`]: for each task's end, and for each task's next change (its revision).
type Waits = (
    Vec<tokio::task::JoinHandle<taskflow::Result<Arc<Task>>>>,
    Vec<tokio::task::JoinHandle<Result<Option<u64>, taskflow::BackendError>>>,
);

/// Parks an `Engine::wait` (for the end) and a `Backend::wait_change` (for the next change) on every task; returns
/// them once all are parked.
async fn park(engine: &Engine, backend: &EtcdBackend, ids: &[String]) -> Waits {
    let parked_before = backend.parked_waits();
    let ends = ids
        .iter()
        .map(|id| {
            let (engine, id) = (engine.clone(), id.clone());
            tokio::spawn(async move { engine.wait(&id).await })
        })
        .collect();
    let changes = ids
        .iter()
        .map(|id| {
            let (backend, id) = (backend.clone(), id.clone());
            tokio::spawn(async move {
                let stored = backend.get(&id).await?.expect("the task exists");
                let next = backend.wait_change(&id, stored.revision).await?;
                Ok(next.map(|next| next.revision))
            })
        })
        .collect();
    let expected = parked_before + 2 * ids.len();
    until("every wait parks", || backend.parked_waits() == expected).await;
    (ends, changes)
}

/// Cancels every task, then checks that every wait returned: the end waits with the revoked task, the change waits
/// with a newer revision.
async fn cancel_and_collect(engine: &Engine, ids: &[String], (ends, changes): Waits) {
    join_all(ids.iter().map(|id| engine.cancel(id)))
        .await
        .into_iter()
        .for_each(|cancelled| assert_eq!(cancelled.expect("cancel").status, TaskStatus::Revoked));
    for end in ends {
        let task = ok("a wait for a task's end", async {
            end.await.expect("join")
        })
        .await;
        assert_eq!(task.status, TaskStatus::Revoked);
    }
    for change in changes {
        let next = ok("a wait for a task's change", async {
            change.await.expect("join")
        })
        .await;
        assert!(
            next.is_some(),
            "a wait for a change returned nothing for a task that exists"
        );
    }
}

/// 1,000 tasks, each with a wait for its end and a wait for its next change: 2,000 parked waits, and etcd counts two
/// more watchers and watch streams than before (one per kind of wait), not 2,000; every wait returns once its task is
/// cancelled. (Each wait opened a watch of its own before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_waits_share_one_watch_per_kind() {
    const TASKS: usize = 1000;
    let server = EtcdServer::start();
    let backend = connect(config(&server)).await;
    let engine = engine(&backend);
    let ids = dispatch(&engine, TASKS).await;
    let watchers_before = server.metric("etcd_debugging_mvcc_watcher_total");
    let streams_before = server.metric("etcd_debugging_mvcc_watch_stream_total");

    let waits = park(&engine, &backend, &ids).await;
    let watchers = server.metric("etcd_debugging_mvcc_watcher_total") - watchers_before;
    let streams = server.metric("etcd_debugging_mvcc_watch_stream_total") - streams_before;
    assert_eq!(
        watchers,
        2.0,
        "{} parked waits should share one watch per kind of wait",
        backend.parked_waits()
    );
    assert_eq!(streams, 2.0, "one watch stream per kind of wait");

    cancel_and_collect(&engine, &ids, waits).await;
    assert_eq!(backend.parked_waits(), 0);
}

/// Parked waits survive a restart of etcd: their shared watches break, open again once etcd is back, and the waits
/// return when their tasks are cancelled afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_waits_survive_a_restart_of_etcd() {
    let mut server = EtcdServer::start();
    let backend = connect(config(&server)).await;
    let engine = engine(&backend);
    let ids = dispatch(&engine, 20).await;
    let waits = park(&engine, &backend, &ids).await;

    tokio::task::block_in_place(|| server.restart());
    cancel_and_collect(&engine, &ids, waits).await;
}

/// Parked waits follow the backend to another member when the leader, which serves their watches, dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_waits_follow_the_leader_to_another_member() {
    let mut cluster = EtcdCluster::start(3);
    let backend = connect(cluster.config()).await;
    let engine = engine(&backend);
    let ids = dispatch(&engine, 20).await;
    let waits = park(&engine, &backend, &ids).await;

    let leader = cluster.leader().await;
    tokio::task::block_in_place(|| cluster.kill(leader));
    cancel_and_collect(&engine, &ids, waits).await;
}

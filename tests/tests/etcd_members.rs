//! How the backend reaches etcd's members. A 3-member etcd cluster that loses one member: while a quorum is alive,
//! every client operation (dispatch, get, list, wait, cancel, retry) succeeds, the worker keeps running tasks on its
//! session (same lease: no step runs twice), and everything still works once the member is back. And a quiet
//! connection is not closed by etcd for pinging too often. Run with `--features etcd`.
#![cfg(feature = "etcd")]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskflow::backend::Backend;
use taskflow::backend::etcd::{EtcdBackend, etcd_client};
use taskflow::{
    Engine, RetryRequest, Step, StepError, StepOptions, Task, TaskInfo, TaskOptions, TaskQuery,
    TaskStatus, step_fn,
};
use taskflow_tests::etcd::{EtcdCluster, EtcdServer, config, connect};
use tokio::sync::mpsc;

/// How long one client operation may take before the test gives up on it (a bound against hanging, not a timing
/// assertion: an operation must return `Ok`, however long it takes within this).
const PATIENCE: Duration = Duration::from_secs(60);

/// Tasks dispatched while the member is down.
const TASKS: usize = 12;

/// Runs an operation that must succeed: its error, or its not returning within [`PATIENCE`], fails the test.
async fn ok<T, E: std::fmt::Display>(what: &str, op: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(PATIENCE, op).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what} failed: {e}"),
        Err(_) => panic!("{what} did not return within {PATIENCE:?}"),
    }
}

/// The test's engine and what its steps record.
struct Setup {
    engine: Engine,
    /// How many times the step of each task ran.
    runs: Arc<Mutex<HashMap<String, usize>>>,
    /// Task ids of `hold` steps that started.
    held: mpsc::UnboundedReceiver<String>,
    /// How many tasks the test dispatched so far.
    dispatched: usize,
}

/// Steps: `work` returns at once; `hold` waits until cancelled on its first run and succeeds on the next.
fn setup(backend: EtcdBackend) -> Setup {
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (started, held) = mpsc::unbounded_channel();
    let work_runs = Arc::clone(&runs);
    let work = step_fn("work", move |ctx| {
        *work_runs
            .lock()
            .unwrap()
            .entry(ctx.task_id().to_owned())
            .or_default() += 1;
        async move { Ok(ctx.task_id().to_owned()) }
    });
    let hold_runs = Arc::clone(&runs);
    let hold = step_fn("hold", move |ctx| {
        let run = {
            let mut runs = hold_runs.lock().unwrap();
            let run = runs.entry(ctx.task_id().to_owned()).or_default();
            *run += 1;
            *run
        };
        let started = started.clone();
        async move {
            if run > 1 {
                return Ok(run);
            }
            let _ = started.send(ctx.task_id().to_owned());
            ctx.cancelled().await;
            Err(StepError::fatal("cancelled"))
        }
    });
    let engine = Engine::builder()
        .backend(backend.clone())
        .without_inventory()
        .step(work)
        .step(hold)
        .build()
        .expect("engine");
    Setup {
        engine,
        runs,
        held,
        dispatched: 0,
    }
}

fn task(executor: &str) -> Task {
    let info = TaskInfo {
        task_name: "members".into(),
        task_type: "members".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, TaskOptions::default());
    task.add_step(Step::new("s", executor, StepOptions::default()));
    task
}

/// The lease of every worker registration (`{prefix}/workers/`), read from member `alive`.
async fn registrations(cluster: &EtcdCluster, alive: usize, backend: &EtcdBackend) -> Vec<i64> {
    let mut client = ok(
        "connecting to a live member",
        etcd_client::Client::connect([cluster.member(alive).endpoint()], None),
    )
    .await;
    let prefix = backend.keys().workers();
    let options = etcd_client::GetOptions::new().with_prefix();
    let resp = ok(
        "reading the registrations",
        client.get(prefix, Some(options)),
    )
    .await;
    resp.kvs()
        .iter()
        .map(etcd_client::KeyValue::lease)
        .collect()
}

/// Dispatches, reads, lists and waits for tasks, cancels a running one and retries it: each must succeed. The first
/// request after a kill is a dispatch (a create sent again after an ambiguous failure finds its own document).
async fn exercise(setup: &mut Setup, round: &str) {
    let engine = &setup.engine;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(
            ok(
                &format!("{round}: dispatch {i}"),
                engine.dispatch(task("work")),
            )
            .await,
        );
    }
    for id in &ids {
        let got = ok(&format!("{round}: get {id}"), engine.get(id)).await;
        assert_eq!(&got.task_id, id);
    }
    let page = ok(
        &format!("{round}: list"),
        engine.list(&TaskQuery::default()),
    )
    .await;
    setup.dispatched += TASKS;
    assert_eq!(page.total, setup.dispatched, "{round}: listed");
    for id in &ids {
        assert!(
            page.items.iter().any(|t| &t.task_id == id),
            "{round}: list misses {id}"
        );
    }
    for id in &ids {
        let done = ok(&format!("{round}: wait {id}"), engine.wait(id)).await;
        assert_eq!(
            done.status,
            TaskStatus::Success,
            "{round}: {}",
            done.message
        );
    }
    let held = ok(
        &format!("{round}: dispatch a held task"),
        engine.dispatch(task("hold")),
    )
    .await;
    setup.dispatched += 1;
    let started = tokio::time::timeout(PATIENCE, setup.held.recv())
        .await
        .expect("the held step did not start")
        .expect("the step is gone");
    assert_eq!(started, held);
    let cancelled = ok(&format!("{round}: cancel"), engine.cancel(&held)).await;
    assert_eq!(cancelled.status, TaskStatus::Revoked);
    ok(
        &format!("{round}: wait for the cancelled task"),
        engine.wait(&held),
    )
    .await;
    let retried = ok(
        &format!("{round}: retry"),
        engine.retry(&held, RetryRequest::new().from_start()),
    )
    .await;
    assert!(
        !retried.is_terminal(),
        "{round}: the retried task ended at once"
    );
    let done = ok(
        &format!("{round}: wait for the retried task"),
        engine.wait(&held),
    )
    .await;
    assert_eq!(
        done.status,
        TaskStatus::Success,
        "{round}: {}",
        done.message
    );
    let runs = setup.runs.lock().unwrap();
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "{round}: task {id} ran {:?} times",
            runs.get(id)
        );
    }
    assert_eq!(
        runs.get(&held),
        Some(&2),
        "{round}: the held task: one cancelled run, one retry"
    );
}

/// Makes member `leader` the leader and kills member `victim` while a worker runs tasks on a backend connected to all
/// three members; then restarts it, and kills another member so that the restarted one must serve.
async fn survives_the_loss_of(leader: usize, victim: usize) {
    // `RUST_LOG=taskflow=debug` shows the requests moving between members.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let mut cluster = EtcdCluster::start(3);
    cluster.move_leader(leader).await;
    let backend = connect(cluster.config()).await;
    let mut setup = setup(backend.clone());
    let worker = setup
        .engine
        .worker()
        .node("members")
        .start()
        .await
        .expect("worker");
    exercise(&mut setup, "all members up").await;
    let witness = (victim + 2) % 3;
    let leases = registrations(&cluster, witness, &backend).await;
    assert_eq!(leases.len(), 1, "one worker registration");

    tokio::task::block_in_place(|| cluster.kill(victim));
    exercise(&mut setup, &format!("member {victim} down")).await;
    assert_eq!(
        registrations(&cluster, witness, &backend).await,
        leases,
        "the worker lost its session (its registration moved to another lease)"
    );

    tokio::task::block_in_place(|| cluster.restart(victim));
    exercise(&mut setup, &format!("member {victim} restarted")).await;
    let other = (victim + 1) % 3;
    tokio::task::block_in_place(|| cluster.kill(other));
    exercise(&mut setup, &format!("member {other} down, {victim} back")).await;
    assert_eq!(
        registrations(&cluster, victim, &backend).await,
        leases,
        "the worker lost its session"
    );
    worker.shutdown().await;
    taskflow_tests::assert_no_engine_bug();
}

/// The leader is the member the backend uses; it is not the first endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_goes_down() {
    survives_the_loss_of(1, 1).await;
}

/// The first endpoint, leading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_endpoint_goes_down_while_leading() {
    survives_the_loss_of(0, 0).await;
}

/// The first endpoint, a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_goes_down() {
    survives_the_loss_of(1, 0).await;
}

/// etcd closes a connection whose client pings more often than `--grpc-keepalive-min-time` (5 s by default) while it
/// has streams, or at all while it has none (GOAWAY `too_many_pings` after three such pings): a quiet watch on the
/// backend's client must outlive that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_is_not_cut_for_pinging_too_often() {
    let server = EtcdServer::start();
    let backend = connect(config(&server)).await;
    let key = format!("{}/quiet", backend.config().get_prefix());
    let mut watch = ok("watch", backend.client().watch(key.as_str(), None)).await;
    let created = ok("the watch's creation", watch.message()).await;
    assert!(created.is_some_and(|resp| resp.created()));
    // Quiet for longer than the three pings at the old 3 s interval that made etcd close the connection.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut other = ok(
        "another client",
        etcd_client::Client::connect([server.endpoint()], None),
    )
    .await;
    ok("put", other.put(key.as_str(), "1", None)).await;
    let event = ok("the watch after a quiet time", watch.message())
        .await
        .expect("the watch ended");
    assert_eq!(event.events().len(), 1, "{event:?}");
}

/// A member that hangs (paused, not dead) is left for another within one request: a read of a task and a listing
/// succeed while the member in use (the leader) does not answer. Without a share of the request's time per attempt
/// they would wait for it until the request timeout and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_is_left_for_another() {
    let cluster = EtcdCluster::start(3);
    let leader = cluster.leader().await;
    let backend = connect(cluster.config()).await;
    assert_eq!(
        member_id(&backend.client()).await,
        member_id_of(&cluster, leader).await,
        "the backend uses the leader"
    );
    let setup = setup(backend.clone());
    let id = ok("dispatch", setup.engine.dispatch(task("work"))).await;
    let _paused = cluster.pause(leader);
    let got = ok(
        "get while the member in use hangs",
        Backend::get(&backend, &id),
    )
    .await;
    assert_eq!(got.map(|stored| stored.value.task_id), Some(id.clone()));
    let page = ok(
        "list while the member in use hangs",
        Backend::list(&backend, &TaskQuery::default()),
    )
    .await;
    assert_eq!(page.total, 1);
}

/// After the leadership moved away from the member in use (which stays alive), requests follow the new leader: an
/// answer from a later raft term has the backend look for the leader again. Then the new leader dies, and every
/// operation still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_a_leader_that_moved() {
    let mut cluster = EtcdCluster::start(3);
    cluster.move_leader(0).await;
    let backend = connect(cluster.config()).await;
    let mut setup = setup(backend.clone());
    let first = member_id_of(&cluster, 0).await;
    assert_eq!(member_id(&backend.client()).await, first);
    cluster.move_leader(1).await;
    let leader = member_id_of(&cluster, 1).await;
    // Each read answers from the new term; the search it starts runs in the background, so look again a few times.
    let mut followed = false;
    for _ in 0..100 {
        ok("get", Backend::get(&backend, "none")).await;
        if member_id(&backend.client()).await == leader {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(followed, "the backend still uses the former leader");
    let worker = setup
        .engine
        .worker()
        .node("members")
        .start()
        .await
        .expect("worker");
    tokio::task::block_in_place(|| cluster.kill(1));
    exercise(&mut setup, "the new leader down").await;
    worker.shutdown().await;
    taskflow_tests::assert_no_engine_bug();
}

/// The member id of the member `client` talks to.
async fn member_id(client: &etcd_client::Client) -> u64 {
    let status = ok("status", client.clone().status()).await;
    status.header().expect("a header").member_id()
}

/// The member id of member `i`.
async fn member_id_of(cluster: &EtcdCluster, i: usize) -> u64 {
    let client = ok(
        "connecting to a member",
        etcd_client::Client::connect([cluster.member(i).endpoint()], None),
    )
    .await;
    member_id(&client).await
}

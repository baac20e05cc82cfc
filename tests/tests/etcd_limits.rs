//! etcd's limits: its request limit reached by a step's result or a callback's (it fails with a clear message, nothing
//! is lost), and its space quota reached (a clear error; workers survive it).
#![cfg(feature = "etcd")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskflow::backend::etcd::etcd_client::{
    self, AlarmAction, AlarmOptions, AlarmType, CompactionOptions, DeleteOptions,
};
use taskflow::backend::{FeedEvent, WorkerSpec};
use taskflow::{
    Backend, BackendError, CallbackError, CallbackResult, Engine, Error, RetryPolicy, Step,
    StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus, callback_fn, step_fn,
};
use taskflow_tests::etcd::{EtcdServer, backend_with, config, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_step_result_fails_the_step_and_the_chain_goes_on() {
    let b = taskflow_tests::etcd::backend().await;
    let huge = step_fn("huge", |_ctx| async { Ok("x".repeat(2 * 1024 * 1024)) });
    let small = step_fn("small", |_ctx| async { Ok("fits") });
    let engine = b.engine().step(huge).step(small).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let info = TaskInfo {
        task_name: "limits".into(),
        ..Default::default()
    };
    let skip = StepOptions {
        skip_on_failed: true,
        max_retries: 3,
        ..Default::default()
    };
    let task = Task::new(info, TaskOptions::default())
        .with_step(Step::new("big", "huge", skip))
        .with_step(Step::new("after", "small", StepOptions::default()));
    let id = engine.dispatch(task).await.unwrap();
    let done = engine.wait(&id).await.unwrap();
    let big = &done.steps[0];
    assert_eq!(big.status, StepStatus::Failure);
    assert!(
        big.skipped,
        "skip-on-failed applies to the oversized result"
    );
    assert_eq!(big.attempt, 1, "an oversized result is not retried");
    assert!(
        big.message.contains("more than the backend accepts"),
        "{}",
        big.message
    );
    assert_eq!(big.output, None);
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.steps[1].output, Some(serde_json::json!("fits")));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_callback_error_fails_the_callback_once() {
    let b = taskflow_tests::etcd::backend().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let verbose = callback_fn("verbose", move |_outcome| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(CallbackError::new("e".repeat(2 * 1024 * 1024)))
        }
    });
    let ok = step_fn("ok", |_ctx| async { Ok(()) });
    let engine = b.engine().step(ok).callback(verbose).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let info = TaskInfo {
        task_name: "limits".into(),
        ..Default::default()
    };
    let options = TaskOptions {
        callback: Some("verbose".into()),
        ..Default::default()
    };
    let task = Task::new(info, options).with_step(Step::new("a", "ok", StepOptions::default()));
    let id = engine.dispatch(task).await.unwrap();
    let done = engine
        .wait_timeout(&id, std::time::Duration::from_secs(60))
        .await
        .expect("the task settles");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the callback ran once");
    assert_eq!(done.callback_result, Some(CallbackResult::Failure));
    assert!(
        done.callback_message
            .contains("more than the backend accepts"),
        "{}",
        done.callback_message
    );
    assert_eq!(
        done.status,
        TaskStatus::Failure,
        "a failed callback fails a successful task"
    );
    assert_eq!(
        done.steps[0].status,
        StepStatus::Success,
        "the step's success stays"
    );
    worker.shutdown().await;
}

/// A task write carries the document and its listing summary (compared, then written) and message: with large summary
/// fields (here a 300 kB business index) a result that keeps the document under the limit can still make the write too
/// large. The step fails for that reason, once, like any oversized result; an index too large for any write is refused
/// at dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_summary_counts_towards_the_size_limit() {
    let b = taskflow_tests::etcd::backend().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let big = step_fn("big", move |_ctx| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok("x".repeat(800_000))
        }
    });
    let engine = b.engine().step(big).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let indexed = |index_bytes: usize| {
        let info = TaskInfo {
            task_name: "limits".into(),
            task_index: "i".repeat(index_bytes),
            ..Default::default()
        };
        Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "big",
            StepOptions::default(),
        ))
    };
    let refused = engine.dispatch(indexed(600_000)).await.unwrap_err();
    assert!(refused.to_string().contains("too large"), "{refused}");
    let id = engine.dispatch(indexed(300_000)).await.unwrap();
    let done = engine
        .wait_timeout(&id, std::time::Duration::from_secs(60))
        .await
        .expect("the task settles");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    assert_eq!(done.status, TaskStatus::Failure);
    assert!(
        done.steps[0]
            .message
            .contains("more than the backend accepts"),
        "{}",
        done.steps[0].message
    );
    worker.shutdown().await;
}

/// Tasks of every size up to the limit settle, and their step runs at most once: a write that does not fit is replaced
/// by the failure it caused, which fits because ordinary writes keep room free for it (here: tasks padded to sizes on
/// both sides of that room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_near_the_size_limit_settle_and_run_at_most_once() {
    let (_server, backend) = backend_with(|c| c.max_document_bytes(40_000)).await;
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = runs.clone();
    let count = step_fn("count", move |ctx| {
        let counted = counted.clone();
        async move {
            *counted
                .lock()
                .unwrap()
                .entry(ctx.task_id().to_owned())
                .or_default() += 1;
            Ok(())
        }
    });
    let engine = Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(count)
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let mut dispatched = Vec::new();
    for pad in (20_000..40_000).step_by(250) {
        let info = TaskInfo {
            task_name: "padded".into(),
            ..Default::default()
        };
        let mut task = Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "count",
            StepOptions::default(),
        ));
        task.set_common_param("pad", "x".repeat(pad));
        match engine.dispatch(task).await {
            Ok(id) => dispatched.push(id),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(dispatched.len() > 4, "some tasks fit: {}", dispatched.len());
    for id in &dispatched {
        let done = engine
            .wait_timeout(id, Duration::from_secs(30))
            .await
            .expect("the task settles");
        assert!(done.is_terminal());
        let runs = runs.lock().unwrap().get(id).copied().unwrap_or(0);
        assert!(runs <= 1, "the step of a task ran {runs} times");
    }
    worker.shutdown().await;
}

/// A corrupt document too large to keep whole in the failed task's message fails its task once, with an excerpt (the
/// whole goes to the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_corrupt_document_fails_its_task_with_an_excerpt() {
    let (_server, backend) = backend_with(|c| c).await;
    let doc_key = backend.keys().task("placeholder");
    let mut client = backend.client();
    let engine = Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(step_fn("ok", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    let info = TaskInfo {
        task_name: "corrupt".into(),
        ..Default::default()
    };
    let task = Task::new(info, TaskOptions::default()).with_step(Step::new(
        "a",
        "ok",
        StepOptions::default(),
    ));
    let id = engine.dispatch(task).await.unwrap();
    let doc_key = doc_key.replace("placeholder", &id);
    // 800 kB of quotes: twice that once escaped into a message.
    let put = client
        .put(doc_key.clone(), "\"".repeat(800_000), None)
        .await
        .unwrap();
    let options =
        etcd_client::WatchOptions::new().with_start_revision(put.header().unwrap().revision() + 1);
    let mut changes = client.watch(doc_key, Some(options)).await.unwrap();
    let worker = engine.worker().start().await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let response = changes.message().await.unwrap().expect("the watch goes on");
            if let Some(event) = response.events().first() {
                break event.kv().expect("a put").value().to_vec();
            }
        }
    })
    .await
    .expect("the corrupt task is failed");
    let failed: Task = serde_json::from_slice(&change).unwrap();
    assert_eq!(failed.status, TaskStatus::Failure);
    assert!(
        failed.message.contains("its first 4096 of 800000 bytes"),
        "{}",
        &failed.message[..200]
    );
    worker.shutdown().await;
}

/// etcd's space quota for the out-of-space tests: 2 MiB, a few ballast values.
const QUOTA: &str = "--quota-backend-bytes=2097152";

/// Fills etcd with ballast values (outside the taskflow prefix) until it refuses a write for lack of space.
async fn fill(client: &mut etcd_client::Client) {
    let ballast = "x".repeat(256 * 1024);
    for i in 0..64 {
        if let Err(e) = client
            .put(format!("/ballast/{i}"), ballast.as_str(), None)
            .await
        {
            assert!(e.to_string().contains("database space exceeded"), "{e}");
            return;
        }
    }
    panic!("etcd took 16 MiB of ballast with a 2 MiB quota");
}

/// What an operator does: drop the ballast, compact the history, defragment, disarm the NOSPACE alarm.
async fn free_space(client: &mut etcd_client::Client) {
    let options = DeleteOptions::new().with_prefix();
    let deleted = client.delete("/ballast/", Some(options)).await.unwrap();
    let revision = deleted.header().unwrap().revision();
    let compaction = CompactionOptions::new().with_physical();
    client.compact(revision, Some(compaction)).await.unwrap();
    client.defragment().await.unwrap();
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    for alarm in alarms.alarms() {
        let mut member = AlarmOptions::new();
        member.with_member(alarm.member_id());
        client
            .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(member))
            .await
            .unwrap();
    }
}

/// How many requests etcd refused for lack of space so far (its gRPC `ResourceExhausted` answers).
fn refusals(server: &EtcdServer) -> f64 {
    server.metric_with(
        "grpc_server_handled_total",
        "grpc_code=\"ResourceExhausted\"",
    )
}

/// Waits until etcd refused at least `count` requests for lack of space; returns how many it refused by then.
async fn refused(server: &EtcdServer, count: f64) -> f64 {
    let refused = async {
        loop {
            let refused = refusals(server);
            if refused >= count {
                return refused;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), refused)
        .await
        .unwrap_or_else(|_| panic!("etcd did not refuse {count} requests within 30 s"))
}

/// etcd out of space (its `--quota-backend-bytes` reached, the NOSPACE alarm raised): a dispatch fails with
/// `BackendError::NoSpace`, whose message says what to do, and a running worker keeps running: the result of its
/// running step cannot be stored, it tries to claim the task again at its own pace (no hot loop), and finishes it once
/// an operator freed space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_space_fails_a_dispatch_with_what_to_do_and_workers_survive_it() {
    let server = EtcdServer::start_with_flags([QUOTA]);
    let backend = connect(config(&server)).await;
    let mut client = backend.client();
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let gated = {
        let (runs, gate) = (runs.clone(), gate.clone());
        step_fn("gated", move |_ctx| {
            let (runs, gate, started_tx) = (runs.clone(), gate.clone(), started_tx.clone());
            async move {
                // The first run waits for the test; later ones (after redelivery) go through.
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = started_tx.send(());
                    gate.acquire().await.expect("the gate stays open").forget();
                }
                Ok(())
            }
        })
    };
    let engine = Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(gated)
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let task = || {
        let info = TaskInfo {
            task_name: "space".into(),
            ..Default::default()
        };
        Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "gated",
            StepOptions::default(),
        ))
    };
    let id = engine.dispatch(task()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .expect("the step starts");

    fill(&mut client).await;
    let error = engine
        .dispatch(task())
        .await
        .expect_err("etcd has no space for a task");
    assert!(
        matches!(error, Error::Backend(BackendError::NoSpace { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    for advice in ["compact", "defrag", "alarm disarm", "--quota-backend-bytes"] {
        assert!(message.contains(advice), "no `{advice}` in: {message}");
    }

    // The step ends: its result is refused, the claim given back, and the worker claims the task again, refused each
    // time, at its own pace: by the time etcd refused 3 more requests (the commit, then claims) it refused only a few
    // (a hot loop makes thousands in the same time).
    let before = refusals(&server);
    gate.add_permits(1);
    let after = refused(&server, before + 3.0).await;
    assert!(
        after <= before + 10.0,
        "the worker hammers etcd: {} refusals",
        after - before
    );

    free_space(&mut client).await;
    let done = engine
        .wait_timeout(&id, Duration::from_secs(30))
        .await
        .expect("the worker finishes the task once etcd has space again");
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    let next = engine.dispatch(task()).await.unwrap();
    let next = engine
        .wait_timeout(&next, Duration::from_secs(30))
        .await
        .expect("the worker serves new tasks");
    assert_eq!(next.status, TaskStatus::Success, "{}", next.message);
    worker.shutdown().await;
}

/// Writes batched while etcd is out of space are refused like single ones. (etcd 3.4, and 3.5 before a fix, leave the
/// writes of nested transactions out of its space quota: a batch, a transaction of nested ones, went through unless it
/// carried a counted write of its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_batched_while_etcd_is_out_of_space_are_refused_too() {
    let server = EtcdServer::start_with_flags([QUOTA]);
    // One transaction in flight: the writes queued behind it leave together, as one batch.
    let backend = connect(config(&server).max_in_flight(1)).await;
    fill(&mut backend.client()).await;
    let creates = (0..16).map(|i| {
        let info = TaskInfo {
            task_name: format!("batched{i}"),
            ..Default::default()
        };
        let task = Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "exec",
            StepOptions::default(),
        ));
        let backend = backend.clone();
        async move { backend.create(&Arc::new(task)).await }
    });
    for result in futures::future::join_all(creates).await {
        assert!(
            matches!(result, Err(BackendError::NoSpace { .. })),
            "{result:?}"
        );
    }
}

/// Log lines captured by a test's subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A session whose lease is lost while etcd is out of space cannot register again (etcd refuses a new lease): it
/// retries by the configured policy and logs the lack of space once for the whole episode, not on every retry; once
/// an operator freed space it registers again. (A current-thread runtime, so that the subscriber sees the session's
/// tasks.)
#[tokio::test(flavor = "current_thread")]
async fn a_session_logs_etcd_out_of_space_once_while_it_retries() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let server = EtcdServer::start_with_flags([QUOTA]);
    let quick = RetryPolicy::default().max_delay(Duration::from_millis(100));
    let backend = connect(
        config(&server)
            .lease_ttl(Duration::from_secs(2))
            .retry(quick),
    )
    .await;
    let spec = WorkerSpec {
        worker_id: "w".into(),
        node: "n".into(),
        queues: vec!["default".into()],
        executors: vec!["exec".into()],
        callbacks: Vec::new(),
    };
    let (session, mut feed) = backend.open_session(spec).await.unwrap();
    let next = async |feed: &mut tokio::sync::mpsc::UnboundedReceiver<FeedEvent>| {
        tokio::time::timeout(Duration::from_secs(30), feed.recv())
            .await
            .expect("a feed event within 30 s")
            .expect("the feed goes on")
    };
    assert!(matches!(next(&mut feed).await, FeedEvent::Snapshot(_)));
    let mut client = backend.client();
    fill(&mut client).await;

    // The lease ends (revoked here, as if it had expired): the session tells the worker and tries to register again.
    let registered = client.get(backend.keys().worker("w"), None).await.unwrap();
    let lease = registered.kvs()[0].lease();
    let before = refusals(&server);
    client.lease_revoke(lease).await.unwrap();
    assert!(matches!(next(&mut feed).await, FeedEvent::Lost(_)));
    refused(&server, before + 5.0).await;

    free_space(&mut client).await;
    assert!(
        matches!(next(&mut feed).await, FeedEvent::Snapshot(_)),
        "registered again"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("etcd is out of space").count(),
        1,
        "logged once per episode:\n{text}"
    );
    assert!(text.contains("--quota-backend-bytes"), "{text}");
    assert!(text.contains("etcd accepts writes again"), "{text}");
    session.close().await.unwrap();
}

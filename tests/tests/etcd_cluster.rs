//! Multi-process tests on one private etcd: worker processes share work, survive each other's crashes and pauses,
//! and an etcd restart. The worker processes are this test binary itself, re-run as `worker_process` with its
//! configuration in the environment. Run with `--features etcd`.
#![cfg(feature = "etcd")]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskflow::backend::etcd::{EtcdBackend, EtcdConfig};
use taskflow::{
    Engine, Step, StepError, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn,
};
use taskflow_tests::etcd::{EtcdServer, unique_prefix};

const ROLE: &str = "TASKFLOW_TEST_WORKER";
const WAIT: Duration = Duration::from_secs(120);

use taskflow_tests::event_log::{append as record, read as read_log};

/// The steps every process registers. Side effects: `work {task} {step} {node} {pid}`, `start|end|cancelled ...`.
fn engine(backend: EtcdBackend, log: PathBuf, node: String) -> Engine {
    let work_log = log.clone();
    let work_node = node.clone();
    let work = step_fn("work", move |ctx| {
        let log = work_log.clone();
        let node = work_node.clone();
        async move {
            let ms: u64 = ctx
                .param("ms")
                .unwrap_or("0")
                .parse()
                .map_err(StepError::fatal)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            record(
                &log,
                &format!(
                    "work {} {} {node} {}",
                    ctx.task_id(),
                    ctx.step_name(),
                    std::process::id()
                ),
            );
            Ok(std::process::id())
        }
    });
    let slow = step_fn("slow", move |ctx| {
        let log = log.clone();
        let node = node.clone();
        async move {
            let ms: u64 = ctx
                .param("ms")
                .unwrap_or("1000")
                .parse()
                .map_err(StepError::fatal)?;
            let me = format!(
                "{} {} {node} {}",
                ctx.task_id(),
                ctx.step_name(),
                std::process::id()
            );
            record(&log, &format!("start {me}"));
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                () = ctx.cancelled() => {
                    record(&log, &format!("cancelled {me}"));
                    return Err(StepError::fatal("cancelled"));
                }
            }
            record(&log, &format!("end {me}"));
            Ok(std::process::id())
        }
    });
    Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(work)
        .step(slow)
        .build()
        .expect("engine")
}

fn config(endpoint: &str, prefix: &str, ttl: Duration) -> EtcdConfig {
    EtcdConfig::new([endpoint])
        .prefix(prefix)
        .lease_ttl(ttl)
        .request_timeout(Duration::from_secs(2))
}

/// The worker process (only when run by a test with its configuration in the environment).
#[test]
#[ignore = "run by the multi-process tests as a worker process"]
fn worker_process() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "taskflow=info".into()))
            .with_writer(std::io::stderr)
            .try_init();
        let ttl = Duration::from_millis(var("TF_TTL_MS").parse().unwrap());
        let backend = config(&var("TF_ENDPOINT"), &var("TF_PREFIX"), ttl)
            .connect()
            .await
            .expect("connect");
        let node = var("TF_NODE");
        let engine = engine(backend, PathBuf::from(var("TF_LOG")), node.clone());
        let _worker = engine
            .worker()
            .node(node)
            .concurrency(64)
            .start()
            .await
            .expect("worker");
        println!("READY");
        std::future::pending::<()>().await;
    });
}

/// A worker process, killed on drop.
struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    fn spawn(server: &EtcdServer, prefix: &str, node: &str, log: &Path, ttl: Duration) -> Self {
        let stderr = std::fs::File::create(log.with_extension(format!("{node}.stderr"))).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "worker_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "1")
            .env("TF_ENDPOINT", server.endpoint())
            .env("TF_PREFIX", prefix)
            .env("TF_NODE", node)
            .env("TF_LOG", log)
            .env("TF_TTL_MS", ttl.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn a worker process");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("READY") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the worker process did not start");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    server: EtcdServer,
    prefix: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    engine: Engine,
    ttl: Duration,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the logs of a failed test.
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

impl Cluster {
    async fn new(ttl: Duration) -> Self {
        let server = EtcdServer::start();
        let prefix = unique_prefix();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("effects.log");
        eprintln!("side effects and worker logs in {}", dir.path().display());
        let backend = config(&server.endpoint(), &prefix, ttl)
            .connect()
            .await
            .expect("connect");
        let engine = engine(backend, log.clone(), "client".into());
        Self {
            server,
            prefix,
            log,
            _dir: dir,
            engine,
            ttl,
        }
    }

    fn worker(&self, node: &str) -> WorkerProcess {
        WorkerProcess::spawn(&self.server, &self.prefix, node, &self.log, self.ttl)
    }

    fn backend(&self) -> &Arc<dyn taskflow::Backend> {
        self.engine.backend()
    }

    async fn dispatch(&self, steps: &[(&str, &str, u64, Option<&str>)]) -> String {
        let info = TaskInfo {
            task_name: "cluster".into(),
            task_type: "cluster".into(),
            ..Default::default()
        };
        let mut task = Task::new(info, TaskOptions::default());
        for (name, executor, ms, node) in steps {
            let options = StepOptions {
                node: node.map(str::to_owned),
                ..Default::default()
            };
            task.add_step(Step::new(*name, *executor, options).param("ms", ms.to_string()));
        }
        self.engine.dispatch(task).await.expect("dispatch")
    }

    async fn wait_all(&self, ids: &[String]) -> Vec<Arc<Task>> {
        let mut done = Vec::new();
        for id in ids {
            done.push(
                self.engine
                    .wait_timeout(id, WAIT)
                    .await
                    .unwrap_or_else(|e| panic!("task {id}: {e}")),
            );
        }
        done
    }

    /// Waits until the side-effect log has a line matching `pred`.
    async fn wait_log(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            if let Some(line) = read_log(&self.log).into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_300_tasks() {
    let cluster = Cluster::new(Duration::from_secs(10)).await;
    let _workers: Vec<_> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| cluster.worker(n))
        .collect();
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(
            cluster
                .dispatch(&[
                    ("s1", "work", 2, None),
                    ("s2", "work", 2, None),
                    ("s3", "work", 2, None),
                ])
                .await,
        );
    }
    // Watch every task: its progress (steps done) never goes backwards.
    let regressions = Arc::new(Mutex::new(Vec::new()));
    let mut watchers = Vec::new();
    for id in &ids {
        let engine = cluster.engine.clone();
        let id = id.clone();
        let regressions = Arc::clone(&regressions);
        watchers.push(tokio::spawn(async move {
            let mut best = 0;
            let watched = engine.watch(&id, |task| {
                let done = task
                    .steps
                    .iter()
                    .filter(|s| s.status == taskflow::StepStatus::Success)
                    .count();
                if done < best {
                    regressions
                        .lock()
                        .unwrap()
                        .push((task.task_id.clone(), best, done));
                }
                best = best.max(done);
            });
            tokio::time::timeout(WAIT, watched)
                .await
                .expect("watch timed out")
                .expect("watch")
        }));
    }
    for watcher in watchers {
        assert_eq!(watcher.await.unwrap().status, TaskStatus::Success);
    }
    let done = cluster.wait_all(&ids).await;
    assert!(done.iter().all(|t| t.status == TaskStatus::Success));
    assert!(
        regressions.lock().unwrap().is_empty(),
        "{:?}",
        regressions.lock().unwrap()
    );
    let log = read_log(&cluster.log);
    let effects: HashSet<(String, String)> =
        log.iter().map(|l| (l[1].clone(), l[2].clone())).collect();
    for id in &ids {
        for step in ["s1", "s2", "s3"] {
            assert!(
                effects.contains(&(id.clone(), step.to_owned())),
                "no side effect of {id}/{step}"
            );
        }
    }
    let per_node: HashMap<&str, usize> = log.iter().fold(HashMap::new(), |mut m, l| {
        *m.entry(l[3].as_str()).or_default() += 1;
        m
    });
    eprintln!("steps per worker: {per_node:?}");
    assert!(per_node.len() >= 2, "the work was not shared: {per_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_steps_are_redelivered_after_the_lease_ttl() {
    let ttl = Duration::from_secs(3);
    let cluster = Cluster::new(ttl).await;
    let victim = cluster.worker("victim");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            cluster
                .dispatch(&[("slow", "slow", 1500, None), ("after", "work", 0, None)])
                .await,
        );
    }
    let victim_pid = victim.pid().to_string();
    let started = cluster
        .wait_log("the victim to start a step", |l| {
            l[0] == "start" && l[4] == victim_pid
        })
        .await;
    let survivor = cluster.worker("survivor");
    let survivor_pid = survivor.pid().to_string();
    victim.signal("KILL");
    let killed = Instant::now();
    drop(victim);
    // The killed worker's step goes to the survivor once the lease expired.
    let task = started[1].clone();
    cluster
        .wait_log("the redelivery", |l| {
            l[0] == "start" && l[1] == task && l[4] == survivor_pid
        })
        .await;
    let redelivery = killed.elapsed();
    eprintln!("redelivered {redelivery:?} after kill -9 (lease TTL {ttl:?})");
    assert!(
        redelivery <= ttl + Duration::from_secs(3),
        "redelivery took {redelivery:?}"
    );
    for task in cluster.wait_all(&ids).await {
        assert_eq!(task.status, TaskStatus::Success, "{}", task.message);
    }
    let log = read_log(&cluster.log);
    for id in &ids {
        assert!(
            log.iter().any(|l| l[0] == "end" && &l[1] == id),
            "the slow step of {id} never ended"
        );
        assert!(
            log.iter().any(|l| l[0] == "work" && &l[1] == id),
            "the second step of {id} never ran"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_worker_late_commit_is_rejected() {
    let ttl = Duration::from_secs(2);
    let cluster = Cluster::new(ttl).await;
    let paused = cluster.worker("paused");
    let id = cluster.dispatch(&[("slow", "slow", 1500, None)]).await;
    let paused_pid = paused.pid().to_string();
    cluster
        .wait_log("the step to start", |l| {
            l[0] == "start" && l[4] == paused_pid
        })
        .await;
    paused.signal("STOP");
    tokio::time::sleep(ttl + Duration::from_millis(1500)).await;
    let other = cluster.worker("other");
    let done = cluster.engine.wait_timeout(&id, WAIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    let output = |task: &Task| task.steps[0].output.clone();
    assert_eq!(output(&done), Some(serde_json::json!(other.pid())));
    let before = cluster.backend().get(&id).await.unwrap().unwrap();
    paused.signal("CONT");
    // The paused worker wakes up past its lease: its step is stopped or its late commit rejected.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster.backend().get(&id).await.unwrap().unwrap();
    assert_eq!(
        after.revision, before.revision,
        "the late worker changed the task"
    );
    assert_eq!(output(&after.value), Some(serde_json::json!(other.pid())));
    drop(paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_from_one_process_stops_a_step_in_another() {
    let cluster = Cluster::new(Duration::from_secs(10)).await;
    let worker = cluster.worker("runner");
    let id = cluster
        .dispatch(&[("slow", "slow", 60_000, None), ("never", "work", 0, None)])
        .await;
    cluster
        .wait_log("the step to start", |l| l[0] == "start" && l[1] == id)
        .await;
    let cancelled_at = Instant::now();
    cluster.engine.cancel(&id).await.unwrap();
    let pid = worker.pid().to_string();
    cluster
        .wait_log("the step to see the cancel", |l| {
            l[0] == "cancelled" && l[1] == id && l[4] == pid
        })
        .await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(5));
    let task = cluster.engine.wait_timeout(&id, WAIT).await.unwrap();
    assert_eq!(task.status, TaskStatus::Revoked);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !read_log(&cluster.log)
            .iter()
            .any(|l| l[0] == "work" && l[1] == id),
        "a step ran after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_mid_run() {
    let mut cluster = Cluster::new(Duration::from_secs(10)).await;
    let _workers: Vec<_> = ["r1", "r2"].iter().map(|n| cluster.worker(n)).collect();
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(
            cluster
                .dispatch(&[
                    ("a", "work", 20, None),
                    ("b", "work", 20, None),
                    ("c", "work", 20, None),
                ])
                .await,
        );
    }
    let started = Instant::now();
    while read_log(&cluster.log).len() < 30 {
        assert!(started.elapsed() < WAIT, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.server.restart();
    for task in cluster.wait_all(&ids).await {
        assert_eq!(task.status, TaskStatus::Success, "{}", task.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_step_never_runs_on_another_node() {
    let cluster = Cluster::new(Duration::from_secs(10)).await;
    let _a = cluster.worker("node-a");
    let _b = cluster.worker("node-b");
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(
            cluster
                .dispatch(&[
                    ("free", "work", 1, None),
                    ("pinned", "work", 1, Some("node-b")),
                ])
                .await,
        );
    }
    for task in cluster.wait_all(&ids).await {
        assert_eq!(task.status, TaskStatus::Success);
    }
    let log = read_log(&cluster.log);
    let pinned: Vec<_> = log.iter().filter(|l| l[2] == "pinned").collect();
    assert!(pinned.len() >= 30);
    assert!(pinned.iter().all(|l| l[3] == "node-b"), "{pinned:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_document_fails_only_that_task() {
    let cluster = Cluster::new(Duration::from_secs(10)).await;
    let mut worker = cluster.worker("w");
    // A task whose document is garbage, with its message, put directly into etcd.
    let backend = config(&cluster.server.endpoint(), &cluster.prefix, cluster.ttl)
        .connect()
        .await
        .unwrap();
    let bad = "0badbad0-0000-4000-8000-000000000000";
    let message = serde_json::json!({
        "taskId": bad, "work": {"kind": "step", "step": "s1", "executor": "work"},
        "route": {"kind": "queue", "name": "default"}, "due": "1970-01-01T00:00:00Z"
    });
    let mut client = backend.client();
    client
        .put(backend.keys().task(bad), "{\"taskId\": 42, oops", None)
        .await
        .unwrap();
    let route = taskflow::Route::default_queue();
    client
        .put(
            backend.keys().message(&route, bad),
            message.to_string(),
            None,
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(cluster.dispatch(&[("s1", "work", 1, None)]).await);
    }
    for task in cluster.wait_all(&ids).await {
        assert_eq!(task.status, TaskStatus::Success);
    }
    // Until a worker failed it, reading the task reports the corrupt document.
    let started = Instant::now();
    let failed = loop {
        match cluster.engine.get(bad).await {
            Ok(task) if task.is_terminal() => break task,
            Ok(_) | Err(taskflow::Error::Backend(taskflow::BackendError::Corrupt { .. })) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < WAIT, "the bad task was never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.status, TaskStatus::Failure);
    assert!(failed.message.contains("corrupt"), "{}", failed.message);
    assert!(
        failed.message.contains("oops"),
        "the raw document is kept: {}",
        failed.message
    );
    assert!(worker.alive(), "the worker died on a bad document");
}

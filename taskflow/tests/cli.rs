//! The `taskflow` CLI as an operator runs it: the built binary against a private etcd. Output into a pipe whose reader
//! has gone ends the command quietly; the retry of a task that succeeded names `--force`; `workers` says when none is
//! alive. Run with `--features cli`.

use std::io::BufRead;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use taskflow::backend::etcd::EtcdBackend;
use taskflow::{Engine, Step, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, step_fn};
use taskflow_tests::etcd::{EtcdServer, config, connect, unique_prefix};
use tokio::process::Command;

/// How long a command may take before the test gives up on it (it never should).
const LIMIT: Duration = Duration::from_secs(60);

/// A private etcd, an engine on it (step `noop`), and the CLI's options to reach the same namespace.
struct Setup {
    _server: EtcdServer,
    engine: Engine,
    options: Vec<String>,
}

async fn setup() -> Setup {
    let server = EtcdServer::start();
    let prefix = unique_prefix();
    let options = vec![
        format!("--endpoints={}", server.endpoint()),
        format!("--prefix={prefix}"),
    ];
    let backend: Arc<EtcdBackend> = Arc::new(connect(config(&server).prefix(prefix)).await);
    let engine = Engine::builder()
        .shared_backend(backend)
        .without_inventory()
        .step(step_fn("noop", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    Setup {
        _server: server,
        engine,
        options,
    }
}

impl Setup {
    /// The CLI with this setup's etcd options and `args`.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command
            .args(&self.options)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs the CLI to its end, capturing its output.
    async fn run(&self, args: &[&str]) -> Output {
        let output = self.cli(args).output();
        tokio::time::timeout(LIMIT, output)
            .await
            .expect("the CLI did not end")
            .expect("the CLI runs")
    }

    /// Dispatches a task of one `noop` step.
    async fn dispatch(&self, param: &str) -> String {
        let info = TaskInfo {
            task_name: "cli".into(),
            task_type: "cli".into(),
            ..TaskInfo::default()
        };
        let task = Task::new(info, TaskOptions::default())
            .with_step(Step::new("only", "noop", StepOptions::default()).param("p", param));
        self.engine.dispatch(task).await.unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Ended by itself with exit status 0, and without a panic.
fn ended_quietly(status: std::process::ExitStatus, stderr: &str) {
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    assert!(status.success(), "{status:?}: {stderr}");
}

/// Runs the CLI with its standard output into a pipe nobody reads any more (as `taskflow … | head -n 0`).
async fn into_a_closed_pipe(setup: &Setup, args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = setup
        .cli(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("the CLI did not stop when its output closed")
        .unwrap();
    (output.status, text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_the_command_quietly() {
    let setup = setup().await;
    for i in 0..3 {
        setup.dispatch(&i.to_string()).await;
    }
    let (status, stderr) = into_a_closed_pipe(&setup, &["list"]).await;
    ended_quietly(status, &stderr);
    // `watch` of a task that waits for ever (no worker) stops at its first line instead of waiting for the end.
    let waiting = setup.dispatch("waits").await;
    let (status, stderr) = into_a_closed_pipe(&setup, &["watch", &waiting]).await;
    ended_quietly(status, &stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_after_one_line_ends_the_command_quietly() {
    let setup = setup().await;
    // A document far larger than a pipe holds, so the CLI is still writing when the reader goes.
    let id = setup.dispatch(&"x".repeat(512 * 1024)).await;
    let mut child = setup
        .cli(&["show", &id, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap().into_owned_fd().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(std::fs::File::from(stdout))
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    // The reader is gone (`head -n 1`).
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("the CLI did not stop when its output closed")
        .unwrap();
    ended_quietly(output.status, &text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_of_a_task_that_succeeded_names_the_force_flag() {
    let setup = setup().await;
    let worker = setup.engine.worker().start().await.unwrap();
    let id = setup.dispatch("ok").await;
    let done = setup.engine.wait_timeout(&id, LIMIT).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    worker.shutdown().await;

    let refused = setup.run(&["retry", &id]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!stderr.contains("RetryRequest"), "{stderr}");

    let forced = setup.run(&["retry", &id, "--force"]).await;
    let stdout = text(&forced.stdout);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(stdout.contains("retrying from step `only`"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_says_when_none_is_alive() {
    let setup = setup().await;
    let none = setup.run(&["workers"]).await;
    assert!(none.status.success(), "{}", text(&none.stderr));
    assert_eq!(text(&none.stdout), "");
    assert_eq!(text(&none.stderr), "no live workers\n");

    let worker = setup
        .engine
        .worker()
        .node("cli-node")
        .start()
        .await
        .unwrap();
    let one = setup.run(&["workers"]).await;
    let stdout = text(&one.stdout);
    assert!(stdout.contains("node=cli-node"), "{stdout}");
    assert!(!stdout.contains("no live workers"), "{stdout}");
    worker.shutdown().await;
}

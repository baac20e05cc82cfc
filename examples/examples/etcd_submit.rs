//! Dispatches N tasks of the example flow to etcd and watches them to the end (run `etcd_worker` processes to do
//! the work). Exits non-zero unless every task ends SUCCESS.
//!
//! ```text
//! cargo run -p taskflow-examples --features etcd --example etcd_submit -- \
//!     --endpoints http://127.0.0.1:2379 --prefix /taskflow/demo --count 100
//! ```

#[path = "etcd_common/flow.rs"]
mod flow;

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use taskflow::backend::etcd::EtcdArgs;
use taskflow::{Engine, TaskQuery, TaskStatus};

/// Dispatch tasks of the example flow and wait for them.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// How many tasks.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// How long each step sleeps, in ms.
    #[arg(long, default_value_t = 100)]
    step_ms: u64,
    /// Pin the last step to this worker node.
    #[arg(long)]
    node: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    let config = args.etcd.config();
    let engine = flow::register(Engine::builder().backend(config.connect().await?)).build()?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(args.count);
    for i in 0..args.count {
        ids.push(
            engine
                .dispatch(flow::task(i, args.step_ms, args.node.as_deref()))
                .await?,
        );
    }
    println!("dispatched {} tasks in {:?}", ids.len(), started.elapsed());
    let waits = ids.iter().map(|id| {
        let engine = engine.clone();
        let id = id.clone();
        tokio::spawn(async move {
            engine
                .wait_timeout(&id, Duration::from_secs(args.timeout))
                .await
        })
    });
    let mut failed = 0;
    for wait in waits.collect::<Vec<_>>() {
        match wait.await? {
            Ok(task) if task.status == TaskStatus::Success => {}
            Ok(task) => {
                failed += 1;
                println!(
                    "task {} ended {}: {}",
                    task.task_id, task.status, task.message
                );
            }
            Err(e) => {
                failed += 1;
                println!("{e}");
            }
        }
    }
    let elapsed = started.elapsed();
    let done = engine
        .list(
            &TaskQuery::default()
                .task_type(flow::TASK_TYPE)
                .status(TaskStatus::Success),
        )
        .await?;
    println!(
        "{} of {} tasks succeeded in {elapsed:?} ({:.0} steps/s); {} successful tasks of this flow are stored",
        ids.len() - failed,
        ids.len(),
        (ids.len() * 3) as f64 / elapsed.as_secs_f64(),
        done.total
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `taskflow`: the operator CLI over etcd — list, show, watch, retry and cancel tasks, and see the live workers.
//!
//! ```text
//! cargo run -p taskflow --features cli --bin taskflow -- --endpoints http://127.0.0.1:2379 list --status FAILURE
//! ```

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use taskflow::backend::etcd::{EtcdArgs, EtcdBackend};
use taskflow::{Engine, RetryRequest, SortField, Task, TaskQuery, TaskStatus};

/// Operate taskflow tasks stored in etcd.
#[derive(Debug, Parser)]
#[command(name = "taskflow", version)]
struct Cli {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List tasks (newest first).
    List(ListArgs),
    /// Show one task: status, steps, shared variables (or the JSON document).
    Show {
        /// Task id.
        id: String,
        /// Print the whole JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Follow a task until it ends, printing each change.
    Watch {
        /// Task id.
        id: String,
    },
    /// Run an ended task again from its failed step (or another).
    Retry(RetryArgs),
    /// Cancel a task: REVOKED at once, its running step is stopped.
    Cancel {
        /// Task id.
        id: String,
        /// Who cancels (recorded as the updater).
        #[arg(long, default_value = "")]
        by: String,
    },
    /// List the live workers: node, queues, executors.
    Workers,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Task type.
    #[arg(long = "type")]
    task_type: Option<String>,
    /// Business index.
    #[arg(long)]
    index: Option<String>,
    /// Kind of business index.
    #[arg(long)]
    index_type: Option<String>,
    /// Status (repeat for several).
    #[arg(long)]
    status: Vec<TaskStatus>,
    /// Creator.
    #[arg(long)]
    creator: Option<String>,
    /// Skip this many matches.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Oldest first.
    #[arg(long)]
    ascending: bool,
}

#[derive(Debug, Args)]
struct RetryArgs {
    /// Task id.
    id: String,
    /// Resume from this step (default: the first failed one).
    #[arg(long, conflicts_with = "from_start")]
    from: Option<String>,
    /// Run every step again.
    #[arg(long)]
    from_start: bool,
    /// Mark the failed step skipped and go on with the next one.
    #[arg(long)]
    skip_failed: bool,
    /// Set skip-on-failed on the step the retry resumes from.
    #[arg(long)]
    skip_on_failed: bool,
    /// Also retry a task that succeeded.
    #[arg(long)]
    force: bool,
    /// Who retries (recorded as the updater).
    #[arg(long, default_value = "")]
    by: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, taskflow::Error> {
    let config = cli.etcd.config();
    let backend: Arc<EtcdBackend> = Arc::new(config.connect().await?);
    let engine = Engine::builder()
        .shared_backend(backend.clone())
        .without_inventory()
        .build()?;
    match cli.command {
        Command::List(args) => {
            let mut query = TaskQuery::default()
                .statuses(args.status)
                .sort_by(SortField::CreatedAt, !args.ascending)
                .page(args.offset, args.limit);
            query.task_type = args.task_type;
            query.task_index = args.index;
            query.task_index_type = args.index_type;
            query.creator = args.creator;
            let page = engine.list(&query).await?;
            println!(
                "{:<36}  {:<12}  {:<20}  {:<20}  {:<16}  created",
                "ID", "STATUS", "TYPE", "INDEX", "STEP"
            );
            for task in &page.items {
                println!(
                    "{:<36}  {:<12}  {:<20}  {:<20}  {:<16}  {}",
                    task.task_id,
                    task.status,
                    task.task_type,
                    task.task_index,
                    task.current_step,
                    task.created_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
            }
            println!("{} of {} task(s)", page.items.len(), page.total);
        }
        Command::Show { id, json } => {
            let task = engine.get(&id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&task).expect("a task serialises")
                );
            } else {
                print_task(&task);
            }
        }
        Command::Watch { id } => {
            let mut last = String::new();
            let task = engine
                .watch(&id, |task| {
                    let line = format!(
                        "{} step `{}`: {}",
                        task.status, task.current_step, task.message
                    );
                    if line != last {
                        println!("{line}");
                        last = line;
                    }
                })
                .await?;
            return Ok(if task.status == TaskStatus::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Retry(args) => {
            let mut request = RetryRequest::new().by(args.by);
            if let Some(step) = args.from {
                request = request.from_step(step);
            }
            if args.from_start {
                request = request.from_start();
            }
            if args.skip_failed {
                request = request.skip_failed();
            }
            if args.skip_on_failed {
                request = request.skip_on_failed();
            }
            if args.force {
                request = request.force();
            }
            let task = engine.retry(&args.id, request).await?;
            println!(
                "task {} retrying from step `{}`",
                task.task_id, task.current_step
            );
        }
        Command::Cancel { id, by } => {
            let task = engine.cancel_by(&id, &by).await?;
            println!("task {} {}", task.task_id, task.status);
        }
        Command::Workers => {
            for worker in backend.workers().await? {
                println!(
                    "{}  node={}  queues={}  executors={}",
                    worker.worker_id,
                    worker.node,
                    worker.queues.join(","),
                    worker.executors.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_task(task: &Task) {
    println!("task     {} ({})", task.task_id, task.task_name);
    println!(
        "type     {}   index {} ({})",
        task.task_type, task.task_index, task.task_index_type
    );
    println!("status   {}: {}", task.status, task.message);
    println!("creator  {}   updater {}", task.creator, task.updater);
    if !task.callback_name.is_empty() {
        let result = task
            .callback_result
            .map(|r| format!("{r:?}"))
            .unwrap_or_else(|| "pending".into());
        println!(
            "callback {} → {} {}",
            task.callback_name, result, task.callback_message
        );
    }
    println!("steps:");
    for step in &task.steps {
        let marker = if step.name == task.current_step {
            "→"
        } else {
            " "
        };
        let skipped = if step.skipped { " (skipped)" } else { "" };
        println!(
            " {marker} {:<20} {:<10}{skipped} attempt {} retries {}/{}  {}",
            step.name, step.status, step.attempt, step.retry_count, step.max_retries, step.message
        );
    }
    if !task.common_params.is_empty() {
        println!("shared variables:");
        for (key, value) in &task.common_params {
            println!("   {key} = {value}");
        }
    }
}

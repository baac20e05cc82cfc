//! `taskflow`: the operator CLI over etcd — list, show, watch, retry and cancel tasks, and see the live workers.
//!
//! ```text
//! cargo run -p taskflow --features cli --bin taskflow -- --endpoints http://127.0.0.1:2379 list --status FAILURE
//! ```

use clap::{Args, Parser, Subcommand};
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use taskflow::backend::etcd::{EtcdArgs, EtcdBackend};
use taskflow::{Engine, RetryRequest, SortField, Task, TaskQuery, TaskStatus};
use tokio::sync::Notify;

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

/// Why a command stopped early.
enum Failure {
    /// An error of taskflow.
    Taskflow(taskflow::Error),
    /// An error of the CLI's own.
    Message(String),
    /// Writing the output failed. A closed pipe (`taskflow list | head -n 1`) is the reader's way to say it has
    /// read enough: the command stops quietly and succeeds.
    Output(io::Error),
}

impl From<taskflow::Error> for Failure {
    fn from(error: taskflow::Error) -> Self {
        Self::Taskflow(error)
    }
}

impl From<taskflow::BackendError> for Failure {
    fn from(error: taskflow::BackendError) -> Self {
        Self::Taskflow(error.into())
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Self::Output(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taskflow(error) => error.fmt(f),
            Self::Message(message) => f.write_str(message),
            Self::Output(error) => write!(f, "cannot write the output: {error}"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut io::stdout().lock()).await {
        Ok(code) => code,
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, out: &mut impl Write) -> Result<ExitCode, Failure> {
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
            writeln!(
                out,
                "{:<36}  {:<12}  {:<20}  {:<20}  {:<16}  created",
                "ID", "STATUS", "TYPE", "INDEX", "STEP"
            )?;
            for task in &page.items {
                writeln!(
                    out,
                    "{:<36}  {:<12}  {:<20}  {:<20}  {:<16}  {}",
                    task.task_id,
                    task.status,
                    task.task_type,
                    task.task_index,
                    task.current_step,
                    task.created_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                )?;
            }
            writeln!(out, "{} of {} task(s)", page.items.len(), page.total)?;
        }
        Command::Show { id, json } => {
            let task = engine.get(&id).await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &task).map_err(io::Error::from)?;
                writeln!(out)?;
            } else {
                print_task(out, &task)?;
            }
        }
        Command::Watch { id } => {
            let task = watch(&engine, &id, out).await?;
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
            let task = match engine.retry(&args.id, request).await {
                // Only a forced retry runs a task that succeeded (checked before anything else about it).
                Err(taskflow::Error::InvalidState {
                    status: TaskStatus::Success,
                    ..
                }) if !args.force => {
                    return Err(Failure::Message(format!(
                        "task `{}` succeeded; add --force to run it again",
                        args.id
                    )));
                }
                retried => retried?,
            };
            writeln!(
                out,
                "task {} retrying from step `{}`",
                task.task_id, task.current_step
            )?;
        }
        Command::Cancel { id, by } => {
            let task = engine.cancel_by(&id, &by).await?;
            writeln!(out, "task {} {}", task.task_id, task.status)?;
        }
        Command::Workers => {
            let workers = backend.workers().await?;
            if workers.is_empty() {
                // On stderr: a script counting the lines of stdout counts no worker.
                eprintln!("no live workers");
            }
            for worker in workers {
                writeln!(
                    out,
                    "{}  node={}  queues={}  executors={}",
                    worker.worker_id,
                    worker.node,
                    worker.queues.join(","),
                    worker.executors.join(",")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints each new state of a task until it has ended and its callback ran; returns the final task. Stops at once
/// if the output cannot be written (a closed pipe), rather than when the task ends.
async fn watch(engine: &Engine, id: &str, out: &mut impl Write) -> Result<Task, Failure> {
    let mut last = String::new();
    let mut failed = None;
    let stop = Notify::new();
    let watched = engine.watch(id, |task| {
        let line = format!(
            "{} step `{}`: {}",
            task.status, task.current_step, task.message
        );
        if line != last && failed.is_none() {
            if let Err(e) = writeln!(out, "{line}") {
                failed = Some(e);
                stop.notify_one();
            }
            last = line;
        }
    });
    let task = tokio::select! {
        task = watched => Some(task),
        () = stop.notified() => None,
    };
    match (failed, task) {
        (Some(e), _) => Err(e.into()),
        (None, Some(task)) => Ok(task?),
        (None, None) => unreachable!("the watch stops only on a write error"),
    }
}

fn print_task(out: &mut impl Write, task: &Task) -> io::Result<()> {
    writeln!(out, "task     {} ({})", task.task_id, task.task_name)?;
    writeln!(
        out,
        "type     {}   index {} ({})",
        task.task_type, task.task_index, task.task_index_type
    )?;
    writeln!(out, "status   {}: {}", task.status, task.message)?;
    writeln!(out, "creator  {}   updater {}", task.creator, task.updater)?;
    if !task.callback_name.is_empty() {
        let result = task
            .callback_result
            .map(|r| format!("{r:?}"))
            .unwrap_or_else(|| "pending".into());
        writeln!(
            out,
            "callback {} → {} {}",
            task.callback_name, result, task.callback_message
        )?;
    }
    writeln!(out, "steps:")?;
    for step in &task.steps {
        let marker = if step.name == task.current_step {
            "→"
        } else {
            " "
        };
        let skipped = if step.skipped { " (skipped)" } else { "" };
        writeln!(
            out,
            " {marker} {:<20} {:<10}{skipped} attempt {} retries {}/{}  {}",
            step.name, step.status, step.attempt, step.retry_count, step.max_retries, step.message
        )?;
    }
    if !task.common_params.is_empty() {
        writeln!(out, "shared variables:")?;
        for (key, value) in &task.common_params {
            writeln!(out, "   {key} = {value}")?;
        }
    }
    Ok(())
}

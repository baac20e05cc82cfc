//! `taskflow-bench`: throughput and latency of taskflow as ratios against baselines measured in the same run —
//! the minimal etcd design (one claim and one completion transaction per step) and plain tokio task chains.
//!
//! Run with `./scripts/bench` (release build). The last line printed is the summary; the same figures go to
//! `target/bench/report.json`.

mod baseline;
mod etcd;
mod memory;

use clap::Parser;
use std::time::Duration;
use taskflow_tests::etcd::EtcdServer;

/// Benchmark sizes and options.
#[derive(Debug, Parser)]
#[command(
    about = "taskflow benchmark: ratios against etcd and tokio baselines measured in the same run"
)]
struct Args {
    /// Tasks per run (T).
    #[arg(long, default_value_t = 2000)]
    tasks: usize,
    /// No-op steps per task (S).
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Concurrency (C): baseline workers, and the taskflow worker's concurrency.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Tasks of 20 steps run one after the other on an idle system to measure the hop latency.
    #[arg(long, default_value_t = 10)]
    hop_tasks: usize,
    /// Tiny sizes, to check that the benchmark still works (used by the test command; no figure is meaningful).
    #[arg(long)]
    smoke: bool,
    /// Only the in-process runs (memory backend and tokio baseline): for profiling; prints their rows, no summary.
    #[arg(long)]
    memory_only: bool,
    /// Where etcd keeps its data (default: the system temp dir, on the normal disk, fsync on).
    #[arg(long)]
    data_root: Option<std::path::PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/report.json")]
    report: std::path::PathBuf,
}

/// How many times the etcd runs (baseline, then taskflow) are repeated; the best time of each counts.
const ETCD_ROUNDS: usize = 3;

/// How many times the in-process runs (memory backend, tokio baseline) are repeated; the best time counts.
const MEMORY_ROUNDS: usize = 5;

/// T, S, C of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) tasks: usize,
    pub(crate) steps: usize,
    pub(crate) concurrency: usize,
}

impl Sizes {
    fn steps_per_second(self, elapsed: Duration) -> f64 {
        (self.tasks * self.steps) as f64 / elapsed.as_secs_f64()
    }
}

/// The tokio baseline and taskflow on the memory backend. They take milliseconds: the best of several rounds,
/// alternating, so that both see the same machine.
async fn in_process(sizes: Sizes) -> (Duration, Duration) {
    let (mut tokio_time, mut memory_time) = (Duration::MAX, Duration::MAX);
    for _ in 0..MEMORY_ROUNDS {
        tokio_time = tokio_time.min(memory::tokio_baseline(sizes).await);
        memory_time = memory_time.min(memory::taskflow_memory(sizes).await);
    }
    (tokio_time, memory_time)
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.smoke {
        (args.tasks, args.steps, args.concurrency, args.hop_tasks) = (20, 3, 4, 1);
    }
    let sizes = Sizes {
        tasks: args.tasks,
        steps: args.steps,
        concurrency: args.concurrency,
    };
    if args.memory_only {
        let (tokio_time, memory_time) = in_process(sizes).await;
        let (tokio_rate, memory_rate) = (
            sizes.steps_per_second(tokio_time),
            sizes.steps_per_second(memory_time),
        );
        println!("| tokio task chains (baseline) | {tokio_rate:.0} | {tokio_time:.2?} |");
        println!("| taskflow on memory | {memory_rate:.0} | {memory_time:.2?} |");
        println!("memory_ratio={:.3}", memory_rate / tokio_rate);
        return;
    }
    let data_root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    println!(
        "taskflow benchmark: T={} tasks × S={} no-op steps, C={}; etcd data in {}",
        sizes.tasks,
        sizes.steps,
        sizes.concurrency,
        data_root.display()
    );
    let server = EtcdServer::start_in(&data_root);

    // The etcd runs take seconds on a VM whose speed drifts: alternating rounds, the best time of each counts.
    let (mut baseline_time, mut etcd_time) = (Duration::MAX, Duration::MAX);
    let (mut baseline_writes, mut writes_per_step) = (0.0, 0.0);
    for _ in 0..ETCD_ROUNDS {
        let before = etcd::proposals(&server);
        baseline_time = baseline_time.min(baseline::run(&server.endpoint(), sizes).await);
        baseline_writes = (etcd::proposals(&server) - before) / (sizes.tasks * sizes.steps) as f64;
        let (time, writes) = etcd::throughput(&server, sizes).await;
        (etcd_time, writes_per_step) = (etcd_time.min(time), writes);
    }
    let hops = etcd::hops(&server, args.hop_tasks).await;
    let (hop_p50, hop_p99) = (
        etcd::quantile_ms(&hops, 0.5),
        etcd::quantile_ms(&hops, 0.99),
    );
    drop(server);

    let (tokio_time, memory_time) = in_process(sizes).await;

    let baseline_rate = sizes.steps_per_second(baseline_time);
    let etcd_rate = sizes.steps_per_second(etcd_time);
    let tokio_rate = sizes.steps_per_second(tokio_time);
    let memory_rate = sizes.steps_per_second(memory_time);
    let etcd_ratio = etcd_rate / baseline_rate;
    let memory_ratio = memory_rate / tokio_rate;

    println!();
    println!("| run | steps/s | time | etcd writes/step |");
    println!("|---|---:|---:|---:|");
    println!(
        "| etcd baseline (claim txn + completion txn per step) | {baseline_rate:.0} | {baseline_time:.2?} | {baseline_writes:.2} |"
    );
    println!("| taskflow on etcd | {etcd_rate:.0} | {etcd_time:.2?} | {writes_per_step:.2} |");
    println!("| tokio task chains (baseline) | {tokio_rate:.0} | {tokio_time:.2?} | |");
    println!("| taskflow on memory | {memory_rate:.0} | {memory_time:.2?} | |");
    println!();
    println!(
        "idle hop latency over {} hops: p50 {hop_p50:.2} ms, p99 {hop_p99:.2} ms",
        hops.len()
    );
    println!();

    let report = serde_json::json!({
        "tasks": sizes.tasks, "steps": sizes.steps, "concurrency": sizes.concurrency,
        "etcd_ratio": etcd_ratio, "etcd_steps_per_s": etcd_rate, "baseline_steps_per_s": baseline_rate,
        "writes_per_step": writes_per_step, "baseline_writes_per_step": baseline_writes,
        "hop_p50_ms": hop_p50, "hop_p99_ms": hop_p99, "hops": hops.len(),
        "memory_ratio": memory_ratio, "memory_steps_per_s": memory_rate, "tokio_steps_per_s": tokio_rate,
    });
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir).expect("cannot create the report directory");
    }
    std::fs::write(
        &args.report,
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("cannot write the report");
    println!(
        "bench: etcd_ratio={etcd_ratio:.3} etcd_steps_per_s={etcd_rate:.0} writes_per_step={writes_per_step:.2} \
         hop_p50_ms={hop_p50:.2} hop_p99_ms={hop_p99:.2} memory_ratio={memory_ratio:.3} \
         memory_steps_per_s={memory_rate:.0}"
    );
}

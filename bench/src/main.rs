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
    /// Tasks of 3 steps run one after the other, each dispatched then waited for, to measure the wait latency.
    #[arg(long, default_value_t = 200)]
    wait_tasks: usize,
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

/// How many measured rounds of the etcd pair (baseline and taskflow) run, after one warm-up round.
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

/// One round of the etcd pair: the baseline and taskflow, one right after the other on the same etcd.
struct EtcdRound {
    baseline: Duration,
    baseline_writes: f64,
    taskflow: Duration,
    taskflow_writes: f64,
}

impl EtcdRound {
    fn ratio(&self) -> f64 {
        self.baseline.as_secs_f64() / self.taskflow.as_secs_f64()
    }
}

/// The etcd pair: the warm-up round, then the measured rounds sorted by ratio. Each run takes seconds on a VM whose speed drifts, and etcd
/// itself slows down as its database accumulates history, so the two sides are compared within a round (alternating
/// which goes first), after a warm-up round that is not counted: a fresh, empty etcd is not what a deployment runs on.
async fn etcd_rounds(server: &EtcdServer, sizes: Sizes) -> (EtcdRound, Vec<EtcdRound>) {
    let steps = (sizes.tasks * sizes.steps) as f64;
    let mut rounds = Vec::new();
    for round in 0..=ETCD_ROUNDS {
        let (mut baseline, mut baseline_writes) = (Duration::ZERO, 0.0);
        let (mut taskflow, mut taskflow_writes) = (Duration::ZERO, 0.0);
        for taskflow_turn in [round % 2 == 1, round % 2 == 0] {
            if taskflow_turn {
                (taskflow, taskflow_writes) = etcd::throughput(server, sizes).await;
            } else {
                let before = etcd::proposals(server);
                baseline = baseline::run(&server.endpoint(), sizes).await;
                baseline_writes = (etcd::proposals(server) - before) / steps;
            }
        }
        rounds.push(EtcdRound {
            baseline,
            baseline_writes,
            taskflow,
            taskflow_writes,
        });
    }
    let warm_up = rounds.remove(0);
    rounds.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    (warm_up, rounds)
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
        (
            args.tasks,
            args.steps,
            args.concurrency,
            args.hop_tasks,
            args.wait_tasks,
        ) = (20, 3, 4, 1, 5);
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
    // The in-process pair first, while the process runs nothing else: the etcd phase leaves clients behind.
    let (tokio_time, memory_time) = in_process(sizes).await;
    let server = EtcdServer::start_in(&data_root);

    let (warm_up, rounds) = etcd_rounds(&server, sizes).await;
    let ratios: Vec<f64> = rounds.iter().map(|r| r.ratio()).collect();
    let median = &rounds[rounds.len() / 2];
    let (baseline_time, baseline_writes) = (median.baseline, median.baseline_writes);
    let (etcd_time, writes_per_step) = (median.taskflow, median.taskflow_writes);
    let hops = etcd::hops(&server, args.hop_tasks).await;
    let (hop_p50, hop_p99) = (
        etcd::quantile_ms(&hops, 0.5),
        etcd::quantile_ms(&hops, 0.99),
    );
    let waits = etcd::waits(&server, args.wait_tasks).await;
    let (wait_p50, wait_p99) = (
        etcd::quantile_ms(&waits, 0.5),
        etcd::quantile_ms(&waits, 0.99),
    );
    drop(server);

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
        "etcd rows: the median of {ETCD_ROUNDS} paired rounds by ratio; every round's ratio: {} (the warm-up round on \
         a fresh etcd, not counted: {:.3})",
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        warm_up.ratio()
    );
    println!(
        "idle hop latency over {} hops: p50 {hop_p50:.2} ms, p99 {hop_p99:.2} ms",
        hops.len()
    );
    println!(
        "dispatch to the result of Engine::wait over {} sequential 3-step tasks (after a warm-up task): p50 {wait_p50:.2} ms, p99 \
         {wait_p99:.2} ms",
        waits.len()
    );
    println!();

    let report = serde_json::json!({
        "tasks": sizes.tasks, "steps": sizes.steps, "concurrency": sizes.concurrency,
        "etcd_ratio": etcd_ratio, "etcd_steps_per_s": etcd_rate, "baseline_steps_per_s": baseline_rate,
        "etcd_round_ratios": ratios, "etcd_warm_up_ratio": warm_up.ratio(),
        "writes_per_step": writes_per_step, "baseline_writes_per_step": baseline_writes,
        "hop_p50_ms": hop_p50, "hop_p99_ms": hop_p99, "hops": hops.len(),
        "wait_p50_ms": wait_p50, "wait_p99_ms": wait_p99, "waits": waits.len(),
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
         memory_steps_per_s={memory_rate:.0} wait_p50_ms={wait_p50:.2} wait_p99_ms={wait_p99:.2}"
    );
}

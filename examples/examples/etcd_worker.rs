//! A taskflow worker process on etcd: serves queues and a node name, runs the example flow's steps, and shares the
//! work with every other worker on the same etcd and prefix.
//!
//! ```text
//! cargo run -p taskflow-examples --features etcd --example etcd_worker -- \
//!     --endpoints http://127.0.0.1:2379 --prefix /taskflow/demo --node node-a --concurrency 64
//! ```
//! Stop it with Ctrl-C: running steps get a grace period, then their claims are released to the other workers.

#[path = "etcd_common/flow.rs"]
mod flow;

use clap::Parser;
use std::time::Duration;
use taskflow::Engine;
use taskflow::backend::etcd::EtcdArgs;

/// A taskflow worker on etcd.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// This worker's node name (steps pinned to it run here).
    #[arg(long, env = "TASKFLOW_NODE", default_value = "node-a")]
    node: String,
    /// Steps run at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Queues served (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "default")]
    queues: Vec<String>,
    /// Lease TTL in seconds (a crashed worker's steps go to others after this).
    #[arg(long, default_value_t = 10)]
    lease_ttl: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let config = args
        .etcd
        .config()
        .lease_ttl(Duration::from_secs(args.lease_ttl));
    let backend = config.connect().await?;
    let engine = flow::register(Engine::builder().backend(backend)).build()?;
    let worker = engine
        .worker()
        .node(args.node)
        .queues(args.queues)
        .concurrency(args.concurrency)
        .start()
        .await?;
    tracing::info!(worker = %worker.spec().worker_id, "serving; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    worker.shutdown().await;
    Ok(())
}

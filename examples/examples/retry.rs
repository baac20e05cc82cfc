//! Retry from the failed step: a task fails at its second step; once the cause is fixed, `retry` resumes it from that
//! step — the first step is not run again and the variables it wrote stay.
//!
//! Run: `cargo run --example retry`

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use taskflow::prelude::*;
use taskflow::{Backoff, RetryRequest};

static QUOTA_SERVICE_UP: AtomicBool = AtomicBool::new(false);
static RESERVATIONS: AtomicUsize = AtomicUsize::new(0);

/// Reserves an IP range (must not run twice).
#[step]
async fn reserve_ips(ctx: &StepContext, cluster: String) -> Result<String, StepError> {
    RESERVATIONS.fetch_add(1, Ordering::SeqCst);
    let range = format!("10.42.0.0/16 for {cluster}");
    ctx.set_common("ipRange", range.clone());
    Ok(range)
}

/// Applies the quota: fails while the quota service is down.
#[step(retries = 1)]
async fn apply_quota(range: String) -> Result<(), StepError> {
    if !QUOTA_SERVICE_UP.load(Ordering::SeqCst) {
        return Err(StepError::new("quota service unavailable"));
    }
    println!("  quota applied on {range}");
    Ok(())
}

task_flow! {
    /// Reserve addresses, then apply a quota.
    flow CreateCluster {
        type = "create-cluster",
        steps {
            reserve_ips(cluster = "{{ params.cluster }}"),
            apply_quota(range = "{{ common.ipRange }}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), taskflow::Error> {
    let engine = Engine::builder()
        .backoff(Backoff::fixed(std::time::Duration::from_millis(100)))
        .build()?;
    let worker = engine.worker().start().await?;

    let id = engine
        .dispatch(
            CreateCluster::builder()
                .index("cluster-7")
                .param("cluster", "cluster-7")
                .build()?,
        )
        .await?;
    let failed = engine.wait(&id).await?;
    println!("first run: {} — {}", failed.status, failed.message);
    assert_eq!(failed.status, TaskStatus::Failure);

    QUOTA_SERVICE_UP.store(true, Ordering::SeqCst);
    println!("quota service is back; retrying from the failed step");
    engine.retry(&id, RetryRequest::new().by("ops")).await?;
    let done = engine.wait(&id).await?;
    println!("after retry: {} — {}", done.status, done.message);
    println!(
        "reserve_ips ran {} time(s); ipRange = {}",
        RESERVATIONS.load(Ordering::SeqCst),
        done.common_params["ipRange"]
    );
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(RESERVATIONS.load(Ordering::SeqCst), 1);
    worker.shutdown().await;
    Ok(())
}

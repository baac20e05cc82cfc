//! Cancellation: a long-polling step (waiting for an approval that never comes) is cancelled; the task becomes
//! REVOKED at once, the step sees the cancellation and stops, and the callback runs once.
//!
//! Run: `cargo run --example cancel`

use std::time::Duration;
use taskflow::poll::{Poll, poll_until};
use taskflow::prelude::*;

/// Polls an approval system until the ticket is approved (here: never).
#[step]
async fn wait_for_approval(ctx: &StepContext, ticket: String) -> Result<String, StepError> {
    println!("  polling approval of {ticket}");
    poll_until(
        &ctx.cancellation_token(),
        Duration::from_millis(200),
        || async {
            Ok(Poll::<String>::Pending) // the approver is on holiday
        },
    )
    .await
}

/// Applies the approved change.
#[step]
async fn apply(ticket: String) -> Result<(), StepError> {
    println!("  applying {ticket}");
    Ok(())
}

/// Reports how the task ended.
#[callback]
async fn report(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    println!(
        "  [callback] task {} ended {}: {}",
        outcome.task_id(),
        outcome.status,
        outcome.task.message
    );
    Ok(())
}

task_flow! {
    /// Approve, then apply.
    flow ApproveThenApply {
        type = "quota",
        callback = report,
        steps {
            wait_for_approval(ticket = "{{ params.ticket }}"),
            apply(ticket = "{{ params.ticket }}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), taskflow::Error> {
    let engine = Engine::memory()?;
    let worker = engine.worker().start().await?;
    let id = engine
        .dispatch(
            ApproveThenApply::builder()
                .param("ticket", "ITSM-1234")
                .build()?,
        )
        .await?;

    // Wait until the polling step runs, then cancel.
    let mut task = engine.get(&id).await?;
    while task.steps[0].status != StepStatus::Running {
        task = engine
            .backend()
            .wait_change(&id, 0)
            .await?
            .expect("task exists")
            .value;
    }
    let revoked = engine.cancel_by(&id, "admin").await?;
    println!("cancelled: {} — {}", revoked.status, revoked.message);

    let done = engine.wait(&id).await?;
    println!(
        "final: {}; step `{}`: {}",
        done.status, done.steps[0].name, done.steps[0].message
    );
    assert_eq!(done.status, TaskStatus::Revoked);
    assert_eq!(done.steps[1].status, StepStatus::NotStarted);
    worker.shutdown().await;
    Ok(())
}

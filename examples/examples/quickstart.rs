//! The reference example: a `sum` step (params `sumA`, `sumB` → shared variable `sumC`), a `hello` step that reads
//! it, and a callback — written with the DSL, run on the embedded memory backend (no server needed).
//!
//! Run: `cargo run --example quickstart` (exits 0 when the task ends SUCCESS).

use std::process::ExitCode;
use taskflow::prelude::*;

/// Adds two numbers and shares the sum with later steps as `sumC`.
#[step(alias = "sum two numbers", timeout = "10s", retries = 2)]
async fn sum(ctx: &StepContext, sum_a: i64, sum_b: i64) -> Result<i64, StepError> {
    ctx.set_common("sumC", (sum_a + sum_b).to_string());
    println!("  [sum]   {sum_a} + {sum_b} = {}", sum_a + sum_b);
    Ok(sum_a + sum_b)
}

/// Greets, with a message rendered from the shared variables.
#[step(alias = "say hello")]
async fn hello(ctx: &StepContext, greeting: String) -> Result<(), StepError> {
    println!("  [hello] task {} says: {greeting}", ctx.task().task_name);
    Ok(())
}

/// Runs once when the task ends.
#[callback(name = "callBack")]
async fn call_back(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    let how = if outcome.is_success() {
        "successfully"
    } else {
        "with a failure"
    };
    println!("  [callback] task ended {how}");
    Ok(())
}

task_flow! {
    /// The reference example flow: sum, then hello.
    flow Example {
        type = "example-test",
        callback = call_back,
        timeout = "5m",
        steps {
            sum(sum_a = "{{ params.a }}", sum_b = 5),
            hello(greeting = "sum is {{ common.sumC }}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, taskflow::Error> {
    let engine = Engine::memory()?;
    let worker = engine
        .worker()
        .node("node-a")
        .concurrency(16)
        .start()
        .await?;

    let task = Example::builder()
        .name("example")
        .index("example")
        .creator("bcs")
        .param("a", "3")
        .build()?;
    let id = engine.dispatch(task).await?;
    println!("dispatched task {id}");
    let mut last = String::new();
    let done = engine
        .watch(&id, |task| {
            let line = format!(
                "task {} step `{}`: {}",
                task.status, task.current_step, task.message
            );
            if line != last {
                println!("{line}");
                last = line;
            }
        })
        .await?;
    worker.shutdown().await;

    println!(
        "final task:\n{}",
        serde_json::to_string_pretty(&done).expect("a task serialises")
    );
    println!(
        "result: status={} sumC={}",
        done.status,
        done.common_param("sumC").unwrap_or("<unset>")
    );
    Ok(if done.status == TaskStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! The reference example: a `sum` step (params `sumA`, `sumB` → shared variable `sumC`), a `hello` step that reads
//! it, and a callback — on the embedded memory backend, no server needed.
//!
//! Run: `cargo run --example quickstart` (exits 0 when the task ends SUCCESS).

use std::process::ExitCode;
use taskflow::{
    Engine, Step, StepError, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus, callback_fn,
    step_fn,
};

#[tokio::main]
async fn main() -> Result<ExitCode, taskflow::Error> {
    // Steps: plain async code that reads params and writes shared variables.
    let sum = step_fn("sum", |ctx| async move {
        let a: i64 = ctx
            .param("sumA")
            .unwrap_or("0")
            .parse()
            .map_err(StepError::fatal)?;
        let b: i64 = ctx
            .param("sumB")
            .unwrap_or("0")
            .parse()
            .map_err(StepError::fatal)?;
        ctx.set_common("sumC", (a + b).to_string());
        println!("  [sum]   {a} + {b} = {}", a + b);
        Ok(a + b)
    });
    let hello = step_fn("hello", |ctx| async move {
        println!(
            "  [hello] task {} says: {}",
            ctx.task().task_name,
            ctx.param("greeting").unwrap_or_default()
        );
        Ok(())
    });
    let callback = callback_fn("callBack", |outcome| async move {
        println!(
            "  [callback] task ended {}",
            if outcome.is_success() {
                "successfully"
            } else {
                "with a failure"
            }
        );
        Ok(())
    });

    let engine = Engine::builder()
        .step(sum)
        .step(hello)
        .callback(callback)
        .build()?;
    let worker = engine
        .worker()
        .node("node-a")
        .concurrency(16)
        .start()
        .await?;

    let info = TaskInfo {
        task_type: "example-test".into(),
        task_name: "example".into(),
        task_index: "example".into(),
        creator: "bcs".into(),
        ..Default::default()
    };
    let options = TaskOptions {
        callback: Some("callBack".into()),
        max_execution_seconds: 300,
        ..Default::default()
    };
    let task = Task::new(info, options)
        .with_step(
            Step::new(
                "sum",
                "sum",
                StepOptions {
                    max_execution_seconds: 10,
                    max_retries: 2,
                    ..Default::default()
                },
            )
            .param("sumA", "{{ params.a }}")
            .param("sumB", "5"),
        )
        .with_step(
            Step::new("hello", "hello", StepOptions::default())
                .param("greeting", "sum is {{ common.sumC }}"),
        );
    let mut task = task;
    task.set_common_param("a", "3");

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

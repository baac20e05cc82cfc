//! Templating: step params are minijinja templates over the task's variables — shared variables (`params` /
//! `common`), the task (`task.*`) and earlier steps' outputs (`steps.<name>.output`) — with user filters and functions
//! (a function is a template global: the flow declares it with `globals = [...]` so the compile-time check knows it).
//!
//! Run: `cargo run --example templating`

use serde::{Deserialize, Serialize};
use taskflow::prelude::*;

/// What `lookup` returns; later steps read its fields.
#[derive(Debug, Serialize, Deserialize)]
struct Endpoint {
    host: String,
    port: u16,
}

/// Finds the endpoint of a service.
#[step]
async fn lookup(service: String) -> Result<Endpoint, StepError> {
    Ok(Endpoint {
        host: format!("{service}.svc.cluster.local"),
        port: 8443,
    })
}

/// Prints the rendered message.
#[step]
async fn announce(message: String) -> Result<String, StepError> {
    println!("  {message}");
    Ok(message)
}

task_flow! {
    /// Look a service up, then announce where it lives.
    flow Announce {
        type = "demo",
        globals = ["next"],
        steps {
            lookup(service = "{{ params.service }}"),
            announce(message = "{{ task.name }}: {{ params.service | shout }} is at https://{{ steps.lookup.output.host }}:{{ steps.lookup.output.port }} (port+1 = {{ next(steps.lookup.output.port) }})"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), taskflow::Error> {
    let engine = Engine::builder()
        .filter("shout", |s: String| s.to_uppercase())
        .function("next", |n: i64| n + 1)
        .build()?;
    let worker = engine.worker().start().await?;
    let id = engine
        .dispatch(
            Announce::builder()
                .name("announce-billing")
                .param("service", "billing")
                .build()?,
        )
        .await?;
    let done = engine.wait(&id).await?;
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    println!(
        "output of `announce`: {}",
        done.steps[1].output.as_ref().expect("an output")
    );
    worker.shutdown().await;
    Ok(())
}

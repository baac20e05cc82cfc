//! Steps written by a user's `macro_rules!` (types arrive as `$t:ty`), a step with a lifetime parameter,
//! `serde_json::Value` arguments given literals, and a flow's routing overridden by its builder.

use std::time::Duration;
use taskflow::Route;
use taskflow::prelude::*;

macro_rules! echo_step {
    ($name:ident, $ty:ty) => {
        #[step]
        async fn $name(value: $ty) -> Result<$ty, StepError> {
            Ok(value)
        }
    };
}

macro_rules! context_step {
    ($name:ident, $context:ty) => {
        #[step]
        async fn $name(ctx: $context, n: i64) -> Result<i64, StepError> {
            ctx.set_common("n", n.to_string());
            Ok(n)
        }
    };
}

/// Lifetime parameters are fine.
#[step]
async fn borrowing<'a>(ctx: &'a StepContext, n: i64) -> Result<String, StepError> {
    Ok(format!("{} {n}", ctx.step_name()))
}

echo_step!(maybe, Option<i64>);
echo_step!(echo_json, serde_json::Value);
context_step!(share, &StepContext);

task_flow! {
    flow Generated {
        node = "node-a",
        steps {
            maybe,
            borrowing(n = 1),
            share(n = 0) [name = "nothing"],
            share(n = 3),
            echo_json(value = 5),
            echo_json(value = true) [name = "flag"],
            echo_json(value = 2.5) [name = "ratio"],
            echo_json(value = "text") [name = "text"],
            echo_json(value = "{{ common.n }}") [name = "rendered"],
        }
    }
}

#[tokio::main]
async fn main() {
    let pinned = Generated::builder().build().unwrap();
    assert_eq!(pinned.route_of(&pinned.steps[0]), Route::Node("node-a".into()));
    let task = Generated::builder().queue("gpu").build().unwrap();
    assert_eq!(task.route_of(&task.steps[0]), Route::Queue("gpu".into()));

    let engine = Engine::memory().unwrap();
    let worker = engine.worker().queues(["gpu"]).start().await.unwrap();
    let id = engine.dispatch(task).await.unwrap();
    let done = engine
        .wait_timeout(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    let output = |name: &str| done.step(name).unwrap().output.clone().unwrap();
    assert_eq!(output("maybe"), serde_json::Value::Null);
    assert_eq!(output("share"), serde_json::json!(3));
    assert_eq!(output("nothing"), serde_json::json!(0));
    assert_eq!(output("borrowing"), serde_json::json!("borrowing 1"));
    assert_eq!(output("echo_json"), serde_json::json!(5));
    assert_eq!(output("flag"), serde_json::json!(true));
    assert_eq!(output("ratio"), serde_json::json!(2.5));
    assert_eq!(output("text"), serde_json::json!("text"));
    assert_eq!(output("rendered"), serde_json::json!(3));
    worker.shutdown().await;
}

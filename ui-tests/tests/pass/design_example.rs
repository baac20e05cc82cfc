//! The DSL example of DESIGN.md §5, run end to end on the memory backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskflow::prelude::*;

static CALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// Adds two numbers and shares the sum with later steps.
#[step(timeout = "10s", retries = 2)]
async fn sum(ctx: &StepContext, sum_a: i64, sum_b: i64) -> Result<i64, StepError> {
    ctx.set_common("sumC", (sum_a + sum_b).to_string());
    Ok(sum_a + sum_b)
}

#[step]
async fn hello(ctx: &StepContext, greeting: String) -> Result<String, StepError> {
    ctx.set_common("greeted", greeting.clone());
    Ok(greeting)
}

#[callback]
async fn notify(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    assert!(outcome.is_success(), "{:?}", outcome.error);
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

task_flow! {
    /// Sums two numbers, then greets.
    pub flow Example {
        type = "example-test",
        callback = notify,
        timeout = "5m",
        steps {
            sum(sum_a = "{{ params.a }}", sum_b = 5),
            hello(greeting = "sum is {{ common.sumC }}") [skip_on_failed, node = "node-a"],
        }
    }
}

#[tokio::main]
async fn main() {
    let task = Example::builder()
        .index("cluster-1")
        .creator("admin")
        .param("a", "3")
        .build()
        .unwrap();
    assert_eq!(task.task_type, "example-test");
    assert_eq!(task.task_name, "Example");
    assert_eq!(task.callback_name, "notify");
    assert_eq!(task.max_execution_seconds, 300);
    let [first, second] = &task.steps[..] else {
        panic!("two steps expected")
    };
    assert_eq!(
        (first.name.as_str(), first.executor.as_str()),
        ("sum", "sum")
    );
    assert_eq!(first.params["sumA"], "{{ params.a }}");
    assert_eq!(first.params["sumB"], "5");
    assert_eq!((first.max_execution_seconds, first.max_retries), (10, 2));
    assert_eq!(second.params["greeting"], "sum is {{ common.sumC }}");
    assert!(second.skip_on_failed);
    assert_eq!(second.node.as_deref(), Some("node-a"));

    let engine = Engine::memory().unwrap();
    let worker = engine.worker().node("node-a").start().await.unwrap();
    let id = engine.dispatch(task).await.unwrap();
    let done = engine
        .wait_timeout(&id, Duration::from_secs(30))
        .await
        .unwrap();
    worker.shutdown().await;

    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.common_params["sumC"], "8");
    assert_eq!(done.common_params["greeted"], "sum is 8");
    assert_eq!(done.steps[0].output, Some(serde_json::json!(8)));
    assert_eq!(done.steps[1].output, Some(serde_json::json!("sum is 8")));
    assert_eq!(CALLBACKS.load(Ordering::SeqCst), 1);
}

//! Steps named by module path, an executor used twice, per-step options over the step's defaults, non-string
//! literals, optional arguments, outputs of earlier steps in templates, declared globals, renamed executors and
//! callbacks, and the macros through a renamed import of the crate.

use std::time::Duration;
use taskflow as tf;
use tf::prelude::*;

mod math {
    use taskflow::prelude::*;

    /// Adds, with an optional offset; the sum is the output.
    #[step(name = "math.add", alias = "Addition", retries = 1, timeout = "1m", queue = "math")]
    pub async fn add(left: i64, right: i64, offset: Option<i64>) -> Result<i64, StepError> {
        Ok(left + right + offset.unwrap_or(0))
    }
}

#[derive(serde::Serialize)]
struct Report {
    line: String,
    ratio: f64,
    loud: bool,
}

#[tf::step]
async fn report(
    ctx: &StepContext,
    line: String,
    ratio: f64,
    loud: bool,
    tags: Vec<String>,
) -> Result<Report, StepError> {
    ctx.set_common("tags", tags.join(","));
    let line = if loud { line.to_uppercase() } else { line };
    Ok(Report { line, ratio, loud })
}

#[tf::callback(name = "flow.done")]
async fn done(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    if outcome.is_success() {
        Ok(())
    } else {
        Err(CallbackError::new("flow failed"))
    }
}

tf::task_flow! {
    /// Two additions and a report.
    pub(crate) flow Arithmetic {
        name = "arithmetic",
        type = "math",
        callback = done,
        queue = "math",
        globals = ["region"],
        steps {
            math::add(left = 1, right = -3, offset = "{{ params.offset }}"),
            math::add(left = "{{ steps.add.output }}", right = 10)
                [name = "second", alias = "Second addition", retries = 0, timeout = "2h", node = "n1", delay = "1s"],
            report(
                line = "{{ steps.add.output }} then {{ steps.second.output }} for {{ task.creator }}",
                ratio = 0.5,
                loud = true,
                tags = r#"["a", "b"]"#,
            ) [skip_on_failed],
        }
    }
}

#[tokio::main]
async fn main() {
    let task = Arithmetic::builder().creator("ops").param("offset", "4").build().unwrap();
    assert_eq!((task.task_name.as_str(), task.task_type.as_str()), ("arithmetic", "math"));
    assert_eq!(task.callback_name, "flow.done");
    let [first, second, third] = &task.steps[..] else { panic!("three steps expected") };
    assert_eq!((first.name.as_str(), first.executor.as_str()), ("add", "math.add"));
    assert_eq!((first.alias.as_str(), first.max_retries, first.max_execution_seconds), ("Addition", 1, 60));
    assert_eq!((first.queue.as_deref(), first.node.as_deref()), (Some("math"), None));
    assert_eq!(first.params["left"], "1");
    assert_eq!(first.params["right"], "-3");
    assert_eq!((second.name.as_str(), second.executor.as_str()), ("second", "math.add"));
    assert_eq!(second.alias, "Second addition");
    assert_eq!((second.max_retries, second.max_execution_seconds, second.delay_seconds), (0, 7200, 1));
    assert_eq!((second.node.as_deref(), second.queue.as_deref()), (Some("n1"), None));
    assert!(!second.params.contains_key("offset"));
    assert_eq!(third.params["ratio"], "0.5");
    assert_eq!(third.params["loud"], "true");
    assert!(third.skip_on_failed && !first.skip_on_failed);

    let engine = Engine::builder()
        .templates(|env| env.add_global("region", "eu"))
        .build()
        .unwrap();
    let worker = engine.worker().node("n1").queues(["math"]).start().await.unwrap();
    let id = engine.dispatch(task).await.unwrap();
    let done = engine.wait_timeout(&id, Duration::from_secs(30)).await.unwrap();
    worker.shutdown().await;

    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.steps[0].output, Some(serde_json::json!(2)));
    assert_eq!(done.steps[1].output, Some(serde_json::json!(12)));
    let expected = serde_json::json!({ "line": "2 THEN 12 FOR OPS", "ratio": 0.5, "loud": true });
    assert_eq!(done.steps[2].output, Some(expected));
    assert_eq!(done.common_params["tags"], "a,b");
    // The user's functions stay plain async fns.
    assert_eq!(math::add(1, 2, None).await.unwrap(), 3);
}

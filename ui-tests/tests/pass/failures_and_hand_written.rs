//! Failures (fatal, retried, skipped), the callback seeing them, and hand-written `StepMgr` / `TaskMgr`
//! implementations next to the macros.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use taskflow::prelude::*;
use taskflow::{Backoff, StepOptions, TaskBuilder};

static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
static OUTCOMES: Mutex<Vec<(String, TaskStatus)>> = Mutex::new(Vec::new());

#[step]
async fn refuse(reason: String) -> Result<(), StepError> {
    Err(StepError::fatal(reason))
}

#[step(retries = 2)]
async fn parse_number(text: String) -> Result<i64, StepError> {
    ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    Ok(text.parse::<i64>()?)
}

#[step]
async fn record(ctx: &StepContext) -> Result<(), StepError> {
    ctx.set_common("recorded", "yes");
    Ok(())
}

#[callback]
async fn remember(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    OUTCOMES.lock().unwrap().push((outcome.task.task_name.clone(), outcome.status));
    Ok(())
}

task_flow! {
    flow Skipping {
        callback = remember,
        steps {
            refuse(reason = "not today") [skip_on_failed],
            record,
        }
    }

    flow Failing {
        callback = remember,
        steps {
            parse_number(text = "twelve"),
            record,
        }
    }
}

/// A step written by hand.
struct Shout;

#[taskflow::async_trait]
impl StepMgr for Shout {
    fn name(&self) -> &str {
        "shout"
    }

    async fn run(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let word = ctx.param("word").ok_or_else(|| StepError::fatal("no word"))?;
        Ok(serde_json::Value::String(word.to_uppercase()))
    }
}

/// A flow written by hand, mixing the hand-written step and a `#[step]`.
struct Manual;

impl TaskMgr for Manual {
    fn name(&self) -> &str {
        "manual"
    }

    fn task_type(&self) -> &str {
        "manual"
    }

    fn steps(&self) -> Vec<Step> {
        vec![
            Step::new("shout", "shout", StepOptions::default()).param("word", "hey"),
            Step::new("record", "record", StepOptions::default()),
        ]
    }
}

#[tokio::main]
async fn main() {
    let engine = Engine::builder()
        .step(Shout)
        .flow(Manual)
        .backoff(Backoff::fixed(Duration::from_millis(10)))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let wait = |id: String| {
        let engine = engine.clone();
        async move { engine.wait_timeout(&id, Duration::from_secs(30)).await.unwrap() }
    };

    let skipped = wait(engine.dispatch(Skipping::builder().build().unwrap()).await.unwrap()).await;
    assert_eq!(skipped.status, TaskStatus::Success, "{}", skipped.message);
    assert_eq!(skipped.steps[0].status, StepStatus::Failure);
    assert!(skipped.steps[0].skipped);
    assert!(skipped.steps[0].message.contains("not today"), "{}", skipped.steps[0].message);
    assert_eq!(skipped.common_params["recorded"], "yes");

    let failed = wait(engine.dispatch(Failing::builder().build().unwrap()).await.unwrap()).await;
    assert_eq!(failed.status, TaskStatus::Failure);
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 3, "a retryable error is retried");
    assert!(!failed.common_params.contains_key("recorded"));

    let manual = wait(engine.dispatch(TaskBuilder::new(&Manual).build().unwrap()).await.unwrap()).await;
    assert_eq!(manual.status, TaskStatus::Success, "{}", manual.message);
    assert_eq!(manual.steps[0].output, Some(serde_json::json!("HEY")));
    worker.shutdown().await;

    let mut outcomes = OUTCOMES.lock().unwrap().clone();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = [("Failing".to_owned(), TaskStatus::Failure), ("Skipping".to_owned(), TaskStatus::Success)];
    assert_eq!(outcomes, expected);

    // A step is testable without an engine, through its `StepMgr` impl or as a plain function.
    let ctx = StepContext::for_test("parse_number", &[("text", "7")]);
    assert_eq!(StepMgr::run(&parse_number {}, &ctx).await.unwrap(), serde_json::json!(7));
    assert_eq!(parse_number("8".into()).await.unwrap(), 8);
}

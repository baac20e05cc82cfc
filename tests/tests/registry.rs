//! The registry: runtime registration, hand-written `StepMgr`/`TaskMgr`, and one aggregated validation error.

use serde_json::Value;
use taskflow::{
    Engine, Step, StepContext, StepError, StepMgr, StepOptions, TaskBuilder, TaskMgr, TaskOptions,
    TaskStatus, async_trait, callback_fn, step_fn,
};

/// A plugin step written without macros.
struct Greet;

#[async_trait]
impl StepMgr for Greet {
    fn name(&self) -> &str {
        "greet"
    }
    fn alias(&self) -> &str {
        "say hello"
    }
    fn options(&self) -> StepOptions {
        StepOptions {
            max_retries: 2,
            ..Default::default()
        }
    }
    async fn run(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let who = ctx
            .param("who")
            .ok_or_else(|| StepError::fatal("param `who` is missing"))?;
        ctx.set_common("greeted", who);
        Ok(Value::String(format!("hello {who}")))
    }
}

/// A flow written without macros.
struct Welcome;

impl TaskMgr for Welcome {
    fn name(&self) -> &str {
        "welcome"
    }
    fn task_type(&self) -> &str {
        "onboarding"
    }
    fn options(&self) -> TaskOptions {
        TaskOptions {
            callback: Some("done".into()),
            ..Default::default()
        }
    }
    fn steps(&self) -> Vec<Step> {
        let params = [("who".to_owned(), "{{ params.user }}".to_owned())].into();
        vec![Greet.build_step("greet", params, Greet.options())]
    }
}

#[tokio::test]
async fn hand_written_step_and_flow_run() {
    let engine = Engine::builder()
        .without_inventory()
        .step(Greet)
        .flow(Welcome)
        .callback(callback_fn("done", |_outcome| async { Ok(()) }))
        .build()
        .unwrap();
    assert!(engine.registry().flow("welcome").is_some());
    let worker = engine.worker().start().await.unwrap();
    let task = TaskBuilder::new(&Welcome)
        .index("user-1")
        .creator("hr")
        .param("user", "ada")
        .build()
        .unwrap();
    assert_eq!(task.task_type, "onboarding");
    assert_eq!(task.task_name, "welcome");
    assert_eq!(task.steps[0].alias, "say hello");
    assert_eq!(task.steps[0].max_retries, 2);
    let id = engine.dispatch(task).await.unwrap();
    let done = engine.wait(&id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.common_params["greeted"], "ada");
    assert_eq!(
        done.steps[0].output,
        Some(Value::String("hello ada".into()))
    );
    worker.shutdown().await;
}

/// A flow whose step and callback nobody registered.
struct Broken;

impl TaskMgr for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn task_type(&self) -> &str {
        "x"
    }
    fn options(&self) -> TaskOptions {
        TaskOptions {
            callback: Some("missing_cb".into()),
            ..Default::default()
        }
    }
    fn steps(&self) -> Vec<Step> {
        vec![Step::new("s", "missing_step", StepOptions::default())]
    }
}

#[test]
fn registry_problems_are_reported_together() {
    let err = Engine::builder()
        .without_inventory()
        .step(Greet)
        .step(Greet)
        .step(step_fn("", |_ctx| async { Ok(()) }))
        .flow(Broken)
        .build()
        .err()
        .expect("the registry is invalid")
        .to_string();
    assert!(
        err.starts_with("invalid taskflow registry (4 problem(s)):"),
        "{err}"
    );
    assert!(err.contains("step `greet` is registered twice"), "{err}");
    assert!(
        err.contains("a step registered at <runtime> has an empty name"),
        "{err}"
    );
    assert!(
        err.contains(
            "flow `broken`: step `s` runs executor `missing_step`, which is not registered"
        ),
        "{err}"
    );
    assert!(
        err.contains("flow `broken`: callback `missing_cb` is not registered"),
        "{err}"
    );
}

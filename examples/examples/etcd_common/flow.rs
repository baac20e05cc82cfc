//! The example flow shared by `etcd_worker` and `etcd_submit`: provision a (pretend) cluster in three steps that
//! share variables, with a callback. Both processes register the same steps: the submitter to validate tasks at
//! dispatch, the workers to run them.
#![allow(dead_code)] // each example uses a part of it

use std::time::Duration;
use taskflow::{
    EngineBuilder, Step, StepContext, StepError, StepOptions, Task, TaskInfo, TaskOptions,
    callback_fn, step_fn,
};

/// The task type of the example flow.
pub(crate) const TASK_TYPE: &str = "provision-cluster";

/// Sleeps for the step's `ms` param (the example's stand-in for real work).
async fn pause(ctx: &StepContext) -> Result<(), StepError> {
    let ms: u64 = ctx
        .param("ms")
        .unwrap_or("0")
        .parse()
        .map_err(StepError::fatal)?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

/// Registers the example's steps and callback.
pub(crate) fn register(builder: EngineBuilder) -> EngineBuilder {
    let allocate = step_fn("allocate", |ctx| async move {
        pause(&ctx).await?;
        let cluster = format!("cluster-{}", &ctx.task_id()[..8]);
        ctx.set_common("cluster", cluster.clone());
        Ok(cluster)
    });
    let configure = step_fn("configure", |ctx| async move {
        pause(&ctx).await?;
        let cluster = ctx
            .common("cluster")
            .ok_or_else(|| StepError::fatal("no cluster allocated"))?;
        Ok(format!("{cluster} configured"))
    });
    let verify = step_fn("verify", |ctx| async move {
        pause(&ctx).await?;
        Ok(true)
    });
    let report = callback_fn("report", |outcome| async move {
        tracing::info!(task_id = %outcome.task.task_id, status = %outcome.status, "provisioning ended");
        Ok(())
    });
    builder
        .step(allocate)
        .step(configure)
        .step(verify)
        .callback(report)
}

/// A task of the example flow; every step sleeps `step_ms` (`node` pins the `verify` step to a worker node).
pub(crate) fn task(index: usize, step_ms: u64, node: Option<&str>) -> Task {
    let info = TaskInfo {
        task_type: TASK_TYPE.into(),
        task_name: format!("provision #{index}"),
        task_index: format!("cluster-{index}"),
        creator: "etcd_submit".into(),
        ..Default::default()
    };
    let options = TaskOptions {
        callback: Some("report".into()),
        max_execution_seconds: 600,
        ..Default::default()
    };
    let step = |name: &str, node: Option<&str>| {
        let options = StepOptions {
            node: node.map(str::to_owned),
            max_execution_seconds: 60,
            ..Default::default()
        };
        Step::new(name, name, options).param("ms", step_ms.to_string())
    };
    Task::new(info, options)
        .with_step(step("allocate", None))
        .with_step(step("configure", None))
        .with_step(step("verify", node))
}

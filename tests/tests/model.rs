//! The task document: JSON compatibility with the reference framework's camelCase document.

use taskflow::{
    CallbackResult, Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus,
};

/// A task document as the Go framework writes it (`taskID`, Go zero times, JSON-string payloads, `""` results).
const REFERENCE_DOCUMENT: &str = r#"{
  "taskIndex": "example",
  "taskIndexType": "cluster",
  "taskID": "0d3f7c1e-9d7e-4a53-b6a4-0d4f7d8e2b11",
  "taskType": "example-test",
  "taskName": "example",
  "currentStep": "hello",
  "steps": [
    {
      "name": "sum", "alias": "求和任务", "executor": "sum",
      "params": {"sumA": "3", "sumB": "5"}, "payload": "{}",
      "status": "SUCCESS", "message": "step sum running successfully", "eta": null,
      "skipOnFailed": false, "retryCount": 0, "maxRetries": 0, "executionTime": 12, "maxExecutionSeconds": 10,
      "start": "2025-01-02T03:04:05Z", "end": "2025-01-02T03:04:05.012Z", "lastUpdate": "2025-01-02T03:04:05.012Z"
    },
    {
      "name": "hello", "alias": "你好", "executor": "hello", "params": {}, "payload": "{\"k\":1}",
      "status": "FAILURE", "message": "running failed, err=boom", "eta": "0001-01-01T00:00:00Z",
      "skipOnFailed": true, "retryCount": 1, "maxRetries": 2, "executionTime": 3, "maxExecutionSeconds": 0,
      "start": "2025-01-02T03:04:06Z", "end": "2025-01-02T03:04:06Z", "lastUpdate": "2025-01-02T03:04:06Z"
    }
  ],
  "callbackName": "callBack", "callbackResult": "", "callbackMessage": "",
  "commonParams": {"sumC": "8"}, "commonPayload": "{}",
  "status": "RUNNING", "message": "task running",
  "executionTime": 0, "maxExecutionSeconds": 0,
  "creator": "bcs", "updater": "bcs",
  "start": "2025-01-02T03:04:05Z", "end": "0001-01-01T00:00:00Z",
  "createdAt": "0001-01-01T00:00:00Z", "lastUpdate": "2025-01-02T03:04:06Z"
}"#;

#[test]
fn reference_document_round_trips() {
    let task: Task = serde_json::from_str(REFERENCE_DOCUMENT).unwrap();
    assert_eq!(task.task_id, "0d3f7c1e-9d7e-4a53-b6a4-0d4f7d8e2b11");
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.common_params["sumC"], "8");
    assert_eq!(task.callback_result, None);
    assert_eq!(task.end, None, "Go's zero time reads as unset");
    assert_eq!(task.steps[0].params["sumA"], "3");
    assert_eq!(task.steps[1].status, StepStatus::Failure);
    assert_eq!(
        task.steps[1].payload,
        serde_json::json!({"k": 1}),
        "JSON-string payloads are decoded"
    );
    assert_eq!(task.steps[1].eta, None);
    assert_eq!(task.steps[0].alias, "求和任务");
    task.validate().unwrap();

    let json = serde_json::to_value(&task).unwrap();
    for key in [
        "taskId",
        "taskType",
        "taskIndexType",
        "currentStep",
        "commonParams",
        "maxExecutionSeconds",
    ] {
        assert!(json.get(key).is_some(), "camelCase key `{key}` in {json}");
    }
    assert_eq!(json["status"], "RUNNING");
    assert_eq!(json["callbackResult"], "");
    assert_eq!(json["steps"][0]["status"], "SUCCESS");
    let again: Task = serde_json::from_value(json).unwrap();
    assert_eq!(again, task);
}

#[test]
fn new_task_and_step_have_the_reference_defaults() {
    let info = TaskInfo {
        task_name: "n".into(),
        creator: "me".into(),
        ..Default::default()
    };
    let options = TaskOptions {
        callback: Some("cb".into()),
        max_execution_seconds: 60,
        ..Default::default()
    };
    let task = Task::new(info, options).with_step(Step::new("s", "exec", StepOptions::default()));
    assert_eq!(task.status, TaskStatus::Initializing);
    assert_eq!(task.message, "task initializing");
    assert_eq!(task.common_payload, serde_json::json!({}));
    assert_eq!(task.updater, "me");
    assert_eq!(task.callback_name, "cb");
    assert_eq!(task.current_step, "s");
    assert_eq!(uuid_version(&task.task_id), Some('4'));
    assert_eq!(task.steps[0].status, StepStatus::NotStarted);
    let mut done = task.clone();
    done.callback_result = Some(CallbackResult::Failure);
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["callbackResult"], "FAILURE");
}

#[test]
fn duplicate_step_names_are_found_in_short_and_long_chains() {
    for len in [3, 40] {
        let info = TaskInfo {
            task_name: "n".into(),
            ..Default::default()
        };
        let mut task = Task::new(info, TaskOptions::default());
        for i in 0..len {
            task.add_step(Step::new(format!("s{i}"), "x", StepOptions::default()));
        }
        assert!(task.validate().is_ok(), "{len} distinct steps");
        task.add_step(Step::new(
            format!("s{}", len - 1),
            "x",
            StepOptions::default(),
        ));
        let err = task.validate().unwrap_err().to_string();
        assert!(
            err.contains(&format!("step name `s{}` is not unique", len - 1)),
            "{len} steps: {err}"
        );
    }
}

fn uuid_version(id: &str) -> Option<char> {
    id.split('-').nth(2).and_then(|part| part.chars().next())
}

#[test]
fn validation_lists_every_problem() {
    let mut task = Task::new(TaskInfo::default(), TaskOptions::default());
    task.add_step(Step::new("a", "", StepOptions::default()));
    task.add_step(Step::new("a", "x", StepOptions::default()));
    let err = task.validate().unwrap_err().to_string();
    for problem in [
        "task name is required",
        "step `a` executor is required",
        "step name `a` is not unique",
    ] {
        assert!(err.contains(problem), "{err}");
    }
    let empty = Task::new(
        TaskInfo {
            task_name: "n".into(),
            ..Default::default()
        },
        TaskOptions::default(),
    );
    assert!(
        empty
            .validate()
            .unwrap_err()
            .to_string()
            .contains("task steps empty")
    );
}

/// `clone_from` (which the engine uses to recycle documents) must copy every field, whatever the target held.
#[test]
fn clone_from_copies_every_field() {
    let reference: Task = serde_json::from_str(REFERENCE_DOCUMENT).unwrap();
    let mut rich = reference.clone();
    rich.common_params.insert("k".into(), "v".into());
    rich.common_payload = serde_json::json!({"a": [1, 2]});
    rich.node = Some("n1".into());
    for (i, step) in rich.steps.iter_mut().enumerate() {
        step.output = Some(serde_json::json!({ "i": i }));
        step.params
            .insert("p".into(), format!("{{{{ params.x{i} }}}}"));
        step.payload = serde_json::json!([i]);
        step.queue = Some(format!("q{i}"));
        step.attempt = 3;
        step.skipped = true;
    }
    rich.add_step(Step::new("extra", "exec", StepOptions::default()));
    let plain = Task::new(TaskInfo::default(), TaskOptions::default()).with_step(Step::new(
        "only",
        "other",
        StepOptions::default(),
    ));
    // `Value`'s `==` holds 0.0 == -0.0: a recycled payload must still take the other zero.
    let mut zero = rich.clone();
    zero.common_payload = serde_json::json!({"v": 0.0});
    zero.steps[0].output = Some(serde_json::json!([0.0]));
    let mut negative_zero = rich.clone();
    negative_zero.common_payload = serde_json::json!({"v": -0.0});
    negative_zero.steps[0].output = Some(serde_json::json!([-0.0]));
    let cases = [
        (&plain, &rich),
        (&rich, &plain),
        (&reference, &rich),
        (&zero, &negative_zero),
        (&negative_zero, &zero),
    ];
    for (target, source) in cases {
        let mut recycled = target.clone();
        recycled.clone_from(source);
        assert_eq!(&recycled, source);
        assert_eq!(
            serde_json::to_string(&recycled).unwrap(),
            serde_json::to_string(source).unwrap()
        );
    }
}

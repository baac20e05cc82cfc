//! Rendering of step params: minijinja templates, strict about undefined values, over the task's variables.

use crate::model::{Step, Task};
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::json;
use std::collections::BTreeMap;

/// The template environment of an engine.
///
/// A step's params are rendered right before the step runs, with the latest committed variables. The context has:
/// `params` and `common` (both the task's shared variables), `task` (`id`, `name`, `type`, `index`, `indexType`,
/// `creator`, `payload`) and `steps.<name>` (`output`, `status`, `message` of every step; a flow's templates may read
/// only earlier ones). Undefined values are errors. Add filters and functions through
/// [`EngineBuilder`](crate::EngineBuilder).
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Params are plain text whatever they are called (minijinja would pick escaping from a template name ending in
        // `.html`, `.json`, `.yaml`... and templates are named `{step}.{param}`).
        env.set_auto_escape_callback(|_| AutoEscape::None);
        Self { env }
    }
}

impl Renderer {
    /// The template environment, to register filters, functions and globals.
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        &mut self.env
    }

    /// Renders every param of `task`'s step `step`. The error names the step, the param and the template error.
    pub fn render_params(
        &self,
        task: &Task,
        step: &Step,
    ) -> Result<BTreeMap<String, String>, String> {
        if step.params.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut context = None;
        step.params
            .iter()
            .map(|(key, template)| {
                if !is_template(template) {
                    return Ok((key.clone(), template.clone()));
                }
                let context = context.get_or_insert_with(|| Self::context(task)).clone();
                self.env
                    .render_named_str(&format!("{}.{key}", step.name), template, context)
                    .map(|rendered| (key.clone(), rendered))
                    .map_err(|e| {
                        format!(
                            "step `{}`: param `{key}`: template error: {}",
                            step.name,
                            describe(&e)
                        )
                    })
            })
            .collect()
    }

    /// Checks that a param value parses as a template (without rendering it).
    pub fn check_syntax(&self, template: &str) -> Result<(), String> {
        if !is_template(template) {
            return Ok(());
        }
        self.env
            .template_from_str(template)
            .map(drop)
            .map_err(|e| describe(&e))
    }

    /// The rendering context of a task.
    pub fn context(task: &Task) -> Value {
        let steps: serde_json::Map<String, serde_json::Value> = task
            .steps
            .iter()
            .map(|s| {
                let entry = json!({
                    "output": s.output.clone().unwrap_or(serde_json::Value::Null),
                    "status": s.status.as_str(),
                    "message": s.message,
                });
                (s.name.clone(), entry)
            })
            .collect();
        let context = json!({
            "params": task.common_params,
            "common": task.common_params,
            "task": {
                "id": task.task_id,
                "name": task.task_name,
                "type": task.task_type,
                "index": task.task_index,
                "indexType": task.task_index_type,
                "creator": task.creator,
                "payload": task.common_payload,
            },
            "steps": steps,
        });
        Value::from(Serde(context))
    }
}

/// Whether a param value holds template syntax (plain values are used verbatim, without building a context).
fn is_template(value: &str) -> bool {
    value.contains("{{") || value.contains("{%")
}

/// The error with its detail and position, on one line.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    if let Some(detail) = error.detail()
        && !text.contains(detail)
    {
        text = format!("{text}: {detail}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{StepOptions, TaskInfo, TaskOptions};

    fn task() -> Task {
        let mut task = Task::new(
            TaskInfo {
                task_name: "t".into(),
                ..Default::default()
            },
            TaskOptions::default(),
        )
        .with_step(Step::new("first", "x", StepOptions::default()))
        .with_step(
            Step::new("second", "x", StepOptions::default())
                .param("greeting", "sum is {{ common.sumC }}"),
        );
        task.steps[0].output = Some(json!({"url": "http://x"}));
        task.set_common_param("sumC", "8");
        task
    }

    #[test]
    fn renders_common_params_and_outputs() {
        let mut task = task();
        task.steps[1].params.insert(
            "url".into(),
            "{{ steps.first.output.url }}/{{ task.name }}".into(),
        );
        let params = Renderer::default()
            .render_params(&task, &task.steps[1])
            .unwrap();
        assert_eq!(params["greeting"], "sum is 8");
        assert_eq!(params["url"], "http://x/t");
    }

    #[test]
    fn a_param_renders_the_same_whatever_its_name() {
        let mut task = task();
        task.set_common_param("v", "a<b & \"c\"");
        let names = ["text", "json", "yaml", "yml", "js", "html", "htm", "xml"];
        for name in names {
            task.steps[1]
                .params
                .insert(name.into(), "{{ common.v }}".into());
        }
        let params = Renderer::default()
            .render_params(&task, &task.steps[1])
            .unwrap();
        for name in names {
            assert_eq!(params[name], "a<b & \"c\"", "param `{name}`");
        }
    }

    #[test]
    fn undefined_values_name_step_and_param() {
        let mut task = task();
        task.steps[1]
            .params
            .insert("bad".into(), "{{ common.nope }}".into());
        let err = Renderer::default()
            .render_params(&task, &task.steps[1])
            .unwrap_err();
        assert!(
            err.starts_with("step `second`: param `bad`: template error:"),
            "{err}"
        );
        assert!(err.contains("undefined"), "{err}");
    }
}

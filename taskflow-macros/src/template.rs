//! Compile-time checks of param templates with minijinja: syntax, and the variables a template may read.

use crate::diag::Errors;
use minijinja::Environment;
use syn::LitStr;

/// Fields of the `task` variable of the renderer's context.
const TASK_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "index",
    "indexType",
    "creator",
    "payload",
];

/// Fields of each `steps.<name>` entry of the renderer's context.
const STEP_FIELDS: &[&str] = &["output", "status", "message"];

/// What the template of one step's param may read.
pub(crate) struct Scope<'a> {
    /// Names of the steps before this one.
    pub(crate) earlier: &'a [String],
    /// Names of the steps from this one on.
    pub(crate) later: &'a [String],
    /// Globals and functions the flow declares that the engine provides.
    pub(crate) globals: &'a [String],
}

/// Whether a param value is rendered at all (the renderer leaves other strings untouched).
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Checks the template in `lit`; errors point at the literal.
pub(crate) fn check(lit: &LitStr, scope: &Scope<'_>, errors: &mut Errors) {
    let source = lit.value();
    if !is_template(&source) {
        return;
    }
    let env = Environment::new();
    let template = match env.template_from_str(&source) {
        Ok(template) => template,
        Err(error) => {
            let detail = error
                .detail()
                .map_or_else(|| error.kind().to_string(), str::to_owned);
            let line = error
                .line()
                .map(|line| format!(" (line {line})"))
                .unwrap_or_default();
            errors.at(lit, format!("template syntax error{line}: {detail}"));
            return;
        }
    };
    let builtins: Vec<&str> = env.globals().map(|(name, _)| name).collect();
    let mut variables: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    variables.sort();
    for variable in variables {
        let mut parts = variable.split('.');
        let root = parts.next().unwrap_or_default();
        let field = parts.next();
        if builtins.contains(&root) || scope.globals.iter().any(|global| global == root) {
            continue;
        }
        match (root, field) {
            ("params" | "common", _) | ("task" | "steps", None) => {}
            ("task", Some(field)) => {
                if !TASK_FIELDS.contains(&field) {
                    let fields = TASK_FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
                    errors.at(lit, format!("template reads `task.{field}`, which does not exist; `task` has {fields}"));
                }
            }
            ("steps", Some(step)) => {
                if scope.later.iter().any(|s| s == step) {
                    errors.at(lit, format!("template reads `steps.{step}`, but step `{step}` does not run before this one"));
                } else if !scope.earlier.iter().any(|s| s == step) {
                    errors.at(lit, format!("template reads `steps.{step}`, but this flow has no step `{step}`"));
                } else if let Some(field) = parts.next().filter(|field| !STEP_FIELDS.contains(field)) {
                    let fields = STEP_FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
                    errors.at(lit, format!("template reads `steps.{step}.{field}`, which does not exist; a step has {fields}"));
                }
            }
            _ => errors.at(
                lit,
                format!(
                    "template reads `{root}`, which is not defined; templates see `params`, `common`, `task`, \
                     `steps.<earlier step>` and the flow's `globals = [...]`"
                ),
            ),
        }
    }
}

//! The registry of steps, callbacks and flows: fed at link time by `inventory` (what the macros emit) and at run time
//! by the engine builder, validated once when the engine starts.

use crate::callback::Callback;
use crate::error::RegistryError;
use crate::flow::TaskMgr;
use crate::step::StepMgr;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where a registration comes from (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// `module_path!()` of the registration.
    pub module: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()`.
    pub line: u32,
}

impl Origin {
    /// An origin for registrations made at run time through the engine builder.
    pub const RUNTIME: Origin = Origin {
        module: "<runtime>",
        file: "<runtime>",
        line: 0,
    };
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.module)
        } else {
            write!(f, "{} ({}:{})", self.module, self.file, self.line)
        }
    }
}

/// A link-time registration of a step (emitted by `#[step]`).
pub struct StepRegistration {
    /// The step.
    pub step: &'static dyn StepMgr,
    /// Where it was registered.
    pub origin: Origin,
}

/// A link-time registration of a callback (emitted by `#[callback]`).
pub struct CallbackRegistration {
    /// The callback.
    pub callback: &'static dyn Callback,
    /// Where it was registered.
    pub origin: Origin,
}

/// A link-time registration of a flow (emitted by `task_flow!`).
pub struct FlowRegistration {
    /// The flow.
    pub flow: &'static dyn TaskMgr,
    /// Where it was registered.
    pub origin: Origin,
}

inventory::collect!(StepRegistration);
inventory::collect!(CallbackRegistration);
inventory::collect!(FlowRegistration);

/// The validated set of steps, callbacks and flows an engine knows.
#[derive(Default)]
pub struct Registry {
    steps: BTreeMap<String, Entry<dyn StepMgr>>,
    callbacks: BTreeMap<String, Entry<dyn Callback>>,
    flows: BTreeMap<String, Entry<dyn TaskMgr>>,
}

/// Collects registrations before validation.
#[derive(Default)]
pub(crate) struct RegistryBuilder {
    steps: Vec<(Entry<dyn StepMgr>, Origin)>,
    callbacks: Vec<(Entry<dyn Callback>, Origin)>,
    flows: Vec<(Entry<dyn TaskMgr>, Origin)>,
}

/// A registered item: linked in (`&'static`) or added at run time (`Arc`).
enum Entry<T: ?Sized + 'static> {
    Static(&'static T),
    Shared(Arc<T>),
}

impl<T: ?Sized> Entry<T> {
    fn get(&self) -> &T {
        match self {
            Self::Static(item) => item,
            Self::Shared(item) => item,
        }
    }
}

impl<T: ?Sized> Clone for Entry<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Static(item) => Self::Static(item),
            Self::Shared(item) => Self::Shared(Arc::clone(item)),
        }
    }
}

impl RegistryBuilder {
    /// Adds everything registered at link time.
    pub(crate) fn with_inventory(mut self) -> Self {
        for r in inventory::iter::<StepRegistration> {
            self.steps.push((Entry::Static(r.step), r.origin));
        }
        for r in inventory::iter::<CallbackRegistration> {
            self.callbacks.push((Entry::Static(r.callback), r.origin));
        }
        for r in inventory::iter::<FlowRegistration> {
            self.flows.push((Entry::Static(r.flow), r.origin));
        }
        self
    }

    pub(crate) fn step(&mut self, step: Arc<dyn StepMgr>) {
        self.steps.push((Entry::Shared(step), Origin::RUNTIME));
    }

    pub(crate) fn callback(&mut self, callback: Arc<dyn Callback>) {
        self.callbacks
            .push((Entry::Shared(callback), Origin::RUNTIME));
    }

    pub(crate) fn flow(&mut self, flow: Arc<dyn TaskMgr>) {
        self.flows.push((Entry::Shared(flow), Origin::RUNTIME));
    }

    /// Validates everything at once: unique names, flows referring only to known executors and callbacks.
    pub(crate) fn build(self) -> Result<Registry, RegistryError> {
        let mut problems = Vec::new();
        let steps = unique("step", self.steps, |s| s.name().to_owned(), &mut problems);
        let callbacks = unique(
            "callback",
            self.callbacks,
            |c| c.name().to_owned(),
            &mut problems,
        );
        let flows = unique("flow", self.flows, |f| f.name().to_owned(), &mut problems);
        for (name, flow) in &flows {
            let flow = flow.get();
            for step in flow.steps() {
                if !steps.contains_key(&step.executor) {
                    problems.push(format!(
                        "flow `{name}`: step `{}` runs executor `{}`, which is not registered (is the crate \
                         defining it linked? name it with `use the_crate as _;`)",
                        step.name, step.executor
                    ));
                }
            }
            if let Some(callback) = flow.options().callback
                && !callbacks.contains_key(&callback)
            {
                problems.push(format!(
                    "flow `{name}`: callback `{callback}` is not registered"
                ));
            }
        }
        if problems.is_empty() {
            Ok(Registry {
                steps,
                callbacks,
                flows,
            })
        } else {
            Err(RegistryError { problems })
        }
    }
}

fn unique<T: ?Sized>(
    kind: &str,
    items: Vec<(Entry<T>, Origin)>,
    name_of: impl Fn(&T) -> String,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Entry<T>> {
    let mut seen: BTreeMap<String, (Entry<T>, Origin)> = BTreeMap::new();
    for (item, origin) in items {
        let name = name_of(item.get());
        if name.is_empty() {
            problems.push(format!("a {kind} registered at {origin} has an empty name"));
        } else if let Some((_, first)) = seen.get(&name) {
            problems.push(format!(
                "{kind} `{name}` is registered twice: at {first} and at {origin}"
            ));
        } else {
            seen.insert(name, (item, origin));
        }
    }
    seen.into_iter()
        .map(|(name, (item, _))| (name, item))
        .collect()
}

impl Registry {
    /// The step executor with this name.
    pub fn step(&self, name: &str) -> Option<&dyn StepMgr> {
        self.steps.get(name).map(Entry::get)
    }

    /// The callback with this name.
    pub fn callback(&self, name: &str) -> Option<&dyn Callback> {
        self.callbacks.get(name).map(Entry::get)
    }

    /// The flow with this name.
    pub fn flow(&self, name: &str) -> Option<&dyn TaskMgr> {
        self.flows.get(name).map(Entry::get)
    }

    /// Names of every step executor.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.keys().map(String::as_str)
    }

    /// Names of every callback.
    pub fn callback_names(&self) -> impl Iterator<Item = &str> {
        self.callbacks.keys().map(String::as_str)
    }

    /// Names of every flow.
    pub fn flow_names(&self) -> impl Iterator<Item = &str> {
        self.flows.keys().map(String::as_str)
    }
}

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a step's message goes: a named queue (any worker serving the queue) or a named node (only workers of that
/// node). Routing names are compared exactly: queue `a` never sees the messages of queue `ab`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Route {
    /// A queue served by any number of workers.
    Queue(String),
    /// A worker node: only workers started with this node name run the step.
    Node(String),
}

impl Route {
    /// The queue used when neither the step nor the task says where to run.
    pub const DEFAULT_QUEUE: &'static str = "default";

    /// The default queue.
    pub fn default_queue() -> Self {
        Self::Queue(Self::DEFAULT_QUEUE.to_owned())
    }

    /// A stable, path-safe key of the route (`q.<name>` or `n.<name>`), used by backends in storage keys.
    pub fn key(&self) -> String {
        match self {
            Self::Queue(name) => format!("q.{name}"),
            Self::Node(name) => format!("n.{name}"),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(name) => write!(f, "queue `{name}`"),
            Self::Node(name) => write!(f, "node `{name}`"),
        }
    }
}

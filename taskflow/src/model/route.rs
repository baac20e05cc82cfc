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

    /// This route, borrowed.
    pub(crate) fn as_ref(&self) -> RouteRef<'_> {
        match self {
            Self::Queue(name) => RouteRef::Queue(name),
            Self::Node(name) => RouteRef::Node(name),
        }
    }

    /// A stable, path-safe key of the route (`q.<name>` or `n.<name>`), used by backends in storage keys.
    pub fn key(&self) -> String {
        match self {
            Self::Queue(name) => format!("q.{name}"),
            Self::Node(name) => format!("n.{name}"),
        }
    }
}

/// A [`Route`] borrowed from a task document: where its step (or callback) runs, before anything is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteRef<'a> {
    Queue(&'a str),
    Node(&'a str),
}

impl<'a> RouteRef<'a> {
    /// The node if there is one, else the queue, else the default queue.
    pub(crate) fn pick(node: Option<&'a str>, queue: Option<&'a str>) -> Self {
        match (node, queue) {
            (Some(node), _) => Self::Node(node),
            (None, Some(queue)) => Self::Queue(queue),
            (None, None) => Self::Queue(Route::DEFAULT_QUEUE),
        }
    }

    /// An owned copy.
    pub(crate) fn to_route(self) -> Route {
        match self {
            Self::Queue(name) => Route::Queue(name.to_owned()),
            Self::Node(name) => Route::Node(name.to_owned()),
        }
    }

    /// Makes `route` equal to this one, reusing its buffer when the kind is the same.
    pub(crate) fn write_to(self, route: &mut Route) {
        match (self, route) {
            (Self::Queue(name), Route::Queue(buffer)) | (Self::Node(name), Route::Node(buffer)) => {
                super::set(buffer, &[name]);
            }
            (this, route) => *route = this.to_route(),
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

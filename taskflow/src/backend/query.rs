//! Listing: [`TaskQuery`] filters, sorting and pagination, shared by every backend.

use crate::model::{Task, TaskStatus};
use chrono::{DateTime, Utc};
use std::cmp::Ordering;

/// The field tasks are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    /// Creation time (default).
    #[default]
    CreatedAt,
    /// Last change.
    LastUpdate,
    /// Start time.
    Start,
    /// Task id.
    TaskId,
    /// Task type.
    TaskType,
    /// Task name.
    TaskName,
    /// Business index.
    TaskIndex,
}

/// Filters, sort order and page of a task listing. Empty filters match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a query does nothing until passed to `Engine::list`"]
pub struct TaskQuery {
    /// Exact task type.
    pub task_type: Option<String>,
    /// Exact task name.
    pub task_name: Option<String>,
    /// Exact business index.
    pub task_index: Option<String>,
    /// Exact kind of business index.
    pub task_index_type: Option<String>,
    /// Any of these statuses (empty = any).
    pub statuses: Vec<TaskStatus>,
    /// Exact creator.
    pub creator: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created at or before.
    pub created_before: Option<DateTime<Utc>>,
    /// Sort field.
    pub sort: SortField,
    /// Sort descending (default: newest first).
    pub descending: bool,
    /// Matches to skip.
    pub offset: usize,
    /// Page size (default 100).
    pub limit: usize,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            task_type: None,
            task_name: None,
            task_index: None,
            task_index_type: None,
            statuses: Vec::new(),
            creator: None,
            created_after: None,
            created_before: None,
            sort: SortField::CreatedAt,
            descending: true,
            offset: 0,
            limit: 100,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// All matches, not only this page.
    pub total: usize,
    /// The page.
    pub items: Vec<Task>,
}

impl TaskQuery {
    /// Only tasks of this type.
    pub fn task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    /// Only tasks with this name.
    pub fn task_name(mut self, name: impl Into<String>) -> Self {
        self.task_name = Some(name.into());
        self
    }

    /// Only tasks with this business index.
    pub fn index(mut self, index: impl Into<String>) -> Self {
        self.task_index = Some(index.into());
        self
    }

    /// Only tasks with this kind of business index.
    pub fn index_type(mut self, index_type: impl Into<String>) -> Self {
        self.task_index_type = Some(index_type.into());
        self
    }

    /// Only tasks in this status (adds to the accepted statuses).
    pub fn status(mut self, status: TaskStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only tasks in one of these statuses.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = TaskStatus>) -> Self {
        self.statuses.extend(statuses);
        self
    }

    /// Only tasks by this creator.
    pub fn creator(mut self, creator: impl Into<String>) -> Self {
        self.creator = Some(creator.into());
        self
    }

    /// Only tasks created in `[after, before]` (either bound optional).
    pub fn created_between(
        mut self,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// Sort by this field.
    pub fn sort_by(mut self, field: SortField, descending: bool) -> Self {
        self.sort = field;
        self.descending = descending;
        self
    }

    /// The page: skip `offset` matches, return at most `limit`.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// Whether a task matches the filters.
    pub fn matches(&self, task: &Task) -> bool {
        fn eq(filter: &Option<String>, value: &str) -> bool {
            filter.as_deref().is_none_or(|f| f == value)
        }
        eq(&self.task_type, &task.task_type)
            && eq(&self.task_name, &task.task_name)
            && eq(&self.task_index, &task.task_index)
            && eq(&self.task_index_type, &task.task_index_type)
            && eq(&self.creator, &task.creator)
            && (self.statuses.is_empty() || self.statuses.contains(&task.status))
            && self
                .created_after
                .is_none_or(|after| task.created_at.is_some_and(|c| c >= after))
            && self
                .created_before
                .is_none_or(|before| task.created_at.is_some_and(|c| c <= before))
    }

    /// Compares two tasks in the query's order (ties broken by task id).
    pub fn compare(&self, a: &Task, b: &Task) -> Ordering {
        let ordering = match self.sort {
            SortField::CreatedAt => a.created_at.cmp(&b.created_at),
            SortField::LastUpdate => a.last_update.cmp(&b.last_update),
            SortField::Start => a.start.cmp(&b.start),
            SortField::TaskId => Ordering::Equal,
            SortField::TaskType => a.task_type.cmp(&b.task_type),
            SortField::TaskName => a.task_name.cmp(&b.task_name),
            SortField::TaskIndex => a.task_index.cmp(&b.task_index),
        }
        .then_with(|| a.task_id.cmp(&b.task_id));
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    /// Filters, sorts and pages a set of tasks.
    pub fn apply(&self, tasks: impl IntoIterator<Item = Task>) -> TaskPage {
        let mut matches: Vec<Task> = tasks.into_iter().filter(|t| self.matches(t)).collect();
        matches.sort_by(|a, b| self.compare(a, b));
        let total = matches.len();
        let items = matches
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        TaskPage { total, items }
    }
}

//! Drafts: a driver changes a copy of the committed document, never the shared one. The copy is written into the
//! buffers of an older revision nobody holds any more (the spare), with the buffer-reusing `clone_from` of `Task`
//! (`clone_reusing_buffers!` in `model`), which saves most of a document's allocations on every step.

use crate::model::Task;
use std::sync::Arc;

/// A copy of the committed document, changed on its way to a commit.
pub(super) struct Draft(Arc<Task>);

impl Draft {
    /// A document built apart from the committed one (a plan's commit, a failure replacing an oversized change).
    pub(super) fn new(task: Task) -> Self {
        Self(Arc::new(task))
    }

    /// The document, to change (the draft is its only holder: nothing is copied).
    pub(super) fn edit(&mut self) -> &mut Task {
        Arc::make_mut(&mut self.0)
    }

    /// The document, to commit.
    pub(super) fn shared(&self) -> &Arc<Task> {
        &self.0
    }

    /// The document, once committed.
    pub(super) fn into_shared(self) -> Arc<Task> {
        self.0
    }
}

impl std::ops::Deref for Draft {
    type Target = Task;

    fn deref(&self) -> &Task {
        &self.0
    }
}

/// A revision of a document that nobody else holds, whose buffers the next draft reuses.
#[derive(Default)]
pub(super) struct Spare(Option<Arc<Task>>);

impl Spare {
    /// A spare taken from the worker's pool, if it had one.
    pub(super) fn new(pooled: Option<Arc<Task>>) -> Self {
        Self(pooled)
    }

    /// A copy of `committed` to change, written into the spare's buffers when there is one (which it uses up).
    pub(super) fn draft(&mut self, committed: &Task) -> Draft {
        Draft(match self.0.take() {
            Some(mut spare) => {
                Arc::make_mut(&mut spare).clone_from(committed);
                spare
            }
            None => Arc::new(Task::clone(committed)),
        })
    }

    /// Keeps `previous`, a revision a commit just replaced, for the next draft, unless someone else (a step context,
    /// a reader) still holds it: a draft must never change a document someone reads.
    pub(super) fn keep(&mut self, mut previous: Arc<Task>) {
        if Arc::get_mut(&mut previous).is_some() {
            self.0 = Some(previous);
        }
    }

    /// The spare, to give back to the worker's pool.
    pub(super) fn take(&mut self) -> Option<Arc<Task>> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::Spare;
    use crate::model::{Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions};
    use std::sync::Arc;

    fn task(name: &str, steps: usize) -> Task {
        let info = TaskInfo {
            task_name: name.into(),
            ..TaskInfo::default()
        };
        let mut task = Task::new(info, TaskOptions::default());
        for i in 0..steps {
            task.add_step(Step::new(format!("s{i}"), "exec", StepOptions::default()));
        }
        task
    }

    #[test]
    fn a_draft_is_a_copy_of_the_committed_document_with_or_without_a_spare() {
        let committed = task("committed", 3);
        let mut none = Spare::default();
        assert_eq!(*none.draft(&committed), committed);
        // The spare is another task altogether (from the pool): nothing of it may show through.
        let mut pooled = task("pooled", 5);
        pooled.common_params.insert("k".into(), "v".into());
        pooled.steps[4].status = StepStatus::Running;
        let mut spare = Spare::new(Some(Arc::new(pooled)));
        assert_eq!(*spare.draft(&committed), committed);
        assert!(spare.take().is_none(), "a draft uses the spare up");
    }

    #[test]
    fn a_draft_reuses_the_spare_revision_and_leaves_the_committed_one_alone() {
        let committed = Arc::new(task("t", 2));
        let older = Arc::new(task("t", 2));
        let spare_ptr = Arc::as_ptr(&older);
        let mut spare = Spare::default();
        spare.keep(older);
        let mut draft = spare.draft(&committed);
        assert_eq!(
            Arc::as_ptr(draft.shared()),
            spare_ptr,
            "the spare's allocation is reused"
        );
        draft.edit().steps[0].status = StepStatus::Success;
        assert_eq!(
            Arc::as_ptr(draft.shared()),
            spare_ptr,
            "editing copies nothing"
        );
        assert_eq!(committed.steps[0].status, StepStatus::NotStarted);
    }

    #[test]
    fn a_revision_someone_still_reads_is_not_kept() {
        let previous = Arc::new(task("t", 1));
        let reader = Arc::clone(&previous);
        let mut spare = Spare::default();
        spare.keep(previous);
        assert!(spare.take().is_none());
        let mut draft = spare.draft(&task("t", 1));
        draft.edit().steps[0].status = StepStatus::Running;
        assert_eq!(reader.steps[0].status, StepStatus::NotStarted);
    }
}

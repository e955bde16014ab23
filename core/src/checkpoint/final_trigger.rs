//! The final checkpoint of a bounded input, triggered at once instead of at the next period.
//!
//! A task whose input ended waits for a checkpoint triggered at it to complete before it
//! finishes (FLIP-147; an exactly-once sink commits its last records then), and reports that it
//! waits ([`Input::FinalCheckpointAwaited`](super::Input::FinalCheckpointAwaited)) with the
//! newest checkpoint it had taken before: any newer checkpoint that reaches it is final for it.
//! Flink leaves that checkpoint to the periodic timer, up to one interval later; weir triggers
//! it as soon as **every** task a checkpoint would start at waits and none of them has a final
//! checkpoint in flight or completed ("covered"). It goes through the usual decider: a queued
//! request, `max-concurrent-checkpoints`, and `min-pause` after the last completion (the
//! periodic trigger is moved to that moment). A task is covered once for good: if that
//! checkpoint fails, the periodic timer takes the next one, so a failing final checkpoint is
//! never retried in a tight loop.
//!
//! Reports are kept per subtask, newest attempt only, so they stay bounded by the job's size; a
//! report may come before the coordinator learns of its attempt (the job not yet all RUNNING)
//! and is kept until the attempt is replaced or finishes.

use super::CheckpointCoordinator;
use crate::dataflow::BarrierKind;
use crate::ids::CheckpointId;
use crate::protocol::ExecutionId;

/// A subtask's attempt that waits for its final checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FinalWait {
    pub(super) execution: ExecutionId,
    /// The newest checkpoint the attempt had taken when its input ended.
    pub(super) checkpoint_latest: Option<CheckpointId>,
    /// A checkpoint newer than `checkpoint_latest` was triggered at it (or completed with it).
    pub(super) covered: bool,
}

impl CheckpointCoordinator {
    /// A task reports that its input ended and it waits for its final checkpoint.
    pub(super) fn on_final_checkpoint_awaited(
        &mut self,
        execution: ExecutionId,
        checkpoint_latest: Option<CheckpointId>,
    ) {
        let subtask = (execution.vertex, execution.subtask);
        let known_subtask = self.vertices.get(&execution.vertex).is_some_and(|v| execution.subtask.0 < v.parallelism);
        if execution.job != self.job || !known_subtask || self.finished.contains(&execution) {
            return; // nonsense, or an attempt that already finished
        }
        if is_replaced(&self.executions, execution) {
            return; // an old attempt's late report
        }
        if self.final_awaited.get(&subtask).is_some_and(|wait| wait.execution.attempt >= execution.attempt) {
            return; // a duplicate, or older than the report kept
        }
        let newer = |checkpoint: CheckpointId| checkpoint_latest.is_none_or(|latest| checkpoint > latest);
        // A checkpoint triggered before this report came, that the task took after its end.
        let in_flight = self.pending.values().any(|pending| {
            finishes_tasks(pending.kind) && newer(pending.checkpoint) && pending.tasks.binary_search(&execution).is_ok()
        });
        let completed = self.notified_latest.is_some_and(newer);
        let wait = FinalWait { execution, checkpoint_latest, covered: in_flight || completed };
        self.final_awaited.insert(subtask, wait);
    }

    /// The attempts changed or finished: reports of attempts that are not current and running
    /// any more go; one newer than the current attempt stays for its deployment.
    pub(super) fn prune_final_awaited(&mut self, executions_changed: bool) {
        if executions_changed {
            self.notified_latest = None; // notifications of replaced attempts finish nobody now
        }
        let executions = &self.executions;
        let finished = &self.finished;
        self.final_awaited
            .retain(|_, wait| !is_replaced(executions, wait.execution) && !finished.contains(&wait.execution));
    }

    /// A checkpoint of `kind` starts at `sources`: those waiting for their final one are covered.
    pub(super) fn cover_final_awaited(&mut self, kind: BarrierKind, sources: &[ExecutionId]) {
        if !finishes_tasks(kind) {
            return;
        }
        for execution in sources {
            if let Some(wait) = self.final_awaited.get_mut(&(execution.vertex, execution.subtask))
                && wait.execution == *execution
            {
                wait.covered = true;
            }
        }
    }

    /// When every task a checkpoint would start at waits for its final checkpoint and none is
    /// covered: fire the periodic trigger now, or move it to the end of `min-pause`.
    pub(super) fn trigger_final_early(&mut self) {
        if !self.final_checkpoint_wanted() {
            return;
        }
        let earliest = self.last_completion.map(|last| last.after(self.settings.min_pause));
        match earliest.filter(|earliest| *earliest > self.now) {
            Some(earliest) => self.periodic_next = self.periodic_next.map(|next| next.min(earliest)),
            None => self.fire_periodic(self.now),
        }
    }

    fn final_checkpoint_wanted(&self) -> bool {
        let uncovered = self.final_awaited.values().any(|wait| !wait.covered);
        if !uncovered || !self.scheduling || !self.tasks_running || self.queue.periodic > 0 {
            return false; // the cheap checks first: this runs after every input
        }
        let sources = self.barrier_starts();
        !sources.is_empty()
            && sources.iter().all(|execution| {
                let wait = self.final_awaited.get(&(execution.vertex, execution.subtask));
                wait.is_some_and(|wait| wait.execution == *execution && !wait.covered)
            })
    }

    /// Each report is kept under its own subtask, of an attempt not older than the current one
    /// and not finished.
    pub(super) fn check_final_awaited(&self) -> Result<(), String> {
        for (subtask, wait) in &self.final_awaited {
            let execution = wait.execution;
            if (execution.vertex, execution.subtask) != *subtask || execution.job != self.job {
                return Err(format!("the final checkpoint report of {execution} is kept under {subtask:?}"));
            }
            if is_replaced(&self.executions, execution) {
                return Err(format!("the final checkpoint report of {execution} outlived its attempt"));
            }
            if self.finished.contains(&execution) {
                return Err(format!("{execution} finished but still waits for its final checkpoint"));
            }
        }
        Ok(())
    }
}

/// Whether a newer attempt of `execution`'s subtask is among the current `executions`.
fn is_replaced(executions: &[ExecutionId], execution: ExecutionId) -> bool {
    let current = executions.iter().find(|e| (e.vertex, e.subtask) == (execution.vertex, execution.subtask));
    current.is_some_and(|current| current.attempt > execution.attempt)
}

/// Whether a completed checkpoint of `kind` is notified to the tasks, ending those that wait
/// for their final checkpoint (a plain savepoint is not).
pub(super) fn finishes_tasks(kind: BarrierKind) -> bool {
    !matches!(kind, BarrierKind::Savepoint { stop: false, .. })
}

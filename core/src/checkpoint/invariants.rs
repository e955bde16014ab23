//! [`CheckpointCoordinator::check_invariants`]: ids, bounds, the queue, the timers, the retained
//! checkpoints and the statistics agree.
//!
//! - Every pending and retained id is below the id counter; pending ids are not retained.
//! - Periodic checkpoints pending: at most `max-concurrent-checkpoints`; all pending at most that
//!   plus [`MAX_QUEUED_REQUESTS`] (forced savepoints); the queue within its bound.
//! - Each pending checkpoint's acknowledged and awaited attempts partition its task list, its
//!   deadline is trigger + timeout, it is finalizing exactly when nothing is awaited; its tasks
//!   are current attempts and with the subtasks it records as finished make up every subtask; it
//!   awaits no task that finished. The finished tasks are current attempts.
//! - Retained: at most `num-retained`, ascending ids, no stop-with-savepoint; the shared-file
//!   reference counts are exactly those of the retained checkpoints.
//! - The periodic trigger is armed exactly while scheduling, and scheduling needs RUNNING tasks
//!   and an interval; nothing is pending, queued or armed after shutdown.
//! - Final checkpoint reports: one per subtask, of its current (or a newer) attempt, unfinished.
//! - The failure count stays within the tolerable count; the statistics add up.

use super::CheckpointCoordinator;
use super::coordinator::{MAX_QUEUED_REQUESTS, RECENT_ABORTED_MAX};

fn ensure(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}

impl CheckpointCoordinator {
    pub(super) fn check(&self) -> Result<(), String> {
        self.check_ids()?;
        self.check_bounds()?;
        ensure(self.finished.iter().all(|task| self.executions.binary_search(task).is_ok()), || {
            "a finished task is not a current attempt".to_string()
        })?;
        for pending in self.pending.values() {
            pending.check(self.settings.timeout)?;
            ensure(pending.tasks.iter().all(|task| self.executions.binary_search(task).is_ok()), || {
                format!("checkpoint {} waits for other attempts than the current ones", pending.checkpoint)
            })?;
            ensure(pending.not_acknowledged.is_disjoint(&self.finished), || {
                format!("checkpoint {} waits for a task that finished", pending.checkpoint)
            })?;
            let subtasks = pending.tasks.len() + pending.finished.len();
            ensure(subtasks == self.executions.len(), || {
                format!("checkpoint {} covers {subtasks} of {} subtasks", pending.checkpoint, self.executions.len())
            })?;
        }
        self.check_scheduling()?;
        self.check_final_awaited()?;
        self.check_retained()?;
        self.failures.check()?;
        self.stats.check(self.pending.len())
    }

    fn check_ids(&self) -> Result<(), String> {
        let next = self.checkpoint_id_next;
        ensure(self.pending.keys().all(|id| *id < next), || format!("a pending id is not below {next}"))?;
        ensure(self.retained.iter().all(|c| c.checkpoint < next), || format!("a retained id is not below {next}"))?;
        ensure(self.retained.iter().all(|c| !self.pending.contains_key(&c.checkpoint)), || {
            "a checkpoint is both pending and retained".to_string()
        })?;
        ensure(self.recent_aborted.iter().all(|(id, _)| *id < next && !self.pending.contains_key(id)), || {
            "a recently aborted checkpoint is pending or from the future".to_string()
        })
    }

    fn check_bounds(&self) -> Result<(), String> {
        let periodic = self.pending.values().filter(|pending| !pending.is_savepoint()).count();
        ensure(periodic <= self.settings.max_concurrent, || {
            format!("{periodic} checkpoints pending, max concurrent {}", self.settings.max_concurrent)
        })?;
        ensure(self.pending.len() <= self.settings.max_concurrent + MAX_QUEUED_REQUESTS, || {
            format!("{} checkpoints pending", self.pending.len())
        })?;
        ensure(self.queue.len() <= MAX_QUEUED_REQUESTS, || format!("{} requests queued", self.queue.len()))?;
        ensure(self.recent_aborted.len() <= RECENT_ABORTED_MAX, || "too many remembered aborts".to_string())?;
        // A recovered savepoint can hold one place beyond num-retained (Flink keeps the newest
        // checkpoint besides the newest savepoint).
        let savepoints = self.retained.iter().any(super::CompletedCheckpoint::is_savepoint);
        let bound = self.settings.retained + usize::from(savepoints);
        ensure(self.retained.len() <= bound, || {
            format!("{} retained, num-retained {}", self.retained.len(), self.settings.retained)
        })?;
        ensure(self.shared.matches(self.retained.iter()), || {
            "the shared-file counts are not those of the retained checkpoints".to_string()
        })
    }

    fn check_scheduling(&self) -> Result<(), String> {
        ensure(self.scheduling == self.periodic_next.is_some(), || {
            format!("scheduling {} with trigger {:?}", self.scheduling, self.periodic_next)
        })?;
        ensure(!self.scheduling || (self.tasks_running && self.settings.interval.is_some()), || {
            "periodic checkpointing on while tasks are not running or without an interval".to_string()
        })?;
        ensure(self.scheduling || self.queue.periodic == 0, || "periodic requests queued while stopped".to_string())?;
        let idle = self.pending.is_empty() && self.queue.len() == 0 && self.periodic_next.is_none();
        ensure(!self.shut_down || idle, || "work left after shutdown".to_string())?;
        let running = self.tasks_running || self.pending.is_empty();
        ensure(running, || "checkpoints pending while tasks are not running".to_string())
    }

    fn check_retained(&self) -> Result<(), String> {
        let ids: Vec<_> = self.retained.iter().map(|completed| completed.checkpoint).collect();
        ensure(ids.windows(2).all(|pair| pair[0] < pair[1]), || format!("retained ids not ascending: {ids:?}"))?;
        let stop = |c: &&super::CompletedCheckpoint| {
            matches!(c.kind, crate::dataflow::BarrierKind::Savepoint { stop: true, .. })
        };
        ensure(!self.retained.iter().any(|c| stop(&c)), || "a stop-with-savepoint is retained".to_string())
    }
}

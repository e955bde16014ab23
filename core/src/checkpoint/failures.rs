//! Why checkpoints fail, and Flink's CheckpointFailureManager: which failures count toward
//! `tolerable-failed-checkpoints`, and when the job fails.
//!
//! Counting rules (Flink's `checkFailureCounter`): only declines for a failed snapshot or an IO
//! problem, and expirations, count; each checkpoint id at most once; only ids newer than the last
//! success. A success of a newer id resets the count. The job fails when the count exceeds the
//! threshold, and the count starts again from zero.

use crate::ids::CheckpointId;
use crate::protocol::ExecutionId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Flink's message when the tolerable failure count is exceeded.
pub const EXCEEDED_TOLERABLE_FAILURES: &str = "Exceeded checkpoint tolerable failure threshold.";

/// Why a task declined a checkpoint (Flink's task-side `CheckpointFailureReason`s).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeclineReason {
    /// The task is not ready yet (still restoring). Not counted.
    TaskNotReady,
    /// The task is closing or finished. Not counted.
    TaskClosing,
    /// One of the task's inputs cancelled the checkpoint. Not counted.
    CancellationBarrier,
    /// A barrier of a newer checkpoint overtook this one at the task. Not counted.
    Subsumed,
    /// One of the task's inputs ended before the barrier came. Not counted.
    InputEndOfStream,
    /// The synchronous part of the snapshot failed. Counted.
    SnapshotFailed(String),
    /// The asynchronous part (writing the state) failed. Counted.
    AsyncSnapshotFailed(String),
    /// Writing the state failed with an IO error. Counted.
    Io(String),
}

impl DeclineReason {
    /// Whether a checkpoint declined for this reason counts toward the tolerable failures.
    pub fn counts(&self) -> bool {
        matches!(self, DeclineReason::SnapshotFailed(_) | DeclineReason::AsyncSnapshotFailed(_) | DeclineReason::Io(_))
    }
}

impl fmt::Display for DeclineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclineReason::TaskNotReady => write!(f, "Checkpoint was declined (tasks not ready)"),
            DeclineReason::TaskClosing => write!(f, "Checkpoint was declined (task is closing)"),
            DeclineReason::CancellationBarrier => {
                write!(f, "Checkpoint was declined (task received cancellation from one of its inputs)")
            }
            DeclineReason::Subsumed => {
                write!(f, "Checkpoint was canceled because a barrier from newer checkpoint was received.")
            }
            DeclineReason::InputEndOfStream => {
                write!(f, "Checkpoint was declined because one input stream is finished")
            }
            DeclineReason::SnapshotFailed(cause) => write!(f, "Checkpoint was declined. {cause}"),
            DeclineReason::AsyncSnapshotFailed(cause) => write!(f, "Asynchronous task checkpoint failed. {cause}"),
            DeclineReason::Io(cause) => {
                write!(f, "An Exception occurred while triggering the checkpoint. IO-problem detected. {cause}")
            }
        }
    }
}

/// Why a checkpoint or savepoint failed (Flink's `CheckpointFailureReason`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// A task declined. Counted when the decline reason counts.
    Declined {
        /// The attempt that declined.
        execution: ExecutionId,
        /// Its reason.
        reason: DeclineReason,
    },
    /// Not completed within `execution.checkpointing.timeout`. Counted.
    Expired,
    /// A newer checkpoint completed first.
    Subsumed,
    /// An attempt the checkpoint waited for failed.
    TaskFailure {
        /// The attempt.
        execution: ExecutionId,
    },
    /// The job is failing over.
    JobFailover,
    /// Checkpointing was suspended (tasks left RUNNING, or a stop-with-savepoint began).
    Suspended,
    /// The coordinator shut down.
    Shutdown,
    /// Writing `_metadata` failed.
    FinalizeFailed(String),
    /// Refused before it started (savepoint requests only): not every task is RUNNING.
    TasksNotRunning,
    /// Refused before it started: the request queue is full.
    TooManyRequests,
    /// Refused before it started: no target directory and no default savepoint directory.
    NoSavepointDirectory,
}

impl FailureReason {
    /// Whether this failure counts toward `tolerable-failed-checkpoints`.
    pub fn counts(&self) -> bool {
        match self {
            FailureReason::Declined { reason, .. } => reason.counts(),
            FailureReason::Expired => true,
            _ => false,
        }
    }

    /// The attempt the failure came from, for failures a task reported (Flink's task-level
    /// failures); `None` for failures the coordinator decided on.
    pub fn execution(&self) -> Option<ExecutionId> {
        match self {
            FailureReason::Declined { execution, .. } | FailureReason::TaskFailure { execution } => Some(*execution),
            _ => None,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Declined { execution, reason } => write!(f, "{reason} (task {execution})"),
            FailureReason::Expired => write!(f, "Checkpoint expired before completing."),
            FailureReason::Subsumed => write!(f, "Checkpoint has been subsumed."),
            FailureReason::TaskFailure { execution } => write!(f, "Task has failed. (task {execution})"),
            FailureReason::JobFailover => write!(f, "FailoverRegion is restarting."),
            FailureReason::Suspended => write!(f, "Checkpoint Coordinator is suspending."),
            FailureReason::Shutdown => write!(f, "CheckpointCoordinator shutdown."),
            FailureReason::FinalizeFailed(cause) => write!(f, "Failure to finalize checkpoint. {cause}"),
            FailureReason::TasksNotRunning => write!(f, "Not all required tasks are currently running."),
            FailureReason::TooManyRequests => {
                write!(f, "The maximum number of queued checkpoint requests exceeded")
            }
            FailureReason::NoSavepointDirectory => write!(
                f,
                "No savepoint directory was given and no default is configured \
                 (execution.checkpointing.savepoint-dir)."
            ),
        }
    }
}

/// Consecutive counted failures since the last success (Flink's CheckpointFailureManager).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FailureCounter {
    tolerable: u32,
    count: u32,
    /// Ids counted since the last reset: each id counts once.
    counted: BTreeSet<CheckpointId>,
    last_success: Option<CheckpointId>,
}

impl FailureCounter {
    pub(super) fn new(tolerable: u32) -> FailureCounter {
        FailureCounter { tolerable, count: 0, counted: BTreeSet::new(), last_success: None }
    }

    /// A checkpoint completed.
    pub(super) fn on_success(&mut self, checkpoint: CheckpointId) {
        if self.last_success.is_none_or(|last| checkpoint > last) {
            self.last_success = Some(checkpoint);
            self.clear();
        }
    }

    /// A checkpoint failed; true when the job must fail now.
    pub(super) fn on_failure(&mut self, checkpoint: CheckpointId, reason: &FailureReason) -> bool {
        if self.last_success.is_some_and(|last| checkpoint <= last) {
            return false;
        }
        if reason.counts() && self.counted.insert(checkpoint) {
            self.count += 1;
        }
        if self.count > self.tolerable {
            self.clear();
            return true;
        }
        false
    }

    fn clear(&mut self) {
        self.count = 0;
        self.counted.clear();
    }

    pub(super) fn count(&self) -> u32 {
        self.count
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.count > self.tolerable || self.count as usize != self.counted.len() {
            return Err(format!("failure count {} with counted ids {:?}", self.count, self.counted));
        }
        let last = self.last_success;
        match self.counted.iter().find(|id| last.is_some_and(|last| **id <= last)) {
            Some(old) => Err(format!("counted failure {old} is not newer than the last success {last:?}")),
            None => Ok(()),
        }
    }
}

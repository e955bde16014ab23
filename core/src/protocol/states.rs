//! Flink's job status and execution state machines, with only legal transitions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A job's status, with Flink's names (`JobStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum JobStatus {
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
}

impl JobStatus {
    /// Every status, in Flink's order of the REST `timestamps` map.
    pub const ALL: [JobStatus; 11] = [
        JobStatus::Initializing,
        JobStatus::Created,
        JobStatus::Running,
        JobStatus::Failing,
        JobStatus::Failed,
        JobStatus::Cancelling,
        JobStatus::Canceled,
        JobStatus::Finished,
        JobStatus::Restarting,
        JobStatus::Suspended,
        JobStatus::Reconciling,
    ];

    /// Flink's spelling (`RUNNING`, `CANCELED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Initializing => "INITIALIZING",
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Suspended => "SUSPENDED",
            JobStatus::Reconciling => "RECONCILING",
        }
    }

    /// FINISHED, CANCELED and FAILED: the job will never run again.
    pub fn is_globally_terminal(self) -> bool {
        matches!(self, JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed)
    }

    /// Globally terminal or SUSPENDED (another JobManager may recover the job).
    pub fn is_terminal(self) -> bool {
        self.is_globally_terminal() || self == JobStatus::Suspended
    }

    /// Whether Flink's scheduler moves a job from `self` to `next`.
    #[allow(clippy::match_like_matches_macro)] // a transition table reads best as a table
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        if self.is_terminal() {
            return false;
        }
        match (self, next) {
            (_, Suspended) => true,
            (Initializing, Created | Failed | Canceled) => true,
            (Created, Running | Cancelling | Failing | Failed | Canceled) => true,
            (Running, Restarting | Failing | Cancelling | Finished | Failed | Canceled) => true,
            (Restarting, Running | Cancelling | Failing | Failed | Canceled) => true,
            (Failing, Failed | Restarting | Canceled | Cancelling) => true,
            (Cancelling, Canceled) => true,
            (Reconciling, Running | Failing | Cancelling | Failed | Canceled | Finished) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One attempt of one subtask, with Flink's names (`ExecutionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ExecutionState {
    Created,
    Scheduled,
    Deploying,
    Initializing,
    Running,
    Finished,
    Canceling,
    Canceled,
    Failed,
    Reconciling,
}

impl ExecutionState {
    /// Every state, in Flink's order of the REST `tasks` map.
    pub const ALL: [ExecutionState; 10] = [
        ExecutionState::Created,
        ExecutionState::Scheduled,
        ExecutionState::Deploying,
        ExecutionState::Initializing,
        ExecutionState::Running,
        ExecutionState::Finished,
        ExecutionState::Canceling,
        ExecutionState::Canceled,
        ExecutionState::Failed,
        ExecutionState::Reconciling,
    ];

    /// Flink's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionState::Created => "CREATED",
            ExecutionState::Scheduled => "SCHEDULED",
            ExecutionState::Deploying => "DEPLOYING",
            ExecutionState::Initializing => "INITIALIZING",
            ExecutionState::Running => "RUNNING",
            ExecutionState::Finished => "FINISHED",
            ExecutionState::Canceling => "CANCELING",
            ExecutionState::Canceled => "CANCELED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::Reconciling => "RECONCILING",
        }
    }

    /// FINISHED, CANCELED or FAILED.
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecutionState::Finished | ExecutionState::Canceled | ExecutionState::Failed)
    }

    /// Whether an attempt may move from `self` to `next`: forward along
    /// CREATED → SCHEDULED → DEPLOYING → INITIALIZING → RUNNING → FINISHED (steps may be skipped,
    /// as a report can overtake another), any non-terminal state to CANCELING, CANCELED or
    /// FAILED, and CANCELING only to a terminal state.
    pub fn can_become(self, next: ExecutionState) -> bool {
        use ExecutionState::*;
        if self.is_terminal() {
            return false;
        }
        let order = |state: ExecutionState| match state {
            Created => Some(0),
            Scheduled => Some(1),
            Deploying => Some(2),
            Initializing => Some(3),
            Running => Some(4),
            Finished => Some(5),
            _ => None,
        };
        match (self, next) {
            (Canceling, Canceled | Failed | Finished) => true,
            (Canceling, _) => false,
            (_, Canceling | Canceled | Failed) => true,
            (Reconciling, _) => next != Created,
            _ => matches!((order(self), order(next)), (Some(a), Some(b)) if b > a),
        }
    }
}

impl fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_job_statuses_never_change() {
        for from in [JobStatus::Finished, JobStatus::Canceled, JobStatus::Failed, JobStatus::Suspended] {
            for to in JobStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn job_restart_goes_through_restarting_back_to_running() {
        assert!(JobStatus::Running.can_become(JobStatus::Restarting));
        assert!(JobStatus::Restarting.can_become(JobStatus::Running));
        assert!(!JobStatus::Restarting.can_become(JobStatus::Finished));
        assert!(!JobStatus::Created.can_become(JobStatus::Finished));
    }

    #[test]
    fn executions_only_move_forward() {
        use ExecutionState::*;
        assert!(Created.can_become(Scheduled));
        assert!(Deploying.can_become(Running));
        assert!(!Running.can_become(Deploying));
        assert!(!Finished.can_become(Running));
        assert!(Canceling.can_become(Canceled));
        assert!(!Canceling.can_become(Running));
        assert!(Running.can_become(Failed));
    }
}

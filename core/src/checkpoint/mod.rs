//! Checkpoints: Flink's CheckpointCoordinator as a sans-IO sub-machine, its statistics, and the
//! byte format of checkpoint files.
//!
//! The pieces:
//! - [`CheckpointCoordinator`] (`coordinator.rs`, with `pending.rs` and `failures.rs`): triggers
//!   periodic checkpoints and user savepoints at the sources (and, once tasks finish, at the
//!   running tasks whose producers all finished), collects the running tasks'
//!   acknowledgements, asks the driver to persist `_metadata` and completes the checkpoint when it
//!   is durable, subsumes and discards old checkpoints, counts failures against
//!   `tolerable-failed-checkpoints`, and says what a restart restores from. The JobMaster owns
//!   it and drains it after its own outputs.
//! - [`stats`]: the numbers of Flink's `GET /jobs/:id/checkpoints` (counts, the newest
//!   [`stats::HISTORY_SIZE`] checkpoints, the latest of each kind, min/avg/max summaries).
//! - [`storage`]: pure encode/decode of `_metadata` and task state files (framed, versioned,
//!   checksummed), the directory layout, and the recovery rule that picks the newest valid
//!   retained checkpoint and reports every corrupt one it skipped. `_metadata` records every
//!   vertex's parallelism and max parallelism, so a job can restore it at another parallelism.
//! - [`rescale`]: which old subtasks' state files a new subtask reads after a change of
//!   parallelism, and its share of their non-keyed items.
//!
//! The types in this file are what the coordinator and its driver exchange.

mod codec;
mod coordinator;
mod failures;
mod final_trigger;
mod invariants;
mod pending;
pub mod rescale;
pub mod shared;
pub mod stats;
pub mod storage;

#[cfg(test)]
mod final_trigger_tests;
#[cfg(test)]
mod finished_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use coordinator::{CheckpointCoordinator, MAX_QUEUED_REQUESTS, RECENT_ABORTED_MAX};
pub use failures::{DeclineReason, EXCEEDED_TOLERABLE_FAILURES, FailureReason};

use crate::config::CheckpointingMode;
use crate::dataflow::{Barrier, BarrierKind};
use crate::ids::{CheckpointId, Hex128, JobId, SubtaskIndex, VertexId, VertexIndex};
use crate::plan::JobPlan;
use crate::plan::execution::ExecutionEdge;
use crate::protocol::{ExecutionId, JobStatus};
use crate::time::{Duration, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Where one task's snapshot of one checkpoint lies: a file in the checkpoint's directory.
///
/// The coordinator treats it as opaque apart from the size; the storage layer checks the size and
/// checksum when it reads the file back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskStateHandle {
    /// The file name, relative to the checkpoint's location (see [`storage::state_file_name`]).
    pub file: String,
    /// The file's length in bytes.
    pub size_bytes: u64,
    /// The crc32 in the file's trailer (see [`storage::frame_checksum`]).
    pub crc32: u32,
    /// Files of the job's shared directory the state references (incremental checkpoints),
    /// ascending; reference-counted over the retained checkpoints.
    pub shared: Vec<String>,
}

/// What a task measured while taking its snapshot, for the statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AckMetrics {
    /// How long the task's inputs were blocked aligning barriers.
    pub alignment_duration: Duration,
    /// Bytes processed during the alignment (Flink's `processed_data`).
    pub processed_bytes: u64,
    /// In-flight bytes written with an unaligned checkpoint (Flink's `persisted_data`).
    pub persisted_bytes: u64,
}

/// A user's savepoint request, as the REST API numbers it (`request-id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SavepointRequestId(pub Hex128);

impl fmt::Display for SavepointRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How the tasks treat the barriers of one checkpoint (Flink's `CheckpointOptions.forConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alignment {
    /// AT_LEAST_ONCE: no channel is blocked.
    AtLeastOnce,
    /// Exactly-once with aligned barriers (always for savepoints).
    Aligned,
    /// Unaligned from the start: barriers overtake buffered records.
    Unaligned,
    /// Aligned first, unaligned once the alignment has taken this long.
    AlignedWithTimeout(Duration),
}

impl Alignment {
    /// Flink's choice for a checkpoint of `kind` under this configuration.
    fn for_config(kind: BarrierKind, mode: CheckpointingMode, unaligned: bool, aligned_timeout: Duration) -> Alignment {
        match (mode, kind) {
            (CheckpointingMode::AtLeastOnce, _) => Alignment::AtLeastOnce,
            (_, BarrierKind::Savepoint { .. }) => Alignment::Aligned,
            _ if !unaligned => Alignment::Aligned,
            _ if aligned_timeout == Duration::ZERO => Alignment::Unaligned,
            _ => Alignment::AlignedWithTimeout(aligned_timeout),
        }
    }
}

/// One job vertex as checkpointing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointVertex {
    /// The vertex's position in the plan (what [`ExecutionId`]s carry).
    pub index: VertexIndex,
    /// The vertex's stable id (what checkpoint metadata is keyed by).
    pub id: VertexId,
    /// Subtasks of the vertex.
    pub parallelism: u32,
    /// Key groups of the vertex (for rescaling keyed state).
    pub max_parallelism: u32,
    /// Whether its subtasks are sources: barriers are injected there.
    pub is_source: bool,
}

impl CheckpointVertex {
    /// The vertices of a planned job.
    pub fn from_plan(plan: &JobPlan) -> Vec<CheckpointVertex> {
        let vertex = |v: &crate::plan::JobVertex| CheckpointVertex {
            index: v.index,
            id: v.id,
            parallelism: v.parallelism,
            max_parallelism: v.max_parallelism,
            is_source: v.is_source,
        };
        plan.vertices.iter().map(vertex).collect()
    }
}

/// What the coordinator starts from besides the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct CoordinatorSetup {
    /// The job.
    pub job: JobId,
    /// Every vertex of the job, at least one of them a source.
    pub vertices: Vec<CheckpointVertex>,
    /// The current attempt of every subtask (replaced by [`Input::TasksRunning`]).
    pub executions: Vec<ExecutionId>,
    /// The exchanges between the vertices (the execution graph's edges): a running task all of
    /// whose producers finished is where a barrier starts.
    pub edges: Vec<ExecutionEdge>,
    /// The id the next checkpoint gets: above every id ever used for this job (at least 1).
    pub checkpoint_id_next: CheckpointId,
    /// Completed checkpoints recovered from the HA store after a JobManager failover, any order.
    pub recovered: Vec<CompletedCheckpoint>,
    /// Seed of the generator for the initial trigger delay and savepoint names.
    pub seed: u64,
}

/// A checkpoint (or savepoint) whose every task acknowledged and whose `_metadata` is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub checkpoint: CheckpointId,
    /// Checkpoint or savepoint.
    pub kind: BarrierKind,
    /// Its directory (`<dir>/<job>/chk-<id>` or the savepoint's directory).
    pub location: String,
    /// When it was triggered.
    pub triggered_at: Time,
    /// When its metadata was persisted (for recovered ones: when it was triggered).
    pub completed_at: Time,
    /// Every task's state, by (vertex, subtask), so a new attempt of a subtask finds its own.
    pub states: BTreeMap<(VertexIndex, SubtaskIndex), TaskStateHandle>,
    /// The subtasks that had finished when it was triggered (no state): restored as finished.
    #[serde(default)]
    pub finished: BTreeSet<(VertexIndex, SubtaskIndex)>,
}

impl CompletedCheckpoint {
    /// Whether it is a savepoint (never subsumed nor discarded by the coordinator).
    pub fn is_savepoint(&self) -> bool {
        matches!(self.kind, BarrierKind::Savepoint { .. })
    }

    /// The state a new attempt of `(vertex, subtask)` restores, if that subtask had state.
    pub fn state_of(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Option<&TaskStateHandle> {
        self.states.get(&(vertex, subtask))
    }

    /// Whether `(vertex, subtask)` had finished when it was taken (a new attempt starts finished).
    pub fn is_finished(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> bool {
        self.finished.contains(&(vertex, subtask))
    }

    /// Bytes of state over all tasks.
    pub fn state_size_bytes(&self) -> u64 {
        self.states.values().map(|state| state.size_bytes).fold(0, u64::saturating_add)
    }

    /// Rebuilds a completed checkpoint from its decoded `_metadata` (JobManager recovery).
    ///
    /// Fails when the metadata names a vertex the job does not have, or a subtask beyond the
    /// vertex's parallelism (Flink refuses such state unless `allowNonRestoredState`).
    pub fn from_metadata(
        metadata: &storage::CheckpointMetadata,
        location: String,
        vertices: &[CheckpointVertex],
    ) -> Result<CompletedCheckpoint, storage::UnmatchedState> {
        let mut states = BTreeMap::new();
        for ((vertex_id, subtask), handle) in &metadata.tasks {
            let matching = vertices.iter().find(|v| v.id == *vertex_id && subtask.0 < v.parallelism);
            let Some(vertex) = matching else {
                return Err(storage::UnmatchedState { vertex: *vertex_id, subtask: *subtask });
            };
            states.insert((vertex.index, *subtask), handle.clone());
        }
        let mut finished = BTreeSet::new();
        for (vertex_id, subtask) in &metadata.finished {
            let matching = vertices.iter().find(|v| v.id == *vertex_id && subtask.0 < v.parallelism);
            let Some(vertex) = matching else {
                return Err(storage::UnmatchedState { vertex: *vertex_id, subtask: *subtask });
            };
            finished.insert((vertex.index, *subtask));
        }
        let kind = if metadata.is_savepoint {
            BarrierKind::Savepoint { stop: false, drain: false }
        } else {
            BarrierKind::Checkpoint
        };
        Ok(CompletedCheckpoint {
            checkpoint: metadata.checkpoint,
            kind,
            location,
            triggered_at: metadata.triggered_at,
            completed_at: metadata.triggered_at,
            states,
            finished,
        })
    }
}

/// What the coordinator is fed.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Time passed: fire the periodic trigger and expire overdue checkpoints.
    Tick,
    /// Every task is RUNNING, with these current attempts (one per subtask): checkpointing runs.
    /// The same as [`Input::TasksRunningOrFinished`] with none finished.
    TasksRunning(Vec<ExecutionId>),
    /// Every task is RUNNING or FINISHED, not all FINISHED (Flink's checkpoints after tasks
    /// finish): checkpointing runs. Barriers start at every running task whose producers all
    /// finished; only running tasks acknowledge; a checkpoint waiting for a task that finished
    /// without acknowledging is aborted. Sent again whenever another task finishes.
    TasksRunningOrFinished {
        /// The current attempt of every subtask.
        executions: Vec<ExecutionId>,
        /// Those of them that are FINISHED.
        finished: Vec<ExecutionId>,
    },
    /// Not every task is RUNNING any more: periodic checkpointing stops, pending ones are aborted.
    TasksNotRunning,
    /// A task took its snapshot.
    Acknowledge {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its state file; `None` for a task without state.
        state: Option<TaskStateHandle>,
        /// What it measured.
        metrics: AckMetrics,
    },
    /// A task could not take its snapshot.
    Decline {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: DeclineReason,
    },
    /// A task's input ended and it waits for its final checkpoint; it had taken checkpoints up
    /// to `checkpoint_latest`, so any newer one that reaches it is final for it. Once every task
    /// a checkpoint would start at waits, the final checkpoint is triggered without waiting for
    /// the next period. Reports of old attempts are ignored.
    FinalCheckpointAwaited {
        /// The attempt.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended.
        checkpoint_latest: Option<CheckpointId>,
    },
    /// An attempt failed: checkpoints it has not acknowledged are aborted (not counted).
    TaskFailed {
        /// The attempt.
        execution: ExecutionId,
    },
    /// The job fails over: every pending checkpoint is aborted (not counted).
    Failover,
    /// A user asks for a savepoint.
    TriggerSavepoint {
        /// The REST request it answers.
        request_id: SavepointRequestId,
        /// Target directory; `None` uses `execution.checkpointing.savepoint-dir`.
        target: Option<String>,
        /// Stop the job once it is taken (stop-with-savepoint).
        stop: bool,
        /// Fire every window before stopping.
        drain: bool,
    },
    /// The driver wrote `_metadata` of a checkpoint (after every state file, durably).
    MetadataPersisted {
        /// The checkpoint.
        checkpoint: CheckpointId,
    },
    /// The driver could not write `_metadata` (Flink's FINALIZE_CHECKPOINT_FAILURE).
    MetadataPersistFailed {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The error.
        error: String,
    },
    /// The job reached `job_status`: abort everything; on a globally terminal status discard
    /// retained checkpoints as `externalized-checkpoint-retention` says. Later inputs are ignored.
    Shutdown {
        /// The job's status.
        job_status: JobStatus,
    },
}

/// What the coordinator asks of its driver, or reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Inject a barrier at these tasks: every running source subtask, and every running task all
    /// of whose producer subtasks finished (where the barrier starts once its inputs ended).
    TriggerAtSources {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its trigger time (the barrier's `triggered_at`).
        timestamp: Time,
        /// Checkpoint or savepoint.
        kind: BarrierKind,
        /// How tasks align its barriers.
        alignment: Alignment,
        /// The directory the tasks write their state files into.
        location: String,
        /// The attempts to trigger at (sources, and tasks whose producers all finished).
        sources: Vec<ExecutionId>,
    },
    /// Write `bytes` as `<location>/_metadata` (last, after fsync of the state files), then
    /// answer [`Input::MetadataPersisted`] or [`Input::MetadataPersistFailed`].
    PersistMetadata {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its directory.
        location: String,
        /// The encoded [`storage::CheckpointMetadata`].
        bytes: Vec<u8>,
    },
    /// The checkpoint is complete: tasks may commit (exactly-once sinks do).
    NotifyComplete {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The attempts to tell.
        tasks: Vec<ExecutionId>,
    },
    /// The checkpoint was aborted: tasks drop what they prepared for it.
    NotifyAborted {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The attempts to tell.
        tasks: Vec<ExecutionId>,
    },
    /// Delete the checkpoint's directory and every state file in it. Never names a retained
    /// checkpoint or a completed savepoint. If a `PersistMetadata` for it is still being written,
    /// delete after that write ends.
    Discard {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its directory.
        location: String,
    },
    /// Delete these files of the job's shared directory (`location`): no retained checkpoint
    /// references them any more (see [`shared`]).
    DiscardSharedFiles {
        /// The shared directory.
        location: String,
        /// The files, sorted.
        files: Vec<String>,
    },
    /// Delete one task's state file that no checkpoint holds (a late or unknown acknowledgement).
    DiscardTaskState {
        /// The checkpoint it was written for.
        checkpoint: CheckpointId,
        /// That checkpoint's directory.
        location: String,
        /// The attempt that wrote it.
        execution: ExecutionId,
        /// The file.
        state: TaskStateHandle,
    },
    /// A checkpoint or savepoint completed (for statistics, REST and the trace).
    Completed(CompletedCheckpoint),
    /// A checkpoint or savepoint failed (for statistics, REST and the trace).
    Failed {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: FailureReason,
    },
    /// The answer to a [`Input::TriggerSavepoint`]: the savepoint's location, or why it failed.
    SavepointDone {
        /// The request.
        request_id: SavepointRequestId,
        /// The location, or the failure.
        result: Result<String, FailureReason>,
    },
    /// Checkpointing fails the job (tolerable failures exceeded, or a stop-with-savepoint failed
    /// on a task). The JobMaster handles it as a global failure.
    FailJob {
        /// Why, starting with Flink's message.
        reason: String,
    },
}

impl Output {
    /// The barrier a [`Output::TriggerAtSources`] asks the sources to inject.
    pub fn barrier(&self) -> Option<Barrier> {
        match self {
            Output::TriggerAtSources { checkpoint, timestamp, kind, alignment, .. } => Some(Barrier {
                checkpoint: *checkpoint,
                triggered_at: *timestamp,
                kind: *kind,
                unaligned: *alignment == Alignment::Unaligned,
            }),
            _ => None,
        }
    }
}

//! A checkpoint in progress (Flink's PendingCheckpoint): which tasks still owe an
//! acknowledgement, the states received, and the metrics summed for the statistics.

use super::{AckMetrics, CheckpointVertex, CompletedCheckpoint, SavepointRequestId, TaskStateHandle};
use crate::dataflow::BarrierKind;
use crate::ids::{CheckpointId, JobId, SubtaskIndex, VertexIndex};
use crate::protocol::ExecutionId;
use crate::time::{Duration, Time};
use std::collections::{BTreeMap, BTreeSet};

/// What an acknowledgement did to a pending checkpoint.
pub(super) enum Acknowledged {
    /// Recorded.
    Recorded,
    /// The attempt had acknowledged already: ignored, its state kept (it is the same file).
    Duplicate,
    /// The attempt is not one this checkpoint waits for: its state is to be discarded.
    Unknown(Option<TaskStateHandle>),
}

/// A checkpoint that was triggered and has neither completed nor been aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PendingCheckpoint {
    pub(super) checkpoint: CheckpointId,
    pub(super) kind: BarrierKind,
    /// The savepoint request it answers, for savepoints.
    pub(super) request: Option<SavepointRequestId>,
    pub(super) location: String,
    pub(super) triggered_at: Time,
    /// When it expires (`triggered_at` + timeout).
    pub(super) deadline: Time,
    /// Every attempt it waits for, sorted (who is notified of completion or abortion).
    pub(super) tasks: Vec<ExecutionId>,
    /// The subtasks that had finished when it was triggered: recorded as finished, no state.
    pub(super) finished: BTreeSet<(VertexIndex, SubtaskIndex)>,
    pub(super) not_acknowledged: BTreeSet<ExecutionId>,
    pub(super) acknowledged: BTreeMap<ExecutionId, Option<TaskStateHandle>>,
    /// Every task acknowledged and `PersistMetadata` went out; waiting for `MetadataPersisted`.
    pub(super) finalizing: bool,
    pub(super) state_size_bytes: u64,
    pub(super) processed_bytes: u64,
    pub(super) persisted_bytes: u64,
    pub(super) alignment_duration_max: Duration,
    pub(super) latest_ack_at: Option<Time>,
}

impl PendingCheckpoint {
    pub(super) fn new(
        checkpoint: CheckpointId,
        kind: BarrierKind,
        location: String,
        triggered_at: Time,
        deadline: Time,
        tasks: Vec<ExecutionId>,
    ) -> PendingCheckpoint {
        PendingCheckpoint {
            checkpoint,
            kind,
            request: None,
            location,
            triggered_at,
            deadline,
            not_acknowledged: tasks.iter().copied().collect(),
            tasks,
            finished: BTreeSet::new(),
            acknowledged: BTreeMap::new(),
            finalizing: false,
            state_size_bytes: 0,
            processed_bytes: 0,
            persisted_bytes: 0,
            alignment_duration_max: Duration::ZERO,
            latest_ack_at: None,
        }
    }

    pub(super) fn is_savepoint(&self) -> bool {
        matches!(self.kind, BarrierKind::Savepoint { .. })
    }

    /// A stop-with-savepoint (Flink's synchronous savepoint).
    pub(super) fn is_stop_savepoint(&self) -> bool {
        matches!(self.kind, BarrierKind::Savepoint { stop: true, .. })
    }

    pub(super) fn fully_acknowledged(&self) -> bool {
        self.not_acknowledged.is_empty()
    }

    pub(super) fn acknowledge(
        &mut self,
        now: Time,
        execution: ExecutionId,
        state: Option<TaskStateHandle>,
        metrics: AckMetrics,
    ) -> Acknowledged {
        if !self.not_acknowledged.remove(&execution) {
            if self.acknowledged.contains_key(&execution) {
                return Acknowledged::Duplicate;
            }
            return Acknowledged::Unknown(state);
        }
        let size = state.as_ref().map_or(0, |state| state.size_bytes);
        self.state_size_bytes = self.state_size_bytes.saturating_add(size);
        self.processed_bytes = self.processed_bytes.saturating_add(metrics.processed_bytes);
        self.persisted_bytes = self.persisted_bytes.saturating_add(metrics.persisted_bytes);
        self.alignment_duration_max = self.alignment_duration_max.max(metrics.alignment_duration);
        self.latest_ack_at = Some(now);
        self.acknowledged.insert(execution, state);
        Acknowledged::Recorded
    }

    /// Whether one of the received states is the file `file`.
    pub(super) fn holds_file(&self, file: &str) -> bool {
        self.acknowledged.values().flatten().any(|state| state.file == file)
    }

    /// The completed checkpoint this becomes once its metadata is persisted at `now`.
    pub(super) fn complete(&self, now: Time) -> CompletedCheckpoint {
        let states = self
            .acknowledged
            .iter()
            .filter_map(|(execution, state)| Some(((execution.vertex, execution.subtask), state.clone()?)))
            .collect();
        CompletedCheckpoint {
            checkpoint: self.checkpoint,
            kind: self.kind,
            location: self.location.clone(),
            triggered_at: self.triggered_at,
            completed_at: now,
            states,
            finished: self.finished.clone(),
        }
    }

    /// The `_metadata` of this checkpoint, from the states received.
    pub(super) fn metadata(
        &self,
        job: JobId,
        vertices: &BTreeMap<VertexIndex, CheckpointVertex>,
    ) -> super::storage::CheckpointMetadata {
        self.complete(self.triggered_at).metadata(job, vertices)
    }

    pub(super) fn check(&self, timeout: Duration) -> Result<(), String> {
        let id = self.checkpoint;
        let acknowledged: BTreeSet<ExecutionId> = self.acknowledged.keys().copied().collect();
        if !acknowledged.is_disjoint(&self.not_acknowledged) {
            return Err(format!("checkpoint {id}: a task is both acknowledged and awaited"));
        }
        let all: BTreeSet<ExecutionId> = acknowledged.union(&self.not_acknowledged).copied().collect();
        if all != self.tasks.iter().copied().collect::<BTreeSet<_>>() || !self.tasks.is_sorted() {
            return Err(format!("checkpoint {id}: acknowledged + awaited is not its task list"));
        }
        if self.finalizing != self.fully_acknowledged() {
            return Err(format!("checkpoint {id}: finalizing {} with {} awaited", self.finalizing, all.len()));
        }
        if self.deadline != self.triggered_at.after(timeout) {
            return Err(format!("checkpoint {id}: deadline {} is not trigger + timeout", self.deadline));
        }
        if self.tasks.iter().any(|task| self.finished.contains(&(task.vertex, task.subtask))) {
            return Err(format!("checkpoint {id}: waits for a subtask it records as finished"));
        }
        if self.request.is_some() != self.is_savepoint() {
            return Err(format!("checkpoint {id}: savepoint request {:?} for kind {:?}", self.request, self.kind));
        }
        let size: u64 = self.acknowledged.values().flatten().map(|state| state.size_bytes).fold(0, u64::saturating_add);
        if size != self.state_size_bytes {
            return Err(format!("checkpoint {id}: state size {} but states sum to {size}", self.state_size_bytes));
        }
        Ok(())
    }
}

impl CompletedCheckpoint {
    /// The `_metadata` of this checkpoint: every state keyed by the vertex's stable id.
    pub(super) fn metadata(
        &self,
        job: JobId,
        vertices: &BTreeMap<VertexIndex, CheckpointVertex>,
    ) -> super::storage::CheckpointMetadata {
        let tasks = self
            .states
            .iter()
            .filter_map(|((vertex, subtask), state)| Some(((vertices.get(vertex)?.id, *subtask), state.clone())))
            .collect();
        let finished =
            self.finished.iter().filter_map(|(vertex, subtask)| Some((vertices.get(vertex)?.id, *subtask))).collect();
        let vertices = vertices
            .values()
            .map(|v| {
                (
                    v.id,
                    super::storage::VertexMetadata { parallelism: v.parallelism, max_parallelism: v.max_parallelism },
                )
            })
            .collect();
        super::storage::CheckpointMetadata {
            job,
            checkpoint: self.checkpoint,
            is_savepoint: self.is_savepoint(),
            triggered_at: self.triggered_at,
            vertices,
            tasks,
            finished,
        }
    }
}

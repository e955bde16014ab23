//! Checkpoint statistics in the shape of Flink's `GET /jobs/:id/checkpoints`: counts, the newest
//! [`HISTORY_SIZE`] checkpoints (in progress, completed or failed), the latest completed,
//! savepoint, failed and restored, and min/avg/max summaries over every completed one.
//!
//! Invariants: `triggered = in_progress + completed + failed`; the history holds at most
//! [`HISTORY_SIZE`] entries, newest first, by strictly decreasing id.

use super::pending::PendingCheckpoint;
use super::{CompletedCheckpoint, FailureReason};
use crate::dataflow::BarrierKind;
use crate::ids::CheckpointId;
use crate::time::{Duration, Time};
use std::collections::VecDeque;

/// Checkpoints kept in the history (Flink's `web.checkpoints.history` default).
pub const HISTORY_SIZE: usize = 10;

/// Where a checkpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckpointStatus {
    /// Triggered, not yet completed or failed.
    InProgress,
    /// Completed.
    Completed,
    /// Failed (aborted).
    Failed,
}

impl CheckpointStatus {
    /// Flink's spelling (`IN_PROGRESS`, `COMPLETED`, `FAILED`).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

/// One checkpoint's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStatsEntry {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// Where it stands.
    pub status: CheckpointStatus,
    /// Checkpoint or savepoint.
    pub kind: BarrierKind,
    /// When it was triggered.
    pub triggered_at: Time,
    /// When the last acknowledgement came.
    pub latest_ack_at: Option<Time>,
    /// Trigger to completion or failure; in progress: trigger to latest acknowledgement.
    pub end_to_end_duration: Duration,
    /// Bytes of state acknowledged.
    pub state_size_bytes: u64,
    /// Bytes processed during alignment, summed over subtasks.
    pub processed_bytes: u64,
    /// In-flight bytes persisted (unaligned), summed over subtasks.
    pub persisted_bytes: u64,
    /// The longest alignment of any subtask.
    pub alignment_duration_max: Duration,
    /// Subtasks that acknowledged.
    pub acknowledged_subtasks: u32,
    /// Subtasks it waits for.
    pub total_subtasks: u32,
    /// Its directory (Flink's `external_path`).
    pub location: String,
    /// Whether its files were discarded (subsumed or failed).
    pub discarded: bool,
    /// When it failed.
    pub failed_at: Option<Time>,
    /// Why it failed.
    pub failure: Option<String>,
}

impl CheckpointStatsEntry {
    /// Whether it is a savepoint.
    pub fn is_savepoint(&self) -> bool {
        matches!(self.kind, BarrierKind::Savepoint { .. })
    }

    fn of_pending(pending: &PendingCheckpoint) -> CheckpointStatsEntry {
        let latest = pending.latest_ack_at.unwrap_or(pending.triggered_at);
        CheckpointStatsEntry {
            checkpoint: pending.checkpoint,
            status: CheckpointStatus::InProgress,
            kind: pending.kind,
            triggered_at: pending.triggered_at,
            latest_ack_at: pending.latest_ack_at,
            end_to_end_duration: latest.since(pending.triggered_at),
            state_size_bytes: pending.state_size_bytes,
            processed_bytes: pending.processed_bytes,
            persisted_bytes: pending.persisted_bytes,
            alignment_duration_max: pending.alignment_duration_max,
            acknowledged_subtasks: pending.acknowledged.len() as u32,
            total_subtasks: pending.tasks.len() as u32,
            location: pending.location.clone(),
            discarded: false,
            failed_at: None,
            failure: None,
        }
    }
}

/// How many checkpoints did what.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointCounts {
    /// Triggered (Flink's `total`).
    pub triggered: u64,
    /// In progress now.
    pub in_progress: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Restores from a checkpoint.
    pub restored: u64,
}

/// Minimum, maximum and average of a quantity over completed checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinMaxAvg {
    /// The smallest value (0 before any).
    pub min: u64,
    /// The largest value (0 before any).
    pub max: u64,
    /// Values counted.
    pub count: u64,
    sum: u128,
}

impl MinMaxAvg {
    fn add(&mut self, value: u64) {
        self.min = if self.count == 0 { value } else { self.min.min(value) };
        self.max = self.max.max(value);
        self.count += 1;
        self.sum += u128::from(value);
    }

    /// The average, rounded down (0 before any).
    pub fn avg(&self) -> u64 {
        if self.count == 0 { 0 } else { (self.sum / u128::from(self.count)) as u64 }
    }
}

/// Summaries over every completed checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSummary {
    /// State size in bytes.
    pub state_size_bytes: MinMaxAvg,
    /// End-to-end duration in microseconds.
    pub end_to_end_duration_micros: MinMaxAvg,
    /// Bytes processed during alignment.
    pub processed_bytes: MinMaxAvg,
    /// In-flight bytes persisted.
    pub persisted_bytes: MinMaxAvg,
}

/// The latest restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredStats {
    /// The checkpoint restored from.
    pub checkpoint: CheckpointId,
    /// When.
    pub restored_at: Time,
    /// Whether it was a savepoint.
    pub is_savepoint: bool,
    /// Its directory.
    pub location: String,
}

/// Everything the REST API shows about a job's checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Counts.
    pub counts: CheckpointCounts,
    /// The newest checkpoints, newest first.
    pub history: VecDeque<CheckpointStatsEntry>,
    /// The latest completed checkpoint (not savepoint).
    pub latest_completed: Option<CheckpointStatsEntry>,
    /// The latest completed savepoint.
    pub latest_savepoint: Option<CheckpointStatsEntry>,
    /// The latest failed checkpoint or savepoint.
    pub latest_failed: Option<CheckpointStatsEntry>,
    /// The latest restore.
    pub latest_restored: Option<RestoredStats>,
    /// Summaries over completed checkpoints and savepoints.
    pub summary: StatsSummary,
}

impl CheckpointStats {
    fn entry_mut(&mut self, checkpoint: CheckpointId) -> Option<&mut CheckpointStatsEntry> {
        self.history.iter_mut().find(|entry| entry.checkpoint == checkpoint)
    }

    pub(super) fn on_triggered(&mut self, pending: &PendingCheckpoint) {
        self.counts.triggered += 1;
        self.counts.in_progress += 1;
        self.history.push_front(CheckpointStatsEntry::of_pending(pending));
        self.history.truncate(HISTORY_SIZE);
    }

    /// Updates the in-progress entry in place (no allocation: this runs once per acknowledgement).
    pub(super) fn on_acknowledged(&mut self, pending: &PendingCheckpoint) {
        let Some(entry) = self.entry_mut(pending.checkpoint) else { return };
        let latest = pending.latest_ack_at.unwrap_or(pending.triggered_at);
        entry.latest_ack_at = pending.latest_ack_at;
        entry.end_to_end_duration = latest.since(pending.triggered_at);
        entry.state_size_bytes = pending.state_size_bytes;
        entry.processed_bytes = pending.processed_bytes;
        entry.persisted_bytes = pending.persisted_bytes;
        entry.alignment_duration_max = pending.alignment_duration_max;
        entry.acknowledged_subtasks = pending.acknowledged.len() as u32;
    }

    pub(super) fn on_completed(&mut self, pending: &PendingCheckpoint, completed: &CompletedCheckpoint) {
        self.counts.in_progress -= 1;
        self.counts.completed += 1;
        let mut entry = CheckpointStatsEntry::of_pending(pending);
        entry.status = CheckpointStatus::Completed;
        entry.end_to_end_duration = completed.completed_at.since(completed.triggered_at);
        self.summary.state_size_bytes.add(entry.state_size_bytes);
        self.summary.end_to_end_duration_micros.add(entry.end_to_end_duration.as_micros());
        self.summary.processed_bytes.add(entry.processed_bytes);
        self.summary.persisted_bytes.add(entry.persisted_bytes);
        if let Some(slot) = self.entry_mut(pending.checkpoint) {
            *slot = entry.clone();
        }
        if entry.is_savepoint() {
            self.latest_savepoint = Some(entry);
        } else {
            self.latest_completed = Some(entry);
        }
    }

    pub(super) fn on_failed(&mut self, pending: &PendingCheckpoint, now: Time, reason: &FailureReason) {
        self.counts.in_progress -= 1;
        self.counts.failed += 1;
        let mut entry = CheckpointStatsEntry::of_pending(pending);
        entry.status = CheckpointStatus::Failed;
        entry.end_to_end_duration = now.since(pending.triggered_at);
        entry.discarded = true;
        entry.failed_at = Some(now);
        entry.failure = Some(reason.to_string());
        if let Some(slot) = self.entry_mut(pending.checkpoint) {
            *slot = entry.clone();
        }
        self.latest_failed = Some(entry);
    }

    /// A completed checkpoint's files were discarded (subsumed, or at shutdown).
    pub(super) fn on_discarded(&mut self, checkpoint: CheckpointId) {
        if let Some(entry) = self.entry_mut(checkpoint) {
            entry.discarded = true;
        }
        if let Some(entry) = self.latest_completed.as_mut().filter(|entry| entry.checkpoint == checkpoint) {
            entry.discarded = true;
        }
    }

    pub(super) fn on_restored(&mut self, completed: &CompletedCheckpoint, now: Time) {
        self.counts.restored += 1;
        self.latest_restored = Some(RestoredStats {
            checkpoint: completed.checkpoint,
            restored_at: now,
            is_savepoint: completed.is_savepoint(),
            location: completed.location.clone(),
        });
    }

    pub(super) fn check(&self, pending_count: usize) -> Result<(), String> {
        let counts = self.counts;
        if counts.triggered != counts.in_progress + counts.completed + counts.failed {
            return Err(format!("stats counts do not add up: {counts:?}"));
        }
        if counts.in_progress != pending_count as u64 {
            return Err(format!("stats say {} in progress, {pending_count} pending", counts.in_progress));
        }
        if self.history.len() > HISTORY_SIZE {
            return Err(format!("history of {} entries", self.history.len()));
        }
        let ids: Vec<CheckpointId> = self.history.iter().map(|entry| entry.checkpoint).collect();
        if ids.windows(2).any(|pair| pair[0] <= pair[1]) {
            return Err(format!("history not newest first: {ids:?}"));
        }
        Ok(())
    }
}

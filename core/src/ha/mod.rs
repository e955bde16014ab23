//! High-availability records: what a new leader needs to take over (Flink's set), as pure data.
//!
//! - submitted job graphs (`JobGraphStore`): every job accepted and not yet ended;
//! - job results (`JobResultStore`): a job that ended is never run again;
//! - the checkpoint id counter per job (`CheckpointIDCounter`): a new leader's ids start above
//!   every id an earlier leader recorded as used;
//! - pointers to completed checkpoints (`CompletedCheckpointStore`): the newest is where a job
//!   resumes.
//!
//! A leading JobManager writes them as [`HaWrite`]s carrying its epoch; a [`RecordStore`]
//! refuses any write from an epoch below the highest it has seen (fencing), so a deposed
//! leader's late writes change nothing. [`HaRecords::recoveries`] is the one entry point from
//! records to resubmitted jobs, used by every driver.

#[cfg(test)]
mod tests;

use crate::ids::{CheckpointId, Epoch, JobId};
use crate::protocol::{JobStatus, JobSubmission};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many completed-checkpoint pointers are kept per job (the newest; older ones are only a
/// fallback when the newest is unreadable).
pub const POINTERS_PER_JOB: usize = 3;

/// One record write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HaRecord {
    /// A job was accepted: its submission, with its id set.
    JobGraph(Box<JobSubmission>),
    /// A job ended globally; its graph and checkpoint pointers are dropped with it.
    JobResult { job_id: JobId, status: JobStatus },
    /// The job's next checkpoint id: no id below it may be used again.
    CheckpointCounter { job_id: JobId, next: CheckpointId },
    /// A checkpoint completed (its `_metadata` is written) at `location`.
    CompletedCheckpoint { job_id: JobId, checkpoint: CheckpointId, location: String },
}

/// A record write from a leader in `epoch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaWrite {
    /// The writer's leader epoch.
    pub epoch: Epoch,
    /// What it writes.
    pub record: HaRecord,
}

/// A job a new leader resubmits.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// The submission, with `savepoint` set to its newest completed checkpoint if one exists.
    pub submission: JobSubmission,
    /// The lowest checkpoint id the job may use.
    pub checkpoint_id_floor: CheckpointId,
}

/// The records as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HaRecords {
    /// Accepted, unfinished jobs.
    pub jobs: BTreeMap<JobId, JobSubmission>,
    /// Ended jobs.
    pub results: BTreeMap<JobId, JobStatus>,
    /// Next checkpoint id per job.
    pub counters: BTreeMap<JobId, CheckpointId>,
    /// Completed checkpoints per job, oldest first, at most [`POINTERS_PER_JOB`].
    pub checkpoints: BTreeMap<JobId, Vec<(CheckpointId, String)>>,
}

impl HaRecords {
    /// Applies one record (no fencing here: see [`RecordStore`]).
    pub fn apply(&mut self, record: HaRecord) {
        match record {
            HaRecord::JobGraph(submission) => {
                let Some(job_id) = submission.job_id else { return };
                if !self.results.contains_key(&job_id) {
                    self.jobs.insert(job_id, *submission);
                }
            }
            HaRecord::JobResult { job_id, status } => {
                self.results.insert(job_id, status);
                self.jobs.remove(&job_id);
                self.counters.remove(&job_id);
                self.checkpoints.remove(&job_id);
            }
            HaRecord::CheckpointCounter { job_id, next } => {
                if self.jobs.contains_key(&job_id) {
                    let counter = self.counters.entry(job_id).or_insert(next);
                    *counter = (*counter).max(next); // the counter never goes back
                }
            }
            HaRecord::CompletedCheckpoint { job_id, checkpoint, location } => {
                if !self.jobs.contains_key(&job_id) {
                    return;
                }
                let pointers = self.checkpoints.entry(job_id).or_default();
                if pointers.last().is_none_or(|(newest, _)| *newest < checkpoint) {
                    pointers.push((checkpoint, location));
                    if pointers.len() > POINTERS_PER_JOB {
                        pointers.remove(0);
                    }
                }
                let next = CheckpointId(checkpoint.0.saturating_add(1));
                let counter = self.counters.entry(job_id).or_insert(next);
                *counter = (*counter).max(next);
            }
        }
    }

    /// The newest completed checkpoint of `job_id`.
    pub fn latest_checkpoint(&self, job_id: JobId) -> Option<&(CheckpointId, String)> {
        self.checkpoints.get(&job_id).and_then(|pointers| pointers.last())
    }

    /// Every unfinished job, in id order, to resume from its newest completed checkpoint with
    /// ids above every one recorded as used.
    pub fn recoveries(&self) -> Vec<Recovery> {
        self.jobs
            .iter()
            .filter(|(job_id, _)| !self.results.contains_key(job_id))
            .map(|(job_id, submission)| {
                let mut submission = submission.clone();
                submission.job_id = Some(*job_id);
                let latest = self.latest_checkpoint(*job_id);
                if let Some((_, location)) = latest {
                    submission.savepoint = Some(location.clone());
                }
                let above_latest = latest.map_or(CheckpointId(1), |(id, _)| CheckpointId(id.0.saturating_add(1)));
                let counter = self.counters.get(job_id).copied().unwrap_or(CheckpointId(1));
                Recovery { submission, checkpoint_id_floor: counter.max(above_latest) }
            })
            .collect()
    }
}

/// A write from below the highest epoch seen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write from leader epoch {write} refused: epoch {seen} has been seen")]
pub struct StaleEpoch {
    /// The writer's epoch.
    pub write: Epoch,
    /// The highest epoch the store knows.
    pub seen: Epoch,
}

/// A fenced record store: the records plus the highest epoch seen (a lease grant or a write).
/// Serializable, so a backend that keeps it in a file fences with this very logic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordStore {
    records: HaRecords,
    epoch_seen: Epoch,
}

impl RecordStore {
    /// An empty store.
    pub fn new() -> RecordStore {
        RecordStore::default()
    }

    /// The records.
    pub fn records(&self) -> &HaRecords {
        &self.records
    }

    /// The highest epoch seen.
    pub fn epoch_seen(&self) -> Epoch {
        self.epoch_seen
    }

    /// A lease was granted in `epoch`: writes from below it are refused from now on.
    pub fn observe_epoch(&mut self, epoch: Epoch) {
        self.epoch_seen = self.epoch_seen.max(epoch);
    }

    /// Applies `write` unless its epoch is below the highest seen.
    pub fn apply(&mut self, write: HaWrite) -> Result<(), StaleEpoch> {
        if write.epoch < self.epoch_seen {
            return Err(StaleEpoch { write: write.epoch, seen: self.epoch_seen });
        }
        self.epoch_seen = write.epoch;
        self.records.apply(write.record);
        Ok(())
    }
}

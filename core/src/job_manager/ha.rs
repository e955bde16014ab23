//! The JobManager's side of the HA records: it writes what a successor needs (job graphs,
//! results, checkpoint id counters, completed checkpoint pointers) as [`HaWrite`]s in its epoch,
//! and a new leader's JobManager resumes every unfinished job from the records.
//!
//! Writes are found by comparing the roles' state after each input with what was written
//! before, so no role needs to know about HA. A driver carries out the writes before it sends
//! the step's envelopes, so a record is on its way before anything it describes is visible.

use super::{JobManager, RECOVERY_CLIENT};
use crate::ha::{HaRecord, HaRecords, HaWrite};
use crate::ids::{CheckpointId, JobId};
use crate::protocol::{DispatcherMessage, Envelope, JobSubmission, Message};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What was written so far, and what waits for the driver.
#[derive(Debug, Default)]
pub(super) struct HaTracker {
    writes: VecDeque<HaWrite>,
    /// Jobs whose graph is recorded.
    jobs: BTreeSet<JobId>,
    /// Jobs whose result is recorded.
    results: BTreeSet<JobId>,
    counters: BTreeMap<JobId, CheckpointId>,
    pointers: BTreeMap<JobId, CheckpointId>,
    /// The submission of the input being handled, until the Dispatcher gave it an id.
    pub(super) submission: Option<JobSubmission>,
    /// Lowest checkpoint ids of recovered jobs, applied when their JobMasters start.
    pub(super) floors: BTreeMap<JobId, CheckpointId>,
}

impl JobManager {
    /// Resumes every unfinished job of `records` (a new leader's first act) and from now on
    /// writes the records a successor needs; see [`JobManager::poll_ha_write`].
    pub fn recover(&mut self, now: Time, records: &HaRecords) {
        let tracker = self.ha.get_or_insert_with(Default::default);
        tracker.results.extend(records.results.keys().copied());
        tracker.counters.extend(records.counters.iter().map(|(job, id)| (*job, *id)));
        for (job_id, pointers) in &records.checkpoints {
            if let Some((newest, _)) = pointers.last() {
                tracker.pointers.insert(*job_id, *newest);
            }
        }
        let mut submissions = Vec::new();
        for recovery in records.recoveries() {
            let Some(job_id) = recovery.submission.job_id else { continue };
            tracker.jobs.insert(job_id);
            tracker.floors.insert(job_id, recovery.checkpoint_id_floor);
            submissions.push(recovery.submission);
        }
        for submission in submissions {
            let submit = DispatcherMessage::Submit { request: 0, submission: Box::new(submission) };
            let envelope = Envelope {
                from: RECOVERY_CLIENT,
                to: crate::protocol::Address::Dispatcher,
                epoch: self.epoch,
                message: Message::Dispatcher(submit),
            };
            self.deliver(now, envelope);
            self.pump(now);
        }
        self.track_ha();
    }

    /// The next record write for the HA store (only after [`JobManager::recover`]).
    pub fn poll_ha_write(&mut self) -> Option<HaWrite> {
        self.ha.as_mut().and_then(|tracker| tracker.writes.pop_front())
    }

    /// Queues writes for whatever changed since the last look.
    pub(super) fn track_ha(&mut self) {
        let Some(tracker) = &mut self.ha else { return };
        let epoch = self.epoch;
        let mut records = Vec::new();
        for (job_id, job) in self.dispatcher.jobs() {
            if job.status.is_globally_terminal() {
                if tracker.results.insert(*job_id) {
                    records.push(HaRecord::JobResult { job_id: *job_id, status: job.status });
                }
                continue;
            }
            if !tracker.jobs.contains(job_id)
                && let Some(mut submission) = tracker.submission.take()
            {
                tracker.jobs.insert(*job_id);
                submission.job_id = Some(*job_id);
                records.push(HaRecord::JobGraph(Box::new(submission)));
            }
        }
        tracker.submission = None;
        for (job_id, job_master) in &self.job_masters {
            let Some(coordinator) = job_master.checkpoint_coordinator() else { continue };
            if let Some(completed) = coordinator.latest_completed()
                && tracker.pointers.get(job_id).is_none_or(|known| *known < completed.checkpoint)
            {
                tracker.pointers.insert(*job_id, completed.checkpoint);
                let location = completed.location.clone();
                records.push(HaRecord::CompletedCheckpoint {
                    job_id: *job_id,
                    checkpoint: completed.checkpoint,
                    location,
                });
            }
            let next = coordinator.checkpoint_id_next();
            if tracker.counters.get(job_id).is_none_or(|known| *known < next) {
                tracker.counters.insert(*job_id, next);
                records.push(HaRecord::CheckpointCounter { job_id: *job_id, next });
            }
        }
        tracker.writes.extend(records.into_iter().map(|record| HaWrite { epoch, record }));
    }
}

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
use crate::protocol::{
    DispatcherMessage, Envelope, JobSubmission, Message, Output, StorageRequest, TaskExecutorMessage,
};
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
    /// Checkpoint deletions held until the store acknowledged a pointer to a checkpoint at least
    /// as new as the threshold (`None` until the step that produced them ends): a successor must
    /// never find its newest pointer naming a directory already deleted.
    pub(super) deletes: VecDeque<(JobId, Option<CheckpointId>, StorageRequest)>,
    /// Completion notifications held until their checkpoint's pointer is acknowledged.
    notifications: VecDeque<(JobId, CheckpointId, Envelope)>,
    /// The newest acknowledged pointer per job.
    acknowledged: BTreeMap<JobId, CheckpointId>,
}

/// How many deletions wait for acknowledgements at most; past it the oldest is dropped (a
/// directory leaks rather than a pointer dangles).
const HELD_DELETES_MAX: usize = 4096;

impl HaTracker {
    /// Holds what must wait for the store: checkpoint deletions, and completion notifications
    /// (sinks commit on them), until the pointer to that checkpoint is acknowledged. A leader
    /// cut off from the store thus commits nothing a successor would not resume after.
    pub(super) fn intercept(&mut self, output: Output) -> Option<Output> {
        match output {
            Output::Storage(StorageRequest::Delete { job_id, location }) => {
                self.hold(job_id, StorageRequest::Delete { job_id, location });
                None
            }
            Output::Send(envelope) => match &envelope.message {
                Message::TaskExecutor(TaskExecutorMessage::NotifyCheckpoint {
                    execution,
                    checkpoint,
                    complete: true,
                }) if self.acknowledged.get(&execution.job).is_none_or(|known| known < checkpoint) => {
                    if self.notifications.len() >= HELD_DELETES_MAX {
                        self.notifications.pop_front();
                    }
                    self.notifications.push_back((execution.job, *checkpoint, envelope));
                    None
                }
                _ => Some(Output::Send(envelope)),
            },
            other => Some(other),
        }
    }

    /// Holds a deletion of `job_id`'s until a pointer write makes it safe.
    pub(super) fn hold(&mut self, job_id: JobId, request: StorageRequest) {
        if self.deletes.len() >= HELD_DELETES_MAX {
            self.deletes.pop_front();
        }
        self.deletes.push_back((job_id, None, request));
    }
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

    /// The store acknowledged `write`: deletions it makes safe go to the driver.
    pub fn ha_acknowledged(&mut self, write: &HaWrite) {
        let Some(tracker) = &mut self.ha else { return };
        let (job, newest) = match &write.record {
            HaRecord::CompletedCheckpoint { job_id, checkpoint, .. } => (*job_id, Some(*checkpoint)),
            HaRecord::JobResult { job_id, .. } => (*job_id, None),
            _ => return,
        };
        if let Some(newest) = newest {
            let known = tracker.acknowledged.entry(job).or_insert(newest);
            *known = (*known).max(newest);
            let mut waiting = VecDeque::new();
            for (job_id, checkpoint, mut envelope) in std::mem::take(&mut tracker.notifications) {
                if job_id == job && checkpoint <= newest {
                    envelope.epoch = self.epoch;
                    self.outputs.push_back(Output::Send(envelope));
                } else {
                    waiting.push_back((job_id, checkpoint, envelope));
                }
            }
            tracker.notifications = waiting;
        }
        let mut kept = VecDeque::new();
        for (job_id, threshold, request) in std::mem::take(&mut tracker.deletes) {
            let safe = job_id == job && threshold.is_some() && newest.is_none_or(|newest| threshold <= Some(newest));
            if safe {
                self.outputs.push_back(Output::Storage(request));
            } else {
                kept.push_back((job_id, threshold, request));
            }
        }
        tracker.deletes = kept;
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
        for (job_id, threshold, _) in tracker.deletes.iter_mut().filter(|(_, threshold, _)| threshold.is_none()) {
            let newest = self.job_masters.get(job_id).and_then(|master| master.checkpoint_coordinator());
            let newest = newest.and_then(|coordinator| coordinator.latest_completed()).map(|c| c.checkpoint);
            *threshold = Some(newest.or(tracker.pointers.get(job_id).copied()).unwrap_or(CheckpointId(0)));
        }
        tracker.writes.extend(records.into_iter().map(|record| HaWrite { epoch, record }));
    }
}

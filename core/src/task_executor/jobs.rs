//! The TaskExecutor's side of the JobMaster connections: slot requests and offers, tasks, and
//! the release of a job's slots when its JobMaster is lost or lets them go.

use super::TaskExecutor;
use super::slots::TASKS_PER_SLOT_MAX;
use crate::checkpoint::DeclineReason;
use crate::dataflow::Barrier;
use crate::ids::{AllocationId, CheckpointId, JobId, SlotIndex};
use crate::protocol::{
    Address, CheckpointOutcome, ExecutionId, ExecutionState, JobMasterMessage, Message, Output, ResourceManagerMessage,
    SlotOffer, TaskCheckpointReport, TaskCommand, TaskDeployment, TaskReport,
};
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a deployment was refused; the text goes to the JobMaster with the FAILED state.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
enum DeployError {
    #[error("allocation {allocation} is not held by this TaskManager")]
    UnknownAllocation { allocation: AllocationId },
    #[error("allocation {allocation} belongs to job {owner}, not to job {job}")]
    ForeignAllocation { allocation: AllocationId, owner: JobId, job: JobId },
    #[error("allocation {allocation} has not been accepted by the JobMaster of job {job}")]
    NotAccepted { allocation: AllocationId, job: JobId },
    #[error("execution {execution} already runs in slot {slot} under another allocation")]
    DuplicateExecution { execution: ExecutionId, slot: SlotIndex },
    #[error("slot {slot} already holds {TASKS_PER_SLOT_MAX} tasks, the most one slot holds")]
    SlotFull { slot: SlotIndex },
}

impl TaskExecutor {
    pub(super) fn on_request_slot(&mut self, slot: SlotIndex, job: JobId, allocation: AllocationId) {
        let accepted = match self.slots.get(slot) {
            None if self.slots.is_free(slot) && self.slots.find(allocation).is_none() => {
                self.slots.allocate(slot, allocation, job, self.now);
                self.job_masters_heard_at.entry(job).or_insert(self.now);
                self.offers_due.insert(slot);
                true
            }
            Some(held) if held.id == allocation && held.job == job => {
                // A duplicate request: accept again, and offer again if still unanswered.
                if !held.accepted {
                    self.offers_due.insert(slot);
                }
                true
            }
            _ => false, // Out of range, held by another allocation, or the allocation is elsewhere.
        };
        let message = ResourceManagerMessage::SlotRequestResult { resource_id: self.resource_id, allocation, accepted };
        self.send(Address::ResourceManager, Message::ResourceManager(message));
    }

    pub(super) fn on_job_master_heartbeat(&mut self, job: JobId) {
        let allocations = self.slots.slots_of(job).into_iter().filter_map(|slot| self.slots.get(slot)).map(|h| h.id);
        let live = self.slots.tasks().into_iter().filter(|(execution, _)| execution.job == job);
        let executions = live.chain(self.ended.of_job(job)).collect();
        let message = JobMasterMessage::TaskExecutorHeartbeat {
            resource_id: self.resource_id,
            allocations: allocations.collect(),
            executions,
        };
        self.send(Address::JobMaster(job), Message::JobMaster(message));
    }

    pub(super) fn on_slot_offer_result(&mut self, job: JobId, accepted: &[AllocationId], rejected: &[AllocationId]) {
        for allocation in accepted {
            let Some(slot) = self.slots.find(*allocation) else { continue };
            if let Some(held) = self.slots.get_mut(slot).filter(|held| held.job == job) {
                held.accepted = true;
            }
        }
        for allocation in rejected {
            let Some(slot) = self.slots.find(*allocation) else { continue };
            // An accepted slot is given back only by FreeSlot; a rejection of it is stale.
            if self.slots.get(slot).is_some_and(|held| held.job == job && !held.accepted) {
                self.free_slot(slot);
            }
        }
    }

    pub(super) fn on_deploy_task(&mut self, deployment: TaskDeployment) {
        let execution = deployment.execution;
        let running_here = self.slots.task(execution).and_then(|(slot, _)| self.slots.get(slot));
        if running_here.is_some_and(|held| held.id == deployment.allocation) || self.ended.get(execution).is_some() {
            return; // A duplicate of a deployment already started (or ended) here.
        }
        self.activate_for_deployment(&deployment);
        match self.check_deployment(&deployment) {
            Ok(slot) => {
                self.slots.add_task(slot, execution);
                self.outputs.push_back(Output::Task(TaskCommand::Start(deployment)));
            }
            Err(error) => {
                if self.slots.task(execution).is_none() {
                    // So that a late copy of this deployment cannot start what the JobMaster saw fail.
                    self.ended.record(execution, ExecutionState::Failed);
                }
                self.report_to_job_master(execution, ExecutionState::Failed, Some(error.to_string()), None);
            }
        }
    }

    /// A deployment into a slot offered to its job proves the JobMaster accepted the offer, even
    /// if the acceptance itself is still on its way (Flink's `tryMarkSlotActive`).
    fn activate_for_deployment(&mut self, deployment: &TaskDeployment) {
        let Some(slot) = self.slots.find(deployment.allocation) else { return };
        if let Some(held) = self.slots.get_mut(slot).filter(|held| held.job == deployment.execution.job) {
            held.accepted = true;
        }
    }

    /// The slot a deployment may go into: its job's accepted allocation, with room left.
    fn check_deployment(&self, deployment: &TaskDeployment) -> Result<SlotIndex, DeployError> {
        let allocation = deployment.allocation;
        let job = deployment.execution.job;
        if let Some((slot, _)) = self.slots.task(deployment.execution) {
            return Err(DeployError::DuplicateExecution { execution: deployment.execution, slot });
        }
        let slot = self.slots.find(allocation).ok_or(DeployError::UnknownAllocation { allocation })?;
        let held = self.slots.get(slot).ok_or(DeployError::UnknownAllocation { allocation })?;
        if held.job != job {
            return Err(DeployError::ForeignAllocation { allocation, owner: held.job, job });
        }
        if !held.accepted {
            return Err(DeployError::NotAccepted { allocation, job });
        }
        if held.tasks.len() >= TASKS_PER_SLOT_MAX {
            return Err(DeployError::SlotFull { slot });
        }
        Ok(slot)
    }

    pub(super) fn on_task_report(&mut self, report: TaskReport) {
        use ExecutionState::*;
        let TaskReport { execution, state, error, unreadable_checkpoint } = report;
        if !matches!(state, Initializing | Running | Finished | Canceled | Failed) {
            return; // Not a state a running task reports.
        }
        let Some((_, previous)) = self.slots.task(execution) else {
            return; // A task this TaskExecutor let go of (its slot was freed).
        };
        if !previous.can_become(state) {
            return; // Overtaken by a later state (a cancel, or a report that came first).
        }
        self.slots.set_task_state(execution, state);
        if state.is_terminal() {
            self.ended.record(execution, state);
        }
        self.report_to_job_master(execution, state, error, unreadable_checkpoint);
    }

    pub(super) fn on_cancel_task(&mut self, execution: ExecutionId) {
        match self.slots.task(execution) {
            Some((_, ExecutionState::Canceling)) => {} // Already being canceled.
            Some(_) => {
                self.slots.set_task_state(execution, ExecutionState::Canceling);
                self.outputs.push_back(Output::Task(TaskCommand::Cancel(execution)));
            }
            None => {
                // Not here (any more, or not yet): so that a late deployment does not start it.
                let state = self.ended.get(execution).unwrap_or(ExecutionState::Canceled);
                self.ended.record(execution, state);
                self.report_to_job_master(execution, state, None, None);
            }
        }
    }

    pub(super) fn on_free_slot(&mut self, job: JobId, allocation: AllocationId) {
        let Some(slot) = self.slots.find(allocation) else { return };
        if self.slots.get(slot).is_some_and(|held| held.job == job) {
            self.free_slot(slot);
        }
    }

    /// Lets go of everything of `job`: its JobMaster is lost or disconnected.
    pub(super) fn release_job(&mut self, job: JobId) {
        for slot in self.slots.slots_of(job) {
            self.free_slot(slot);
        }
        debug_assert!(!self.job_masters_heard_at.contains_key(&job));
    }

    /// Frees `slot`: cancels its tasks, forgets them, and tells the ResourceManager.
    fn free_slot(&mut self, slot: SlotIndex) {
        let held = self.slots.free(slot);
        for (execution, state) in held.tasks {
            if state != ExecutionState::Canceling {
                self.outputs.push_back(Output::Task(TaskCommand::Cancel(execution)));
            }
            self.ended.record(execution, ExecutionState::Canceled);
        }
        self.offers_due.remove(&slot);
        if self.slots.slots_of(held.job).is_empty() {
            self.job_masters_heard_at.remove(&held.job);
        }
        let message = ResourceManagerMessage::SlotFreed { resource_id: self.resource_id, slot, allocation: held.id };
        self.send(Address::ResourceManager, Message::ResourceManager(message));
    }

    /// A barrier for a source task goes to the task's driver; a task that is not running here
    /// declines at once, so the checkpoint is aborted instead of waiting for its timeout.
    pub(super) fn on_trigger_checkpoint(&mut self, execution: ExecutionId, barrier: Barrier, location: String) {
        match self.slots.task(execution) {
            Some((_, ExecutionState::Running)) => {
                let command = TaskCommand::TriggerCheckpoint { execution, barrier, location };
                self.outputs.push_back(Output::Task(command));
            }
            _ => {
                let report = TaskCheckpointReport {
                    execution,
                    checkpoint: barrier.checkpoint,
                    outcome: CheckpointOutcome::Declined(DeclineReason::TaskNotReady),
                };
                self.on_checkpoint_report(report);
            }
        }
    }

    /// A task's acknowledgement or decline goes on to its JobMaster.
    pub(super) fn on_checkpoint_report(&mut self, report: TaskCheckpointReport) {
        let TaskCheckpointReport { execution, checkpoint, outcome } = report;
        let message = match outcome {
            CheckpointOutcome::Acknowledged { state, metrics } => {
                JobMasterMessage::AcknowledgeCheckpoint { execution, checkpoint, state, metrics }
            }
            CheckpointOutcome::Declined(reason) => {
                JobMasterMessage::DeclineCheckpoint { execution, checkpoint, reason }
            }
        };
        self.send(Address::JobMaster(execution.job), Message::JobMaster(message));
    }

    /// A running task's report that it waits for its final checkpoint goes on to its JobMaster;
    /// one of a task no longer running here is stale and dropped.
    pub(super) fn on_final_checkpoint_awaited(
        &mut self,
        execution: ExecutionId,
        checkpoint_latest: Option<CheckpointId>,
    ) {
        if !matches!(self.slots.task(execution), Some((_, ExecutionState::Running))) {
            return;
        }
        let message = JobMasterMessage::FinalCheckpointAwaited { execution, checkpoint_latest };
        self.send(Address::JobMaster(execution.job), Message::JobMaster(message));
    }

    fn report_to_job_master(
        &mut self,
        execution: ExecutionId,
        state: ExecutionState,
        error: Option<String>,
        unreadable_checkpoint: Option<CheckpointId>,
    ) {
        let unreadable_checkpoint = unreadable_checkpoint.filter(|_| state == ExecutionState::Failed);
        let message = JobMasterMessage::TaskStateChanged { execution, state, error, unreadable_checkpoint };
        self.send(Address::JobMaster(execution.job), Message::JobMaster(message));
    }

    /// Releases every job whose JobMaster has been silent for the heartbeat timeout.
    pub(super) fn check_job_masters(&mut self) {
        let timeout = self.config.heartbeat_timeout;
        let lost: Vec<JobId> = self
            .job_masters_heard_at
            .iter()
            .filter(|(_, heard_at)| heard_at.after(timeout) <= self.now)
            .map(|(job, _)| *job)
            .collect();
        for job in lost {
            self.release_job(job);
        }
    }

    /// Frees slots allocated longer than the slot timeout without their JobMaster accepting them.
    pub(super) fn check_slot_timeouts(&mut self) {
        let timeout = self.config.slot_timeout;
        let expired: Vec<SlotIndex> = self
            .slots
            .allocated()
            .filter(|(_, held)| !held.accepted && held.allocated_at.after(timeout) <= self.now)
            .map(|(slot, _)| slot)
            .collect();
        for slot in expired {
            self.free_slot(slot);
        }
    }

    /// Offers again every slot whose last offer has gone unanswered for the retry interval.
    pub(super) fn check_offer_retries(&mut self) {
        let retry = self.config.offer_retry_interval;
        // Fault point: offers not yet accepted are sent again at once (a retry before its time).
        let retry_now = crate::buggify::fires("task_executor.offer.retry_early", 0.05);
        for (slot, held) in self.slots.allocated() {
            let offered_at = held.offered_at.unwrap_or(held.allocated_at);
            if !held.accepted && (retry_now || offered_at.after(retry) <= self.now) {
                self.offers_due.insert(slot);
            }
        }
    }

    /// Sends the offers of this step, one `OfferSlots` per job.
    pub(super) fn flush_offers(&mut self) {
        let mut offers: BTreeMap<JobId, Vec<SlotOffer>> = BTreeMap::new();
        for slot in std::mem::take(&mut self.offers_due) {
            let Some(held) = self.slots.get_mut(slot) else { continue };
            if held.accepted {
                continue;
            }
            held.offered_at = Some(self.now);
            offers.entry(held.job).or_default().push(SlotOffer { allocation: held.id, slot });
        }
        for (job, offers) in offers {
            let data_address = self.config.data_address.clone();
            let message = JobMasterMessage::OfferSlots { resource_id: self.resource_id, offers, data_address };
            self.send(Address::JobMaster(job), Message::JobMaster(message));
        }
    }
}

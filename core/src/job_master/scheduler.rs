//! Scheduling, deployment, cancellation, failover and the end of the job.
//!
//! Every execution state change goes through [`JobMaster::transition`], which keeps the slot
//! pool's waiting counts, the SCHEDULED set and the pending restart's live count in step and emits
//! the event; nothing else changes an execution's state.

use super::JobMaster;
use super::exceptions::{ExceptionEntry, truncate};
use super::executions::Location;
use super::restart::RestartDecision;
use super::slots::{HeldSlot, SlotPosition};
use crate::ids::{AllocationId, ResourceId, SubtaskIndex};
use crate::protocol::{
    Event, ExecutionState, JobStatus, Placement, ResourceManagerMessage, TaskDeployment, TaskExecutorMessage,
    TaskManagerLocation,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Longest failure text taken from a peer, in bytes.
const FAILURE_TEXT_MAX_BYTES: usize = super::exceptions::EXCEPTION_TEXT_MAX_BYTES;

/// Executions that failed together, and why.
pub(super) struct Failure {
    /// Ordinals of the executions, already FAILED.
    pub failed: Vec<u64>,
    /// The failure's text.
    pub cause: String,
    /// Where the failure happened, if on a TaskManager.
    pub location: Option<ResourceId>,
}

impl JobMaster {
    /// INITIALIZING → CREATED → RUNNING, and every subtask SCHEDULED with its slot requested.
    pub(super) fn start(&mut self) {
        self.set_status(JobStatus::Created);
        self.set_status(JobStatus::Running);
        for ordinal in 0..self.executions.len() {
            self.transition(ordinal, ExecutionState::Scheduled);
        }
        self.try_deploy();
        self.check_job_done();
    }

    /// The shared slot that hosts `ordinal`.
    pub(super) fn position_of(&self, ordinal: u64) -> SlotPosition {
        let subtask = self.executions.subtask(ordinal);
        self.pool.position(self.vertex_group[subtask.vertex.index()], subtask.subtask.0)
    }

    /// The executions (ordinals) that shared slot `position` hosts: one per vertex of its group.
    pub(super) fn ordinals_at(&self, position: SlotPosition) -> Vec<u64> {
        let (group, index) = self.pool.group_of(position);
        self.group_vertices[group]
            .iter()
            .filter_map(|&vertex| self.executions.ordinal_at(vertex, SubtaskIndex(index)))
            .collect()
    }

    /// Flink's task name: `vertex name (i/n)`, counting subtasks from 1.
    pub(super) fn task_name(&self, ordinal: u64) -> String {
        let subtask = self.executions.subtask(ordinal);
        let vertex = self.plan.vertex(subtask.vertex);
        format!("{} ({}/{})", vertex.name, subtask.subtask.0 + 1, vertex.parallelism)
    }

    /// Moves `ordinal`'s current attempt to `to`, with every piece of bookkeeping that follows.
    pub(super) fn transition(&mut self, ordinal: u64, to: ExecutionState) {
        let from = self.executions.set_state(ordinal, to);
        let execution = self.executions.id(ordinal);
        self.event(Event::ExecutionStateChanged { execution, from, to });
        if from == ExecutionState::Scheduled {
            self.scheduled.remove(&ordinal);
            self.pool.unschedule(self.position_of(ordinal));
        }
        if to == ExecutionState::Scheduled {
            self.scheduled.insert(ordinal);
            if let Some(allocation) = self.pool.schedule(self.position_of(ordinal), self.now) {
                self.request_slot(allocation);
            }
        }
        if to.is_terminal() && self.restart.contains(ordinal) {
            self.restart.member_stopped(ordinal);
        }
    }

    /// Asks the ResourceManager for a slot under `allocation`.
    pub(super) fn request_slot(&mut self, allocation: AllocationId) {
        self.send_to_resource_manager(ResourceManagerMessage::RequestSlot { job_id: self.job_id, allocation });
    }

    /// Requests `position` again if executions wait for it and it is empty.
    pub(super) fn rerequest(&mut self, position: SlotPosition) {
        if let Some(allocation) = self.pool.request_if_needed(position, self.now) {
            self.request_slot(allocation);
        }
    }

    /// Deploys every SCHEDULED execution once every slot they need is held (bulk allocation).
    pub(super) fn try_deploy(&mut self) {
        let deploying = matches!(self.status, JobStatus::Running | JobStatus::Restarting);
        if !deploying || self.scheduled.is_empty() || self.pool.missing() > 0 {
            return;
        }
        let bulk = std::mem::take(&mut self.scheduled);
        let placement = self.placement(&bulk);
        for ordinal in bulk {
            self.deploy(ordinal, &placement);
        }
    }

    /// Where every subtask runs once `bulk` is deployed: the bulk in the slots held for it, the
    /// others where they already run (or unplaced).
    fn placement(&self, bulk: &BTreeSet<u64>) -> Arc<Placement> {
        let mut placement = Placement::default();
        let mut indices: BTreeMap<ResourceId, u32> = BTreeMap::new();
        for vertex in &self.plan.vertices {
            let mut subtasks = Vec::with_capacity(vertex.parallelism as usize);
            for subtask in 0..vertex.parallelism {
                let ordinal = self.executions.ordinal_at(vertex.index, SubtaskIndex(subtask));
                let resource_id = ordinal.and_then(|ordinal| match bulk.contains(&ordinal) {
                    true => self.pool.held(self.position_of(ordinal)).map(|held| held.resource_id),
                    false => self.executions.location(ordinal).map(|location| location.resource_id),
                });
                let index = resource_id.map_or(u32::MAX, |resource_id| {
                    *indices.entry(resource_id).or_insert_with(|| {
                        let data_address = self.data_addresses.get(&resource_id).cloned().unwrap_or_default();
                        placement.task_managers.push(TaskManagerLocation { resource_id, data_address });
                        placement.task_managers.len() as u32 - 1
                    })
                });
                subtasks.push(index);
            }
            placement.subtasks.push(subtasks);
        }
        Arc::new(placement)
    }

    fn deploy(&mut self, ordinal: u64, placement: &Arc<Placement>) {
        let position = self.position_of(ordinal);
        let held = self.pool.held(position).expect("a bulk deploys only when all its slots are held");
        self.transition(ordinal, ExecutionState::Deploying);
        let location = Location { resource_id: held.resource_id, allocation: held.allocation };
        self.executions.set_location(ordinal, location);
        let vertex = self.plan.vertex(self.executions.subtask(ordinal).vertex);
        let restore = self.restore_point(ordinal);
        let deployment = TaskDeployment {
            execution: self.executions.id(ordinal),
            allocation: held.allocation,
            vertex_name: vertex.name.clone(),
            parallelism: vertex.parallelism,
            restore,
            job: self.artifacts.clone(),
            placement: Some(placement.clone()),
        };
        self.send_to_task_executor(held.resource_id, TaskExecutorMessage::DeployTask(deployment));
    }

    /// Cancels `ordinal`'s current attempt: at once if it never left the JobMaster, else by asking
    /// its TaskExecutor (CANCELING until it reports back).
    pub(super) fn cancel_execution(&mut self, ordinal: u64) {
        match self.executions.state(ordinal) {
            ExecutionState::Created | ExecutionState::Scheduled => self.transition(ordinal, ExecutionState::Canceled),
            ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running => {
                let location = self.executions.location(ordinal).expect("a deployed attempt has a location");
                self.transition(ordinal, ExecutionState::Canceling);
                let execution = self.executions.id(ordinal);
                self.send_to_task_executor(location.resource_id, TaskExecutorMessage::CancelTask { execution });
            }
            ExecutionState::Canceling
            | ExecutionState::Reconciling
            | ExecutionState::Finished
            | ExecutionState::Canceled
            | ExecutionState::Failed => {}
        }
    }

    /// Asks again for the cancellation of every CANCELING execution (a lost message would
    /// otherwise hold a restart or the job's end forever).
    pub(super) fn repeat_cancellations(&mut self) {
        if self.executions.count(ExecutionState::Canceling) == 0 {
            return;
        }
        for ordinal in 0..self.executions.len() {
            if self.executions.state(ordinal) == ExecutionState::Canceling {
                let location = self.executions.location(ordinal).expect("a canceling attempt has a location");
                let execution = self.executions.id(ordinal);
                self.send_to_task_executor(location.resource_id, TaskExecutorMessage::CancelTask { execution });
            }
        }
    }

    /// Slots that left the pool (their TaskManager or allocation is gone): the attempts deployed
    /// in them stop (CANCELING ones count as canceled, the others fail), needed slots are
    /// requested again, and the failures go to failover.
    pub(super) fn slots_lost(&mut self, lost: Vec<(SlotPosition, HeldSlot)>, cause: String) {
        let location = lost.first().map(|(_, held)| held.resource_id);
        let mut failed = Vec::new();
        for (position, held) in lost {
            for ordinal in self.ordinals_at(position) {
                if self.executions.location(ordinal).map(|location| location.allocation) != Some(held.allocation) {
                    continue;
                }
                match self.executions.state(ordinal) {
                    ExecutionState::Canceling => self.transition(ordinal, ExecutionState::Canceled),
                    ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running => {
                        self.transition(ordinal, ExecutionState::Failed);
                        failed.push(ordinal);
                    }
                    _ => {}
                }
            }
            self.rerequest(position);
        }
        self.on_failure(Failure { failed, cause, location });
    }

    /// Fails the SCHEDULED executions waiting for `position` (their slot cannot be had).
    pub(super) fn fail_waiting(&mut self, position: SlotPosition, cause: String) {
        let failed: Vec<u64> = self
            .ordinals_at(position)
            .into_iter()
            .filter(|&ordinal| self.executions.state(ordinal) == ExecutionState::Scheduled)
            .collect();
        for &ordinal in &failed {
            self.transition(ordinal, ExecutionState::Failed);
        }
        self.on_failure(Failure { failed, cause, location: None });
    }

    /// Handles executions that failed together: records the failure, then restarts their restart
    /// set (merging into a pending restart) or fails the job, as the restart strategy decides.
    pub(super) fn on_failure(&mut self, mut failure: Failure) {
        let Some(&first) = failure.failed.first() else { return };
        if !matches!(self.status, JobStatus::Running | JobStatus::Restarting) {
            return;
        }
        truncate(&mut failure.cause, FAILURE_TEXT_MAX_BYTES);
        let entry = ExceptionEntry {
            timestamp_ms: self.now.as_millis(),
            exception: failure.cause.clone(),
            task_name: Some(self.task_name(first)),
            location: failure.location,
        };
        self.exceptions.push(entry);
        if self.status == JobStatus::Restarting {
            self.extend_restart(&failure.failed);
            return;
        }
        let decision = self.backoff.on_failure(self.now, &mut self.rng);
        let delay_ms = match decision {
            RestartDecision::Restart { delay } => Some(delay.as_millis()),
            RestartDecision::Fail => None,
        };
        self.event(Event::RestartDecision { job_id: self.job_id, delay_ms, cause: failure.cause.clone() });
        // A failover aborts every pending checkpoint (not counted as a checkpoint failure).
        self.feed_coordinator(crate::checkpoint::Input::Failover);
        match decision {
            RestartDecision::Restart { delay } => {
                self.restarts = self.restarts.saturating_add(1);
                self.set_status(JobStatus::Restarting);
                self.restart.begin(self.now.after(delay));
                self.extend_restart(&failure.failed);
            }
            RestartDecision::Fail => self.fail_job(failure.cause),
        }
    }

    /// Adds the restart set of `failed` to the pending restart and cancels its new members.
    fn extend_restart(&mut self, failed: &[u64]) {
        let set = self.failover.restart_set(self.executions.graph(), failed);
        let mut added = Vec::new();
        for ordinal in set {
            if self.restart.add(ordinal, self.executions.state(ordinal).is_terminal()) {
                added.push(ordinal);
            }
        }
        for ordinal in added {
            self.cancel_execution(ordinal);
        }
    }

    /// Restarts the pending restart's members once they all stopped and the delay passed.
    pub(super) fn maybe_restart(&mut self) {
        if self.status != JobStatus::Restarting || self.restart.deadline().is_none_or(|deadline| self.now < deadline) {
            return;
        }
        let members = self.restart.take();
        self.record_restore();
        for &ordinal in &members {
            self.executions.new_attempt(ordinal);
            self.transition(ordinal, ExecutionState::Scheduled);
        }
        self.set_status(JobStatus::Running);
        self.try_deploy();
    }

    /// A failure of the whole job (such as too many failed checkpoints): every subtask goes
    /// through the restart strategy together.
    pub(super) fn fail_globally(&mut self, cause: String) {
        let failed: Vec<u64> =
            (0..self.executions.len()).filter(|&o| !self.executions.state(o).is_terminal()).collect();
        if failed.is_empty() {
            return;
        }
        let location = None;
        self.on_failure(Failure { failed, cause, location });
    }

    /// A failure no restart can help (the savepoint the job restores from is unreadable): it is
    /// recorded, and the job fails without asking the restart strategy.
    pub(super) fn fail_unrecoverably(&mut self, ordinal: u64, cause: String) {
        if !matches!(self.status, JobStatus::Running | JobStatus::Restarting) {
            return;
        }
        let mut cause = cause;
        truncate(&mut cause, FAILURE_TEXT_MAX_BYTES);
        let location = self.executions.location(ordinal).map(|location| location.resource_id);
        let entry = ExceptionEntry {
            timestamp_ms: self.now.as_millis(),
            exception: cause.clone(),
            task_name: Some(self.task_name(ordinal)),
            location,
        };
        self.exceptions.push(entry);
        self.event(Event::RestartDecision { job_id: self.job_id, delay_ms: None, cause: cause.clone() });
        self.feed_coordinator(crate::checkpoint::Input::Failover);
        self.fail_job(cause);
    }

    /// The restart strategy gave up: FAILING, cancel everything, FAILED once all stopped.
    fn fail_job(&mut self, cause: String) {
        self.failure = Some(cause);
        self.stop_job(JobStatus::Failing);
    }

    /// The Dispatcher asks to cancel: CANCELLING, cancel everything, CANCELED once all stopped.
    /// Ignored once the job is failing, cancelling or over.
    pub(super) fn cancel_job(&mut self) {
        if self.cancel_while_reading() {
            return;
        }
        if matches!(self.status, JobStatus::Running | JobStatus::Restarting | JobStatus::Created) {
            self.stop_job(JobStatus::Cancelling);
        }
    }

    fn stop_job(&mut self, status: JobStatus) {
        if self.restart.is_pending() {
            self.restart.take();
        }
        self.set_status(status);
        for ordinal in 0..self.executions.len() {
            self.cancel_execution(ordinal);
        }
        for allocation in self.pool.cancel_requests() {
            self.send_to_resource_manager(ResourceManagerMessage::CancelSlotRequest {
                job_id: self.job_id,
                allocation,
            });
        }
    }

    /// Ends the job when it is done: FINISHED when every subtask finished, FAILED or CANCELED when
    /// a failing or cancelling job has no running attempt left.
    pub(super) fn check_job_done(&mut self) {
        let all_stopped = self.executions.non_terminal() == 0;
        let end = match self.status {
            JobStatus::Running if self.executions.count(ExecutionState::Finished) as u64 == self.executions.len() => {
                JobStatus::Finished
            }
            JobStatus::Failing if all_stopped => JobStatus::Failed,
            JobStatus::Cancelling if all_stopped => JobStatus::Canceled,
            _ => return,
        };
        let (held, pending) = self.pool.release_all();
        for slot in held {
            let free = TaskExecutorMessage::FreeSlot { job_id: self.job_id, allocation: slot.allocation };
            self.send_to_task_executor(slot.resource_id, free);
        }
        for allocation in pending {
            self.send_to_resource_manager(ResourceManagerMessage::CancelSlotRequest {
                job_id: self.job_id,
                allocation,
            });
        }
        self.send_to_resource_manager(ResourceManagerMessage::DisconnectJobMaster { job_id: self.job_id });
        self.set_status(end);
    }
}

//! What the JobMaster does with each message and each tick.
//!
//! Surprising input is ignored, never a panic: another epoch, a sender that is not the peer the
//! message is about, an attempt that is not current, an allocation the pool does not know, a
//! TaskManager that holds none of the job's slots, a state no TaskExecutor reports. Unknown or
//! unwanted slot offers are the one rejection: the TaskExecutor is told so it frees the slot.

use super::JobMaster;
use super::scheduler::Failure;
use super::slots::OfferVerdict;
use crate::ids::{AllocationId, CheckpointId, Epoch, ResourceId};
use crate::protocol::{
    Address, Event, ExecutionId, ExecutionState, JobMasterMessage, ResourceManagerMessage, SlotOffer,
    TaskExecutorMessage,
};
use crate::time::Time;
use std::collections::BTreeSet;

impl JobMaster {
    /// Dispatches one message, after checking its epoch and, per kind, its sender.
    pub(super) fn on_message(&mut self, from: Address, epoch: Epoch, message: JobMasterMessage) {
        if epoch != self.epoch {
            return;
        }
        let from_task_executor = |resource_id: ResourceId| from == Address::TaskExecutor(resource_id);
        match message {
            JobMasterMessage::SlotRequestFailed { allocation, reason } if from == Address::ResourceManager => {
                self.on_slot_request_failed(allocation, &reason);
            }
            JobMasterMessage::TaskManagerLost { resource_id, reason } if from == Address::ResourceManager => {
                self.lose_task_manager(resource_id, &reason, false);
            }
            JobMasterMessage::OfferSlots { resource_id, offers, data_address } if from_task_executor(resource_id) => {
                self.data_addresses.insert(resource_id, data_address);
                self.on_offers(resource_id, offers);
            }
            JobMasterMessage::TaskStateChanged { execution, state, error, unreadable_checkpoint } => {
                self.on_task_state_report(from, execution, state, error, unreadable_checkpoint);
            }
            JobMasterMessage::TaskExecutorHeartbeat { resource_id, allocations, executions }
                if from_task_executor(resource_id) =>
            {
                self.on_heartbeat(resource_id, allocations);
                self.reconcile_executions(resource_id, executions);
            }
            JobMasterMessage::DisconnectTaskExecutor { resource_id, reason } if from_task_executor(resource_id) => {
                self.lose_task_manager(resource_id, &reason, true);
            }
            JobMasterMessage::Cancel if from == Address::Dispatcher => self.cancel_job(),
            JobMasterMessage::TriggerSavepoint { request, client, target, stop, drain }
                if from == Address::Dispatcher =>
            {
                self.on_trigger_savepoint(request, client, target, stop, drain);
            }
            JobMasterMessage::AcknowledgeCheckpoint { execution, checkpoint, state, metrics }
                if self.runs_on(&execution, from) =>
            {
                self.feed_coordinator(crate::checkpoint::Input::Acknowledge { execution, checkpoint, state, metrics });
            }
            JobMasterMessage::DeclineCheckpoint { execution, checkpoint, reason } if self.runs_on(&execution, from) => {
                self.feed_coordinator(crate::checkpoint::Input::Decline { execution, checkpoint, reason });
            }
            JobMasterMessage::FinalCheckpointAwaited { execution, checkpoint_latest }
                if self.runs_on(&execution, from) =>
            {
                self.feed_coordinator(crate::checkpoint::Input::FinalCheckpointAwaited {
                    execution,
                    checkpoint_latest,
                });
            }
            _ => {}
        }
    }

    /// Timers in a fixed order: heartbeats, silent TaskManagers, unanswered slot requests, the
    /// pending restart. Each checks its own deadline, so an early tick does nothing.
    pub(super) fn on_tick(&mut self) {
        if self.status.is_globally_terminal() {
            return;
        }
        // Fault point: a round of heartbeats is skipped (a stalled sender); peers must tolerate it.
        if self.now >= self.next_heartbeat && crate::buggify::fires("job_master.heartbeat.skip", 0.1) {
            self.next_heartbeat = self.now.after(self.timing.heartbeat_interval);
        }
        if self.now >= self.next_heartbeat {
            for resource_id in self.pool.task_managers().collect::<Vec<_>>() {
                let heartbeat = TaskExecutorMessage::JobMasterHeartbeat { job_id: self.job_id };
                self.send_to_task_executor(resource_id, heartbeat);
            }
            self.repeat_cancellations();
            self.repeat_stop_notification();
            self.next_heartbeat = self.now.after(self.timing.heartbeat_interval);
        }
        let mut timeout = self.timing.heartbeat_timeout;
        // Fault point: the heartbeat timeout fires at half its time (a false suspicion).
        if crate::buggify::fires("job_master.heartbeat_timeout.early", 0.01) {
            timeout = crate::time::Duration::from_micros(timeout.as_micros() / 2);
        }
        if let Some(deadline) = self.now.as_micros().checked_sub(timeout.as_micros()) {
            for resource_id in self.pool.silent_since(Time(deadline)) {
                self.lose_task_manager(resource_id, &format!("no heartbeat for {timeout}"), true);
            }
        }
        let backstop = self.timing.slot_request_backstop;
        if let Some(deadline) = self.now.as_micros().checked_sub(backstop.as_micros()) {
            for allocation in self.pool.requests_made_by(Time(deadline)) {
                // An earlier one may have failed the job, which cancelled the rest already.
                if self.on_slot_request_failed(allocation, &format!("no slot was offered within {backstop}")) {
                    let cancel = ResourceManagerMessage::CancelSlotRequest { job_id: self.job_id, allocation };
                    self.send_to_resource_manager(cancel);
                }
            }
        }
        self.maybe_restart();
    }

    /// The request for `allocation` failed; returns whether it was pending.
    fn on_slot_request_failed(&mut self, allocation: AllocationId, reason: &str) -> bool {
        let Some(position) = self.pool.fail_request(allocation) else { return false };
        let cause = format!("NoResourceAvailableException: could not acquire the minimum required resources: {reason}");
        self.fail_waiting(position, cause);
        true
    }

    /// A TaskManager is gone (`declared` when this JobMaster found out itself): its slots leave
    /// the pool, the attempts in them stop, and it is told to drop the job (as Flink's
    /// `disconnectTaskManager` does; a dead one never hears it).
    fn lose_task_manager(&mut self, resource_id: ResourceId, reason: &str, declared: bool) {
        if !self.pool.knows(resource_id) {
            return;
        }
        self.data_addresses.remove(&resource_id);
        if declared {
            self.event(Event::TaskManagerLost { resource_id, reason: reason.to_string() });
        }
        let lost = self.pool.lose_task_manager(resource_id);
        // If it is alive after all (a heartbeat timeout), it must stop the job's tasks and free its slots.
        let disconnect = TaskExecutorMessage::DisconnectJobMaster { job_id: self.job_id, reason: reason.to_string() };
        self.send_to_task_executor(resource_id, disconnect);
        self.slots_lost(lost, format!("TaskManager {resource_id} lost: {reason}"));
    }

    fn on_offers(&mut self, resource_id: ResourceId, offers: Vec<SlotOffer>) {
        let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
        let mut answered = BTreeSet::new();
        for offer in offers {
            // One answer per allocation, even if a message lists it twice.
            if !answered.insert(offer.allocation) {
                continue;
            }
            match self.pool.offer(resource_id, offer, self.now) {
                OfferVerdict::Accepted | OfferVerdict::AlreadyHeld => accepted.push(offer.allocation),
                OfferVerdict::Rejected => rejected.push(offer.allocation),
            }
        }
        let result = TaskExecutorMessage::SlotOfferResult { job_id: self.job_id, accepted, rejected };
        self.send_to_task_executor(resource_id, result);
        self.try_deploy();
    }

    fn on_heartbeat(&mut self, resource_id: ResourceId, allocations: Vec<AllocationId>) {
        if !self.pool.heard_from(resource_id, self.now) {
            return;
        }
        let reported: BTreeSet<AllocationId> = allocations.into_iter().collect();
        let grace = self.timing.heartbeat_timeout;
        let missing = self.pool.missing_from_report(resource_id, &reported, self.now, grace);
        let Some(&first) = missing.first() else { return };
        let mut lost = Vec::with_capacity(missing.len());
        for allocation in missing {
            // The TaskExecutor says it does not hold the slot; free it in case it still does.
            let free = TaskExecutorMessage::FreeSlot { job_id: self.job_id, allocation };
            self.send_to_task_executor(resource_id, free);
            lost.extend(self.pool.lose_allocation(allocation));
        }
        let cause = format!("Slot {first} on TaskManager {resource_id} lost: the TaskManager no longer reports it");
        self.slots_lost(lost, cause);
    }

    /// Applies task states a heartbeat reports (a lost state report is recovered this way), and
    /// fails executions this JobMaster deployed to the TaskManager that it has not reported for
    /// a whole heartbeat timeout (a lost deployment).
    fn reconcile_executions(&mut self, resource_id: ResourceId, reported: Vec<(ExecutionId, ExecutionState)>) {
        let from = Address::TaskExecutor(resource_id);
        let mut seen = BTreeSet::new();
        for (id, state) in reported {
            seen.insert(id);
            let error = (state == ExecutionState::Failed).then(|| format!("Task {id} failed (reported by heartbeat)"));
            self.on_task_state(from, id, state, error);
        }
        let grace = self.timing.heartbeat_timeout;
        let now = self.now;
        let mut lost = Vec::new();
        for ordinal in 0..self.executions.len() {
            let view = self.executions.view(ordinal);
            let deployed_here = view.location.is_some_and(|location| location.resource_id == resource_id);
            let active = matches!(
                view.state,
                ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running
            );
            if !deployed_here {
                continue;
            }
            if !active || seen.contains(&view.id) {
                self.unreported.remove(&view.id);
                continue;
            }
            let since = *self.unreported.entry(view.id).or_insert(now);
            if now.since(since) >= grace {
                lost.push(view.id);
            }
        }
        let executions = &self.executions;
        self.unreported.retain(|id, _| executions.current(id).is_some());
        for id in lost {
            self.unreported.remove(&id);
            let error = format!("Task {id} is not deployed on TaskManager {resource_id}: its deployment was lost");
            self.on_task_state(from, id, ExecutionState::Failed, Some(error));
        }
    }

    /// A task's report; a failure to read its state of a checkpoint drops that checkpoint first,
    /// so the restart the failure causes restores from an earlier one (see `savepoints.rs`).
    fn on_task_state_report(
        &mut self,
        from: Address,
        id: ExecutionId,
        state: ExecutionState,
        mut error: Option<String>,
        unreadable: Option<CheckpointId>,
    ) {
        let Some(checkpoint) = unreadable.filter(|_| state == ExecutionState::Failed) else {
            return self.on_task_state(from, id, state, error);
        };
        let current = self.executions.current(&id);
        let deployed_there = current.and_then(|ordinal| self.executions.location(ordinal));
        let live = current.is_some_and(|ordinal| !self.executions.state(ordinal).is_terminal());
        if !live || deployed_there.is_none_or(|location| from != Address::TaskExecutor(location.resource_id)) {
            return;
        }
        let (note, fail_job) = self.on_unreadable_checkpoint(checkpoint);
        let mut text = error.take().unwrap_or_else(|| format!("Task {id} cannot read its state"));
        text.push_str(&note);
        if fail_job && let Some(ordinal) = current {
            self.transition(ordinal, ExecutionState::Failed);
            return self.fail_unrecoverably(ordinal, text);
        }
        self.on_task_state(from, id, state, Some(text));
    }

    fn on_task_state(&mut self, from: Address, id: ExecutionId, state: ExecutionState, error: Option<String>) {
        let Some(ordinal) = self.executions.current(&id) else { return };
        let Some(location) = self.executions.location(ordinal) else { return };
        let current = self.executions.state(ordinal);
        if from != Address::TaskExecutor(location.resource_id) || current.is_terminal() {
            return;
        }
        let failure = |cause: String| Failure { failed: vec![ordinal], cause, location: Some(location.resource_id) };
        match state {
            ExecutionState::Initializing | ExecutionState::Running | ExecutionState::Finished => {
                if current.can_become(state) {
                    self.transition(ordinal, state);
                }
            }
            ExecutionState::Canceled if current == ExecutionState::Canceling => {
                self.transition(ordinal, ExecutionState::Canceled);
            }
            ExecutionState::Canceled => {
                self.transition(ordinal, ExecutionState::Failed);
                self.on_failure(failure(format!("Task {id} was canceled by its TaskManager without being asked")));
            }
            ExecutionState::Failed => {
                self.transition(ordinal, ExecutionState::Failed);
                if current != ExecutionState::Canceling {
                    self.on_failure(failure(error.unwrap_or_else(|| "task failed without a reason".to_string())));
                }
            }
            ExecutionState::Created
            | ExecutionState::Scheduled
            | ExecutionState::Deploying
            | ExecutionState::Canceling
            | ExecutionState::Reconciling => {}
        }
    }
}

//! The registry of TaskExecutors and their slot table.
//!
//! Every change of a slot goes through [`ResourceManager::set_slot`], which keeps the free-slot
//! index, the allocation index, the counters and the TaskManager's idle timer in step with the
//! table. Slot reports are reconciled here: the TaskExecutor is the truth for what its slots hold,
//! except that a slot pending a request stays pending while the report says it is free (the
//! report may have left before the request arrived; the ask deadline covers a lost request).

use super::requests::Placement;
use super::{
    MAX_SLOTS_PER_TASK_MANAGER, MAX_SLOTS_TOTAL, MAX_TASK_MANAGERS, ResourceManager, SlotState, TaskManagerView,
};
use crate::ids::{AllocationId, JobId, ResourceId, SlotIndex};
use crate::protocol::{Event, JobMasterMessage, SlotStatus, TaskExecutorMessage, WorkerResources};
use crate::time::Time;
use std::collections::BTreeSet;

/// One slot of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) state: SlotState,
    /// For a free slot: whether its TaskExecutor has said so since the table last had reason to
    /// doubt it. Only confirmed free slots are matched. Always true for other states.
    pub(super) confirmed: bool,
}

impl Slot {
    pub(super) const FREE: Slot = Slot { state: SlotState::Free, confirmed: true };
    pub(super) const UNCONFIRMED: Slot = Slot { state: SlotState::Free, confirmed: false };

    fn pending(allocation: AllocationId, job_id: JobId) -> Slot {
        Slot { state: SlotState::Pending { allocation, job_id }, confirmed: true }
    }

    fn allocated(allocation: AllocationId, job_id: JobId) -> Slot {
        Slot { state: SlotState::Allocated { allocation, job_id }, confirmed: true }
    }

    /// Whether the slot can be matched to a request.
    pub(super) fn is_matchable(self) -> bool {
        self.state == SlotState::Free && self.confirmed
    }
}

/// Whether a TaskManager has been without a pending or allocated slot, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Idle {
    /// At least one slot is pending or allocated.
    Busy,
    /// Every slot free since then; reported once `resourcemanager.taskmanager-timeout` passes.
    Since(Time),
    /// Reported with [`Event::WorkerIdle`]; not again until a slot is taken.
    Reported,
}

/// A registered TaskManager.
#[derive(Clone, Debug)]
pub(super) struct TaskManager {
    /// Position in the matching order; kept across re-registrations.
    pub(super) order: u64,
    pub(super) resources: WorkerResources,
    pub(super) slots: Vec<Slot>,
    pub(super) registered_at: Time,
    pub(super) last_heard: Time,
    /// Slots pending or allocated.
    pub(super) busy_slots: u32,
    pub(super) idle: Idle,
}

impl TaskManager {
    pub(super) fn view(&self, resource_id: ResourceId) -> TaskManagerView {
        TaskManagerView {
            resource_id,
            resources: self.resources,
            registered_at: self.registered_at,
            last_heartbeat_at: self.last_heard,
            slots: self.slots.iter().map(|slot| slot.state).collect(),
        }
    }

    pub(super) fn state(&self, slot: SlotIndex) -> Option<SlotState> {
        self.slots.get(slot.index()).map(|slot| slot.state)
    }
}

/// What a slot report says about one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reported {
    /// Free (also a slot the report leaves out: a report lists what the TaskExecutor holds).
    Free,
    /// Held under this allocation for this job.
    Holds(AllocationId, JobId),
    /// The report contradicts itself about the slot (an allocation claimed twice): keep the table.
    Unclear,
}

/// One statement per slot of a TaskManager with `slots` slots. Entries beyond the slot count and
/// repeated entries for a slot are ignored; a second slot claiming the same allocation is unclear.
fn read_report(slots: u32, report: &[SlotStatus]) -> Vec<Reported> {
    let mut statements = vec![Reported::Free; slots as usize];
    let mut seen_slots = vec![false; slots as usize];
    let mut seen_allocations = BTreeSet::new();
    for status in report {
        let index = status.slot.index();
        if index >= statements.len() || seen_slots[index] {
            continue;
        }
        seen_slots[index] = true;
        statements[index] = match status.allocation {
            None => Reported::Free,
            Some((allocation, job_id)) if seen_allocations.insert(allocation) => Reported::Holds(allocation, job_id),
            Some(_) => Reported::Unclear,
        };
    }
    statements
}

impl ResourceManager {
    /// Sets one slot and keeps every index, counter and the idle timer in step with it.
    pub(super) fn set_slot(&mut self, resource_id: ResourceId, slot: SlotIndex, new: Slot) {
        debug_assert!(new.confirmed || new.state == SlotState::Free, "only free slots can await confirmation");
        let Some(task_manager) = self.task_managers.get_mut(&resource_id) else {
            panic!("set_slot on unregistered TaskManager {resource_id}");
        };
        let old = task_manager.slots[slot.index()];
        match old.state.allocation() {
            None => {
                self.slots_free -= 1;
                if old.confirmed {
                    self.free_slots.remove(&(task_manager.order, slot));
                }
            }
            Some((allocation, _)) => {
                let removed = self.allocations.remove(&allocation);
                assert_eq!(removed, Some((resource_id, slot)), "allocation index out of step with the table");
                task_manager.busy_slots -= 1;
            }
        }
        match new.state.allocation() {
            None => {
                self.slots_free += 1;
                if new.confirmed {
                    self.free_slots.insert((task_manager.order, slot));
                }
            }
            Some((allocation, _)) => {
                let previous = self.allocations.insert(allocation, (resource_id, slot));
                assert!(previous.is_none(), "allocation {allocation} would sit in two slots");
                task_manager.busy_slots += 1;
            }
        }
        task_manager.slots[slot.index()] = new;
        self.update_idle(resource_id);
    }

    fn update_idle(&mut self, resource_id: ResourceId) {
        let Some(task_manager) = self.task_managers.get_mut(&resource_id) else { return };
        match (task_manager.busy_slots, task_manager.idle) {
            (0, Idle::Busy) => {
                task_manager.idle = Idle::Since(self.now);
                self.idle_deadlines.insert((self.now.after(self.timeouts.task_manager_idle), resource_id));
            }
            (0, _) => {}
            (_, Idle::Since(since)) => {
                task_manager.idle = Idle::Busy;
                self.idle_deadlines.remove(&(since.after(self.timeouts.task_manager_idle), resource_id));
            }
            (_, Idle::Reported) => task_manager.idle = Idle::Busy,
            (_, Idle::Busy) => {}
        }
    }

    pub(super) fn report_idle(&mut self, resource_id: ResourceId) {
        let Some(task_manager) = self.task_managers.get_mut(&resource_id) else {
            panic!("idle deadline of unregistered TaskManager {resource_id}");
        };
        let Idle::Since(since) = task_manager.idle else {
            panic!("idle deadline of busy TaskManager {resource_id}");
        };
        task_manager.idle = Idle::Reported;
        self.idle_deadlines.remove(&(since.after(self.timeouts.task_manager_idle), resource_id));
        self.emit(Event::WorkerIdle { resource_id });
    }

    /// Why a registration must be refused, if it must.
    fn registration_refusal(&self, resource_id: ResourceId, resources: WorkerResources) -> Option<String> {
        if resources.slots == 0 {
            return Some("a TaskExecutor must offer at least one slot".to_string());
        }
        if resources.slots > MAX_SLOTS_PER_TASK_MANAGER {
            return Some(format!(
                "{} slots are more than a TaskExecutor may offer ({MAX_SLOTS_PER_TASK_MANAGER})",
                resources.slots
            ));
        }
        let replaced = self.task_managers.get(&resource_id);
        if replaced.is_none() && self.task_managers.len() >= MAX_TASK_MANAGERS {
            return Some(format!("the ResourceManager already has {MAX_TASK_MANAGERS} TaskManagers, its limit"));
        }
        let replaced_slots = replaced.map_or(0, |task_manager| task_manager.slots.len() as u64);
        if self.slots_total - replaced_slots + u64::from(resources.slots) > MAX_SLOTS_TOTAL {
            return Some(format!("the cluster would pass its limit of {MAX_SLOTS_TOTAL} slots"));
        }
        None
    }

    pub(super) fn on_register(&mut self, resource_id: ResourceId, resources: WorkerResources, report: &[SlotStatus]) {
        if let Some(reason) = self.registration_refusal(resource_id, resources) {
            self.send_to_task_executor(resource_id, TaskExecutorMessage::RegistrationRejected { reason });
            return;
        }
        // A re-registration replaces the old one (as Flink does) but keeps its place in the order.
        let order = match self.task_managers.contains_key(&resource_id) {
            true => self.remove_task_manager(resource_id).0,
            false => {
                self.registration_order_next += 1;
                self.registration_order_next - 1
            }
        };
        self.add_task_manager(resource_id, resources, order);
        self.reconcile(resource_id, report);
        self.send_to_task_executor(resource_id, TaskExecutorMessage::RegistrationAccepted);
        self.emit(Event::TaskManagerRegistered { resource_id });
        if self.heartbeat_next.is_none() {
            self.heartbeat_next = Some(self.now.after(self.timeouts.heartbeat_interval));
        }
    }

    /// Adds a TaskManager whose slots are all free but unconfirmed until its report is read.
    fn add_task_manager(&mut self, resource_id: ResourceId, resources: WorkerResources, order: u64) {
        let task_manager = TaskManager {
            order,
            resources,
            slots: vec![Slot::UNCONFIRMED; resources.slots as usize],
            registered_at: self.now,
            last_heard: self.now,
            busy_slots: 0,
            idle: Idle::Since(self.now),
        };
        self.slots_total += u64::from(resources.slots);
        self.slots_free += u64::from(resources.slots);
        self.idle_deadlines.insert((self.now.after(self.timeouts.task_manager_idle), resource_id));
        self.silence_deadlines.insert((self.now.after(self.timeouts.heartbeat), resource_id));
        self.registration_order.insert(order, resource_id);
        let previous = self.task_managers.insert(resource_id, task_manager);
        assert!(previous.is_none(), "TaskManager {resource_id} added twice");
    }

    /// Takes a TaskManager out: requests served on it go back to the queue, its allocations are
    /// forgotten. Returns its place in the order and the jobs that had a slot there.
    fn remove_task_manager(&mut self, resource_id: ResourceId) -> (u64, BTreeSet<JobId>) {
        let slot_count = self.task_managers.get(&resource_id).map_or(0, |task_manager| task_manager.slots.len());
        let mut jobs = BTreeSet::new();
        for index in 0..slot_count {
            let slot = SlotIndex(index as u32);
            let state = self.task_managers[&resource_id].slots[index].state;
            if let SlotState::Pending { allocation, .. } = state {
                self.requeue(allocation);
            }
            if let Some((_, job_id)) = state.allocation() {
                jobs.insert(job_id);
            }
            self.set_slot(resource_id, slot, Slot::UNCONFIRMED);
        }
        let Some(task_manager) = self.task_managers.remove(&resource_id) else {
            panic!("removing unregistered TaskManager {resource_id}");
        };
        self.slots_total -= slot_count as u64;
        self.slots_free -= slot_count as u64;
        self.registration_order.remove(&task_manager.order);
        self.silence_deadlines.remove(&(task_manager.last_heard.after(self.timeouts.heartbeat), resource_id));
        if let Idle::Since(since) = task_manager.idle {
            self.idle_deadlines.remove(&(since.after(self.timeouts.task_manager_idle), resource_id));
        }
        if self.task_managers.is_empty() {
            self.heartbeat_next = None;
        }
        (task_manager.order, jobs)
    }

    /// Declares a TaskManager lost: removes it and tells every job that had a slot there.
    pub(super) fn lose_task_manager(&mut self, resource_id: ResourceId, reason: String, tell_task_executor: bool) {
        let (_, jobs) = self.remove_task_manager(resource_id);
        self.emit(Event::TaskManagerLost { resource_id, reason: reason.clone() });
        for job_id in jobs {
            let message = JobMasterMessage::TaskManagerLost { resource_id, reason: reason.clone() };
            self.send_to_job_master(job_id, message);
        }
        if tell_task_executor {
            self.send_to_task_executor(resource_id, TaskExecutorMessage::DisconnectResourceManager { reason });
        }
    }

    pub(super) fn on_heartbeat(&mut self, resource_id: ResourceId, report: &[SlotStatus]) {
        let heartbeat_timeout = self.timeouts.heartbeat;
        let Some(task_manager) = self.task_managers.get_mut(&resource_id) else { return };
        let old_deadline = task_manager.last_heard.after(heartbeat_timeout);
        task_manager.last_heard = self.now;
        self.silence_deadlines.remove(&(old_deadline, resource_id));
        self.silence_deadlines.insert((self.now.after(heartbeat_timeout), resource_id));
        self.reconcile(resource_id, report);
    }

    /// Makes the table agree with a TaskExecutor's slot report.
    fn reconcile(&mut self, resource_id: ResourceId, report: &[SlotStatus]) {
        let Some(task_manager) = self.task_managers.get(&resource_id) else { return };
        let statements = read_report(task_manager.resources.slots, report);
        for (index, statement) in statements.into_iter().enumerate() {
            let slot = SlotIndex(index as u32);
            let current = self.task_managers[&resource_id].slots[index];
            match (statement, current.state) {
                (Reported::Unclear, _) | (Reported::Free, SlotState::Pending { .. }) => {}
                (Reported::Free, _) if current == Slot::FREE => {}
                (Reported::Free, _) => self.set_slot(resource_id, slot, Slot::FREE),
                (Reported::Holds(allocation, job_id), _) => self.place_reported(resource_id, slot, allocation, job_id),
            }
        }
    }

    /// Records that `slot` holds `allocation` for `job_id`, as its TaskExecutor reports: the
    /// request for that allocation is served (or refused, if another job asked under that id), the
    /// allocation leaves any other slot the table had it in, and a request pending on this slot
    /// for another allocation goes back to the queue.
    fn place_reported(&mut self, resource_id: ResourceId, slot: SlotIndex, allocation: AllocationId, job_id: JobId) {
        let here = (resource_id, slot);
        if self.task_managers[&resource_id].state(slot) == Some(SlotState::Allocated { allocation, job_id }) {
            return;
        }
        if let Some(request) = self.take_request(allocation) {
            match request.placement {
                Placement::Asked { resource_id: other, slot: other_slot, .. } if (other, other_slot) != here => {
                    self.set_slot(other, other_slot, Slot::UNCONFIRMED);
                }
                _ => {}
            }
            if request.job_id != job_id {
                let reason = format!("allocation id {allocation} is held by another job");
                self.send_to_job_master(request.job_id, JobMasterMessage::SlotRequestFailed { allocation, reason });
            }
        }
        if let Some((other, other_slot)) = self.allocations.get(&allocation).copied().filter(|place| *place != here) {
            self.set_slot(other, other_slot, Slot::UNCONFIRMED);
        }
        match self.task_managers[&resource_id].state(slot) {
            Some(SlotState::Pending { allocation: asked, .. }) if asked != allocation => self.requeue(asked),
            _ => {}
        }
        self.set_slot(resource_id, slot, Slot::allocated(allocation, job_id));
    }

    pub(super) fn on_slot_freed(&mut self, resource_id: ResourceId, slot: SlotIndex, allocation: AllocationId) {
        let Some(state) = self.task_managers.get(&resource_id).and_then(|task_manager| task_manager.state(slot)) else {
            return;
        };
        match state {
            SlotState::Allocated { allocation: held, .. } if held == allocation => {}
            // The acceptance was overtaken by the release: the request was served, then freed.
            SlotState::Pending { allocation: asked, .. } if asked == allocation => {
                self.take_request(allocation);
            }
            _ => return, // Stale: the slot no longer holds that allocation.
        }
        self.set_slot(resource_id, slot, Slot::FREE);
    }

    /// A TaskExecutor's answer to a slot request; stale answers are ignored.
    pub(super) fn on_slot_request_result(&mut self, resource_id: ResourceId, allocation: AllocationId, accepted: bool) {
        let Some(&(holder, slot)) = self.allocations.get(&allocation) else { return };
        if holder != resource_id {
            return;
        }
        let Some(SlotState::Pending { job_id, .. }) = self.task_managers[&resource_id].state(slot) else { return };
        if accepted {
            self.take_request(allocation);
            self.set_slot(resource_id, slot, Slot::allocated(allocation, job_id));
        } else {
            // The TaskExecutor holds something else there; its next report says what.
            self.requeue(allocation);
            self.set_slot(resource_id, slot, Slot::UNCONFIRMED);
        }
    }

    /// Marks a free slot pending for a request (the matching step).
    pub(super) fn mark_pending(
        &mut self,
        resource_id: ResourceId,
        slot: SlotIndex,
        allocation: AllocationId,
        job: JobId,
    ) {
        debug_assert!(self.task_managers[&resource_id].slots[slot.index()].is_matchable());
        self.set_slot(resource_id, slot, Slot::pending(allocation, job));
    }
}

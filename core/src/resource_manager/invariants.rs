//! [`ResourceManager::check_invariants`]: the table, its indexes, the requests and the bounds agree.

use super::registry::{Idle, TaskManager};
use super::requests::Placement;
use super::{
    MAX_PENDING_REQUESTS, MAX_SLOTS_PER_TASK_MANAGER, MAX_SLOTS_TOTAL, MAX_TASK_MANAGERS, ResourceManager, SlotState,
};
use crate::ids::{ResourceId, SlotIndex};

fn ensure(holds: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(message()) }
}

impl ResourceManager {
    pub(super) fn check(&self) -> Result<(), String> {
        ensure(self.task_managers.len() <= MAX_TASK_MANAGERS, || "too many TaskManagers".to_string())?;
        ensure(self.requests.len() <= MAX_PENDING_REQUESTS, || "too many pending requests".to_string())?;
        ensure(self.slots_total <= MAX_SLOTS_TOTAL, || "too many slots".to_string())?;
        ensure(self.heartbeat_next.is_some() != self.task_managers.is_empty(), || {
            format!("heartbeat timer {:?} with {} TaskManagers", self.heartbeat_next, self.task_managers.len())
        })?;
        self.check_task_managers()?;
        self.check_table_indexes()?;
        self.check_requests()
    }

    /// Checks each TaskManager on its own, and that the allocation index lists exactly the
    /// allocations of the table at their places.
    ///
    /// Without building the table's map: each slot's allocation must be indexed at that slot, and
    /// there must be as many allocated slots as entries. Two slots with one allocation fail the
    /// first (the index gives one place), so the slots' allocations are distinct and, being as
    /// many as the entries, are all of them.
    fn check_task_managers(&self) -> Result<(), String> {
        ensure(self.registration_order.len() == self.task_managers.len(), || "registration order size".to_string())?;
        let mut allocated = 0usize;
        for (resource_id, task_manager) in &self.task_managers {
            ensure(self.registration_order.get(&task_manager.order) == Some(resource_id), || {
                format!("TaskManager {resource_id} missing from the registration order")
            })?;
            self.check_task_manager(*resource_id, task_manager)?;
            for (index, slot) in task_manager.slots.iter().enumerate() {
                let Some((allocation, _)) = slot.state.allocation() else { continue };
                let place = (*resource_id, SlotIndex(index as u32));
                let indexed = self.allocations.get(&allocation);
                ensure(indexed == Some(&place), || {
                    format!("allocation {allocation} sits in slot {place:?}, indexed at {indexed:?}")
                })?;
                allocated += 1;
            }
        }
        ensure(allocated == self.allocations.len(), || "allocation index out of step with the table".to_string())
    }

    fn check_task_manager(&self, resource_id: ResourceId, task_manager: &TaskManager) -> Result<(), String> {
        let slot_count = task_manager.slots.len();
        ensure(slot_count == task_manager.resources.slots as usize && slot_count > 0, || {
            format!("TaskManager {resource_id} has {slot_count} slots, registered {:?}", task_manager.resources)
        })?;
        ensure(task_manager.resources.slots <= MAX_SLOTS_PER_TASK_MANAGER, || "slots per TaskManager".to_string())?;
        let busy = task_manager.slots.iter().filter(|slot| slot.state != SlotState::Free).count();
        ensure(busy == task_manager.busy_slots as usize, || format!("busy count of {resource_id} is off"))?;
        ensure(task_manager.slots.iter().all(|slot| slot.confirmed || slot.state == SlotState::Free), || {
            format!("TaskManager {resource_id} has an unconfirmed slot that is not free")
        })?;
        let silence = (task_manager.last_heard.after(self.timeouts.heartbeat), resource_id);
        ensure(self.silence_deadlines.contains(&silence), || format!("no heartbeat deadline for {resource_id}"))?;
        match task_manager.idle {
            Idle::Busy => ensure(busy > 0, || format!("idle TaskManager {resource_id} counted busy")),
            Idle::Reported => ensure(busy == 0, || format!("busy TaskManager {resource_id} reported idle")),
            Idle::Since(since) => {
                ensure(busy == 0, || format!("busy TaskManager {resource_id} counted idle"))?;
                let deadline = (since.after(self.timeouts.task_manager_idle), resource_id);
                ensure(self.idle_deadlines.contains(&deadline), || format!("no idle deadline for {resource_id}"))
            }
        }
    }

    /// The free-slot index, the allocation index, counters and deadline sets against the table.
    fn check_table_indexes(&self) -> Result<(), String> {
        let mut total = 0u64;
        let mut free = 0u64;
        // Each matchable slot (distinct by order and index) is in the index, and they are as
        // many: the index is exactly them.
        let mut matchable = 0usize;
        let mut idle_count = 0;
        for task_manager in self.task_managers.values() {
            total += task_manager.slots.len() as u64;
            for (index, slot) in task_manager.slots.iter().enumerate() {
                free += u64::from(slot.state == SlotState::Free);
                if slot.is_matchable() {
                    matchable += 1;
                    let indexed = self.free_slots.contains(&(task_manager.order, SlotIndex(index as u32)));
                    ensure(indexed, || "free-slot index out of step with the table".to_string())?;
                }
            }
            idle_count += usize::from(matches!(task_manager.idle, Idle::Since(_)));
        }
        ensure(total == self.slots_total, || format!("slots_total {} but the table has {total}", self.slots_total))?;
        ensure(free == self.slots_free, || format!("slots_free {} but the table has {free}", self.slots_free))?;
        ensure(matchable == self.free_slots.len(), || "free-slot index out of step with the table".to_string())?;
        ensure(self.silence_deadlines.len() == self.task_managers.len(), || "stray heartbeat deadline".to_string())?;
        ensure(self.idle_deadlines.len() == idle_count, || "stray idle deadline".to_string())
    }

    /// Every request is queued or asked of exactly the slot pending for it, and vice versa.
    fn check_requests(&self) -> Result<(), String> {
        let mut queued = 0;
        let mut asked = 0;
        for (allocation, request) in &self.requests {
            ensure(request.deadline == request.arrived_at.after(self.timeouts.slot_request), || {
                format!("request {allocation} has a wrong deadline")
            })?;
            ensure(self.request_deadlines.contains(&(request.deadline, *allocation)), || {
                format!("request {allocation} has no deadline entry")
            })?;
            match request.placement {
                Placement::Queued => {
                    queued += 1;
                    ensure(self.queue.get(&request.seq) == Some(allocation), || format!("{allocation} not queued"))?;
                    ensure(!self.allocations.contains_key(allocation), || {
                        format!("queued request {allocation} is also in a slot")
                    })?;
                }
                Placement::Asked { resource_id, slot, asked_at } => {
                    asked += 1;
                    let state = self.task_managers.get(&resource_id).and_then(|task_manager| task_manager.state(slot));
                    let expected = SlotState::Pending { allocation: *allocation, job_id: request.job_id };
                    ensure(state == Some(expected), || format!("request {allocation} asked of {state:?}"))?;
                    let deadline = (asked_at.after(self.timeouts.heartbeat), *allocation);
                    ensure(self.ask_deadlines.contains(&deadline), || format!("{allocation} has no ask deadline"))?;
                }
            }
        }
        ensure(self.queue.len() == queued, || "stray queue entry".to_string())?;
        ensure(self.ask_deadlines.len() == asked, || "stray ask deadline".to_string())?;
        ensure(self.request_deadlines.len() == self.requests.len(), || "stray request deadline".to_string())?;
        // Every pending slot is asked by its request (the converse of the check above).
        let pending = self.allocations.iter().filter(|(allocation, (resource_id, slot))| {
            let state = self.task_managers.get(resource_id).and_then(|task_manager| task_manager.state(*slot));
            let asked_here =
                self.requests.get(allocation).is_some_and(|request| request.placement != Placement::Queued);
            matches!(state, Some(SlotState::Pending { .. })) && !asked_here
        });
        ensure(pending.count() == 0, || "a pending slot has no request asking for it".to_string())
    }
}

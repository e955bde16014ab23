//! The JobMaster's slot pool: shared slots, their requests and the TaskManagers holding them.
//!
//! Slot sharing as Flink does it: slot sharing group `g` needs `plan.slots_per_group[g]` shared
//! slots, and shared slot `i` of `g` hosts subtask `i` of every vertex of `g`. Shared slots are
//! numbered densely ([`SlotPosition`]: the groups in name order, then the index). Each is empty,
//! requested from the ResourceManager under an [`AllocationId`] of the JobMaster's choosing, or
//! held on a TaskManager that offered it.
//!
//! The pool counts, per shared slot, the SCHEDULED executions waiting for it, and keeps the
//! number of slots that have waiting executions but are not held ([`SlotPool::missing`]), so
//! "every slot the next deployment needs is held" is an O(1) question. Lookups by allocation and
//! by TaskManager go through ordered maps.
//!
//! Invariants: an allocation names at most one shared slot, and it is pending or held; a held
//! slot's allocation is listed under its TaskManager, and no TaskManager slot holds two of the
//! job's allocations; every listed TaskManager holds at least one slot; `missing` equals a
//! recount.

use crate::ids::{AllocationId, Epoch, Hex128, JobId, ResourceId, SlotIndex, stable_hash128};
use crate::protocol::SlotOffer;
use crate::time::{Duration, Time};
use std::collections::{BTreeMap, BTreeSet};

/// A shared slot of the job: the groups' slots numbered densely, groups in name order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotPosition(pub u32);

impl SlotPosition {
    /// The position as an index into per-slot vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A slot the JobMaster holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldSlot {
    /// The allocation.
    pub allocation: AllocationId,
    /// The TaskManager that offered it.
    pub resource_id: ResourceId,
    /// The slot in that TaskManager's slot table.
    pub slot: SlotIndex,
    /// When the offer was accepted.
    pub since: Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Empty,
    Pending { allocation: AllocationId, requested_at: Time },
    Held(HeldSlot),
}

#[derive(Clone, Copy, Debug)]
struct SharedSlot {
    state: SlotState,
    /// SCHEDULED executions waiting to be deployed into this slot.
    scheduled: u32,
}

#[derive(Clone, Debug)]
struct TaskManagerEntry {
    last_heard: Time,
    /// The job's allocations on this TaskManager, by its slot index.
    slots: BTreeMap<SlotIndex, AllocationId>,
}

/// What the pool made of one offered slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferVerdict {
    /// A requested slot is now held.
    Accepted,
    /// The slot was held already, from the same TaskManager slot: acknowledged again.
    AlreadyHeld,
    /// Unknown, no longer requested, or held elsewhere: the TaskManager should free it.
    Rejected,
}

/// The job's shared slots.
#[derive(Clone, Debug)]
pub struct SlotPool {
    job_id: JobId,
    /// The leader epoch of the JobMaster.
    epoch: Epoch,
    /// Position of each group's slot 0; the last entry is the number of slots.
    group_offsets: Vec<u32>,
    slots: Vec<SharedSlot>,
    by_allocation: BTreeMap<AllocationId, SlotPosition>,
    /// Pending requests by the time they were made.
    requested: BTreeSet<(Time, AllocationId)>,
    task_managers: BTreeMap<ResourceId, TaskManagerEntry>,
    /// TaskManagers by the time they were last heard from.
    heard: BTreeSet<(Time, ResourceId)>,
    /// Slots with SCHEDULED executions that are not held.
    missing: u32,
    /// Requests made so far; part of each new allocation id.
    requests_made: u64,
}

impl SlotPool {
    /// Empty slots: `slots_per_group[g]` for each group `g`.
    pub fn new(job_id: JobId, epoch: Epoch, slots_per_group: &[u32]) -> SlotPool {
        let mut group_offsets = Vec::with_capacity(slots_per_group.len() + 1);
        let mut total = 0u32;
        for &count in slots_per_group {
            group_offsets.push(total);
            total = total.checked_add(count).expect("a job's slot count fits in u32");
        }
        group_offsets.push(total);
        let empty = SharedSlot { state: SlotState::Empty, scheduled: 0 };
        SlotPool {
            job_id,
            epoch,
            group_offsets,
            slots: vec![empty; total as usize],
            by_allocation: BTreeMap::new(),
            requested: BTreeSet::new(),
            task_managers: BTreeMap::new(),
            heard: BTreeSet::new(),
            missing: 0,
            requests_made: 0,
        }
    }

    /// Number of shared slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the job needs no slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Shared slot `index` of group `group`.
    pub fn position(&self, group: usize, index: u32) -> SlotPosition {
        let (start, end) = (self.group_offsets[group], self.group_offsets[group + 1]);
        assert!(index < end - start, "group {group} has {} slots, not {}", end - start, index + 1);
        SlotPosition(start + index)
    }

    /// The group and index of `position`.
    pub fn group_of(&self, position: SlotPosition) -> (usize, u32) {
        let group = self.group_offsets.partition_point(|&offset| offset <= position.0) - 1;
        (group, position.0 - self.group_offsets[group])
    }

    /// Slots with SCHEDULED executions that are not held; zero means the next bulk can deploy.
    pub fn missing(&self) -> u32 {
        self.missing
    }

    /// SCHEDULED executions waiting for `position`.
    pub fn scheduled(&self, position: SlotPosition) -> u32 {
        self.slots[position.index()].scheduled
    }

    /// The slot at `position`, if held.
    pub fn held(&self, position: SlotPosition) -> Option<HeldSlot> {
        match self.slots[position.index()].state {
            SlotState::Held(held) => Some(held),
            _ => None,
        }
    }

    /// Every held slot, by position.
    pub fn held_slots(&self) -> Vec<HeldSlot> {
        self.slots
            .iter()
            .filter_map(|slot| if let SlotState::Held(held) = slot.state { Some(held) } else { None })
            .collect()
    }

    /// Requests made to the ResourceManager and not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.requested.len()
    }

    /// One more SCHEDULED execution waits for `position`; returns the allocation to request if
    /// the slot was neither held nor requested.
    pub fn schedule(&mut self, position: SlotPosition, now: Time) -> Option<AllocationId> {
        let slot = &mut self.slots[position.index()];
        slot.scheduled += 1;
        if slot.scheduled == 1 && !matches!(slot.state, SlotState::Held(_)) {
            self.missing += 1;
        }
        self.request_if_needed(position, now)
    }

    /// One SCHEDULED execution of `position` left that state.
    pub fn unschedule(&mut self, position: SlotPosition) {
        let slot = &mut self.slots[position.index()];
        assert!(slot.scheduled > 0, "slot {} has no scheduled execution to remove", position.0);
        slot.scheduled -= 1;
        if slot.scheduled == 0 && !matches!(slot.state, SlotState::Held(_)) {
            self.missing -= 1;
        }
    }

    /// Requests `position` if executions wait for it and it is empty; returns the new allocation.
    pub fn request_if_needed(&mut self, position: SlotPosition, now: Time) -> Option<AllocationId> {
        let slot = self.slots[position.index()];
        if slot.scheduled == 0 || slot.state != SlotState::Empty {
            return None;
        }
        let allocation = self.next_allocation(position);
        self.slots[position.index()].state = SlotState::Pending { allocation, requested_at: now };
        self.by_allocation.insert(allocation, position);
        self.requested.insert((now, allocation));
        Some(allocation)
    }

    /// A fresh allocation id: a fixed hash of the job, the leader epoch, group, index and request
    /// number. The epoch keeps a recovered job's ids apart from those its previous JobMaster
    /// used, which TaskManagers may still report.
    fn next_allocation(&mut self, position: SlotPosition) -> AllocationId {
        let (group, index) = self.group_of(position);
        loop {
            self.requests_made += 1;
            let hash = stable_hash128(&[
                &self.job_id.0.0.to_le_bytes(),
                &self.epoch.0.to_le_bytes(),
                &(group as u64).to_le_bytes(),
                &index.to_le_bytes(),
                &self.requests_made.to_le_bytes(),
            ]);
            let allocation = AllocationId(Hex128(hash));
            // A collision of 128-bit hashes is not expected; skipping one keeps ids unique anyway.
            if !self.by_allocation.contains_key(&allocation) {
                return allocation;
            }
        }
    }

    /// Takes or refuses one slot offered by `resource_id`.
    pub fn offer(&mut self, resource_id: ResourceId, offer: SlotOffer, now: Time) -> OfferVerdict {
        let Some(&position) = self.by_allocation.get(&offer.allocation) else {
            return OfferVerdict::Rejected;
        };
        match self.slots[position.index()].state {
            SlotState::Held(held) if held.resource_id == resource_id && held.slot == offer.slot => {
                OfferVerdict::AlreadyHeld
            }
            SlotState::Held(_) | SlotState::Empty => OfferVerdict::Rejected,
            SlotState::Pending { allocation, requested_at } => {
                if self.holds_slot_index(resource_id, offer.slot) {
                    return OfferVerdict::Rejected;
                }
                let held = HeldSlot { allocation, resource_id, slot: offer.slot, since: now };
                let slot = &mut self.slots[position.index()];
                slot.state = SlotState::Held(held);
                if slot.scheduled > 0 {
                    self.missing -= 1;
                }
                self.requested.remove(&(requested_at, allocation));
                self.heard_from_new(resource_id, now).slots.insert(offer.slot, allocation);
                OfferVerdict::Accepted
            }
        }
    }

    /// Whether the job holds another allocation in slot `slot` of `resource_id`.
    fn holds_slot_index(&self, resource_id: ResourceId, slot: SlotIndex) -> bool {
        self.task_managers.get(&resource_id).is_some_and(|entry| entry.slots.contains_key(&slot))
    }

    /// The entry of `resource_id`, created (heard from now) if the pool did not know it.
    fn heard_from_new(&mut self, resource_id: ResourceId, now: Time) -> &mut TaskManagerEntry {
        let heard = &mut self.heard;
        self.task_managers.entry(resource_id).or_insert_with(|| {
            heard.insert((now, resource_id));
            TaskManagerEntry { last_heard: now, slots: BTreeMap::new() }
        })
    }

    /// The ResourceManager could not serve `allocation`: the slot is empty again.
    pub fn fail_request(&mut self, allocation: AllocationId) -> Option<SlotPosition> {
        let &position = self.by_allocation.get(&allocation)?;
        let SlotState::Pending { requested_at, .. } = self.slots[position.index()].state else {
            return None;
        };
        self.slots[position.index()].state = SlotState::Empty;
        self.by_allocation.remove(&allocation);
        self.requested.remove(&(requested_at, allocation));
        Some(position)
    }

    /// Pending requests made at or before `deadline`.
    pub fn requests_made_by(&self, deadline: Time) -> Vec<AllocationId> {
        self.requested.iter().take_while(|(at, _)| *at <= deadline).map(|&(_, allocation)| allocation).collect()
    }

    /// When the oldest pending request was made.
    pub fn oldest_request(&self) -> Option<Time> {
        self.requested.first().map(|&(at, _)| at)
    }

    /// Drops every pending request (the job stops); returns their allocations.
    pub fn cancel_requests(&mut self) -> Vec<AllocationId> {
        let cancelled: Vec<AllocationId> = self.requested.iter().map(|&(_, allocation)| allocation).collect();
        for allocation in &cancelled {
            let failed = self.fail_request(*allocation);
            debug_assert!(failed.is_some());
        }
        cancelled
    }

    /// The held slot of `allocation` is gone: the slot is empty again.
    pub fn lose_allocation(&mut self, allocation: AllocationId) -> Option<(SlotPosition, HeldSlot)> {
        let &position = self.by_allocation.get(&allocation)?;
        let held = self.held(position)?;
        let entry = self.task_managers.get_mut(&held.resource_id).expect("a held slot's TaskManager is listed");
        entry.slots.remove(&held.slot);
        if entry.slots.is_empty() {
            self.forget_task_manager(held.resource_id);
        }
        self.empty_held(position);
        Some((position, held))
    }

    /// `resource_id` is gone with every slot it held; returns those slots by position.
    pub fn lose_task_manager(&mut self, resource_id: ResourceId) -> Vec<(SlotPosition, HeldSlot)> {
        let Some(entry) = self.forget_task_manager(resource_id) else { return Vec::new() };
        let mut lost: Vec<(SlotPosition, HeldSlot)> = entry
            .slots
            .values()
            .map(|allocation| {
                let position = self.by_allocation[allocation];
                (position, self.held(position).expect("a listed allocation is held"))
            })
            .collect();
        lost.sort_by_key(|&(position, _)| position);
        for &(position, _) in &lost {
            self.empty_held(position);
        }
        lost
    }

    fn forget_task_manager(&mut self, resource_id: ResourceId) -> Option<TaskManagerEntry> {
        let entry = self.task_managers.remove(&resource_id)?;
        self.heard.remove(&(entry.last_heard, resource_id));
        Some(entry)
    }

    fn empty_held(&mut self, position: SlotPosition) {
        let slot = &mut self.slots[position.index()];
        let SlotState::Held(held) = slot.state else { unreachable!("only held slots are emptied here") };
        slot.state = SlotState::Empty;
        if slot.scheduled > 0 {
            self.missing += 1;
        }
        self.by_allocation.remove(&held.allocation);
    }

    /// Notes a heartbeat answer from `resource_id`; false if the pool does not know it.
    pub fn heard_from(&mut self, resource_id: ResourceId, now: Time) -> bool {
        let Some(entry) = self.task_managers.get_mut(&resource_id) else { return false };
        self.heard.remove(&(entry.last_heard, resource_id));
        entry.last_heard = entry.last_heard.max(now);
        self.heard.insert((entry.last_heard, resource_id));
        true
    }

    /// Whether `resource_id` holds slots of the job (the JobMaster considers it alive).
    pub fn knows(&self, resource_id: ResourceId) -> bool {
        self.task_managers.contains_key(&resource_id)
    }

    /// The TaskManagers holding the job's slots.
    pub fn task_managers(&self) -> impl Iterator<Item = ResourceId> + '_ {
        self.task_managers.keys().copied()
    }

    /// TaskManagers last heard from at or before `deadline`.
    pub fn silent_since(&self, deadline: Time) -> Vec<ResourceId> {
        self.heard.iter().take_while(|(at, _)| *at <= deadline).map(|&(_, resource_id)| resource_id).collect()
    }

    /// When the least recently heard TaskManager was last heard from.
    pub fn least_recently_heard(&self) -> Option<Time> {
        self.heard.first().map(|&(at, _)| at)
    }

    /// Allocations `resource_id` holds for the job that its report lacks, among those held for at
    /// least `grace` (a report may answer a request sent before a recent offer was accepted).
    pub fn missing_from_report(
        &self,
        resource_id: ResourceId,
        reported: &BTreeSet<AllocationId>,
        now: Time,
        grace: Duration,
    ) -> Vec<AllocationId> {
        let Some(entry) = self.task_managers.get(&resource_id) else { return Vec::new() };
        entry
            .slots
            .values()
            .filter(|allocation| !reported.contains(allocation))
            .filter(|allocation| {
                let held = self.held(self.by_allocation[*allocation]).expect("a listed allocation is held");
                held.since.after(grace) <= now
            })
            .copied()
            .collect()
    }

    /// Empties the pool (the job ended); returns the held slots and the pending requests.
    pub fn release_all(&mut self) -> (Vec<HeldSlot>, Vec<AllocationId>) {
        let pending = self.cancel_requests();
        let held = self.held_slots();
        for slot in &held {
            let lost = self.lose_allocation(slot.allocation);
            debug_assert!(lost.is_some());
        }
        (held, pending)
    }

    /// Checks the pool's invariants (see the module doc).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut allocations = 0usize;
        let mut missing = 0u32;
        for (index, slot) in self.slots.iter().enumerate() {
            let position = SlotPosition(index as u32);
            let allocation = match slot.state {
                SlotState::Empty => None,
                SlotState::Pending { allocation, requested_at } => {
                    if !self.requested.contains(&(requested_at, allocation)) {
                        return Err(format!("pending slot {index} is not in the request list"));
                    }
                    Some(allocation)
                }
                SlotState::Held(held) => {
                    self.check_held(index, held)?;
                    Some(held.allocation)
                }
            };
            if let Some(allocation) = allocation {
                allocations += 1;
                if self.by_allocation.get(&allocation) != Some(&position) {
                    return Err(format!("allocation {allocation} of slot {index} is not mapped to it"));
                }
            }
            missing += u32::from(slot.scheduled > 0 && !matches!(slot.state, SlotState::Held(_)));
        }
        self.check_maps(allocations, missing)
    }

    /// A held slot is listed under its TaskManager at its slot index (so, with the count check
    /// of `check_maps`, no TaskManager slot holds two allocations).
    fn check_held(&self, index: usize, held: HeldSlot) -> Result<(), String> {
        let listed = self.task_managers.get(&held.resource_id).and_then(|entry| entry.slots.get(&held.slot));
        if listed != Some(&held.allocation) {
            return Err(format!(
                "held slot {index} is not listed under TaskManager {} slot {}",
                held.resource_id, held.slot
            ));
        }
        Ok(())
    }

    fn check_maps(&self, allocations: usize, missing: u32) -> Result<(), String> {
        if allocations != self.by_allocation.len() {
            return Err(format!("{} allocations mapped, {allocations} pending or held", self.by_allocation.len()));
        }
        if missing != self.missing {
            return Err(format!("missing slots counted {} but recounted {missing}", self.missing));
        }
        let listed: usize = self.task_managers.values().map(|entry| entry.slots.len()).sum();
        let held = self.slots.iter().filter(|slot| matches!(slot.state, SlotState::Held(_))).count();
        if listed != held || self.task_managers.values().any(|entry| entry.slots.is_empty()) {
            return Err(format!("{listed} allocations listed under TaskManagers, {held} held"));
        }
        if self.heard.len() != self.task_managers.len() {
            return Err("the heartbeat index and the TaskManager list differ".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> SlotPool {
        SlotPool::new(JobId(Hex128(9)), Epoch(1), &[2, 3])
    }

    fn offer(allocation: AllocationId, slot: u32) -> SlotOffer {
        SlotOffer { allocation, slot: SlotIndex(slot) }
    }

    const TM: ResourceId = ResourceId(Hex128(77));

    #[test]
    fn positions_number_groups_in_order() {
        let pool = pool();
        assert_eq!(pool.position(1, 2), SlotPosition(4));
        assert_eq!(pool.group_of(SlotPosition(4)), (1, 2));
        assert_eq!(pool.group_of(SlotPosition(1)), (0, 1));
    }

    #[test]
    fn scheduling_requests_each_slot_once_and_counts_missing_slots() {
        let mut pool = pool();
        let first = pool.schedule(SlotPosition(0), Time(1)).expect("a request");
        assert_eq!(pool.schedule(SlotPosition(0), Time(1)), None, "a second user shares the request");
        let second = pool.schedule(SlotPosition(3), Time(1)).expect("a request");
        assert_ne!(first, second);
        assert_eq!(pool.missing(), 2);
        assert_eq!(pool.offer(TM, offer(first, 0), Time(2)), OfferVerdict::Accepted);
        assert_eq!(pool.offer(TM, offer(first, 0), Time(2)), OfferVerdict::AlreadyHeld);
        assert_eq!(pool.offer(TM, offer(second, 0), Time(2)), OfferVerdict::Rejected, "TM slot 0 is taken");
        assert_eq!(pool.offer(TM, offer(second, 1), Time(2)), OfferVerdict::Accepted);
        assert_eq!(pool.missing(), 0);
        pool.check_invariants().expect("consistent");
    }

    #[test]
    fn unknown_and_failed_allocations_are_rejected() {
        let mut pool = pool();
        let allocation = pool.schedule(SlotPosition(1), Time(0)).expect("a request");
        assert_eq!(pool.offer(TM, offer(AllocationId(Hex128(5)), 0), Time(1)), OfferVerdict::Rejected);
        assert_eq!(pool.fail_request(allocation), Some(SlotPosition(1)));
        assert_eq!(pool.fail_request(allocation), None, "a second failure is stale");
        assert_eq!(pool.offer(TM, offer(allocation, 0), Time(1)), OfferVerdict::Rejected);
        assert_eq!(pool.missing(), 1, "the execution still waits");
        pool.check_invariants().expect("consistent");
    }

    #[test]
    fn losing_a_task_manager_empties_its_slots_and_rerequests_needed_ones() {
        let mut pool = pool();
        let allocation = pool.schedule(SlotPosition(2), Time(0)).expect("a request");
        pool.offer(TM, offer(allocation, 3), Time(1));
        assert_eq!(pool.missing(), 0);
        let lost = pool.lose_task_manager(TM);
        assert_eq!(lost.len(), 1);
        assert_eq!(pool.missing(), 1);
        assert!(!pool.knows(TM));
        let again = pool.request_if_needed(SlotPosition(2), Time(2)).expect("re-requested");
        assert_ne!(again, allocation, "a new request gets a new allocation id");
        pool.check_invariants().expect("consistent");
    }

    #[test]
    fn reports_lacking_an_allocation_count_only_after_the_grace() {
        let mut pool = pool();
        let allocation = pool.schedule(SlotPosition(0), Time(0)).expect("a request");
        pool.offer(TM, offer(allocation, 0), Time(10));
        let empty = BTreeSet::new();
        assert!(pool.missing_from_report(TM, &empty, Time(15), Duration(10)).is_empty());
        assert_eq!(pool.missing_from_report(TM, &empty, Time(20), Duration(10)), [allocation]);
        let (held, pending) = pool.release_all();
        assert_eq!((held.len(), pending.len()), (1, 0));
        pool.check_invariants().expect("consistent");
    }
}

//! The slot table: which allocation holds which slot, and which tasks run in it.
//!
//! Mechanism only: the table changes when the TaskExecutor tells it to and asserts that every
//! change keeps its invariants (a slot is given only when free, an allocation sits in one slot,
//! a task only enters an accepted slot of its own job, task states move along legal transitions).

use crate::ids::{AllocationId, JobId, SlotIndex};
use crate::protocol::{ExecutionId, ExecutionState, SlotStatus};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most tasks one slot holds: one subtask per vertex of a slot sharing group.
pub const TASKS_PER_SLOT_MAX: usize = 256;

/// How many ended executions the TaskExecutor remembers, to ignore late duplicate deployments.
pub const ENDED_EXECUTIONS_MAX: usize = 4096;

/// One slot allocation: a slot given to a job by the ResourceManager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Allocation {
    pub id: AllocationId,
    pub job: JobId,
    /// Whether the job's JobMaster accepted the offer; never goes back to `false`.
    pub accepted: bool,
    /// When the ResourceManager gave the slot, for the slot timeout.
    pub allocated_at: Time,
    /// When the slot was last offered; `None` until the first offer goes out.
    pub offered_at: Option<Time>,
    /// The tasks in the slot, none terminal.
    pub tasks: BTreeMap<ExecutionId, ExecutionState>,
}

/// Every slot of the TaskManager, by index; the length never changes.
#[derive(Clone, Debug)]
pub(super) struct SlotTable {
    slots: Vec<Option<Allocation>>,
    /// Which slot each task sits in, the reverse of `Allocation::tasks`.
    task_slots: BTreeMap<ExecutionId, SlotIndex>,
}

impl SlotTable {
    pub fn new(count: u32) -> SlotTable {
        SlotTable { slots: vec![None; count as usize], task_slots: BTreeMap::new() }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The allocation in `slot`; `None` for a free slot or an index out of range.
    pub fn get(&self, slot: SlotIndex) -> Option<&Allocation> {
        self.slots.get(slot.index()).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, slot: SlotIndex) -> Option<&mut Allocation> {
        self.slots.get_mut(slot.index()).and_then(Option::as_mut)
    }

    pub fn is_free(&self, slot: SlotIndex) -> bool {
        matches!(self.slots.get(slot.index()), Some(None))
    }

    /// Every slot with its allocation, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotIndex, Option<&Allocation>)> + '_ {
        self.slots.iter().enumerate().map(|(index, allocation)| (SlotIndex(index as u32), allocation.as_ref()))
    }

    /// Allocated slots only, in index order.
    pub fn allocated(&self) -> impl Iterator<Item = (SlotIndex, &Allocation)> + '_ {
        self.iter().filter_map(|(slot, allocation)| allocation.map(|allocation| (slot, allocation)))
    }

    /// The slot holding `allocation`.
    pub fn find(&self, allocation: AllocationId) -> Option<SlotIndex> {
        self.allocated().find(|(_, held)| held.id == allocation).map(|(slot, _)| slot)
    }

    /// The slots allocated to `job`, in index order.
    pub fn slots_of(&self, job: JobId) -> Vec<SlotIndex> {
        self.allocated().filter(|(_, held)| held.job == job).map(|(slot, _)| slot).collect()
    }

    /// Every job holding a slot.
    pub fn jobs(&self) -> BTreeSet<JobId> {
        self.allocated().map(|(_, held)| held.job).collect()
    }

    /// The slot report the ResourceManager gets.
    pub fn report(&self) -> Vec<SlotStatus> {
        self.iter().map(|(slot, held)| SlotStatus { slot, allocation: held.map(|held| (held.id, held.job)) }).collect()
    }

    /// Gives the free `slot` to `job` under `allocation`.
    pub fn allocate(&mut self, slot: SlotIndex, allocation: AllocationId, job: JobId, now: Time) {
        assert!(self.is_free(slot), "slot {slot} is given twice");
        assert!(self.find(allocation).is_none(), "allocation {allocation} would sit in two slots");
        self.slots[slot.index()] = Some(Allocation {
            id: allocation,
            job,
            accepted: false,
            allocated_at: now,
            offered_at: None,
            tasks: BTreeMap::new(),
        });
    }

    /// Frees `slot`; returns what it held, tasks included (they are forgotten here).
    pub fn free(&mut self, slot: SlotIndex) -> Allocation {
        let held = self.slots.get_mut(slot.index()).and_then(Option::take);
        let held = held.unwrap_or_else(|| panic!("slot {slot} freed while not allocated"));
        for execution in held.tasks.keys() {
            let removed = self.task_slots.remove(execution);
            assert_eq!(removed, Some(slot), "task {execution} was indexed in another slot");
        }
        held
    }

    /// The slot and state of a task on this TaskExecutor.
    pub fn task(&self, execution: ExecutionId) -> Option<(SlotIndex, ExecutionState)> {
        let slot = *self.task_slots.get(&execution)?;
        let state = self.get(slot).and_then(|held| held.tasks.get(&execution).copied());
        let state = state.unwrap_or_else(|| panic!("task index points {execution} at slot {slot}, which lacks it"));
        Some((slot, state))
    }

    /// Every task with its state, in execution order.
    pub fn tasks(&self) -> BTreeMap<ExecutionId, ExecutionState> {
        self.allocated().flat_map(|(_, held)| held.tasks.iter().map(|(e, s)| (*e, *s))).collect()
    }

    /// Every task's id, in execution order (the index: nothing is copied).
    pub fn task_ids(&self) -> impl Iterator<Item = ExecutionId> + '_ {
        self.task_slots.keys().copied()
    }

    /// Puts a new task into `slot` in DEPLOYING.
    pub fn add_task(&mut self, slot: SlotIndex, execution: ExecutionId) {
        assert!(!self.task_slots.contains_key(&execution), "task {execution} deployed twice");
        let held = self.get_mut(slot).unwrap_or_else(|| panic!("task {execution} put into free slot {slot}"));
        assert!(held.accepted, "task {execution} put into unaccepted slot {slot}");
        assert_eq!(held.job, execution.job, "task {execution} put into slot {slot} of another job");
        assert!(held.tasks.len() < TASKS_PER_SLOT_MAX, "slot {slot} holds too many tasks");
        held.tasks.insert(execution, ExecutionState::Deploying);
        self.task_slots.insert(execution, slot);
    }

    /// Moves a task to `state`, which must be a legal next state; a terminal task leaves its slot.
    pub fn set_task_state(&mut self, execution: ExecutionId, state: ExecutionState) {
        let (slot, previous) = self.task(execution).unwrap_or_else(|| panic!("unknown task {execution} updated"));
        assert!(previous.can_become(state), "task {execution} moved illegally from {previous} to {state}");
        let held = self.get_mut(slot).unwrap_or_else(|| panic!("task {execution} in free slot {slot}"));
        if state.is_terminal() {
            held.tasks.remove(&execution);
            self.task_slots.remove(&execution);
        } else {
            held.tasks.insert(execution, state);
        }
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        let mut allocations = BTreeSet::new();
        let mut task_count = 0;
        for (slot, held) in self.allocated() {
            if !allocations.insert(held.id) {
                return Err(format!("allocation {} sits in two slots", held.id));
            }
            if !held.accepted && !held.tasks.is_empty() {
                return Err(format!("slot {slot} holds tasks but its offer was never accepted"));
            }
            if held.tasks.len() > TASKS_PER_SLOT_MAX {
                return Err(format!("slot {slot} holds {} tasks", held.tasks.len()));
            }
            for (execution, state) in &held.tasks {
                if execution.job != held.job {
                    return Err(format!("task {execution} sits in slot {slot} of job {}", held.job));
                }
                if state.is_terminal() {
                    return Err(format!("terminal task {execution} ({state}) still sits in slot {slot}"));
                }
                if self.task_slots.get(execution) != Some(&slot) {
                    return Err(format!("task {execution} in slot {slot} is indexed elsewhere"));
                }
            }
            task_count += held.tasks.len();
        }
        if task_count != self.task_slots.len() {
            return Err(format!("{} tasks indexed, {task_count} in slots", self.task_slots.len()));
        }
        Ok(())
    }
}

/// The executions that ended here (or were canceled before they arrived), most recent last,
/// so that a late duplicate deployment does not start an attempt a second time.
#[derive(Clone, Debug, Default)]
pub(super) struct EndedExecutions {
    states: BTreeMap<ExecutionId, ExecutionState>,
    order: VecDeque<ExecutionId>,
}

impl EndedExecutions {
    /// Remembers `execution` ended in `state` (the first record wins), forgetting the oldest when full.
    pub fn record(&mut self, execution: ExecutionId, state: ExecutionState) {
        assert!(state.is_terminal(), "ended execution {execution} recorded as {state}");
        if self.states.contains_key(&execution) {
            return;
        }
        self.states.insert(execution, state);
        self.order.push_back(execution);
        if self.order.len() > ENDED_EXECUTIONS_MAX
            && let Some(oldest) = self.order.pop_front()
        {
            self.states.remove(&oldest);
        }
    }

    /// The remembered ended executions of `job`, in id order.
    pub fn of_job(&self, job: JobId) -> impl Iterator<Item = (ExecutionId, ExecutionState)> + '_ {
        self.states.iter().filter(move |(execution, _)| execution.job == job).map(|(e, s)| (*e, *s))
    }

    /// How `execution` ended, if it did here and is still remembered.
    pub fn get(&self, execution: ExecutionId) -> Option<ExecutionState> {
        self.states.get(&execution).copied()
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        if self.order.len() != self.states.len() || self.order.len() > ENDED_EXECUTIONS_MAX {
            return Err(format!("ended executions: {} in order, {} states", self.order.len(), self.states.len()));
        }
        match self.states.iter().find(|(_, state)| !state.is_terminal()) {
            Some((execution, state)) => Err(format!("ended execution {execution} recorded as {state}")),
            None => Ok(()),
        }
    }
}

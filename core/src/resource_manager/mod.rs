//! The ResourceManager: Flink's slot bookkeeping between TaskManagers and JobMasters, sans IO.
//!
//! It lives in the JobManager process at [`Address::ResourceManager`] and acts in the leader epoch
//! it was built with: every envelope it sends carries that epoch, and it ignores messages of any
//! other epoch. It owns:
//!
//! - the **registry** of TaskExecutors (`registry.rs`): their slots, in registration order, each
//!   free, pending (asked of the TaskExecutor for an allocation) or allocated; the TaskExecutor's
//!   slot report, sent on registration and with every heartbeat answer, is the truth the table is
//!   reconciled with (as Flink's SlotManager does);
//! - the **heartbeats**: as in Flink the ResourceManager asks, every `heartbeat.interval`, and a
//!   TaskExecutor silent for `heartbeat.timeout` is lost: its slots go, the jobs that had a slot
//!   there are told, and requests being served there go back to the queue;
//! - the **slot requests** of JobMasters (`requests.rs`): a FIFO queue matched against free slots
//!   in the order (TaskManager registration order, slot index), so one TaskManager fills before
//!   the next (Flink without `cluster.evenly-spread-out-slots`); each request fails after
//!   `slot.request.timeout` if no slot was acquired;
//! - the **active resource manager hook**: [`Event::WorkersNeeded`] when the queue outgrows the
//!   free slots, [`Event::WorkerIdle`] for a TaskManager without a busy slot for
//!   `resourcemanager.taskmanager-timeout`. Standalone deployments ignore both.
//!
//! Invariants ([`ResourceManager::check_invariants`]): an allocation id sits in at most one slot
//! and a slot belongs to at most one job; an outstanding request is either queued (and no slot
//! holds its allocation) or asked of exactly the one slot that is pending for it, and every
//! pending slot has such a request; the free-slot index, the counters and every deadline set
//! agree with the table; every map is within its bound ([`MAX_TASK_MANAGERS`],
//! [`MAX_SLOTS_PER_TASK_MANAGER`], [`MAX_SLOTS_TOTAL`], [`MAX_PENDING_REQUESTS`]).
//!
//! A free slot that the TaskExecutor has not yet confirmed as free (it refused a request for it,
//! did not answer one, or the slot was taken back from an allocation the table had to move) is
//! counted as free but not matched until that TaskExecutor's next slot report says it is free:
//! otherwise a refused request would be sent straight back to the slot that refused it.
//!
//! Surprising input: messages of another epoch, with a sender that is not the TaskExecutor or
//! JobMaster they name, duplicate requests, stale answers and stale `SlotFreed` are ignored; a
//! TaskExecutor that is not registered is told to register again (`DisconnectResourceManager`); a
//! registration beyond a bound is rejected (an already registered TaskExecutor keeps its old
//! registration); a request under an allocation id another job holds fails with
//! `SlotRequestFailed`. Nothing a peer sends can trip an assertion.

mod invariants;
mod registry;
mod requests;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::ids::{AllocationId, Epoch, JobId, ResourceId, SlotIndex};
use crate::protocol::{
    Address, Envelope, Event, JobMasterMessage, Message, Output, ResourceManagerMessage, Role, TaskExecutorMessage,
    WorkerResources,
};
use crate::time::{Duration, Time};
use registry::TaskManager;
use requests::Request;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most TaskManagers registered at once; registrations beyond it are rejected.
pub const MAX_TASK_MANAGERS: usize = 100_000;
/// Most slots one TaskManager may offer; a registration with more is rejected.
pub const MAX_SLOTS_PER_TASK_MANAGER: u32 = 1_024;
/// Most slots over all TaskManagers; a registration that would pass it is rejected.
pub const MAX_SLOTS_TOTAL: u64 = 1_000_000;
/// Most outstanding slot requests (queued or asked of a TaskExecutor); more fail at once.
pub const MAX_PENDING_REQUESTS: usize = 100_000;

/// What the ResourceManager is fed.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A message from a TaskExecutor or a JobMaster.
    Message {
        /// The sender.
        from: Address,
        /// The leader epoch the sender acts in.
        epoch: Epoch,
        /// The payload.
        message: ResourceManagerMessage,
    },
    /// Time passed: fire the timers that are due.
    Tick,
}

/// One slot as the ResourceManager's table holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nobody holds it.
    Free,
    /// The TaskExecutor was asked to give it to `job_id` under `allocation`; no answer yet.
    Pending {
        /// The allocation asked for.
        allocation: AllocationId,
        /// The job asking.
        job_id: JobId,
    },
    /// The TaskExecutor holds it for `job_id` under `allocation`.
    Allocated {
        /// The allocation.
        allocation: AllocationId,
        /// The job holding it.
        job_id: JobId,
    },
}

impl SlotState {
    /// The allocation in the slot, pending or allocated.
    pub fn allocation(self) -> Option<(AllocationId, JobId)> {
        match self {
            SlotState::Free => None,
            SlotState::Pending { allocation, job_id } | SlotState::Allocated { allocation, job_id } => {
                Some((allocation, job_id))
            }
        }
    }
}

/// A registered TaskManager, for the REST API and the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerView {
    /// The TaskManager.
    pub resource_id: ResourceId,
    /// What it offered when it registered.
    pub resources: WorkerResources,
    /// When it (last) registered.
    pub registered_at: Time,
    /// When it was last heard from (registration or heartbeat answer).
    pub last_heartbeat_at: Time,
    /// Its slots, by slot index.
    pub slots: Vec<SlotState>,
}

/// An outstanding slot request, for the REST API and the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRequestView {
    /// The allocation id the JobMaster chose.
    pub allocation: AllocationId,
    /// The job asking.
    pub job_id: JobId,
    /// When it arrived.
    pub arrived_at: Time,
    /// When it fails unless a slot was acquired (`slot.request.timeout` after arrival).
    pub deadline: Time,
    /// The slot it was asked of, while a TaskExecutor is being asked; `None` while queued.
    pub asked_of: Option<(ResourceId, SlotIndex)>,
}

/// The timeouts the ResourceManager works with, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timeouts {
    heartbeat_interval: Duration,
    heartbeat: Duration,
    slot_request: Duration,
    task_manager_idle: Duration,
}

/// Flink's ResourceManager with its SlotManager, as a state machine (see the module doc).
#[derive(Clone, Debug)]
pub struct ResourceManager {
    epoch: Epoch,
    timeouts: Timeouts,
    now: Time,
    /// Registered TaskManagers.
    task_managers: BTreeMap<ResourceId, TaskManager>,
    /// Registration order → TaskManager; the first key of the matching order.
    registration_order: BTreeMap<u64, ResourceId>,
    registration_order_next: u64,
    /// Free slots confirmed by their TaskExecutor, in matching order.
    free_slots: BTreeSet<(u64, SlotIndex)>,
    slots_total: u64,
    /// Slots in state Free, confirmed or not.
    slots_free: u64,
    /// Every allocation in a slot (pending or allocated) → that slot.
    allocations: BTreeMap<AllocationId, (ResourceId, SlotIndex)>,
    /// Outstanding slot requests.
    requests: BTreeMap<AllocationId, Request>,
    /// Queued requests by arrival number (a re-queued request keeps its number).
    queue: BTreeMap<u64, AllocationId>,
    request_seq_next: u64,
    /// `slot.request.timeout` deadlines of outstanding requests.
    request_deadlines: BTreeSet<(Time, AllocationId)>,
    /// Deadlines for TaskExecutors to answer a slot request.
    ask_deadlines: BTreeSet<(Time, AllocationId)>,
    /// Heartbeat timeouts of TaskManagers.
    silence_deadlines: BTreeSet<(Time, ResourceId)>,
    /// When idle TaskManagers become worth reporting.
    idle_deadlines: BTreeSet<(Time, ResourceId)>,
    /// When the next heartbeat requests go out; `None` while no TaskManager is registered.
    heartbeat_next: Option<Time>,
    /// TaskManagers needed at the last [`Event::WorkersNeeded`] check.
    workers_needed_last: u32,
    outputs: VecDeque<Output>,
}

impl ResourceManager {
    /// A ResourceManager with no TaskManagers, acting in the JobManager leader's `epoch`.
    pub fn new(config: &Config, epoch: Epoch) -> ResourceManager {
        assert!(config.heartbeat.interval > Duration::ZERO, "config: heartbeat.interval must be positive");
        ResourceManager {
            epoch,
            timeouts: Timeouts {
                heartbeat_interval: config.heartbeat.interval,
                heartbeat: config.heartbeat.timeout,
                slot_request: config.resource_manager.slot_request_timeout,
                task_manager_idle: config.resource_manager.task_manager_timeout,
            },
            now: Time::ZERO,
            task_managers: BTreeMap::new(),
            registration_order: BTreeMap::new(),
            registration_order_next: 0,
            free_slots: BTreeSet::new(),
            slots_total: 0,
            slots_free: 0,
            allocations: BTreeMap::new(),
            requests: BTreeMap::new(),
            queue: BTreeMap::new(),
            request_seq_next: 0,
            request_deadlines: BTreeSet::new(),
            ask_deadlines: BTreeSet::new(),
            silence_deadlines: BTreeSet::new(),
            idle_deadlines: BTreeSet::new(),
            heartbeat_next: None,
            workers_needed_last: 0,
            outputs: VecDeque::new(),
        }
    }

    /// The leader epoch this ResourceManager acts in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Whether `resource_id` is registered.
    pub fn is_registered(&self, resource_id: ResourceId) -> bool {
        self.task_managers.contains_key(&resource_id)
    }

    /// Every registered TaskManager, in registration order.
    pub fn task_managers(&self) -> Vec<TaskManagerView> {
        self.registration_order.values().filter_map(|resource_id| self.task_manager(*resource_id)).collect()
    }

    /// One registered TaskManager.
    pub fn task_manager(&self, resource_id: ResourceId) -> Option<TaskManagerView> {
        self.task_managers.get(&resource_id).map(|task_manager| task_manager.view(resource_id))
    }

    /// Slots of all registered TaskManagers.
    pub fn slots_total(&self) -> u64 {
        self.slots_total
    }

    /// Slots nobody holds or is being given (including those awaiting their TaskExecutor's confirmation).
    pub fn slots_free(&self) -> u64 {
        self.slots_free
    }

    /// Outstanding slot requests, queued or being asked of a TaskExecutor.
    pub fn pending_request_count(&self) -> usize {
        self.requests.len()
    }

    /// Outstanding slot requests in arrival order.
    pub fn pending_requests(&self) -> Vec<PendingRequestView> {
        let mut views: Vec<(u64, PendingRequestView)> =
            self.requests.iter().map(|(allocation, request)| (request.seq, request.view(*allocation))).collect();
        views.sort_by_key(|(seq, _)| *seq);
        views.into_iter().map(|(_, view)| view).collect()
    }

    /// The slots allocated to `job_id`, by TaskManager and slot.
    pub fn allocations_of(&self, job_id: JobId) -> Vec<(ResourceId, SlotIndex, AllocationId)> {
        let mut found = Vec::new();
        for (allocation, (resource_id, slot)) in &self.allocations {
            let state = self.task_managers.get(resource_id).and_then(|task_manager| task_manager.state(*slot));
            if state == Some(SlotState::Allocated { allocation: *allocation, job_id }) {
                found.push((*resource_id, *slot, *allocation));
            }
        }
        found.sort();
        found
    }

    fn send(&mut self, to: Address, message: Message) {
        let envelope = Envelope { from: Address::ResourceManager, to, epoch: self.epoch, message };
        self.outputs.push_back(Output::Send(envelope));
    }

    fn send_to_task_executor(&mut self, resource_id: ResourceId, message: TaskExecutorMessage) {
        self.send(Address::TaskExecutor(resource_id), Message::TaskExecutor(message));
    }

    fn send_to_job_master(&mut self, job_id: JobId, message: JobMasterMessage) {
        self.send(Address::JobMaster(job_id), Message::JobMaster(message));
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn on_message(&mut self, from: Address, message: ResourceManagerMessage) {
        use ResourceManagerMessage as M;
        match message {
            M::RegisterTaskExecutor { resource_id, resources, slot_report } => {
                if from == Address::TaskExecutor(resource_id) {
                    self.on_register(resource_id, resources, &slot_report);
                }
            }
            M::TaskExecutorHeartbeat { resource_id, slot_report } => {
                if self.known_task_executor(from, resource_id) {
                    self.on_heartbeat(resource_id, &slot_report);
                }
            }
            M::SlotRequestResult { resource_id, allocation, accepted } => {
                if self.known_task_executor(from, resource_id) {
                    self.on_slot_request_result(resource_id, allocation, accepted);
                }
            }
            M::SlotFreed { resource_id, slot, allocation } => {
                if self.known_task_executor(from, resource_id) {
                    self.on_slot_freed(resource_id, slot, allocation);
                }
            }
            M::DisconnectTaskExecutor { resource_id, reason } => {
                if from == Address::TaskExecutor(resource_id) && self.is_registered(resource_id) {
                    self.lose_task_manager(resource_id, reason, false);
                }
            }
            M::RequestSlot { job_id, allocation } => {
                if from == Address::JobMaster(job_id) {
                    self.on_request_slot(job_id, allocation);
                }
            }
            M::CancelSlotRequest { job_id, allocation } => {
                if from == Address::JobMaster(job_id) {
                    self.on_cancel_slot_request(job_id, allocation);
                }
            }
            M::DisconnectJobMaster { job_id } => {
                if from == Address::JobMaster(job_id) {
                    self.on_disconnect_job_master(job_id);
                }
            }
        }
    }

    /// Whether a TaskExecutor message comes from a registered TaskExecutor; one that is not
    /// registered is told to register again, one with a forged sender is ignored.
    fn known_task_executor(&mut self, from: Address, resource_id: ResourceId) -> bool {
        if from != Address::TaskExecutor(resource_id) {
            return false;
        }
        if self.is_registered(resource_id) {
            return true;
        }
        let reason = format!("TaskExecutor {resource_id} is not registered with the ResourceManager");
        self.send_to_task_executor(resource_id, TaskExecutorMessage::DisconnectResourceManager { reason });
        false
    }

    /// Fires the timers that are due, in a fixed order.
    fn on_tick(&mut self) {
        let now = self.now;
        while let Some((_, resource_id)) = first_due(&self.silence_deadlines, now) {
            let reason = format!(
                "heartbeat of TaskManager {resource_id} timed out: no answer within heartbeat.timeout ({})",
                self.timeouts.heartbeat
            );
            self.lose_task_manager(resource_id, reason, true);
        }
        while let Some((_, allocation)) = first_due(&self.request_deadlines, now) {
            self.fail_timed_out_request(allocation);
        }
        while let Some((_, allocation)) = first_due(&self.ask_deadlines, now) {
            self.retry_unanswered_ask(allocation);
        }
        if self.heartbeat_next.is_some_and(|next| next <= now) {
            self.send_heartbeats();
        }
        while let Some((_, resource_id)) = first_due(&self.idle_deadlines, now) {
            self.report_idle(resource_id);
        }
    }

    fn send_heartbeats(&mut self) {
        let targets: Vec<ResourceId> = self.registration_order.values().copied().collect();
        for resource_id in targets {
            self.send_to_task_executor(resource_id, TaskExecutorMessage::ResourceManagerHeartbeat);
        }
        self.heartbeat_next =
            if self.task_managers.is_empty() { None } else { Some(self.now.after(self.timeouts.heartbeat_interval)) };
    }

    /// The earliest deadline of the timers that are due at `now` or before.
    fn next_deadline(&self) -> Option<Time> {
        [
            self.silence_deadlines.first().map(|(time, _)| *time),
            self.request_deadlines.first().map(|(time, _)| *time),
            self.ask_deadlines.first().map(|(time, _)| *time),
            self.heartbeat_next,
            self.idle_deadlines.first().map(|(time, _)| *time),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The first entry of a deadline set if it is due at `now`.
fn first_due<T: Copy + Ord>(deadlines: &BTreeSet<(Time, T)>, now: Time) -> Option<(Time, T)> {
    deadlines.first().copied().filter(|(deadline, _)| *deadline <= now)
}

impl Role for ResourceManager {
    type Input = Input;

    fn handle(&mut self, now: Time, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
        match input {
            Input::Tick => self.on_tick(),
            Input::Message { from, epoch, message } => {
                if epoch != self.epoch {
                    return; // Another leader's message (stale or future): not ours to act on.
                }
                self.on_message(from, message);
            }
        }
        self.serve_queue();
        self.check_workers_needed();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.next_deadline()
    }

    fn check_invariants(&self) -> Result<(), String> {
        self.check()
    }
}

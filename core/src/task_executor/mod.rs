//! The TaskExecutor: one per TaskManager process, Flink's `TaskExecutor` as a sans-IO machine.
//!
//! It owns the TaskManager's slot table and the bookkeeping of the tasks in it, its registration
//! with the ResourceManager, and its liveness view of the ResourceManager and of every JobMaster
//! holding one of its slots. Tasks are opaque: the TaskExecutor asks its driver to start and
//! cancel them ([`Output::Task`]) and learns their states from the driver ([`Input::TaskReport`]).
//!
//! What it promises:
//! - **Fencing.** It follows one JobManager leader epoch, adopted from the first
//!   `RegistrationAccepted` (or any higher epoch, which also makes it register again). Messages from
//!   a lower epoch change nothing. Every envelope it sends carries the epoch it follows.
//! - **Registration.** Until accepted it registers with exponential backoff (Flink's
//!   `cluster.registration.*` defaults); a refusal waits 10 s. A silent ResourceManager
//!   (`heartbeat.timeout`) or a disconnect makes it register again with the slots it holds.
//! - **Slots.** A slot the ResourceManager gives to a job is offered to that job's JobMaster until
//!   accepted; an offer not accepted within [`SLOT_TIMEOUT`] is withdrawn and the slot freed. A
//!   JobMaster silent for `heartbeat.timeout` (or disconnected) loses every slot and task of its job.
//! - **Tasks.** A task runs only in an accepted slot of its own job; its states move only along
//!   [`ExecutionState::can_become`]; every state the driver reports goes on to the job's JobMaster.
//!
//! Invariants ([`TaskExecutor::check_invariants`]): the slot count never changes; an allocation
//! sits in at most one slot; every task sits in an accepted slot allocated to its job, in a
//! non-terminal state; a JobMaster is watched exactly while its job holds a slot; every bounded
//! collection is within its bound ([`TASKS_PER_SLOT_MAX`], [`ENDED_EXECUTIONS_MAX`], one pending
//! offer per slot).

mod config;
mod jobs;
mod registration;
mod slots;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use config::{
    OFFER_RETRY_INTERVAL_MAX, REGISTRATION_REFUSED_DELAY, REGISTRATION_TIMEOUT_INITIAL, REGISTRATION_TIMEOUT_MAX,
    SLOT_TIMEOUT, SLOTS_MAX, TaskExecutorConfig, TaskExecutorConfigError,
};
pub use slots::{ENDED_EXECUTIONS_MAX, TASKS_PER_SLOT_MAX};

use crate::ids::{AllocationId, CheckpointId, Epoch, JobId, ResourceId, SlotIndex};
use crate::protocol::{
    Address, Envelope, ExecutionId, ExecutionState, Message, Output, Role, TaskCheckpointReport, TaskCommand,
    TaskExecutorMessage, TaskReport,
};
use crate::time::{Duration, Time};
use slots::{EndedExecutions, SlotTable};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a TaskExecutor is fed.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A message from a JobManager role.
    Message {
        /// The sender.
        from: Address,
        /// The leader epoch the sender acts in.
        epoch: Epoch,
        /// The payload.
        message: TaskExecutorMessage,
    },
    /// The driver reports a task's new state.
    TaskReport(TaskReport),
    /// The driver reports a task's answer to a checkpoint barrier.
    CheckpointReport(TaskCheckpointReport),
    /// The driver reports that a task's input ended and it waits for its final checkpoint.
    FinalCheckpointAwaited {
        /// The attempt.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended.
        checkpoint_latest: Option<CheckpointId>,
    },
    /// Time passed; due timers fire.
    Tick,
    /// Leader retrieval found a leader in `epoch` (from the HA store): a higher one is followed
    /// at once, without waiting for its first message or for the old leader's heartbeat timeout.
    LeaderFound {
        /// The leader's epoch.
        epoch: Epoch,
    },
}

/// Who holds a slot, as [`TaskExecutor::slots`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nobody.
    Free,
    /// A job, under an allocation of the ResourceManager.
    Allocated {
        /// The allocation id.
        allocation: AllocationId,
        /// The job.
        job: JobId,
        /// Whether the job's JobMaster accepted the slot (tasks may be deployed only then).
        accepted: bool,
    },
}

/// One slot with the tasks in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// The slot's index.
    pub slot: SlotIndex,
    /// Who holds it.
    pub state: SlotState,
    /// The tasks in it (none terminal), by execution.
    pub tasks: BTreeMap<ExecutionId, ExecutionState>,
}

/// The TaskExecutor's connection to the ResourceManager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Registration {
    /// Registering: the next attempt goes out at `retry_at` with a timeout of `next_timeout`.
    Unregistered { retry_at: Time, next_timeout: Duration },
    /// Registered; the ResourceManager was last heard at `heard_at`.
    Registered { heard_at: Time },
}

/// One TaskManager's TaskExecutor.
#[derive(Clone, Debug)]
pub struct TaskExecutor {
    resource_id: ResourceId,
    config: TaskExecutorConfig,
    /// The latest time seen; inputs never go back from it.
    now: Time,
    /// The JobManager leader epoch followed; `Epoch(0)` until one is known.
    leader_epoch: Epoch,
    registration: Registration,
    slots: SlotTable,
    /// When each JobMaster holding a slot here was last heard; keys are exactly the jobs with slots.
    job_masters_heard_at: BTreeMap<JobId, Time>,
    ended: EndedExecutions,
    /// Slots to offer at the end of the current step, batched per job; empty between steps.
    offers_due: BTreeSet<SlotIndex>,
    outputs: VecDeque<Output>,
}

impl TaskExecutor {
    /// A TaskExecutor with every slot free; its first registration is queued as an output.
    pub fn new(resource_id: ResourceId, config: TaskExecutorConfig, now: Time) -> TaskExecutor {
        if let Err(problem) = config.check() {
            panic!("invalid TaskExecutorConfig: {problem}");
        }
        let mut executor = TaskExecutor {
            resource_id,
            slots: SlotTable::new(config.slots),
            registration: Registration::Unregistered {
                retry_at: now,
                next_timeout: config.registration_timeout_initial,
            },
            config,
            now,
            leader_epoch: Epoch(0),
            job_masters_heard_at: BTreeMap::new(),
            ended: EndedExecutions::default(),
            offers_due: BTreeSet::new(),
            outputs: VecDeque::new(),
        };
        executor.start_registration();
        executor
    }

    /// This TaskManager's id.
    pub fn resource_id(&self) -> ResourceId {
        self.resource_id
    }

    /// Every slot, in index order, with who holds it and its tasks.
    pub fn slots(&self) -> Vec<SlotSnapshot> {
        let snapshot = |(slot, held): (SlotIndex, Option<&slots::Allocation>)| SlotSnapshot {
            slot,
            state: held.map_or(SlotState::Free, |held| SlotState::Allocated {
                allocation: held.id,
                job: held.job,
                accepted: held.accepted,
            }),
            tasks: held.map(|held| held.tasks.clone()).unwrap_or_default(),
        };
        self.slots.iter().map(snapshot).collect()
    }

    /// The allocations whose slot holds tasks (cheaper than [`TaskExecutor::slots`]: nothing is
    /// copied, for the simulator's cluster-wide check after every event).
    pub fn busy_allocations(&self) -> impl Iterator<Item = AllocationId> + '_ {
        self.slots.allocated().filter(|(_, held)| !held.tasks.is_empty()).map(|(_, held)| held.id)
    }

    /// Every task on this TaskExecutor (ended ones have left) with its last known state.
    pub fn tasks(&self) -> BTreeMap<ExecutionId, ExecutionState> {
        self.slots.tasks()
    }

    /// Whether the ResourceManager accepted this TaskExecutor and has not been lost since.
    pub fn is_registered(&self) -> bool {
        matches!(self.registration, Registration::Registered { .. })
    }

    /// The JobManager leader epoch this TaskExecutor follows; `Epoch(0)` while unknown.
    pub fn leader_epoch(&self) -> Epoch {
        self.leader_epoch
    }

    fn address(&self) -> Address {
        Address::TaskExecutor(self.resource_id)
    }

    /// Sends `message` in the followed epoch.
    fn send(&mut self, to: Address, message: Message) {
        let envelope = Envelope { from: self.address(), to, epoch: self.leader_epoch, message };
        self.outputs.push_back(Output::Send(envelope));
    }

    fn on_message(&mut self, from: Address, epoch: Epoch, message: TaskExecutorMessage) {
        if !sender_fits(from, &message) {
            return; // Nonsense: not a JobManager role, or not the role that sends this message.
        }
        if epoch < self.leader_epoch {
            return; // A deposed leader: fenced off.
        }
        if epoch > self.leader_epoch {
            self.follow_leader(epoch, Some(&message));
        }
        if let Address::JobMaster(job) = from
            && let Some(heard_at) = self.job_masters_heard_at.get_mut(&job)
        {
            *heard_at = self.now;
        }
        use TaskExecutorMessage::*;
        match message {
            RegistrationAccepted => self.on_registration_accepted(),
            RegistrationRejected { .. } => self.on_registration_rejected(),
            ResourceManagerHeartbeat => self.on_resource_manager_heartbeat(),
            DisconnectResourceManager { .. } => self.start_registration(),
            RequestSlot { slot, job_id, allocation } => self.on_request_slot(slot, job_id, allocation),
            JobMasterHeartbeat { job_id } => self.on_job_master_heartbeat(job_id),
            SlotOfferResult { job_id, accepted, rejected } => self.on_slot_offer_result(job_id, &accepted, &rejected),
            DeployTask(deployment) => self.on_deploy_task(deployment),
            CancelTask { execution } => self.on_cancel_task(execution),
            FreeSlot { job_id, allocation } => self.on_free_slot(job_id, allocation),
            DisconnectJobMaster { job_id, .. } => self.release_job(job_id),
            TriggerCheckpoint { execution, barrier, location } => {
                self.on_trigger_checkpoint(execution, barrier, location)
            }
            NotifyCheckpoint { execution, checkpoint, complete } => {
                if self.slots.task(execution).is_some() {
                    let command = TaskCommand::NotifyCheckpoint { execution, checkpoint, complete };
                    self.outputs.push_back(Output::Task(command));
                }
            }
        }
    }

    fn on_tick(&mut self) {
        self.check_resource_manager();
        self.check_job_masters();
        self.check_slot_timeouts();
        self.check_offer_retries();
    }
}

/// Whether `from` is the role that sends `message`: the ResourceManager for registration and slot
/// requests, the job's JobMaster for job messages, any JobManager role for a JobMaster disconnect.
fn sender_fits(from: Address, message: &TaskExecutorMessage) -> bool {
    use TaskExecutorMessage::*;
    let expected = match message {
        RegistrationAccepted
        | RegistrationRejected { .. }
        | ResourceManagerHeartbeat
        | DisconnectResourceManager { .. }
        | RequestSlot { .. } => Some(Address::ResourceManager),
        JobMasterHeartbeat { job_id } | SlotOfferResult { job_id, .. } | FreeSlot { job_id, .. } => {
            Some(Address::JobMaster(*job_id))
        }
        DeployTask(deployment) => Some(Address::JobMaster(deployment.execution.job)),
        CancelTask { execution } | TriggerCheckpoint { execution, .. } | NotifyCheckpoint { execution, .. } => {
            Some(Address::JobMaster(execution.job))
        }
        DisconnectJobMaster { .. } => None,
    };
    from.is_job_manager() && expected.is_none_or(|expected| expected == from)
}

impl Role for TaskExecutor {
    type Input = Input;

    fn handle(&mut self, now: Time, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
        match input {
            Input::Message { from, epoch, message } => self.on_message(from, epoch, message),
            Input::LeaderFound { epoch } => {
                if epoch > self.leader_epoch {
                    self.follow_leader(epoch, None);
                }
            }
            Input::TaskReport(report) => self.on_task_report(report),
            Input::CheckpointReport(report) => self.on_checkpoint_report(report),
            Input::FinalCheckpointAwaited { execution, checkpoint_latest } => {
                self.on_final_checkpoint_awaited(execution, checkpoint_latest)
            }
            Input::Tick => self.on_tick(),
        }
        self.flush_offers();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        let registration = match self.registration {
            Registration::Unregistered { retry_at, .. } => retry_at,
            Registration::Registered { heard_at } => heard_at.after(self.config.heartbeat_timeout),
        };
        let job_masters =
            self.job_masters_heard_at.values().map(|heard_at| heard_at.after(self.config.heartbeat_timeout));
        let offers = self.slots.allocated().filter(|(_, held)| !held.accepted).flat_map(|(_, held)| {
            let retry_at = held.offered_at.unwrap_or(held.allocated_at).after(self.config.offer_retry_interval);
            [retry_at, held.allocated_at.after(self.config.slot_timeout)]
        });
        std::iter::once(registration).chain(job_masters).chain(offers).min()
    }

    fn check_invariants(&self) -> Result<(), String> {
        self.config.check()?;
        if self.slots.len() != self.config.slots as usize {
            return Err(format!("{} slots, configured {}", self.slots.len(), self.config.slots));
        }
        self.slots.check_invariants()?;
        self.ended.check_invariants()?;
        // The slot table's check above proved its index lists exactly the tasks in its slots.
        if let Some(execution) = self.slots.task_ids().find(|execution| self.ended.get(*execution).is_some()) {
            return Err(format!("task {execution} runs but is recorded as ended"));
        }
        // The same sets without building them (this runs after every event in simulation).
        let every_watched_has_a_slot =
            self.job_masters_heard_at.keys().all(|job| self.slots.allocated().any(|(_, held)| held.job == *job));
        let every_slot_is_watched =
            self.slots.allocated().all(|(_, held)| self.job_masters_heard_at.contains_key(&held.job));
        if !every_watched_has_a_slot || !every_slot_is_watched {
            let watched: BTreeSet<JobId> = self.job_masters_heard_at.keys().copied().collect();
            return Err(format!("watched JobMasters {watched:?}, jobs with slots {:?}", self.slots.jobs()));
        }
        if !self.offers_due.is_empty() {
            return Err(format!("{} offers left unsent after a step", self.offers_due.len()));
        }
        if let Some((slot, _)) = self.slots.allocated().find(|(_, held)| !held.accepted && held.offered_at.is_none()) {
            return Err(format!("slot {slot} is allocated but was never offered"));
        }
        self.check_registration()
    }
}

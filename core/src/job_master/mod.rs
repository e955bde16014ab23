//! The JobMaster: one job's scheduler, slot pool and failover, as a sans-IO state machine.
//!
//! Flink's `JobMaster` with its `DefaultScheduler`, for streaming jobs. A [`JobMaster`] lives in
//! the JobManager process at [`Address::JobMaster`]`(job_id)`, acts in the leader epoch it was
//! created in, and owns:
//! - the **executions** ([`executions`]): the current attempt of every subtask, in a `Vec` by
//!   global ordinal (memory O(subtasks));
//! - the **slot pool** ([`slots`]): shared slots per slot sharing group, requested from the
//!   ResourceManager, offered by TaskExecutors, deployed into in bulk once all are held;
//! - **heartbeats** to the TaskExecutors holding its slots, and the loss of those that go silent;
//! - **failover** ([`failover`], [`restart`]): restart sets (region or full), the restart strategy,
//!   the RESTARTING phase, and failing the job when the strategy says so;
//! - the **exception history** ([`exceptions`]) and the job status with its timestamps;
//! - the **checkpoint coordinator** (`checkpointing.rs`), and **savepoints** (`savepoints.rs`):
//!   client savepoint requests, stop-with-savepoint, submission from a savepoint (INITIALIZING
//!   while its `_metadata` is read, at any parallelism), and dropping a checkpoint whose state a
//!   task cannot read so the restart restores the previous one.
//!
//! Job status starts INITIALIZING and moves at once through CREATED to RUNNING, requesting slots
//! (a job submitted from a savepoint first waits for its metadata, then does the same, or fails).
//! Messages from another epoch, or from a sender that is not the peer the message is about, are
//! ignored; so are reports about attempts that are not current.
//!
//! Invariants (checked by [`JobMaster::check_invariants`]): statuses and execution states change
//! only along `can_become`; every DEPLOYING, INITIALIZING, RUNNING or CANCELING execution sits in
//! the slot this JobMaster holds for its shared-slot position, on a TaskManager it considers
//! alive; the SCHEDULED executions are exactly those waiting in the pool's counts; the job is
//! RESTARTING exactly while a restart is pending; a globally terminal job holds no slots and has
//! no pending requests; the exception history holds at most 16 entries. One input queues at most
//! O(subtasks) outputs, which the driver drains before the next input.

mod checkpointing;
pub mod exceptions;
pub mod executions;
pub mod failover;
mod handlers;
mod invariants;
pub mod restart;
mod savepoints;
mod scheduler;
pub mod slots;

#[cfg(test)]
mod finished_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod savepoint_tests;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::ids::{Epoch, JobId, ResourceId, SubtaskIndex, VertexIndex};
use crate::plan::JobPlan;
use crate::plan::execution::ExecutionGraph;
use crate::protocol::{
    Address, DispatcherMessage, Envelope, Event, ExecutionState, JobArtifacts, JobMasterMessage, JobStatus, Message,
    Output, ResourceManagerMessage, Role, StorageReply, TaskExecutorMessage,
};
use crate::rng::Rng;
use crate::time::{Duration, Time};
use exceptions::{ExceptionEntry, ExceptionHistory};
use executions::{ExecutionView, Executions, StateCounts};
use failover::{Failover, PendingRestart};
use restart::RestartBackoff;
use slots::{HeldSlot, SlotPool};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// What a JobMaster is fed.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A message from a peer.
    Message {
        /// The sender.
        from: Address,
        /// The epoch the sender acts in.
        epoch: Epoch,
        /// The payload.
        message: JobMasterMessage,
    },
    /// Time passed; timers that are due fire.
    Tick,
    /// The driver's answer to a storage request (checkpoint metadata).
    Storage(StorageReply),
}

/// The timing settings the JobMaster uses, from the cluster's configuration.
#[derive(Clone, Copy, Debug)]
struct Timing {
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    /// How long a slot request may stay unanswered before the JobMaster gives up on it itself:
    /// twice `slot.request.timeout`, as a backstop for lost messages (the ResourceManager's own
    /// timeout normally answers first with `SlotRequestFailed`).
    slot_request_backstop: Duration,
}

/// One job's JobMaster.
#[derive(Debug)]
pub struct JobMaster {
    job_id: JobId,
    plan: JobPlan,
    epoch: Epoch,
    timing: Timing,
    status: JobStatus,
    status_timestamps: [Option<Time>; JobStatus::ALL.len()],
    /// Why the job failed (FAILING and FAILED only).
    failure: Option<String>,
    executions: Executions,
    /// Slot sharing group (index into the pool's groups) of each vertex.
    vertex_group: Vec<usize>,
    /// Vertices of each slot sharing group.
    group_vertices: Vec<Vec<VertexIndex>>,
    pool: SlotPool,
    /// Ordinals of the SCHEDULED executions: the next bulk to deploy.
    scheduled: BTreeSet<u64>,
    failover: Failover,
    restart: PendingRestart,
    backoff: RestartBackoff,
    rng: Rng,
    exceptions: ExceptionHistory,
    restarts: u32,
    /// The checkpoint coordinator, when checkpointing is on.
    checkpointing: Option<checkpointing::Checkpointing>,
    /// The savepoint the job was submitted from, while it is read and once it was.
    savepoint: Option<savepoints::SavepointRestore>,
    /// Executions deployed to a TaskManager that its heartbeats did not report, since when.
    unreported: BTreeMap<crate::protocol::ExecutionId, Time>,
    next_heartbeat: Time,
    now: Time,
    outputs: VecDeque<Output>,
    /// The job as submitted, shipped with every deployment (None: the TaskManagers know it).
    artifacts: Option<Arc<JobArtifacts>>,
    /// The lowest checkpoint id this job may use (recovery by a new leader raises it).
    checkpoint_id_floor: crate::ids::CheckpointId,
    /// Data addresses of the TaskManagers that offered slots, from their offers.
    data_addresses: BTreeMap<ResourceId, String>,
    /// The job's configuration (cluster settings with the job's own), for the REST API.
    config: Box<Config>,
}

/// Attempts each leader epoch numbers from: a JobMaster of a later leader (a recovered job)
/// never reuses an attempt number of its predecessor, whose tasks may still run for a moment
/// (zombies) and must not be mistaken for the new ones, by the exchange or by the file sink.
pub const ATTEMPTS_PER_EPOCH: u32 = 1 << 20;

fn first_attempt(epoch: Epoch) -> crate::ids::AttemptNumber {
    let incarnation = u32::try_from(epoch.0.saturating_sub(1)).unwrap_or(u32::MAX);
    crate::ids::AttemptNumber(incarnation.saturating_mul(ATTEMPTS_PER_EPOCH))
}

impl JobMaster {
    /// A JobMaster for `plan` that starts scheduling at once (INITIALIZING → CREATED → RUNNING).
    pub fn new(job_id: JobId, plan: JobPlan, config: &Config, epoch: Epoch, seed: u64, now: Time) -> JobMaster {
        JobMaster::with_savepoint(job_id, plan, config, epoch, seed, now, None)
    }

    /// A JobMaster for `plan`; with `savepoint` (a savepoint or retained checkpoint directory) it
    /// stays INITIALIZING until the driver read its `_metadata`, then restores from it (see
    /// `savepoints.rs`), else it starts at once.
    pub fn with_savepoint(
        job_id: JobId,
        plan: JobPlan,
        config: &Config,
        epoch: Epoch,
        seed: u64,
        now: Time,
        savepoint: Option<String>,
    ) -> JobMaster {
        let graph = ExecutionGraph::new(&plan);
        let groups: Vec<&String> = plan.slots_per_group.keys().collect();
        let vertex_group: Vec<usize> = plan
            .vertices
            .iter()
            .map(|vertex| groups.binary_search(&&vertex.slot_sharing_group).expect("every vertex's group has slots"))
            .collect();
        let mut group_vertices = vec![Vec::new(); groups.len()];
        for vertex in &plan.vertices {
            group_vertices[vertex_group[vertex.index.index()]].push(vertex.index);
        }
        let slots_per_group: Vec<u32> = plan.slots_per_group.values().copied().collect();
        let timing = Timing {
            heartbeat_interval: config.heartbeat.interval,
            heartbeat_timeout: config.heartbeat.timeout,
            slot_request_backstop: config.resource_manager.slot_request_timeout.saturating_mul(2),
        };
        let mut status_timestamps = [None; JobStatus::ALL.len()];
        status_timestamps[JobStatus::Initializing as usize] = Some(now);
        let mut job_master = JobMaster {
            job_id,
            pool: SlotPool::new(job_id, epoch, &slots_per_group),
            failover: Failover::new(config.failover_strategy, &graph),
            restart: PendingRestart::new(graph.subtask_count()),
            executions: Executions::new(job_id, graph, first_attempt(epoch)),
            plan,
            epoch,
            timing,
            status: JobStatus::Initializing,
            status_timestamps,
            failure: None,
            vertex_group,
            group_vertices,
            scheduled: BTreeSet::new(),
            backoff: RestartBackoff::new(config.restart_strategy),
            rng: Rng::new(seed),
            exceptions: ExceptionHistory::default(),
            restarts: 0,
            unreported: BTreeMap::new(),
            checkpointing: None,
            savepoint: None,
            next_heartbeat: now.after(timing.heartbeat_interval),
            now,
            outputs: VecDeque::new(),
            artifacts: None,
            checkpoint_id_floor: crate::ids::CheckpointId(1),
            data_addresses: BTreeMap::new(),
            config: Box::new(config.clone()),
        };
        // Its own generator, so enabling checkpointing does not change the restart jitter.
        let checkpoint_seed = seed ^ 0x6368_6563_6b70_6f69;
        match savepoint {
            Some(location) => job_master.read_savepoint(location, config.checkpoint.clone(), checkpoint_seed),
            None => {
                let first = crate::ids::CheckpointId(1);
                job_master.checkpointing =
                    checkpointing::Checkpointing::new(&config.checkpoint, &job_master, checkpoint_seed, first);
                job_master.start();
            }
        }
        job_master
    }

    /// Makes every checkpoint id this job uses at least `floor` (the HA checkpoint id counter).
    pub fn raise_checkpoint_id_floor(&mut self, floor: crate::ids::CheckpointId) {
        self.checkpoint_id_floor = self.checkpoint_id_floor.max(floor);
        if let Some(checkpointing) = &mut self.checkpointing {
            checkpointing.raise_checkpoint_id_next(floor);
        }
    }

    /// The checkpoint coordinator, when checkpointing is on.
    pub fn checkpoint_coordinator(&self) -> Option<&crate::checkpoint::CheckpointCoordinator> {
        self.checkpointing.as_ref().map(|checkpointing| checkpointing.coordinator())
    }

    /// The job's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The data address (host:port) `resource_id` gave in its slot offer, if it offered any.
    pub fn data_address(&self, resource_id: ResourceId) -> Option<&str> {
        self.data_addresses.get(&resource_id).map(String::as_str)
    }

    /// Ships `artifacts` with every deployment from now on, so TaskManagers in other processes
    /// can plan the job.
    pub fn ship(&mut self, artifacts: Arc<JobArtifacts>) {
        self.artifacts = Some(artifacts);
    }

    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The planned job.
    pub fn plan(&self) -> &JobPlan {
        &self.plan
    }

    /// The leader epoch the JobMaster acts in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The job's status.
    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// Why the job failed, once it is FAILING or FAILED (the root exception).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// When the job first entered each status it has been in (Flink's REST `timestamps`).
    pub fn status_timestamps(&self) -> BTreeMap<JobStatus, Time> {
        JobStatus::ALL
            .iter()
            .zip(self.status_timestamps)
            .filter_map(|(&status, time)| time.map(|time| (status, time)))
            .collect()
    }

    /// Subtasks of the whole job per execution state (every state, zeros included).
    pub fn task_counts(&self) -> BTreeMap<ExecutionState, u32> {
        counts_map(self.executions.counts())
    }

    /// Subtasks of `vertex` per execution state, if the vertex exists.
    pub fn vertex_task_counts(&self, vertex: VertexIndex) -> Option<BTreeMap<ExecutionState, u32>> {
        self.executions.vertex_counts(vertex).map(counts_map)
    }

    /// The current attempt of subtask `subtask` of `vertex`, if it exists.
    pub fn execution(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Option<ExecutionView> {
        self.executions.ordinal_at(vertex, subtask).map(|ordinal| self.executions.view(ordinal))
    }

    /// The current attempt of every subtask, vertex by vertex.
    pub fn executions(&self) -> impl Iterator<Item = ExecutionView> + '_ {
        (0..self.executions.len()).map(|ordinal| self.executions.view(ordinal))
    }

    /// The exception history, newest first.
    pub fn exceptions(&self) -> impl Iterator<Item = &ExceptionEntry> + '_ {
        self.exceptions.newest_first()
    }

    /// The slots the job holds, by shared-slot position.
    pub fn held_slots(&self) -> Vec<HeldSlot> {
        self.pool.held_slots()
    }

    /// Slot requests sent to the ResourceManager and not answered yet.
    pub fn pending_slot_requests(&self) -> usize {
        self.pool.pending_requests()
    }

    /// Restarts decided so far (Flink's `numRestarts`).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The TaskManagers the job holds slots on, which it heartbeats.
    pub fn task_managers(&self) -> Vec<ResourceId> {
        self.pool.task_managers().collect()
    }

    fn address(&self) -> Address {
        Address::JobMaster(self.job_id)
    }

    fn send(&mut self, to: Address, message: Message) {
        let envelope = Envelope { from: self.address(), to, epoch: self.epoch, message };
        self.outputs.push_back(Output::Send(envelope));
    }

    fn send_to_resource_manager(&mut self, message: ResourceManagerMessage) {
        self.send(Address::ResourceManager, Message::ResourceManager(message));
    }

    fn send_to_task_executor(&mut self, resource_id: ResourceId, message: TaskExecutorMessage) {
        self.send(Address::TaskExecutor(resource_id), Message::TaskExecutor(message));
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Moves the job to `to`, records the time, and tells observers and the Dispatcher.
    fn set_status(&mut self, to: JobStatus) {
        let from = self.status;
        assert!(from.can_become(to), "job {}: illegal status change {from} -> {to}", self.job_id);
        self.status = to;
        debug_assert_eq!(JobStatus::ALL[to as usize], to, "timestamps are indexed like JobStatus::ALL");
        self.status_timestamps[to as usize].get_or_insert(self.now);
        self.event(Event::JobStatusChanged { job_id: self.job_id, from, to });
        let failure = if matches!(to, JobStatus::Failing | JobStatus::Failed) { self.failure.clone() } else { None };
        let report =
            DispatcherMessage::JobStatusChanged { job_id: self.job_id, status: to, tasks: self.task_counts(), failure };
        self.send(Address::Dispatcher, Message::Dispatcher(report));
    }
}

/// A count array as the map the REST API and the Dispatcher use.
fn counts_map(counts: &StateCounts) -> BTreeMap<ExecutionState, u32> {
    ExecutionState::ALL.iter().zip(counts).map(|(&state, &count)| (state, count)).collect()
}

impl Role for JobMaster {
    type Input = Input;

    fn handle(&mut self, now: Time, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
        let tick = matches!(input, Input::Tick);
        match input {
            Input::Message { from, epoch, message } => self.on_message(from, epoch, message),
            Input::Tick => self.on_tick(),
            Input::Storage(reply) => self.on_storage_reply(reply),
        }
        self.check_job_done();
        self.sync_checkpointing(tick);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.status.is_globally_terminal() {
            return None;
        }
        let timing = &self.timing;
        [
            Some(self.next_heartbeat),
            self.pool.least_recently_heard().map(|heard| heard.after(timing.heartbeat_timeout)),
            self.pool.oldest_request().map(|requested| requested.after(timing.slot_request_backstop)),
            self.restart.deadline(),
            self.checkpoint_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn check_invariants(&self) -> Result<(), String> {
        invariants::check(self)
    }
}

//! The payloads of every conversation, grouped by receiving role.

use crate::checkpoint::{AckMetrics, DeclineReason, TaskStateHandle};
use crate::dataflow::Barrier;
use crate::ids::{AllocationId, AttemptNumber, CheckpointId, JobId, ResourceId, SlotIndex, SubtaskIndex, VertexIndex};
use crate::job::JobGraph;
use crate::protocol::{Address, ExecutionState, JobStatus};
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One attempt of one subtask of one job (Flink's `ExecutionAttemptID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecutionId {
    /// The job.
    pub job: JobId,
    /// The vertex.
    pub vertex: VertexIndex,
    /// The subtask.
    pub subtask: SubtaskIndex,
    /// The attempt; a restart makes the next one.
    pub attempt: AttemptNumber,
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/v{}/{}#{}", &self.job.to_string()[..8], self.vertex, self.subtask, self.attempt)
    }
}

/// What a TaskManager offers: its slots and memory.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerResources {
    /// Task slots (`taskmanager.numberOfTaskSlots`).
    pub slots: u32,
    /// Managed memory, split evenly across slots.
    pub managed_memory_bytes: u64,
}

/// One slot as its TaskManager reports it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// The slot.
    pub slot: SlotIndex,
    /// The allocation and job holding it, if any.
    pub allocation: Option<(AllocationId, JobId)>,
}

/// A slot given to a JobMaster by a TaskExecutor.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotOffer {
    /// The allocation the ResourceManager made.
    pub allocation: AllocationId,
    /// The slot on the offering TaskManager.
    pub slot: SlotIndex,
}

/// Everything a TaskExecutor needs to start one task.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct TaskDeployment {
    /// Which attempt of which subtask.
    pub execution: ExecutionId,
    /// The slot's allocation (must belong to the job on the receiving TaskExecutor).
    pub allocation: AllocationId,
    /// The vertex name, for logs and the UI.
    pub vertex_name: String,
    /// The vertex's parallelism.
    pub parallelism: u32,
    /// What to restore state from, if anything.
    pub restore: Option<RestoreSpec>,
    /// What the TaskManager needs to plan the job itself (a TaskManager in another process
    /// knows nothing of it otherwise); shared by every deployment of the job.
    #[serde(default)]
    pub job: Option<Arc<JobArtifacts>>,
    /// Where every subtask of the job runs for this deployment round, so producers know which
    /// TaskManager each consumer is on; shared by the round's deployments.
    #[serde(default)]
    pub placement: Option<Arc<Placement>>,
}

/// A job as submitted, for a TaskManager to plan it exactly as the JobManager did: running
/// `dispatcher::prepare(cluster_config, graph, job_config, parallelism)` gives the same plan.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct JobArtifacts {
    /// The job graph.
    pub graph: JobGraph,
    /// The JobManager's cluster configuration keys.
    pub cluster_config: BTreeMap<String, String>,
    /// The submission's configuration keys (above the job file's).
    pub job_config: BTreeMap<String, String>,
    /// The submission's default parallelism.
    pub parallelism: Option<u32>,
}

/// A TaskManager as a JobMaster knows it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManagerLocation {
    /// Its process instance.
    pub resource_id: ResourceId,
    /// Where its data channels are accepted (`host:port`; empty where there is no network).
    pub data_address: String,
}

/// Where the subtasks of a job run: `subtasks[vertex][subtask]` indexes `task_managers`
/// (`u32::MAX`: not placed).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The TaskManagers named below.
    pub task_managers: Vec<TaskManagerLocation>,
    /// Per vertex, per subtask, the index of its TaskManager.
    pub subtasks: Vec<Vec<u32>>,
}

impl Placement {
    /// Where `subtask` of `vertex` runs, if placed.
    pub fn location(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Option<&TaskManagerLocation> {
        let index = *self.subtasks.get(vertex.index())?.get(subtask.0 as usize)?;
        self.task_managers.get(index as usize)
    }
}

/// What a new attempt restores: a completed checkpoint (or savepoint) and the state files of it
/// that the subtask reads.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// Its directory; the handles' file names are relative to it.
    pub location: String,
    /// The subtask's own state file; after a change of parallelism, every old subtask's file
    /// that `checkpoint::rescale::reads` assigns to it (key groups overlap, or old subtask `j`
    /// with `j mod p` = this subtask). Empty when the subtask had no state.
    pub states: Vec<TaskStateHandle>,
    /// The subtask had finished in that checkpoint: it is deployed as finished (it does not run
    /// its chain, waits for a final checkpoint, then ends its outputs). `states` is then empty.
    #[serde(default)]
    pub finished: bool,
}

/// A job as clients submit it.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    /// A fixed id (as Flink's `--jobid`, and for recovery); `None` lets the Dispatcher assign one.
    pub job_id: Option<JobId>,
    /// The job graph (a job file or the builder API's output).
    pub graph: JobGraph,
    /// Default parallelism for this job (the CLI's `-p`).
    pub parallelism: Option<u32>,
    /// Configuration keys for this job, above the cluster's.
    pub config: BTreeMap<String, String>,
    /// A savepoint or retained checkpoint directory to restore the job from (Flink's
    /// `execution.state-recovery.path`); its `_metadata` is read before the job starts.
    pub savepoint: Option<String>,
}

/// A job as the Dispatcher reports it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job id.
    pub job_id: JobId,
    /// The job name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// When the Dispatcher accepted it.
    pub start_time: Time,
    /// When it reached a terminal status.
    pub end_time: Option<Time>,
    /// Subtasks per execution state of the current attempts.
    pub tasks: BTreeMap<ExecutionState, u32>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// To the ResourceManager.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum ResourceManagerMessage {
    /// A TaskExecutor (re-)registers with its resources and slot report.
    RegisterTaskExecutor {
        /// The TaskManager process instance.
        resource_id: ResourceId,
        /// Its slots and memory.
        resources: WorkerResources,
        /// Its slots' current allocations.
        slot_report: Vec<SlotStatus>,
    },
    /// A TaskExecutor answers a heartbeat with its slot report.
    TaskExecutorHeartbeat {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Its slots' current allocations.
        slot_report: Vec<SlotStatus>,
    },
    /// A TaskExecutor says whether it took the slot the ResourceManager asked for.
    SlotRequestResult {
        /// The TaskManager.
        resource_id: ResourceId,
        /// The allocation asked for.
        allocation: AllocationId,
        /// Whether the slot was free and is now allocated.
        accepted: bool,
    },
    /// A TaskExecutor freed a slot.
    SlotFreed {
        /// The TaskManager.
        resource_id: ResourceId,
        /// The slot.
        slot: SlotIndex,
        /// The allocation it held.
        allocation: AllocationId,
    },
    /// A TaskExecutor leaves.
    DisconnectTaskExecutor {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Why.
        reason: String,
    },
    /// A JobMaster asks for a slot under an allocation id of its choosing.
    RequestSlot {
        /// The job.
        job_id: JobId,
        /// The allocation id.
        allocation: AllocationId,
    },
    /// A JobMaster no longer needs a pending request.
    CancelSlotRequest {
        /// The job.
        job_id: JobId,
        /// The allocation id.
        allocation: AllocationId,
    },
    /// A JobMaster ends: its pending requests are dropped.
    DisconnectJobMaster {
        /// The job.
        job_id: JobId,
    },
}

/// To a JobMaster.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum JobMasterMessage {
    /// The ResourceManager could not serve a slot request in time (or at all).
    SlotRequestFailed {
        /// The allocation id.
        allocation: AllocationId,
        /// Why.
        reason: String,
    },
    /// The ResourceManager lost a TaskManager.
    TaskManagerLost {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Why.
        reason: String,
    },
    /// A TaskExecutor offers slots the ResourceManager allocated to this job.
    OfferSlots {
        /// The TaskManager.
        resource_id: ResourceId,
        /// The slots.
        offers: Vec<SlotOffer>,
        /// Where the TaskManager accepts data channels (empty where there is no network).
        #[serde(default)]
        data_address: String,
    },
    /// A task changed state on its TaskExecutor.
    TaskStateChanged {
        /// The attempt.
        execution: ExecutionId,
        /// The new state.
        state: ExecutionState,
        /// The failure, for FAILED.
        error: Option<String>,
        /// For FAILED: the task could not read its state file of this checkpoint (corrupt or
        /// missing), so restoring from it again is pointless.
        unreadable_checkpoint: Option<CheckpointId>,
    },
    /// A TaskExecutor answers a heartbeat with the allocations and tasks it holds for this job,
    /// so a lost task state report or a lost deployment is noticed (Flink reconciles
    /// deployments through heartbeats the same way).
    TaskExecutorHeartbeat {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Allocations of this job it holds.
        allocations: Vec<AllocationId>,
        /// This job's tasks it runs, and those that recently ended here, with their states.
        executions: Vec<(ExecutionId, ExecutionState)>,
    },
    /// A TaskExecutor disconnects from this job.
    DisconnectTaskExecutor {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Why.
        reason: String,
    },
    /// The Dispatcher asks to cancel the job.
    Cancel,
    /// The Dispatcher forwards a client's savepoint request; the answer goes to `client` as
    /// [`ClientMessage::SavepointDone`].
    TriggerSavepoint {
        /// The client's request number.
        request: u64,
        /// The client to answer.
        client: Address,
        /// Target directory; `None` uses `execution.checkpointing.savepoint-dir`.
        target: Option<String>,
        /// Stop the job once the savepoint is taken (stop-with-savepoint).
        stop: bool,
        /// With `stop`: advance event time to the end first, so every window fires.
        drain: bool,
    },
    /// A task took its snapshot for a checkpoint.
    AcknowledgeCheckpoint {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its state file, if it has state.
        state: Option<TaskStateHandle>,
        /// What the snapshot measured.
        metrics: AckMetrics,
    },
    /// A task could not take its snapshot.
    DeclineCheckpoint {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: DeclineReason,
    },
    /// A task's input ended and it waits for its final checkpoint before it finishes.
    FinalCheckpointAwaited {
        /// The attempt.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended: any newer one is final for it.
        checkpoint_latest: Option<CheckpointId>,
    },
}

/// To a TaskExecutor.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum TaskExecutorMessage {
    /// The ResourceManager accepted the registration.
    RegistrationAccepted,
    /// The ResourceManager refused the registration.
    RegistrationRejected {
        /// Why.
        reason: String,
    },
    /// The ResourceManager's heartbeat request.
    ResourceManagerHeartbeat,
    /// The ResourceManager does not know this TaskExecutor (any more): register again.
    DisconnectResourceManager {
        /// Why.
        reason: String,
    },
    /// The ResourceManager gives one of this TaskExecutor's slots to a job.
    RequestSlot {
        /// The slot.
        slot: SlotIndex,
        /// The job.
        job_id: JobId,
        /// The allocation id.
        allocation: AllocationId,
    },
    /// A JobMaster's heartbeat request.
    JobMasterHeartbeat {
        /// The job.
        job_id: JobId,
    },
    /// A JobMaster's answer to slot offers.
    SlotOfferResult {
        /// The job.
        job_id: JobId,
        /// Allocations it took.
        accepted: Vec<AllocationId>,
        /// Allocations it refused (to be freed).
        rejected: Vec<AllocationId>,
    },
    /// Start a task in a slot of its job.
    DeployTask(TaskDeployment),
    /// Cancel a task.
    CancelTask {
        /// The attempt.
        execution: ExecutionId,
    },
    /// Free a slot the job no longer needs.
    FreeSlot {
        /// The job.
        job_id: JobId,
        /// The allocation.
        allocation: AllocationId,
    },
    /// The JobMaster is gone or done: free the job's slots and cancel its tasks.
    DisconnectJobMaster {
        /// The job.
        job_id: JobId,
        /// Why.
        reason: String,
    },
    /// Inject a checkpoint barrier at a task where barriers start (a source, or one whose inputs all ended).
    TriggerCheckpoint {
        /// The attempt: a source, or a task all of whose producers finished.
        execution: ExecutionId,
        /// The barrier.
        barrier: Barrier,
        /// Where the checkpoint's state files go.
        location: String,
    },
    /// A checkpoint completed (exactly-once sinks commit) or was aborted.
    NotifyCheckpoint {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Completed (true) or aborted (false).
        complete: bool,
    },
}

/// To the Dispatcher.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum DispatcherMessage {
    /// Submit a job.
    Submit {
        /// The client's request number, echoed in the reply.
        request: u64,
        /// The job (boxed: a job graph is large, and every envelope is as large as its largest
        /// message).
        submission: Box<JobSubmission>,
    },
    /// Cancel a job.
    Cancel {
        /// The client's request number.
        request: u64,
        /// The job.
        job_id: JobId,
    },
    /// List every job, running and retained.
    List {
        /// The client's request number.
        request: u64,
    },
    /// One job's status.
    Status {
        /// The client's request number.
        request: u64,
        /// The job.
        job_id: JobId,
    },
    /// Take a savepoint of a job (`stop`: stop-with-savepoint, Flink's `POST
    /// /jobs/:id/savepoints` and `/jobs/:id/stop`); answered with [`ClientMessage::SavepointDone`]
    /// by the job's JobMaster, or [`ClientMessage::NotFound`] / [`ClientMessage::Rejected`].
    TriggerSavepoint {
        /// The client's request number, echoed in the reply.
        request: u64,
        /// The job.
        job_id: JobId,
        /// Target directory; `None` uses `execution.checkpointing.savepoint-dir`.
        target: Option<String>,
        /// Stop the job once the savepoint is taken.
        stop: bool,
        /// With `stop`: advance event time to the end first, so every window fires.
        drain: bool,
    },
    /// A JobMaster reports a status change of its job.
    JobStatusChanged {
        /// The job.
        job_id: JobId,
        /// The new status.
        status: JobStatus,
        /// Subtasks per state.
        tasks: BTreeMap<ExecutionState, u32>,
        /// Why it failed, when it did.
        failure: Option<String>,
    },
}

/// To a client.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The job was accepted.
    Submitted {
        /// The request number.
        request: u64,
        /// The job's id.
        job_id: JobId,
    },
    /// The request was refused.
    Rejected {
        /// The request number.
        request: u64,
        /// Why.
        reason: String,
    },
    /// Cancellation started (or the job had already ended).
    CancelAccepted {
        /// The request number.
        request: u64,
        /// The job.
        job_id: JobId,
    },
    /// Every job the Dispatcher knows.
    Jobs {
        /// The request number.
        request: u64,
        /// The jobs, by id.
        jobs: Vec<JobSummary>,
    },
    /// One job.
    Job {
        /// The request number.
        request: u64,
        /// The job.
        job: JobSummary,
    },
    /// No job has that id.
    NotFound {
        /// The request number.
        request: u64,
        /// The id asked for.
        job_id: JobId,
    },
    /// A savepoint request ended: the savepoint's directory, or why it failed.
    SavepointDone {
        /// The request number.
        request: u64,
        /// The job.
        job_id: JobId,
        /// The savepoint's location, or the failure.
        result: Result<String, String>,
    },
}

/// What a TaskExecutor asks its driver to do with tasks.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum TaskCommand {
    /// Start this task.
    Start(TaskDeployment),
    /// Cancel this task; the driver reports CANCELED (or another terminal state) back.
    Cancel(ExecutionId),
    /// Inject a checkpoint barrier at this source task; the driver answers with a checkpoint report.
    TriggerCheckpoint {
        /// The source attempt.
        execution: ExecutionId,
        /// The barrier.
        barrier: Barrier,
        /// Where its state file goes.
        location: String,
    },
    /// Tell this task a checkpoint completed or was aborted.
    NotifyCheckpoint {
        /// The attempt.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Completed (true) or aborted (false).
        complete: bool,
    },
}

/// What a task answers about a checkpoint, through its driver.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct TaskCheckpointReport {
    /// The attempt.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// Snapshot taken, or declined.
    pub outcome: CheckpointOutcome,
}

/// A task's answer to a checkpoint barrier.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum CheckpointOutcome {
    /// The snapshot was taken and written.
    Acknowledged {
        /// Its state file, if the task has state.
        state: Option<TaskStateHandle>,
        /// What it measured.
        metrics: AckMetrics,
    },
    /// The task could not take it.
    Declined(DeclineReason),
}

/// What the JobManager asks its driver to store or delete (checkpoint metadata).
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum StorageRequest {
    /// Write `_metadata` of a checkpoint into `location` (temporary name, fsync, rename), then
    /// answer [`StorageReply::MetadataWritten`].
    WriteMetadata {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The checkpoint's directory.
        location: String,
        /// The encoded metadata file.
        bytes: Vec<u8>,
    },
    /// Read `<location>/_metadata` (a savepoint or retained checkpoint a job is submitted from),
    /// then answer [`StorageReply::MetadataRead`].
    ReadMetadata {
        /// The job.
        job_id: JobId,
        /// The savepoint's or checkpoint's directory.
        location: String,
    },
    /// Delete a checkpoint directory or a state file.
    Delete {
        /// The job.
        job_id: JobId,
        /// What to delete.
        location: String,
    },
}

/// The driver's answer to a [`StorageRequest`].
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum StorageReply {
    /// `_metadata` is durable.
    MetadataWritten {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
    },
    /// `_metadata` could not be written.
    MetadataWriteFailed {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The error.
        error: String,
    },
    /// The bytes of `<location>/_metadata`, or why they could not be read.
    MetadataRead {
        /// The job.
        job_id: JobId,
        /// The directory asked for.
        location: String,
        /// The file's bytes, or the IO error (a missing file included).
        result: Result<Vec<u8>, String>,
    },
}

impl StorageReply {
    /// The job the reply is about.
    pub fn job_id(&self) -> JobId {
        match self {
            StorageReply::MetadataWritten { job_id, .. }
            | StorageReply::MetadataWriteFailed { job_id, .. }
            | StorageReply::MetadataRead { job_id, .. } => *job_id,
        }
    }
}

/// What a driver reports about a task it runs.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The attempt.
    pub execution: ExecutionId,
    /// Its new state: INITIALIZING, RUNNING, FINISHED, CANCELED or FAILED.
    pub state: ExecutionState,
    /// The failure, for FAILED.
    pub error: Option<String>,
    /// For FAILED: the checkpoint whose state file the task could not read (see
    /// `TaskError::is_unreadable_state`); the JobMaster stops restoring from it.
    pub unreadable_checkpoint: Option<CheckpointId>,
}

/// Observable facts, for traces, the REST API and the simulator's checks.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A job's status changed.
    JobStatusChanged {
        /// The job.
        job_id: JobId,
        /// The previous status.
        from: JobStatus,
        /// The new status.
        to: JobStatus,
    },
    /// An attempt's state changed in its JobMaster's view.
    ExecutionStateChanged {
        /// The attempt.
        execution: ExecutionId,
        /// The previous state.
        from: ExecutionState,
        /// The new state.
        to: ExecutionState,
    },
    /// A TaskManager registered with the ResourceManager.
    TaskManagerRegistered {
        /// The TaskManager.
        resource_id: ResourceId,
    },
    /// The ResourceManager or a JobMaster declared a TaskManager lost.
    TaskManagerLost {
        /// The TaskManager.
        resource_id: ResourceId,
        /// Why.
        reason: String,
    },
    /// A job's restart strategy decided on a restart or on failing the job.
    RestartDecision {
        /// The job.
        job_id: JobId,
        /// The delay before the restart, `None` when the job fails.
        delay_ms: Option<u64>,
        /// The failure that caused it.
        cause: String,
    },
    /// A checkpoint (or savepoint) of a job completed.
    CheckpointCompleted {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Whether it was a savepoint.
        is_savepoint: bool,
    },
    /// A checkpoint of a job failed or was aborted.
    CheckpointFailed {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: String,
    },
    /// A retained checkpoint was dropped because a task could not read its state: no restart
    /// restores it again (the previous retained checkpoint, or none, is restored instead).
    CheckpointDropped {
        /// The job.
        job_id: JobId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: String,
    },
    /// The ResourceManager wants `count` more TaskManagers (active resource managers act on it).
    WorkersNeeded {
        /// How many.
        count: u32,
    },
    /// The one job of an application cluster ended: the cluster shuts down.
    ApplicationEnded {
        /// The job.
        job_id: JobId,
        /// How it ended.
        status: JobStatus,
    },
    /// The ResourceManager has an idle TaskManager it could release.
    WorkerIdle {
        /// The TaskManager.
        resource_id: ResourceId,
    },
}

macro_rules! kinds {
    ($type:ident { $($variant:ident),* $(,)? }) => {
        impl $type {
            /// The variant's name, for traces and filters.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($type::$variant { .. } => stringify!($variant),)*
                }
            }
        }
    };
}

kinds!(ResourceManagerMessage {
    RegisterTaskExecutor,
    TaskExecutorHeartbeat,
    SlotRequestResult,
    SlotFreed,
    DisconnectTaskExecutor,
    RequestSlot,
    CancelSlotRequest,
    DisconnectJobMaster,
});
kinds!(JobMasterMessage {
    SlotRequestFailed,
    TaskManagerLost,
    OfferSlots,
    TaskStateChanged,
    TaskExecutorHeartbeat,
    DisconnectTaskExecutor,
    Cancel,
    TriggerSavepoint,
    AcknowledgeCheckpoint,
    DeclineCheckpoint,
    FinalCheckpointAwaited,
});
kinds!(TaskExecutorMessage {
    RegistrationAccepted,
    RegistrationRejected,
    ResourceManagerHeartbeat,
    DisconnectResourceManager,
    RequestSlot,
    JobMasterHeartbeat,
    SlotOfferResult,
    DeployTask,
    CancelTask,
    FreeSlot,
    DisconnectJobMaster,
    TriggerCheckpoint,
    NotifyCheckpoint,
});
kinds!(DispatcherMessage { Submit, Cancel, List, Status, TriggerSavepoint, JobStatusChanged });
kinds!(ClientMessage { Submitted, Rejected, CancelAccepted, Jobs, Job, NotFound, SavepointDone });

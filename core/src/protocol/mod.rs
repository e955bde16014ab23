//! The messages roles exchange, and the shape every role shares.
//!
//! Roles address each other by [`Address`]; the ResourceManager, the Dispatcher and every
//! JobMaster live in the JobManager process, each TaskExecutor in its own TaskManager process.
//! Messages are typed per receiving role ([`ResourceManagerMessage`], [`JobMasterMessage`],
//! [`TaskExecutorMessage`], [`DispatcherMessage`], [`ClientMessage`]); an [`Envelope`] carries one
//! with its sender, receiver and the JobManager leader's fencing [`Epoch`]. Messages a leader sends
//! carry its epoch; receivers refuse lower epochs (see `task_executor`), and the JobManager
//! drops messages sent to an epoch that is not its own.

mod messages;
mod states;

pub use messages::*;
pub use states::*;

use crate::ids::{Epoch, JobId, ResourceId};
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// A role's address in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Address {
    /// The ResourceManager (in the JobManager process).
    ResourceManager,
    /// The Dispatcher (in the JobManager process).
    Dispatcher,
    /// The JobMaster of one job (in the JobManager process).
    JobMaster(JobId),
    /// The TaskExecutor of one TaskManager process.
    TaskExecutor(ResourceId),
    /// A client (CLI, REST handler, scenario driver), numbered by its driver.
    Client(u64),
}

impl Address {
    /// Whether the role lives in the JobManager process.
    pub fn is_job_manager(&self) -> bool {
        matches!(self, Address::ResourceManager | Address::Dispatcher | Address::JobMaster(_))
    }
}

/// A message on its way.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender.
    pub from: Address,
    /// Receiver.
    pub to: Address,
    /// The JobManager leader epoch the sender acts in (a leader's own, or the one a TaskExecutor
    /// follows); zero from clients.
    pub epoch: Epoch,
    /// The payload.
    pub message: Message,
}

/// Every payload, grouped by the role that receives it.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// To the ResourceManager.
    ResourceManager(ResourceManagerMessage),
    /// To a JobMaster.
    JobMaster(JobMasterMessage),
    /// To a TaskExecutor.
    TaskExecutor(TaskExecutorMessage),
    /// To the Dispatcher.
    Dispatcher(DispatcherMessage),
    /// To a client.
    Client(ClientMessage),
    /// A TaskManager's live task metrics, for the JobManager's REST API and `/metrics` (what
    /// Flink's metric fetcher pulls). The drivers exchange it; no state machine takes it.
    Metrics(TaskMetricsReport),
}

/// The latest counters of the tasks running on one TaskManager.
#[derive(Clone, Debug, Default, Hash, PartialEq, Serialize, Deserialize)]
pub struct TaskMetricsReport {
    /// Each task attempt's counters.
    pub tasks: Vec<(ExecutionId, crate::dataflow::task::TaskMetrics)>,
}

impl Message {
    /// A short name of the message kind, for traces and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::ResourceManager(message) => message.kind(),
            Message::JobMaster(message) => message.kind(),
            Message::TaskExecutor(message) => message.kind(),
            Message::Dispatcher(message) => message.kind(),
            Message::Client(message) => message.kind(),
            Message::Metrics(_) => "TaskMetrics",
        }
    }
}

/// What a role asks its driver to do.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// Deliver this envelope.
    Send(Envelope),
    /// Start or cancel a task (TaskExecutor only); the driver reports back with task events.
    Task(TaskCommand),
    /// Something happened that observers (traces, REST, invariants) care about.
    Event(Event),
    /// Store or delete checkpoint files (JobManager only); writes are answered with a
    /// [`StorageReply`] input.
    Storage(StorageRequest),
}

/// A role: a state machine fed with inputs and the current time.
///
/// Drivers call [`Role::handle`], then drain [`Role::poll_output`] until `None`, then ask
/// [`Role::poll_timeout`] when to call `handle` with a tick next. An early tick does nothing.
pub trait Role {
    /// The inputs the role takes.
    type Input;
    /// Feeds one input at time `now`; `now` never goes backwards.
    fn handle(&mut self, now: Time, input: Self::Input);
    /// The next output, if any.
    fn poll_output(&mut self) -> Option<Output>;
    /// The earliest time the role wants a tick.
    fn poll_timeout(&self) -> Option<Time>;
    /// Checks the role's invariants; the simulator calls this after every event.
    fn check_invariants(&self) -> Result<(), String>;
}

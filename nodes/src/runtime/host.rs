//! What the tasks of one process share, and the one way tasks are started and reached: both
//! task hosts (the embedded cluster and the TaskManager daemon) carry out their TaskExecutor's
//! task commands through a [`TaskHost`].

use super::Clock;
use super::exchange::{Exchange, Mail};
use super::operators::Operators;
use super::plans::JobPlans;
use super::rocks_state::RocksState;
use super::storage::CheckpointStorage;
use super::task_thread::{self, Locations, MetricsBoard, TaskContext, TaskEvent};
use std::sync::Arc;
use weir_core::config::{Config, RawConfig};
use weir_core::ids::{JobId, SubtaskIndex};
use weir_core::protocol::{ExecutionState, TaskCommand, TaskDeployment, TaskReport};

/// How a task thread reports to its TaskExecutor.
pub type Report = Arc<dyn Fn(TaskEvent) + Send + Sync>;

/// The tasks of this process and what they share.
pub struct TaskHost {
    /// Plans of the jobs whose tasks run here.
    pub plans: JobPlans,
    /// Where snapshots go.
    pub storage: CheckpointStorage,
    /// The tasks' mailboxes and channels.
    pub exchange: Exchange,
    /// Checkpoint directories, as triggers named them.
    pub locations: Locations,
    /// The process clock.
    pub clock: Clock,
    /// The latest metrics of every task.
    pub metrics: MetricsBoard,
    /// Rust operators of the program this process runs.
    pub operators: Operators,
    /// RocksDB instances of keyed state and each slot's managed memory.
    pub rocks: RocksState,
}

impl TaskHost {
    /// A host planning jobs under this process's configuration `own`.
    pub fn new(
        own: &RawConfig,
        storage: CheckpointStorage,
        exchange: Exchange,
        clock: Clock,
        operators: Operators,
    ) -> TaskHost {
        // The daemons and the embedded cluster refuse an invalid configuration before this.
        let config = Config::from_raw(own).unwrap_or_default();
        TaskHost {
            rocks: RocksState::new(storage.data_dir(), &config),
            plans: JobPlans::new(own),
            storage,
            exchange,
            locations: Arc::default(),
            clock,
            metrics: Arc::default(),
            operators,
        }
    }

    /// Carries out a task command. A task that cannot start comes back as its FAILED report,
    /// for the caller to hand to its TaskExecutor (the control task must not wait on `report`).
    pub fn command(&mut self, command: TaskCommand, report: Report) -> Option<TaskReport> {
        match command {
            TaskCommand::Start(deployment) => {
                let execution = deployment.execution;
                let error = self.start(deployment, report).err()?;
                let state = ExecutionState::Failed;
                return Some(TaskReport { execution, state, error: Some(error), unreadable_checkpoint: None });
            }
            TaskCommand::Cancel(execution) => self.exchange.post(execution, Mail::Cancel),
            TaskCommand::TriggerCheckpoint { execution, barrier, location } => {
                self.exchange.post(execution, Mail::Trigger(barrier, location));
            }
            TaskCommand::NotifyCheckpoint { execution, checkpoint, complete } => {
                self.exchange.post(execution, Mail::Notify(checkpoint, complete));
            }
        }
        None
    }

    /// Forgets the plans and channels of the jobs `keep` rejects.
    pub fn forget_jobs(&mut self, keep: impl Fn(JobId) -> bool) {
        for job in self.plans.retain(keep) {
            self.exchange.forget_job(job);
        }
    }

    fn start(&mut self, deployment: TaskDeployment, report: Report) -> Result<(), String> {
        let (plan, config) = self.plans.of(&deployment)?;
        // Where every subtask runs, so buffers for consumers in other TaskManagers find them.
        if let (Some(placement), Some(_)) = (&deployment.placement, self.exchange.data_address()) {
            let job = deployment.execution.job;
            for vertex in &plan.vertices {
                for subtask in (0..vertex.parallelism).map(SubtaskIndex) {
                    if let Some(location) = placement.location(vertex.index, subtask) {
                        self.exchange.set_location(job, vertex.index, subtask, location.data_address.clone());
                    }
                }
            }
        }
        task_thread::spawn(TaskContext {
            deployment,
            plan,
            config,
            storage: self.storage.clone(),
            exchange: self.exchange.clone(),
            locations: self.locations.clone(),
            clock: self.clock,
            report,
            metrics: self.metrics.clone(),
            operators: self.operators.clone(),
            rocks: self.rocks.clone(),
        })
    }
}

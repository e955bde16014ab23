//! The JobMaster's side of checkpointing: it owns the checkpoint coordinator, feeds it what the
//! job does (all tasks RUNNING, acknowledgements, failover, the end) and carries out what it asks
//! (barriers to the sources, notifications to every task, metadata to storage). On a restart,
//! new attempts restore from the latest completed checkpoint.

use super::JobMaster;
use crate::checkpoint::{self, CheckpointCoordinator, CheckpointVertex, CoordinatorSetup};
use crate::config::Config;
use crate::ids::{CheckpointId, ResourceId};
use crate::protocol::{
    Address, Event, ExecutionId, ExecutionState, JobStatus, Output, RestoreSpec, StorageReply, StorageRequest, TaskExecutorMessage,
};

/// Checkpointing state of one JobMaster.
#[derive(Debug)]
pub(super) struct Checkpointing {
    coordinator: CheckpointCoordinator,
    /// Whether the coordinator was last told every task is RUNNING.
    told_running: bool,
    /// Whether it was told the job ended.
    shut_down: bool,
}

impl Checkpointing {
    /// A coordinator when `execution.checkpointing.interval` is set, else none.
    pub fn new(config: &Config, job: &JobMaster, seed: u64) -> Option<Checkpointing> {
        config.checkpoint.interval?;
        let setup = CoordinatorSetup {
            job: job.job_id,
            vertices: CheckpointVertex::from_plan(&job.plan),
            executions: (0..job.executions.len()).map(|ordinal| job.executions.id(ordinal)).collect(),
            checkpoint_id_next: CheckpointId(1),
            recovered: Vec::new(),
            seed,
        };
        let coordinator = CheckpointCoordinator::new(&config.checkpoint, setup);
        Some(Checkpointing { coordinator, told_running: false, shut_down: false })
    }

    /// The coordinator, for queries (REST statistics).
    pub fn coordinator(&self) -> &CheckpointCoordinator {
        &self.coordinator
    }
}

impl JobMaster {
    /// Feeds the coordinator one input at the current time, then carries out its outputs.
    pub(super) fn feed_coordinator(&mut self, input: checkpoint::Input) {
        let Some(checkpointing) = &mut self.checkpointing else { return };
        checkpointing.coordinator.handle(self.now, input);
        self.drain_coordinator();
    }

    /// Tells the coordinator whether every task runs, and that the job ended; ticks it when due.
    pub(super) fn sync_checkpointing(&mut self, tick: bool) {
        let Some(checkpointing) = &self.checkpointing else { return };
        if checkpointing.shut_down {
            return;
        }
        if self.status.is_globally_terminal() {
            self.feed_coordinator(checkpoint::Input::Shutdown { job_status: self.status });
            if let Some(checkpointing) = &mut self.checkpointing {
                checkpointing.shut_down = true;
            }
            return;
        }
        let all_running = self.status == JobStatus::Running
            && self.executions.count(ExecutionState::Running) as u64 == self.executions.len();
        if all_running != checkpointing.told_running {
            let input = if all_running {
                let ids = (0..self.executions.len()).map(|ordinal| self.executions.id(ordinal)).collect();
                checkpoint::Input::TasksRunning(ids)
            } else {
                checkpoint::Input::TasksNotRunning
            };
            if let Some(checkpointing) = &mut self.checkpointing {
                checkpointing.told_running = all_running;
            }
            self.feed_coordinator(input);
        }
        let due =
            self.checkpointing.as_ref().and_then(|c| c.coordinator.poll_timeout()).is_some_and(|at| at <= self.now);
        if tick && due {
            self.feed_coordinator(checkpoint::Input::Tick);
        }
    }

    /// The coordinator's next deadline.
    pub(super) fn checkpoint_deadline(&self) -> Option<crate::time::Time> {
        let checkpointing = self.checkpointing.as_ref()?;
        if checkpointing.shut_down { None } else { checkpointing.coordinator.poll_timeout() }
    }

    /// The TaskManager an attempt runs on, when it is the current attempt and deployed.
    fn location_of(&self, execution: &ExecutionId) -> Option<ResourceId> {
        let ordinal = self.executions.current(execution)?;
        self.executions.location(ordinal).map(|location| location.resource_id)
    }

    /// Whether `from` is the TaskManager running `execution`'s current attempt.
    pub(super) fn runs_on(&self, execution: &ExecutionId, from: Address) -> bool {
        self.location_of(execution).is_some_and(|resource_id| from == Address::TaskExecutor(resource_id))
    }

    /// The driver's answer about checkpoint metadata.
    pub fn on_storage_reply(&mut self, reply: StorageReply) {
        let input = match reply {
            StorageReply::MetadataWritten { checkpoint, .. } => checkpoint::Input::MetadataPersisted { checkpoint },
            StorageReply::MetadataWriteFailed { checkpoint, error, .. } => {
                checkpoint::Input::MetadataPersistFailed { checkpoint, error }
            }
        };
        self.feed_coordinator(input);
    }

    fn drain_coordinator(&mut self) {
        loop {
            let Some(output) = self.checkpointing.as_mut().and_then(|c| c.coordinator.poll_output()) else { return };
            self.carry_out(output);
        }
    }

    fn carry_out(&mut self, output: checkpoint::Output) {
        use checkpoint::Output as Out;
        let job_id = self.job_id;
        match output {
            ref trigger @ Out::TriggerAtSources { ref sources, ref location, .. } => {
                let Some(barrier) = trigger.barrier() else { return };
                for execution in sources.clone() {
                    let Some(resource_id) = self.location_of(&execution) else { continue };
                    let message =
                        TaskExecutorMessage::TriggerCheckpoint { execution, barrier, location: location.clone() };
                    self.send_to_task_executor(resource_id, message);
                }
            }
            Out::PersistMetadata { checkpoint, location, bytes } => {
                let request = StorageRequest::WriteMetadata { job_id, checkpoint, location, bytes };
                self.outputs.push_back(Output::Storage(request));
            }
            Out::NotifyComplete { checkpoint, tasks } => self.notify(checkpoint, tasks, true),
            Out::NotifyAborted { checkpoint, tasks } => self.notify(checkpoint, tasks, false),
            Out::Discard { location, .. } | Out::DiscardTaskState { location, .. } => {
                self.outputs.push_back(Output::Storage(StorageRequest::Delete { job_id, location }));
            }
            Out::Completed(completed) => {
                let is_savepoint = completed.is_savepoint();
                self.event(Event::CheckpointCompleted { job_id, checkpoint: completed.checkpoint, is_savepoint });
            }
            Out::Failed { checkpoint, reason } => {
                self.event(Event::CheckpointFailed { job_id, checkpoint, reason: reason.to_string() });
            }
            Out::SavepointDone { .. } => {}
            Out::FailJob { reason } => self.fail_globally(reason.to_string()),
        }
    }

    fn notify(&mut self, checkpoint: CheckpointId, tasks: Vec<ExecutionId>, complete: bool) {
        for execution in tasks {
            let Some(resource_id) = self.location_of(&execution) else { continue };
            let message = TaskExecutorMessage::NotifyCheckpoint { execution, checkpoint, complete };
            self.send_to_task_executor(resource_id, message);
        }
    }

    /// The restore point of a new attempt of `ordinal`: the latest completed checkpoint and the
    /// subtask's state in it.
    pub(super) fn restore_point(&self, ordinal: u64) -> Option<RestoreSpec> {
        let latest = self.checkpointing.as_ref().and_then(|c| c.coordinator.latest_completed())?;
        let subtask = self.executions.subtask(ordinal);
        Some(RestoreSpec {
            checkpoint: latest.checkpoint,
            location: latest.location.clone(),
            states: latest.state_of(subtask.vertex, subtask.subtask).cloned().into_iter().collect(),
        })
    }

    /// A restart restores from the latest completed checkpoint (recorded in the statistics).
    pub(super) fn record_restore(&mut self) {
        let now = self.now;
        if let Some(checkpointing) = &mut self.checkpointing {
            checkpointing.coordinator.restore_latest(now);
        }
    }
}

//! The JobMaster's side of checkpointing: it owns the checkpoint coordinator, feeds it what the
//! job does (all tasks RUNNING or FINISHED, with which finished; acknowledgements, failover, the
//! end) and carries out what it asks (barriers to the sources and to tasks whose inputs finished,
//! notifications to every task, metadata to storage). On a restart, new attempts restore from
//! the latest completed checkpoint (or the savepoint the job was submitted from, see
//! `savepoints.rs`); a subtask it records as finished is deployed as finished.

use super::JobMaster;
use crate::checkpoint::{self, CheckpointCoordinator, CheckpointVertex, CoordinatorSetup};
use crate::config::CheckpointConfig;
use crate::dataflow::BarrierKind;
use crate::ids::{CheckpointId, ResourceId};
use crate::protocol::{
    Address, Event, ExecutionId, ExecutionState, JobStatus, Output, RestoreSpec, StorageReply, StorageRequest,
    TaskExecutorMessage,
};

/// Checkpointing state of one JobMaster.
#[derive(Debug)]
pub(super) struct Checkpointing {
    coordinator: CheckpointCoordinator,
    /// Whether the coordinator was last told every task is RUNNING or FINISHED.
    told_running: bool,
    /// How many tasks were FINISHED when it was last told so.
    told_finished: u32,
    /// Whether it was told the job ended.
    shut_down: bool,
    /// A stop-with-savepoint that completed: its notification is repeated to the tasks still
    /// RUNNING every heartbeat round (a lost one would leave a source stopped for good).
    pub(super) stop_completed: Option<CheckpointId>,
}

impl Checkpointing {
    /// A coordinator when `execution.checkpointing.interval` is set, else none; its first
    /// checkpoint gets `checkpoint_id_next` (above a savepoint the job restores from).
    pub fn new(
        config: &CheckpointConfig,
        job: &JobMaster,
        seed: u64,
        checkpoint_id_next: CheckpointId,
    ) -> Option<Checkpointing> {
        config.interval?;
        let setup = CoordinatorSetup {
            job: job.job_id,
            vertices: CheckpointVertex::from_plan(&job.plan),
            executions: (0..job.executions.len()).map(|ordinal| job.executions.id(ordinal)).collect(),
            edges: job.executions.graph().edges.clone(),
            checkpoint_id_next,
            recovered: Vec::new(),
            seed,
        };
        let coordinator = CheckpointCoordinator::new(config, setup);
        Some(Checkpointing {
            coordinator,
            told_running: false,
            told_finished: 0,
            shut_down: false,
            stop_completed: None,
        })
    }

    /// The coordinator, for queries (REST statistics).
    pub fn coordinator(&self) -> &CheckpointCoordinator {
        &self.coordinator
    }

    /// See [`CheckpointCoordinator::raise_checkpoint_id_next`].
    pub fn raise_checkpoint_id_next(&mut self, floor: CheckpointId) {
        self.coordinator.raise_checkpoint_id_next(floor);
    }

    /// Drops an unreadable retained checkpoint (see `savepoints.rs`).
    pub fn drop_retained(&mut self, checkpoint: CheckpointId) -> Option<checkpoint::CompletedCheckpoint> {
        self.coordinator.drop_retained(checkpoint)
    }
}

impl JobMaster {
    /// Feeds the coordinator one input at the current time, then carries out its outputs.
    pub(super) fn feed_coordinator(&mut self, input: checkpoint::Input) {
        let Some(checkpointing) = &mut self.checkpointing else { return };
        checkpointing.coordinator.handle(self.now, input);
        self.drain_coordinator();
    }

    /// Tells the coordinator whether every task runs or finished (and which finished, whenever
    /// another one does), and that the job ended; ticks it when due.
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
        let finished = self.executions.count(ExecutionState::Finished);
        let running = self.executions.count(ExecutionState::Running);
        let all_running = self.status == JobStatus::Running
            && u64::from(running) + u64::from(finished) == self.executions.len()
            && running > 0;
        let news = all_running && finished != checkpointing.told_finished;
        if all_running != checkpointing.told_running || news {
            let input = if all_running { self.tasks_running_input() } else { checkpoint::Input::TasksNotRunning };
            if let Some(checkpointing) = &mut self.checkpointing {
                checkpointing.told_running = all_running;
                checkpointing.told_finished = if all_running { finished } else { 0 };
            }
            self.feed_coordinator(input);
        }
        let due =
            self.checkpointing.as_ref().and_then(|c| c.coordinator.poll_timeout()).is_some_and(|at| at <= self.now);
        if tick && due {
            self.feed_coordinator(checkpoint::Input::Tick);
        }
    }

    /// Every current attempt, and which of them finished.
    fn tasks_running_input(&self) -> checkpoint::Input {
        let executions: Vec<_> = (0..self.executions.len()).map(|ordinal| self.executions.id(ordinal)).collect();
        let is_finished = |ordinal: &u64| self.executions.state(*ordinal) == ExecutionState::Finished;
        let finished: Vec<_> = (0..self.executions.len()).filter(is_finished).map(|o| self.executions.id(o)).collect();
        match finished.is_empty() {
            true => checkpoint::Input::TasksRunning(executions),
            false => checkpoint::Input::TasksRunningOrFinished { executions, finished },
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
            StorageReply::MetadataRead { location, result, .. } => return self.on_metadata_read(location, result),
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
            Out::DiscardSharedFiles { location, files } => {
                for file in files {
                    let location = format!("{location}/{file}");
                    self.outputs.push_back(Output::Storage(StorageRequest::Delete { job_id, location }));
                }
            }
            Out::Completed(completed) => {
                if let (BarrierKind::Savepoint { stop: true, .. }, Some(checkpointing)) =
                    (completed.kind, self.checkpointing.as_mut())
                {
                    checkpointing.stop_completed = Some(completed.checkpoint);
                }
                let is_savepoint = completed.is_savepoint();
                self.event(Event::CheckpointCompleted { job_id, checkpoint: completed.checkpoint, is_savepoint });
            }
            Out::Failed { checkpoint, reason } => {
                self.event(Event::CheckpointFailed { job_id, checkpoint, reason: reason.to_string() });
            }
            Out::SavepointDone { request_id, result } => self.savepoint_done(request_id, result),
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
    /// subtask's state in it (or that the subtask had finished), else the savepoint the job was
    /// submitted from, else none.
    pub(super) fn restore_point(&self, ordinal: u64) -> Option<RestoreSpec> {
        let subtask = self.executions.subtask(ordinal);
        let latest = self.checkpointing.as_ref().and_then(|c| c.coordinator.latest_completed());
        let Some(latest) = latest else { return self.savepoint_restore_spec(subtask.vertex, subtask.subtask) };
        Some(RestoreSpec {
            checkpoint: latest.checkpoint,
            location: latest.location.clone(),
            states: latest.state_of(subtask.vertex, subtask.subtask).cloned().into_iter().collect(),
            finished: latest.is_finished(subtask.vertex, subtask.subtask),
        })
    }

    /// A restart restores from the latest completed checkpoint (recorded in the statistics).
    pub(super) fn record_restore(&mut self) {
        let now = self.now;
        if let Some(checkpointing) = &mut self.checkpointing {
            checkpointing.coordinator.restore_latest(now);
            checkpointing.stop_completed = None; // the restarted attempts never stopped
        }
    }

    /// Repeats a completed stop-with-savepoint's notification to the tasks still RUNNING.
    pub(super) fn repeat_stop_notification(&mut self) {
        let Some(checkpoint) = self.checkpointing.as_ref().and_then(|c| c.stop_completed) else { return };
        if self.status != JobStatus::Running {
            return;
        }
        let running: Vec<ExecutionId> = (0..self.executions.len())
            .filter(|&ordinal| self.executions.state(ordinal) == ExecutionState::Running)
            .map(|ordinal| self.executions.id(ordinal))
            .collect();
        self.notify(checkpoint, running, true);
    }
}

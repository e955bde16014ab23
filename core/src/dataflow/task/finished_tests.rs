//! Checkpoints after tasks finish, end to end through the [`Cluster`] harness: a bounded job
//! whose tasks wait for their final checkpoint commits all its output, and a job restored from a
//! checkpoint in which its source had finished commits it exactly once without re-emitting.
//! The same twice more with the real [`CheckpointCoordinator`] in place of the harness's own
//! bookkeeping ([`Coordinated`]): it decides where barriers start once the sources finished.

use super::tests::{Cluster, Io, SinkKind, expected_sums, test_config, totals, windowed_sum};
use super::*;
use crate::checkpoint::{
    self, CheckpointCoordinator, CheckpointVertex, CompletedCheckpoint, CoordinatorSetup, storage,
};
use crate::plan::execution::ExecutionGraph;
use crate::time::Duration;
use std::collections::BTreeMap;

const RECORDS: i64 = 4_200;
const KEYS: i64 = 7;
const WINDOW: u64 = 20;

/// The committed csv lines of every sink subtask, as per-key totals.
fn committed_totals(cluster: &Cluster<'_>) -> BTreeMap<i64, (i64, u64)> {
    totals(cluster.io.parts.committed_lines().into_values().flatten())
}

/// The harness's tasks of vertex 0 (the source chain).
fn sources(cluster: &Cluster<'_>) -> Vec<usize> {
    (0..cluster.tasks.len()).filter(|&t| cluster.tasks[t].vertex == VertexIndex(0)).collect()
}

#[test]
fn a_bounded_job_waiting_for_final_checkpoints_finishes_with_all_its_output_committed() {
    for parallelism in [1, 2] {
        let plan = windowed_sum(RECORDS, KEYS, WINDOW, parallelism, SinkKind::File);
        let config = test_config(true, false);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        // No checkpoint but the final ones, which the harness triggers once a task waits.
        cluster.run_to_end(300, 20_000);
        assert_eq!(committed_totals(&cluster), totals(expected_sums(RECORDS, KEYS, WINDOW)), "p {parallelism}");
        assert_eq!(cluster.io.parts.pending_count(), 0, "the last parts are committed, not left pending");
        let finished_sources: Vec<usize> =
            sources(&cluster).into_iter().filter(|t| cluster.restore_finished.contains(t)).collect();
        assert_eq!(finished_sources, sources(&cluster), "the last checkpoint records the sources as finished");
    }
}

#[test]
fn a_restore_from_a_checkpoint_with_the_source_finished_commits_exactly_once_and_emits_nothing_again() {
    for parallelism in [1, 2] {
        let plan = windowed_sum(RECORDS, KEYS, WINDOW, parallelism, SinkKind::File);
        let config = test_config(true, false);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        // Notifications come late, so a crash falls between a completion and the commit.
        cluster.notify_delay_rounds = 3;
        let sources = sources(&cluster);
        let mut rounds = 0;
        while !sources.iter().all(|t| cluster.restore_finished.contains(t)) {
            assert!(rounds < 20_000, "the sources never finished in a completed checkpoint");
            cluster.round(300);
            rounds += 1;
        }
        assert!(!cluster.all_finished(), "the window tasks still wait for their final checkpoint");
        cluster.crash_and_restore();
        for &t in &sources {
            assert!(cluster.tasks[t].runner.awaits_final_checkpoint() || cluster.tasks[t].runner.accepts_trigger());
        }
        cluster.run_to_end(300, 20_000);
        for &t in &sources {
            assert_eq!(cluster.tasks[t].runner.metrics().records_out, 0, "source task {t} emitted again");
        }
        assert_eq!(committed_totals(&cluster), totals(expected_sums(RECORDS, KEYS, WINDOW)), "p {parallelism}");
        assert_eq!(cluster.io.parts.pending_count(), 0);
    }
}

#[test]
fn a_task_deployed_as_finished_acknowledges_without_operator_state_and_then_finishes() {
    let plan = windowed_sum(100, 5, 10, 1, SinkKind::File);
    let config = test_config(true, false);
    let mut io = Io::default();
    let execution = ExecutionId {
        job: crate::ids::JobId(crate::ids::Hex128(7)),
        vertex: VertexIndex(0),
        subtask: SubtaskIndex(0),
        attempt: crate::ids::AttemptNumber(1),
    };
    let setup = |io: &mut Io, restore: Vec<&[u8]>| {
        let setup = TaskSetup {
            execution,
            plan: &plan,
            config: &config,
            restore,
            connectors: io,
            seed: 0,
            wait_for_final_checkpoint: true,
            restore_finished: true,
        };
        TaskRunner::new(setup)
    };
    let refused = setup(&mut io, vec![b"state".as_slice()]).map(|_| ());
    assert_eq!(refused, Err(TaskError::Restore(RestoreError::FinishedWithState)));
    let mut source = setup(&mut io, Vec::new()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(source.step(Time(1), 1_000), StepStatus::Idle);
    assert!(source.awaits_final_checkpoint(), "its input counts as ended at once");
    let report = source.poll_output();
    assert_eq!(report, Some(TaskOutput::AwaitingFinalCheckpoint { checkpoint_latest: None }), "reported once");
    let barrier = crate::dataflow::Barrier {
        checkpoint: CheckpointId(9),
        triggered_at: Time(1),
        kind: crate::dataflow::BarrierKind::Checkpoint,
        unaligned: false,
    };
    source.trigger_checkpoint(barrier);
    let Some(TaskOutput::Snapshot { bytes, .. }) = source.poll_output() else { panic!("a snapshot") };
    let file = crate::checkpoint::storage::decode_task_state(&bytes).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(file.operators.len(), 1, "only the head, for the ended input");
    assert!(file.operators[0].keyed.is_empty() && !file.operators[0].channel_state.is_empty());
    let buffer = source.poll_output();
    assert!(matches!(buffer, Some(TaskOutput::Buffer { .. })), "the barrier, and not one record");
    assert_eq!(source.poll_output(), None);
    source.notify_checkpoint(CheckpointId(9), true);
    assert_eq!(source.step(Time(2), 1_000), StepStatus::Finished);
    let outputs: Vec<TaskOutput> = std::iter::from_fn(|| source.poll_output()).collect();
    assert!(matches!(outputs.last(), Some(TaskOutput::Finished)), "{outputs:?}");
    assert_eq!(source.metrics().records_out, 0);
}

/// One task of [`Coordinated`].
struct Slot {
    runner: TaskRunner,
    inbox: BTreeMap<ChannelIndex, VecDeque<Buffer>>,
    finished: bool,
}

/// Every task of a plan driven by the real [`CheckpointCoordinator`]: barriers go where it
/// triggers, acknowledgements and the finished tasks go back to it, state files are kept in a
/// map standing for the checkpoint directory.
struct Coordinated<'a> {
    plan: &'a JobPlan,
    config: &'a Config,
    io: Io,
    tasks: Vec<Slot>,
    coordinator: CheckpointCoordinator,
    /// `<location>/<file>` → bytes.
    files: BTreeMap<String, Vec<u8>>,
    locations: BTreeMap<CheckpointId, String>,
    attempt: u32,
    now: Time,
    /// Every `TriggerAtSources`: (checkpoint, the attempts triggered at).
    triggers: Vec<(CheckpointId, Vec<ExecutionId>)>,
    /// Tasks' reports that they wait for their final checkpoint reach the coordinator (when
    /// not, only the periodic trigger takes final checkpoints).
    report_final: bool,
}

impl<'a> Coordinated<'a> {
    fn new(plan: &'a JobPlan, config: &'a Config) -> Coordinated<'a> {
        let setup = CoordinatorSetup {
            job: JOB,
            vertices: CheckpointVertex::from_plan(plan),
            executions: executions(plan, 0),
            edges: ExecutionGraph::new(plan).edges,
            checkpoint_id_next: CheckpointId(1),
            recovered: Vec::new(),
            seed: 11,
        };
        let coordinator = CheckpointCoordinator::new(&config.checkpoint, setup);
        let mut world = Coordinated {
            plan,
            config,
            io: Io::default(),
            tasks: Vec::new(),
            coordinator,
            files: BTreeMap::new(),
            locations: BTreeMap::new(),
            attempt: 0,
            now: Time::ZERO,
            triggers: Vec::new(),
            report_final: true,
        };
        world.deploy(None);
        world
    }

    /// Starts attempt `self.attempt` of every subtask, from `restore` if given.
    fn deploy(&mut self, restore: Option<&CompletedCheckpoint>) {
        let mut tasks = Vec::new();
        for execution in executions(self.plan, self.attempt) {
            let finished = restore.is_some_and(|c| c.is_finished(execution.vertex, execution.subtask));
            let state = restore.and_then(|c| Some((c, c.state_of(execution.vertex, execution.subtask)?)));
            let bytes = state.map(|(c, handle)| self.files[&format!("{}/{}", c.location, handle.file)].clone());
            let setup = TaskSetup {
                execution,
                plan: self.plan,
                config: self.config,
                restore: bytes.as_deref().into_iter().collect(),
                connectors: &mut self.io,
                seed: 5,
                wait_for_final_checkpoint: true,
                restore_finished: finished,
            };
            let runner = TaskRunner::new(setup).unwrap_or_else(|error| panic!("task {execution}: {error}"));
            tasks.push(Slot { runner, inbox: BTreeMap::new(), finished: false });
        }
        self.tasks = tasks;
        self.feed(checkpoint::Input::TasksRunning(executions(self.plan, self.attempt)));
    }

    /// Every task crashes; new attempts restore from the latest completed checkpoint.
    fn crash_and_restore(&mut self) {
        self.feed(checkpoint::Input::Failover);
        self.feed(checkpoint::Input::TasksNotRunning);
        self.attempt += 1;
        let latest = self.coordinator.restore_latest(self.now);
        self.deploy(latest.as_ref());
    }

    fn index_of(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> usize {
        let before: u32 = self.plan.vertices[..vertex.index()].iter().map(|v| v.parallelism).sum();
        (before + subtask.0) as usize
    }

    /// Feeds the coordinator and carries out everything it asks, until it asks nothing more.
    fn feed(&mut self, input: checkpoint::Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            self.coordinator.handle(self.now, input);
            self.coordinator.check_invariants().unwrap_or_else(|problem| panic!("{problem}"));
            while let Some(output) = self.coordinator.poll_output() {
                inputs.extend(self.carry_out(output));
            }
        }
    }

    fn carry_out(&mut self, output: checkpoint::Output) -> Option<checkpoint::Input> {
        use checkpoint::Output as Out;
        match output {
            ref trigger @ Out::TriggerAtSources { checkpoint, ref sources, ref location, .. } => {
                let barrier = trigger.barrier()?;
                self.locations.insert(checkpoint, location.clone());
                self.triggers.push((checkpoint, sources.clone()));
                for execution in sources {
                    let t = self.index_of(execution.vertex, execution.subtask);
                    self.tasks[t].runner.trigger_checkpoint(barrier);
                }
            }
            Out::PersistMetadata { checkpoint, .. } => {
                return Some(checkpoint::Input::MetadataPersisted { checkpoint });
            }
            Out::NotifyComplete { checkpoint, tasks } | Out::NotifyAborted { checkpoint, tasks } => {
                let complete = self.coordinator.retained().any(|c| c.checkpoint == checkpoint);
                for execution in tasks {
                    let t = self.index_of(execution.vertex, execution.subtask);
                    self.tasks[t].runner.notify_checkpoint(checkpoint, complete);
                }
            }
            _ => {}
        }
        None
    }

    /// Takes task `t`'s outputs: buffers to the consumers, snapshots and declines and the end of
    /// the task to the coordinator.
    fn drain(&mut self, t: usize) {
        let execution = self.tasks[t].runner.execution();
        while let Some(output) = self.tasks[t].runner.poll_output() {
            let input = match output {
                TaskOutput::Buffer { edge, consumer, buffer } => {
                    let target = self.index_of(self.plan.edges[edge].target, consumer);
                    let channel = self.tasks[target].runner.input_channel(edge, execution.subtask);
                    let channel = channel.unwrap_or_else(|| panic!("no channel for edge {edge}"));
                    self.tasks[target].inbox.entry(channel).or_default().push_back(buffer);
                    continue;
                }
                TaskOutput::Snapshot { checkpoint, bytes, metrics, .. } => {
                    let vertex = self.plan.vertices[execution.vertex.index()].id;
                    let name = storage::state_file_name(vertex, execution.subtask, execution.attempt);
                    let state = Some(storage::handle_for(name.clone(), &bytes));
                    let Some(location) = self.locations.get(&checkpoint) else { continue };
                    self.files.insert(format!("{location}/{name}"), bytes);
                    checkpoint::Input::Acknowledge { execution, checkpoint, state, metrics }
                }
                TaskOutput::Decline { checkpoint, reason } => {
                    checkpoint::Input::Decline { execution, checkpoint, reason }
                }
                TaskOutput::AwaitingFinalCheckpoint { .. } if !self.report_final => continue,
                TaskOutput::AwaitingFinalCheckpoint { checkpoint_latest } => {
                    checkpoint::Input::FinalCheckpointAwaited { execution, checkpoint_latest }
                }
                TaskOutput::Finished => {
                    self.tasks[t].finished = true;
                    let finished = (0..self.tasks.len()).filter(|&t| self.tasks[t].finished);
                    let finished = finished.map(|t| self.tasks[t].runner.execution()).collect();
                    let executions = executions(self.plan, self.attempt);
                    checkpoint::Input::TasksRunningOrFinished { executions, finished }
                }
                TaskOutput::Failed { error } => panic!("task {t} failed: {error}"),
            };
            self.feed(input);
        }
    }

    /// One millisecond: the coordinator's due timers, then one step of every task.
    fn round(&mut self, budget: usize) {
        self.now = self.now.after(Duration::from_millis(1));
        if self.coordinator.poll_timeout().is_some_and(|due| due <= self.now) {
            self.feed(checkpoint::Input::Tick);
        }
        for t in 0..self.tasks.len() {
            let slot = &mut self.tasks[t];
            for (channel, queue) in &mut slot.inbox {
                while let Some(buffer) = queue.pop_front() {
                    if let Err(refused) = slot.runner.push_buffer(*channel, buffer) {
                        queue.push_front(refused.item);
                        break;
                    }
                }
            }
            let status = slot.runner.step(self.now, budget);
            assert_ne!(status, StepStatus::Failed, "task {t} failed");
            self.drain(t);
            self.tasks[t].runner.check_invariants().unwrap_or_else(|problem| panic!("task {t}: {problem}"));
        }
    }

    fn all_finished(&self) -> bool {
        self.tasks.iter().all(|slot| slot.finished)
    }

    /// Whether the latest completed checkpoint records every source subtask as finished.
    fn sources_finished_in_latest(&self) -> bool {
        let Some(latest) = self.coordinator.latest_completed() else { return false };
        executions(self.plan, 0)
            .into_iter()
            .filter(|e| e.vertex == VertexIndex(0))
            .all(|e| latest.is_finished(e.vertex, e.subtask))
    }
}

const JOB: crate::ids::JobId = crate::ids::JobId(crate::ids::Hex128(0x5eed));

/// Attempt `attempt` of every subtask of `plan`, sorted.
fn executions(plan: &JobPlan, attempt: u32) -> Vec<ExecutionId> {
    let all = plan.vertices.iter().flat_map(|vertex| {
        (0..vertex.parallelism).map(move |subtask| ExecutionId {
            job: JOB,
            vertex: vertex.index,
            subtask: SubtaskIndex(subtask),
            attempt: crate::ids::AttemptNumber(attempt),
        })
    });
    all.collect()
}

/// Checkpoints every 20 ms of the 1 ms rounds.
fn coordinated_config() -> Config {
    let mut config = test_config(true, false);
    config.checkpoint.interval = Some(Duration::from_millis(20));
    config.checkpoint.dir = Some("/chk".to_string());
    config
}

#[test]
fn with_the_real_coordinator_a_bounded_job_commits_everything_through_checkpoints_at_its_window_tasks() {
    let plan = windowed_sum(RECORDS, KEYS, WINDOW, 2, SinkKind::File);
    let config = coordinated_config();
    let mut world = Coordinated::new(&plan, &config);
    let mut rounds = 0;
    while !world.all_finished() {
        assert!(rounds < 20_000, "not finished");
        world.round(300);
        rounds += 1;
    }
    assert_eq!(
        totals(world.io.parts.committed_lines().into_values().flatten()),
        totals(expected_sums(RECORDS, KEYS, WINDOW))
    );
    assert_eq!(world.io.parts.pending_count(), 0, "the final checkpoints committed the last parts");
    let windows: Vec<ExecutionId> = executions(&plan, 0).into_iter().filter(|e| e.vertex == VertexIndex(1)).collect();
    assert!(
        world.triggers.iter().any(|(_, at)| *at == windows),
        "once both sources finished, barriers start at the window tasks: {:?}",
        world.triggers
    );
}

/// Runs the bounded job under the real coordinator with checkpoints every hour, for up to
/// 20 000 rounds of 1 ms: whether it finished, and the checkpoints triggered.
fn run_with_hourly_checkpoints(report_final: bool) -> (bool, Vec<(CheckpointId, Vec<ExecutionId>)>, Io) {
    let plan = windowed_sum(RECORDS, KEYS, WINDOW, 2, SinkKind::File);
    let mut config = coordinated_config();
    config.checkpoint.interval = Some(Duration::from_secs(3_600));
    let mut world = Coordinated::new(&plan, &config);
    world.report_final = report_final;
    for _ in 0..20_000 {
        if world.all_finished() {
            break;
        }
        world.round(300);
    }
    (world.all_finished(), world.triggers, world.io)
}

#[test]
fn with_the_real_coordinator_final_checkpoints_come_without_waiting_for_the_interval() {
    let plan = windowed_sum(RECORDS, KEYS, WINDOW, 2, SinkKind::File);
    let (finished, triggers, io) = run_with_hourly_checkpoints(true);
    assert!(finished, "the final checkpoints did not come: {triggers:?}");
    let at: Vec<Vec<ExecutionId>> = triggers.into_iter().map(|(_, at)| at).collect();
    let of_vertex =
        |vertex| executions(&plan, 0).into_iter().filter(|e| e.vertex == VertexIndex(vertex)).collect::<Vec<_>>();
    assert_eq!(at, vec![of_vertex(0), of_vertex(1)], "one final checkpoint at the sources, one at the windows");
    assert_eq!(
        totals(io.parts.committed_lines().into_values().flatten()),
        totals(expected_sums(RECORDS, KEYS, WINDOW))
    );
    let (finished, triggers, _) = run_with_hourly_checkpoints(false);
    assert!(!finished && triggers.is_empty(), "without the reports only the hourly trigger would finish it");
}

#[test]
fn with_the_real_coordinator_a_restore_with_the_sources_finished_commits_exactly_once() {
    let plan = windowed_sum(RECORDS, KEYS, WINDOW, 2, SinkKind::File);
    let config = coordinated_config();
    let mut world = Coordinated::new(&plan, &config);
    // Periodic final checkpoints only: one with the sources finished completes before the windows'.
    world.report_final = false;
    let mut rounds = 0;
    while !world.sources_finished_in_latest() {
        assert!(rounds < 20_000, "no checkpoint with the sources finished");
        world.round(300);
        rounds += 1;
    }
    assert!(!world.all_finished());
    world.crash_and_restore();
    while !world.all_finished() {
        assert!(rounds < 40_000, "not finished after the restore");
        world.round(300);
        rounds += 1;
    }
    for slot in world.tasks.iter().filter(|slot| slot.runner.execution().vertex == VertexIndex(0)) {
        assert_eq!(slot.runner.metrics().records_out, 0, "a source finished in the checkpoint emitted again");
    }
    assert_eq!(
        totals(world.io.parts.committed_lines().into_values().flatten()),
        totals(expected_sums(RECORDS, KEYS, WINDOW))
    );
    assert_eq!(world.io.parts.pending_count(), 0);
}

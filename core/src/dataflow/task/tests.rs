//! Task runtime tests: pipelines of [`TaskRunner`]s in one thread, buffers moved by a harness
//! ([`Cluster`]) that also plays the checkpoint coordinator and can crash and restore every task.

use super::*;
use crate::checkpoint::rescale;
use crate::checkpoint::storage::{self, TaskStateFile};
use crate::dataflow::operators::{LineWriter, OperatorContext, PartStore, ReaderRequest, SinkIoError, SourceReader};
use crate::dataflow::state::{MemoryStateStore, StateStore};
use crate::dataflow::{Barrier, BarrierKind, StreamElement};
use crate::ids::{AttemptNumber, Hex128, JobId, OperatorIndex};
use crate::job::builder::StreamEnvironment;
use crate::job::{FileFormat, WindowAssigner};
use crate::plan::{PlanOptions, plan};
use crate::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Lines a print sink wrote.
#[derive(Clone, Debug, Default)]
pub(super) struct Lines(Arc<Mutex<Vec<String>>>);

impl LineWriter for Lines {
    fn write_line(&mut self, line: &str) -> Result<(), SinkIoError> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line.to_string());
        Ok(())
    }
}

/// Part files in memory: the "file system", which outlives crashed tasks.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub(super) pending: BTreeMap<String, Vec<u8>>,
    pub(super) committed: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct MemoryParts(pub(super) Arc<Mutex<Parts>>);

impl MemoryParts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The committed lines of every sink subtask, parts in order: `(subtask, lines)`.
    pub(super) fn committed_lines(&self) -> BTreeMap<u32, Vec<String>> {
        let parts = self.lock();
        let mut numbered: Vec<((u32, u64), &Vec<u8>)> = parts
            .committed
            .iter()
            .map(|(name, bytes)| {
                let mut fields = name.trim_start_matches("part-").split('-').map(|field| field.parse().unwrap_or(0));
                let (subtask, number) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
                ((subtask as u32, number), bytes)
            })
            .collect();
        numbered.sort_by_key(|(key, _)| *key);
        let mut lines: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for ((subtask, _), bytes) in numbered {
            let text = String::from_utf8_lossy(bytes);
            lines.entry(subtask).or_default().extend(text.lines().map(str::to_string));
        }
        lines
    }

    pub(super) fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }
}

impl PartStore for MemoryParts {
    fn write_pending(&mut self, part: &str, bytes: &[u8]) -> Result<(), SinkIoError> {
        self.lock().pending.entry(part.to_string()).or_default().extend_from_slice(bytes);
        Ok(())
    }

    fn commit(&mut self, part: &str) -> Result<(), SinkIoError> {
        let mut parts = self.lock();
        if let Some(bytes) = parts.pending.remove(part) {
            assert!(!parts.committed.contains_key(part), "part {part} committed twice with new contents");
            parts.committed.insert(part.to_string(), bytes);
            return Ok(());
        }
        match parts.committed.contains_key(part) {
            true => Ok(()),
            false => Err(SinkIoError { message: format!("no part {part}") }),
        }
    }

    fn discard(&mut self, part: &str) -> Result<(), SinkIoError> {
        self.lock().pending.remove(part);
        Ok(())
    }

    fn pending_parts(&mut self) -> Result<Vec<String>, SinkIoError> {
        Ok(self.lock().pending.keys().cloned().collect())
    }
}

/// The harness's IO: a collecting line writer and in-memory part files.
#[derive(Clone, Debug, Default)]
pub(super) struct Io {
    pub(super) lines: Lines,
    pub(super) parts: MemoryParts,
}

impl Connectors for Io {
    fn source_reader(&mut self, _: &OperatorContext, _: ReaderRequest<'_>) -> Result<Box<dyn SourceReader>, String> {
        Err("no files here".to_string())
    }

    fn line_writer(&mut self, _: &OperatorContext) -> Result<Box<dyn LineWriter>, String> {
        Ok(Box::new(self.lines.clone()))
    }

    fn part_store(&mut self, _: &OperatorContext, _: &str) -> Result<Box<dyn PartStore>, String> {
        Ok(Box::new(self.parts.clone()))
    }

    fn keyed_state_store(&mut self, _operator: &OperatorContext) -> Result<Box<dyn StateStore>, String> {
        Ok(Box::new(MemoryStateStore::new()))
    }
}

/// Where the windowed sums go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SinkKind {
    Print,
    File,
    Discard,
}

/// The job of the tests and the benchmark: sequence `0..records` → map `k = x % keys`,
/// `v = x % 101` → key by `k` → count window of `window` summing `v` → sink.
pub(super) fn windowed_sum(records: i64, keys: i64, window: u64, parallelism: u32, sink: SinkKind) -> JobPlan {
    let env = StreamEnvironment::new("windowed-sum");
    env.set_parallelism(parallelism);
    let sums = env
        .sequence(0, records - 1)
        .uid("numbers")
        .map(&[("k", &format!("x % {keys}")), ("v", "x % 101")])
        .uid("pairs")
        .key_by("k")
        .window(WindowAssigner::Count { size: window })
        .aggregate(&[("v", "sum(v)")])
        .uid("sums");
    let _sink = match sink {
        SinkKind::Print => sums.print("").uid("sink"),
        SinkKind::File => sums.file_sink("out", FileFormat::Csv).uid("sink"),
        SinkKind::Discard => sums.discard().uid("sink"),
    };
    let job = env.build().unwrap_or_else(|errors| panic!("{errors:?}"));
    plan(&job, &PlanOptions::default()).unwrap_or_else(|error| panic!("{error}"))
}

/// The windowed sums the job must produce, in the order one subtask fires them.
pub(super) fn expected_sums(records: i64, keys: i64, window: u64) -> Vec<String> {
    let mut open: BTreeMap<i64, (u64, i64)> = BTreeMap::new();
    let mut lines = Vec::new();
    for x in 0..records {
        let (k, v) = (x % keys, x % 101);
        let (count, sum) = open.entry(k).or_default();
        *count += 1;
        *sum += v;
        if *count == window {
            lines.push(format!("{k},{sum}"));
            open.remove(&k);
        }
    }
    lines
}

/// A configuration for tests: small buffers, so many of them; checkpointing on or off.
pub(super) fn test_config(checkpointing: bool, unaligned: bool) -> Config {
    let mut config = Config::default();
    config.task_manager.segment_bytes = 256;
    config.pipeline.buffer_timeout = Duration::from_millis(5);
    config.checkpoint.interval = checkpointing.then_some(Duration::from_secs(1));
    config.checkpoint.unaligned = unaligned;
    config.checkpoint.aligned_checkpoint_timeout = Duration::ZERO;
    config
}

/// One task in the harness.
pub(super) struct Task {
    pub(super) vertex: VertexIndex,
    pub(super) subtask: SubtaskIndex,
    pub(super) runner: TaskRunner,
    /// Buffers not yet taken, per input channel, in order.
    inbox: BTreeMap<ChannelIndex, VecDeque<Buffer>>,
    pub(super) finished: bool,
}

/// A checkpoint the harness's coordinator waits on.
struct Pending {
    waiting: BTreeSet<usize>,
    states: BTreeMap<usize, Vec<u8>>,
    /// Tasks finished when it was triggered, or that finished without acknowledging.
    finished: BTreeSet<usize>,
}

/// Every task of a plan, connected by moving buffers; also the checkpoint coordinator.
pub(super) struct Cluster<'a> {
    plan: &'a JobPlan,
    config: &'a Config,
    pub(super) io: Io,
    pub(super) tasks: Vec<Task>,
    pub(super) now: Time,
    pub(super) round: u64,
    attempt: u32,
    checkpoint_next: u64,
    pending: BTreeMap<CheckpointId, Pending>,
    /// The latest state of each task over the completed checkpoints (what a restore uses).
    pub(super) restore_states: BTreeMap<usize, Vec<u8>>,
    /// Tasks the latest completed checkpoint records as finished: restored as finished.
    pub(super) restore_finished: BTreeSet<usize>,
    pub(super) completed: Vec<CheckpointId>,
    /// Completed checkpoints whose notification is due at a round.
    notify_due: VecDeque<(u64, CheckpointId)>,
    pub(super) notify_delay_rounds: u64,
    /// Producer tasks whose buffers are held back, and what they sent meanwhile.
    pub(super) held: BTreeSet<usize>,
    held_buffers: Vec<(usize, ChannelIndex, Buffer)>,
    /// The plan `restore_states` were taken with, when it is not `plan` (a rescale).
    restore_plan: Option<&'a JobPlan>,
}

impl<'a> Cluster<'a> {
    pub(super) fn new(plan: &'a JobPlan, config: &'a Config, io: Io) -> Cluster<'a> {
        let mut cluster = Cluster {
            plan,
            config,
            io,
            tasks: Vec::new(),
            now: Time::ZERO,
            round: 0,
            attempt: 0,
            checkpoint_next: 1,
            pending: BTreeMap::new(),
            restore_states: BTreeMap::new(),
            restore_finished: BTreeSet::new(),
            completed: Vec::new(),
            notify_due: VecDeque::new(),
            notify_delay_rounds: 0,
            held: BTreeSet::new(),
            held_buffers: Vec::new(),
            restore_plan: None,
        };
        cluster.deploy();
        cluster
    }

    /// A cluster running `plan` (the same job at other parallelisms) restored from `old`'s latest
    /// completed checkpoint: each new subtask gets the old state files the JobMaster would give it
    /// (`checkpoint::rescale::reads`). The IO (the part files) carries over.
    pub(super) fn rescaled(old: &Cluster<'a>, plan: &'a JobPlan) -> Cluster<'a> {
        let mut cluster = Cluster {
            plan,
            config: old.config,
            io: old.io.clone(),
            tasks: Vec::new(),
            now: old.now,
            round: old.round,
            attempt: old.attempt + 1,
            checkpoint_next: old.checkpoint_next,
            pending: BTreeMap::new(),
            restore_states: old.restore_states.clone(),
            restore_finished: old.restore_finished.clone(),
            completed: old.completed.clone(),
            notify_due: VecDeque::new(),
            notify_delay_rounds: 0,
            held: BTreeSet::new(),
            held_buffers: Vec::new(),
            restore_plan: Some(old.restore_plan.unwrap_or(old.plan)),
        };
        cluster.deploy();
        cluster
    }

    /// The state files task `(vertex, subtask)` restores from.
    fn restore_files(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Vec<&[u8]> {
        let Some(old_plan) = self.restore_plan else {
            let own = self.index_of(vertex, subtask);
            return self.restore_states.get(&own).map(Vec::as_slice).into_iter().collect();
        };
        let old = &old_plan.vertices[vertex.index()];
        let new = &self.plan.vertices[vertex.index()];
        let before: u32 = old_plan.vertices[..vertex.index()].iter().map(|v| v.parallelism).sum();
        let reads = |i: &u32| rescale::reads(*i, old.parallelism, subtask.0, new.parallelism, old.max_parallelism);
        let files = (0..old.parallelism).filter(reads);
        files.filter_map(|i| self.restore_states.get(&((before + i) as usize)).map(Vec::as_slice)).collect()
    }

    /// Starts every task, from the restore states if there are any.
    fn deploy(&mut self) {
        let mut tasks = Vec::new();
        for vertex in &self.plan.vertices {
            for subtask in (0..vertex.parallelism).map(SubtaskIndex) {
                let execution = ExecutionId {
                    job: JobId(Hex128(7)),
                    vertex: vertex.index,
                    subtask,
                    attempt: AttemptNumber(self.attempt),
                };
                let restore_finished = self.restore_finished.contains(&tasks.len());
                let files: Vec<Vec<u8>> = match restore_finished {
                    true => Vec::new(),
                    false => self.restore_files(vertex.index, subtask).into_iter().map(<[u8]>::to_vec).collect(),
                };
                let restore = files.iter().map(Vec::as_slice).collect();
                let setup = TaskSetup {
                    execution,
                    plan: self.plan,
                    config: self.config,
                    restore,
                    connectors: &mut self.io,
                    seed: 3,
                    wait_for_final_checkpoint: true,
                    restore_finished,
                };
                let runner = TaskRunner::new(setup).unwrap_or_else(|error| panic!("task {execution}: {error}"));
                tasks.push(Task { vertex: vertex.index, subtask, runner, inbox: BTreeMap::new(), finished: false });
            }
        }
        self.tasks = tasks;
    }

    /// Every task crashes; all restart from the latest completed checkpoint (or from scratch).
    pub(super) fn crash_and_restore(&mut self) {
        self.tasks.clear();
        self.pending.clear();
        self.notify_due.clear();
        self.held.clear();
        self.held_buffers.clear();
        self.attempt += 1;
        self.deploy();
    }

    pub(super) fn index_of(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> usize {
        let before: u32 = self.plan.vertices[..vertex.index()].iter().map(|v| v.parallelism).sum();
        (before + subtask.0) as usize
    }

    /// Takes task `t`'s outputs: buffers into the consumers' inboxes, acknowledgements to the
    /// coordinator.
    pub(super) fn drain(&mut self, t: usize) {
        while let Some(output) = self.tasks[t].runner.poll_output() {
            match output {
                TaskOutput::Buffer { edge, consumer, buffer } => {
                    let target = self.index_of(self.plan.edges[edge].target, consumer);
                    let producer = self.tasks[t].subtask;
                    let channel = self.tasks[target].runner.input_channel(edge, producer);
                    let channel = channel.unwrap_or_else(|| panic!("no channel for edge {edge} from {producer}"));
                    match self.held.contains(&t) {
                        true => self.held_buffers.push((target, channel, buffer)),
                        false => self.tasks[target].inbox.entry(channel).or_default().push_back(buffer),
                    }
                }
                TaskOutput::Snapshot { checkpoint, bytes, .. } => self.acknowledge(t, checkpoint, bytes),
                TaskOutput::Decline { checkpoint, .. } => self.abort(checkpoint),
                // This cluster triggers by hand, not through a coordinator.
                TaskOutput::AwaitingFinalCheckpoint { .. } => {}
                TaskOutput::Finished => {
                    self.tasks[t].finished = true;
                    for pending in self.pending.values_mut() {
                        if pending.waiting.remove(&t) {
                            pending.finished.insert(t);
                        }
                    }
                }
                TaskOutput::Failed { error } => panic!("task {t} failed: {error}"),
            }
        }
    }

    /// Stops holding back producer `t`'s buffers and delivers what it sent meanwhile.
    pub(super) fn release(&mut self, t: usize) {
        self.held.remove(&t);
        for (target, channel, buffer) in std::mem::take(&mut self.held_buffers) {
            self.tasks[target].inbox.entry(channel).or_default().push_back(buffer);
        }
    }

    /// Pushes what task `t`'s channels will take.
    pub(super) fn deliver(&mut self, t: usize) {
        let task = &mut self.tasks[t];
        for (channel, queue) in &mut task.inbox {
            while let Some(buffer) = queue.pop_front() {
                if let Err(refused) = task.runner.push_buffer(*channel, buffer) {
                    assert!(matches!(refused.reason, RefusalReason::Full { .. }), "{refused}");
                    queue.push_front(refused.item);
                    break;
                }
            }
        }
    }

    fn acknowledge(&mut self, t: usize, checkpoint: CheckpointId, bytes: Vec<u8>) {
        let Some(pending) = self.pending.get_mut(&checkpoint) else { return };
        pending.waiting.remove(&t);
        pending.states.insert(t, bytes);
        if !pending.waiting.is_empty() {
            return;
        }
        let Some(done) = self.pending.remove(&checkpoint) else { return };
        if self.restore_plan.take().is_some() {
            self.restore_states.clear(); // states of the old parallelism are not this plan's
            self.restore_finished.clear();
        }
        for t in done.states.keys() {
            self.restore_finished.remove(t);
        }
        for t in &done.finished {
            self.restore_states.remove(t);
            self.restore_finished.insert(*t);
        }
        self.restore_states.extend(done.states);
        self.completed.push(checkpoint);
        self.notify_due.push_back((self.round + self.notify_delay_rounds, checkpoint));
    }

    fn abort(&mut self, checkpoint: CheckpointId) {
        if self.pending.remove(&checkpoint).is_some() {
            for task in &mut self.tasks {
                task.runner.notify_checkpoint(checkpoint, false);
            }
        }
    }

    /// Whether a barrier triggered now reaches every task that has not finished.
    fn can_trigger(&self) -> bool {
        self.pending.is_empty()
            && (0..self.tasks.len()).all(|t| {
                let task = &self.tasks[t];
                task.finished || task.runner.accepts_trigger() || self.has_live_producer(t)
            })
    }

    fn has_live_producer(&self, t: usize) -> bool {
        let task = &self.tasks[t];
        let edges = self.plan.edges.iter().enumerate().filter(|(_, edge)| edge.target == task.vertex);
        edges.into_iter().any(|(plan_edge, edge)| {
            let producers = task.runner.input_layout().producers(plan_edge);
            producers.into_iter().any(|producer| !self.tasks[self.index_of(edge.source, producer)].finished)
        })
    }

    /// Triggers a checkpoint at every task that takes a trigger, if it can reach every task.
    pub(super) fn trigger(&mut self) -> Option<CheckpointId> {
        self.trigger_kind(BarrierKind::Checkpoint)
    }

    /// Triggers a checkpoint or savepoint of `kind`, as [`Cluster::trigger`].
    pub(super) fn trigger_kind(&mut self, kind: BarrierKind) -> Option<CheckpointId> {
        if !self.can_trigger() {
            return None;
        }
        let checkpoint = CheckpointId(self.checkpoint_next);
        self.checkpoint_next += 1;
        let (finished, waiting): (BTreeSet<usize>, BTreeSet<usize>) =
            (0..self.tasks.len()).partition(|&t| self.tasks[t].finished);
        self.pending.insert(checkpoint, Pending { waiting, states: BTreeMap::new(), finished });
        let barrier = Barrier { checkpoint, triggered_at: self.now, kind, unaligned: false };
        for t in 0..self.tasks.len() {
            if self.tasks[t].runner.accepts_trigger() {
                self.tasks[t].runner.trigger_checkpoint(barrier);
                self.drain(t);
            }
        }
        Some(checkpoint)
    }

    /// One round: due notifications, a final checkpoint if a task waits for one, then one step
    /// of every task with its inputs delivered before and its outputs drained after.
    pub(super) fn round(&mut self, budget: usize) {
        self.round += 1;
        self.now = self.now.after(Duration::from_millis(1));
        while self.notify_due.front().is_some_and(|(due, _)| *due <= self.round) {
            let Some((_, checkpoint)) = self.notify_due.pop_front() else { break };
            for t in 0..self.tasks.len() {
                self.tasks[t].runner.notify_checkpoint(checkpoint, true);
                self.drain(t);
            }
        }
        if self.tasks.iter().any(|task| task.runner.awaits_final_checkpoint()) {
            self.trigger();
        }
        for t in 0..self.tasks.len() {
            self.deliver(t);
            let status = self.tasks[t].runner.step(self.now, budget);
            assert_ne!(status, StepStatus::Failed, "task {t} failed");
            self.drain(t);
            if let Err(problem) = self.tasks[t].runner.check_invariants() {
                panic!("task {t}: {problem}");
            }
        }
    }

    pub(super) fn all_finished(&self) -> bool {
        self.tasks.iter().all(|task| task.finished)
    }

    /// Rounds until every task finished; panics past `rounds_max`.
    pub(super) fn run_to_end(&mut self, budget: usize, rounds_max: u64) {
        let start = self.round;
        while !self.all_finished() {
            assert!(self.round - start < rounds_max, "not finished after {rounds_max} rounds");
            self.round(budget);
        }
    }
}

fn lines_of(io: &Io) -> Vec<String> {
    io.lines.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

#[test]
fn two_tasks_connected_by_buffers_compute_the_window_sums() {
    let plan = windowed_sum(20_000, 10, 100, 1, SinkKind::Print);
    assert_eq!(plan.vertices.len(), 2, "source chain and window chain");
    let config = test_config(false, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.run_to_end(700, 10_000);
    assert_eq!(lines_of(&cluster.io), expected_sums(20_000, 10, 100));
    let (a, b) = (cluster.tasks[0].runner.metrics(), cluster.tasks[1].runner.metrics());
    assert_eq!((a.records_out, b.records_in), (20_000, 20_000));
    assert_eq!(a.bytes_out, b.bytes_in, "every byte sent was received");
    assert!(a.buffers_out > 20_000 * 6 / 256, "small buffers: {} of them", a.buffers_out);
}

#[test]
fn each_budget_and_buffer_timeout_gives_the_same_result() {
    let plan = windowed_sum(3_000, 7, 10, 1, SinkKind::Print);
    for (budget, timeout_ms) in [(1, 0), (13, 1), (5_000, 1_000)] {
        let mut config = test_config(false, false);
        config.pipeline.buffer_timeout = Duration::from_millis(timeout_ms);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        cluster.run_to_end(budget, 100_000);
        assert_eq!(lines_of(&cluster.io), expected_sums(3_000, 7, 10), "budget {budget}, timeout {timeout_ms} ms");
    }
}

#[test]
fn a_checkpoint_snapshots_both_tasks_and_the_sink_commits_on_completion() {
    let plan = windowed_sum(4_000, 5, 20, 1, SinkKind::File);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    for _ in 0..3 {
        cluster.round(300);
    }
    let checkpoint = cluster.trigger().unwrap_or_else(|| panic!("the sources take a trigger"));
    for _ in 0..20 {
        cluster.round(300);
    }
    assert_eq!(cluster.completed.first(), Some(&checkpoint));
    let committed: usize = cluster.io.parts.committed_lines().values().map(Vec::len).sum();
    assert!(committed > 0, "the first part is committed once the checkpoint completes");
    cluster.run_to_end(300, 10_000);
    let lines = cluster.io.parts.committed_lines();
    assert_eq!(lines.get(&0).cloned().unwrap_or_default(), expected_sums(4_000, 5, 20));
    assert_eq!(cluster.io.parts.pending_count(), 0, "the final checkpoint committed the last part");
}

/// Per key: (sum of the window sums, number of windows), from csv lines `k,sum`.
pub(super) fn totals(lines: impl IntoIterator<Item = String>) -> BTreeMap<i64, (i64, u64)> {
    let mut totals: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
    for line in lines {
        let (k, sum) = line.split_once(',').unwrap_or_else(|| panic!("bad line {line:?}"));
        let (k, sum): (i64, i64) = (k.parse().unwrap_or(-1), sum.parse().unwrap_or(-1));
        let entry = totals.entry(k).or_default();
        entry.0 += sum;
        entry.1 += 1;
    }
    totals
}

#[test]
fn parallelism_two_with_a_hash_edge_aligns_barriers_across_both_channels() {
    // 4 tasks: sources 0 and 1, windows 2 and 3; every window task reads both sources.
    let (records, keys, window) = (8_400, 7, 50);
    let plan = windowed_sum(records, keys, window, 2, SinkKind::File);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    assert_eq!(cluster.tasks.len(), 4);
    assert_eq!(cluster.tasks[2].runner.input_layout().channels(), 2, "one channel per producer");
    cluster.round(200);
    // Source 1's buffers are held back: its barrier reaches the window tasks late.
    cluster.held.insert(1);
    let checkpoint = cluster.trigger().unwrap_or_else(|| panic!("the sources take a trigger"));
    for _ in 0..5 {
        cluster.round(200);
    }
    let read_while_aligning: u64 = (2..4).map(|t| cluster.tasks[t].runner.metrics().records_in).sum();
    assert!(cluster.completed.is_empty(), "no snapshot before source 1's barrier arrives");
    // Aligned: a window task blocks source 0's channel after its barrier, so it reads the 200
    // records both sources sent before the trigger at most, never the 1,000 source 0 sent after.
    assert!((200..=400).contains(&read_while_aligning), "read {read_while_aligning} records while aligning");
    cluster.release(1);
    for _ in 0..5 {
        cluster.round(200);
    }
    assert_eq!(cluster.completed, vec![checkpoint], "the checkpoint completes once both barriers arrived");
    // Crash after more progress, restore from the checkpoint, finish: every record counted once.
    for _ in 0..3 {
        cluster.round(200);
    }
    cluster.crash_and_restore();
    cluster.run_to_end(200, 20_000);
    let lines = cluster.io.parts.committed_lines().into_values().flatten();
    assert_eq!(totals(lines), totals(expected_sums(records, keys, window)));
}

#[test]
fn corrupt_restore_bytes_are_a_typed_error() {
    let plan = windowed_sum(1_000, 5, 10, 1, SinkKind::File);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.round(100);
    cluster.trigger();
    for _ in 0..5 {
        cluster.round(100);
    }
    let good = cluster.restore_states.get(&1).cloned().unwrap_or_else(|| panic!("a completed checkpoint"));
    let execution = |subtask| ExecutionId {
        job: JobId(Hex128(7)),
        vertex: VertexIndex(1),
        subtask: SubtaskIndex(subtask),
        attempt: AttemptNumber(1),
    };
    let build = |bytes: &[u8], subtask: u32| {
        let mut io = cluster.io.clone();
        let setup = TaskSetup {
            execution: execution(subtask),
            plan: &plan,
            config: &config,
            restore: vec![bytes],
            connectors: &mut io,
            seed: 0,
            wait_for_final_checkpoint: true,
            restore_finished: false,
        };
        TaskRunner::new(setup).map(|_| ())
    };
    assert_eq!(build(&good, 0), Ok(()), "the intact file restores");
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    assert!(matches!(build(&flipped, 0), Err(TaskError::Restore(RestoreError::Storage(_)))));
    assert!(matches!(build(&good[..good.len() - 3], 0), Err(TaskError::Restore(RestoreError::Storage(_)))));
    assert!(matches!(build(b"not a state file", 0), Err(TaskError::Restore(RestoreError::Storage(_)))));
    assert!(matches!(build(&[], 0), Err(TaskError::Restore(RestoreError::Storage(_)))));
    let unreadable = |bytes: &[u8]| {
        TaskRunner::new(TaskSetup {
            execution: execution(0),
            plan: &plan,
            config: &config,
            restore: vec![bytes],
            connectors: &mut cluster.io.clone(),
            seed: 0,
            wait_for_final_checkpoint: true,
            restore_finished: false,
        })
        .err()
        .is_some_and(|error| error.is_unreadable_state())
    };
    assert!(unreadable(&flipped) && unreadable(&good[..9]), "a corrupt file is reported as unreadable state");
    assert!(!unreadable(&good), "the intact file is readable");
    // A well-framed file whose contents are wrong: another subtask's, garbage operator state.
    let mut file = storage::decode_task_state(&good).unwrap_or_else(|error| panic!("{error}"));
    file.subtask = SubtaskIndex(0);
    let source_file = TaskStateFile { vertex: plan.vertices[0].id, ..file.clone() };
    let wrong_task = storage::encode_task_state(&source_file);
    assert!(matches!(build(&wrong_task, 0), Err(TaskError::Restore(RestoreError::WrongTask { .. }))));
    let mut garbage = file.clone();
    garbage.operators[0].operator_state = vec![0xff; 9];
    let garbage = storage::encode_task_state(&garbage);
    assert!(matches!(build(&garbage, 0), Err(TaskError::Restore(RestoreError::Undecodable { .. }))));
    let mut stranger = file;
    stranger.operators[0].operator = OperatorIndex(0);
    let stranger = storage::encode_task_state(&stranger);
    assert!(matches!(build(&stranger, 0), Err(TaskError::Restore(RestoreError::UnknownOperator { .. }))));
}

#[test]
fn random_restore_bytes_never_panic() {
    let plan = windowed_sum(100, 5, 10, 1, SinkKind::Discard);
    let config = test_config(true, false);
    let mut rng = crate::rng::Rng::new(5);
    for length in 0..300 {
        let mut bytes: Vec<u8> = (0..length).map(|_| rng.next_u64() as u8).collect();
        if length >= 4 {
            bytes[..4].copy_from_slice(&storage::MAGIC);
        }
        let execution = ExecutionId {
            job: JobId(Hex128(7)),
            vertex: VertexIndex(1),
            subtask: SubtaskIndex(0),
            attempt: AttemptNumber(0),
        };
        let mut io = Io::default();
        let setup = TaskSetup {
            execution,
            plan: &plan,
            config: &config,
            restore: vec![bytes.as_slice()],
            connectors: &mut io,
            seed: 0,
            wait_for_final_checkpoint: false,
            restore_finished: false,
        };
        assert!(TaskRunner::new(setup).is_err(), "{length} random bytes are not a state file");
    }
}

#[test]
fn a_cancelled_task_puts_out_nothing_more() {
    let plan = windowed_sum(10_000, 5, 10, 1, SinkKind::Print);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.round(500);
    let source = &mut cluster.tasks[0].runner;
    assert_eq!(source.step(cluster.now, 5), StepStatus::Progress);
    source.trigger_checkpoint(Barrier {
        checkpoint: CheckpointId(1),
        triggered_at: cluster.now,
        kind: BarrierKind::Checkpoint,
        unaligned: false,
    });
    source.cancel();
    assert_eq!(source.poll_output(), None, "queued buffers and the snapshot are dropped");
    assert_eq!(source.step(cluster.now, 500), StepStatus::Canceled);
    source.trigger_checkpoint(Barrier {
        checkpoint: CheckpointId(2),
        triggered_at: cluster.now,
        kind: BarrierKind::Checkpoint,
        unaligned: false,
    });
    source.notify_checkpoint(CheckpointId(1), true);
    assert_eq!(source.poll_output(), None);
    assert_eq!(source.poll_timeout(), None);
    let window = &mut cluster.tasks[1].runner;
    window.cancel();
    let refused = window.push_buffer(ChannelIndex(0), Buffer::from_parts(vec![4], 1));
    assert!(matches!(refused, Err(Refused { reason: RefusalReason::Ended, .. })));
    assert_eq!(window.step(cluster.now, 10), StepStatus::Canceled);
    assert_eq!(window.poll_output(), None);
}

#[test]
fn a_failed_task_reports_once_then_nothing() {
    let plan = windowed_sum(1_000, 5, 10, 1, SinkKind::Print);
    let config = test_config(false, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    let window = &mut cluster.tasks[1].runner;
    // A record tag followed by a field count larger than the buffer: the gate refuses to decode.
    window.push_buffer(ChannelIndex(0), Buffer::from_parts(vec![1, 9], 1)).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(window.step(Time::ZERO, 10), StepStatus::Failed);
    assert!(matches!(window.poll_output(), Some(TaskOutput::Failed { error: TaskError::Gate(_) })));
    assert_eq!(window.poll_output(), None);
    assert_eq!(window.step(Time(5), 10), StepStatus::Failed);
}

#[test]
fn a_non_source_declines_a_trigger_and_a_subsumed_checkpoint() {
    let plan = windowed_sum(1_000, 5, 10, 1, SinkKind::Print);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    let barrier = |id| Barrier {
        checkpoint: CheckpointId(id),
        triggered_at: Time::ZERO,
        kind: BarrierKind::Checkpoint,
        unaligned: false,
    };
    let window = &mut cluster.tasks[1].runner;
    assert!(!window.accepts_trigger());
    window.trigger_checkpoint(barrier(1));
    let declined = window.poll_output();
    assert!(matches!(declined, Some(TaskOutput::Decline { reason: DeclineReason::InputEndOfStream, .. })));
    let mut builder = crate::dataflow::buffer::BufferBuilder::new(64);
    assert!(builder.push(&StreamElement::Barrier(barrier(2))));
    window.push_buffer(ChannelIndex(0), builder.finish()).unwrap_or_else(|r| panic!("{r}"));
    window.step(Time::ZERO, 10);
    assert!(matches!(window.poll_output(), Some(TaskOutput::Snapshot { checkpoint: CheckpointId(2), .. })));
}

#[test]
fn time_between_steps_counts_as_busy_idle_or_backpressured() {
    let plan = windowed_sum(1_000_000, 5, 10, 1, SinkKind::Discard);
    let mut config = test_config(false, false);
    config.pipeline.buffer_timeout = Duration::MAX;
    let mut io = Io::default();
    let execution = ExecutionId {
        job: JobId(Hex128(7)),
        vertex: VertexIndex(0),
        subtask: SubtaskIndex(0),
        attempt: AttemptNumber(0),
    };
    let setup = TaskSetup {
        execution,
        plan: &plan,
        config: &config,
        restore: Vec::new(),
        connectors: &mut io,
        seed: 0,
        wait_for_final_checkpoint: false,
        restore_finished: false,
    };
    let mut source = TaskRunner::new(setup).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(source.step(Time(0), 10), StepStatus::Progress);
    // Nobody drains the outputs: the backlog reaches its bound.
    let mut now = 0;
    let status = loop {
        now += 1_000;
        match source.step(Time(now), 4096) {
            StepStatus::Progress => continue,
            other => break other,
        }
    };
    assert_eq!(status, StepStatus::Blocked);
    let busy_until = source.metrics();
    assert_eq!(source.step(Time(now + 3_000), 4096), StepStatus::Blocked, "still blocked");
    let later = source.metrics();
    assert_eq!(later.backpressured, Duration(3_000));
    assert_eq!(busy_until.busy, Duration(now));
    let shares = later.time_shares_since(&busy_until);
    assert_eq!((shares.busy_ms_per_second, shares.backpressured_ms_per_second), (0, 1000));
    while source.poll_output().is_some() {}
    assert_eq!(source.step(Time(now + 4_000), 10), StepStatus::Progress, "drained: it runs again");
}

#[test]
fn an_unaligned_snapshot_keeps_the_records_in_flight_and_replays_them_on_restore() {
    let (records, keys, window) = (8_400, 7, 50);
    let plan = windowed_sum(records, keys, window, 2, SinkKind::File);
    let config = test_config(true, true);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.round(200);
    // Source 1's records before its barrier arrive after the window tasks took the snapshot.
    cluster.held.insert(1);
    let checkpoint = cluster.trigger();
    for _ in 0..3 {
        cluster.round(200);
    }
    assert!(cluster.completed.is_empty(), "the in-flight records are still to come");
    cluster.release(1);
    for _ in 0..5 {
        cluster.round(200);
    }
    assert_eq!(cluster.completed.first().copied(), checkpoint);
    for t in 2..4 {
        let file = storage::decode_task_state(&cluster.restore_states[&t]).unwrap_or_else(|error| panic!("{error}"));
        assert!(!file.operators[0].channel_state.is_empty(), "window task {t} snapshotted in-flight records");
    }
    cluster.crash_and_restore();
    cluster.run_to_end(200, 20_000);
    let lines = cluster.io.parts.committed_lines().into_values().flatten();
    assert_eq!(totals(lines), totals(expected_sums(records, keys, window)));
}

#[test]
fn missing_or_corrupt_files_of_an_incremental_checkpoint_are_unreadable_state_and_other_refusals_not() {
    use crate::dataflow::operators::{OperatorError, OperatorErrorKind};
    use crate::dataflow::state::StateError;
    let refusal = |error: StateError| {
        TaskError::Restore(RestoreError::Operator(OperatorError::new("counts", OperatorErrorKind::State(error))))
    };
    let missing = StateError::NativeFiles { message: "shared/0f-000009.sst: cannot read".to_string() };
    assert!(refusal(missing).is_unreadable_state(), "recovery falls back to an older checkpoint");
    let unknown = StateError::UnknownState { name: "gone".to_string() };
    assert!(!refusal(unknown).is_unreadable_state(), "a job that changed is not a broken checkpoint");
}

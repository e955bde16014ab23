//! A JobManager and a TaskExecutor driven by hand (registration, a job with a checkpoint, its
//! end) while both journal, then replayed into fresh machines: same outputs, same state.

use super::replay::{Replayed, ReplayedMachine, chain_hash, replay, segments_of};
use super::*;
use std::collections::{BTreeMap, VecDeque};
use weir_core::checkpoint::AckMetrics;
use weir_core::ids::{Hex128, JobId};
use weir_core::job::builder::StreamEnvironment;
use weir_core::job_manager::JobManager;
use weir_core::protocol::{
    CheckpointOutcome, Event, ExecutionId, ExecutionState, JobStatus, JobSubmission, Output, Role, StorageRequest,
    TaskCommand,
};
use weir_core::task_executor::{TaskExecutor, TaskExecutorConfig};

const EPOCH: Epoch = Epoch(1);
const RESOURCE_ID: ResourceId = ResourceId(Hex128(0x7e57));
const DATA_ADDRESS: &str = "127.0.0.1:6121";
/// Virtual time between two rounds of the harness.
const ROUND_MICROS: u64 = 100_000;
/// Rounds after which the harness gives up.
const ROUNDS_MAX: u64 = 1_200;
/// Rounds of heartbeats after the job finished (enough records to fill several 1 kb segments).
const ROUNDS_AFTER_FINISH: u64 = 600;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-journal-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settings(dir: &Path, segment_bytes_max: u64, segments_max: u32) -> JournalSettings {
    let flush_interval = std::time::Duration::from_millis(200);
    JournalSettings { enabled: true, dir: dir.to_path_buf(), segment_bytes_max, segments_max, flush_interval }
}

fn cluster_config(extra: &[(&str, &str)]) -> RawConfig {
    let mut raw = RawConfig::new();
    raw.set("heartbeat.interval", "1 s");
    raw.set("heartbeat.timeout", "5 s");
    for (key, value) in extra {
        raw.set(*key, *value);
    }
    raw
}

/// A JobManager and a TaskExecutor wired to each other by hand, each journaling its inputs;
/// task threads and storage are played by the harness.
struct Harness {
    now: Time,
    job_manager: JobManager,
    executor: TaskExecutor,
    job_manager_journal: Journal,
    executor_journal: Journal,
    /// Outputs and their running hash, per machine, as the replay computes them.
    job_manager_outputs: (u64, u128),
    executor_outputs: (u64, u128),
    to_job_manager: VecDeque<job_manager::Input>,
    to_executor: VecDeque<task_executor::Input>,
    running: Vec<ExecutionId>,
    checkpoints_completed: u64,
}

impl Harness {
    fn new(raw: &RawConfig, settings: &JournalSettings) -> Harness {
        let seed = job_manager_seed(EPOCH);
        let job_manager = JobManager::new(raw.clone(), ClusterMode::Session, EPOCH, seed).unwrap();
        let header = Header::job_manager(raw, ClusterMode::Session, EPOCH, seed, Time(0));
        let job_manager_journal = Journal::open(settings, header);
        let config = weir_core::config::Config::from_raw(raw).unwrap();
        let mut executor_config = TaskExecutorConfig::from_config(&config).unwrap();
        executor_config.data_address = DATA_ADDRESS.to_string();
        let executor = TaskExecutor::new(RESOURCE_ID, executor_config, Time(0));
        let executor_journal = Journal::open(settings, Header::task_manager(raw, RESOURCE_ID, DATA_ADDRESS, Time(0)));
        let mut harness = Harness {
            now: Time(0),
            job_manager,
            executor,
            job_manager_journal,
            executor_journal,
            job_manager_outputs: (0, 0),
            executor_outputs: (0, 0),
            to_job_manager: VecDeque::new(),
            to_executor: VecDeque::new(),
            running: Vec::new(),
            checkpoints_completed: 0,
        };
        harness.route_executor_outputs();
        harness
    }

    fn submit(&mut self, submission: JobSubmission) {
        let message = Message::Dispatcher(DispatcherMessage::Submit { request: 1, submission: Box::new(submission) });
        let envelope = Envelope { from: Address::Client(1), to: Address::Dispatcher, epoch: Epoch(0), message };
        self.to_job_manager.push_back(job_manager::Input::Message(envelope));
    }

    /// One round: every queued input delivered (and what it causes), then time moves on and
    /// due ticks fire, as the daemons' control tasks do.
    fn round(&mut self) {
        loop {
            if let Some(input) = self.to_job_manager.pop_front() {
                self.job_manager_journal.record(self.now, &input);
                self.job_manager.handle(self.now, input);
                self.route_job_manager_outputs();
            } else if let Some(input) = self.to_executor.pop_front() {
                self.executor_journal.record(self.now, &input);
                self.executor.handle(self.now, input);
                self.route_executor_outputs();
            } else {
                break;
            }
        }
        self.now = Time(self.now.0 + ROUND_MICROS);
        if self.job_manager.poll_timeout().is_some_and(|at| at <= self.now) {
            self.to_job_manager.push_back(job_manager::Input::Tick);
        }
        if self.executor.poll_timeout().is_some_and(|at| at <= self.now) {
            self.to_executor.push_back(task_executor::Input::Tick);
        }
    }

    fn route_job_manager_outputs(&mut self) {
        while let Some(output) = self.job_manager.poll_output() {
            let (count, hash) = self.job_manager_outputs;
            self.job_manager_outputs = (count + 1, chain_hash(hash, &output));
            match output {
                Output::Send(Envelope {
                    from,
                    to: Address::TaskExecutor(_),
                    epoch,
                    message: Message::TaskExecutor(message),
                }) => {
                    self.to_executor.push_back(task_executor::Input::Message { from, epoch, message });
                }
                Output::Storage(StorageRequest::WriteMetadata { job_id, checkpoint, .. }) => {
                    let reply = StorageReply::MetadataWritten { job_id, checkpoint };
                    self.to_job_manager.push_back(job_manager::Input::Storage(reply));
                }
                Output::Event(Event::CheckpointCompleted { .. }) => self.checkpoints_completed += 1,
                _ => {}
            }
        }
    }

    fn route_executor_outputs(&mut self) {
        while let Some(output) = self.executor.poll_output() {
            let (count, hash) = self.executor_outputs;
            self.executor_outputs = (count + 1, chain_hash(hash, &output));
            match output {
                Output::Send(envelope) => self.to_job_manager.push_back(job_manager::Input::Message(envelope)),
                Output::Task(command) => self.task_command(command),
                _ => {}
            }
        }
    }

    /// Plays the task threads: a task starts running at once and acknowledges every barrier.
    fn task_command(&mut self, command: TaskCommand) {
        match command {
            TaskCommand::Start(deployment) => {
                let execution = deployment.execution;
                for state in [ExecutionState::Initializing, ExecutionState::Running] {
                    self.to_executor.push_back(task_executor::Input::TaskReport(report(execution, state)));
                }
                self.running.push(execution);
            }
            TaskCommand::TriggerCheckpoint { execution, barrier, .. } => {
                let outcome = CheckpointOutcome::Acknowledged { state: None, metrics: AckMetrics::default() };
                let report = TaskCheckpointReport { execution, checkpoint: barrier.checkpoint, outcome };
                self.to_executor.push_back(task_executor::Input::CheckpointReport(report));
            }
            TaskCommand::Cancel(execution) => {
                self.running.retain(|running| *running != execution);
                let report = report(execution, ExecutionState::Canceled);
                self.to_executor.push_back(task_executor::Input::TaskReport(report));
            }
            TaskCommand::NotifyCheckpoint { .. } => {}
        }
    }

    /// Every running task finishes.
    fn finish_tasks(&mut self) {
        for execution in std::mem::take(&mut self.running) {
            let report = report(execution, ExecutionState::Finished);
            self.to_executor.push_back(task_executor::Input::TaskReport(report));
        }
    }

    fn job_status(&self, job_id: JobId) -> Option<JobStatus> {
        self.job_manager.dispatcher().jobs().get(&job_id).map(|job| job.status)
    }

    /// Registration, a job with a checkpoint that then finishes, and a minute of heartbeats
    /// after; returns the job's id.
    fn run_a_job(&mut self) -> JobId {
        let env = StreamEnvironment::new("small");
        env.sequence(0, 9).discard();
        let graph = env.build().expect("a valid job").graph;
        let config = BTreeMap::from([("execution.checkpointing.interval".to_string(), "1 s".to_string())]);
        // No job id: the Dispatcher draws one from its seed, so a replay built with another
        // seed gives other outputs.
        let submission = JobSubmission { job_id: None, graph, parallelism: Some(1), config, savepoint: None };
        self.submit(submission);
        let mut finished_at = None;
        for round in 0..ROUNDS_MAX {
            self.round();
            if self.checkpoints_completed > 0 && !self.running.is_empty() {
                self.finish_tasks();
            }
            let job = self.job_manager.dispatcher().jobs().values().next().map(|job| (job.job_id, job.status));
            if let Some((job_id, status)) = job {
                if finished_at.is_none() && status == JobStatus::Finished {
                    finished_at = Some(round);
                }
                if finished_at.is_some_and(|at| round > at + ROUNDS_AFTER_FINISH) {
                    return job_id;
                }
            }
        }
        panic!("the job did not finish in {ROUNDS_MAX} rounds: {:?}", self.job_manager.dispatcher().jobs());
    }

    fn first_segments(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let first = |machine: &str| {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.to_string_lossy().contains(machine))
                .collect();
            found.sort();
            found.into_iter().next().unwrap_or_else(|| panic!("no {machine} journal in {}", dir.display()))
        };
        (first("journal-jobmanager-"), first("journal-taskmanager-"))
    }
}

fn report(execution: ExecutionId, state: ExecutionState) -> TaskReport {
    TaskReport { execution, state, error: None, unreadable_checkpoint: None }
}

fn job_manager_of(replayed: &Replayed) -> &JobManager {
    match &replayed.machine {
        ReplayedMachine::JobManager(machine) => machine,
        ReplayedMachine::TaskExecutor(_) => panic!("a TaskExecutor's journal"),
    }
}

fn executor_of(replayed: &Replayed) -> &TaskExecutor {
    match &replayed.machine {
        ReplayedMachine::TaskExecutor(machine) => machine,
        ReplayedMachine::JobManager(_) => panic!("a JobManager's journal"),
    }
}

/// Runs the harness journaling into `dir`; returns it, the job, and both journals' first segments.
fn journaled_run(dir: &Path, segment_bytes_max: u64, segments_max: u32) -> (Harness, JobId, PathBuf, PathBuf) {
    let mut harness = Harness::new(&cluster_config(&[]), &settings(dir, segment_bytes_max, segments_max));
    let job_id = harness.run_a_job();
    harness.job_manager_journal.flush();
    harness.executor_journal.flush();
    let (job_manager, executor) = harness.first_segments(dir);
    (harness, job_id, job_manager, executor)
}

#[test]
fn a_replayed_journal_gives_the_same_outputs_and_the_same_state() {
    let dir = temp_dir("same");
    let (harness, job_id, job_manager_journal, executor_journal) = journaled_run(&dir, 64 << 20, 8);
    assert_eq!(harness.job_status(job_id), Some(JobStatus::Finished));
    assert!(harness.checkpoints_completed > 0, "a checkpoint completed, so storage replies were journaled");

    let replayed = replay(&job_manager_journal).unwrap();
    assert_eq!((replayed.outputs, replayed.outputs_hash), harness.job_manager_outputs);
    let machine = job_manager_of(&replayed);
    assert_eq!(machine.dispatcher().jobs(), harness.job_manager.dispatcher().jobs());
    assert_eq!(machine.dispatcher().jobs()[&job_id].status, JobStatus::Finished);
    let (live, again) = (harness.job_manager.resource_manager(), machine.resource_manager());
    assert_eq!(again.task_managers(), live.task_managers());
    assert_eq!((again.slots_total(), again.slots_free()), (live.slots_total(), live.slots_free()));
    assert_eq!(replayed.truncated, None);
    assert_eq!(replayed.invariant_violation, None);
    for kind in ["message", "tick", "storage reply"] {
        assert!(replayed.inputs.get(kind).is_some_and(|count| *count > 0), "{kind}: {:?}", replayed.inputs);
    }

    let replayed = replay(&executor_journal).unwrap();
    assert_eq!((replayed.outputs, replayed.outputs_hash), harness.executor_outputs);
    let machine = executor_of(&replayed);
    assert_eq!(machine.slots(), harness.executor.slots());
    assert_eq!(machine.is_registered(), harness.executor.is_registered());
    assert_eq!(machine.leader_epoch(), EPOCH);
    for kind in ["message", "deployment", "task report", "task finished", "checkpoint report"] {
        assert!(replayed.inputs.get(kind).is_some_and(|count| *count > 0), "{kind}: {:?}", replayed.inputs);
    }
    let text = replayed.describe();
    assert!(text.contains("registered: yes; leader epoch 1"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The offset of the `index`th record's frame in a segment file (0: the segment start).
fn frame_offset(bytes: &[u8], index: usize) -> usize {
    let mut offset = PREAMBLE_BYTES;
    for _ in 0..index {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        offset += weir_net::frame::HEADER_BYTES + length;
    }
    offset
}

#[test]
fn a_flipped_byte_is_reported_with_its_offset_and_a_cut_short_tail_is_tolerated() {
    let dir = temp_dir("damage");
    let (harness, job_id, job_manager_journal, executor_journal) = journaled_run(&dir, 64 << 20, 8);
    let whole = replay(&job_manager_journal).unwrap();

    let bytes = std::fs::read(&executor_journal).unwrap();
    let offset = frame_offset(&bytes, 5);
    let mut flipped = bytes.clone();
    flipped[offset + weir_net::frame::HEADER_BYTES + 1] ^= 0x40;
    std::fs::write(&executor_journal, &flipped).unwrap();
    let error = replay(&executor_journal).unwrap_err();
    assert!(error.contains(&format!("corrupt record at offset {offset}")), "{error}");
    assert!(error.contains(&executor_journal.display().to_string()), "{error}");

    let bytes = std::fs::read(&job_manager_journal).unwrap();
    let records = whole.records as usize;
    let last = frame_offset(&bytes, records);
    assert!(last < bytes.len(), "the last record starts inside the file");
    std::fs::write(&job_manager_journal, &bytes[..bytes.len() - 3]).unwrap();
    let cut = replay(&job_manager_journal).unwrap();
    assert_eq!(cut.records, whole.records - 1, "replay stops at the last whole record");
    let truncation = cut.truncated.as_ref().expect("the cut is reported");
    assert_eq!((truncation.offset, truncation.bytes), (last as u64, (bytes.len() - 3 - last) as u64));
    assert!(cut.describe().contains(&format!("tail: cut short at offset {last}")), "{}", cut.describe());
    assert_eq!(job_manager_of(&cut).dispatcher().jobs()[&job_id].status, JobStatus::Finished);
    drop(harness);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segments_rotate_replay_reads_them_in_order_and_needs_the_first() {
    let whole_dir = temp_dir("rotation-whole");
    let (harness, _, _, _) = journaled_run(&whole_dir, 64 << 20, 8);

    let many_dir = temp_dir("rotation-many");
    let (_, _, job_manager_journal, executor_journal) = journaled_run(&many_dir, 1 << 10, 10_000);
    let segments = segments_of(&job_manager_journal).unwrap();
    assert!(segments.len() > 3, "1 kb segments rotate: {segments:?}");
    let replayed = replay(segments.last().unwrap()).unwrap();
    let read_across = (replayed.outputs, replayed.outputs_hash);
    assert_eq!(read_across, harness.job_manager_outputs, "the same run, read across segments");
    let segments = segments_of(&executor_journal).unwrap();
    assert!(segments.len() > 1, "1 kb segments rotate: {segments:?}");
    let replayed = replay(&executor_journal).unwrap();
    assert_eq!((replayed.outputs, replayed.outputs_hash), harness.executor_outputs);

    let kept_dir = temp_dir("rotation-kept");
    let (_, _, job_manager_journal, _) = journaled_run(&kept_dir, 1 << 10, 3);
    let names: Vec<String> = std::fs::read_dir(&kept_dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with("journal-jobmanager-"))
        .collect();
    assert_eq!(names.len(), 3, "only the newest 3 segments are kept: {names:?}");
    assert!(!job_manager_journal.to_string_lossy().ends_with("-000000.bin"), "segment 0 is gone");
    let error = replay(&job_manager_journal).unwrap_err();
    assert!(error.contains("segment 000000") && error.contains("is gone"), "{error}");
    for dir in [whole_dir, many_dir, kept_dir] {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_cluster_token_never_reaches_the_journal() {
    let dir = temp_dir("secret");
    let token = "s3cret-cluster-token";
    let mut harness = Harness::new(&cluster_config(&[("security.token", token)]), &settings(&dir, 64 << 20, 8));
    let job_id = harness.run_a_job();
    harness.job_manager_journal.flush();
    harness.executor_journal.flush();
    let (job_manager_journal, executor_journal) = harness.first_segments(&dir);
    for path in [&job_manager_journal, &executor_journal] {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(token.len()).any(|window| window == token.as_bytes()), "{}", path.display());
    }
    let replayed = replay(&job_manager_journal).unwrap();
    assert_eq!(job_manager_of(&replayed).dispatcher().jobs()[&job_id].status, JobStatus::Finished);
    assert!(replayed.header.config.contains(&("security.token".to_string(), HIDDEN_VALUE.to_string())));
    assert!(replay(&executor_journal).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_that_cannot_be_written_is_off_and_the_caller_goes_on() {
    let dir = temp_dir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let raw = cluster_config(&[]);
    let journal = Journal::open(
        &settings(&file, 64 << 20, 8),
        Header::job_manager(&raw, ClusterMode::Session, EPOCH, 1, Time(0)),
    );
    assert!(journal.shared.is_none(), "no journal");
    journal.record(Time(1), &job_manager::Input::Tick);
    journal.flush();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journal_keys_take_defaults_and_refuse_nonsense() {
    let data_dir = Path::new("/data");
    let defaults = JournalSettings::from_raw(&RawConfig::new(), data_dir).unwrap();
    assert_eq!(defaults, settings(Path::new("/data/journal"), 64 << 20, 8));
    let mut raw = RawConfig::new();
    raw.set(KEY_DIR, "/var/weir/journal");
    raw.set(KEY_SEGMENT_SIZE, "4 kb");
    raw.set(KEY_SEGMENTS, "2");
    raw.set(KEY_ENABLED, "false");
    raw.set(KEY_FLUSH_INTERVAL, "1 s");
    let set = JournalSettings::from_raw(&raw, data_dir).unwrap();
    let flush_interval = std::time::Duration::from_secs(1);
    let expected =
        JournalSettings { enabled: false, flush_interval, ..settings(Path::new("/var/weir/journal"), 4 << 10, 2) };
    assert_eq!(set, expected);
    let nonsense = [
        (KEY_SEGMENT_SIZE, "100 bytes"),
        (KEY_SEGMENTS, "0"),
        (KEY_SEGMENTS, "x"),
        (KEY_ENABLED, "yes"),
        (KEY_FLUSH_INTERVAL, "0 ms"),
        (KEY_FLUSH_INTERVAL, "soon"),
    ];
    for (key, value) in nonsense {
        let mut raw = RawConfig::new();
        raw.set(key, value);
        let error = JournalSettings::from_raw(&raw, data_dir).unwrap_err();
        assert!(error.contains(key), "{error}");
    }
}

#[test]
fn a_journal_cut_anywhere_replays_every_whole_record_before_the_cut() {
    let dir = temp_dir("cuts");
    let (_, _, job_manager_journal, _) = journaled_run(&dir, 64 << 20, 8);
    let bytes = std::fs::read(&job_manager_journal).unwrap();
    let records = replay(&job_manager_journal).unwrap().records as usize;
    let starts: Vec<usize> = (1..=records + 1).map(|index| frame_offset(&bytes, index)).collect();
    assert_eq!(starts[records], bytes.len(), "the last record ends the file");
    let cut_dir = dir.join("cut");
    std::fs::create_dir_all(&cut_dir).unwrap();
    let cut_path = cut_dir.join(job_manager_journal.file_name().unwrap());
    for cut in (0..bytes.len()).step_by(bytes.len() / 300 + 1) {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        match replay(&cut_path) {
            Ok(replayed) => {
                let whole = starts.iter().filter(|end| **end <= cut).count().saturating_sub(1);
                assert_eq!(replayed.records as usize, whole, "cut at {cut}");
                assert_eq!(replayed.truncated.is_some(), !starts.contains(&cut), "cut at {cut}");
            }
            Err(error) => {
                assert!(cut < starts[0], "cut at {cut}, after the segment start: {error}");
                assert!(error.contains("ends before its header"), "{error}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replaying_a_directory_reaches_the_same_decisions_journal_against_journal() {
    let dir = temp_dir("cross");
    let _ = journaled_run(&dir, 64 << 20, 8);
    let mut replays = super::replay::replay_dir(&dir).unwrap();
    assert_eq!(replays.len(), 2, "the JobManager's journal and the TaskManager's");
    let checks = super::replay::cross_check(&replays);
    for check in &checks {
        assert!(check.matched > 0, "each received messages from the other: {check:?}");
        assert_eq!((check.unmatched, check.unmatched_after_cut), (0, 0), "{check:?}");
    }
    assert!(checks.iter().any(|check| check.unknown_sender > 0), "the client's submission has no journal here");
    // A message the TaskManager received that the replayed JobManager never sent is a decision
    // that differs, and the check says so.
    let executor = replays.iter().position(|r| matches!(r.machine, ReplayedMachine::TaskExecutor(_))).unwrap();
    replays[executor].received.push((Address::ResourceManager, 42, "test"));
    assert_eq!(super::replay::cross_check(&replays)[executor].unmatched, 1);
    assert!(super::replay::replay_dir(&temp_dir("empty")).unwrap_err().contains("no journal"));
}

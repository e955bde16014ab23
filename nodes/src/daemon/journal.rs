//! The daemons' flight recorder: a bounded journal of every input their state machine receives,
//! so a production incident can be replayed, input for input, into fresh state machines.
//!
//! Each daemon's control task calls [`Journal::record`] right before each `handle(now, input)`
//! of its JobManager or TaskExecutor. Because the core is sans-IO and deterministic, the header
//! (what the machine was built from) and the inputs in order are all a replay needs:
//! [`replay::replay`] rebuilds the machine, feeds every input at its time and hashes every output.
//!
//! # Format (version 1)
//!
//! A journal is a series of segment files `<dir>/journal-<role>-<id>-<segment>.bin`: `role` is
//! `jobmanager` or `taskmanager`, `id` names the process start (`e<epoch>-<start unix ms>` for a
//! JobManager, `<resource id>-<start unix ms>` for a TaskManager), `segment` counts from
//! `000000`. Each segment file is:
//!
//! ```text
//! "WEIRJRNL" (8 bytes) · format version (u32 LE) · frame(SegmentStart) · frame(Record)*
//! frame = payload length (u32 LE) · crc32 of the payload (u32 LE) · payload (bincode, standard)
//! ```
//!
//! Frames are `weir_net::frame`'s and payloads `weir_net::codec`'s (bincode's standard
//! encoding). [`SegmentStart`] holds the segment number, the index of its first record and the
//! journal's [`Header`]: the machine (JobManager: cluster mode, leader epoch, seed; TaskManager:
//! resource id, data address), the raw configuration it was built from, its start time on the
//! process clock, the wall clock at the process clock's zero and the process id. Every
//! [`Record`] is `{ at, input }`: the process clock's time in µs and a [`JournalInput`], which
//! mirrors the machine's `Input` with serializable types.
//!
//! # Bounds
//!
//! Segments rotate at `journal.segment-size` (a segment holds at least one record) and only the
//! newest `journal.segments` are kept. Replay needs every segment from `000000`: once rotation
//! deleted the first one the journal can no longer be replayed (there are no snapshots).
//! Records are encoded on the control task and go through a write buffer, flushed every
//! `journal.flush-interval` (by a task of its own), on SIGTERM and SIGINT, and when the journal
//! is dropped; a `kill -9` loses at most that interval, and a record cut short at the end is
//! skipped by replay. A write failure is logged once and ends journaling; it never stops the
//! daemon.
//!
//! # Secrets
//!
//! The values of [`SECRET_KEYS`] (the cluster token) never reach the file: they are replaced by
//! [`HIDDEN_VALUE`] in the header and in every submission and deployment recorded. The replay
//! runs with that value; no state machine decides anything on it.

pub mod replay;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use weir_core::config::{HIDDEN_VALUE, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::ids::{CheckpointId, Epoch, ResourceId, stable_hash128};
use weir_core::job_manager;
use weir_core::protocol::{
    Address, DispatcherMessage, Envelope, ExecutionId, ExecutionState, Message, StorageReply, TaskCheckpointReport,
    TaskExecutorMessage, TaskReport,
};
use weir_core::task_executor;
use weir_core::time::Time;

/// The first bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"WEIRJRNL";
/// The format version written after the magic; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before a segment's first frame: the magic and the format version.
pub const PREAMBLE_BYTES: usize = MAGIC.len() + 4;
/// The largest payload of one frame; above every RPC frame, so any envelope received fits.
pub const RECORD_BYTES_MAX: usize = weir_net::codec::DECODE_LIMIT_BYTES;
/// Configuration keys whose values are replaced by [`HIDDEN_VALUE`] before they are written.
pub const SECRET_KEYS: &[&str] = &["security.token"];

/// Capacity of the write buffer in front of the segment file.
const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Whether the daemon journals (the `journal.*` keys are in the core's key table).
pub const KEY_ENABLED: &str = "journal.enabled";
/// Where the segment files go.
pub const KEY_DIR: &str = "journal.dir";
/// The size at which a segment rotates.
pub const KEY_SEGMENT_SIZE: &str = "journal.segment-size";
/// How many segments are kept.
pub const KEY_SEGMENTS: &str = "journal.segments";
/// How often buffered records are written out.
pub const KEY_FLUSH_INTERVAL: &str = "journal.flush-interval";

/// Where and how much a daemon journals, from the `journal.*` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSettings {
    /// `journal.enabled` (default true).
    pub enabled: bool,
    /// `journal.dir` (default `<data dir>/journal`).
    pub dir: PathBuf,
    /// `journal.segment-size` (default 64 mb, at least 1 kb).
    pub segment_bytes_max: u64,
    /// `journal.segments` (default 8, 1 to 10000).
    pub segments_max: u32,
    /// `journal.flush-interval` (default 200 ms, above zero).
    pub flush_interval: Duration,
}

impl JournalSettings {
    /// Reads the `journal.*` keys of `raw` (typed and checked by the core's configuration);
    /// `data_dir` is the process's data directory.
    pub fn from_raw(raw: &RawConfig, data_dir: &Path) -> Result<JournalSettings, String> {
        let config = weir_core::config::Config::from_raw(raw).map_err(|error| error.to_string())?;
        Ok(JournalSettings::from_config(&config.journal, data_dir))
    }

    /// The settings of a typed `journal` section.
    pub fn from_config(journal: &weir_core::config::JournalConfig, data_dir: &Path) -> JournalSettings {
        JournalSettings {
            enabled: journal.enabled,
            dir: journal.dir.as_ref().map_or_else(|| data_dir.join("journal"), PathBuf::from),
            segment_bytes_max: journal.segment_bytes,
            segments_max: journal.segments,
            flush_interval: Duration::from_micros(journal.flush_interval.as_micros()),
        }
    }
}

/// The JobManager's seed, derived from its leader epoch alone, so a run can be rebuilt from it.
pub fn job_manager_seed(epoch: Epoch) -> u64 {
    stable_hash128(&[b"weir.jobmanager.seed", &epoch.0.to_le_bytes()]) as u64
}

/// The cluster mode a JobManager runs in, as the journal stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Many jobs.
    Session,
    /// One job.
    Application,
}

impl From<ClusterMode> for Mode {
    fn from(mode: ClusterMode) -> Mode {
        match mode {
            ClusterMode::Session => Mode::Session,
            ClusterMode::Application => Mode::Application,
        }
    }
}

impl From<Mode> for ClusterMode {
    fn from(mode: Mode) -> ClusterMode {
        match mode {
            Mode::Session => ClusterMode::Session,
            Mode::Application => ClusterMode::Application,
        }
    }
}

/// The state machine a journal feeds, with what it was built from besides the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MachineSpec {
    /// `JobManager::new(config, mode, epoch, seed)`.
    JobManager {
        /// Session or application.
        mode: Mode,
        /// The leader epoch it acts in.
        epoch: Epoch,
        /// The seed of its roles' random choices.
        seed: u64,
    },
    /// `TaskExecutor::new(resource_id, TaskExecutorConfig::from_config(config) + data_address, started_at)`.
    TaskManager {
        /// The TaskManager process instance.
        resource_id: ResourceId,
        /// Where its data channels listen (told to JobMasters with its slot offers).
        data_address: String,
    },
}

/// What a journal's machine was built from; every segment repeats it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The machine.
    pub machine: MachineSpec,
    /// The raw configuration the machine was built with, secrets hidden.
    pub config: Vec<(String, String)>,
    /// The process clock's time when the machine was built.
    pub started_at: Time,
    /// The wall clock (ms since the Unix epoch) at the process clock's zero, for people.
    pub clock_zero_unix_ms: u64,
    /// The process id, for people.
    pub process_id: u32,
}

impl Header {
    /// The header of a JobManager built with `JobManager::new(raw, mode, epoch, seed)`.
    pub fn job_manager(raw: &RawConfig, mode: ClusterMode, epoch: Epoch, seed: u64, started_at: Time) -> Header {
        Header::new(raw, MachineSpec::JobManager { mode: mode.into(), epoch, seed }, started_at)
    }

    /// The header of a TaskExecutor built from `raw` with `data_address`, at `started_at`.
    pub fn task_manager(raw: &RawConfig, resource_id: ResourceId, data_address: &str, started_at: Time) -> Header {
        let machine = MachineSpec::TaskManager { resource_id, data_address: data_address.to_string() };
        Header::new(raw, machine, started_at)
    }

    fn new(raw: &RawConfig, machine: MachineSpec, started_at: Time) -> Header {
        let config = raw
            .iter()
            .map(|(key, value)| {
                let value = if SECRET_KEYS.contains(&key) { HIDDEN_VALUE } else { value };
                (key.to_string(), value.to_string())
            })
            .collect();
        let now_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let clock_zero_unix_ms = now_unix_ms.saturating_sub(started_at.0 / 1_000);
        Header { machine, config, started_at, clock_zero_unix_ms, process_id: std::process::id() }
    }

    /// The configuration as the machine was built with it.
    pub fn raw_config(&self) -> RawConfig {
        let mut raw = RawConfig::new();
        for (key, value) in &self.config {
            raw.set(key.clone(), value.clone());
        }
        raw
    }

    /// `journal-<role>-<id>`: the segment files' common name.
    pub fn stem(&self) -> String {
        let started_unix_ms = self.clock_zero_unix_ms + self.started_at.0 / 1_000;
        match &self.machine {
            MachineSpec::JobManager { epoch, .. } => format!("journal-jobmanager-e{}-{started_unix_ms}", epoch.0),
            MachineSpec::TaskManager { resource_id, .. } => {
                format!("journal-taskmanager-{resource_id}-{started_unix_ms}")
            }
        }
    }
}

/// The first frame of every segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentStart {
    /// This segment's number, from 0.
    pub segment: u64,
    /// The index (in the whole journal) of this segment's first record.
    pub first_record: u64,
    /// The journal's header.
    pub header: Header,
}

/// One input and when it was handled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The process clock's time passed to `handle`.
    pub at: Time,
    /// The input.
    pub input: JournalInput,
}

/// A JobManager's or TaskExecutor's `Input`, in serializable types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JournalInput {
    /// JobManager: an envelope for one of its roles (`job_manager::Input::Message`).
    Envelope(Envelope),
    /// Either machine: time passed.
    Tick,
    /// JobManager: the driver's answer to a storage request.
    Storage(StorageReply),
    /// TaskExecutor: a message from a JobManager role (`task_executor::Input::Message`).
    TaskExecutorMessage {
        /// The sender.
        from: Address,
        /// The sender's leader epoch.
        epoch: Epoch,
        /// The payload.
        message: TaskExecutorMessage,
    },
    /// TaskExecutor: a task's new state.
    TaskReport(TaskReport),
    /// TaskExecutor: a task's answer to a checkpoint barrier.
    CheckpointReport(TaskCheckpointReport),
    /// TaskExecutor: leader retrieval found a leader in this epoch.
    LeaderFound(Epoch),
    /// TaskExecutor: a task waits for its final checkpoint (last: older journals
    /// stay readable).
    FinalCheckpointAwaited {
        /// The attempt.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended.
        checkpoint_latest: Option<CheckpointId>,
    },
}

impl From<&job_manager::Input> for JournalInput {
    fn from(input: &job_manager::Input) -> JournalInput {
        match input {
            job_manager::Input::Message(envelope) => JournalInput::Envelope(hide_secrets_of_envelope(envelope)),
            job_manager::Input::Tick => JournalInput::Tick,
            job_manager::Input::Storage(reply) => JournalInput::Storage(reply.clone()),
        }
    }
}

impl From<&task_executor::Input> for JournalInput {
    fn from(input: &task_executor::Input) -> JournalInput {
        match input {
            task_executor::Input::Message { from, epoch, message } => JournalInput::TaskExecutorMessage {
                from: *from,
                epoch: *epoch,
                message: hide_secrets_of_deployment(message),
            },
            task_executor::Input::TaskReport(report) => JournalInput::TaskReport(report.clone()),
            task_executor::Input::CheckpointReport(report) => JournalInput::CheckpointReport(report.clone()),
            task_executor::Input::FinalCheckpointAwaited { execution, checkpoint_latest } => {
                JournalInput::FinalCheckpointAwaited { execution: *execution, checkpoint_latest: *checkpoint_latest }
            }
            task_executor::Input::Tick => JournalInput::Tick,
            task_executor::Input::LeaderFound { epoch } => JournalInput::LeaderFound(*epoch),
        }
    }
}

impl JournalInput {
    /// The JobManager's input, or `None` for a TaskExecutor's.
    pub fn into_job_manager(self) -> Option<job_manager::Input> {
        match self {
            JournalInput::Envelope(envelope) => Some(job_manager::Input::Message(envelope)),
            JournalInput::Tick => Some(job_manager::Input::Tick),
            JournalInput::Storage(reply) => Some(job_manager::Input::Storage(reply)),
            _ => None,
        }
    }

    /// The TaskExecutor's input, or `None` for a JobManager's.
    pub fn into_task_executor(self) -> Option<task_executor::Input> {
        match self {
            JournalInput::TaskExecutorMessage { from, epoch, message } => {
                Some(task_executor::Input::Message { from, epoch, message })
            }
            JournalInput::TaskReport(report) => Some(task_executor::Input::TaskReport(report)),
            JournalInput::CheckpointReport(report) => Some(task_executor::Input::CheckpointReport(report)),
            JournalInput::FinalCheckpointAwaited { execution, checkpoint_latest } => {
                Some(task_executor::Input::FinalCheckpointAwaited { execution, checkpoint_latest })
            }
            JournalInput::Tick => Some(task_executor::Input::Tick),
            JournalInput::LeaderFound(epoch) => Some(task_executor::Input::LeaderFound { epoch }),
            _ => None,
        }
    }

    /// A short name of the kind of input, for summaries (deployments and finished tasks apart).
    pub fn kind(&self) -> &'static str {
        match self {
            JournalInput::TaskExecutorMessage { message: TaskExecutorMessage::DeployTask(_), .. } => "deployment",
            JournalInput::Envelope(_) | JournalInput::TaskExecutorMessage { .. } => "message",
            JournalInput::Tick => "tick",
            JournalInput::LeaderFound(_) => "leader found",
            JournalInput::Storage(_) => "storage reply",
            JournalInput::TaskReport(report) if report.state == ExecutionState::Finished => "task finished",
            JournalInput::TaskReport(_) => "task report",
            JournalInput::CheckpointReport(_) => "checkpoint report",
            JournalInput::FinalCheckpointAwaited { .. } => "final checkpoint awaited",
        }
    }
}

fn hide_secrets(config: &mut std::collections::BTreeMap<String, String>) {
    for key in SECRET_KEYS {
        if let Some(value) = config.get_mut(*key) {
            *value = HIDDEN_VALUE.to_string();
        }
    }
}

fn has_secrets(config: &std::collections::BTreeMap<String, String>) -> bool {
    SECRET_KEYS.iter().any(|key| config.contains_key(*key))
}

/// The envelope, with the secrets of a submission's configuration hidden.
pub(crate) fn hide_secrets_of_envelope(envelope: &Envelope) -> Envelope {
    let mut envelope = envelope.clone();
    if let Message::Dispatcher(DispatcherMessage::Submit { submission, .. }) = &mut envelope.message {
        hide_secrets(&mut submission.config);
    }
    envelope
}

/// The message, with the secrets of a deployment's job artifacts hidden.
pub(crate) fn hide_secrets_of_deployment(message: &TaskExecutorMessage) -> TaskExecutorMessage {
    let mut message = message.clone();
    if let TaskExecutorMessage::DeployTask(deployment) = &mut message
        && let Some(artifacts) = &mut deployment.job
        && (has_secrets(&artifacts.cluster_config) || has_secrets(&artifacts.job_config))
    {
        let artifacts = Arc::make_mut(artifacts);
        hide_secrets(&mut artifacts.cluster_config);
        hide_secrets(&mut artifacts.job_config);
    }
    message
}

/// The path of segment `segment` of the journal named `stem` in `dir`.
pub fn segment_path(dir: &Path, stem: &str, segment: u64) -> PathBuf {
    dir.join(format!("{stem}-{segment:06}.bin"))
}

/// A daemon's journal: cheap to clone, shared by its control task and its flusher.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    /// False once journaling stopped; checked before any work is done for a record.
    on: AtomicBool,
    writer: Mutex<Option<Writer>>,
    /// The first segment's path, for log lines.
    first_segment: PathBuf,
    flush_interval: Duration,
}

impl Journal {
    /// A journal that records nothing.
    pub fn off() -> Journal {
        Journal::default()
    }

    /// Starts the journal `header` describes in `settings.dir`; when it cannot, logs why and
    /// records nothing (the daemon runs on without it).
    pub fn open(settings: &JournalSettings, header: Header) -> Journal {
        if !settings.enabled {
            return Journal::off();
        }
        let first_segment = segment_path(&settings.dir, &header.stem(), 0);
        match Writer::create(settings, header) {
            Ok(writer) => {
                tracing::info!(journal = %first_segment.display(), "journaling every input of the state machine");
                let writer = Mutex::new(Some(writer));
                let on = AtomicBool::new(true);
                let flush_interval = settings.flush_interval;
                Journal { shared: Some(Arc::new(Shared { on, writer, first_segment, flush_interval })) }
            }
            Err(error) => {
                tracing::error!(journal = %first_segment.display(), "cannot start the journal: {error}; \
                    the daemon runs without one");
                Journal::off()
            }
        }
    }

    /// Appends `input`, handled at `at`, to the write buffer.
    pub fn record(&self, at: Time, input: impl Into<JournalInput>) {
        let Some(shared) = &self.shared else { return };
        if !shared.is_on() {
            return;
        }
        let record = Record { at, input: input.into() };
        let payload = match weir_net::codec::encode(&record) {
            Ok(payload) => payload,
            Err(error) => return shared.stop(&mut shared.lock(), &format!("cannot encode a record: {error}")),
        };
        let mut writer = shared.lock();
        if let Some(open) = writer.as_mut()
            && let Err(error) = open.append(&payload)
        {
            shared.stop(&mut writer, &error);
        }
    }

    /// Writes what is buffered to the segment file.
    pub fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.flush();
        }
    }

    /// Flushes every `journal.flush-interval` and, on SIGTERM or SIGINT, flushes before the process
    /// ends of that signal as it would have without the journal. Call on the daemon's runtime.
    pub fn spawn_upkeep(&self) {
        let Some(shared) = self.shared.clone() else { return };
        let flusher = shared.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(flusher.flush_interval);
            while flusher.is_on() {
                interval.tick().await;
                flusher.flush();
            }
        });
        super::termination::on_termination(move || shared.flush());
    }
}

impl Shared {
    fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) {
        let mut writer = self.lock();
        if let Some(open) = writer.as_mut()
            && let Err(error) = open.flush()
        {
            self.stop(&mut writer, &error);
        }
    }

    /// Ends journaling for good and says so once.
    fn stop(&self, writer: &mut Option<Writer>, reason: &str) {
        if self.on.swap(false, Ordering::Relaxed) {
            tracing::error!(journal = %self.first_segment.display(), "journaling stopped: {reason}; \
                the daemon goes on without a journal");
        }
        *writer = None;
    }
}

/// The open segment and what rotation needs.
#[derive(Debug)]
struct Writer {
    dir: PathBuf,
    stem: String,
    header: Header,
    segment_bytes_max: u64,
    segments_max: u32,
    file: BufWriter<File>,
    segment: u64,
    /// Bytes written to the open segment, buffered ones included.
    segment_bytes: u64,
    segment_records: u64,
    records: u64,
    /// A reused buffer for one frame.
    frame: Vec<u8>,
}

impl Writer {
    fn create(settings: &JournalSettings, header: Header) -> Result<Writer, String> {
        std::fs::create_dir_all(&settings.dir)
            .map_err(|error| format!("{}: cannot create the directory: {error}", settings.dir.display()))?;
        let stem = header.stem();
        let mut writer = Writer {
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, create_file(&segment_path(&settings.dir, &stem, 0))?),
            dir: settings.dir.clone(),
            stem,
            header,
            segment_bytes_max: settings.segment_bytes_max,
            segments_max: settings.segments_max,
            segment: 0,
            segment_bytes: 0,
            segment_records: 0,
            records: 0,
            frame: Vec::new(),
        };
        writer.start_segment()?;
        writer.flush()?;
        Ok(writer)
    }

    /// Writes the open segment's preamble and start frame.
    fn start_segment(&mut self) -> Result<(), String> {
        let start = SegmentStart { segment: self.segment, first_record: self.records, header: self.header.clone() };
        let payload = weir_net::codec::encode(&start).map_err(|error| error.to_string())?;
        let mut preamble = MAGIC.to_vec();
        preamble.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        self.write(&preamble)?;
        self.write_frame(&payload)?;
        self.segment_records = 0;
        Ok(())
    }

    /// Appends one record's payload, rotating first when the segment would grow past its size.
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let framed_bytes = (weir_net::frame::HEADER_BYTES + payload.len()) as u64;
        if self.segment_records > 0 && self.segment_bytes + framed_bytes > self.segment_bytes_max {
            self.rotate()?;
        }
        self.write_frame(payload)?;
        self.segment_records += 1;
        self.records += 1;
        Ok(())
    }

    fn write_frame(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        let written = weir_net::frame::encode_frame(payload, RECORD_BYTES_MAX, &mut frame)
            .map_err(|error| format!("a record cannot be framed: {error}"))
            .and_then(|()| self.write(&frame));
        self.frame = frame;
        written
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file.write_all(bytes).map_err(|error| self.io_error(&error))?;
        self.segment_bytes += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.file.flush().map_err(|error| self.io_error(&error))
    }

    fn io_error(&self, error: &std::io::Error) -> String {
        format!("{}: {error}", segment_path(&self.dir, &self.stem, self.segment).display())
    }

    /// Closes the open segment, starts the next, and deletes the one that falls out of the
    /// newest `segments_max`.
    fn rotate(&mut self) -> Result<(), String> {
        self.flush()?;
        self.segment += 1;
        let path = segment_path(&self.dir, &self.stem, self.segment);
        self.file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, create_file(&path)?);
        self.segment_bytes = 0;
        self.start_segment()?;
        if let Some(gone) = self.segment.checked_sub(u64::from(self.segments_max)) {
            let gone = segment_path(&self.dir, &self.stem, gone);
            if let Err(error) = std::fs::remove_file(&gone) {
                tracing::warn!(segment = %gone.display(), "cannot delete an old journal segment: {error}");
            }
        }
        Ok(())
    }
}

/// A new segment file, readable by its owner only (it holds the cluster's inputs).
fn create_file(path: &Path) -> Result<File, String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|error| format!("{}: cannot create: {error}", path.display()))
}

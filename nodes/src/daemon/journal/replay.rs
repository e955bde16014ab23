//! Reading a journal back: every segment in order into a fresh state machine built from the
//! header, each input at its recorded time, every output hashed.
//!
//! What a reader tolerates and what it refuses:
//! - a record cut short at the end of the last segment (the process died mid-write): replay
//!   stops at the last whole record and says where ([`Replayed::truncated`]);
//! - anything else that does not read (a checksum mismatch, a payload that does not decode, a
//!   bad magic or version, a segment start that does not continue the previous segment, time
//!   going back, a segment missing): an error naming the file and the byte offset.
//!
//! Replay needs every segment from `000000`: a journal whose oldest segments were rotated away
//! cannot be replayed (there are no snapshots to start from).

use super::{FORMAT_VERSION, Header, MAGIC, MachineSpec, PREAMBLE_BYTES, RECORD_BYTES_MAX};
use super::{Record, SegmentStart};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use weir_core::config::Config;
use weir_core::ids::stable_hash128;
use weir_core::job_manager::JobManager;
use weir_core::protocol::{Address, Envelope, Message, Output, Role};
use weir_core::task_executor::{SlotState, TaskExecutor, TaskExecutorConfig};
use weir_core::time::Time;
use weir_net::frame::{FrameDecoder, HEADER_BYTES};

/// Bytes read from a segment file at a time.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// The state machine a replay rebuilt, in its final state.
#[derive(Debug)]
pub enum ReplayedMachine {
    /// A JobManager's journal.
    JobManager(Box<JobManager>),
    /// A TaskManager's journal.
    TaskExecutor(Box<TaskExecutor>),
}

/// Where a journal's last record was cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the unfinished record starts.
    pub offset: u64,
    /// Bytes of it that were written.
    pub bytes: u64,
}

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    /// The journal's header.
    pub header: Header,
    /// The segment files read, in order.
    pub segments: Vec<PathBuf>,
    /// Records fed to the machine.
    pub records: u64,
    /// The times of the first and the last record.
    pub span: Option<(Time, Time)>,
    /// Records per kind of input ([`super::JournalInput::kind`]).
    pub inputs: BTreeMap<&'static str, u64>,
    /// Outputs the machine produced.
    pub outputs: u64,
    /// A hash of every output in order (FNV-1a over their bincode encodings).
    pub outputs_hash: u128,
    /// Where the journal was cut short, if it was.
    pub truncated: Option<Truncation>,
    /// The first invariant the machine broke, and after which record.
    pub invariant_violation: Option<String>,
    /// The machine in its final state.
    pub machine: ReplayedMachine,
    /// Every envelope the replayed machine sent, as [`message_key`]s, with how often.
    pub sent: BTreeMap<u128, u64>,
    /// Every message the machine received from another process: its sender and [`message_key`].
    pub received: Vec<(Address, u128, &'static str)>,
}

/// Every journal in `dir` (each `journal-*-000000.bin` and its later segments), replayed.
pub fn replay_dir(dir: &Path) -> Result<Vec<Replayed>, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut firsts: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            parse_segment_name(name).is_some_and(|(_, number)| number == 0)
        })
        .collect();
    firsts.sort();
    if firsts.is_empty() {
        return Err(format!("{}: no journal (no journal-*-000000.bin file)", dir.display()));
    }
    firsts.iter().map(|first| replay(first)).collect()
}

/// How the messages one journal's machine received compare with what the replays of their
/// senders sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CrossCheck {
    /// Messages from a replayed sender that its replay sent too.
    pub matched: u64,
    /// Messages from a replayed sender that its replay never sent: a decision that differs.
    pub unmatched: u64,
    /// Of those, messages whose sender's journal was cut short (the send may be past the cut).
    pub unmatched_after_cut: u64,
    /// Messages from processes without a journal here (clients, other TaskManagers).
    pub unknown_sender: u64,
    /// Disconnects the receiving daemon made itself when a peer's connection closed (its
    /// glue hands them to the machine as from that peer, which never sent them).
    pub connection_closed: u64,
    /// The kinds of the unmatched messages, for reading a difference.
    pub unmatched_kinds: Vec<&'static str>,
}

/// For each replay (in order), its received messages checked against the replayed senders: a
/// replay reaches the same decisions when every message a peer received from it, it sent again.
pub fn cross_check(replays: &[Replayed]) -> Vec<CrossCheck> {
    let is_job_manager = |replayed: &Replayed| matches!(replayed.header.machine, MachineSpec::JobManager { .. });
    let sender_of = |from: Address| {
        replays.iter().position(|replayed| match (&replayed.header.machine, from) {
            (MachineSpec::TaskManager { resource_id, .. }, Address::TaskExecutor(id)) => *resource_id == id,
            (MachineSpec::JobManager { .. }, from) => from.is_job_manager(),
            _ => false,
        })
    };
    replays
        .iter()
        .map(|receiver| {
            let mut check = CrossCheck::default();
            for (from, key, kind) in &receiver.received {
                let Some(_) = sender_of(*from) else {
                    check.unknown_sender += 1;
                    continue;
                };
                // JobManager messages may come from any epoch's JobManager journal here.
                let senders: Vec<&Replayed> = replays
                    .iter()
                    .filter(|sender| match (&sender.header.machine, from) {
                        (MachineSpec::TaskManager { resource_id, .. }, Address::TaskExecutor(id)) => {
                            *resource_id == *id
                        }
                        _ => is_job_manager(sender) && from.is_job_manager(),
                    })
                    .collect();
                if senders.iter().any(|sender| sender.sent.contains_key(key)) {
                    check.matched += 1;
                } else if *kind == "DisconnectTaskExecutor" {
                    check.connection_closed += 1;
                } else {
                    check.unmatched += 1;
                    check.unmatched_kinds.push(kind);
                    check.unmatched_after_cut += u64::from(senders.iter().any(|sender| sender.truncated.is_some()));
                }
            }
            check
        })
        .collect()
}

/// A message's identity across journals: the key of an envelope one machine sent equals the key
/// the receiver's journal gives the same message (secrets hidden on both sides).
pub fn message_key(envelope: &Envelope) -> u128 {
    let mut envelope = super::hide_secrets_of_envelope(envelope);
    if let Message::TaskExecutor(message) = &envelope.message {
        envelope.message = Message::TaskExecutor(super::hide_secrets_of_deployment(message));
    }
    let bytes = weir_net::codec::encode(&envelope).unwrap_or_else(|_| format!("{envelope:?}").into_bytes());
    stable_hash128(&[&bytes])
}

/// Replays the journal `path` belongs to (any of its segment files).
pub fn replay(path: &Path) -> Result<Replayed, String> {
    let segments = segments_of(path)?;
    let mut replay: Option<Replay> = None;
    let mut truncated = None;
    for (position, segment) in segments.iter().enumerate() {
        let last = position + 1 == segments.len();
        truncated = read_segment(&mut replay, segment, position as u64, last)?;
    }
    let replay = replay.ok_or_else(|| format!("{}: the journal ends before its header", path.display()))?;
    Ok(Replayed {
        header: replay.header,
        segments,
        records: replay.records,
        span: replay.first_at.zip(replay.last_at),
        inputs: replay.inputs,
        outputs: replay.outputs,
        outputs_hash: replay.outputs_hash,
        truncated,
        invariant_violation: replay.invariant_violation,
        machine: replay.machine,
        sent: replay.sent,
        received: replay.received,
    })
}

/// The segment files of the journal `path` belongs to, in order, from `000000` without gaps.
pub fn segments_of(path: &Path) -> Result<Vec<PathBuf>, String> {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let Some((stem, _)) = parse_segment_name(name) else {
        return Err(format!("{}: not a journal segment (expected journal-<role>-<id>-NNNNNN.bin)", path.display()));
    };
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut numbers: Vec<u64> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            parse_segment_name(&name).filter(|(other, _)| *other == stem).map(|(_, number)| number)
        })
        .collect();
    numbers.sort_unstable();
    match numbers.first() {
        None => return Err(format!("{}: no such journal segment", path.display())),
        Some(&first) if first != 0 => {
            return Err(format!(
                "{}: segment 000000 of {stem} is gone (the oldest kept is {first:06}): rotation deleted the \
                 journal's start, and replay needs every segment from the first",
                dir.display()
            ));
        }
        Some(_) => {}
    }
    if let Some(gap) = numbers.windows(2).find(|pair| pair[1] != pair[0] + 1) {
        return Err(format!("{}: segment {:06} of {stem} is missing", dir.display(), gap[0] + 1));
    }
    Ok(numbers.into_iter().map(|number| super::segment_path(dir, stem, number)).collect())
}

/// `journal-<role>-<id>-NNNNNN.bin` split into the stem and the segment number.
fn parse_segment_name(name: &str) -> Option<(&str, u64)> {
    let (stem, number) = name.strip_suffix(".bin")?.rsplit_once('-')?;
    let digits = number.len() >= 6 && number.bytes().all(|byte| byte.is_ascii_digit());
    (stem.starts_with("journal-") && digits).then(|| number.parse().ok().map(|number| (stem, number)))?
}

/// The replay so far.
struct Replay {
    header: Header,
    machine: ReplayedMachine,
    records: u64,
    first_at: Option<Time>,
    last_at: Option<Time>,
    inputs: BTreeMap<&'static str, u64>,
    outputs: u64,
    outputs_hash: u128,
    invariant_violation: Option<String>,
    sent: BTreeMap<u128, u64>,
    received: Vec<(Address, u128, &'static str)>,
}

impl Replay {
    fn new(header: Header) -> Result<Replay, String> {
        let mut replay = Replay {
            machine: build(&header)?,
            header,
            records: 0,
            first_at: None,
            last_at: None,
            inputs: BTreeMap::new(),
            outputs: 0,
            outputs_hash: 0,
            invariant_violation: None,
            sent: BTreeMap::new(),
            received: Vec::new(),
        };
        replay.drain(); // a TaskExecutor's first registration is queued when it is built
        Ok(replay)
    }

    /// Feeds one record; `place` names it in errors.
    fn feed(&mut self, record: Record, place: &str) -> Result<(), String> {
        let Record { at, input } = record;
        if let Some(last) = self.last_at.filter(|last| at < *last) {
            return Err(format!("{place}: the record's time {at} goes back from {last}"));
        }
        let kind = input.kind();
        if let Some(received) = self.received_key(&input) {
            self.received.push(received);
        }
        match &mut self.machine {
            ReplayedMachine::JobManager(machine) => {
                let input = input.into_job_manager().ok_or_else(|| mismatch(place, kind, "JobManager"))?;
                machine.handle(at, input);
            }
            ReplayedMachine::TaskExecutor(machine) => {
                let input = input.into_task_executor().ok_or_else(|| mismatch(place, kind, "TaskExecutor"))?;
                machine.handle(at, input);
            }
        }
        self.drain();
        self.records += 1;
        *self.inputs.entry(kind).or_default() += 1;
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        if self.invariant_violation.is_none()
            && let Err(problem) = self.check_invariants()
        {
            self.invariant_violation = Some(format!("after record {} (at {at}): {problem}", self.records - 1));
        }
        Ok(())
    }

    /// The sender and key of a message from another process (clients' requests included).
    fn received_key(&self, input: &super::JournalInput) -> Option<(Address, u128, &'static str)> {
        match (input, &self.header.machine) {
            (super::JournalInput::Envelope(envelope), _) => {
                Some((envelope.from, message_key(envelope), envelope.message.kind()))
            }
            (
                super::JournalInput::TaskExecutorMessage { from, epoch, message },
                MachineSpec::TaskManager { resource_id, .. },
            ) => {
                let envelope = Envelope {
                    from: *from,
                    to: Address::TaskExecutor(*resource_id),
                    epoch: *epoch,
                    message: Message::TaskExecutor(message.clone()),
                };
                Some((*from, message_key(&envelope), envelope.message.kind()))
            }
            _ => None,
        }
    }

    fn check_invariants(&self) -> Result<(), String> {
        match &self.machine {
            ReplayedMachine::JobManager(machine) => machine.check_invariants(),
            ReplayedMachine::TaskExecutor(machine) => machine.check_invariants(),
        }
    }

    /// Hashes every queued output into the running hash.
    fn drain(&mut self) {
        loop {
            let output = match &mut self.machine {
                ReplayedMachine::JobManager(machine) => machine.poll_output(),
                ReplayedMachine::TaskExecutor(machine) => machine.poll_output(),
            };
            let Some(output) = output else { return };
            if let Output::Send(envelope) = &output {
                *self.sent.entry(message_key(envelope)).or_default() += 1;
            }
            self.outputs += 1;
            self.outputs_hash = chain_hash(self.outputs_hash, &output);
        }
    }
}

/// The running hash of outputs, extended by `output`.
pub fn chain_hash(hash: u128, output: &Output) -> u128 {
    let bytes = weir_net::codec::encode(output).unwrap_or_else(|_| format!("{output:?}").into_bytes());
    stable_hash128(&[&hash.to_le_bytes(), &bytes])
}

fn mismatch(place: &str, kind: &str, machine: &str) -> String {
    format!("{place}: a {kind} input of the other machine in a {machine}'s journal")
}

/// A fresh machine as the header describes it.
fn build(header: &Header) -> Result<ReplayedMachine, String> {
    let raw = header.raw_config();
    match &header.machine {
        MachineSpec::JobManager { mode, epoch, seed } => {
            let machine = JobManager::new(raw, (*mode).into(), *epoch, *seed)?;
            Ok(ReplayedMachine::JobManager(Box::new(machine)))
        }
        MachineSpec::TaskManager { resource_id, data_address } => {
            let config = Config::from_raw(&raw).map_err(|error| error.to_string())?;
            let mut executor_config = TaskExecutorConfig::from_config(&config).map_err(|error| error.to_string())?;
            executor_config.data_address = data_address.clone();
            let machine = TaskExecutor::new(*resource_id, executor_config, header.started_at);
            Ok(ReplayedMachine::TaskExecutor(Box::new(machine)))
        }
    }
}

/// Reads one segment into the replay; the cut-short end of the last one is returned.
fn read_segment(
    replay: &mut Option<Replay>,
    path: &Path,
    number: u64,
    last: bool,
) -> Result<Option<Truncation>, String> {
    let cut = |offset: u64, bytes: u64| -> Result<Option<Truncation>, String> {
        if last {
            return Ok(Some(Truncation { segment: path.to_path_buf(), offset, bytes }));
        }
        Err(format!("{}: cut short at offset {offset}, but it is not the last segment", path.display()))
    };
    let mut reader = match SegmentReader::open(path)? {
        Ok(reader) => reader,
        Err(bytes) => return cut(0, bytes),
    };
    let start = match reader.next()? {
        Next::Frame { offset, payload } => weir_net::codec::decode::<SegmentStart>(&payload)
            .map_err(|error| format!("{}: corrupt segment start at offset {offset}: {error}", path.display()))?,
        Next::End => return cut(PREAMBLE_BYTES as u64, 0),
        Next::Cut { offset, bytes } => return cut(offset, bytes),
    };
    let replay = continue_with(replay, start, path, number)?;
    loop {
        match reader.next()? {
            Next::Frame { offset, payload } => {
                let place = format!("{}: record {} at offset {offset}", path.display(), replay.records);
                let record = weir_net::codec::decode::<Record>(&payload)
                    .map_err(|error| format!("{place}: corrupt record: {error}"))?;
                replay.feed(record, &place)?;
            }
            Next::End => return Ok(None),
            Next::Cut { offset, bytes } => return cut(offset, bytes),
        }
    }
}

/// Starts the replay at segment 0, or checks that `start` continues it.
fn continue_with<'a>(
    replay: &'a mut Option<Replay>,
    start: SegmentStart,
    path: &Path,
    number: u64,
) -> Result<&'a mut Replay, String> {
    let place = path.display();
    if start.segment != number {
        return Err(format!("{place}: the segment says it is number {}, expected {number}", start.segment));
    }
    match replay {
        None => Ok(replay.insert(Replay::new(start.header).map_err(|error| format!("{place}: {error}"))?)),
        Some(replay) if start.header != replay.header => {
            Err(format!("{place}: the segment's header differs from the journal's"))
        }
        Some(replay) if start.first_record != replay.records => {
            let expected = replay.records;
            Err(format!("{place}: the segment starts at record {}, expected {expected}", start.first_record))
        }
        Some(replay) => Ok(replay),
    }
}

/// What comes next in a segment.
enum Next {
    /// A whole frame whose checksum holds, starting at `offset`.
    Frame { offset: u64, payload: Vec<u8> },
    /// The file ends after a whole frame.
    End,
    /// The file ends inside a frame starting at `offset`, with `bytes` of it present.
    Cut { offset: u64, bytes: u64 },
}

/// Frames of one segment file, with their offsets.
struct SegmentReader {
    path: PathBuf,
    file: File,
    decoder: FrameDecoder,
    /// The offset of the next frame.
    offset: u64,
    at_end: bool,
}

impl SegmentReader {
    /// Opens a segment and checks its preamble; `Ok(Err(bytes))` when the file is shorter than
    /// the preamble (and what it holds is the preamble's start).
    fn open(path: &Path) -> Result<Result<SegmentReader, u64>, String> {
        let place = path.display();
        let mut file = File::open(path).map_err(|error| format!("{place}: {error}"))?;
        let mut preamble = Vec::with_capacity(PREAMBLE_BYTES);
        (&mut file)
            .take(PREAMBLE_BYTES as u64)
            .read_to_end(&mut preamble)
            .map_err(|error| format!("{place}: {error}"))?;
        let mut expected = MAGIC.to_vec();
        expected.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        if preamble.len() < PREAMBLE_BYTES && expected.starts_with(&preamble) {
            return Ok(Err(preamble.len() as u64));
        }
        if preamble.len() < MAGIC.len() || preamble[..MAGIC.len()] != MAGIC {
            let found = String::from_utf8_lossy(&preamble[..preamble.len().min(MAGIC.len())]).to_string();
            return Err(format!("{place}: not a weir journal (starts with {found:?}, expected \"WEIRJRNL\")"));
        }
        let version = u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]);
        if version != FORMAT_VERSION {
            return Err(format!("{place}: journal format version {version}; this weir reads version {FORMAT_VERSION}"));
        }
        let decoder = FrameDecoder::new(RECORD_BYTES_MAX);
        Ok(Ok(SegmentReader { path: path.to_path_buf(), file, decoder, offset: PREAMBLE_BYTES as u64, at_end: false }))
    }

    fn next(&mut self) -> Result<Next, String> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    let offset = self.offset;
                    self.offset += (HEADER_BYTES + payload.len()) as u64;
                    return Ok(Next::Frame { offset, payload });
                }
                Ok(None) if self.at_end => {
                    let bytes = self.decoder.buffered() as u64;
                    return Ok(if bytes == 0 { Next::End } else { Next::Cut { offset: self.offset, bytes } });
                }
                Ok(None) => self.fill()?,
                Err(error) => {
                    return Err(format!("{}: corrupt record at offset {}: {error}", self.path.display(), self.offset));
                }
            }
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = vec![0; READ_CHUNK_BYTES];
        let read = self.file.read(&mut chunk).map_err(|error| format!("{}: {error}", self.path.display()))?;
        if read == 0 {
            self.at_end = true;
        }
        self.decoder.push(&chunk[..read]);
        Ok(())
    }
}

impl Replayed {
    /// The replay's findings as lines of text, for `weir journal replay`.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        let first = self.segments.first().map(|path| path.display().to_string()).unwrap_or_default();
        let _ = writeln!(text, "journal {first}");
        let _ = writeln!(text, "machine: {}", describe_machine(&self.header));
        let span = self.span.map(|(first, last)| format!(" from {first} to {last}")).unwrap_or_default();
        let _ = write!(text, "segments: {}; records: {}{span}", self.segments.len(), self.records);
        let inputs: Vec<String> = self.inputs.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        if !inputs.is_empty() {
            let _ = write!(text, "; {}", inputs.join(", "));
        }
        text.push('\n');
        match &self.truncated {
            None => text.push_str("tail: whole\n"),
            Some(cut) => {
                let _ = writeln!(
                    text,
                    "tail: cut short at offset {} of {} ({} bytes of an unfinished record skipped)",
                    cut.offset,
                    cut.segment.display(),
                    cut.bytes
                );
            }
        }
        let _ = writeln!(text, "outputs: {}; hash {:032x}", self.outputs, self.outputs_hash);
        match &self.invariant_violation {
            None => text.push_str("invariants: held after every record\n"),
            Some(problem) => {
                let _ = writeln!(text, "invariants: broken {problem}");
            }
        }
        match &self.machine {
            ReplayedMachine::JobManager(machine) => describe_job_manager(machine, &mut text),
            ReplayedMachine::TaskExecutor(machine) => describe_task_executor(machine, &mut text),
        }
        text
    }
}

fn describe_machine(header: &Header) -> String {
    let built = format!(
        "{} configuration keys, started at {} (process {}, clock zero at {} ms after the Unix epoch)",
        header.config.len(),
        header.started_at,
        header.process_id,
        header.clock_zero_unix_ms
    );
    match &header.machine {
        MachineSpec::JobManager { mode, epoch, seed } => {
            format!("JobManager ({mode:?} mode, leader epoch {epoch}, seed {seed:#018x}), {built}")
        }
        MachineSpec::TaskManager { resource_id, data_address } => {
            format!("TaskExecutor {resource_id} (data channels at {data_address}), {built}")
        }
    }
}

fn describe_job_manager(machine: &JobManager, text: &mut String) {
    for (job_id, job) in machine.dispatcher().jobs() {
        let tasks: Vec<String> = job.tasks.iter().map(|(state, count)| format!("{state} {count}")).collect();
        let _ = writeln!(text, "job {job_id} {:?}: {} (tasks: {})", job.name, job.status, tasks.join(", "));
    }
    let resource_manager = machine.resource_manager();
    let _ = writeln!(
        text,
        "task managers: {}; slots: {}, free {}",
        resource_manager.task_managers().len(),
        resource_manager.slots_total(),
        resource_manager.slots_free()
    );
}

fn describe_task_executor(machine: &TaskExecutor, text: &mut String) {
    let registered = if machine.is_registered() { "yes" } else { "no" };
    let _ = writeln!(text, "registered: {registered}; leader epoch {}", machine.leader_epoch());
    for slot in machine.slots() {
        match slot.state {
            SlotState::Free => {
                let _ = writeln!(text, "slot {}: free", slot.slot.0);
            }
            SlotState::Allocated { allocation, job, accepted } => {
                let tasks: Vec<String> =
                    slot.tasks.iter().map(|(execution, state)| format!("{execution:?} {state}")).collect();
                let accepted = if accepted { "accepted" } else { "not accepted yet" };
                let _ = writeln!(
                    text,
                    "slot {}: job {job}, allocation {allocation} ({accepted}); tasks: {}",
                    slot.slot.0,
                    tasks.join(", ")
                );
            }
        }
    }
}

//! The bytes of checkpoint files and the directory layout they live in. Pure: drivers do the IO.
//!
//! Layout under `execution.checkpointing.dir` (Flink's):
//!
//! ```text
//! <job-id>/chk-<id>/<state file of each task>   one file per task, see [`state_file_name`]
//! <job-id>/chk-<id>/_metadata                   written last: its presence makes the checkpoint
//! <job-id>/shared/                              immutable files of incremental checkpoints,
//!                                               referenced by every checkpoint that holds them
//! <job-id>/taskowned/                           reserved
//! ```
//!
//! Every file is one frame:
//!
//! ```text
//! magic "WEIR" | version u16 | kind u8 | payload length u64 | payload | crc32 u32
//! ```
//!
//! integers little-endian, the crc32 (crc32fast, IEEE) over header and payload. Version 2 appends
//! the finished subtasks to `_metadata`; version 3 (the one written) adds incremental state: an
//! operator's [`NativeSnapshot`] in the task file, and each task handle's shared files in
//! `_metadata`. Versions 1 and 2 are still read. Decoding checks,
//! in order, the magic, the version, the kind, the length against the file's size, the checksum,
//! then decodes the payload, which must be canonical (sorted, no duplicates, no bytes left over)
//! and consistent (every task of a known vertex, below its parallelism). Each failure is a typed
//! [`StorageError`]; nothing here panics or allocates more than the input's size on any input.
//!
//! Recovery ([`choose_restore`], DESIGN.md section 6): the newest retained checkpoint whose
//! metadata is valid is restored; every corrupt one is reported, never silently skipped.

use super::TaskStateHandle;
use super::codec::{DecodeError, Reader, Writer};
use crate::dataflow::state::{NativeSnapshot, PrivateFile, SharedFile};
use crate::ids::Hex128;
use crate::ids::{AttemptNumber, CheckpointId, JobId, OperatorIndex, SubtaskIndex, VertexId};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;

/// The first four bytes of every weir checkpoint file.
pub const MAGIC: [u8; 4] = *b"WEIR";
/// The format version written. Version 2 added the finished subtasks to `_metadata`, version 3
/// incremental (native) keyed state and the shared files of each task handle.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest format version read (version 1 metadata has no finished subtasks).
pub const FORMAT_VERSION_OLDEST: u16 = 1;
/// Bytes before the payload: magic, version, kind, payload length.
pub const HEADER_BYTES: usize = 4 + 2 + 1 + 8;
/// Bytes after the payload: the crc32.
pub const TRAILER_BYTES: usize = 4;
/// The metadata file of a checkpoint, written last.
pub const METADATA_FILE: &str = "_metadata";
/// Directory of files shared between incremental checkpoints, beside the `chk-<id>` ones.
pub const SHARED_DIR: &str = "shared";
/// Directory of files owned by tasks rather than checkpoints (reserved).
pub const TASK_OWNED_DIR: &str = "taskowned";
/// Prefix of a checkpoint's directory name.
pub const CHECKPOINT_DIR_PREFIX: &str = "chk-";

/// What a framed file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A checkpoint's `_metadata`.
    Metadata,
    /// One task's state.
    TaskState,
}

impl FileKind {
    fn byte(self) -> u8 {
        match self {
            FileKind::Metadata => 1,
            FileKind::TaskState => 2,
        }
    }
}

/// What is wrong with a checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageProblem {
    /// The file does not exist (reported by the driver).
    Missing,
    /// The file is shorter than its header says.
    Truncated {
        /// Bytes the file should have.
        expected_bytes: u64,
        /// Bytes it has.
        actual_bytes: u64,
    },
    /// The file is longer than its header says.
    TrailingBytes {
        /// Bytes the file should have.
        expected_bytes: u64,
        /// Bytes it has.
        actual_bytes: u64,
    },
    /// It does not start with `WEIR` (only the bytes present are compared).
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A format version this build does not read.
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The newest version read.
        supported: u16,
    },
    /// Another kind of file than the one asked for.
    WrongKind {
        /// The kind asked for.
        expected: FileKind,
        /// The kind byte found.
        found: u8,
    },
    /// The crc32 in the trailer does not match the contents.
    ChecksumMismatch {
        /// The crc32 stored in the file (or in the state handle).
        expected: u32,
        /// The crc32 of the contents.
        actual: u32,
    },
    /// The payload passed the checksum but is not a valid payload of its kind.
    Undecodable {
        /// Byte offset in the payload.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A state file's size differs from the size its handle records.
    SizeMismatch {
        /// The size in the handle.
        expected_bytes: u64,
        /// The file's size.
        actual_bytes: u64,
    },
    /// The metadata in `chk-<n>` describes another checkpoint.
    WrongCheckpoint {
        /// The id of the directory.
        expected: CheckpointId,
        /// The id in the metadata.
        found: CheckpointId,
    },
}

impl fmt::Display for StorageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageProblem::Missing => write!(f, "file is missing"),
            StorageProblem::Truncated { expected_bytes, actual_bytes } => {
                write!(f, "truncated: expected {expected_bytes} bytes, found {actual_bytes}")
            }
            StorageProblem::TrailingBytes { expected_bytes, actual_bytes } => {
                write!(f, "trailing bytes: expected {expected_bytes} bytes, found {actual_bytes}")
            }
            StorageProblem::BadMagic { found } => write!(f, "not a weir checkpoint file: starts with {found:02x?}"),
            StorageProblem::UnsupportedVersion { found, supported } => {
                write!(
                    f,
                    "unsupported format version {found} (this build reads {FORMAT_VERSION_OLDEST} to {supported})"
                )
            }
            StorageProblem::WrongKind { expected, found } => {
                write!(f, "wrong kind of file: expected {expected:?}, found kind byte {found}")
            }
            StorageProblem::ChecksumMismatch { expected, actual } => {
                write!(f, "checksum mismatch: expected crc32 {expected:08x}, computed {actual:08x}")
            }
            StorageProblem::Undecodable { offset, reason } => {
                write!(f, "undecodable payload at offset {offset}: {reason}")
            }
            StorageProblem::SizeMismatch { expected_bytes, actual_bytes } => {
                write!(f, "size mismatch: the handle says {expected_bytes} bytes, the file has {actual_bytes}")
            }
            StorageProblem::WrongCheckpoint { expected, found } => {
                write!(f, "metadata of checkpoint {found} found where checkpoint {expected} was expected")
            }
        }
    }
}

/// A checkpoint file that cannot be used, with the file's name when the caller gave it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct StorageError {
    /// The file, as the driver named it.
    pub file: Option<String>,
    /// What is wrong.
    pub problem: StorageProblem,
}

impl StorageError {
    /// An error without a file name.
    pub fn new(problem: StorageProblem) -> StorageError {
        StorageError { file: None, problem }
    }

    /// The same error, naming `file`.
    pub fn in_file(self, file: impl Into<String>) -> StorageError {
        StorageError { file: Some(file.into()), ..self }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.problem),
            None => self.problem.fmt(f),
        }
    }
}

impl From<DecodeError> for StorageError {
    fn from(error: DecodeError) -> StorageError {
        StorageError::new(StorageProblem::Undecodable { offset: error.offset, reason: error.reason })
    }
}

/// State in a checkpoint that matches no subtask of the job (see
/// [`super::CompletedCheckpoint::from_metadata`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the checkpoint holds state of vertex {vertex} subtask {subtask}, which the job does not have")]
pub struct UnmatchedState {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask.
    pub subtask: SubtaskIndex,
}

/// A vertex as the metadata records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VertexMetadata {
    /// Subtasks when the checkpoint was taken.
    pub parallelism: u32,
    /// Key groups (fixed for the job's lifetime; needed to split keyed state when rescaling).
    pub max_parallelism: u32,
}

/// The contents of `chk-<id>/_metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckpointMetadata {
    /// The job.
    pub job: JobId,
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// Whether it is a savepoint.
    pub is_savepoint: bool,
    /// When it was triggered.
    pub triggered_at: Time,
    /// Every vertex of the job when it was taken.
    pub vertices: BTreeMap<VertexId, VertexMetadata>,
    /// The state file of every task that had state, by (vertex, subtask).
    pub tasks: BTreeMap<(VertexId, SubtaskIndex), TaskStateHandle>,
    /// The subtasks that had finished when it was taken: no state, restored as finished
    /// (format version 2; none in version 1).
    pub finished: BTreeSet<(VertexId, SubtaskIndex)>,
}

/// One operator's part of a task's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OperatorSnapshot {
    /// The operator (position in the job graph).
    pub operator: OperatorIndex,
    /// Non-keyed state (a source's position, a sink's pending transaction).
    pub operator_state: Vec<u8>,
    /// In-flight records of an unaligned checkpoint.
    pub channel_state: Vec<u8>,
    /// Keyed state by key group, ascending; split by key group when rescaling.
    pub keyed: Vec<(u32, Vec<u8>)>,
    /// Keyed state as a store's own files instead (an incremental checkpoint; `keyed` is empty).
    pub native: Option<NativeSnapshot>,
}

/// The contents of one task's state file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskStateFile {
    /// The job.
    pub job: JobId,
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask.
    pub subtask: SubtaskIndex,
    /// The attempt that wrote it.
    pub attempt: AttemptNumber,
    /// Each chained operator's state, by ascending operator.
    pub operators: Vec<OperatorSnapshot>,
}

/// A retained checkpoint skipped by [`choose_restore`] because it is corrupt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {checkpoint} cannot be restored and was skipped: {error}")]
pub struct RestoreWarning {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// What is wrong with it.
    pub error: StorageError,
}

/// `chk-<id>`.
pub fn checkpoint_dir_name(checkpoint: CheckpointId) -> String {
    format!("{CHECKPOINT_DIR_PREFIX}{checkpoint}")
}

/// The id of a directory named `chk-<id>` (canonical decimal only), for drivers listing `<job-id>/`.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<CheckpointId> {
    let digits = name.strip_prefix(CHECKPOINT_DIR_PREFIX)?;
    let canonical = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if !canonical {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// `<base>/<job-id>/chk-<id>`, or `<job-id>/chk-<id>` without a configured directory.
pub fn checkpoint_location(base: Option<&str>, job: JobId, checkpoint: CheckpointId) -> String {
    let relative = format!("{job}/{}", checkpoint_dir_name(checkpoint));
    match base {
        Some(base) => format!("{}/{relative}", base.trim_end_matches('/')),
        None => relative,
    }
}

/// `<target>/savepoint-<first 6 hex of the job id>-<12 hex>`, as Flink names savepoints.
pub fn savepoint_location(target: &str, job: JobId, random: u64) -> String {
    let job_hex = job.to_string();
    format!("{}/savepoint-{}-{:012x}", target.trim_end_matches('/'), &job_hex[..6], random & 0xffff_ffff_ffff)
}

/// The state file of one attempt of one subtask: unique per attempt, so a late file of an old
/// attempt never collides with the current one.
pub fn state_file_name(vertex: VertexId, subtask: SubtaskIndex, attempt: AttemptNumber) -> String {
    format!("task-{vertex}-{subtask}-{attempt}")
}

/// Whether `name` is a plain file name: not empty, no path separator, not `.` or `..`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Wraps `payload` in a frame of `kind`.
fn frame(kind: FileKind, payload: &[u8]) -> Vec<u8> {
    frame_version(kind, FORMAT_VERSION, payload)
}

/// Wraps `payload` in a frame of `kind` and format `version`.
fn frame_version(kind: FileKind, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + TRAILER_BYTES);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.push(kind.byte());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// The format version and payload of a frame of `kind`, after every check of the frame.
fn unframe_versioned(kind: FileKind, bytes: &[u8]) -> Result<(u16, &[u8]), StorageError> {
    let fail = |problem| Err(StorageError::new(problem));
    let magic_present = bytes.len().min(MAGIC.len());
    if bytes[..magic_present] != MAGIC[..magic_present] {
        return fail(StorageProblem::BadMagic { found: bytes[..magic_present].to_vec() });
    }
    let actual_bytes = bytes.len() as u64;
    if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
        return fail(StorageProblem::Truncated { expected_bytes: (HEADER_BYTES + TRAILER_BYTES) as u64, actual_bytes });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if !(FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&version) {
        return fail(StorageProblem::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    if bytes[6] != kind.byte() {
        return fail(StorageProblem::WrongKind { expected: kind, found: bytes[6] });
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&bytes[7..HEADER_BYTES]);
    let payload_bytes = u64::from_le_bytes(length);
    let expected_bytes = payload_bytes.saturating_add((HEADER_BYTES + TRAILER_BYTES) as u64);
    if actual_bytes < expected_bytes {
        return fail(StorageProblem::Truncated { expected_bytes, actual_bytes });
    }
    if actual_bytes > expected_bytes {
        return fail(StorageProblem::TrailingBytes { expected_bytes, actual_bytes });
    }
    let (contents, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
    let expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual = crc32fast::hash(contents);
    if expected != actual {
        return fail(StorageProblem::ChecksumMismatch { expected, actual });
    }
    Ok((version, &contents[HEADER_BYTES..]))
}

/// The crc32 stored in a frame's trailer (what a [`TaskStateHandle`] records), if the bytes are
/// long enough to have one. Says nothing about whether the frame is valid.
pub fn frame_checksum(bytes: &[u8]) -> Option<u32> {
    let trailer = bytes.len().checked_sub(TRAILER_BYTES).map(|start| &bytes[start..])?;
    Some(u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]))
}

/// The handle of a state file named `file` whose contents are `bytes`.
pub fn handle_for(file: impl Into<String>, bytes: &[u8]) -> TaskStateHandle {
    let (size_bytes, crc32) = (bytes.len() as u64, frame_checksum(bytes).unwrap_or(0));
    TaskStateHandle { file: file.into(), size_bytes, crc32, shared: Vec::new() }
}

/// `<base>/<job-id>/shared`, or `<job-id>/shared` without a configured directory.
pub fn shared_location(base: Option<&str>, job: JobId) -> String {
    let relative = format!("{job}/{SHARED_DIR}");
    match base {
        Some(base) => format!("{}/{relative}", base.trim_end_matches('/')),
        None => relative,
    }
}

/// The shared directory of the checkpoint at `location` (`<job dir>/chk-<id>`): its sibling.
pub fn shared_location_of(location: &str) -> String {
    let trimmed = location.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{SHARED_DIR}"),
        None => SHARED_DIR.to_string(),
    }
}

/// The bytes of `_metadata`.
pub fn encode_metadata(metadata: &CheckpointMetadata) -> Vec<u8> {
    encode_metadata_version(metadata, FORMAT_VERSION)
}

/// The bytes of `_metadata` in format `version` (what older weirs wrote; the reader's tests
/// check that every version still reads).
pub(super) fn encode_metadata_version(metadata: &CheckpointMetadata, version: u16) -> Vec<u8> {
    assert!((FORMAT_VERSION_OLDEST..=FORMAT_VERSION).contains(&version), "format version {version}");
    let mut writer = Writer::default();
    writer.u128(metadata.job.0.0);
    writer.u64(metadata.checkpoint.0);
    writer.bool(metadata.is_savepoint);
    writer.u64(metadata.triggered_at.0);
    writer.count(metadata.vertices.len());
    for (id, vertex) in &metadata.vertices {
        writer.u128(id.0.0);
        writer.u32(vertex.parallelism);
        writer.u32(vertex.max_parallelism);
    }
    writer.count(metadata.tasks.len());
    for ((vertex, subtask), handle) in &metadata.tasks {
        writer.u128(vertex.0.0);
        writer.u32(subtask.0);
        writer.str(&handle.file);
        writer.u64(handle.size_bytes);
        writer.u32(handle.crc32);
        if version >= 3 {
            writer.count(handle.shared.len());
            handle.shared.iter().for_each(|name| writer.str(name));
        }
    }
    if version >= 2 {
        writer.count(metadata.finished.len());
        for (vertex, subtask) in &metadata.finished {
            writer.u128(vertex.0.0);
            writer.u32(subtask.0);
        }
    }
    frame_version(FileKind::Metadata, version, &writer.into_bytes())
}

/// Decodes `_metadata`, checking the frame and that the contents are canonical and consistent.
pub fn decode_metadata(bytes: &[u8]) -> Result<CheckpointMetadata, StorageError> {
    let (version, payload) = unframe_versioned(FileKind::Metadata, bytes)?;
    let mut reader = Reader::new(payload);
    let job = JobId(Hex128(reader.u128("job id")?));
    let checkpoint = CheckpointId(reader.u64("checkpoint id")?);
    let is_savepoint = reader.bool("is savepoint")?;
    let triggered_at = Time(reader.u64("trigger time")?);
    let vertices = decode_vertices(&mut reader)?;
    let tasks = decode_task_handles(&mut reader, &vertices, version)?;
    let finished = match version {
        1 => BTreeSet::new(),
        _ => decode_finished(&mut reader, &vertices, &tasks)?,
    };
    reader.finish()?;
    Ok(CheckpointMetadata { job, checkpoint, is_savepoint, triggered_at, vertices, tasks, finished })
}

fn decode_vertices(reader: &mut Reader) -> Result<BTreeMap<VertexId, VertexMetadata>, DecodeError> {
    let count = reader.count(16 + 4 + 4, "vertex count")?;
    let mut vertices = BTreeMap::new();
    for _ in 0..count {
        let id = VertexId(Hex128(reader.u128("vertex id")?));
        let parallelism = reader.u32("parallelism")?;
        let max_parallelism = reader.u32("max parallelism")?;
        if parallelism == 0 || max_parallelism < parallelism {
            return Err(reader.error(format!("vertex {id}: parallelism {parallelism}, max {max_parallelism}")));
        }
        if vertices.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(reader.error(format!("vertex {id} out of order or repeated")));
        }
        vertices.insert(id, VertexMetadata { parallelism, max_parallelism });
    }
    Ok(vertices)
}

fn decode_task_handles(
    reader: &mut Reader,
    vertices: &BTreeMap<VertexId, VertexMetadata>,
    version: u16,
) -> Result<BTreeMap<(VertexId, SubtaskIndex), TaskStateHandle>, DecodeError> {
    let count = reader.count(16 + 4 + 8 + 8 + 4, "task count")?;
    let mut tasks = BTreeMap::new();
    for _ in 0..count {
        let key = (VertexId(Hex128(reader.u128("vertex id")?)), SubtaskIndex(reader.u32("subtask")?));
        let file = reader.string("state file name")?;
        let (size_bytes, crc32) = (reader.u64("state size")?, reader.u32("crc32")?);
        let shared = if version >= 3 { decode_shared_names(reader)? } else { Vec::new() };
        let handle = TaskStateHandle { file, size_bytes, crc32, shared };
        let Some(vertex) = vertices.get(&key.0) else {
            return Err(reader.error(format!("state of unknown vertex {}", key.0)));
        };
        if key.1.0 >= vertex.parallelism {
            return Err(reader.error(format!("subtask {} of vertex {} beyond its parallelism", key.1, key.0)));
        }
        if !is_plain_file_name(&handle.file) {
            return Err(reader.error(format!("state file name {:?} is not a plain file name", handle.file)));
        }
        if tasks.last_key_value().is_some_and(|(last, _)| *last >= key) {
            return Err(reader.error(format!("task ({}, {}) out of order or repeated", key.0, key.1)));
        }
        tasks.insert(key, handle);
    }
    Ok(tasks)
}

/// The shared files of one task handle: plain names, ascending, each once.
fn decode_shared_names(reader: &mut Reader) -> Result<Vec<String>, DecodeError> {
    let count = reader.count(4 + 1, "shared file count")?;
    let mut names: Vec<String> = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader.string("shared file name")?;
        if !is_plain_file_name(&name) {
            return Err(reader.error(format!("shared file name {name:?} is not a plain file name")));
        }
        if names.last().is_some_and(|last| *last >= name) {
            return Err(reader.error(format!("shared file {name:?} out of order or repeated")));
        }
        names.push(name);
    }
    Ok(names)
}

/// The finished subtasks: each of a known vertex, below its parallelism, ascending, and without
/// state (a finished subtask has none).
fn decode_finished(
    reader: &mut Reader,
    vertices: &BTreeMap<VertexId, VertexMetadata>,
    tasks: &BTreeMap<(VertexId, SubtaskIndex), TaskStateHandle>,
) -> Result<BTreeSet<(VertexId, SubtaskIndex)>, DecodeError> {
    let count = reader.count(16 + 4, "finished subtask count")?;
    let mut finished = BTreeSet::new();
    for _ in 0..count {
        let key = (VertexId(Hex128(reader.u128("vertex id")?)), SubtaskIndex(reader.u32("subtask")?));
        let Some(vertex) = vertices.get(&key.0) else {
            return Err(reader.error(format!("finished subtask of unknown vertex {}", key.0)));
        };
        if key.1.0 >= vertex.parallelism {
            return Err(reader.error(format!("finished subtask {} of vertex {} beyond its parallelism", key.1, key.0)));
        }
        if tasks.contains_key(&key) {
            return Err(reader.error(format!("finished subtask ({}, {}) has state", key.0, key.1)));
        }
        if finished.last().is_some_and(|last| *last >= key) {
            return Err(reader.error(format!("finished subtask ({}, {}) out of order or repeated", key.0, key.1)));
        }
        finished.insert(key);
    }
    Ok(finished)
}

/// The bytes of a task's state file.
pub fn encode_task_state(state: &TaskStateFile) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.u128(state.job.0.0);
    writer.u64(state.checkpoint.0);
    writer.u128(state.vertex.0.0);
    writer.u32(state.subtask.0);
    writer.u32(state.attempt.0);
    writer.count(state.operators.len());
    for operator in &state.operators {
        writer.u32(operator.operator.0);
        writer.bytes(&operator.operator_state);
        writer.bytes(&operator.channel_state);
        writer.count(operator.keyed.len());
        for (key_group, bytes) in &operator.keyed {
            writer.u32(*key_group);
            writer.bytes(bytes);
        }
        writer.bool(operator.native.is_some());
        if let Some(native) = &operator.native {
            encode_native(native, &mut writer);
        }
    }
    frame(FileKind::TaskState, &writer.into_bytes())
}

fn encode_native(native: &NativeSnapshot, writer: &mut Writer) {
    writer.count(native.state_names.len());
    native.state_names.iter().for_each(|name| writer.str(name));
    writer.count(native.shared.len());
    for file in &native.shared {
        writer.str(&file.local);
        writer.str(&file.shared);
        writer.u64(file.size_bytes);
        writer.u32(file.crc32);
    }
    writer.count(native.private.len());
    for file in &native.private {
        writer.str(&file.local);
        writer.bytes(&file.bytes);
    }
}

/// A native snapshot: plain file names, local names ascending and unique over both lists.
fn decode_native(reader: &mut Reader) -> Result<NativeSnapshot, DecodeError> {
    let count = reader.count(4, "state name count")?;
    let state_names = (0..count).map(|_| reader.string("state name")).collect::<Result<Vec<_>, _>>()?;
    let mut locals = BTreeSet::new();
    let mut check = |reader: &Reader, local: &str, other: Option<&str>| {
        let plain = is_plain_file_name(local) && other.is_none_or(is_plain_file_name);
        if !plain || !locals.insert(local.to_string()) {
            return Err(reader.error(format!("store file {local:?} repeated or not a plain file name")));
        }
        Ok(())
    };
    let count = reader.count(5 + 5 + 8 + 4, "shared file count")?;
    let mut shared = Vec::with_capacity(count);
    for _ in 0..count {
        let (local, name) = (reader.string("local file name")?, reader.string("shared file name")?);
        check(reader, &local, Some(&name))?;
        let (size_bytes, crc32) = (reader.u64("shared file size")?, reader.u32("shared file crc32")?);
        shared.push(SharedFile { local, shared: name, size_bytes, crc32 });
    }
    let count = reader.count(5 + 4, "private file count")?;
    let mut private = Vec::with_capacity(count);
    for _ in 0..count {
        let local = reader.string("private file name")?;
        check(reader, &local, None)?;
        private.push(PrivateFile { local, bytes: reader.bytes("private file")? });
    }
    Ok(NativeSnapshot { state_names, shared, private })
}

/// Decodes a task's state file, checking the frame and that the contents are canonical.
pub fn decode_task_state(bytes: &[u8]) -> Result<TaskStateFile, StorageError> {
    let (version, payload) = unframe_versioned(FileKind::TaskState, bytes)?;
    let mut reader = Reader::new(payload);
    let job = JobId(Hex128(reader.u128("job id")?));
    let checkpoint = CheckpointId(reader.u64("checkpoint id")?);
    let vertex = VertexId(Hex128(reader.u128("vertex id")?));
    let subtask = SubtaskIndex(reader.u32("subtask")?);
    let attempt = AttemptNumber(reader.u32("attempt")?);
    let count = reader.count(4 + 8 + 8 + 4, "operator count")?;
    let mut operators: Vec<OperatorSnapshot> = Vec::with_capacity(count);
    for _ in 0..count {
        let operator = decode_operator(&mut reader, version)?;
        if operators.last().is_some_and(|last| last.operator >= operator.operator) {
            return Err(reader.error(format!("operator {} out of order or repeated", operator.operator)).into());
        }
        operators.push(operator);
    }
    reader.finish()?;
    Ok(TaskStateFile { job, checkpoint, vertex, subtask, attempt, operators })
}

fn decode_operator(reader: &mut Reader, version: u16) -> Result<OperatorSnapshot, DecodeError> {
    let operator = OperatorIndex(reader.u32("operator")?);
    let operator_state = reader.bytes("operator state")?;
    let channel_state = reader.bytes("channel state")?;
    let count = reader.count(4 + 8, "key group count")?;
    let mut keyed: Vec<(u32, Vec<u8>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let key_group = reader.u32("key group")?;
        if keyed.last().is_some_and(|(last, _)| *last >= key_group) {
            return Err(reader.error(format!("key group {key_group} out of order or repeated")));
        }
        keyed.push((key_group, reader.bytes("keyed state")?));
    }
    let native = match version >= 3 && reader.bool("has native state")? {
        true => Some(decode_native(reader)?),
        false => None,
    };
    if native.is_some() && !keyed.is_empty() {
        return Err(reader.error("an operator with both key groups and native keyed state"));
    }
    Ok(OperatorSnapshot { operator, operator_state, channel_state, keyed, native })
}

/// Reads a state file back against the handle the metadata recorded: size, checksum, contents.
pub fn verify_task_state(handle: &TaskStateHandle, bytes: &[u8]) -> Result<TaskStateFile, StorageError> {
    let in_file = |error: StorageError| error.in_file(handle.file.clone());
    if bytes.len() as u64 != handle.size_bytes {
        let problem =
            StorageProblem::SizeMismatch { expected_bytes: handle.size_bytes, actual_bytes: bytes.len() as u64 };
        return Err(in_file(StorageError::new(problem)));
    }
    let state = decode_task_state(bytes).map_err(in_file)?;
    let stored = frame_checksum(bytes).unwrap_or(0);
    if stored != handle.crc32 {
        let problem = StorageProblem::ChecksumMismatch { expected: handle.crc32, actual: stored };
        return Err(in_file(StorageError::new(problem)));
    }
    Ok(state)
}

/// Picks what to restore from among the retained checkpoints read back from storage: the newest
/// whose metadata decoded and describes that checkpoint. Every candidate that is not usable is
/// reported (newest first), those newer than the choice being the ones recovery fell back over.
pub fn choose_restore(
    candidates: &[(CheckpointId, Result<CheckpointMetadata, StorageError>)],
) -> (Option<&CheckpointMetadata>, Vec<RestoreWarning>) {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(candidates[index].0));
    let mut chosen = None;
    let mut warnings = Vec::new();
    for index in order {
        let (checkpoint, read) = &candidates[index];
        let error = match read {
            Ok(metadata) if metadata.checkpoint == *checkpoint => {
                chosen = chosen.or(Some(metadata));
                continue;
            }
            Ok(metadata) => {
                let problem = StorageProblem::WrongCheckpoint { expected: *checkpoint, found: metadata.checkpoint };
                StorageError::new(problem)
            }
            Err(error) => error.clone(),
        };
        warnings.push(RestoreWarning { checkpoint: *checkpoint, error });
    }
    (chosen, warnings)
}

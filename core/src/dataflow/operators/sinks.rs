//! Sinks: `discard`, `print` (through an injected [`LineWriter`]) and the exactly-once file
//! sink (a two-phase commit through an injected [`PartStore`]).
//!
//! The file sink writes the records between two checkpoints into one pending part,
//! `part-<subtask>-<n>`, where `n` is one more than the last checkpoint it snapshotted. On
//! `snapshot(n)` the part is closed and recorded as pending in the snapshot; on
//! `notify_checkpoint_complete(n)` every pending part of a checkpoint up to `n` is committed.
//! On restore, the parts the restored snapshot records as pending are committed (their
//! checkpoint completed) and every other pending part this subtask owns is discarded: it
//! holds records that will be produced again. Subtask `i` of `p` owns the parts
//! `part-<j>-*` with `j mod p == i`, so after a rescale every part has exactly one owner and no
//! two subtasks touch the same part. Without checkpointing the sink commits at end of input
//! (as Flink's committer does when no final checkpoint will come); with checkpointing the
//! last part is committed by the final checkpoint.
//!
//! Formats: `csv` (comma-separated, quoted where needed, `null` as an empty field), `text`
//! (the values as the print sink shows them, joined by `,`) and `json` (one object per line,
//! keyed by the input's field names).

use super::{Collector, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorSnapshot};
use super::{RestoredState, decode_state, encode_state};
use crate::ids::{CheckpointId, SubtaskIndex};
use crate::job::FileFormat;
use crate::row::{Schema, Value};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Bytes a file sink buffers before it appends them to its pending part.
const PART_FLUSH_BYTES: usize = 1 << 20;

/// The driver's line writer or part store failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkIoError {
    /// What failed, with the path.
    pub message: String,
}

/// Where a print sink's lines go (standard output in the daemons, a buffer in the simulator).
pub trait LineWriter: Send {
    /// Writes one line (without its newline).
    fn write_line(&mut self, line: &str) -> Result<(), SinkIoError>;
}

/// The name a driver gives a pending part on storage: `.pending-<part>`, hidden from readers of
/// the directory until the commit renames it to `<part>`.
pub const PENDING_PART_PREFIX: &str = ".pending-";

/// Part files of a file sink's directory, supplied by the driver.
pub trait PartStore: Send {
    /// Appends `bytes` to the pending (invisible) part `part`, creating it if needed.
    fn write_pending(&mut self, part: &str, bytes: &[u8]) -> Result<(), SinkIoError>;
    /// Makes the pending part `part` visible; a part already committed is left as it is.
    fn commit(&mut self, part: &str) -> Result<(), SinkIoError>;
    /// Deletes the pending part `part`, if it exists.
    fn discard(&mut self, part: &str) -> Result<(), SinkIoError>;
    /// The names of the pending parts in the directory, of every subtask.
    fn pending_parts(&mut self) -> Result<Vec<String>, SinkIoError>;
}

/// Drops every record.
pub(crate) struct Discard;

impl Operator for Discard {
    #[inline]
    fn process(&mut self, _row: &[Value], _out: &mut dyn Collector) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// Writes `prefix` and the record's text form per record.
pub(crate) struct Print {
    context: OperatorContext,
    prefix: String,
    writer: Box<dyn LineWriter>,
    line: String,
}

impl Print {
    pub(crate) fn new(context: OperatorContext, prefix: &str, writer: Box<dyn LineWriter>) -> Print {
        Print { context, prefix: prefix.to_string(), writer, line: String::new() }
    }
}

impl Operator for Print {
    fn process(&mut self, row: &[Value], _out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.line.clear();
        self.line.push_str(&self.prefix);
        SinkFormat::Text.write(row, &mut self.line);
        self.writer.write_line(&self.line).map_err(|error| self.context.error(OperatorErrorKind::Io(error.message)))
    }
}

/// How a file sink writes a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SinkFormat {
    Csv,
    Text,
    Json { names: Vec<String> },
}

impl SinkFormat {
    pub(crate) fn new(format: FileFormat, input: &Schema) -> SinkFormat {
        match format {
            FileFormat::Csv => SinkFormat::Csv,
            FileFormat::Text => SinkFormat::Text,
            FileFormat::Json => SinkFormat::Json { names: input.fields.iter().map(|f| f.name.clone()).collect() },
        }
    }

    /// Appends the record's line (without newline) to `out`.
    pub(crate) fn write(&self, row: &[Value], out: &mut String) {
        match self {
            SinkFormat::Text => {
                for (position, value) in row.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{value}");
                }
            }
            SinkFormat::Csv => {
                for (position, value) in row.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_csv_field(value, out);
                }
            }
            SinkFormat::Json { names } => {
                out.push('{');
                for (position, (name, value)) in names.iter().zip(row).enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_json_string(name, out);
                    out.push(':');
                    write_json(value, out);
                }
                out.push('}');
            }
        }
    }
}

fn write_csv_field(value: &Value, out: &mut String) {
    let text = match value {
        Value::Null => return,
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) if x.is_finite() => {
            let _ = write!(out, "{x:?}");
        }
        Value::Float(_) => out.push_str("null"),
        Value::Str(s) => write_json_string(s, out),
        Value::List(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
    }
}

fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A closed part waiting for its checkpoint to complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PendingPart {
    name: String,
    /// The checkpoint whose completion commits it; `None` until the next snapshot.
    checkpoint: Option<CheckpointId>,
}

/// What a file sink's snapshot records.
#[derive(Serialize, Deserialize)]
struct SinkScalars {
    checkpoint: CheckpointId,
    pending: Vec<PendingPart>,
    /// The subtask that took the snapshot, and its parallelism then (for a rescale).
    subtask: u32,
    parallelism: u32,
}

/// The subtask index in a part name `part-<subtask>-<n>`.
fn part_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("part-")?;
    let (subtask, rest) = rest.split_once('-')?;
    let number = match rest.split_once("-a") {
        Some((number, attempt)) => attempt.parse::<u32>().ok().map(|_| number)?,
        None => rest,
    };
    number.parse::<u64>().ok()?;
    subtask.parse().ok()
}

/// A part's name: `part-<subtask>-<number>`, with `-a<attempt>` after attempt 0, so a zombie
/// of an older attempt (cut off from its JobMaster, still running for a moment) never writes
/// into a part the newer attempt writes.
fn part_name(subtask: SubtaskIndex, number: u64, attempt: u32) -> String {
    match attempt {
        0 => format!("part-{subtask}-{number}"),
        attempt => format!("part-{subtask}-{number}-a{attempt}"),
    }
}

/// The exactly-once file sink.
pub(crate) struct FileSink {
    context: OperatorContext,
    format: SinkFormat,
    store: Box<dyn PartStore>,
    checkpointing: bool,
    line: String,
    buffer: Vec<u8>,
    /// The part records go to, once one was written.
    current: Option<String>,
    /// The number of the next part.
    part_number: u64,
    pending: Vec<PendingPart>,
}

impl FileSink {
    pub(crate) fn new(
        context: OperatorContext,
        format: SinkFormat,
        store: Box<dyn PartStore>,
        checkpointing: bool,
    ) -> FileSink {
        FileSink {
            context,
            format,
            store,
            checkpointing,
            line: String::new(),
            buffer: Vec::new(),
            current: None,
            part_number: 1,
            pending: Vec::new(),
        }
    }

    fn io(&self, error: SinkIoError) -> OperatorError {
        self.context.error(OperatorErrorKind::Io(error.message))
    }

    /// Whether this subtask commits the parts a snapshot records: its own at the same
    /// parallelism, else when it is the first new subtask reading the old subtask's snapshot.
    fn commits_parts_of(&self, scalars: &SinkScalars) -> Result<bool, OperatorError> {
        let (old, old_parallelism) = (scalars.subtask, scalars.parallelism);
        let (subtask, parallelism, max) =
            (self.context.subtask.0, self.context.parallelism, self.context.max_parallelism);
        if old_parallelism == parallelism {
            return Ok(old == subtask);
        }
        if old >= old_parallelism || old_parallelism > max || parallelism > max {
            let message = format!("a snapshot of subtask {old} of {old_parallelism} with {max} key groups");
            return Err(self.context.error(OperatorErrorKind::Snapshot(message)));
        }
        Ok(crate::checkpoint::rescale::readers_of(old, old_parallelism, parallelism, max).start == subtask)
    }

    /// Whether this subtask owns the part `name` (written by subtask `j`, owned by `j mod p`).
    fn owns(context: &OperatorContext, name: &str) -> bool {
        part_writer(name).is_some_and(|writer| writer % context.parallelism == context.subtask.0)
    }

    fn flush(&mut self) -> Result<(), OperatorError> {
        if let (Some(part), false) = (&self.current, self.buffer.is_empty()) {
            self.store.write_pending(part, &self.buffer).map_err(|error| self.io(error))?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Closes the current part, if any, as pending.
    fn close_part(&mut self) -> Result<(), OperatorError> {
        self.flush()?;
        if let Some(name) = self.current.take() {
            self.pending.push(PendingPart { name, checkpoint: None });
            self.part_number += 1;
        }
        Ok(())
    }

    /// Commits the pending parts `select` picks, in order.
    fn commit_where(&mut self, select: impl Fn(&PendingPart) -> bool) -> Result<(), OperatorError> {
        let mut kept = Vec::with_capacity(self.pending.len());
        for part in std::mem::take(&mut self.pending) {
            if select(&part) {
                if let Err(error) = self.store.commit(&part.name) {
                    self.pending.push(part);
                    self.pending.extend(kept);
                    return Err(self.io(error));
                }
            } else {
                kept.push(part);
            }
        }
        self.pending = kept;
        Ok(())
    }
}

impl Operator for FileSink {
    fn process(&mut self, row: &[Value], _out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.line.clear();
        self.format.write(row, &mut self.line);
        self.buffer.extend_from_slice(self.line.as_bytes());
        self.buffer.push(b'\n');
        if self.current.is_none() {
            let name = part_name(self.context.subtask, self.part_number, self.context.attempt);
            // A pending part of that name is left over from a failed attempt: start it afresh.
            self.store.discard(&name).map_err(|error| self.io(error))?;
            self.current = Some(name);
        }
        if self.buffer.len() >= PART_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        self.close_part()?;
        for part in self.pending.iter_mut().filter(|part| part.checkpoint.is_none()) {
            part.checkpoint = Some(checkpoint);
        }
        self.part_number = self.part_number.max(checkpoint.0 + 1);
        let (subtask, parallelism) = (self.context.subtask.0, self.context.parallelism);
        let scalars = SinkScalars { checkpoint, pending: self.pending.clone(), subtask, parallelism };
        Ok(OperatorSnapshot { keyed: None, items: Vec::new(), scalars: Some(encode_state(&self.context, &scalars)?) })
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        self.commit_where(|part| part.checkpoint.is_some_and(|of| of <= checkpoint))
    }

    /// Commits the parts the snapshot records as pending and discards the other pending parts
    /// this subtask owns. After a rescale the parts one old subtask recorded are committed by the
    /// first new subtask that reads its snapshot (`checkpoint::rescale::readers_of`), so exactly
    /// once; leftovers of writer `j` are discarded by subtask `j mod p`, which reads old subtask
    /// `j`'s snapshot and so spares the parts it records.
    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        let mut last = CheckpointId(0);
        let mut recorded = Vec::new();
        for bytes in &state.scalars {
            let scalars: SinkScalars = decode_state(&self.context, bytes)?;
            last = last.max(scalars.checkpoint);
            if self.commits_parts_of(&scalars)? {
                self.pending.extend(scalars.pending);
            } else {
                recorded.extend(scalars.pending.into_iter().map(|part| part.name));
            }
        }
        self.commit_where(|_| true)?;
        let leftovers = self.store.pending_parts().map_err(|error| self.io(error))?;
        let discard = |name: &&String| FileSink::owns(&self.context, name) && !recorded.contains(name);
        for name in leftovers.iter().filter(discard) {
            self.store.discard(name).map_err(|error| self.io(error))?;
        }
        self.part_number = last.0 + 1;
        Ok(())
    }

    fn end_of_input(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.close_part()?;
        if !self.checkpointing {
            self.commit_where(|_| true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod part_name_tests {
    use super::{part_name, part_writer};
    use crate::ids::SubtaskIndex;

    #[test]
    fn part_names_of_later_attempts_differ_and_still_name_their_writer() {
        assert_eq!(part_name(SubtaskIndex(3), 7, 0), "part-3-7");
        let later = part_name(SubtaskIndex(3), 7, 1 << 20);
        assert_eq!(later, "part-3-7-a1048576");
        assert_ne!(later, part_name(SubtaskIndex(3), 7, 0));
        assert_eq!(part_writer("part-3-7"), Some(3));
        assert_eq!(part_writer(&later), Some(3));
        for nonsense in ["part-3", "part-x-7", "part-3-7-ax", "part-3-x-a1", "parts-3-7"] {
            assert_eq!(part_writer(nonsense), None, "{nonsense}");
        }
    }
}

//! Sources: the sequence and the generator (record indexes split over subtasks) and the line
//! sources (a file or a socket, read through an injected [`SourceReader`]).
//!
//! Positions are checkpointed as items (one per split), so a restored source continues exactly
//! after the last record of the checkpoint, at the same parallelism or another: each split
//! goes to one new subtask. A sequence's range is split evenly as Flink's
//! `NumberSequenceSource` does: the first `total % parallelism` subtasks take one extra
//! number. A bounded generator is split the same way over `0..count`; an unbounded one
//! gives subtask `s` the indexes `s, s + p, s + 2p, ...`. A line source has one split (the
//! file or connection), read by subtask 0; its position is a byte offset. At end of input a
//! source emits the final watermark (`i64::MAX`), as Flink's sources do.

use super::{Collector, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorSnapshot, PollStatus};
use super::{RestoredState, SourceOperator, decode_state, encode_state};
use crate::expr::Expr;
use crate::ids::CheckpointId;
use crate::job::{Column, FileFormat};
use crate::row::{Row, RowBatch, Type, Value};
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// What a [`SourceReader`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Appended at least one byte.
    Data,
    /// Nothing yet (a socket without data); try again later.
    NotReady,
    /// The input has ended.
    End,
}

/// The driver's reader failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReaderError {
    /// What failed, with the path or address.
    pub message: String,
}

/// Bytes of a file or a connection, supplied by the driver (real files in the daemons, a
/// simulated disk in the simulator).
pub trait SourceReader: Send {
    /// Appends at most `max_bytes` bytes found at byte `offset` of the input to `buffer`. A
    /// socket cannot seek and reads on from where it is (at-most-once after a restore).
    fn read(&mut self, offset: u64, max_bytes: usize, buffer: &mut Vec<u8>) -> Result<ReadOutcome, ReaderError>;
}

/// Bytes asked of a reader at once.
const READ_BYTES: usize = 64 * 1024;
/// Longest line a line source accepts; a longer one fails the source instead of growing memory.
const LINE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A run of record indexes: `next, next + stride, ...` below `end` (forever without an end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct IndexSplit {
    next: i128,
    end: Option<i128>,
    stride: i128,
}

impl IndexSplit {
    /// Part `part` of `parts` of the `count` indexes from `first`, contiguous and even.
    fn even(first: i128, count: i128, parts: u32, part: u32) -> IndexSplit {
        let (parts, part) = (i128::from(parts), i128::from(part));
        let (base, extra) = (count / parts, count % parts);
        let start = first + part * base + part.min(extra);
        let size = base + i128::from(part < extra);
        IndexSplit { next: start, end: Some(start + size), stride: 1 }
    }

    fn is_done(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }
}

/// Paces a source to `per_second` records per second, counting from its first poll.
#[derive(Clone, Debug)]
struct RateLimiter {
    per_second: u64,
    started: Option<Time>,
    emitted: u64,
}

impl RateLimiter {
    /// Records allowed now, at most `wanted`: one at the start, then `per_second` per second.
    fn allowance(&mut self, now: Time, wanted: usize) -> usize {
        let started = *self.started.get_or_insert(now);
        let elapsed = u128::from(now.since(started).as_micros());
        let allowed = 1 + elapsed * u128::from(self.per_second) / 1_000_000;
        let left = allowed.saturating_sub(u128::from(self.emitted));
        usize::try_from(left).unwrap_or(usize::MAX).min(wanted)
    }

    /// When the next record is allowed.
    fn next_time(&self) -> Option<Time> {
        let started = self.started?;
        let micros = (u128::from(self.emitted) * 1_000_000).div_ceil(u128::from(self.per_second));
        Some(started.after(crate::time::Duration(u64::try_from(micros).unwrap_or(u64::MAX))))
    }
}

/// Turns a record index into a record.
pub(crate) trait IndexRows: Send {
    /// Emits the record of `index`.
    fn emit(&mut self, index: i128, out: &mut dyn Collector) -> Result<(), OperatorError>;

    /// Emits the records of the `count` indexes `first, first + stride, ...`, in order.
    fn emit_run(
        &mut self,
        first: i128,
        stride: i128,
        count: usize,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        for step in 0..count {
            self.emit(first + stride * step as i128, out)?;
        }
        Ok(())
    }
}

/// Rows a sequence emits per batch: enough to pay the calls once for many records, few enough
/// that a batch and the batches made from it downstream stay in the first-level cache.
const SEQUENCE_BATCH_ROWS: usize = 256;

/// The sequence's record: `x = index`.
pub(crate) struct SequenceRows {
    row: Row,
    batch: RowBatch,
}

impl SequenceRows {
    pub(crate) fn new() -> SequenceRows {
        SequenceRows { row: vec![Value::Int(0)], batch: RowBatch::new() }
    }
}

impl IndexRows for SequenceRows {
    #[inline]
    fn emit(&mut self, index: i128, out: &mut dyn Collector) -> Result<(), OperatorError> {
        // The splits lie inside `from..=to`, so the index fits.
        super::put_int(&mut self.row[0], index as i64);
        out.collect(&self.row)
    }

    /// In batches of [`SEQUENCE_BATCH_ROWS`].
    fn emit_run(
        &mut self,
        first: i128,
        stride: i128,
        count: usize,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let mut next = first;
        let mut left = count;
        while left > 0 {
            let size = left.min(SEQUENCE_BATCH_ROWS);
            self.batch.start(1);
            for _ in 0..size {
                // The splits lie inside `from..=to`, so the index fits.
                super::put_int(&mut self.batch.push_slots()[0], next as i64);
                next += stride;
            }
            out.collect_batch(&self.batch)?;
            left -= size;
        }
        Ok(())
    }
}

/// The generator's record: its field expressions over `i = index`.
pub(crate) struct GeneratorRows {
    context: OperatorContext,
    input: Row,
    fields: Vec<Expr>,
    output: Row,
}

impl GeneratorRows {
    pub(crate) fn new(context: OperatorContext, fields: Vec<Expr>) -> GeneratorRows {
        let output = vec![Value::Null; fields.len()];
        GeneratorRows { context, input: vec![Value::Int(0)], fields, output }
    }
}

impl IndexRows for GeneratorRows {
    fn emit(&mut self, index: i128, out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.input[0] = Value::Int(i64::try_from(index).unwrap_or(i64::MAX));
        for (slot, field) in self.output.iter_mut().zip(&self.fields) {
            *slot = field.eval(&self.input).map_err(|error| self.context.error(error))?;
        }
        out.collect(&self.output)
    }
}

/// A source of record indexes: the sequence and the generator.
pub(crate) struct IndexSource<R> {
    context: OperatorContext,
    splits: Vec<IndexSplit>,
    /// The split emitting next when there are several.
    cursor: usize,
    rate: Option<RateLimiter>,
    rows: R,
}

impl IndexSource<SequenceRows> {
    /// This subtask's share of `from..=to`.
    pub(crate) fn sequence(
        context: OperatorContext,
        from: i64,
        to: i64,
        rate: Option<u64>,
        rows: SequenceRows,
    ) -> IndexSource<SequenceRows> {
        let count = (i128::from(to) - i128::from(from) + 1).max(0);
        let split = IndexSplit::even(i128::from(from), count, context.parallelism, context.subtask.0);
        IndexSource::new(context, split, rate, rows)
    }
}

impl IndexSource<GeneratorRows> {
    /// This subtask's share of `0..count`, or of all indexes when unbounded.
    pub(crate) fn generator(
        context: OperatorContext,
        count: Option<u64>,
        rate: Option<u64>,
        rows: GeneratorRows,
    ) -> IndexSource<GeneratorRows> {
        let (parallelism, subtask) = (context.parallelism, context.subtask.0);
        let split = match count {
            Some(count) => IndexSplit::even(0, i128::from(count), parallelism, subtask),
            None => IndexSplit { next: i128::from(subtask), end: None, stride: i128::from(parallelism) },
        };
        IndexSource::new(context, split, rate, rows)
    }
}

impl<R: IndexRows> IndexSource<R> {
    fn new(context: OperatorContext, split: IndexSplit, rate: Option<u64>, rows: R) -> IndexSource<R> {
        let rate = rate.filter(|&per_second| per_second > 0);
        let rate = rate.map(|per_second| RateLimiter { per_second, started: None, emitted: 0 });
        let splits = if split.is_done() { Vec::new() } else { vec![split] };
        IndexSource { context, splits, cursor: 0, rate, rows }
    }

    /// Emits up to `budget` records, one split at a time (round robin when there are several).
    fn emit(&mut self, budget: usize, out: &mut dyn Collector) -> Result<usize, OperatorError> {
        let mut emitted = 0;
        while emitted < budget && !self.splits.is_empty() {
            let cursor = self.cursor % self.splits.len();
            let run = if self.splits.len() == 1 { budget - emitted } else { 1 };
            let split = &mut self.splits[cursor];
            let (next, stride, end) = (split.next, split.stride, split.end.unwrap_or(i128::MAX));
            // Indexes left below `end`: ceil((end - next) / stride), the stride being positive
            // (written so that an unbounded split's `end` of i128::MAX cannot overflow).
            let available = if next < end { (end - next - 1) / stride + 1 } else { 0 };
            let taken = usize::try_from(available).unwrap_or(usize::MAX).min(run);
            // A failed emit fails the task, which restores from a checkpoint: the position kept
            // here no longer matters then.
            self.rows.emit_run(next, stride, taken, out)?;
            split.next = next + stride * taken as i128;
            emitted += taken;
            if split.is_done() {
                self.splits.remove(cursor);
            } else {
                self.cursor = cursor + 1;
            }
        }
        Ok(emitted)
    }
}

impl<R: IndexRows> SourceOperator for IndexSource<R> {
    fn poll(&mut self, now: Time, max_records: usize, out: &mut dyn Collector) -> Result<PollStatus, OperatorError> {
        let budget = match &mut self.rate {
            Some(rate) => rate.allowance(now, max_records),
            None => max_records,
        };
        let emitted = self.emit(budget, out)?;
        if let Some(rate) = &mut self.rate {
            rate.emitted += emitted as u64;
        }
        Ok(if self.splits.is_empty() {
            PollStatus::Finished
        } else if emitted < max_records {
            PollStatus::Idle
        } else {
            PollStatus::Available
        })
    }
}

impl<R: IndexRows> Operator for IndexSource<R> {
    fn process(&mut self, _row: &[Value], _out: &mut dyn Collector) -> Result<(), OperatorError> {
        Err(self.context.error(OperatorErrorKind::NotAnInput))
    }

    fn next_timer(&self) -> Option<Time> {
        if self.splits.is_empty() {
            return None;
        }
        self.rate.as_ref().and_then(RateLimiter::next_time)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let items = self.splits.iter().map(|split| encode_state(&self.context, split)).collect::<Result<_, _>>()?;
        Ok(OperatorSnapshot { keyed: None, items, scalars: None })
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        let decode = |bytes: &&[u8]| decode_state::<IndexSplit>(&self.context, bytes);
        let splits: Vec<IndexSplit> = state.items.iter().map(decode).collect::<Result<_, _>>()?;
        if let Some(bad) = splits.iter().find(|split| split.stride <= 0) {
            let message = format!("a split with stride {} cannot advance", bad.stride);
            return Err(self.context.error(OperatorErrorKind::Snapshot(message)));
        }
        self.splits = splits.into_iter().filter(|split| !split.is_done()).collect();
        self.cursor = 0;
        if let Some(rate) = &mut self.rate {
            *rate = RateLimiter { per_second: rate.per_second, started: None, emitted: 0 };
        }
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut dyn Collector) -> Result<(), OperatorError> {
        out.emit_watermark(crate::dataflow::EventTime::MAX)
    }

    fn as_source(&mut self) -> Option<&mut dyn SourceOperator> {
        Some(self)
    }
}

/// How a line source turns a line into a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LineFormat {
    /// The line as field `line`.
    Text,
    /// Comma-separated values into the columns, converted to their types.
    Csv(Vec<Column>),
}

impl LineFormat {
    pub(crate) fn new(format: FileFormat, columns: &[Column]) -> Result<LineFormat, String> {
        match format {
            FileFormat::Text => Ok(LineFormat::Text),
            FileFormat::Csv if !columns.is_empty() => Ok(LineFormat::Csv(columns.to_vec())),
            FileFormat::Csv => Err("a csv source needs its columns".to_string()),
            FileFormat::Json => Err("json is a sink format; read text or csv".to_string()),
        }
    }

    fn width(&self) -> usize {
        match self {
            LineFormat::Text => 1,
            LineFormat::Csv(columns) => columns.len(),
        }
    }
}

/// A line source's position: the byte offset of the first line not yet emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LineSplit {
    offset: u64,
}

/// Reads lines from a file or a socket through a [`SourceReader`].
pub(crate) struct LineSource {
    context: OperatorContext,
    reader: Box<dyn SourceReader>,
    format: LineFormat,
    /// The split this subtask reads, if any.
    split: Option<LineSplit>,
    /// Bytes read but not yet consumed start at `buffer[start]`, at input offset `split.offset`.
    buffer: Vec<u8>,
    start: usize,
    /// Where to look for the next newline.
    scan: usize,
    reader_done: bool,
    row: Row,
}

impl LineSource {
    pub(crate) fn new(context: OperatorContext, reader: Box<dyn SourceReader>, format: LineFormat) -> LineSource {
        let split = (context.subtask.0 == 0).then_some(LineSplit { offset: 0 });
        let row = vec![Value::Null; format.width()];
        LineSource { context, reader, format, split, buffer: Vec::new(), start: 0, scan: 0, reader_done: false, row }
    }

    /// The next complete line's end (exclusive of the newline), if one is buffered.
    fn find_line(&mut self) -> Option<usize> {
        let found = self.buffer[self.scan..].iter().position(|&byte| byte == b'\n');
        match found {
            Some(at) => Some(self.scan + at),
            None => {
                self.scan = self.buffer.len();
                None
            }
        }
    }

    /// Emits the line `buffer[start..end]` and consumes it with `consumed` bytes.
    fn emit_line(&mut self, end: usize, consumed: usize, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let mut line = &self.buffer[self.start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let text = String::from_utf8_lossy(line);
        match &self.format {
            LineFormat::Text => self.row[0] = Value::str(&text),
            LineFormat::Csv(columns) => {
                let offset = self.split.map_or(0, |split| split.offset);
                parse_csv(&text, columns, &mut self.row).map_err(|message| {
                    let message = format!("line at byte {offset}: {message}");
                    self.context.error(OperatorErrorKind::Record(message))
                })?
            }
        }
        self.start += consumed;
        self.scan = self.start;
        if let Some(split) = &mut self.split {
            split.offset += consumed as u64;
        }
        out.collect(&self.row)
    }

    /// Reads more bytes; `false` when the reader has none now.
    fn fill(&mut self) -> Result<bool, OperatorError> {
        self.buffer.drain(..self.start);
        self.scan -= self.start;
        self.start = 0;
        if self.buffer.len() > LINE_BYTES_MAX {
            let message = format!("a line longer than {LINE_BYTES_MAX} bytes");
            return Err(self.context.error(OperatorErrorKind::Record(message)));
        }
        let offset = self.split.map_or(0, |split| split.offset) + self.buffer.len() as u64;
        let outcome = self.reader.read(offset, READ_BYTES, &mut self.buffer);
        match outcome.map_err(|error| self.context.error(OperatorErrorKind::Io(error.message)))? {
            ReadOutcome::Data => Ok(true),
            ReadOutcome::NotReady => Ok(false),
            ReadOutcome::End => {
                self.reader_done = true;
                Ok(true)
            }
        }
    }
}

impl SourceOperator for LineSource {
    fn poll(&mut self, _now: Time, max_records: usize, out: &mut dyn Collector) -> Result<PollStatus, OperatorError> {
        let mut emitted = 0;
        while emitted < max_records {
            if self.split.is_none() {
                return Ok(PollStatus::Finished);
            }
            if let Some(end) = self.find_line() {
                self.emit_line(end, end + 1 - self.start, out)?;
                emitted += 1;
            } else if self.reader_done {
                if self.start < self.buffer.len() {
                    let end = self.buffer.len();
                    self.emit_line(end, end - self.start, out)?;
                    emitted += 1;
                }
                self.split = None;
            } else if !self.fill()? {
                return Ok(PollStatus::Idle);
            }
        }
        Ok(if self.split.is_none() { PollStatus::Finished } else { PollStatus::Available })
    }
}

impl Operator for LineSource {
    fn process(&mut self, _row: &[Value], _out: &mut dyn Collector) -> Result<(), OperatorError> {
        Err(self.context.error(OperatorErrorKind::NotAnInput))
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let items = self.split.iter().map(|split| encode_state(&self.context, split)).collect::<Result<_, _>>()?;
        Ok(OperatorSnapshot { keyed: None, items, scalars: None })
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        let mut splits = state.items.iter().map(|bytes| decode_state::<LineSplit>(&self.context, bytes));
        self.split = splits.next().transpose()?;
        if splits.next().is_some() {
            let message = "a line source reads one input but was given several".to_string();
            return Err(self.context.error(OperatorErrorKind::Snapshot(message)));
        }
        self.buffer.clear();
        (self.start, self.scan, self.reader_done) = (0, 0, false);
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut dyn Collector) -> Result<(), OperatorError> {
        out.emit_watermark(crate::dataflow::EventTime::MAX)
    }

    fn as_source(&mut self) -> Option<&mut dyn SourceOperator> {
        Some(self)
    }
}

/// Splits one CSV line (RFC 4180 quoting within the line) into `row`, converting each field to
/// its column's type. An empty field is `null`, except in a `str` column.
fn parse_csv(line: &str, columns: &[Column], row: &mut Row) -> Result<(), String> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quote".to_string());
    }
    fields.push(field);
    if fields.len() != columns.len() {
        return Err(format!("{} fields, expected {} ({})", fields.len(), columns.len(), column_names(columns)));
    }
    for ((slot, text), column) in row.iter_mut().zip(&fields).zip(columns) {
        *slot = csv_value(text, column.ty).map_err(|message| format!("column `{}`: {message}", column.name))?;
    }
    Ok(())
}

fn column_names(columns: &[Column]) -> String {
    columns.iter().map(|column| column.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// One CSV field as a value of type `ty`; `any` takes an int, else a float, else the text.
fn csv_value(text: &str, ty: Type) -> Result<Value, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() && ty != Type::Str {
        return Ok(Value::Null);
    }
    let bad = || format!("{text:?} is not {}", ty.name());
    match ty {
        Type::Str => Ok(Value::str(text)),
        Type::Int => trimmed.parse().map(Value::Int).map_err(|_| bad()),
        Type::Float => trimmed.parse().map(Value::Float).map_err(|_| bad()),
        Type::Bool => match trimmed {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        Type::List => {
            let inner = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).ok_or_else(bad)?;
            let items: Vec<Value> = match inner.trim() {
                "" => Vec::new(),
                inner => inner.split(',').map(|item| Value::str(item.trim())).collect(),
            };
            Ok(Value::List(items.into()))
        }
        Type::Null => Err(bad()),
        Type::Any => Ok(match (trimmed.parse::<i64>(), trimmed.parse::<f64>()) {
            (Ok(int), _) => Value::Int(int),
            (_, Ok(float)) => Value::Float(float),
            _ => Value::str(text),
        }),
    }
}

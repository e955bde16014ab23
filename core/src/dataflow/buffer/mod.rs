//! Stream elements encoded into byte buffers and decoded back, and the output side of a task.
//!
//! This module owns weir's wire form of [`StreamElement`]s between tasks, the
//! [`BufferBuilder`] that fills one buffer, the [`BufferReader`] that decodes one, and the
//! [`RecordWriter`] that spreads a task's output over its channels in buffers.
//!
//! # Encoding
//!
//! A buffer is a sequence of elements and nothing else (no header: the element count travels
//! beside the bytes, see [`Buffer::from_parts`]). Each element starts with a tag byte:
//!
//! | element       | tag | then                                                                      |
//! |---------------|-----|---------------------------------------------------------------------------|
//! | record        | 1   | field count (varint), then each value                                     |
//! | watermark     | 2   | event time, 8 bytes little-endian                                          |
//! | barrier       | 3   | checkpoint id (varint), trigger time µs (varint), flags byte              |
//! | end of input  | 4   | nothing                                                                    |
//!
//! Barrier flags: bit 0 savepoint, bit 1 stop, bit 2 drain (both only with bit 0), bit 3
//! unaligned; other bits must be zero. A value is a tag byte then its payload: null `0`,
//! false `1`, true `2` (no payload), int `3` + zigzag varint, float `4` + 8 bytes little-endian
//! (IEEE bits), str `5` + byte length (varint) + UTF-8, list `6` + item count (varint) + items.
//! Varints are LEB128, at most 10 bytes. Tag 0 is never an element, so zeroed memory is refused.
//! A row `[Int, Int]` of small ints costs 6 to 8 bytes, so a 32 KiB buffer holds ~4,500 rows.
//!
//! # Oversized records
//!
//! A record larger than a whole buffer is not split: pushed into an empty builder it is always
//! accepted and makes a buffer of its own, longer than the capacity (a dedicated oversized
//! buffer, as Flink spills a record spanning segments). The builder then reports itself full, so
//! the writer sends it at once. So `push_record` on an empty builder never returns `false`.
//!
//! # Decoding outside input
//!
//! Buffers come from other processes, so decoding never panics and never trusts a length: a
//! string length, a list count and a field count are each checked against the bytes left before
//! anything is allocated (every value takes at least one byte), lists may nest at most
//! [`LIST_DEPTH_MAX`] deep, and every failure is a [`DecodeError`] with the byte offset where it
//! was found. After an error the reader is exhausted.
//!
//! # Cost
//!
//! [`BufferReader::next_into`] decodes into a caller's reusable [`Row`], so int, float, bool and
//! null rows decode without allocating; strings allocate their `Arc<str>`. The data plane moves
//! records in batches: [`BufferReader::next_records_into`] decodes a run of records into a
//! [`RowBatch`] and [`BufferBuilder::push_records`] / [`RecordWriter::emit_batch`] encode one.
//! Rows of one to four ints below 8192 in magnitude (the usual keyed pair) take a fast path
//! both ways, through one 16-byte window, with the same bytes as the general encoder. Builders
//! allocate their bytes once per buffer, or never when buffers are given back with
//! [`BufferBuilder::recycle`] / [`RecordWriter::recycle`]. Their cost shows in the windowed-sum
//! benchmark: `cargo test -p weir-tests --release --test windowed_sum_bench -- --ignored --nocapture`.

mod writer;

#[cfg(test)]
mod tests;

pub use writer::{RecordWriter, WriterMetrics};

use super::{Barrier, BarrierKind, EventTime, StreamElement};
use crate::config::TaskManagerConfig;
use crate::ids::CheckpointId;
use crate::row::{Row, RowBatch, Value};
use crate::time::Time;
use std::sync::Arc;

/// Default buffer capacity: `taskmanager.memory.segment-size`'s default, 32 KiB.
pub const SEGMENT_BYTES_DEFAULT: usize = 32 * 1024;

/// Deepest nesting of lists inside a value that encodes and decodes (a list of ints is depth 1).
pub const LIST_DEPTH_MAX: usize = 64;

/// Widest row of small ints that encodes and decodes through a 16-byte window (2 + 3 · 4 = 14).
const NARROW_FIELDS_MAX: usize = 4;
/// The window's size.
const NARROW_WINDOW_BYTES: usize = 16;

const TAG_RECORD: u8 = 1;
const TAG_WATERMARK: u8 = 2;
const TAG_BARRIER: u8 = 3;
const TAG_END: u8 = 4;

const VALUE_NULL: u8 = 0;
const VALUE_FALSE: u8 = 1;
const VALUE_TRUE: u8 = 2;
const VALUE_INT: u8 = 3;
const VALUE_FLOAT: u8 = 4;
const VALUE_STR: u8 = 5;
const VALUE_LIST: u8 = 6;

const FLAG_SAVEPOINT: u8 = 1;
const FLAG_STOP: u8 = 2;
const FLAG_DRAIN: u8 = 4;
const FLAG_UNALIGNED: u8 = 8;

/// An encoded, immutable run of stream elements, as sent on one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buffer {
    bytes: Vec<u8>,
    elements: u32,
}

impl Buffer {
    /// A buffer received from elsewhere: `elements` is the sender's count, informational only
    /// (decoding reads until the bytes end and does not trust it).
    pub fn from_parts(bytes: Vec<u8>, elements: u32) -> Buffer {
        Buffer { bytes, elements }
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, to send or to give back to a builder with [`BufferBuilder::recycle`].
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Number of elements the sender put in.
    pub fn elements(&self) -> u32 {
        self.elements
    }

    /// Encoded size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A reader over the elements.
    pub fn reader(&self) -> BufferReader<'_> {
        BufferReader::new(&self.bytes)
    }
}

/// Fills one buffer with encoded elements, up to a capacity in bytes.
#[derive(Clone, Debug)]
pub struct BufferBuilder {
    bytes: Vec<u8>,
    capacity_bytes: usize,
    elements: u32,
}

impl Default for BufferBuilder {
    /// A builder of [`SEGMENT_BYTES_DEFAULT`] bytes.
    fn default() -> BufferBuilder {
        BufferBuilder::new(SEGMENT_BYTES_DEFAULT)
    }
}

impl BufferBuilder {
    /// A builder whose buffers hold up to `capacity_bytes` (except an oversized record's).
    pub fn new(capacity_bytes: usize) -> BufferBuilder {
        assert!(capacity_bytes > 0, "a buffer needs room");
        BufferBuilder { bytes: Vec::new(), capacity_bytes, elements: 0 }
    }

    /// A builder of the configured segment size (`taskmanager.memory.segment-size`).
    pub fn from_config(config: &TaskManagerConfig) -> BufferBuilder {
        BufferBuilder::new(usize::try_from(config.segment_bytes).unwrap_or(usize::MAX))
    }

    /// Appends a record; `false` when it does not fit (flush, then push again: an empty builder
    /// accepts any record, see the module doc on oversized records).
    #[inline]
    pub fn push_record(&mut self, row: &[Value]) -> bool {
        let start = self.bytes.len();
        let slack = self.bytes.capacity().saturating_sub(NARROW_WINDOW_BYTES);
        if start + 2 + 3 * NARROW_FIELDS_MAX <= self.capacity_bytes.min(slack)
            && let Some((window, length)) = narrow_window(row)
        {
            self.append_window(window, length);
            return true;
        }
        // Rows of scalars (at most 11 bytes a value) that surely fit are encoded in one pass.
        if start + 11 * (row.len() + 1) <= self.capacity_bytes && row.iter().all(is_scalar) {
            if self.bytes.capacity() == 0 {
                self.bytes.reserve_exact(self.capacity_bytes);
            }
            if row.len() < 0x80 && row.iter().all(is_small_int) {
                self.encode_small_int_record(row);
            } else {
                self.encode_record(row);
            }
            debug_assert_eq!(self.bytes.len() - start, record_len(row), "record_len agrees with the encoder");
            return true;
        }
        let needed = record_len(row);
        if !self.make_room(needed) {
            return false;
        }
        self.encode_record(row);
        debug_assert_eq!(self.bytes.len() - start, needed, "record_len agrees with the encoder");
        true
    }

    /// Appends the rows of `rows` from row `from` on while they fit and the builder is not
    /// full; returns how many it appended (at least one when the builder was empty).
    #[inline]
    pub fn push_records(&mut self, rows: &RowBatch, from: usize) -> usize {
        let mut pushed = self.push_small_int_records(rows, from);
        for index in from + pushed..rows.len() {
            if !self.push_record(rows.row(index)) {
                break;
            }
            pushed += 1;
            if self.is_full() {
                break;
            }
        }
        pushed
    }

    /// The rows from `from` on that are small ints (see `encode_small_int_record`) and surely
    /// fit, in one tight loop; returns how many it appended.
    #[inline]
    fn push_small_int_records(&mut self, rows: &RowBatch, from: usize) -> usize {
        let width = rows.width();
        if width >= 0x80 || from >= rows.len() {
            return 0;
        }
        if self.bytes.capacity() == 0 {
            self.bytes.reserve_exact(self.capacity_bytes);
        }
        if (1..=NARROW_FIELDS_MAX).contains(&width) {
            return self.push_narrow_int_records(rows, from);
        }
        // A record of small ints takes at most 2 + 3 bytes a field.
        let room = self.capacity_bytes.saturating_sub(self.bytes.len()) / (2 + 3 * width);
        let end = rows.len().min(from + room);
        let mut index = from;
        while index < end {
            let row = rows.row(index);
            if !row.iter().all(is_small_int) {
                break;
            }
            self.encode_small_int_record(row);
            index += 1;
        }
        index - from
    }

    /// Rows of at most [`NARROW_FIELDS_MAX`] small ints: each record is put together in a
    /// 16-byte window on the stack and appended whole, then cut to its length (so the loop
    /// keeps nothing in memory it must reload); the window's slack is kept free in the bytes'
    /// capacity.
    #[inline]
    fn push_narrow_int_records(&mut self, rows: &RowBatch, from: usize) -> usize {
        let width = rows.width();
        let limit = self.capacity_bytes.min(self.bytes.capacity().saturating_sub(NARROW_WINDOW_BYTES));
        let room = limit.saturating_sub(self.bytes.len()) / (2 + 3 * width);
        let end = rows.len().min(from + room);
        let mut index = from;
        while index < end {
            let Some((window, length)) = narrow_window(rows.row(index)) else { break };
            self.append_window(window, length);
            index += 1;
        }
        index - from
    }

    /// Appends a record encoded by [`narrow_window`]; the bytes' capacity has the window's
    /// slack (checked by the callers).
    #[inline(always)]
    fn append_window(&mut self, window: u128, length: usize) {
        debug_assert!(self.bytes.capacity() - self.bytes.len() >= NARROW_WINDOW_BYTES);
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&window.to_le_bytes());
        self.bytes.truncate(start + length);
        self.elements += 1;
    }

    /// [`BufferBuilder::encode_record`] for a row of fewer than 128 ints of one or two varint
    /// bytes (the usual row): the same bytes, written a fixed-size piece at a time.
    #[inline(always)]
    fn encode_small_int_record(&mut self, row: &[Value]) {
        self.bytes.extend_from_slice(&[TAG_RECORD, row.len() as u8]);
        for value in row {
            let Value::Int(x) = value else { unreachable!("checked by is_small_int") };
            let zigzagged = zigzag(*x);
            if zigzagged < 0x80 {
                self.bytes.extend_from_slice(&[VALUE_INT, zigzagged as u8]);
            } else {
                self.bytes.extend_from_slice(&[VALUE_INT, zigzagged as u8 | 0x80, (zigzagged >> 7) as u8]);
            }
        }
        self.elements += 1;
    }

    #[inline(always)]
    fn encode_record(&mut self, row: &[Value]) {
        self.bytes.push(TAG_RECORD);
        put_varint(&mut self.bytes, row.len() as u64);
        for value in row {
            put_value(&mut self.bytes, value);
        }
        self.elements += 1;
    }

    /// Appends any element; `false` when it does not fit, as [`BufferBuilder::push_record`].
    pub fn push(&mut self, element: &StreamElement) -> bool {
        match element {
            StreamElement::Record(row) => self.push_record(row),
            StreamElement::Watermark(time) => self.push_event(9, |bytes| {
                bytes.push(TAG_WATERMARK);
                bytes.extend_from_slice(&time.to_le_bytes());
            }),
            StreamElement::Barrier(barrier) => {
                let needed = 2 + varint_len(barrier.checkpoint.0) + varint_len(barrier.triggered_at.0);
                self.push_event(needed, |bytes| put_barrier(bytes, barrier))
            }
            StreamElement::EndOfInput => self.push_event(1, |bytes| bytes.push(TAG_END)),
        }
    }

    fn push_event(&mut self, needed: usize, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        if !self.make_room(needed) {
            return false;
        }
        let start = self.bytes.len();
        encode(&mut self.bytes);
        debug_assert_eq!(self.bytes.len() - start, needed);
        self.elements += 1;
        true
    }

    /// Reserves `needed` bytes if they fit, or if the builder is empty (an oversized element).
    #[inline]
    fn make_room(&mut self, needed: usize) -> bool {
        let len = self.bytes.len();
        if len > 0 && len + needed > self.capacity_bytes {
            return false;
        }
        if self.bytes.capacity() - len < needed {
            let target = (len + needed).max(self.capacity_bytes);
            self.bytes.reserve_exact(target - len);
        }
        true
    }

    /// Takes the encoded elements out as a buffer and starts an empty one.
    pub fn finish(&mut self) -> Buffer {
        let elements = std::mem::take(&mut self.elements);
        Buffer { bytes: std::mem::take(&mut self.bytes), elements }
    }

    /// Gives the builder memory for its next buffer (a consumed buffer's bytes), so steady state
    /// does not allocate. Ignored when the builder already has memory or `bytes` is too small.
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.bytes.capacity() == 0 && bytes.capacity() >= self.capacity_bytes {
            bytes.clear();
            self.bytes = bytes;
        }
    }

    /// Whether no element was pushed since the last [`BufferBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.elements == 0
    }

    /// Whether the buffer reached its capacity (or holds an oversized record): send it now.
    pub fn is_full(&self) -> bool {
        self.bytes.len() >= self.capacity_bytes
    }

    /// Bytes encoded so far.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Elements pushed so far.
    pub fn elements(&self) -> u32 {
        self.elements
    }

    /// The capacity in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }
}

/// What [`BufferReader::next_into`] found; a record's values are in the caller's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementKind {
    /// A record, now in the row.
    Record,
    /// A watermark.
    Watermark(EventTime),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The end of the channel.
    EndOfInput,
}

/// A buffer that cannot be decoded, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside an element.
    #[error("byte {offset}: buffer ends inside {what}")]
    Truncated {
        /// Where the missing bytes should start.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A tag byte that names no element or value.
    #[error("byte {offset}: unknown {what} tag {tag:#04x}")]
    UnknownTag {
        /// Offset of the tag.
        offset: usize,
        /// `element` or `value`.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// A varint longer than 64 bits.
    #[error("byte {offset}: varint does not fit in 64 bits")]
    VarintOverflow {
        /// Offset of the varint.
        offset: usize,
    },
    /// A length or count larger than the bytes left could hold.
    #[error("byte {offset}: {what} of {length} but only {remaining} bytes are left")]
    LengthTooLarge {
        /// Offset of the length.
        offset: usize,
        /// What the length counts.
        what: &'static str,
        /// The length found.
        length: u64,
        /// Bytes left after it.
        remaining: usize,
    },
    /// A string that is not UTF-8.
    #[error("byte {offset}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string's bytes.
        offset: usize,
    },
    /// Lists nested deeper than [`LIST_DEPTH_MAX`].
    #[error("byte {offset}: lists nested deeper than {LIST_DEPTH_MAX}")]
    TooDeep {
        /// Offset of the list that is too deep.
        offset: usize,
    },
    /// Barrier flags with unknown bits or stop/drain without savepoint.
    #[error("byte {offset}: invalid barrier flags {flags:#04x}")]
    BarrierFlags {
        /// Offset of the flags byte.
        offset: usize,
        /// The byte found.
        flags: u8,
    },
}

/// Decodes the elements of one buffer, in order.
#[derive(Clone, Debug)]
pub struct BufferReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BufferReader<'a> {
    /// A reader from the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> BufferReader<'a> {
        BufferReader { bytes, position: 0 }
    }

    /// A reader from byte `position` (where an earlier reader stopped between elements).
    pub fn at(bytes: &'a [u8], position: usize) -> BufferReader<'a> {
        BufferReader { bytes, position: position.min(bytes.len()) }
    }

    /// Offset of the next element.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Whether every element was read.
    pub fn is_done(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// Decodes the next element; a record's values replace `row`'s (whose allocation is reused).
    /// `Ok(None)` at the end; after an error `row` is unspecified and the reader is exhausted.
    #[inline]
    pub fn next_into(&mut self, row: &mut Row) -> Result<Option<ElementKind>, DecodeError> {
        let Some(&tag) = self.bytes.get(self.position) else { return Ok(None) };
        let result = if tag == TAG_RECORD {
            // The hot path returns a constant kind, so nothing large moves through the stack.
            self.position += 1;
            match self.record(row) {
                Ok(()) => return Ok(Some(ElementKind::Record)),
                Err(error) => error,
            }
        } else {
            match self.event(tag) {
                Ok(kind) => return Ok(Some(kind)),
                Err(error) => error,
            }
        };
        self.position = self.bytes.len();
        Err(*result)
    }

    /// A record's fields into `row`, in place: an int field over an int slot writes only the
    /// number (rows of one shape decode without building values on the stack).
    #[inline(always)]
    fn record(&mut self, row: &mut Row) -> Step<()> {
        let count = self.length("field count")?;
        if row.len() != count {
            row.clear();
            row.resize(count, Value::Null);
        }
        self.fields(row)
    }

    /// A record's values into `slots`, in place (see [`BufferReader::record`]).
    #[inline(always)]
    fn fields(&mut self, slots: &mut [Value]) -> Step<()> {
        for slot in slots.iter_mut() {
            match self.small_int() {
                Some(x) => match slot {
                    Value::Int(old) => *old = x,
                    other => *other = Value::Int(x),
                },
                None => *slot = self.value(0)?,
            }
        }
        Ok(())
    }

    /// Decodes the records from here on into `batch`, appending (an empty batch takes the width
    /// of the first record), and stops before anything but a record, before a record of another
    /// width, at the end of the bytes or after `max_records`. Returns how many it appended.
    ///
    /// A record that does not decode ends the batch before it when records were appended, so
    /// they are delivered and the next call reports the error; with none appended it is the
    /// error, and the reader is exhausted (as [`BufferReader::next_into`]).
    #[inline]
    pub fn next_records_into(&mut self, batch: &mut RowBatch, max_records: usize) -> Result<usize, DecodeError> {
        let mut appended = 0;
        while appended < max_records && self.bytes.get(self.position) == Some(&TAG_RECORD) {
            if self.narrow_int_record(batch) {
                appended += 1;
                continue;
            }
            let start = self.position;
            self.position += 1;
            let fields = match self.length("field count") {
                Ok(fields) => fields,
                Err(error) => return self.stop_batch(start, appended, *error),
            };
            if batch.is_empty() {
                batch.start(fields);
            } else if fields != batch.width() {
                self.position = start;
                break;
            }
            if let Err(error) = self.fields(batch.push_slots()) {
                batch.truncate(batch.len() - 1);
                return self.stop_batch(start, appended, *error);
            }
            appended += 1;
        }
        Ok(appended)
    }

    /// A record of at most [`NARROW_FIELDS_MAX`] small ints at the current position, of the
    /// batch's width (any when the batch is empty), read from one 16-byte window into a new row
    /// of `batch`; `false`, with nothing changed, for anything else (the general path decides).
    #[inline(always)]
    fn narrow_int_record(&mut self, batch: &mut RowBatch) -> bool {
        let start = self.position;
        let Some(window) = self.bytes.get(start..start + NARROW_WINDOW_BYTES) else { return false };
        let width = usize::from(window[1]);
        let fits = if batch.is_empty() { (1..=NARROW_FIELDS_MAX).contains(&width) } else { width == batch.width() };
        if window[0] != TAG_RECORD || !fits || width > NARROW_FIELDS_MAX {
            return false;
        }
        let (mut ints, mut length) = ([0i64; NARROW_FIELDS_MAX], 2);
        for int in ints.iter_mut().take(width) {
            let (tag, low, high) = (window[length], window[length + 1], window[length + 2]);
            if tag != VALUE_INT {
                return false;
            }
            if low < 0x80 {
                *int = unzigzag(u64::from(low));
                length += 2;
            } else if high < 0x80 {
                *int = unzigzag(u64::from(low & 0x7f) | u64::from(high) << 7);
                length += 3;
            } else {
                return false;
            }
        }
        if batch.is_empty() {
            batch.start(width);
        }
        for (slot, &x) in batch.push_slots().iter_mut().zip(&ints) {
            match slot {
                Value::Int(old) => *old = x,
                other => *other = Value::Int(x),
            }
        }
        self.position = start + length;
        true
    }

    /// Ends a batch at a record that does not decode (see [`BufferReader::next_records_into`]).
    #[cold]
    fn stop_batch(&mut self, record_start: usize, appended: usize, error: DecodeError) -> Result<usize, DecodeError> {
        if appended > 0 {
            self.position = record_start;
            return Ok(appended);
        }
        self.position = self.bytes.len();
        Err(error)
    }

    /// Any element but a record, whose tag is at the current position.
    fn event(&mut self, tag: u8) -> Step<ElementKind> {
        let offset = self.position;
        self.position += 1;
        match tag {
            TAG_WATERMARK => Ok(ElementKind::Watermark(EventTime::from_le_bytes(self.eight("watermark")?))),
            TAG_BARRIER => self.barrier().map(ElementKind::Barrier),
            TAG_END => Ok(ElementKind::EndOfInput),
            tag => fail(DecodeError::UnknownTag { offset, what: "element", tag }),
        }
    }

    fn barrier(&mut self) -> Step<Barrier> {
        let checkpoint = CheckpointId(self.varint()?);
        let triggered_at = Time(self.varint()?);
        let offset = self.position;
        let flags = self.byte("barrier flags")?;
        let known = FLAG_SAVEPOINT | FLAG_STOP | FLAG_DRAIN | FLAG_UNALIGNED;
        let savepoint = flags & FLAG_SAVEPOINT != 0;
        if flags & !known != 0 || (!savepoint && flags & (FLAG_STOP | FLAG_DRAIN) != 0) {
            return fail(DecodeError::BarrierFlags { offset, flags });
        }
        let kind = if savepoint {
            BarrierKind::Savepoint { stop: flags & FLAG_STOP != 0, drain: flags & FLAG_DRAIN != 0 }
        } else {
            BarrierKind::Checkpoint
        };
        Ok(Barrier { checkpoint, triggered_at, kind, unaligned: flags & FLAG_UNALIGNED != 0 })
    }

    /// An int value whose varint is one or two bytes (|x| < 8192), the common case; `None`
    /// leaves the position alone for [`BufferReader::value`].
    #[inline(always)]
    fn small_int(&mut self) -> Option<i64> {
        let rest = self.bytes.get(self.position..)?;
        match *rest {
            [VALUE_INT, low, ..] if low < 0x80 => {
                self.position += 2;
                Some(unzigzag(u64::from(low)))
            }
            [VALUE_INT, low, high, ..] if high < 0x80 => {
                self.position += 3;
                Some(unzigzag(u64::from(low & 0x7f) | u64::from(high) << 7))
            }
            _ => None,
        }
    }

    /// One value; scalars inline, strings and lists out of line.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Step<Value> {
        let offset = self.position;
        Ok(match self.byte("value tag")? {
            VALUE_INT => Value::Int(unzigzag(self.varint()?)),
            VALUE_NULL => Value::Null,
            VALUE_FALSE => Value::Bool(false),
            VALUE_TRUE => Value::Bool(true),
            VALUE_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(self.eight("float")?))),
            VALUE_STR => self.string()?,
            VALUE_LIST => self.list(offset, depth)?,
            tag => return fail(DecodeError::UnknownTag { offset, what: "value", tag }),
        })
    }

    #[inline(never)]
    fn string(&mut self) -> Step<Value> {
        let length = self.length("string length")?;
        let start = self.position;
        match std::str::from_utf8(self.take(length, "string")?) {
            Ok(text) => Ok(Value::Str(Arc::from(text))),
            Err(_) => fail(DecodeError::InvalidUtf8 { offset: start }),
        }
    }

    #[inline(never)]
    fn list(&mut self, offset: usize, depth: usize) -> Step<Value> {
        if depth >= LIST_DEPTH_MAX {
            return fail(DecodeError::TooDeep { offset });
        }
        let count = self.length("list count")?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::List(Arc::from(items)))
    }

    #[inline(always)]
    fn byte(&mut self, what: &'static str) -> Step<u8> {
        match self.bytes.get(self.position) {
            Some(&byte) => {
                self.position += 1;
                Ok(byte)
            }
            None => fail(DecodeError::Truncated { offset: self.position, what }),
        }
    }

    #[inline]
    fn take(&mut self, count: usize, what: &'static str) -> Step<&'a [u8]> {
        match self.bytes.get(self.position..).and_then(|rest| rest.get(..count)) {
            Some(slice) => {
                self.position += count;
                Ok(slice)
            }
            None => fail(DecodeError::Truncated { offset: self.position, what }),
        }
    }

    #[inline]
    fn eight(&mut self, what: &'static str) -> Step<[u8; 8]> {
        let mut out = [0u8; 8];
        out.copy_from_slice(self.take(8, what)?);
        Ok(out)
    }

    #[inline(always)]
    fn varint(&mut self) -> Step<u64> {
        match self.bytes.get(self.position) {
            Some(&byte) if byte < 0x80 => {
                self.position += 1;
                Ok(u64::from(byte))
            }
            _ => self.varint_slow(),
        }
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Step<u64> {
        let offset = self.position;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte("varint")?;
            if shift == 63 && byte > 1 {
                return fail(DecodeError::VarintOverflow { offset });
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        fail(DecodeError::VarintOverflow { offset })
    }

    /// A length or count, refused when larger than the bytes left (each unit takes ≥ 1 byte).
    #[inline]
    fn length(&mut self, what: &'static str) -> Step<usize> {
        let offset = self.position;
        let length = self.varint()?;
        let remaining = self.bytes.len() - self.position;
        if length > remaining as u64 {
            return fail(DecodeError::LengthTooLarge { offset, what, length, remaining });
        }
        Ok(length as usize)
    }
}

/// A decoding step: the error is boxed so the hot path moves small results.
type Step<T> = Result<T, Box<DecodeError>>;

#[cold]
#[inline(never)]
fn fail<T>(error: DecodeError) -> Step<T> {
    Err(Box::new(error))
}

impl Iterator for BufferReader<'_> {
    type Item = Result<StreamElement, DecodeError>;

    /// The next element as an owned [`StreamElement`] (allocates a row per record).
    fn next(&mut self) -> Option<Self::Item> {
        let mut row = Row::new();
        match self.next_into(&mut row) {
            Ok(None) => None,
            Ok(Some(kind)) => Some(Ok(kind.into_element(row))),
            Err(error) => Some(Err(error)),
        }
    }
}

impl ElementKind {
    /// The owned element, with `row` as a record's values.
    pub fn into_element(self, row: Row) -> StreamElement {
        match self {
            ElementKind::Record => StreamElement::Record(row),
            ElementKind::Watermark(time) => StreamElement::Watermark(time),
            ElementKind::Barrier(barrier) => StreamElement::Barrier(barrier),
            ElementKind::EndOfInput => StreamElement::EndOfInput,
        }
    }
}

#[inline]
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[inline]
fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; zero takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encoded size of a record element.
#[inline]
fn record_len(row: &[Value]) -> usize {
    1 + varint_len(row.len() as u64) + row.iter().map(|value| value_len(value, 0)).sum::<usize>()
}

/// A record of one to [`NARROW_FIELDS_MAX`] small ints (see [`is_small_int`]) encoded in a
/// 16-byte little-endian window, and its length; `None` for any other row. The window lives in
/// a register: bytes written to a stack array one at a time and read back as one 16-byte word
/// would stall store forwarding.
#[inline(always)]
fn narrow_window(row: &[Value]) -> Option<(u128, usize)> {
    if !(1..=NARROW_FIELDS_MAX).contains(&row.len()) {
        return None;
    }
    let mut window = u128::from(TAG_RECORD) | (row.len() as u128) << 8;
    let mut length = 2;
    for value in row {
        let zigzagged = match value {
            Value::Int(x) if zigzag(*x) < 1 << 14 => zigzag(*x),
            _ => return None,
        };
        let encoded = if zigzagged < 0x80 {
            u128::from(VALUE_INT) | u128::from(zigzagged) << 8
        } else {
            u128::from(VALUE_INT) | u128::from(zigzagged & 0x7f | 0x80) << 8 | u128::from(zigzagged >> 7) << 16
        };
        window |= encoded << (8 * length);
        length += if zigzagged < 0x80 { 2 } else { 3 };
    }
    Some((window, length))
}

/// An int whose zigzag varint takes one or two bytes (|x| < 8192).
#[inline(always)]
fn is_small_int(value: &Value) -> bool {
    matches!(value, Value::Int(x) if zigzag(*x) < 1 << 14)
}

#[inline(always)]
fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Str(_) | Value::List(_))
}

#[inline(always)]
fn value_len(value: &Value, depth: usize) -> usize {
    match value {
        Value::Int(x) => 1 + varint_len(zigzag(*x)),
        Value::Null | Value::Bool(_) => 1,
        Value::Float(_) => 9,
        Value::Str(text) => 1 + varint_len(text.len() as u64) + text.len(),
        Value::List(items) => list_len(items, depth),
    }
}

#[inline(never)]
fn list_len(items: &[Value], depth: usize) -> usize {
    assert!(depth < LIST_DEPTH_MAX, "lists nested deeper than {LIST_DEPTH_MAX} cannot be sent");
    1 + varint_len(items.len() as u64) + items.iter().map(|item| value_len(item, depth + 1)).sum::<usize>()
}

#[inline(always)]
fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Int(x) => {
            out.push(VALUE_INT);
            put_varint(out, zigzag(*x));
        }
        Value::Null => out.push(VALUE_NULL),
        Value::Bool(false) => out.push(VALUE_FALSE),
        Value::Bool(true) => out.push(VALUE_TRUE),
        Value::Float(x) => {
            out.push(VALUE_FLOAT);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Value::Str(text) => {
            out.push(VALUE_STR);
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        Value::List(items) => put_list(out, items),
    }
}

#[inline(never)]
fn put_list(out: &mut Vec<u8>, items: &[Value]) {
    out.push(VALUE_LIST);
    put_varint(out, items.len() as u64);
    for item in items {
        put_value(out, item);
    }
}

fn put_barrier(out: &mut Vec<u8>, barrier: &Barrier) {
    out.push(TAG_BARRIER);
    put_varint(out, barrier.checkpoint.0);
    put_varint(out, barrier.triggered_at.0);
    let mut flags = if barrier.unaligned { FLAG_UNALIGNED } else { 0 };
    if let BarrierKind::Savepoint { stop, drain } = barrier.kind {
        flags |= FLAG_SAVEPOINT;
        flags |= if stop { FLAG_STOP } else { 0 };
        flags |= if drain { FLAG_DRAIN } else { 0 };
    }
    out.push(flags);
}

//! The output side of one task for one job edge: records into per-channel buffers.
//!
//! Flush rules, as Flink's `RecordWriter` and output flusher: a channel's buffer is sent when
//! it is full, when [`RecordWriter::flush_due`] finds it open for at least the buffer timeout
//! (`execution.buffer-timeout.interval`, zero sends after every record, [`Duration::MAX`] never
//! on time), and always before a barrier or the end of input. Barriers and the end of input go
//! to every channel in a buffer of their own, right after the channel's pending records (Flink
//! sends events in their own buffers); watermarks go to every channel inside the record buffers,
//! in order, without forcing a flush (Flink serialises watermarks as stream elements too).
//!
//! Invariants: buffers come out of [`RecordWriter::poll_buffer`] in the order they were closed,
//! and per channel the elements keep the order they were emitted in. Nothing is emitted after
//! the end of input. The queue of closed buffers grows only until the driver drains it; the
//! driver drains it after every call (backpressure is the driver's: it stops feeding the task
//! while its channels lack credit).

use super::{Buffer, BufferBuilder};
use crate::dataflow::partition::{ChannelChoice, ChannelIndex, ChannelSelector};
use crate::dataflow::{Barrier, EventTime, StreamElement};
use crate::expr::EvalError;
use crate::row::{RowBatch, Value};
use crate::time::{Duration, Time};
use std::collections::VecDeque;

/// Counters of what a writer sent, for the task's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterMetrics {
    /// Records emitted (a broadcast record counts once, as Flink's `numRecordsOut`).
    pub records_out: u64,
    /// Bytes in the buffers closed so far, over all channels.
    pub bytes_out: u64,
    /// Buffers closed so far.
    pub buffers_out: u64,
}

/// Spreads one task's output for one edge over that edge's channels, in buffers.
#[derive(Debug)]
pub struct RecordWriter {
    selector: ChannelSelector,
    builders: Vec<BufferBuilder>,
    /// When the first element went into each non-empty builder.
    opened_at: Vec<Time>,
    ready: VecDeque<(ChannelIndex, Buffer)>,
    /// Memory of consumed buffers, reused by builders; at most one per channel.
    spare: Vec<Vec<u8>>,
    buffer_timeout: Duration,
    metrics: WriterMetrics,
    ended: bool,
    /// Scratch: the channel of each row of a batch.
    channels: Vec<u32>,
}

impl RecordWriter {
    /// A writer over `selector`'s channels with buffers of `capacity_bytes` each.
    pub fn new(selector: ChannelSelector, capacity_bytes: usize, buffer_timeout: Duration) -> RecordWriter {
        let channels = selector.channels() as usize;
        assert!(channels > 0, "a writer needs a channel");
        RecordWriter {
            selector,
            builders: (0..channels).map(|_| BufferBuilder::new(capacity_bytes)).collect(),
            opened_at: vec![Time::ZERO; channels],
            ready: VecDeque::new(),
            spare: Vec::new(),
            buffer_timeout,
            metrics: WriterMetrics::default(),
            ended: false,
            channels: Vec::new(),
        }
    }

    /// Sends `row` to the channel(s) its partitioner picks; fails when its key cannot be computed.
    #[inline]
    pub fn emit(&mut self, now: Time, row: &[Value]) -> Result<(), EvalError> {
        assert!(!self.ended, "a record after the end of input");
        match self.selector.select(row)? {
            ChannelChoice::One(channel) => self.push_to(now, channel.index(), |builder| builder.push_record(row)),
            ChannelChoice::All => {
                for channel in 0..self.builders.len() {
                    self.push_to(now, channel, |builder| builder.push_record(row));
                }
            }
        }
        self.metrics.records_out += 1;
        Ok(())
    }

    /// Sends the rows of `rows` in order, as many [`RecordWriter::emit`] calls would; with a
    /// single channel they are encoded in one pass, buffer by buffer.
    #[inline]
    pub fn emit_batch(&mut self, now: Time, rows: &RowBatch) -> Result<(), EvalError> {
        assert!(!self.ended, "a record after the end of input");
        if self.builders.len() > 1 || self.buffer_timeout == Duration::ZERO {
            return self.emit_batch_by_channel(now, rows);
        }
        // One channel: every partitioner sends every record to it.
        let mut done = 0;
        while done < rows.len() {
            if self.builders[0].is_empty() {
                self.opened_at[0] = now;
            }
            done += self.builders[0].push_records(rows, done);
            if done < rows.len() || self.builders[0].is_full() {
                self.flush(0);
            }
        }
        self.metrics.records_out += rows.len() as u64;
        Ok(())
    }

    /// [`RecordWriter::emit_batch`] over several channels: every row's channel first (their
    /// key hashes overlap), then the rows into their channels' buffers, in order.
    fn emit_batch_by_channel(&mut self, now: Time, rows: &RowBatch) -> Result<(), EvalError> {
        let mut channels = std::mem::take(&mut self.channels);
        let Some(chosen) = self.selector.select_batch(rows, &mut channels) else {
            self.channels = channels;
            for row in rows.iter() {
                self.emit(now, row)?;
            }
            return Ok(());
        };
        for (row, &channel) in rows.iter().zip(&channels) {
            self.push_to(now, channel as usize, |builder| builder.push_record(row));
        }
        self.metrics.records_out += channels.len() as u64;
        self.channels = channels;
        chosen
    }

    /// Sends a watermark to every channel, after the records already emitted.
    pub fn emit_watermark(&mut self, now: Time, watermark: EventTime) {
        assert!(!self.ended, "a watermark after the end of input");
        let element = StreamElement::Watermark(watermark);
        for channel in 0..self.builders.len() {
            self.push_to(now, channel, |builder| builder.push(&element));
        }
    }

    /// Flushes every channel and sends `barrier` to each in a buffer of its own.
    pub fn emit_barrier(&mut self, barrier: Barrier) {
        assert!(!self.ended, "a barrier after the end of input");
        self.broadcast_event(&StreamElement::Barrier(barrier));
    }

    /// Flushes every channel and ends each; nothing may be emitted afterwards.
    pub fn emit_end_of_input(&mut self) {
        assert!(!self.ended, "the end of input twice");
        self.broadcast_event(&StreamElement::EndOfInput);
        self.ended = true;
    }

    /// Emits any element by its kind (see the `emit_*` methods).
    pub fn emit_element(&mut self, now: Time, element: &StreamElement) -> Result<(), EvalError> {
        match element {
            StreamElement::Record(row) => self.emit(now, row)?,
            StreamElement::Watermark(watermark) => self.emit_watermark(now, *watermark),
            StreamElement::Barrier(barrier) => self.emit_barrier(*barrier),
            StreamElement::EndOfInput => self.emit_end_of_input(),
        }
        Ok(())
    }

    fn broadcast_event(&mut self, element: &StreamElement) {
        for channel in 0..self.builders.len() {
            self.flush(channel);
            let accepted = self.builders[channel].push(element);
            assert!(accepted, "an empty builder accepts any element");
            self.flush(channel);
        }
    }

    /// Appends to one channel's builder, closing it first when full and after when due.
    #[inline]
    fn push_to(&mut self, now: Time, channel: usize, mut push: impl FnMut(&mut BufferBuilder) -> bool) {
        if self.builders[channel].is_empty() {
            self.opened_at[channel] = now;
        }
        if !push(&mut self.builders[channel]) {
            self.flush(channel);
            self.opened_at[channel] = now;
            let accepted = push(&mut self.builders[channel]);
            assert!(accepted, "an empty builder accepts any element");
        }
        if self.buffer_timeout == Duration::ZERO || self.builders[channel].is_full() {
            self.flush(channel);
        }
    }

    /// Closes one channel's buffer, if it holds anything, and queues it.
    fn flush(&mut self, channel: usize) {
        let builder = &mut self.builders[channel];
        if builder.is_empty() {
            return;
        }
        let buffer = builder.finish();
        if let Some(bytes) = self.spare.pop() {
            builder.recycle(bytes);
        }
        self.metrics.bytes_out += buffer.len_bytes() as u64;
        self.metrics.buffers_out += 1;
        self.ready.push_back((ChannelIndex(channel as u32), buffer));
    }

    /// Closes every buffer open for at least the buffer timeout at `now`, in channel order.
    pub fn flush_due(&mut self, now: Time) {
        if self.buffer_timeout == Duration::MAX {
            return;
        }
        for channel in 0..self.builders.len() {
            if !self.builders[channel].is_empty() && now >= self.opened_at[channel].after(self.buffer_timeout) {
                self.flush(channel);
            }
        }
    }

    /// Closes every non-empty buffer, in channel order.
    pub fn flush_all(&mut self) {
        for channel in 0..self.builders.len() {
            self.flush(channel);
        }
    }

    /// When [`RecordWriter::flush_due`] next has something to do; `None` when nothing is open.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.buffer_timeout == Duration::MAX {
            return None;
        }
        let open = self.builders.iter().zip(&self.opened_at).filter(|(builder, _)| !builder.is_empty());
        open.map(|(_, opened)| opened.after(self.buffer_timeout)).min()
    }

    /// The next closed buffer and the channel it goes to, oldest first.
    pub fn poll_buffer(&mut self) -> Option<(ChannelIndex, Buffer)> {
        self.ready.pop_front()
    }

    /// Closed buffers not yet taken by [`RecordWriter::poll_buffer`].
    pub fn pending_buffers(&self) -> usize {
        self.ready.len()
    }

    /// Gives back a sent buffer's memory, so that steady state allocates nothing.
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if self.spare.len() < self.builders.len() {
            self.spare.push(bytes);
        }
    }

    /// What was sent so far.
    pub fn metrics(&self) -> WriterMetrics {
        self.metrics
    }

    /// The channel selector (its channel count and consumer range).
    pub fn selector(&self) -> &ChannelSelector {
        &self.selector
    }

    /// Whether the end of input was emitted.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

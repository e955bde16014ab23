//! A task's input gate: the channels from its producers, merged, with checkpoint barrier handling.
//!
//! This module owns what happens between "a buffer arrived on channel c" and "the operator sees a
//! record, a watermark, or the moment to snapshot". The driver feeds elements or whole buffers
//! with [`InputGate::push`] / [`InputGate::push_buffer`] and drains [`InputGate::poll_into`]
//! (or [`InputGate::poll`]) until it returns `None`.
//!
//! # Order
//!
//! Each channel is a FIFO. The gate reads one queued segment (a buffer or a single pushed
//! element) of a channel, then moves on to the next channel with data, round robin in the order
//! channels became readable (Flink's `inputChannelsWithData`). Barriers take effect when they
//! are read, not when pushed: an unaligned barrier does not jump the queue of its own channel
//! (weir's queues are as short as the driver's credits; Flink's priority path is left out).
//!
//! # Watermarks
//!
//! A channel's watermark only rises (a lower one is ignored); the gate's watermark is the
//! minimum over channels that have not ended, emitted only when it rises. An ended channel no
//! longer holds it back; when every channel has ended no watermark is emitted (sources end with
//! their own final watermark).
//!
//! # Checkpoints, per [`AlignmentMode`]
//!
//! - `ExactlyOnce` (Flink's `SingleCheckpointBarrierHandler`, aligned): a channel that delivered
//!   barrier n is blocked (its later data stays queued) until n arrived on every channel that
//!   has not ended; then `Checkpoint` is emitted (with no in-flight data) and all channels
//!   resume. So every record before barrier n on any channel precedes `Checkpoint(n)` and none
//!   after it does. With an aligned timeout, alignment that lasts past `barrier.triggered_at +
//!   timeout` switches to unaligned (Flink's `aligned-checkpoint-timeout`).
//! - `Unaligned` (and any barrier flagged `unaligned`): the first barrier n read triggers
//!   `Checkpoint` at once; no channel is blocked. The records and watermarks still before
//!   barrier n on the other channels are the checkpoint's in-flight data: those already queued
//!   in the gate are copied into `Checkpoint.in_flight` (and still delivered afterwards); those
//!   that arrive later are delivered and copied as they are read, and come out together in
//!   `CheckpointInFlight` once barrier n was read (or the end reached) on every channel. When the
//!   queues already held every channel's barrier, `in_flight_complete` is true and no
//!   `CheckpointInFlight` follows. Savepoints are always aligned, as in Flink.
//! - `AtLeastOnce` (Flink's `CheckpointBarrierTracker`): nothing blocks; `Checkpoint(n)` comes
//!   when barrier n was read on every channel that has not ended. Up to [`TRACKED_MAX`]
//!   checkpoints are tracked at once; completing n aborts older tracked ones.
//!
//! Stale barriers (of a checkpoint already completed, aborted or older than the current one) are
//! ignored. A newer barrier overtaking an unfinished checkpoint aborts it (`CheckpointAborted`,
//! the task declines it), as does [`InputGate::abort`] for that checkpoint or a newer one.
//! `EndOfInput` comes once, after every channel ended, and is the last output.
//!
//! # Bounds and cost
//!
//! Each channel queues at most `queue_limit` segments ([`QUEUE_SEGMENTS_DEFAULT`], so 64 buffers
//! of 32 KiB = 2 MiB a channel by default); a push beyond it is refused with the item handed
//! back ([`Refused`]), so a blocked channel backpressures its producer exactly as Flink's credits
//! do. In-flight copies exist only during unaligned checkpoints; those made after the trigger are
//! held until the last barrier arrives, so their size is what the producers send before their
//! barriers (Flink spills them to checkpoint storage as they come; weir keeps them in memory).
//! [`InputGate::poll_into`] decodes buffers straight into the caller's row, and
//! [`InputGate::poll_batch`] a run of records of one buffer into the caller's [`RowBatch`] (in
//! the order `poll_into` would give them, one output for the run): int rows pass the gate
//! without allocating.

mod barriers;
#[cfg(test)]
mod tests;

use super::buffer::{Buffer, BufferReader, DecodeError, ElementKind};
use super::partition::ChannelIndex;
use super::{Barrier, BarrierKind, EVENT_TIME_MIN, EventTime, StreamElement};
use crate::config::{CheckpointConfig, CheckpointingMode};
use crate::ids::CheckpointId;
use crate::row::{Row, RowBatch};
use crate::time::{Duration, Time};
use std::collections::VecDeque;
use std::fmt;

/// Default bound of queued segments (buffers or single elements) per channel.
pub const QUEUE_SEGMENTS_DEFAULT: usize = 64;

/// Most checkpoints tracked at once in at-least-once mode (Flink's `MAX_CHECKPOINTS_TO_TRACK`).
pub const TRACKED_MAX: usize = 50;

/// How barriers are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignmentMode {
    /// Aligned barriers: exactly-once.
    ExactlyOnce,
    /// No blocking: at-least-once.
    AtLeastOnce,
    /// Unaligned barriers: exactly-once, in-flight data becomes part of the snapshot.
    Unaligned,
}

impl AlignmentMode {
    /// The mode and aligned timeout the configuration asks for: unaligned with a zero timeout
    /// starts unaligned; with a positive one it starts aligned and switches after it.
    pub fn from_config(config: &CheckpointConfig) -> (AlignmentMode, Option<Duration>) {
        match (config.mode, config.unaligned) {
            (CheckpointingMode::AtLeastOnce, _) => (AlignmentMode::AtLeastOnce, None),
            (CheckpointingMode::ExactlyOnce, false) => (AlignmentMode::ExactlyOnce, None),
            (CheckpointingMode::ExactlyOnce, true) if config.aligned_checkpoint_timeout == Duration::ZERO => {
                (AlignmentMode::Unaligned, None)
            }
            (CheckpointingMode::ExactlyOnce, true) => {
                (AlignmentMode::ExactlyOnce, Some(config.aligned_checkpoint_timeout))
            }
        }
    }
}

/// In-flight data of an unaligned checkpoint: elements and the channel each was on.
pub type InFlight = Vec<(ChannelIndex, StreamElement)>;

/// What the gate hands the task. `R` is the record's payload: [`Row`] from [`InputGate::poll`],
/// `()` from [`InputGate::poll_into`] (the record is then in the caller's row).
#[derive(Clone, Debug, PartialEq)]
pub enum GateOutput<R = Row> {
    /// A record from `channel`.
    Record {
        /// The channel it came on.
        channel: ChannelIndex,
        /// The record (or `()`, see the type's doc).
        row: R,
    },
    /// The gate's watermark rose to this.
    Watermark(EventTime),
    /// Snapshot now: every record before this checkpoint's barriers that is not in `in_flight`
    /// (or a later `CheckpointInFlight`) has been delivered, and none after them.
    Checkpoint {
        /// The barrier; `unaligned` tells how it was taken.
        barrier: Barrier,
        /// In-flight data already known (unaligned only): delivered after this output too.
        in_flight: InFlight,
        /// Whether `in_flight` is all of it; if not, `CheckpointInFlight` or an abort follows.
        in_flight_complete: bool,
        /// From the first barrier to this output (blocked time when aligned).
        alignment: Duration,
    },
    /// The rest of an unaligned checkpoint's in-flight data; the snapshot is complete.
    CheckpointInFlight {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Elements copied after the `Checkpoint` output, in the order they were read.
        in_flight: InFlight,
    },
    /// This checkpoint will not be taken here (subsumed or aborted): decline it.
    CheckpointAborted {
        /// The checkpoint.
        checkpoint: CheckpointId,
    },
    /// Every channel has ended; nothing follows.
    EndOfInput,
}

impl<R> GateOutput<R> {
    /// The same output with a record's payload replaced.
    pub fn map_row<S>(self, f: impl FnOnce(R) -> S) -> GateOutput<S> {
        match self {
            GateOutput::Record { channel, row } => GateOutput::Record { channel, row: f(row) },
            GateOutput::Watermark(time) => GateOutput::Watermark(time),
            GateOutput::Checkpoint { barrier, in_flight, in_flight_complete, alignment } => {
                GateOutput::Checkpoint { barrier, in_flight, in_flight_complete, alignment }
            }
            GateOutput::CheckpointInFlight { checkpoint, in_flight } => {
                GateOutput::CheckpointInFlight { checkpoint, in_flight }
            }
            GateOutput::CheckpointAborted { checkpoint } => GateOutput::CheckpointAborted { checkpoint },
            GateOutput::EndOfInput => GateOutput::EndOfInput,
        }
    }
}

/// Why a push was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// No channel of that index.
    NoSuchChannel,
    /// The channel already ended.
    Ended,
    /// The channel's queue is at its limit: poll first (backpressure).
    Full {
        /// The limit, in segments.
        limit: usize,
    },
}

/// A push the gate did not take, with the item handed back.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused<T> {
    /// The channel pushed to.
    pub channel: ChannelIndex,
    /// Why.
    pub reason: RefusalReason,
    /// What was pushed.
    pub item: T,
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RefusalReason::NoSuchChannel => write!(f, "no input channel {}", self.channel),
            RefusalReason::Ended => write!(f, "input channel {} already ended", self.channel),
            RefusalReason::Full { limit } => write!(f, "input channel {} holds its limit of {limit}", self.channel),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for Refused<T> {}

/// A channel delivered something that cannot be processed; the task should fail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// A buffer that does not decode; the rest of that buffer is dropped.
    #[error("input channel {channel}: {error}")]
    Decode {
        /// The channel.
        channel: ChannelIndex,
        /// What is wrong with the buffer.
        error: DecodeError,
    },
    /// Data queued behind a channel's end of input; it is dropped.
    #[error("input channel {channel}: data after the end of input")]
    DataAfterEnd {
        /// The channel.
        channel: ChannelIndex,
    },
}

/// Counters for the task's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateMetrics {
    /// Records delivered.
    pub records_in: u64,
    /// Checkpoints emitted.
    pub checkpoints: u64,
    /// Checkpoints aborted.
    pub checkpoints_aborted: u64,
    /// Aligned checkpoints that timed out and went unaligned.
    pub switched_to_unaligned: u64,
    /// Alignment of the last checkpoint.
    pub alignment_last: Duration,
    /// Alignment summed over all checkpoints.
    pub alignment_total: Duration,
}

/// Queued input of one channel.
#[derive(Debug)]
enum Segment {
    Element(StreamElement),
    Buffer { bytes: Vec<u8>, offset: usize },
}

#[derive(Debug)]
struct Channel {
    queue: VecDeque<Segment>,
    watermark: EventTime,
    /// An end of input was read (`ended`) or pushed as an element (`end_pushed`).
    ended: bool,
    end_pushed: bool,
    /// Held back by an aligned checkpoint: not read until it completes.
    blocked: bool,
    /// In `InputGate::readable`.
    listed: bool,
    /// Elements read so far; with `captured_until`, which were already copied as in-flight.
    read: u64,
    captured_until: u64,
}

impl Channel {
    fn new() -> Channel {
        Channel {
            queue: VecDeque::new(),
            watermark: EVENT_TIME_MIN,
            ended: false,
            end_pushed: false,
            blocked: false,
            listed: false,
            read: 0,
            captured_until: 0,
        }
    }
}

/// The checkpoint in progress (exactly-once and unaligned modes).
#[derive(Debug)]
enum Pending {
    Idle,
    /// Aligned: channels that delivered the barrier are blocked.
    Aligning {
        barrier: Barrier,
        started: Time,
        arrived: Vec<bool>,
    },
    /// Unaligned, triggered: copying in-flight data until every channel delivered the barrier.
    Capturing {
        barrier: Barrier,
        arrived: Vec<bool>,
        in_flight: InFlight,
        report: bool,
    },
}

/// A checkpoint counted by the at-least-once tracker.
#[derive(Debug)]
struct Tracked {
    barrier: Barrier,
    started: Time,
    arrived: Vec<bool>,
}

/// The input channels of one task, merged, with barrier handling (see the module doc).
#[derive(Debug)]
pub struct InputGate {
    channels: Vec<Channel>,
    /// Channels with data that are not blocked, in the order they will be read.
    readable: VecDeque<usize>,
    mode: AlignmentMode,
    aligned_timeout: Option<Duration>,
    queue_limit: usize,
    pending: Pending,
    tracked: VecDeque<Tracked>,
    /// Highest checkpoint started, aborted or completed; its and older barriers are stale.
    checkpoint_latest: Option<CheckpointId>,
    watermark: EventTime,
    outputs: VecDeque<GateOutput<()>>,
    /// Scratch row for [`InputGate::poll`].
    scratch: Row,
    now_last: Time,
    ended_count: usize,
    end_emitted: bool,
    metrics: GateMetrics,
}

impl InputGate {
    /// A gate over `channels` input channels.
    pub fn new(channels: usize, mode: AlignmentMode) -> InputGate {
        assert!(channels > 0, "a gate needs a channel");
        InputGate {
            channels: (0..channels).map(|_| Channel::new()).collect(),
            readable: VecDeque::with_capacity(channels),
            mode,
            aligned_timeout: None,
            queue_limit: QUEUE_SEGMENTS_DEFAULT,
            pending: Pending::Idle,
            tracked: VecDeque::new(),
            checkpoint_latest: None,
            watermark: EVENT_TIME_MIN,
            outputs: VecDeque::new(),
            scratch: Row::new(),
            now_last: Time::ZERO,
            ended_count: 0,
            end_emitted: false,
            metrics: GateMetrics::default(),
        }
    }

    /// A gate configured as `config` asks (see [`AlignmentMode::from_config`]).
    pub fn from_config(channels: usize, config: &CheckpointConfig) -> InputGate {
        let (mode, timeout) = AlignmentMode::from_config(config);
        InputGate::new(channels, mode).with_aligned_timeout(timeout)
    }

    /// Switches aligned checkpoints to unaligned once `barrier.triggered_at + timeout` passes
    /// during alignment; `None` never switches. Ignored in at-least-once mode.
    pub fn with_aligned_timeout(mut self, timeout: Option<Duration>) -> InputGate {
        self.aligned_timeout = timeout;
        self
    }

    /// Sets how many segments (buffers or single elements) a channel may queue.
    pub fn with_queue_limit(mut self, segments: usize) -> InputGate {
        assert!(segments > 0, "a channel must queue something");
        self.queue_limit = segments;
        self
    }

    /// Queues one element on `channel`.
    pub fn push(&mut self, channel: ChannelIndex, element: StreamElement) -> Result<(), Refused<StreamElement>> {
        if let Err(reason) = self.check_push(channel) {
            return Err(Refused { channel, reason, item: element });
        }
        let state = &mut self.channels[channel.index()];
        state.end_pushed |= element == StreamElement::EndOfInput;
        state.queue.push_back(Segment::Element(element));
        self.list(channel.index());
        Ok(())
    }

    /// Queues a buffer received on `channel`; an empty buffer is accepted and dropped.
    pub fn push_buffer(&mut self, channel: ChannelIndex, buffer: Buffer) -> Result<(), Refused<Buffer>> {
        if let Err(reason) = self.check_push(channel) {
            return Err(Refused { channel, reason, item: buffer });
        }
        if !buffer.is_empty() {
            self.channels[channel.index()].queue.push_back(Segment::Buffer { bytes: buffer.into_bytes(), offset: 0 });
            self.list(channel.index());
        }
        Ok(())
    }

    /// Whether a push to `channel` would be taken now.
    pub fn can_accept(&self, channel: ChannelIndex) -> bool {
        self.check_push(channel).is_ok()
    }

    fn check_push(&self, channel: ChannelIndex) -> Result<(), RefusalReason> {
        let state = self.channels.get(channel.index()).ok_or(RefusalReason::NoSuchChannel)?;
        if state.ended || state.end_pushed {
            return Err(RefusalReason::Ended);
        }
        if state.queue.len() >= self.queue_limit {
            return Err(RefusalReason::Full { limit: self.queue_limit });
        }
        Ok(())
    }

    /// The next output, with a record's values put in `row` (its allocation reused); `None`
    /// when nothing can be read now. `now` never goes backwards.
    #[inline]
    pub fn poll_into(&mut self, now: Time, row: &mut Row) -> Result<Option<GateOutput<()>>, GateError> {
        assert!(now >= self.now_last, "time went backwards: {now} after {}", self.now_last);
        self.now_last = now;
        self.check_aligned_timeout(now);
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Ok(Some(output));
            }
            let Some(&channel) = self.readable.front() else { return Ok(None) };
            match self.read(channel, row)? {
                ElementKind::Record => {
                    self.metrics.records_in += 1;
                    self.capture(channel, || StreamElement::Record(row.clone()));
                    return Ok(Some(GateOutput::Record { channel: ChannelIndex(channel as u32), row: () }));
                }
                ElementKind::Watermark(time) => self.on_watermark(channel, time),
                ElementKind::Barrier(barrier) => self.on_barrier(now, channel, barrier),
                ElementKind::EndOfInput => self.on_end(now, channel)?,
            }
        }
    }

    /// As [`InputGate::poll_into`], but a `Record` output stands for up to `max_records`
    /// records of `channel`, now in `batch` (its slots reused): the records that follow one
    /// another in one buffer, up to the next element that is not a record or a record of
    /// another width. The order of everything is that of `poll_into`. While an unaligned
    /// checkpoint copies in-flight records the batches hold one record each.
    pub fn poll_batch(
        &mut self,
        now: Time,
        batch: &mut RowBatch,
        max_records: usize,
    ) -> Result<Option<GateOutput<()>>, GateError> {
        assert!(max_records > 0, "a batch holds at least one record");
        assert!(now >= self.now_last, "time went backwards: {now} after {}", self.now_last);
        self.now_last = now;
        self.check_aligned_timeout(now);
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Ok(Some(output));
            }
            let Some(&channel) = self.readable.front() else { return Ok(None) };
            let record = GateOutput::Record { channel: ChannelIndex(channel as u32), row: () };
            if !matches!(self.pending, Pending::Capturing { .. }) {
                let read = self.read_records(channel, batch, max_records)?;
                if read > 0 {
                    self.metrics.records_in += read as u64;
                    return Ok(Some(record));
                }
            }
            let mut row = std::mem::take(&mut self.scratch);
            let read = self.read(channel, &mut row);
            if let Ok(ElementKind::Record) = read {
                self.metrics.records_in += 1;
                self.capture(channel, || StreamElement::Record(row.clone()));
                batch.start(row.len());
                batch.push(&row);
            }
            self.scratch = row;
            match read? {
                ElementKind::Record => return Ok(Some(record)),
                ElementKind::Watermark(time) => self.on_watermark(channel, time),
                ElementKind::Barrier(barrier) => self.on_barrier(now, channel, barrier),
                ElementKind::EndOfInput => self.on_end(now, channel)?,
            }
        }
    }

    /// Reads the records at the front of `channel`'s front buffer into `batch`; zero when
    /// something else is at the front.
    #[inline]
    fn read_records(&mut self, channel: usize, batch: &mut RowBatch, max_records: usize) -> Result<usize, GateError> {
        let state = &mut self.channels[channel];
        debug_assert!(state.listed && !state.blocked && !state.ended);
        let Some(Segment::Buffer { bytes, offset }) = state.queue.front_mut() else { return Ok(0) };
        let mut reader = BufferReader::at(bytes, *offset);
        batch.truncate(0);
        let read = match reader.next_records_into(batch, max_records) {
            Ok(read) => read,
            Err(error) => {
                state.queue.pop_front();
                self.after_segment(channel);
                return Err(GateError::Decode { channel: ChannelIndex(channel as u32), error });
            }
        };
        *offset = reader.position();
        state.read += read as u64;
        if read > 0 && reader.is_done() {
            state.queue.pop_front();
            self.after_segment(channel);
        }
        Ok(read)
    }

    /// As [`InputGate::poll_into`], with each record in a row of its own (allocates per record).
    pub fn poll(&mut self, now: Time) -> Result<Option<GateOutput>, GateError> {
        let mut row = std::mem::take(&mut self.scratch);
        match self.poll_into(now, &mut row) {
            Ok(Some(GateOutput::Record { channel, row: () })) => Ok(Some(GateOutput::Record { channel, row })),
            other => {
                self.scratch = row;
                // Not a record: the closure is never called.
                other.map(|output| output.map(|output| output.map_row(|()| Row::new())))
            }
        }
    }

    /// Reads the front element of `channel`, keeping the readable list in order.
    #[inline]
    fn read(&mut self, channel: usize, row: &mut Row) -> Result<ElementKind, GateError> {
        let state = &mut self.channels[channel];
        debug_assert!(state.listed && !state.blocked && !state.ended);
        let (kind, segment_done) = match state.queue.front_mut() {
            Some(Segment::Element(element)) => (take_element(element, row), true),
            Some(Segment::Buffer { bytes, offset }) => {
                let mut reader = BufferReader::at(bytes, *offset);
                match reader.next_into(row) {
                    Ok(Some(kind)) => {
                        *offset = reader.position();
                        (kind, reader.is_done())
                    }
                    Ok(None) => unreachable!("empty buffers are never queued, finished ones are popped"),
                    Err(error) => {
                        state.queue.pop_front();
                        self.after_segment(channel);
                        return Err(GateError::Decode { channel: ChannelIndex(channel as u32), error });
                    }
                }
            }
            None => unreachable!("a listed channel has data"),
        };
        state.read += 1;
        if segment_done {
            state.queue.pop_front();
            self.after_segment(channel);
        }
        Ok(kind)
    }

    /// After a segment of the front channel was used up: unlist it if empty, else rotate.
    fn after_segment(&mut self, channel: usize) {
        debug_assert_eq!(self.readable.front(), Some(&channel));
        self.readable.pop_front();
        if self.channels[channel].queue.is_empty() {
            self.channels[channel].listed = false;
        } else {
            self.readable.push_back(channel);
        }
    }

    /// Puts `channel` in the readable list if it has data and may be read.
    fn list(&mut self, channel: usize) {
        let state = &mut self.channels[channel];
        if !state.listed && !state.blocked && !state.ended && !state.queue.is_empty() {
            state.listed = true;
            self.readable.push_back(channel);
        }
    }

    /// Takes `channel` out of the readable list (it was blocked or ended).
    fn unlist(&mut self, channel: usize) {
        if self.channels[channel].listed {
            self.channels[channel].listed = false;
            self.readable.retain(|&listed| listed != channel);
        }
    }

    /// The gate's current watermark.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Whether `channel` is held back by an aligned checkpoint.
    pub fn is_blocked(&self, channel: ChannelIndex) -> bool {
        self.channels.get(channel.index()).is_some_and(|state| state.blocked)
    }

    /// Segments queued on `channel`.
    pub fn queued(&self, channel: ChannelIndex) -> usize {
        self.channels.get(channel.index()).map_or(0, |state| state.queue.len())
    }

    /// Number of input channels.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// The mode barriers are handled in.
    pub fn mode(&self) -> AlignmentMode {
        self.mode
    }

    /// Counters for metrics.
    pub fn metrics(&self) -> GateMetrics {
        self.metrics
    }

    /// Whether every channel has ended and the end was delivered.
    pub fn is_finished(&self) -> bool {
        self.end_emitted && self.outputs.is_empty()
    }
}

/// Moves a queued element out, its record's values into `row`.
fn take_element(element: &mut StreamElement, row: &mut Row) -> ElementKind {
    match std::mem::replace(element, StreamElement::EndOfInput) {
        StreamElement::Record(values) => {
            *row = values;
            ElementKind::Record
        }
        StreamElement::Watermark(time) => ElementKind::Watermark(time),
        StreamElement::Barrier(barrier) => ElementKind::Barrier(barrier),
        StreamElement::EndOfInput => ElementKind::EndOfInput,
    }
}

/// Whether a barrier is taken unaligned in `mode`: savepoints never are (as in Flink).
fn is_unaligned(mode: AlignmentMode, barrier: &Barrier) -> bool {
    barrier.kind == BarrierKind::Checkpoint
        && match mode {
            AlignmentMode::AtLeastOnce => false,
            AlignmentMode::Unaligned => true,
            AlignmentMode::ExactlyOnce => barrier.unaligned,
        }
}

//! What the [`InputGate`] does with watermarks, barriers and ends of input once it reads them.
//!
//! The rules are in the parent module's doc; this file is their mechanism. Every path that ends
//! a checkpoint (complete, subsumed, aborted, timed out) leaves `pending` idle and every channel
//! unblocked, so a stuck alignment can never outlive its checkpoint.

use super::{
    AlignmentMode, BarrierKind, ChannelIndex, GateError, GateOutput, InFlight, InputGate, Pending, Segment,
    TRACKED_MAX, Tracked, is_unaligned,
};
use crate::dataflow::buffer::BufferReader;
use crate::dataflow::{Barrier, EventTime, StreamElement};
use crate::ids::CheckpointId;
use crate::row::Row;
use crate::time::{Duration, Time};

/// What scanning a queued element for in-flight data found.
enum Scan {
    /// Data before the barrier: copy it.
    Copy(StreamElement),
    /// A stale barrier: not data, keep going.
    Skip,
    /// The channel's barrier (`true`) or end (`true`), or a newer barrier (`false`).
    Stop(bool),
}

fn scan(element: StreamElement, checkpoint: CheckpointId) -> Scan {
    match element {
        StreamElement::Record(_) | StreamElement::Watermark(_) => Scan::Copy(element),
        StreamElement::Barrier(barrier) if barrier.checkpoint < checkpoint => Scan::Skip,
        StreamElement::Barrier(barrier) => Scan::Stop(barrier.checkpoint == checkpoint),
        StreamElement::EndOfInput => Scan::Stop(true),
    }
}

impl InputGate {
    pub(super) fn on_watermark(&mut self, channel: usize, time: EventTime) {
        self.capture(channel, || StreamElement::Watermark(time));
        let state = &mut self.channels[channel];
        if time > state.watermark {
            state.watermark = time;
            self.advance_watermark();
        }
    }

    /// Emits the minimum watermark over channels that have not ended, if it rose.
    fn advance_watermark(&mut self) {
        let minimum = self.channels.iter().filter(|state| !state.ended).map(|state| state.watermark).min();
        if let Some(minimum) = minimum.filter(|&minimum| minimum > self.watermark) {
            self.watermark = minimum;
            self.outputs.push_back(GateOutput::Watermark(minimum));
        }
    }

    /// Copies an element just read from `channel` into an unaligned checkpoint's in-flight data
    /// when it lies before that channel's barrier and was not copied when the checkpoint began.
    #[inline]
    pub(super) fn capture(&mut self, channel: usize, element: impl FnOnce() -> StreamElement) {
        if let Pending::Capturing { arrived, in_flight, .. } = &mut self.pending {
            let state = &self.channels[channel];
            if !arrived[channel] && state.read > state.captured_until {
                in_flight.push((ChannelIndex(channel as u32), element()));
            }
        }
    }

    pub(super) fn on_barrier(&mut self, now: Time, channel: usize, barrier: Barrier) {
        match self.mode {
            AlignmentMode::AtLeastOnce => self.track(now, channel, barrier),
            AlignmentMode::ExactlyOnce | AlignmentMode::Unaligned => self.align(now, channel, barrier),
        }
    }

    /// Exactly-once and unaligned: one checkpoint at a time, newer barriers subsume older ones.
    fn align(&mut self, now: Time, channel: usize, barrier: Barrier) {
        let id = barrier.checkpoint;
        if let Some(current) = self.pending_id() {
            if id < current {
                return; // A barrier of a checkpoint already aborted.
            }
            if id > current {
                self.abort_pending();
            }
        }
        if !matches!(self.pending, Pending::Idle) {
            self.arrive(now, channel);
            return;
        }
        if self.checkpoint_latest.is_some_and(|latest| id <= latest) {
            return; // Completed or aborted already.
        }
        self.checkpoint_latest = Some(id);
        let mut arrived = vec![false; self.channels.len()];
        arrived[channel] = true;
        if is_unaligned(self.mode, &barrier) {
            self.trigger_unaligned(now, barrier, arrived, now);
        } else {
            self.pending = Pending::Aligning { barrier, started: now, arrived };
            self.block(channel);
            self.complete_alignment(now);
            self.check_aligned_timeout(now);
        }
    }

    /// Barrier of the pending checkpoint read on `channel`.
    fn arrive(&mut self, now: Time, channel: usize) {
        match &mut self.pending {
            Pending::Aligning { arrived, .. } => {
                debug_assert!(!arrived[channel], "a blocked channel is not read");
                arrived[channel] = true;
                self.block(channel);
                self.complete_alignment(now);
            }
            Pending::Capturing { arrived, .. } => {
                arrived[channel] = true;
                self.finish_capture();
            }
            Pending::Idle => unreachable!("arrive needs a pending checkpoint"),
        }
    }

    fn all_arrived(&self, arrived: &[bool]) -> bool {
        self.channels.iter().zip(arrived).all(|(state, &arrived)| arrived || state.ended)
    }

    /// Aligned: triggers once every open channel delivered the barrier.
    fn complete_alignment(&mut self, now: Time) {
        let Pending::Aligning { arrived, .. } = &self.pending else { return };
        if !self.all_arrived(arrived) {
            return;
        }
        let Pending::Aligning { barrier, started, .. } = std::mem::replace(&mut self.pending, Pending::Idle) else {
            unreachable!("checked above")
        };
        self.unblock_all();
        self.emit_checkpoint(barrier, InFlight::new(), true, now.since(started));
    }

    /// Snapshot now, unaligned: copies what is queued before the barrier on channels that have
    /// not delivered it, and keeps copying what they deliver until they do.
    fn trigger_unaligned(&mut self, now: Time, mut barrier: Barrier, arrived: Vec<bool>, started: Time) {
        self.unblock_all();
        barrier.unaligned = true;
        let mut in_flight = InFlight::new();
        let mut complete = true;
        for (channel, &done) in arrived.iter().enumerate() {
            if !done && !self.channels[channel].ended {
                complete &= self.scan_in_flight(channel, barrier.checkpoint, &mut in_flight);
            }
        }
        self.emit_checkpoint(barrier, in_flight, complete, now.since(started));
        self.pending = Pending::Capturing { barrier, arrived, in_flight: InFlight::new(), report: !complete };
        self.finish_capture();
    }

    /// Copies the data queued on `channel` before its barrier for `checkpoint`; `true` when the
    /// barrier (or the end) was found, so nothing more will be in flight on it.
    fn scan_in_flight(&mut self, channel: usize, checkpoint: CheckpointId, out: &mut InFlight) -> bool {
        let state = &mut self.channels[channel];
        let mut scanned = 0u64;
        let mut row = Row::new();
        let mut found = false;
        'segments: for segment in &state.queue {
            let mut reader = match segment {
                Segment::Element(element) => {
                    match scan(element.clone(), checkpoint) {
                        Scan::Copy(element) => out.push((ChannelIndex(channel as u32), element)),
                        Scan::Skip => {}
                        Scan::Stop(barrier_found) => {
                            found = barrier_found;
                            break 'segments;
                        }
                    }
                    scanned += 1;
                    continue;
                }
                Segment::Buffer { bytes, offset } => BufferReader::at(bytes, *offset),
            };
            // An undecodable buffer ends the scan; reading it later reports the error.
            while let Ok(Some(kind)) = reader.next_into(&mut row) {
                match scan(kind.into_element(std::mem::take(&mut row)), checkpoint) {
                    Scan::Copy(element) => out.push((ChannelIndex(channel as u32), element)),
                    Scan::Skip => {}
                    Scan::Stop(barrier_found) => {
                        found = barrier_found;
                        break 'segments;
                    }
                }
                scanned += 1;
            }
            if !reader.is_done() {
                break;
            }
        }
        state.captured_until = state.read + scanned;
        found
    }

    /// Unaligned: the checkpoint is complete once every open channel delivered the barrier.
    fn finish_capture(&mut self) {
        let Pending::Capturing { arrived, .. } = &self.pending else { return };
        if !self.all_arrived(arrived) {
            return;
        }
        let Pending::Capturing { barrier, in_flight, report, .. } = std::mem::replace(&mut self.pending, Pending::Idle)
        else {
            unreachable!("checked above")
        };
        if report {
            self.outputs.push_back(GateOutput::CheckpointInFlight { checkpoint: barrier.checkpoint, in_flight });
        } else {
            debug_assert!(in_flight.is_empty(), "all in-flight data was copied when the checkpoint began");
        }
    }

    /// At-least-once: counts barriers per checkpoint without blocking.
    fn track(&mut self, now: Time, channel: usize, barrier: Barrier) {
        let id = barrier.checkpoint;
        let index = match self.tracked.iter().position(|tracked| tracked.barrier.checkpoint == id) {
            Some(index) => index,
            None => {
                if self.checkpoint_latest.is_some_and(|latest| id <= latest) {
                    return; // Completed, aborted or evicted already.
                }
                self.checkpoint_latest = Some(id);
                let evicted = if self.tracked.len() == TRACKED_MAX { self.tracked.pop_front() } else { None };
                if let Some(oldest) = evicted {
                    self.emit_aborted(oldest.barrier.checkpoint);
                }
                let arrived = vec![false; self.channels.len()];
                self.tracked.push_back(Tracked { barrier, started: now, arrived });
                self.tracked.len() - 1
            }
        };
        self.tracked[index].arrived[channel] = true;
        self.complete_tracked(now);
    }

    /// Emits every tracked checkpoint that is complete, oldest first, aborting older ones that
    /// are not (they can no longer complete before a newer one, as Flink's tracker decides).
    fn complete_tracked(&mut self, now: Time) {
        while let Some(index) = self.tracked.iter().position(|tracked| self.all_arrived(&tracked.arrived)) {
            let older: Vec<CheckpointId> =
                self.tracked.drain(..index).map(|tracked| tracked.barrier.checkpoint).collect();
            for checkpoint in older {
                self.emit_aborted(checkpoint);
            }
            if let Some(done) = self.tracked.pop_front() {
                self.emit_checkpoint(done.barrier, InFlight::new(), true, now.since(done.started));
            }
        }
    }

    pub(super) fn on_end(&mut self, now: Time, channel: usize) -> Result<(), GateError> {
        let state = &mut self.channels[channel];
        debug_assert!(!state.ended && !state.blocked);
        state.ended = true;
        let leftover = !state.queue.is_empty();
        state.queue.clear();
        self.unlist(channel);
        self.ended_count += 1;
        self.advance_watermark();
        match self.mode {
            AlignmentMode::AtLeastOnce => self.complete_tracked(now),
            AlignmentMode::ExactlyOnce | AlignmentMode::Unaligned => {
                self.complete_alignment(now);
                self.finish_capture();
            }
        }
        if self.ended_count == self.channels.len() {
            self.end_emitted = true;
            self.outputs.push_back(GateOutput::EndOfInput);
        }
        if leftover { Err(GateError::DataAfterEnd { channel: ChannelIndex(channel as u32) }) } else { Ok(()) }
    }

    /// Aborts `checkpoint` and any older one in progress; their barriers are ignored from now on.
    pub fn abort(&mut self, checkpoint: CheckpointId) {
        if self.pending_id().is_some_and(|current| current <= checkpoint) {
            self.abort_pending();
        }
        while let Some(tracked) = self.tracked.front().filter(|tracked| tracked.barrier.checkpoint <= checkpoint) {
            let id = tracked.barrier.checkpoint;
            self.tracked.pop_front();
            self.emit_aborted(id);
        }
        if self.checkpoint_latest.is_none_or(|latest| latest < checkpoint) {
            self.checkpoint_latest = Some(checkpoint);
        }
    }

    fn abort_pending(&mut self) {
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Idle => {}
            Pending::Aligning { barrier, .. } | Pending::Capturing { barrier, .. } => {
                self.unblock_all();
                self.emit_aborted(barrier.checkpoint);
            }
        }
    }

    /// Aligned past its deadline: take the checkpoint unaligned now.
    pub(super) fn check_aligned_timeout(&mut self, now: Time) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        let Pending::Aligning { barrier, started, arrived } = std::mem::replace(&mut self.pending, Pending::Idle)
        else {
            unreachable!("a deadline needs an alignment")
        };
        self.metrics.switched_to_unaligned += 1;
        self.trigger_unaligned(now, barrier, arrived, started);
    }

    /// When an aligned checkpoint will switch to unaligned, if one is aligning with a timeout.
    pub fn poll_timeout(&self) -> Option<Time> {
        let timeout = self.aligned_timeout?;
        match &self.pending {
            Pending::Aligning { barrier, .. } if barrier.kind == BarrierKind::Checkpoint => {
                Some(barrier.triggered_at.after(timeout))
            }
            _ => None,
        }
    }

    fn pending_id(&self) -> Option<CheckpointId> {
        match &self.pending {
            Pending::Idle => None,
            Pending::Aligning { barrier, .. } | Pending::Capturing { barrier, .. } => Some(barrier.checkpoint),
        }
    }

    /// The checkpoint in progress (at-least-once: the oldest tracked), if any.
    pub fn pending_checkpoint(&self) -> Option<CheckpointId> {
        self.pending_id().or_else(|| self.tracked.front().map(|tracked| tracked.barrier.checkpoint))
    }

    fn block(&mut self, channel: usize) {
        self.channels[channel].blocked = true;
        self.unlist(channel);
    }

    fn unblock_all(&mut self) {
        for channel in 0..self.channels.len() {
            if self.channels[channel].blocked {
                self.channels[channel].blocked = false;
                self.list(channel);
            }
        }
    }

    fn emit_checkpoint(&mut self, barrier: Barrier, in_flight: InFlight, complete: bool, alignment: Duration) {
        self.metrics.checkpoints += 1;
        self.metrics.alignment_last = alignment;
        self.metrics.alignment_total = Duration(self.metrics.alignment_total.0.saturating_add(alignment.0));
        self.outputs.push_back(GateOutput::Checkpoint { barrier, in_flight, in_flight_complete: complete, alignment });
    }

    fn emit_aborted(&mut self, checkpoint: CheckpointId) {
        self.metrics.checkpoints_aborted += 1;
        self.outputs.push_back(GateOutput::CheckpointAborted { checkpoint });
    }

    /// Checks the gate's invariants (the simulator calls this after every event).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (index, state) in self.channels.iter().enumerate() {
            let in_list = self.readable.iter().filter(|&&listed| listed == index).count();
            if in_list != usize::from(state.listed) {
                return Err(format!("channel {index}: listed {} but {in_list} times readable", state.listed));
            }
            let readable = !state.blocked && !state.ended && !state.queue.is_empty();
            if state.listed != readable {
                return Err(format!("channel {index}: listed {} but readable {readable}", state.listed));
            }
            let aligned_here = matches!(&self.pending, Pending::Aligning { arrived, .. } if arrived[index]);
            if state.blocked != (aligned_here && !state.ended) {
                return Err(format!("channel {index}: blocked {} outside its alignment", state.blocked));
            }
            if state.queue.len() > self.queue_limit {
                return Err(format!("channel {index}: {} segments over the limit", state.queue.len()));
            }
            if !state.ended && state.watermark < self.watermark {
                return Err(format!("channel {index}: watermark {} below the gate's", state.watermark));
            }
        }
        let ids: Vec<CheckpointId> = self.tracked.iter().map(|tracked| tracked.barrier.checkpoint).collect();
        if ids.windows(2).any(|pair| pair[0] >= pair[1]) || ids.len() > TRACKED_MAX {
            return Err(format!("tracked checkpoints {ids:?} not increasing or too many"));
        }
        let newest = self.pending_id().into_iter().chain(ids.last().copied()).max();
        if newest.is_some_and(|newest| Some(newest) > self.checkpoint_latest) {
            return Err(format!("checkpoint {newest:?} in progress beyond the latest {:?}", self.checkpoint_latest));
        }
        if self.ended_count != self.channels.iter().filter(|state| state.ended).count() {
            return Err("ended count out of step".to_string());
        }
        Ok(())
    }
}

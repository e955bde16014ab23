//! The task's side of checkpoints: barriers triggered at a source or handed over by the gate,
//! snapshots encoded as state files, in-flight records of unaligned checkpoints, declines,
//! notifications and the final checkpoint.

use super::snapshot::{self, ChannelState};
use super::{Phase, TaskOutput, TaskRunner};
use crate::checkpoint::{AckMetrics, DeclineReason};
use crate::dataflow::gate::InFlight;
use crate::dataflow::operators::{ChainSnapshot, OperatorSnapshot};
use crate::dataflow::state::encode_to_vec;
use crate::dataflow::{Barrier, BarrierKind, EventTime, StreamElement};
use crate::ids::CheckpointId;
use crate::row::Row;
use crate::time::Duration;

/// A snapshot taken, not yet output: an unaligned one waits for the rest of its in-flight data.
#[derive(Debug)]
pub(super) struct PendingSnapshot {
    barrier: Barrier,
    chain: ChainSnapshot,
    /// In-flight records: (chain input, record).
    in_flight: Vec<(u32, Row)>,
    input_ended: bool,
    alignment: Duration,
}

impl TaskRunner {
    /// Injects `barrier` at this task: a source (between two polls, so after exactly the records
    /// emitted so far), or a task waiting for its final checkpoint. Snapshots, then sends the
    /// barrier on every output edge. Any other task declines; an ended task ignores it.
    pub fn trigger_checkpoint(&mut self, barrier: Barrier) {
        let checkpoint = barrier.checkpoint;
        match self.phase {
            Phase::Running if self.is_source => {}
            Phase::AwaitingFinalCheckpoint => {}
            Phase::Running => {
                // The coordinator triggers here once every producer finished: the end of input is
                // still on its way. Not counted; a later checkpoint finds the task waiting.
                self.decline(checkpoint, DeclineReason::InputEndOfStream);
                return;
            }
            Phase::Finished { .. } | Phase::Failed(_) | Phase::Canceled => return,
        }
        if self.checkpoint_latest.is_some_and(|latest| checkpoint <= latest) {
            return; // A trigger repeated or overtaken: that checkpoint is settled here.
        }
        if let BarrierKind::Savepoint { stop: true, drain: true } = barrier.kind
            && matches!(self.phase, Phase::Running)
        {
            // Drain: event time ends before the barrier, so every window fires into the savepoint.
            if let Err(error) = self.chain.watermark(EventTime::MAX, &mut self.outputs) {
                return self.fail(error.into());
            }
        }
        self.snapshot(barrier, Vec::new(), true, Duration::ZERO);
        if matches!(self.phase, Phase::AwaitingFinalCheckpoint) {
            // Every snapshot from now on holds the same state: the first to complete ends the task.
            self.final_checkpoint.get_or_insert(checkpoint);
        }
    }

    /// Checkpoint `checkpoint` completed (`complete`) or was aborted. Completion reaches the chain
    /// (exactly-once sinks commit) and ends a task waiting for this as its final checkpoint;
    /// an abort cancels it at the gate.
    pub fn notify_checkpoint(&mut self, checkpoint: CheckpointId, complete: bool) {
        if !self.is_live() {
            return;
        }
        let is_stop = self.stop_savepoint.is_some_and(|(savepoint, _)| savepoint == checkpoint);
        if !complete {
            if is_stop {
                self.stop_savepoint = None; // The stop failed: sources resume.
            }
            self.aborted_through = self.aborted_through.max(Some(checkpoint));
            if let Some(gate) = self.gate.as_mut() {
                gate.abort(checkpoint);
            }
            if self.pending.as_ref().is_some_and(|pending| pending.barrier.checkpoint <= checkpoint) {
                self.pending = None;
            }
            return;
        }
        // A task deployed as finished never ran its chain: nothing of it waits for a commit.
        if !self.finished_on_restore
            && let Err(error) = self.chain.notify_checkpoint_complete(checkpoint)
        {
            self.fail(error.into());
            return;
        }
        let is_final = self.final_checkpoint.is_some_and(|final_checkpoint| checkpoint >= final_checkpoint);
        if matches!(self.phase, Phase::AwaitingFinalCheckpoint) && (is_final || is_stop) {
            self.finish();
        } else if is_stop {
            self.on_stopped();
        }
    }

    /// The stop-with-savepoint completed: a source ends its input now (the end flows
    /// downstream, where each task finishes once its inputs end); others wait for their inputs.
    fn on_stopped(&mut self) {
        self.stopped = true;
        if self.is_source
            && matches!(self.phase, Phase::Running)
            && let Err(error) = self.end_input()
        {
            self.fail(error);
        }
    }

    /// The gate says: snapshot now.
    pub(super) fn on_checkpoint(&mut self, barrier: Barrier, in_flight: InFlight, complete: bool, alignment: Duration) {
        let records = self.in_flight_records(in_flight);
        self.snapshot(barrier, records, complete, alignment);
    }

    /// The rest of an unaligned checkpoint's in-flight data: the snapshot is complete.
    pub(super) fn on_in_flight(&mut self, checkpoint: CheckpointId, in_flight: InFlight) {
        let records = self.in_flight_records(in_flight);
        match self.pending.take() {
            Some(mut pending) if pending.barrier.checkpoint == checkpoint => {
                pending.in_flight.extend(records);
                self.output_snapshot(pending);
            }
            other => self.pending = other, // Aborted meanwhile.
        }
    }

    /// The gate gave up on `checkpoint`: decline it unless the coordinator aborted it.
    pub(super) fn on_aborted(&mut self, checkpoint: CheckpointId) {
        if self.pending.as_ref().is_some_and(|pending| pending.barrier.checkpoint == checkpoint) {
            self.pending = None;
        }
        if self.aborted_through.is_none_or(|aborted| checkpoint > aborted) {
            self.decline(checkpoint, DeclineReason::Subsumed);
        }
    }

    /// The records of in-flight data by chain input; watermarks are left out (the restored
    /// operators keep their own, and the producers send new ones).
    fn in_flight_records(&self, in_flight: InFlight) -> Vec<(u32, Row)> {
        let records = in_flight.into_iter().filter_map(|(channel, element)| match element {
            StreamElement::Record(row) => Some((self.layout.input_of(channel) as u32, row)),
            _ => None,
        });
        records.collect()
    }

    /// Snapshots the chain and sends the barrier on; outputs the snapshot unless in-flight data
    /// is still to come.
    fn snapshot(&mut self, barrier: Barrier, in_flight: Vec<(u32, Row)>, complete: bool, alignment: Duration) {
        let checkpoint = barrier.checkpoint;
        self.checkpoint_latest = self.checkpoint_latest.max(Some(checkpoint));
        // Savepoints are always canonical; checkpoints may be a store's own files.
        let native = !matches!(barrier.kind, BarrierKind::Savepoint { .. });
        let chain = match self.finished_on_restore {
            true => Ok(self.empty_snapshot(checkpoint)),
            false => self.chain.snapshot(checkpoint, native),
        };
        for output in &mut self.outputs {
            output.writer.emit_barrier(barrier);
        }
        if self.stop_savepoint.is_some_and(|(savepoint, _)| savepoint < checkpoint) {
            // A later barrier: that stop failed (the coordinator checkpoints again only then),
            // even if its abort never arrived here. A stopped source resumes.
            self.stop_savepoint = None;
        }
        if let BarrierKind::Savepoint { stop: true, drain } = barrier.kind {
            self.stop_savepoint = Some((checkpoint, drain));
        }
        let chain = match chain {
            Ok(chain) => chain,
            Err(error) => return self.decline(checkpoint, DeclineReason::SnapshotFailed(error.to_string())),
        };
        let pending = PendingSnapshot { barrier, chain, in_flight, input_ended: self.input_ended, alignment };
        match complete {
            true => self.output_snapshot(pending),
            false => self.pending = Some(pending),
        }
    }

    /// The snapshot of a task deployed as finished: no operator state, only (in the file) that
    /// its input had ended, so a restore from it never runs the chain's end of input again.
    fn empty_snapshot(&self, checkpoint: CheckpointId) -> ChainSnapshot {
        let operators = self.identity.uids.iter().map(|uid| (uid.clone(), OperatorSnapshot::default()));
        ChainSnapshot {
            checkpoint,
            subtask: self.identity.subtask,
            parallelism: self.identity.parallelism,
            operators: operators.collect(),
        }
    }

    fn output_snapshot(&mut self, pending: PendingSnapshot) {
        let checkpoint = pending.barrier.checkpoint;
        let persisted_bytes = match pending.in_flight.is_empty() {
            true => 0,
            false => encode_to_vec(&pending.in_flight).map_or(0, |bytes| bytes.len() as u64),
        };
        let channel = ChannelState { input_ended: pending.input_ended, in_flight: pending.in_flight };
        let shared = snapshot::shared_files(&pending.chain);
        match snapshot::encode(&self.identity, pending.chain, &channel) {
            Ok(bytes) => {
                self.metrics.snapshots += 1;
                let metrics = AckMetrics { alignment_duration: pending.alignment, processed_bytes: 0, persisted_bytes };
                self.events.push_back(TaskOutput::Snapshot { checkpoint, bytes, shared, metrics });
            }
            Err(message) => self.decline(checkpoint, DeclineReason::AsyncSnapshotFailed(message)),
        }
    }

    fn decline(&mut self, checkpoint: CheckpointId, reason: DeclineReason) {
        self.checkpoint_latest = self.checkpoint_latest.max(Some(checkpoint));
        self.events.push_back(TaskOutput::Decline { checkpoint, reason });
    }
}

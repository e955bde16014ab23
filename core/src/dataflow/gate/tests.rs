use super::*;
use crate::dataflow::buffer::BufferBuilder;
use crate::row::{RowBatch, Value};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn record(channel: i64, seq: i64) -> StreamElement {
    StreamElement::Record(vec![Value::Int(channel), Value::Int(seq)])
}

fn barrier_at(checkpoint: u64, triggered_at: u64) -> Barrier {
    let kind = if checkpoint.is_multiple_of(5) {
        BarrierKind::Savepoint { stop: false, drain: false }
    } else {
        BarrierKind::Checkpoint
    };
    Barrier { checkpoint: CheckpointId(checkpoint), triggered_at: Time(triggered_at), kind, unaligned: false }
}

fn barrier(checkpoint: u64) -> StreamElement {
    StreamElement::Barrier(barrier_at(checkpoint, 0))
}

fn ch(index: u32) -> ChannelIndex {
    ChannelIndex(index)
}

fn push_all(gate: &mut InputGate, channel: u32, elements: impl IntoIterator<Item = StreamElement>) {
    for element in elements {
        gate.push(ch(channel), element).unwrap_or_else(|refused| panic!("{refused}"));
    }
}

fn drain(gate: &mut InputGate, now: Time) -> Vec<GateOutput> {
    let outputs = std::iter::from_fn(|| gate.poll(now).unwrap_or_else(|error| panic!("{error}"))).collect();
    gate.check_invariants().unwrap_or_else(|problem| panic!("{problem}"));
    outputs
}

fn rec(channel: u32, seq: i64) -> GateOutput {
    GateOutput::Record { channel: ch(channel), row: vec![Value::Int(i64::from(channel)), Value::Int(seq)] }
}

fn checkpoint_of(output: &GateOutput) -> Option<(u64, bool, usize, bool)> {
    match output {
        GateOutput::Checkpoint { barrier, in_flight, in_flight_complete, .. } => {
            Some((barrier.checkpoint.0, barrier.unaligned, in_flight.len(), *in_flight_complete))
        }
        _ => None,
    }
}

#[test]
fn aligned_barrier_blocks_its_channel_until_every_channel_delivered_it() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [record(0, 0), barrier(1), record(0, 1)]);
    push_all(&mut gate, 1, [record(1, 0)]);
    let first = drain(&mut gate, Time(10));
    assert_eq!(first, [rec(0, 0), rec(1, 0)], "record 0/1 waits behind the barrier");
    assert!(gate.is_blocked(ch(0)));
    push_all(&mut gate, 1, [record(1, 1), barrier(1), record(1, 2)]);
    let second = drain(&mut gate, Time(250));
    assert_eq!(second[0], rec(1, 1));
    assert_eq!(checkpoint_of(&second[1]), Some((1, false, 0, true)));
    let GateOutput::Checkpoint { alignment, .. } = &second[1] else { panic!("a checkpoint") };
    assert_eq!(*alignment, Duration(240), "blocked from the first barrier's read to the last's");
    let mut after: Vec<GateOutput> = second[2..].to_vec();
    after.sort_by_key(|output| format!("{output:?}"));
    assert_eq!(after, [rec(0, 1), rec(1, 2)]);
    assert!(!gate.is_blocked(ch(0)));
    assert_eq!(gate.metrics().alignment_total, Duration(240));
}

#[test]
fn at_least_once_never_blocks_and_checkpoints_when_all_barriers_were_read() {
    let mut gate = InputGate::new(2, AlignmentMode::AtLeastOnce);
    push_all(&mut gate, 0, [barrier(1), record(0, 1)]);
    push_all(&mut gate, 1, [record(1, 0)]);
    // Round robin by segment: channel 0's barrier, channel 1's record, channel 0's record.
    assert_eq!(drain(&mut gate, Time(0)), [rec(1, 0), rec(0, 1)], "the channel after its barrier is not held");
    push_all(&mut gate, 1, [barrier(1)]);
    let outputs = drain(&mut gate, Time(5));
    assert_eq!(outputs.iter().filter_map(checkpoint_of).collect::<Vec<_>>(), [(1, false, 0, true)]);
}

#[test]
fn unaligned_checkpoint_triggers_at_the_first_barrier_with_the_queued_data_in_flight() {
    let mut gate = InputGate::new(3, AlignmentMode::Unaligned);
    push_all(&mut gate, 0, [barrier(1), record(0, 1)]);
    push_all(&mut gate, 1, [record(1, 0), StreamElement::Watermark(5), barrier(1), record(1, 1)]);
    push_all(&mut gate, 2, [record(2, 0)]);
    let first = gate.poll(Time(0)).unwrap_or_else(|error| panic!("{error}"));
    let Some(GateOutput::Checkpoint { barrier: taken, in_flight, in_flight_complete, .. }) = first else {
        panic!("the first barrier read triggers the checkpoint, got {first:?}")
    };
    assert!(taken.unaligned);
    assert_eq!(in_flight, [(ch(1), record(1, 0)), (ch(1), StreamElement::Watermark(5)), (ch(2), record(2, 0))]);
    assert!(!in_flight_complete, "channel 2's barrier has not arrived");
    // Channel 2 delivers more before its barrier: delivered, and copied as in-flight.
    push_all(&mut gate, 2, [record(2, 1), barrier(1)]);
    let rest = drain(&mut gate, Time(1));
    let records: BTreeSet<String> =
        rest.iter().filter(|o| matches!(o, GateOutput::Record { .. })).map(|o| format!("{o:?}")).collect();
    assert_eq!(records.len(), 5, "in-flight data is delivered too: {rest:?}");
    let late = rest.iter().find_map(|output| match output {
        GateOutput::CheckpointInFlight { checkpoint, in_flight } => Some((checkpoint.0, in_flight.clone())),
        _ => None,
    });
    assert_eq!(late, Some((1, vec![(ch(2), record(2, 1))])));
}

#[test]
fn unaligned_checkpoint_is_complete_at_once_when_every_barrier_is_queued() {
    let mut gate = InputGate::new(2, AlignmentMode::Unaligned);
    push_all(&mut gate, 0, [barrier(1)]);
    push_all(&mut gate, 1, [record(1, 0), barrier(1), record(1, 1)]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(checkpoint_of(&outputs[0]), Some((1, true, 1, true)));
    assert_eq!(outputs[1..], [rec(1, 0), rec(1, 1)]);
}

#[test]
fn a_newer_barrier_aborts_the_unfinished_alignment_and_stale_barriers_are_ignored() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [barrier(1), record(0, 1)]);
    push_all(&mut gate, 1, [barrier(2), record(1, 1), barrier(1)]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(outputs[0], GateOutput::CheckpointAborted { checkpoint: CheckpointId(1) });
    assert_eq!(outputs[1], rec(0, 1), "channel 0 is released by the abort");
    assert!(gate.is_blocked(ch(1)), "channel 1 now waits for checkpoint 2 on channel 0");
    push_all(&mut gate, 0, [barrier(2)]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(checkpoint_of(&outputs[0]), Some((2, false, 0, true)));
    assert_eq!(outputs[1..], [rec(1, 1)], "the stale barrier 1 behind it changes nothing");
    assert_eq!(gate.pending_checkpoint(), None);
}

#[test]
fn a_stale_barrier_does_not_disturb_the_alignment_in_progress() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [barrier(3)]);
    assert_eq!(drain(&mut gate, Time(0)), []);
    push_all(&mut gate, 1, [barrier(1), record(1, 0), barrier(3)]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(outputs[0], rec(1, 0));
    assert_eq!(checkpoint_of(&outputs[1]), Some((3, false, 0, true)), "{outputs:?}");
    assert_eq!(gate.metrics().checkpoints_aborted, 0);
}

#[test]
fn abort_from_outside_releases_blocked_channels_and_ignores_later_barriers_of_it() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [barrier(3), record(0, 1)]);
    assert_eq!(drain(&mut gate, Time(0)), []);
    gate.abort(CheckpointId(3));
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::CheckpointAborted { checkpoint: CheckpointId(3) }, rec(0, 1)]);
    push_all(&mut gate, 1, [barrier(3), record(1, 1)]);
    assert_eq!(drain(&mut gate, Time(0)), [rec(1, 1)]);
    gate.abort(CheckpointId(7));
    push_all(&mut gate, 0, [barrier(6)]);
    push_all(&mut gate, 1, [barrier(6)]);
    assert_eq!(drain(&mut gate, Time(0)), [], "checkpoints up to an aborted one are stale");
}

#[test]
fn alignment_past_the_timeout_switches_to_unaligned() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce).with_aligned_timeout(Some(Duration::from_millis(10)));
    let late = StreamElement::Barrier(barrier_at(1, 1_000));
    push_all(&mut gate, 0, [late.clone(), record(0, 1)]);
    push_all(&mut gate, 1, [record(1, 0)]);
    assert_eq!(drain(&mut gate, Time(2_000)), [rec(1, 0)]);
    assert_eq!(gate.poll_timeout(), Some(Time(11_000)), "deadline from the barrier's trigger time");
    push_all(&mut gate, 1, [record(1, 1)]);
    let outputs = drain(&mut gate, Time(11_000));
    assert_eq!(checkpoint_of(&outputs[0]), Some((1, true, 1, false)), "{outputs:?}");
    assert_eq!(outputs[1..].len(), 2, "both channels flow again");
    push_all(&mut gate, 1, [late]);
    let outputs = drain(&mut gate, Time(12_000));
    assert_eq!(outputs, [GateOutput::CheckpointInFlight { checkpoint: CheckpointId(1), in_flight: vec![] }]);
    assert_eq!(gate.metrics().switched_to_unaligned, 1);
}

#[test]
fn savepoints_stay_aligned_in_unaligned_mode() {
    let mut gate = InputGate::new(2, AlignmentMode::Unaligned);
    push_all(&mut gate, 0, [barrier(5), record(0, 1)]);
    assert_eq!(drain(&mut gate, Time(0)), []);
    assert!(gate.is_blocked(ch(0)));
}

#[test]
fn watermark_is_the_minimum_of_open_channels_and_only_rises() {
    let mut gate = InputGate::new(3, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [StreamElement::Watermark(10)]);
    push_all(&mut gate, 1, [StreamElement::Watermark(20)]);
    assert_eq!(drain(&mut gate, Time(0)), []);
    push_all(&mut gate, 2, [StreamElement::Watermark(15)]);
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::Watermark(10)]);
    push_all(&mut gate, 0, [StreamElement::Watermark(5), StreamElement::Watermark(30)]);
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::Watermark(15)], "a lower watermark is ignored");
    push_all(&mut gate, 2, [StreamElement::EndOfInput]);
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::Watermark(20)], "an ended channel no longer holds it back");
    push_all(&mut gate, 0, [StreamElement::EndOfInput]);
    push_all(&mut gate, 1, [StreamElement::EndOfInput]);
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::EndOfInput], "no watermark once every channel ended");
    assert!(gate.is_finished());
}

#[test]
fn a_channel_ending_completes_an_alignment_that_waited_for_it() {
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    push_all(&mut gate, 0, [barrier(1), record(0, 1), StreamElement::EndOfInput]);
    push_all(&mut gate, 1, [record(1, 0), StreamElement::EndOfInput]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(outputs[0], rec(1, 0));
    assert_eq!(checkpoint_of(&outputs[1]), Some((1, false, 0, true)));
    assert_eq!(outputs[2..], [rec(0, 1), GateOutput::EndOfInput]);
}

#[test]
fn pushes_beyond_the_limit_or_after_the_end_are_refused_with_the_item() {
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce).with_queue_limit(2);
    push_all(&mut gate, 0, [record(0, 0), record(0, 1)]);
    assert!(!gate.can_accept(ch(0)));
    let refused = gate.push(ch(0), record(0, 2));
    assert_eq!(refused, Err(Refused { channel: ch(0), reason: RefusalReason::Full { limit: 2 }, item: record(0, 2) }));
    assert_eq!(drain(&mut gate, Time(0)).len(), 2);
    push_all(&mut gate, 0, [StreamElement::EndOfInput]);
    assert!(matches!(gate.push(ch(0), record(0, 3)), Err(Refused { reason: RefusalReason::Ended, .. })));
    assert!(matches!(gate.push(ch(5), record(0, 3)), Err(Refused { reason: RefusalReason::NoSuchChannel, .. })));
    let buffer = Buffer::from_parts(vec![1, 0], 1);
    assert!(matches!(gate.push_buffer(ch(0), buffer), Err(Refused { reason: RefusalReason::Ended, .. })));
}

#[test]
fn at_least_once_tracks_a_bounded_number_of_checkpoints() {
    let mut gate = InputGate::new(2, AlignmentMode::AtLeastOnce).with_queue_limit(1000);
    push_all(&mut gate, 0, (1..=TRACKED_MAX as u64 + 1).map(barrier));
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(outputs, [GateOutput::CheckpointAborted { checkpoint: CheckpointId(1) }], "the oldest is evicted");
    push_all(&mut gate, 1, [barrier(3)]);
    let outputs = drain(&mut gate, Time(0));
    assert_eq!(outputs[0], GateOutput::CheckpointAborted { checkpoint: CheckpointId(2) }, "older than a completed one");
    assert_eq!(checkpoint_of(&outputs[1]), Some((3, false, 0, true)));
}

#[test]
fn writers_and_a_gate_carry_records_and_an_aligned_checkpoint_end_to_end() {
    use crate::dataflow::buffer::RecordWriter;
    use crate::dataflow::partition::{ChannelSelector, SelectorSpec};
    use crate::ids::SubtaskIndex;
    use crate::job::Partitioner;
    let schema = crate::row::Schema::new([("k", crate::row::Type::Int), ("v", crate::row::Type::Int)]);
    let key = crate::expr::compile("k", &schema).unwrap_or_else(|error| panic!("{error}"));
    let writer = |producer: u32| {
        let spec = SelectorSpec {
            producer: SubtaskIndex(producer),
            producer_parallelism: 2,
            consumer_parallelism: 1,
            max_parallelism: 128,
            key: Some(key.clone()),
            seed: 0,
        };
        let selector = ChannelSelector::new(&Partitioner::Hash { key: "k".into() }, spec);
        RecordWriter::new(selector.unwrap_or_else(|error| panic!("{error}")), 256, Duration::MAX)
    };
    let mut writers = [writer(0), writer(1)];
    for (producer, writer) in writers.iter_mut().enumerate() {
        for seq in 0..100 {
            let row = [Value::Int(producer as i64), Value::Int(seq)];
            writer.emit(Time::ZERO, &row).unwrap_or_else(|error| panic!("{error}"));
        }
        writer.emit_barrier(barrier_at(1, 0));
        writer.emit(Time::ZERO, &[Value::Int(producer as i64), Value::Int(100)]).unwrap_or_else(|e| panic!("{e}"));
        writer.emit_end_of_input();
    }
    let mut gate = InputGate::new(2, AlignmentMode::ExactlyOnce);
    let (mut seen, mut outputs) = (0usize, Vec::new());
    while writers.iter().any(|writer| writer.pending_buffers() > 0) {
        for (producer, writer) in writers.iter_mut().enumerate() {
            if let Some((channel, buffer)) = writer.poll_buffer() {
                assert_eq!(channel, ch(0), "one consumer, one channel");
                gate.push_buffer(ch(producer as u32), buffer).unwrap_or_else(|refused| panic!("{refused}"));
            }
        }
        outputs.extend(drain(&mut gate, Time::ZERO));
    }
    for output in &outputs {
        match output {
            GateOutput::Record { .. } => seen += 1,
            GateOutput::Checkpoint { barrier, .. } => {
                assert_eq!((barrier.checkpoint, seen), (CheckpointId(1), 200), "after exactly the records before it")
            }
            _ => {}
        }
    }
    assert_eq!((seen, outputs.last()), (202, Some(&GateOutput::EndOfInput)));
}

fn encode(elements: &[StreamElement]) -> Buffer {
    let mut builder = BufferBuilder::new(1 << 16);
    for element in elements {
        assert!(builder.push(element));
    }
    builder.finish()
}

#[test]
fn buffers_decode_through_the_gate_into_a_reused_row() {
    let mut gate = InputGate::new(2, AlignmentMode::Unaligned);
    let elements: Vec<StreamElement> = (0..100).map(|i| record(0, i)).collect();
    gate.push_buffer(ch(0), encode(&elements)).unwrap_or_else(|refused| panic!("{refused}"));
    let mut row = Row::with_capacity(2);
    let allocation = row.as_ptr();
    for i in 0..100 {
        let output = gate.poll_into(Time(0), &mut row).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(output, Some(GateOutput::Record { channel: ch(0), row: () }));
        assert_eq!(row, [Value::Int(0), Value::Int(i)]);
        assert_eq!(row.as_ptr(), allocation, "int rows pass the gate without allocating");
    }
    assert_eq!(gate.poll_into(Time(0), &mut row), Ok(None));
    assert_eq!(gate.metrics().records_in, 100);
}

#[test]
fn a_corrupt_buffer_is_a_typed_error_and_the_gate_goes_on() {
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce);
    gate.push_buffer(ch(0), Buffer::from_parts(vec![1, 1, 99], 1)).unwrap_or_else(|refused| panic!("{refused}"));
    push_all(&mut gate, 0, [record(0, 1)]);
    let error = gate.poll(Time(0));
    assert_eq!(
        error,
        Err(GateError::Decode { channel: ch(0), error: DecodeError::UnknownTag { offset: 2, what: "value", tag: 99 } })
    );
    assert_eq!(drain(&mut gate, Time(0)), [rec(0, 1)]);
}

#[test]
fn data_behind_the_end_of_input_is_reported() {
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce);
    let mut elements = vec![StreamElement::EndOfInput];
    elements.push(record(0, 0));
    gate.push_buffer(ch(0), encode(&elements)).unwrap_or_else(|refused| panic!("{refused}"));
    assert_eq!(gate.poll(Time(0)), Err(GateError::DataAfterEnd { channel: ch(0) }));
    assert_eq!(drain(&mut gate, Time(0)), [GateOutput::EndOfInput]);
}

#[test]
fn configuration_maps_to_modes_as_flink_reads_it() {
    let mut config =
        crate::config::Config::from_raw(&Default::default()).unwrap_or_else(|error| panic!("{error}")).checkpoint;
    assert_eq!(AlignmentMode::from_config(&config), (AlignmentMode::ExactlyOnce, None));
    config.unaligned = true;
    assert_eq!(AlignmentMode::from_config(&config), (AlignmentMode::Unaligned, None));
    config.aligned_checkpoint_timeout = Duration::from_secs(1);
    assert_eq!(AlignmentMode::from_config(&config), (AlignmentMode::ExactlyOnce, Some(Duration::from_secs(1))));
    config.mode = CheckpointingMode::AtLeastOnce;
    assert_eq!(AlignmentMode::from_config(&config), (AlignmentMode::AtLeastOnce, None));
}

// ---- Property tests: random interleavings over 1-5 channels ----

/// A driver action.
#[derive(Clone, Debug)]
enum Op {
    /// Push the channel's next element on its own.
    Push(usize),
    /// Push the channel's next elements (up to the count) as one buffer.
    PushBuffer(usize, usize),
    /// Poll up to this many outputs.
    Poll(usize),
    /// Abort this checkpoint from outside.
    Abort(u64),
    /// Let this much time pass (µs).
    Tick(u64),
}

#[derive(Clone, Debug)]
struct Script {
    channels: Vec<Vec<StreamElement>>,
    ops: Vec<Op>,
}

/// One channel: records with unique ids, watermarks, barriers with increasing ids (gaps
/// allowed), and usually an end.
fn channel_strategy(channel: usize) -> impl Strategy<Value = Vec<StreamElement>> {
    let item = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 2 => Just(2u8)];
    (prop::collection::vec((item, 0i64..60, 1u64..3), 0..30), prop::bool::weighted(0.8)).prop_map(
        move |(items, ends)| {
            let (mut seq, mut checkpoint) = (0i64, 0u64);
            let mut elements: Vec<StreamElement> = items
                .into_iter()
                .map(|(kind, time, step)| match kind {
                    0 => {
                        seq += 1;
                        record(channel as i64, seq)
                    }
                    1 => StreamElement::Watermark(time),
                    _ => {
                        checkpoint += step;
                        StreamElement::Barrier(barrier_at(checkpoint, checkpoint * 1_000))
                    }
                })
                .collect();
            if ends {
                elements.push(StreamElement::EndOfInput);
            }
            elements
        },
    )
}

fn script_strategy() -> impl Strategy<Value = Script> {
    (1usize..=5).prop_flat_map(|count| {
        let channels: Vec<_> = (0..count).map(channel_strategy).collect();
        let op = prop_oneof![
            6 => (0..count).prop_map(Op::Push),
            2 => (0..count, 1usize..6).prop_map(|(channel, n)| Op::PushBuffer(channel, n)),
            4 => (1usize..6).prop_map(Op::Poll),
            1 => (1u64..8).prop_map(Op::Abort),
            1 => (0u64..3_000).prop_map(Op::Tick),
        ];
        (channels, prop::collection::vec(op, 0..120)).prop_map(|(channels, ops)| Script { channels, ops })
    })
}

/// Record ids `(channel, seq)` of `elements`.
fn record_ids<'a>(elements: impl IntoIterator<Item = &'a StreamElement>) -> BTreeSet<(i64, i64)> {
    elements
        .into_iter()
        .filter_map(|element| match element {
            StreamElement::Record(row) => match row[..] {
                [Value::Int(channel), Value::Int(seq)] => Some((channel, seq)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The records before checkpoint `n`'s barrier: on each channel, those before its first barrier
/// with an id of at least `n` (all of them when there is none).
fn before_barrier(script: &Script, n: CheckpointId) -> BTreeSet<(i64, i64)> {
    let mut ids = BTreeSet::new();
    for elements in &script.channels {
        let cut = elements.iter().position(|e| matches!(e, StreamElement::Barrier(b) if b.checkpoint >= n));
        ids.extend(record_ids(&elements[..cut.unwrap_or(elements.len())]));
    }
    ids
}

type RecordIds = BTreeSet<(i64, i64)>;

/// Follows the outputs and checks the properties as they come.
struct Checker<'a> {
    script: &'a Script,
    mode: AlignmentMode,
    emitted: BTreeSet<(i64, i64)>,
    watermark: Option<EventTime>,
    checkpoint: Option<CheckpointId>,
    /// Unaligned checkpoints waiting for the rest of their in-flight data.
    open: BTreeMap<CheckpointId, (RecordIds, RecordIds)>,
    ended: bool,
    checkpoints: usize,
}

impl Checker<'_> {
    fn see(&mut self, output: GateOutput) -> Result<(), TestCaseError> {
        prop_assert!(!self.ended, "{output:?} after the end of input");
        match output {
            GateOutput::Record { row, .. } => {
                let id = record_ids(&[StreamElement::Record(row)]);
                prop_assert!(id.iter().all(|id| self.emitted.insert(*id)), "record {id:?} delivered twice");
            }
            GateOutput::Watermark(time) => {
                prop_assert!(self.watermark < Some(time), "watermark {time} after {:?}", self.watermark);
                self.watermark = Some(time);
            }
            GateOutput::Checkpoint { barrier, in_flight, in_flight_complete, .. } => {
                self.see_checkpoint(barrier, in_flight, in_flight_complete)?
            }
            GateOutput::CheckpointInFlight { checkpoint, in_flight } => {
                let open = self.open.remove(&checkpoint);
                let (emitted, mut flying) =
                    open.ok_or_else(|| TestCaseError::fail("in-flight rest of no checkpoint"))?;
                flying.extend(record_ids(in_flight.iter().map(|(_, element)| element)));
                self.check_unaligned(checkpoint, &emitted, &flying)?;
            }
            GateOutput::CheckpointAborted { checkpoint } => {
                self.open.remove(&checkpoint);
            }
            GateOutput::EndOfInput => self.ended = true,
        }
        Ok(())
    }

    fn see_checkpoint(&mut self, barrier: Barrier, in_flight: InFlight, complete: bool) -> Result<(), TestCaseError> {
        let n = barrier.checkpoint;
        prop_assert!(self.checkpoint < Some(n), "checkpoint {n:?} after {:?}", self.checkpoint);
        self.checkpoint = Some(n);
        self.checkpoints += 1;
        let pre = before_barrier(self.script, n);
        let flying = record_ids(in_flight.iter().map(|(_, element)| element));
        if self.mode == AlignmentMode::AtLeastOnce {
            prop_assert!(pre.is_subset(&self.emitted), "checkpoint {n:?} before all its records");
            prop_assert!(in_flight.is_empty() && !barrier.unaligned);
        } else if barrier.unaligned {
            prop_assert!(barrier.kind == BarrierKind::Checkpoint, "savepoints stay aligned");
            if complete {
                self.check_unaligned(n, &self.emitted, &flying)?;
            } else {
                self.open.insert(n, (self.emitted.clone(), flying));
            }
        } else {
            prop_assert!(in_flight.is_empty() && complete);
            prop_assert_eq!(&self.emitted, &pre, "aligned checkpoint {:?}: exactly the records before it", n);
        }
        Ok(())
    }

    fn check_unaligned(
        &self,
        n: CheckpointId,
        emitted: &BTreeSet<(i64, i64)>,
        flying: &BTreeSet<(i64, i64)>,
    ) -> Result<(), TestCaseError> {
        prop_assert!(emitted.is_disjoint(flying), "checkpoint {n:?}: in-flight records were delivered before it");
        let union: BTreeSet<(i64, i64)> = emitted.union(flying).copied().collect();
        prop_assert_eq!(union, before_barrier(self.script, n), "checkpoint {:?}: delivered + in flight", n);
        Ok(())
    }
}

struct Driver {
    gate: InputGate,
    next: Vec<usize>,
    now: Time,
}

impl Driver {
    fn push(&mut self, script: &Script, channel: usize, count: usize, as_buffer: bool) {
        let elements = &script.channels[channel];
        let end = self.next[channel].saturating_add(count).min(elements.len());
        if self.next[channel] == end || !self.gate.can_accept(ch(channel as u32)) {
            return;
        }
        let batch = &elements[self.next[channel]..end];
        let pushed = if as_buffer {
            self.gate.push_buffer(ch(channel as u32), encode(batch)).is_ok()
        } else {
            self.gate.push(ch(channel as u32), batch[0].clone()).is_ok()
        };
        assert!(pushed, "can_accept promised room");
        self.next[channel] = if as_buffer { end } else { self.next[channel] + 1 };
    }

    fn poll(&mut self, checker: &mut Checker, limit: usize) -> Result<usize, TestCaseError> {
        let mut polled = 0;
        while polled < limit {
            match self.gate.poll(self.now) {
                Ok(Some(output)) => checker.see(output)?,
                Ok(None) => break,
                Err(error) => return Err(TestCaseError::fail(format!("{error}"))),
            }
            polled += 1;
        }
        self.gate.check_invariants().map_err(TestCaseError::fail)?;
        Ok(polled)
    }
}

fn run(script: &Script, mode: AlignmentMode, timeout: Option<Duration>) -> Result<(), TestCaseError> {
    let gate = InputGate::new(script.channels.len(), mode).with_aligned_timeout(timeout).with_queue_limit(1_000);
    let mut driver = Driver { gate, next: vec![0; script.channels.len()], now: Time::ZERO };
    let mut checker = Checker {
        script,
        mode,
        emitted: BTreeSet::new(),
        watermark: None,
        checkpoint: None,
        open: BTreeMap::new(),
        ended: false,
        checkpoints: 0,
    };
    for op in &script.ops {
        match *op {
            Op::Push(channel) => driver.push(script, channel, 1, false),
            Op::PushBuffer(channel, count) => driver.push(script, channel, count, true),
            Op::Poll(limit) => drop(driver.poll(&mut checker, limit)?),
            Op::Abort(checkpoint) => driver.gate.abort(CheckpointId(checkpoint)),
            Op::Tick(micros) => driver.now = driver.now.after(Duration(micros)),
        }
    }
    // Deliver the rest; a checkpoint that can never complete (a channel neither ends nor sends
    // its barrier) is aborted from outside, as the coordinator's timeout would.
    for _ in 0..1_000 {
        for channel in 0..script.channels.len() {
            driver.push(script, channel, usize::MAX, true);
        }
        let polled = driver.poll(&mut checker, usize::MAX)?;
        let all_pushed = driver.next.iter().zip(&script.channels).all(|(next, elements)| *next == elements.len());
        if polled == 0 && all_pushed {
            match driver.gate.pending_checkpoint() {
                Some(checkpoint) => driver.gate.abort(checkpoint),
                None => break,
            }
        }
    }
    let all = record_ids(script.channels.iter().flatten());
    prop_assert_eq!(&checker.emitted, &all, "every record delivered exactly once");
    let all_end = script.channels.iter().all(|elements| elements.last() == Some(&StreamElement::EndOfInput));
    prop_assert_eq!(checker.ended, all_end, "end of input exactly when every channel ended");
    prop_assert!(checker.open.is_empty(), "unaligned checkpoints left open: {:?}", checker.open.keys());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn exactly_once_checkpoints_follow_exactly_the_records_before_their_barriers(script in script_strategy()) {
        run(&script, AlignmentMode::ExactlyOnce, None)?;
    }

    #[test]
    fn unaligned_checkpoints_plus_in_flight_data_are_exactly_the_records_before_their_barriers(
        script in script_strategy()
    ) {
        run(&script, AlignmentMode::Unaligned, None)?;
    }

    #[test]
    fn aligned_checkpoints_that_time_out_stay_exact_once_unaligned(script in script_strategy()) {
        run(&script, AlignmentMode::ExactlyOnce, Some(Duration(1_500)))?;
    }

    #[test]
    fn at_least_once_delivers_every_record_once_and_checkpoints_after_their_records(script in script_strategy()) {
        run(&script, AlignmentMode::AtLeastOnce, None)?;
    }
}

// ---- Batches: `poll_batch` is `poll_into` with runs of records taken at once ----

#[test]
fn a_batch_is_the_run_of_records_up_to_the_next_event_or_width_change() {
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce);
    let wide = StreamElement::Record(vec![Value::Int(0), Value::Int(9), Value::str("w")]);
    let elements = [record(0, 1), record(0, 2), record(0, 3), StreamElement::Watermark(5), record(0, 4), wide];
    gate.push_buffer(ch(0), encode(&elements)).unwrap_or_else(|refused| panic!("{refused}"));
    let mut batch = RowBatch::new();
    let mut poll = |max| gate.poll_batch(Time(0), &mut batch, max).unwrap_or_else(|error| panic!("{error}"));
    let record = Some(GateOutput::Record { channel: ch(0), row: () });
    assert_eq!(poll(2), record);
    assert_eq!(poll(8), record);
    assert_eq!(poll(8), Some(GateOutput::Watermark(5)));
    assert_eq!(poll(8), record);
    assert_eq!(poll(8), record);
    assert_eq!(poll(8), None);
    let mut batch = RowBatch::new();
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce);
    gate.push_buffer(ch(0), encode(&elements)).unwrap_or_else(|refused| panic!("{refused}"));
    let mut sizes = Vec::new();
    while let Some(output) = gate.poll_batch(Time(0), &mut batch, 2).unwrap_or_else(|error| panic!("{error}")) {
        if let GateOutput::Record { .. } = output {
            sizes.push((batch.len(), batch.width(), batch.row(0)[1].clone()));
        }
    }
    let expected = [(2, 2, Value::Int(1)), (1, 2, Value::Int(3)), (1, 2, Value::Int(4)), (1, 3, Value::Int(9))];
    assert_eq!(sizes, expected);
    assert_eq!(gate.metrics().records_in, 5);
}

#[test]
fn a_corrupt_record_after_good_ones_ends_the_batch_and_fails_the_next_poll() {
    let mut bytes = encode(&[record(0, 1), record(0, 2)]).into_bytes();
    bytes.extend_from_slice(&[1, 1, 99]);
    let mut gate = InputGate::new(1, AlignmentMode::ExactlyOnce);
    gate.push_buffer(ch(0), Buffer::from_parts(bytes, 3)).unwrap_or_else(|refused| panic!("{refused}"));
    push_all(&mut gate, 0, [record(0, 3)]);
    let mut batch = RowBatch::new();
    let output = gate.poll_batch(Time(0), &mut batch, 100);
    assert_eq!(output, Ok(Some(GateOutput::Record { channel: ch(0), row: () })));
    assert_eq!(batch.iter().collect::<Vec<_>>(), [&[Value::Int(0), Value::Int(1)], &[Value::Int(0), Value::Int(2)]]);
    let error = DecodeError::UnknownTag { offset: 14, what: "value", tag: 99 };
    assert_eq!(gate.poll_batch(Time(0), &mut batch, 100), Err(GateError::Decode { channel: ch(0), error }));
    assert_eq!(gate.poll_batch(Time(0), &mut batch, 100), Ok(Some(GateOutput::Record { channel: ch(0), row: () })));
    assert_eq!(batch.iter().collect::<Vec<_>>(), [&[Value::Int(0), Value::Int(3)]]);
}

/// Every output of a run of `script`, polled one at a time (`poll`) or in batches of at most the
/// outputs still allowed (`poll_batch`, a batch counted as its records), a batch as its records.
fn outputs_of(script: &Script, mode: AlignmentMode, timeout: Option<Duration>, batched: bool) -> Vec<GateOutput> {
    let gate = InputGate::new(script.channels.len(), mode).with_aligned_timeout(timeout).with_queue_limit(1_000);
    let mut driver = Driver { gate, next: vec![0; script.channels.len()], now: Time::ZERO };
    let (mut outputs, mut batch) = (Vec::new(), RowBatch::new());
    let mut poll = |driver: &mut Driver, limit: usize, outputs: &mut Vec<GateOutput>| {
        let mut polled = 0;
        while polled < limit {
            let output: Result<Option<GateOutput<Vec<Row>>>, GateError> = match batched {
                false => {
                    driver.gate.poll(driver.now).map(|output| output.map(|output| output.map_row(|row| vec![row])))
                }
                true => driver.gate.poll_batch(driver.now, &mut batch, limit - polled).map(|output| {
                    output.map(|output| output.map_row(|()| batch.iter().map(<[Value]>::to_vec).collect()))
                }),
            };
            match output.unwrap_or_else(|error| panic!("{error}")) {
                None => break,
                Some(GateOutput::Record { channel, row }) => {
                    polled += row.len();
                    outputs.extend(row.into_iter().map(|row| GateOutput::Record { channel, row }));
                }
                Some(output) => {
                    polled += 1;
                    outputs.push(output.map_row(|_| Row::new()));
                }
            }
        }
        polled
    };
    for op in &script.ops {
        match *op {
            Op::Push(channel) => driver.push(script, channel, 1, false),
            Op::PushBuffer(channel, count) => driver.push(script, channel, count, true),
            Op::Poll(limit) => drop(poll(&mut driver, limit, &mut outputs)),
            Op::Abort(checkpoint) => driver.gate.abort(CheckpointId(checkpoint)),
            Op::Tick(micros) => driver.now = driver.now.after(Duration(micros)),
        }
    }
    for _ in 0..1_000 {
        for channel in 0..script.channels.len() {
            driver.push(script, channel, usize::MAX, true);
        }
        if poll(&mut driver, usize::MAX, &mut outputs) == 0 {
            match driver.gate.pending_checkpoint() {
                Some(checkpoint) => driver.gate.abort(checkpoint),
                None => break,
            }
        }
    }
    outputs
}

/// Scripts whose records differ in width and hold strings now and then.
fn mixed_width_script_strategy() -> impl Strategy<Value = Script> {
    script_strategy().prop_map(|mut script| {
        for element in script.channels.iter_mut().flatten() {
            if let StreamElement::Record(row) = element
                && let Some(Value::Int(seq)) = row.get(1).cloned()
            {
                match seq % 4 {
                    0 => row.push(Value::str("wide")),
                    1 => row.push(Value::Int(seq * 1_000_000_007)),
                    _ => {}
                }
            }
        }
        script
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn batches_deliver_what_single_polls_deliver_in_the_same_order(
        script in mixed_width_script_strategy(),
        mode in prop_oneof![
            Just((AlignmentMode::ExactlyOnce, None)),
            Just((AlignmentMode::ExactlyOnce, Some(Duration(1_500)))),
            Just((AlignmentMode::Unaligned, None)),
            Just((AlignmentMode::AtLeastOnce, None)),
        ],
    ) {
        let (mode, timeout) = mode;
        let single = outputs_of(&script, mode, timeout, false);
        let batched = outputs_of(&script, mode, timeout, true);
        prop_assert_eq!(single, batched);
    }
}

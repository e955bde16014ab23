use super::*;
use crate::dataflow::partition::{ChannelSelector, SelectorSpec};
use crate::expr::compile;
use crate::ids::SubtaskIndex;
use crate::job::Partitioner;
use crate::row::{RowBatch, Schema, Type};
use crate::time::Duration;
use proptest::prelude::*;

fn barrier(checkpoint: u64) -> Barrier {
    Barrier {
        checkpoint: CheckpointId(checkpoint),
        triggered_at: Time(1_000),
        kind: BarrierKind::Checkpoint,
        unaligned: false,
    }
}

fn encode(elements: &[StreamElement]) -> Buffer {
    let mut builder = BufferBuilder::new(1 << 20);
    for element in elements {
        assert!(builder.push(element));
    }
    builder.finish()
}

fn decode(bytes: &[u8]) -> Result<Vec<StreamElement>, DecodeError> {
    BufferReader::new(bytes).collect()
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-300i64..300).prop_map(Value::Int),
        any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
        ".{0,12}".prop_map(|text: String| Value::str(&text)),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop::collection::vec(inner, 0..5).prop_map(|items| Value::List(Arc::from(items)))
    })
}

fn element_strategy() -> impl Strategy<Value = StreamElement> {
    prop_oneof![
        4 => prop::collection::vec(value_strategy(), 0..6).prop_map(StreamElement::Record),
        1 => any::<i64>().prop_map(StreamElement::Watermark),
        1 => (any::<u64>(), any::<u64>(), 0u8..4, any::<bool>()).prop_map(|(id, at, kind, unaligned)| {
            let kind = match kind {
                0 => BarrierKind::Checkpoint,
                k => BarrierKind::Savepoint { stop: k & 1 == 1, drain: k & 2 == 2 },
            };
            StreamElement::Barrier(Barrier { checkpoint: CheckpointId(id), triggered_at: Time(at), kind, unaligned })
        }),
        1 => Just(StreamElement::EndOfInput),
    ]
}

proptest! {
    #[test]
    fn every_element_decodes_to_what_was_encoded(elements in prop::collection::vec(element_strategy(), 0..20)) {
        let buffer = encode(&elements);
        prop_assert_eq!(buffer.elements() as usize, elements.len());
        prop_assert_eq!(decode(buffer.bytes()), Ok(elements));
    }

    #[test]
    fn garbage_decodes_to_an_error_or_elements_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn damaged_buffers_are_refused_or_decode_without_panicking(
        elements in prop::collection::vec(element_strategy(), 1..8),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let bytes = encode(&elements).into_bytes();
        let cut = cut.index(bytes.len());
        if let Ok(decoded) = decode(&bytes[..cut]) {
            prop_assert!(decoded.len() < elements.len(), "a cut buffer holds fewer elements");
            prop_assert_eq!(&decoded[..], &elements[..decoded.len()]);
        }
        let mut flipped = bytes.clone();
        flipped[flip.index(bytes.len())] ^= mask;
        let _ = decode(&flipped);
    }

    #[test]
    fn varints_and_zigzag_round_trip(value in any::<i64>()) {
        let mut out = Vec::new();
        put_varint(&mut out, zigzag(value));
        prop_assert_eq!(out.len(), varint_len(zigzag(value)));
        let mut reader = BufferReader::new(&out);
        prop_assert_eq!(reader.varint().map(unzigzag).ok(), Some(value));
    }
}

#[test]
fn a_full_builder_refuses_until_finished_and_capacity_is_respected() {
    let mut builder = BufferBuilder::new(64);
    let row = [Value::Int(1), Value::Int(-2)];
    let mut pushed = 0;
    while builder.push_record(&row) {
        pushed += 1;
        assert!(builder.len_bytes() <= 64, "a buffer of normal records stays within its capacity");
    }
    assert_eq!(pushed, 64 / 6, "[1, -2] encodes in 6 bytes");
    let buffer = builder.finish();
    assert_eq!((buffer.elements(), builder.is_empty(), builder.len_bytes()), (pushed, true, 0));
    assert!(builder.push_record(&row), "an emptied builder accepts again");
}

#[test]
fn an_oversized_record_makes_a_buffer_of_its_own() {
    let mut builder = BufferBuilder::new(32);
    let big = [Value::str(&"x".repeat(100))];
    assert!(builder.push_record(&[Value::Int(1)]));
    assert!(!builder.push_record(&big), "does not fit behind another record");
    let small = builder.finish();
    assert!(builder.push_record(&big), "an empty builder accepts any record");
    assert!(builder.is_full());
    assert!(!builder.push_record(&[Value::Int(1)]), "nothing joins an oversized record");
    let oversized = builder.finish();
    assert!(oversized.len_bytes() > 32);
    assert_eq!(decode(small.bytes()), Ok(vec![StreamElement::Record(vec![Value::Int(1)])]));
    assert_eq!(decode(oversized.bytes()), Ok(vec![StreamElement::Record(big.to_vec())]));
}

#[test]
fn next_into_reuses_the_row_for_int_records() {
    let rows: Vec<StreamElement> =
        (0..100).map(|i| StreamElement::Record(vec![Value::Int(i), Value::Int(-i)])).collect();
    let buffer = encode(&rows);
    let mut reader = buffer.reader();
    let mut row = Row::with_capacity(2);
    let allocation = row.as_ptr();
    let mut seen = 0;
    while let Some(kind) = reader.next_into(&mut row).unwrap_or_else(|error| panic!("{error}")) {
        assert_eq!(kind, ElementKind::Record);
        assert_eq!(row, [Value::Int(seen), Value::Int(-seen)]);
        assert_eq!(row.as_ptr(), allocation, "the row's allocation is reused");
        seen += 1;
    }
    assert_eq!(seen, 100);
}

#[test]
fn forged_lengths_are_refused_before_allocating() {
    // A string claiming 2^62 bytes, a list claiming 2^40 items, a record claiming 2^35 fields.
    let mut string = vec![TAG_RECORD, 1, VALUE_STR];
    put_varint(&mut string, 1 << 62);
    string.extend_from_slice(b"abc");
    assert_eq!(
        decode(&string),
        Err(DecodeError::LengthTooLarge { offset: 3, what: "string length", length: 1 << 62, remaining: 3 })
    );
    let mut list = vec![TAG_RECORD, 1, VALUE_LIST];
    put_varint(&mut list, 1 << 40);
    assert!(matches!(decode(&list), Err(DecodeError::LengthTooLarge { what: "list count", .. })));
    let mut record = vec![TAG_RECORD];
    put_varint(&mut record, 1 << 35);
    record.push(VALUE_NULL);
    assert!(matches!(decode(&record), Err(DecodeError::LengthTooLarge { offset: 1, what: "field count", .. })));
}

#[test]
fn malformed_input_gives_typed_errors_with_offsets() {
    let end = [TAG_END];
    assert_eq!(decode(&[TAG_END, 0]), Err(DecodeError::UnknownTag { offset: 1, what: "element", tag: 0 }));
    assert_eq!(decode(&[TAG_RECORD, 1, 9]), Err(DecodeError::UnknownTag { offset: 2, what: "value", tag: 9 }));
    assert_eq!(decode(&[TAG_RECORD, 1, VALUE_INT]), Err(DecodeError::Truncated { offset: 3, what: "varint" }));
    assert_eq!(decode(&[TAG_WATERMARK, 1, 2]), Err(DecodeError::Truncated { offset: 1, what: "watermark" }));
    assert_eq!(decode(&[TAG_RECORD, 1, VALUE_STR, 2, 0xff, 0xfe]), Err(DecodeError::InvalidUtf8 { offset: 4 }));
    let overflow = [TAG_RECORD, 1, VALUE_INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    assert_eq!(decode(&overflow), Err(DecodeError::VarintOverflow { offset: 3 }));
    assert_eq!(decode(&[TAG_BARRIER, 1, 1, FLAG_STOP]), Err(DecodeError::BarrierFlags { offset: 3, flags: FLAG_STOP }));
    assert_eq!(decode(&[TAG_BARRIER, 1, 1, 0x10]), Err(DecodeError::BarrierFlags { offset: 3, flags: 0x10 }));
    assert_eq!(decode(&end), Ok(vec![StreamElement::EndOfInput]));
    let mut reader = BufferReader::new(&[TAG_RECORD, 1, 9, TAG_END]);
    let mut row = Row::new();
    assert!(reader.next_into(&mut row).is_err());
    assert_eq!(reader.next_into(&mut row), Ok(None), "a reader is exhausted after an error");
}

#[test]
fn lists_nested_too_deep_are_refused_without_recursing_further() {
    let mut bytes = vec![TAG_RECORD, 1];
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[VALUE_LIST, 1]);
    }
    bytes.push(VALUE_NULL);
    let offset = 2 + 2 * LIST_DEPTH_MAX;
    assert_eq!(decode(&bytes), Err(DecodeError::TooDeep { offset }));
    let mut deepest = Value::Null;
    for _ in 0..LIST_DEPTH_MAX {
        deepest = Value::List(Arc::from(vec![deepest]));
    }
    let record = vec![StreamElement::Record(vec![deepest])];
    assert_eq!(decode(encode(&record).bytes()), Ok(record), "the deepest allowed nesting round-trips");
}

fn selector(partitioner: Partitioner, consumers: u32) -> ChannelSelector {
    let schema = Schema::new([("k", Type::Int), ("v", Type::Int)]);
    let key = compile("k", &schema).unwrap_or_else(|error| panic!("{error}"));
    let spec = SelectorSpec {
        producer: SubtaskIndex(0),
        producer_parallelism: 1,
        consumer_parallelism: consumers,
        max_parallelism: 128,
        key: Some(key),
        seed: 1,
    };
    ChannelSelector::new(&partitioner, spec).unwrap_or_else(|error| panic!("{error}"))
}

fn drain(writer: &mut RecordWriter) -> Vec<(u32, Vec<StreamElement>)> {
    std::iter::from_fn(|| writer.poll_buffer())
        .map(|(channel, buffer)| (channel.0, decode(buffer.bytes()).unwrap_or_else(|error| panic!("{error}"))))
        .collect()
}

fn record(k: i64, v: i64) -> StreamElement {
    StreamElement::Record(vec![Value::Int(k), Value::Int(v)])
}

#[test]
fn writer_flushes_full_buffers_and_keeps_order_per_channel() {
    let mut writer = RecordWriter::new(selector(Partitioner::Forward, 1), 64, Duration::from_millis(100));
    for i in 0..100 {
        writer.emit(Time(i), &[Value::Int(i as i64), Value::Int(0)]).unwrap_or_else(|error| panic!("{error}"));
    }
    let full = drain(&mut writer);
    assert!(full.len() >= 100 * 6 / 64, "full buffers were sent without waiting");
    writer.flush_all();
    let mut all: Vec<StreamElement> = full.into_iter().chain(drain(&mut writer)).flat_map(|(_, els)| els).collect();
    let expected: Vec<StreamElement> = (0..100).map(|i| record(i, 0)).collect();
    assert_eq!(std::mem::take(&mut all), expected);
    let metrics = writer.metrics();
    assert_eq!(metrics.records_out, 100);
    assert!(metrics.bytes_out >= 600 && metrics.buffers_out >= 10);
}

#[test]
fn writer_flushes_on_the_buffer_timeout_only_when_due() {
    let timeout = Duration::from_millis(100);
    let mut writer = RecordWriter::new(selector(Partitioner::Rebalance, 2), 1024, timeout);
    assert_eq!(writer.poll_timeout(), None);
    writer.emit(Time(1_000), &[Value::Int(1), Value::Int(1)]).unwrap_or_else(|error| panic!("{error}"));
    writer.emit(Time(50_000), &[Value::Int(2), Value::Int(2)]).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(writer.poll_timeout(), Some(Time(101_000)));
    writer.flush_due(Time(100_999));
    assert_eq!(writer.pending_buffers(), 0, "not yet due");
    writer.flush_due(Time(101_000));
    assert_eq!(writer.pending_buffers(), 1, "only the older buffer is due");
    let first = drain(&mut writer);
    assert_eq!(first.iter().map(|(_, elements)| elements.clone()).collect::<Vec<_>>(), [vec![record(1, 1)]]);
    assert_eq!(writer.poll_timeout(), Some(Time(150_000)));
    writer.flush_due(Time(150_000));
    assert_eq!(drain(&mut writer).len(), 1, "the younger buffer on the other channel");
    assert_eq!(writer.poll_timeout(), None);
}

#[test]
fn a_zero_timeout_sends_every_record_at_once() {
    let mut writer = RecordWriter::new(selector(Partitioner::Forward, 1), 1024, Duration::ZERO);
    for i in 0..3 {
        writer.emit(Time(0), &[Value::Int(i), Value::Int(i)]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(drain(&mut writer), vec![(0, vec![record(i, i)])]);
    }
}

#[test]
fn barriers_flush_pending_records_and_reach_every_channel_in_a_buffer_of_their_own() {
    let mut writer = RecordWriter::new(selector(Partitioner::Hash { key: "k".into() }, 4), 1024, Duration::MAX);
    for k in 0..40 {
        writer.emit(Time(0), &[Value::Int(k), Value::Int(k)]).unwrap_or_else(|error| panic!("{error}"));
    }
    writer.emit_watermark(Time(0), 77);
    writer.emit_barrier(barrier(3));
    writer.emit(Time(0), &[Value::Int(0), Value::Int(1)]).unwrap_or_else(|error| panic!("{error}"));
    writer.emit_end_of_input();
    let buffers = drain(&mut writer);
    for channel in 0..4u32 {
        let mine: Vec<&Vec<StreamElement>> = buffers.iter().filter(|(c, _)| *c == channel).map(|(_, e)| e).collect();
        let barrier_at = mine.iter().position(|els| **els == vec![StreamElement::Barrier(barrier(3))]);
        let barrier_at = barrier_at.unwrap_or_else(|| panic!("channel {channel} got the barrier alone"));
        let before: Vec<&StreamElement> = mine[..barrier_at].iter().flat_map(|els| els.iter()).collect();
        assert_eq!(before.last(), Some(&&StreamElement::Watermark(77)), "watermark after the records, before");
        for element in &before[..before.len() - 1] {
            let StreamElement::Record(row) = element else { panic!("only records before the watermark") };
            let key_group = crate::dataflow::partition::key_group_of(&row[0], 128);
            assert!(crate::dataflow::partition::key_group_range(channel, 4, 128).contains(&key_group));
        }
        assert_eq!(mine.last(), Some(&&vec![StreamElement::EndOfInput]), "end of input last, alone");
    }
    assert_eq!(buffers.iter().flat_map(|(_, els)| els).filter(|e| matches!(e, StreamElement::Record(_))).count(), 41);
}

#[test]
fn broadcast_records_reach_every_channel_and_count_once() {
    let mut writer = RecordWriter::new(selector(Partitioner::Broadcast, 3), 1024, Duration::MAX);
    writer.emit(Time(0), &[Value::Int(5), Value::Int(6)]).unwrap_or_else(|error| panic!("{error}"));
    writer.flush_all();
    assert_eq!(drain(&mut writer), vec![(0, vec![record(5, 6)]), (1, vec![record(5, 6)]), (2, vec![record(5, 6)])]);
    assert_eq!(writer.metrics().records_out, 1);
}

#[test]
fn recycled_memory_is_reused_by_the_next_buffer() {
    let mut writer = RecordWriter::new(selector(Partitioner::Forward, 1), 64, Duration::ZERO);
    writer.emit(Time(0), &[Value::Int(1), Value::Int(1)]).unwrap_or_else(|error| panic!("{error}"));
    let (_, first) = writer.poll_buffer().unwrap_or_else(|| panic!("sent"));
    let bytes = first.into_bytes();
    let allocation = bytes.as_ptr();
    writer.recycle(bytes);
    writer.emit(Time(0), &[Value::Int(2), Value::Int(2)]).unwrap_or_else(|error| panic!("{error}"));
    writer.emit(Time(0), &[Value::Int(3), Value::Int(3)]).unwrap_or_else(|error| panic!("{error}"));
    let (_, second) = writer.poll_buffer().unwrap_or_else(|| panic!("sent"));
    let (_, third) = writer.poll_buffer().unwrap_or_else(|| panic!("sent"));
    assert_eq!(decode(second.bytes()), Ok(vec![record(2, 2)]));
    assert_eq!(third.bytes().as_ptr(), allocation, "the third buffer lives in the recycled memory");
}

fn batch_row_strategy() -> impl Strategy<Value = Vec<Value>> {
    let value = prop_oneof![
        6 => (-9000i64..9000).prop_map(Value::Int),
        1 => any::<i64>().prop_map(Value::Int),
        1 => Just(Value::str("text")),
        1 => Just(Value::Float(0.5)),
        1 => Just(Value::Null),
    ];
    prop::collection::vec(value, 1..=3)
}

/// The rows cut into batches: a new batch at each change of width and at each cut.
fn batches_of(rows: &[Vec<Value>], cuts: &[usize]) -> Vec<RowBatch> {
    let mut batches: Vec<RowBatch> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let same_width = batches.last().is_some_and(|batch| batch.width() == row.len());
        if !same_width || cuts.contains(&index) {
            let mut batch = RowBatch::new();
            batch.start(row.len());
            batches.push(batch);
        }
        if let Some(batch) = batches.last_mut() {
            batch.push(row);
        }
    }
    batches
}

proptest! {
    #[test]
    fn a_batch_writes_the_same_buffers_as_its_rows_one_by_one(
        rows in prop::collection::vec(batch_row_strategy(), 0..200),
        cuts in prop::collection::vec(0usize..200, 0..8),
        partitioner in prop_oneof![
            Just((Partitioner::Forward, 1)),
            Just((Partitioner::Hash { key: "k".into() }, 1)),
            Just((Partitioner::Hash { key: "k".into() }, 3)),
            Just((Partitioner::Rebalance, 2)),
        ],
        capacity in prop_oneof![Just(8usize), Just(40), Just(1024)],
        timeout in prop_oneof![Just(Duration::ZERO), Just(Duration::from_millis(1)), Just(Duration::MAX)],
    ) {
        let (partitioner, consumers) = partitioner;
        let mut single = RecordWriter::new(selector(partitioner.clone(), consumers), capacity, timeout);
        let mut batched = RecordWriter::new(selector(partitioner, consumers), capacity, timeout);
        let mut index = 0;
        for batch in batches_of(&rows, &cuts) {
            let now = Time(index as u64 * 300);
            for row in batch.iter() {
                prop_assert!(single.emit(now, row).is_ok());
            }
            prop_assert!(batched.emit_batch(now, &batch).is_ok());
            index += batch.len();
            single.flush_due(Time(index as u64 * 300));
            batched.flush_due(Time(index as u64 * 300));
        }
        single.flush_all();
        batched.flush_all();
        prop_assert_eq!(single.metrics(), batched.metrics());
        let (single, batched) = (drain(&mut single), drain(&mut batched));
        let records = |buffers: &[(u32, Vec<StreamElement>)]| -> Vec<(u32, StreamElement)> {
            buffers.iter().flat_map(|(channel, elements)| elements.iter().map(|e| (*channel, e.clone()))).collect()
        };
        prop_assert_eq!(records(&single), records(&batched), "the same records to the same channels, in order");
        prop_assert_eq!(single.len(), batched.len(), "as many buffers");
    }

    #[test]
    fn a_reader_decodes_a_buffer_into_batches_as_it_does_record_by_record(
        rows in prop::collection::vec(batch_row_strategy(), 0..100),
        max_records in 1usize..20,
    ) {
        let elements: Vec<StreamElement> = rows.iter().cloned().map(StreamElement::Record).collect();
        let buffer = encode(&elements);
        let mut reader = buffer.reader();
        let (mut batch, mut decoded) = (RowBatch::new(), Vec::new());
        loop {
            batch.truncate(0);
            let appended = reader.next_records_into(&mut batch, max_records);
            prop_assert!(appended.is_ok());
            let appended = appended.unwrap_or(0);
            if appended == 0 {
                break;
            }
            prop_assert!(appended <= max_records && appended == batch.len());
            decoded.extend(batch.iter().map(<[Value]>::to_vec));
        }
        prop_assert!(reader.is_done());
        prop_assert_eq!(decoded, rows);
    }
}

#[test]
fn a_key_that_fails_in_a_batch_stops_it_after_the_rows_before_it_as_row_by_row() {
    let schema = Schema::new([("k", Type::Int), ("v", Type::Int)]);
    let key = compile("10 / k", &schema).unwrap_or_else(|error| panic!("{error}"));
    let spec = |key| SelectorSpec {
        producer: SubtaskIndex(0),
        producer_parallelism: 1,
        consumer_parallelism: 3,
        max_parallelism: 128,
        key: Some(key),
        seed: 1,
    };
    let hash = Partitioner::Hash { key: "10 / k".into() };
    let new = || ChannelSelector::new(&hash, spec(key.clone())).unwrap_or_else(|error| panic!("{error}"));
    let (mut single, mut batched) =
        (RecordWriter::new(new(), 64, Duration::MAX), RecordWriter::new(new(), 64, Duration::MAX));
    let mut batch = RowBatch::new();
    batch.start(2);
    for k in [1, 2, 0, 3] {
        batch.push(&[Value::Int(k), Value::Int(k)]);
    }
    let one_by_one = batch.iter().try_for_each(|row| single.emit(Time(0), row));
    let error = batched.emit_batch(Time(0), &batch);
    assert_eq!(one_by_one, error);
    assert!(error.is_err(), "10 / 0 fails");
    assert_eq!(batched.metrics().records_out, 2, "the rows before the failing one were sent");
    single.flush_all();
    batched.flush_all();
    assert_eq!(drain(&mut single), drain(&mut batched));
}

proptest! {
    #[test]
    fn the_narrow_int_paths_write_and_read_the_general_encoding(
        row in prop::collection::vec(
            prop_oneof![(-8192i64..=8192).prop_map(Value::Int), any::<i64>().prop_map(Value::Int), Just(Value::Null)],
            1..=5,
        ),
    ) {
        let mut general = BufferBuilder::new(1 << 16);
        let mut batch = RowBatch::new();
        batch.start(row.len());
        for _ in 0..3 {
            general.encode_record(&row);
            batch.push(&row);
        }
        let mut fast = BufferBuilder::new(1 << 16);
        prop_assert_eq!(fast.push_records(&batch, 0), 3);
        prop_assert!(fast.push_record(&row));
        general.encode_record(&row);
        let (general, fast) = (general.finish(), fast.finish());
        prop_assert_eq!(general.bytes(), fast.bytes(), "the same bytes");
        let mut decoded = RowBatch::new();
        prop_assert_eq!(general.reader().next_records_into(&mut decoded, 10), Ok(4));
        prop_assert!(decoded.iter().all(|decoded| decoded == row.as_slice()));
    }
}

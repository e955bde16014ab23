//! Operator and chain tests, driven through chains built from planned jobs.

use super::*;
use crate::dataflow::state::{KeyGroupRange, MemoryStateStore, StateStore, subtask_for_key_group};
use crate::ids::{CheckpointId, SubtaskIndex, VertexIndex};
use crate::job::builder::StreamEnvironment;
use crate::job::validate::ValidatedJob;
use crate::job::{FileFormat, OperatorKind, TimeDomain, WindowAssigner};
use crate::plan::{JobPlan, PlanOptions, plan};
use crate::row::Row;
use crate::time::{Duration, Time};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What leaves a chain on one edge.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Sink {
    pub(super) rows: Vec<Row>,
    pub(super) watermarks: Vec<EventTime>,
}

impl Collector for Sink {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.rows.push(row.to_vec());
        Ok(())
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        self.watermarks.push(watermark);
        Ok(())
    }
}

/// Part files in memory: pending and committed, with a count of commits per part.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub(super) pending: BTreeMap<String, Vec<u8>>,
    pub(super) committed: BTreeMap<String, Vec<u8>>,
    pub(super) commits: BTreeMap<String, u32>,
}

#[derive(Clone, Default)]
pub(super) struct MemoryParts(pub(super) Arc<Mutex<Parts>>);

impl PartStore for MemoryParts {
    fn write_pending(&mut self, part: &str, bytes: &[u8]) -> Result<(), SinkIoError> {
        self.0.lock().unwrap().pending.entry(part.to_string()).or_default().extend_from_slice(bytes);
        Ok(())
    }

    fn commit(&mut self, part: &str) -> Result<(), SinkIoError> {
        let mut parts = self.0.lock().unwrap();
        if let Some(bytes) = parts.pending.remove(part) {
            parts.committed.insert(part.to_string(), bytes);
            *parts.commits.entry(part.to_string()).or_default() += 1;
            return Ok(());
        }
        match parts.committed.contains_key(part) {
            true => Ok(()),
            false => Err(SinkIoError { message: format!("no part {part}") }),
        }
    }

    fn discard(&mut self, part: &str) -> Result<(), SinkIoError> {
        self.0.lock().unwrap().pending.remove(part);
        Ok(())
    }

    fn pending_parts(&mut self) -> Result<Vec<String>, SinkIoError> {
        Ok(self.0.lock().unwrap().pending.keys().cloned().collect())
    }
}

/// A file served in reads of at most `chunk` bytes.
struct BytesReader {
    bytes: Vec<u8>,
    chunk: usize,
}

impl SourceReader for BytesReader {
    fn read(&mut self, offset: u64, max_bytes: usize, buffer: &mut Vec<u8>) -> Result<ReadOutcome, ReaderError> {
        let offset = offset as usize;
        if offset >= self.bytes.len() {
            return Ok(ReadOutcome::End);
        }
        let end = self.bytes.len().min(offset + max_bytes.min(self.chunk));
        buffer.extend_from_slice(&self.bytes[offset..end]);
        Ok(ReadOutcome::Data)
    }
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl LineWriter for Lines {
    fn write_line(&mut self, line: &str) -> Result<(), SinkIoError> {
        self.0.lock().unwrap().push(line.to_string());
        Ok(())
    }
}

/// The test driver's IO.
#[derive(Default)]
pub(super) struct TestIo {
    files: BTreeMap<String, Vec<u8>>,
    chunk: usize,
    lines: Lines,
    pub(super) parts: MemoryParts,
}

impl Connectors for TestIo {
    fn source_reader(
        &mut self,
        _operator: &OperatorContext,
        request: ReaderRequest<'_>,
    ) -> Result<Box<dyn SourceReader>, String> {
        let ReaderRequest::File { path } = request else { return Err("no sockets here".to_string()) };
        let bytes = self.files.get(path).cloned().ok_or_else(|| format!("no file {path}"))?;
        Ok(Box::new(BytesReader { bytes, chunk: self.chunk.max(1) }))
    }

    fn line_writer(&mut self, _operator: &OperatorContext) -> Result<Box<dyn LineWriter>, String> {
        Ok(Box::new(self.lines.clone()))
    }

    fn part_store(&mut self, _operator: &OperatorContext, _directory: &str) -> Result<Box<dyn PartStore>, String> {
        Ok(Box::new(self.parts.clone()))
    }

    fn keyed_state_store(&mut self, _operator: &OperatorContext) -> Result<Box<dyn StateStore>, String> {
        Ok(Box::new(MemoryStateStore::new()))
    }
}

pub(super) fn planned(job: &ValidatedJob) -> JobPlan {
    plan(job, &PlanOptions::default()).unwrap_or_else(|error| panic!("{error}"))
}

/// The vertex whose head has uid `uid`.
pub(super) fn vertex_of(plan: &JobPlan, uid: &str) -> VertexIndex {
    let operator = plan.job.graph.find(uid).unwrap_or_else(|| panic!("no operator {uid}"));
    plan.vertex_of[operator.index()]
}

/// A chain and the collectors of its output edges.
pub(super) struct Run {
    pub(super) chain: Chain,
    pub(super) edges: Vec<Sink>,
}

impl Run {
    pub(super) fn new(plan: &JobPlan, head: &str, subtask: u32, options: &ChainOptions, io: &mut TestIo) -> Run {
        let vertex = vertex_of(plan, head);
        let chain = build_chain(plan, vertex, SubtaskIndex(subtask), options, io).unwrap_or_else(|e| panic!("{e}"));
        let edges = vec![Sink::default(); chain.outputs().len()];
        Run { chain, edges }
    }

    pub(super) fn feed(&mut self, row: Row) {
        self.chain.process(0, &row, &mut self.edges).unwrap_or_else(|error| panic!("{error}"));
    }

    pub(super) fn watermark(&mut self, watermark: EventTime) {
        self.chain.watermark(watermark, &mut self.edges).unwrap_or_else(|error| panic!("{error}"));
    }

    pub(super) fn timers(&mut self, now: Time) {
        self.chain.fire_timers(now, &mut self.edges).unwrap_or_else(|error| panic!("{error}"));
    }

    pub(super) fn poll(&mut self, now: Time, max_records: usize) -> PollStatus {
        self.chain.poll(now, max_records, &mut self.edges).unwrap_or_else(|error| panic!("{error}"))
    }

    pub(super) fn drain(&mut self) {
        while self.poll(Time::ZERO, 1000) != PollStatus::Finished {}
        self.chain.end_of_input(&mut self.edges).unwrap_or_else(|error| panic!("{error}"));
    }

    pub(super) fn take(&mut self, edge: usize) -> Vec<Row> {
        std::mem::take(&mut self.edges[edge].rows)
    }
}

fn ints(values: &[i64]) -> Row {
    values.iter().map(|&v| Value::Int(v)).collect()
}

fn options() -> ChainOptions {
    ChainOptions::default()
}

#[test]
fn map_filter_and_flat_map_transform_rows_in_one_chain() {
    let env = StreamEnvironment::new("t");
    env.sequence(1, 6)
        .uid("numbers")
        .map(&[("x", "x"), ("parts", "split(concat(x, '-', x * 10), '-')")])
        .filter("x % 2 == 0")
        .flat_map("parts", "part")
        .rebalance()
        .discard();
    let plan = planned(&env.build().unwrap());
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut TestIo::default());
    run.drain();
    let parts: Vec<String> = run.take(0).iter().map(|row| row[0].to_string()).collect();
    assert_eq!(parts, ["2", "20", "4", "40", "6", "60"]);
    assert_eq!(run.edges[0].watermarks, [EventTime::MAX], "the source ends event time at end of input");
}

#[test]
fn an_operator_feeds_chained_consumers_and_output_edges_directly() {
    let env = StreamEnvironment::new("t");
    let doubled = env.sequence(1, 3).uid("numbers").map(&[("x", "x * 2")]).uid("doubled");
    doubled.filter("x > 2").uid("big").rebalance().discard().uid("far");
    doubled.rebalance().discard().uid("other");
    doubled.map(&[("x", "x + 1")]).uid("plus").rebalance().discard().uid("third");
    let plan = planned(&env.build().unwrap());
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut TestIo::default());
    assert_eq!(run.chain.operator_uids().collect::<Vec<_>>(), ["numbers", "doubled", "big", "plus"]);
    run.drain();
    let mut outputs: Vec<(String, Vec<Row>)> = Vec::new();
    for (position, edge) in run.chain.outputs().to_vec().iter().enumerate() {
        let uid = plan.job.graph.operator(plan.edges[edge.plan_edge].target_operator).uid.clone();
        outputs.push((uid, run.take(position)));
    }
    outputs.sort();
    assert_eq!(outputs[0], ("far".to_string(), vec![ints(&[4]), ints(&[6])]));
    assert_eq!(outputs[1], ("other".to_string(), vec![ints(&[2]), ints(&[4]), ints(&[6])]));
    assert_eq!(outputs[2], ("third".to_string(), vec![ints(&[3]), ints(&[5]), ints(&[7])]));
}

#[test]
fn expression_errors_fail_the_record_naming_the_operator() {
    let env = StreamEnvironment::new("t");
    env.sequence(0, 3).uid("numbers").map(&[("y", "10 / (x - 2)")]).uid("divide").rebalance().discard();
    let plan = planned(&env.build().unwrap());
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut TestIo::default());
    let error = run.chain.poll(Time::ZERO, 10, &mut run.edges).unwrap_err();
    assert_eq!(error.operator(), "divide");
    assert!(matches!(error.kind(), OperatorErrorKind::Eval(_)), "{error}");
    assert_eq!(run.take(0), vec![ints(&[-5]), ints(&[-10])]);
}

/// `generator(k, ts, v) -> watermarks(ts) -> key_by(k) -> window -> rebalance -> discard`.
pub(super) fn windowed_job(assigner: WindowAssigner, lateness: Duration, aggregates: &[(&str, &str)]) -> JobPlan {
    let env = StreamEnvironment::new("w");
    env.generator(Some(10), &[("k", "i % 3"), ("ts", "i * 10"), ("v", "i")])
        .uid("events")
        .assign_watermarks("ts", Duration::ZERO)
        .uid("stamped")
        .key_by("k")
        .window(assigner)
        .allowed_lateness(lateness)
        .aggregate(aggregates)
        .uid("window")
        .rebalance()
        .discard()
        .uid("sink");
    planned(&env.build().unwrap())
}

fn event(k: i64, ts: i64, v: i64) -> Row {
    ints(&[k, ts, v])
}

#[test]
fn count_windows_fire_every_size_records_of_a_key() {
    let plan =
        windowed_job(WindowAssigner::Count { size: 3 }, Duration::ZERO, &[("total", "sum(v)"), ("n", "count()")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    for v in 0..14 {
        run.feed(event(v % 2, 0, v));
    }
    assert_eq!(run.take(0), vec![ints(&[0, 6, 3]), ints(&[1, 9, 3]), ints(&[0, 24, 3]), ints(&[1, 27, 3])]);
    run.chain.end_of_input(&mut run.edges).unwrap();
    assert!(run.take(0).is_empty(), "a partial count window is dropped at end of input, as Flink");
}

fn tumbling(size_ms: u64, time: TimeDomain) -> WindowAssigner {
    WindowAssigner::Tumbling { size: Duration::from_millis(size_ms), time }
}

#[test]
fn tumbling_event_time_windows_handle_out_of_order_input_and_lateness() {
    let plan = windowed_job(tumbling(10, TimeDomain::Event), Duration::from_millis(5), &[("total", "sum(v)")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.feed(event(1, 3, 1));
    run.feed(event(1, 12, 10));
    run.feed(event(1, 7, 2)); // out of order, before the watermark: on time
    run.watermark(8);
    assert!(run.take(0).is_empty(), "the window [0, 10) fires only when the watermark reaches 9");
    run.watermark(9);
    assert_eq!(run.take(0), vec![ints(&[1, 3, 0, 10])]);
    run.feed(event(1, 5, 100)); // late, but within the lateness of 5 ms: updates and fires again
    assert_eq!(run.take(0), vec![ints(&[1, 103, 0, 10])]);
    run.watermark(14); // cleanup of [0, 10) at 9 + 5
    run.feed(event(1, 6, 1000)); // too late: dropped and counted
    assert!(run.take(0).is_empty());
    assert_eq!(run.chain.metrics()[0].1.late_records_dropped, 1);
    run.watermark(EventTime::MAX);
    assert_eq!(run.take(0), vec![ints(&[1, 10, 10, 20])]);
    assert_eq!(run.edges[0].watermarks, [8, 9, 14, EventTime::MAX], "watermarks are forwarded after firing");
}

#[test]
fn without_lateness_a_window_is_dropped_when_it_fires() {
    let plan = windowed_job(tumbling(10, TimeDomain::Event), Duration::ZERO, &[("n", "count()")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.feed(event(2, 1, 0));
    run.watermark(9);
    run.feed(event(2, 9, 0));
    assert_eq!(run.take(0), vec![ints(&[2, 1, 0, 10])]);
    assert_eq!(run.chain.metrics()[0].1.late_records_dropped, 1);
}

#[test]
fn sliding_event_time_windows_put_a_record_in_every_window_it_falls_into() {
    let assigner = WindowAssigner::Sliding {
        size: Duration::from_millis(10),
        slide: Duration::from_millis(5),
        time: TimeDomain::Event,
    };
    let plan = windowed_job(assigner, Duration::ZERO, &[("total", "sum(v)")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.feed(event(0, 7, 1));
    run.feed(event(0, 12, 10));
    run.watermark(EventTime::MAX);
    let rows = run.take(0);
    assert_eq!(rows, vec![ints(&[0, 1, 0, 10]), ints(&[0, 11, 5, 15]), ints(&[0, 10, 10, 20])]);
}

#[test]
fn session_windows_merge_when_a_record_bridges_them() {
    let gap = Duration::from_millis(10);
    let session = WindowAssigner::Session { gap, time: TimeDomain::Event };
    let aggregates = [("n", "count()"), ("low", "min(v)"), ("first", "first(v)"), ("last", "last(v)")];
    let plan = windowed_job(session, Duration::ZERO, &aggregates);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.feed(event(7, 0, 5)); // [0, 10)
    run.feed(event(7, 25, 6)); // [25, 35)
    run.feed(event(7, 40, 7)); // [40, 50): touches [25, 35)? no, 35 < 40
    run.feed(event(7, 14, 1)); // [14, 24): touches neither [0, 10) nor [25, 35)
    run.feed(event(7, 9, 2)); // [9, 19): merges [0, 10) and [14, 24) into [0, 24)
    run.feed(event(8, 3, 9));
    run.watermark(30);
    let fired = run.take(0);
    let first_session = [Value::Int(7), Value::Int(3), Value::Int(1), Value::Int(5), Value::Int(2)];
    let expected_end = [Value::Int(0), Value::Int(24)];
    assert_eq!(fired.len(), 2, "{fired:?}");
    let other_key: Row = vec![8.into(), 1.into(), 9.into(), 9.into(), 9.into(), 3.into(), 13.into()];
    assert_eq!(fired[0], other_key, "timers fire in time order: [3, 13) before [0, 24)");
    assert_eq!(fired[1][..5], first_session[..], "first and last follow arrival order across the merge");
    assert_eq!(fired[1][5..], expected_end);
    run.feed(event(7, 33, 3)); // [33, 43): bridges [25, 35) and [40, 50)
    run.watermark(EventTime::MAX);
    let rest = run.take(0);
    assert_eq!(rest, vec![vec![7.into(), 3.into(), 3.into(), 6.into(), 3.into(), 25.into(), 50.into()]]);
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

#[test]
fn processing_time_windows_fire_by_timers() {
    let plan = windowed_job(tumbling(1000, TimeDomain::Processing), Duration::ZERO, &[("n", "count()")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.timers(Time(1_500_000));
    run.feed(event(1, 0, 0));
    run.feed(event(2, 0, 0));
    run.feed(event(1, 0, 0));
    assert_eq!(run.chain.next_timer(), Some(Time(2_000_000)), "the window [1000, 2000) fires at 2 s");
    run.timers(Time(1_999_999));
    assert!(run.take(0).is_empty(), "an early call fires nothing");
    run.timers(Time(2_000_000));
    run.feed(event(1, 0, 0));
    assert_eq!(run.take(0), vec![ints(&[1, 2, 1000, 2000]), ints(&[2, 1, 1000, 2000])]);
    assert_eq!(run.chain.next_timer(), Some(Time(3_000_000)));
    run.chain.end_of_input(&mut run.edges).unwrap();
    assert!(run.take(0).is_empty(), "pending processing-time timers do not fire at end of input, as Flink");
}

#[test]
fn running_aggregation_emits_the_updated_result_for_every_record() {
    let env = StreamEnvironment::new("agg");
    env.sequence(1, 6)
        .uid("numbers")
        .map(&[("word", "if(x % 2 == 0, 'even', 'odd')"), ("x", "x")])
        .key_by("word")
        .aggregate(&[("n", "count()"), ("total", "sum(x)"), ("longest", "reduce(max(acc, x), 0)")])
        .uid("counts")
        .rebalance()
        .discard();
    let plan = planned(&env.build().unwrap());
    let mut run = Run::new(&plan, "counts", 0, &options(), &mut TestIo::default());
    for x in 1..=4 {
        let word = if x % 2 == 0 { "even" } else { "odd" };
        run.feed(vec![Value::str(word), Value::Int(x)]);
    }
    let rows = run.take(0);
    let expected: Vec<Row> = vec![
        vec![Value::str("odd"), 1.into(), 1.into(), 1.into()],
        vec![Value::str("even"), 1.into(), 2.into(), 2.into()],
        vec![Value::str("odd"), 2.into(), 4.into(), 3.into()],
        vec![Value::str("even"), 2.into(), 6.into(), 4.into()],
    ];
    assert_eq!(rows, expected);
}

#[test]
fn watermarks_trail_the_highest_timestamp_and_are_emitted_periodically() {
    let env = StreamEnvironment::new("wm");
    env.generator(Some(4), &[("ts", "if(i == 2, 5, i * 100)")])
        .uid("events")
        .assign_watermarks("ts", Duration::from_millis(50))
        .uid("stamped")
        .rebalance()
        .discard();
    let plan = planned(&env.build().unwrap());
    let options = ChainOptions { auto_watermark_interval: Duration::from_millis(200), ..ChainOptions::default() };
    let mut run = Run::new(&plan, "events", 0, &options, &mut TestIo::default());
    assert_eq!(run.chain.next_timer(), Some(Time::ZERO));
    run.timers(Time::ZERO);
    assert!(run.edges[0].watermarks.is_empty(), "no record, no watermark");
    run.poll(Time::ZERO, 3); // timestamps 0, 100, 5
    run.timers(Time(100_000));
    assert!(run.edges[0].watermarks.is_empty(), "the next periodic watermark is due at 200 ms");
    assert_eq!(run.chain.next_timer(), Some(Time(200_000)));
    run.timers(Time(200_000));
    assert_eq!(run.edges[0].watermarks, [100 - 50 - 1]);
    run.timers(Time(400_000));
    assert_eq!(run.edges[0].watermarks, [49], "an unchanged watermark is not emitted again");
    run.drain();
    assert_eq!(run.edges[0].watermarks, [49, EventTime::MAX]);
    assert_eq!(run.take(0).len(), 4);
}

fn sequence_job(from: i64, to: i64, parallelism: u32) -> JobPlan {
    let env = StreamEnvironment::new("seq");
    env.set_parallelism(parallelism);
    env.sequence(from, to).uid("numbers").rebalance().discard();
    planned(&env.build().unwrap())
}

fn xs(rows: &[Row]) -> Vec<i64> {
    rows.iter()
        .map(|row| match row[0] {
            Value::Int(x) => x,
            ref other => panic!("not an int: {other}"),
        })
        .collect()
}

#[test]
fn sequence_splits_its_range_evenly_like_flink() {
    let plan = sequence_job(0, 9, 3);
    let shares: Vec<Vec<i64>> = (0..3)
        .map(|subtask| {
            let mut run = Run::new(&plan, "numbers", subtask, &options(), &mut TestIo::default());
            run.drain();
            xs(&run.take(0))
        })
        .collect();
    assert_eq!(shares, vec![vec![0, 1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
    let extremes = sequence_job(i64::MAX - 2, i64::MAX, 1);
    let mut run = Run::new(&extremes, "numbers", 0, &options(), &mut TestIo::default());
    run.drain();
    assert_eq!(xs(&run.take(0)), [i64::MAX - 2, i64::MAX - 1, i64::MAX]);
}

#[test]
fn a_restored_sequence_continues_exactly_after_the_checkpoint_at_any_parallelism() {
    let plan = sequence_job(1, 100, 4);
    let mut before = Vec::new();
    let mut snapshots = Vec::new();
    for subtask in 0..4 {
        let mut run = Run::new(&plan, "numbers", subtask, &options(), &mut TestIo::default());
        run.poll(Time::ZERO, 7 + subtask as usize);
        snapshots.push(run.chain.snapshot(CheckpointId(1), true).unwrap());
        run.poll(Time::ZERO, 3); // after the checkpoint: lost in the failure
        before.extend(xs(&run.take(0))[..7 + subtask as usize].to_vec());
    }
    for parallelism in [4u32, 2, 3, 5] {
        let rescaled = sequence_job(1, 100, parallelism);
        let mut all = before.clone();
        for subtask in 0..parallelism {
            let mut run = Run::new(&rescaled, "numbers", subtask, &options(), &mut TestIo::default());
            run.chain.restore(&snapshots).unwrap();
            run.drain();
            all.extend(xs(&run.take(0)));
        }
        all.sort();
        assert_eq!(all, (1..=100).collect::<Vec<_>>(), "p=4 -> p={parallelism}: every number exactly once");
    }
}

#[test]
fn a_rate_limited_source_paces_itself_by_the_time_it_is_given() {
    let env = StreamEnvironment::new("rate");
    let numbers = env.sequence(0, 99).uid("numbers");
    numbers.rebalance().discard();
    let mut graph = env.build().unwrap().graph;
    graph.operators[0].kind = OperatorKind::Sequence { from: 0, to: 99, rate_per_second: Some(10) };
    let plan = planned(&crate::job::validate::validate(graph).unwrap());
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut TestIo::default());
    assert_eq!(run.poll(Time(1_000_000), 100), PollStatus::Idle);
    assert_eq!(run.take(0).len(), 1, "one record at once");
    assert_eq!(run.chain.next_timer(), Some(Time(1_100_000)));
    assert_eq!(run.poll(Time(1_050_000), 100), PollStatus::Idle);
    assert!(run.take(0).is_empty());
    run.poll(Time(1_500_000), 100);
    assert_eq!(run.take(0).len(), 5, "ten per second");
    assert_eq!(run.poll(Time(1_500_000), 100), PollStatus::Idle);
    run.poll(Time(100_000_000), 100);
    assert_eq!(run.take(0).len(), 94);
    assert_eq!(run.poll(Time(100_000_000), 100), PollStatus::Finished);
}

#[test]
fn an_unbounded_generator_interleaves_indexes_over_subtasks() {
    let env = StreamEnvironment::new("gen");
    env.set_parallelism(3);
    env.generator(None, &[("i", "i"), ("name", "concat('n', i)")]).uid("gen").rebalance().discard();
    let plan = planned(&env.build().unwrap());
    let mut run = Run::new(&plan, "gen", 1, &options(), &mut TestIo::default());
    assert_eq!(run.poll(Time::ZERO, 4), PollStatus::Available);
    let rows = run.take(0);
    assert_eq!(xs(&rows), [1, 4, 7, 10]);
    assert_eq!(rows[3][1], Value::str("n10"));
}

fn file_job(format: FileFormat, columns: &[(&str, crate::row::Type)], parallelism: u32) -> JobPlan {
    let env = StreamEnvironment::new("file");
    env.set_parallelism(parallelism);
    env.text_file("/in").uid("lines").rebalance().discard();
    let mut graph = env.build().unwrap().graph;
    let columns = columns.iter().map(|(name, ty)| crate::job::Column { name: name.to_string(), ty: *ty }).collect();
    graph.operators[0].kind = OperatorKind::FileSource { path: "/in".to_string(), format, columns };
    planned(&crate::job::validate::validate(graph).unwrap())
}

fn file_io(text: &str, chunk: usize) -> TestIo {
    TestIo { files: BTreeMap::from([("/in".to_string(), text.as_bytes().to_vec())]), chunk, ..TestIo::default() }
}

#[test]
fn a_file_source_reads_lines_and_resumes_at_the_checkpointed_byte_offset() {
    let plan = file_job(FileFormat::Text, &[], 1);
    let text = "alpha\r\nbeta\n\ngamma\ndelta";
    let mut io = file_io(text, 3);
    let mut run = Run::new(&plan, "lines", 0, &options(), &mut io);
    run.poll(Time::ZERO, 2);
    let snapshot = run.chain.snapshot(CheckpointId(1), true).unwrap();
    let first: Vec<String> = run.take(0).iter().map(|row| row[0].to_string()).collect();
    assert_eq!(first, ["alpha", "beta"]);
    let mut restored = Run::new(&plan, "lines", 0, &options(), &mut io);
    restored.chain.restore(&[snapshot]).unwrap();
    restored.drain();
    let rest: Vec<String> = restored.take(0).iter().map(|row| row[0].to_string()).collect();
    assert_eq!(rest, ["", "gamma", "delta"], "a last line without newline counts");
    let mut other = Run::new(&file_job(FileFormat::Text, &[], 2), "lines", 1, &options(), &mut io);
    assert_eq!(other.poll(Time::ZERO, 10), PollStatus::Finished, "one file, read by subtask 0");
}

#[test]
fn a_csv_source_converts_columns_and_refuses_bad_lines() {
    use crate::row::Type;
    let plan = file_job(FileFormat::Csv, &[("name", Type::Str), ("n", Type::Int), ("x", Type::Any)], 1);
    let mut io = file_io("\"a, b\",1,2.5\n\"say \"\"hi\"\"\",,z\nc,oops,1\n", 64);
    let mut run = Run::new(&plan, "lines", 0, &options(), &mut io);
    let error = run.chain.poll(Time::ZERO, 10, &mut run.edges).unwrap_err();
    assert!(matches!(error.kind(), OperatorErrorKind::Record(_)), "{error}");
    assert!(error.to_string().contains("column `n`"), "{error}");
    let rows = run.take(0);
    assert_eq!(rows[0], vec![Value::str("a, b"), Value::Int(1), Value::Float(2.5)]);
    assert_eq!(rows[1], vec![Value::str("say \"hi\""), Value::Null, Value::str("z")]);
}

#[test]
fn print_writes_the_prefix_and_the_record() {
    let env = StreamEnvironment::new("print");
    env.sequence(1, 2).uid("numbers").map(&[("x", "x"), ("s", "concat('n', x)")]).print("out: ");
    let plan = planned(&env.build().unwrap());
    let mut io = TestIo::default();
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut io);
    run.drain();
    assert_eq!(*io.lines.0.lock().unwrap(), ["out: 1,n1", "out: 2,n2"]);
}

pub(super) fn file_sink_job(parallelism: u32, format: FileFormat) -> JobPlan {
    let env = StreamEnvironment::new("sink");
    env.set_parallelism(parallelism);
    env.sequence(0, 999).uid("numbers").map(&[("x", "x"), ("s", "concat('n,', x)")]).file_sink("/out", format);
    planned(&env.build().unwrap())
}

fn committed_text(parts: &MemoryParts) -> String {
    let parts = parts.0.lock().unwrap();
    parts.committed.values().map(|bytes| String::from_utf8_lossy(bytes).into_owned()).collect()
}

#[test]
fn the_file_sink_commits_a_part_only_when_its_checkpoint_completes() {
    let plan = file_sink_job(1, FileFormat::Csv);
    let mut io = TestIo::default();
    let checkpointing = ChainOptions { checkpointing: true, ..options() };
    let mut run = Run::new(&plan, "numbers", 0, &checkpointing, &mut io);
    run.poll(Time::ZERO, 2);
    run.chain.snapshot(CheckpointId(1), true).unwrap();
    assert!(committed_text(&io.parts).is_empty(), "pending until the checkpoint completes");
    assert_eq!(io.parts.0.lock().unwrap().pending.keys().collect::<Vec<_>>(), ["part-0-1"]);
    run.chain.notify_checkpoint_complete(CheckpointId(1)).unwrap();
    assert_eq!(committed_text(&io.parts), "0,\"n,0\"\n1,\"n,1\"\n");
    run.poll(Time::ZERO, 1);
    run.chain.end_of_input(&mut run.edges).unwrap();
    run.chain.snapshot(CheckpointId(2), true).unwrap();
    run.chain.notify_checkpoint_complete(CheckpointId(2)).unwrap();
    let parts = io.parts.0.lock().unwrap();
    assert_eq!(parts.committed.keys().collect::<Vec<_>>(), ["part-0-1", "part-0-2"]);
}

#[test]
fn a_crash_between_snapshot_and_notify_commits_the_part_exactly_once_after_restore() {
    let plan = file_sink_job(1, FileFormat::Text);
    let mut io = TestIo::default();
    let checkpointing = ChainOptions { checkpointing: true, ..options() };
    let mut run = Run::new(&plan, "numbers", 0, &checkpointing, &mut io);
    run.poll(Time::ZERO, 3);
    let snapshot = run.chain.snapshot(CheckpointId(1), true).unwrap();
    run.poll(Time::ZERO, 2); // records after the checkpoint: in part-0-2, never committed
    run.chain.snapshot(CheckpointId(2), true).unwrap(); // checkpoint 2 never completes
    run.poll(Time::ZERO, 1);
    drop(run); // crash: checkpoint 1 completed, but the notification never arrived
    assert_eq!(io.parts.0.lock().unwrap().pending.len(), 2);
    let mut restored = Run::new(&plan, "numbers", 0, &checkpointing, &mut io);
    restored.chain.restore(std::slice::from_ref(&snapshot)).unwrap();
    {
        let parts = io.parts.0.lock().unwrap();
        assert_eq!(parts.commits.get("part-0-1"), Some(&1), "the restored pending part is committed");
        assert!(parts.pending.is_empty(), "parts of the failed attempt are discarded");
    }
    restored.drain();
    restored.chain.snapshot(CheckpointId(3), true).unwrap();
    restored.chain.notify_checkpoint_complete(CheckpointId(3)).unwrap();
    let mut again = Run::new(&plan, "numbers", 0, &checkpointing, &mut io);
    again.chain.restore(&[snapshot]).unwrap(); // restoring checkpoint 1 once more commits nothing twice
    let parts = io.parts.0.lock().unwrap();
    assert_eq!(parts.commits.values().copied().max(), Some(1), "every part committed exactly once");
    drop(parts);
    let text = committed_text(&io.parts);
    let expected: String = (0..1000).map(|x| format!("{x},n,{x}\n")).collect();
    assert_eq!(text, expected);
}

#[test]
fn after_a_rescale_every_pending_part_has_exactly_one_owner() {
    let plan = file_sink_job(3, FileFormat::Json);
    let mut io = TestIo::default();
    let checkpointing = ChainOptions { checkpointing: true, ..options() };
    let mut snapshots = Vec::new();
    for subtask in 0..3 {
        let mut run = Run::new(&plan, "numbers", subtask, &checkpointing, &mut io);
        run.poll(Time::ZERO, 2);
        snapshots.push(run.chain.snapshot(CheckpointId(4), true).unwrap());
        run.poll(Time::ZERO, 1); // a leftover part-<subtask>-5
    }
    let rescaled = file_sink_job(2, FileFormat::Json);
    for subtask in 0..2 {
        let mut run = Run::new(&rescaled, "numbers", subtask, &checkpointing, &mut io);
        run.chain.restore(&snapshots).unwrap();
    }
    let parts = io.parts.0.lock().unwrap();
    assert!(parts.pending.is_empty(), "leftovers discarded: {:?}", parts.pending.keys());
    assert_eq!(parts.committed.keys().collect::<Vec<_>>(), ["part-0-1", "part-1-1", "part-2-1"]);
    assert!(parts.commits.values().all(|&count| count == 1));
    let first = String::from_utf8_lossy(&parts.committed["part-0-1"]).into_owned();
    assert_eq!(first, "{\"x\":0,\"s\":\"n,0\"}\n{\"x\":1,\"s\":\"n,1\"}\n");
}

#[test]
fn without_checkpointing_the_file_sink_commits_at_end_of_input() {
    let plan = file_sink_job(1, FileFormat::Csv);
    let mut io = TestIo::default();
    let mut run = Run::new(&plan, "numbers", 0, &options(), &mut io);
    run.drain();
    assert_eq!(committed_text(&io.parts).lines().count(), 1000);
}

#[test]
fn window_state_restores_at_another_parallelism_with_every_key_once() {
    let plan_at = |parallelism: u32| {
        let env = StreamEnvironment::new("w");
        env.set_parallelism(parallelism);
        env.generator(Some(1), &[("k", "i"), ("ts", "i"), ("v", "i")])
            .uid("events")
            .key_by("k")
            .window(WindowAssigner::Count { size: 2 })
            .aggregate(&[("total", "sum(v)")])
            .uid("window")
            .rebalance()
            .discard();
        planned(&env.build().unwrap())
    };
    let owner = |key: i64, parallelism: u32| {
        let key_group = crate::dataflow::state::key_group_of(&Value::Int(key), 128);
        subtask_for_key_group(128, parallelism, key_group).0
    };
    let old = plan_at(4);
    let mut snapshots = Vec::new();
    for subtask in 0..4 {
        let mut run = Run::new(&old, "window", subtask, &options(), &mut TestIo::default());
        for key in (0..200).filter(|&key| owner(key, 4) == subtask) {
            run.feed(event(key, 0, key));
        }
        snapshots.push(run.chain.snapshot(CheckpointId(1), true).unwrap());
    }
    for parallelism in [2u32, 3] {
        let new = plan_at(parallelism);
        let mut fired = Vec::new();
        for subtask in 0..parallelism {
            let mut run = Run::new(&new, "window", subtask, &options(), &mut TestIo::default());
            run.chain.restore(&snapshots).unwrap();
            assert!(!KeyGroupRange::for_subtask(128, parallelism, SubtaskIndex(subtask)).is_empty());
            for key in (0..200).filter(|&key| owner(key, parallelism) == subtask) {
                run.feed(event(key, 0, 1000));
            }
            fired.extend(run.take(0));
        }
        fired.sort();
        let expected: Vec<Row> = (0..200).map(|key| ints(&[key, key + 1000])).collect();
        assert_eq!(fired, expected, "p=4 -> p={parallelism}");
    }
}

#[test]
fn chain_snapshots_survive_bytes_and_corrupt_bytes_are_refused() {
    let plan = windowed_job(tumbling(10, TimeDomain::Event), Duration::ZERO, &[("total", "sum(v)")]);
    let mut run = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
    run.feed(event(1, 3, 1));
    let snapshot = run.chain.snapshot(CheckpointId(9), true).unwrap();
    let bytes = snapshot.to_bytes().unwrap();
    assert_eq!(ChainSnapshot::from_bytes(&bytes), Ok(snapshot));
    for cut in 1..bytes.len() {
        if let Ok(decoded) = ChainSnapshot::from_bytes(&bytes[..cut]) {
            let mut fresh = Run::new(&plan, "window", 0, &options(), &mut TestIo::default());
            let _ = fresh.chain.restore(&[decoded]);
        }
    }
}

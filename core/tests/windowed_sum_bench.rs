//! Throughput of the windowed-sum operator chains in one thread, without buffers between them:
//! `[sequence -> map]` feeds `[window(count 1000, sum) -> discard]` directly through its
//! output edge, as one task would feed the next if they shared a thread.
//!
//! This lives outside `core/src` because it reads a clock, which the core must not.
//! Run with:
//! `cargo test -p weir-core --release --test windowed_sum_bench -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;
use weir_core::dataflow::EventTime;
use weir_core::dataflow::operators::{
    Chain, ChainOptions, Collector, Connectors, LineWriter, OperatorContext, OperatorError, PartStore, PollStatus,
    ReaderRequest, SourceReader, build_chain,
};
use weir_core::expr::stable_hash;
use weir_core::ids::SubtaskIndex;
use weir_core::job::WindowAssigner;
use weir_core::job::builder::StreamEnvironment;
use weir_core::plan::{JobPlan, PlanOptions, plan};
use weir_core::row::Value;
use weir_core::time::Time;

const RECORDS: i64 = 50_000_000;
const BATCH: usize = 64 * 1024;

struct NoIo;

impl Connectors for NoIo {
    fn source_reader(&mut self, _: &OperatorContext, _: ReaderRequest<'_>) -> Result<Box<dyn SourceReader>, String> {
        Err("no IO in this benchmark".to_string())
    }

    fn line_writer(&mut self, _: &OperatorContext) -> Result<Box<dyn LineWriter>, String> {
        Err("no IO in this benchmark".to_string())
    }

    fn part_store(&mut self, _: &OperatorContext, _: &str) -> Result<Box<dyn PartStore>, String> {
        Err("no IO in this benchmark".to_string())
    }
}

/// An edge that must not be used (the window chain ends in a chained sink).
struct NoEdge;

impl Collector for NoEdge {
    fn collect(&mut self, _: &[Value]) -> Result<(), OperatorError> {
        unreachable!("the window chain has no output edge")
    }

    fn emit_watermark(&mut self, _: EventTime) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// The hash edge between the chains, fed directly.
struct Pipe<'a> {
    window: &'a mut Chain,
}

impl Collector for Pipe<'_> {
    #[inline]
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.window.process(0, row, &mut [] as &mut [NoEdge])
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        self.window.watermark(watermark, &mut [] as &mut [NoEdge])
    }
}

/// Counts records, keeps a checksum so nothing is optimised away.
#[derive(Default)]
struct Count {
    records: u64,
    checksum: i64,
}

impl Collector for Count {
    #[inline]
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.records += 1;
        if let Some(Value::Int(v)) = row.last() {
            self.checksum = self.checksum.wrapping_add(*v);
        }
        Ok(())
    }

    fn emit_watermark(&mut self, _: EventTime) -> Result<(), OperatorError> {
        Ok(())
    }
}

fn windowed_sum(records: i64) -> JobPlan {
    let env = StreamEnvironment::new("windowed-sum");
    env.set_parallelism(1);
    env.sequence(0, records - 1)
        .uid("numbers")
        .map(&[("k", "x % 1000"), ("v", "x % 101")])
        .uid("pairs")
        .key_by("k")
        .window(WindowAssigner::Count { size: 1000 })
        .aggregate(&[("v", "sum(v)")])
        .uid("sums")
        .discard()
        .uid("sink");
    plan(&env.build().expect("valid job"), &PlanOptions::default()).expect("planned")
}

fn chain(plan: &JobPlan, head: &str) -> Chain {
    let operator = plan.job.graph.find(head).expect("operator");
    let vertex = plan.vertex_of[operator.index()];
    build_chain(plan, vertex, SubtaskIndex(0), &ChainOptions::default(), &mut NoIo).expect("chain")
}

/// Nanoseconds this thread has run on a CPU (Linux), so that other processes sharing the
/// machine do not count; wall time where that is not available.
fn cpu_nanos(wall: Instant) -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let on_cpu = schedstat.split_whitespace().next().and_then(|field| field.parse().ok());
    on_cpu.unwrap_or_else(|| wall.elapsed().as_nanos() as u64)
}

/// Runs `work` (which returns the records it handled) three times and reports the fastest.
fn measure(label: &str, mut work: impl FnMut() -> u64) {
    let epoch = Instant::now();
    let mut best = f64::MAX;
    let mut records = 0;
    for _ in 0..3 {
        let (cpu_before, wall_before) = (cpu_nanos(epoch), Instant::now());
        records = work();
        let cpu = (cpu_nanos(epoch) - cpu_before) as f64 / 1e9;
        let wall = wall_before.elapsed().as_secs_f64();
        best = best.min(if cpu > 0.0 { cpu } else { wall });
    }
    let rate = records as f64 / best / 1e6;
    let ns = best * 1e9 / records as f64;
    println!("{label:<48} {records:>10} records {best:6.3} s CPU {rate:7.2} M records/s {ns:6.1} ns/record");
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_whole_job() {
    let plan = windowed_sum(RECORDS);
    measure("whole job: sequence -> map => window -> discard", || {
        let (mut source, mut window) = (chain(&plan, "numbers"), chain(&plan, "sums"));
        while source.poll(Time::ZERO, BATCH, &mut [Pipe { window: &mut window }]).expect("poll") != PollStatus::Finished {}
        source.end_of_input(&mut [Pipe { window: &mut window }]).expect("end");
        window.end_of_input(&mut [] as &mut [NoEdge]).expect("end");
        RECORDS as u64
    });
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_source_chain() {
    let plan = windowed_sum(RECORDS);
    measure("sequence -> map into a counting edge", || {
        let mut source = chain(&plan, "numbers");
        let mut count = Count::default();
        while source.poll(Time::ZERO, BATCH, std::slice::from_mut(&mut count)).expect("poll") != PollStatus::Finished {}
        black_box(count.checksum);
        count.records
    });
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_window_chain() {
    let plan = windowed_sum(RECORDS);
    measure("window -> discard fed rows directly", || {
        let mut window = chain(&plan, "sums");
        let mut row = vec![Value::Int(0), Value::Int(0)];
        for x in 0..RECORDS {
            row[0] = Value::Int(x % 1000);
            row[1] = Value::Int(x % 101);
            window.process(0, black_box(&row), &mut [] as &mut [NoEdge]).expect("process");
        }
        RECORDS as u64
    });
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_key_group_hash() {
    measure("key group (stable_hash % 128) alone", || {
        let mut hashes = 0u64;
        for x in 0..RECORDS {
            hashes = hashes.wrapping_add(stable_hash(black_box(&Value::Int(x % 1000))) % 128);
        }
        black_box(hashes);
        RECORDS as u64
    });
}

#[test]
fn windowed_sum_chains_fire_one_window_per_thousand_records() {
    let records = 2_000_000;
    let plan = windowed_sum(records);
    let (mut source, mut window) = (chain(&plan, "numbers"), chain(&plan, "sums"));
    while source.poll(Time::ZERO, BATCH, &mut [Pipe { window: &mut window }]).expect("poll") != PollStatus::Finished {}
    let metrics = window.metrics();
    assert_eq!(metrics.len(), 2, "window and discard in one chain");
    let env = StreamEnvironment::new("check");
    drop(env);
}

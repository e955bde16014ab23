//! Throughput of the windowed-sum job in one thread: `[sequence -> map]` feeds
//! `[window(count 1000, sum) -> discard]` over a hash edge.
//!
//! - `bench_task_runners_p1` / `bench_task_runners_p2`: the job's `TaskRunner`s driven by their
//!   step function, buffers moved between them as a driver would (the goal's measure); at
//!   parallelism 2 there are two runners per chain, still on one thread, so the ratio to
//!   parallelism 1 shows what the hash edge and the extra channels cost.
//! - the others: the chains alone, without buffers between them (the source chain's edge calls
//!   the window chain directly), and their parts.
//!
//! This lives outside `core/` because it reads a clock and `/proc`, which nothing in the core
//! may do, tests included (`tests/tidy.rs` checks). Run with:
//! `cargo test -p weir-tests --release --test windowed_sum_bench -- --ignored --nocapture`
//! (the figures are the best of three runs, in CPU time of the running thread, so that other
//! processes sharing the machine do not count).

// A benchmark reads clocks and `/proc`; the core it measures does not.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;
use weir_core::config::Config;
use weir_core::dataflow::EventTime;
use weir_core::dataflow::buffer::Buffer;
use weir_core::dataflow::operators::{
    Chain, ChainOptions, Collector, Connectors, LineWriter, OperatorContext, OperatorError, PartStore, PollStatus,
    ReaderRequest, SourceReader, build_chain,
};
use weir_core::dataflow::partition::ChannelIndex;
use weir_core::dataflow::state::{MemoryStateStore, StateStore};
use weir_core::dataflow::task::{StepStatus, TaskOutput, TaskRunner, TaskSetup};
use weir_core::expr::stable_hash;
use weir_core::ids::{AttemptNumber, Hex128, JobId, SubtaskIndex};
use weir_core::job::WindowAssigner;
use weir_core::job::builder::StreamEnvironment;
use weir_core::plan::{JobPlan, PlanOptions, plan};
use weir_core::protocol::ExecutionId;
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

    fn keyed_state_store(&mut self, _operator: &OperatorContext) -> Result<Box<dyn StateStore>, String> {
        Ok(Box::new(MemoryStateStore::new()))
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
    windowed_sum_at(records, 1)
}

fn windowed_sum_at(records: i64, parallelism: u32) -> JobPlan {
    let env = StreamEnvironment::new("windowed-sum");
    env.set_parallelism(parallelism);
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

/// One task of the driven job and the buffers waiting for its input channels.
struct Driven {
    runner: TaskRunner,
    inbox: VecDeque<(ChannelIndex, Buffer)>,
    done: bool,
}

/// Every task of `plan`, built from the default configuration without checkpoints.
fn task_runners(plan: &JobPlan, config: &Config) -> Vec<Driven> {
    let mut tasks = Vec::new();
    for vertex in &plan.vertices {
        for subtask in (0..vertex.parallelism).map(SubtaskIndex) {
            let execution =
                ExecutionId { job: JobId(Hex128(1)), vertex: vertex.index, subtask, attempt: AttemptNumber(0) };
            let setup = TaskSetup {
                execution,
                plan,
                config,
                restore: Vec::new(),
                connectors: &mut NoIo,
                seed: 0,
                wait_for_final_checkpoint: false,
                restore_finished: false,
            };
            let runner = TaskRunner::new(setup).expect("task");
            tasks.push(Driven { runner, inbox: VecDeque::new(), done: false });
        }
    }
    tasks
}

/// Drives every task to its end on this thread, as a driver would: step each task, move its
/// buffers to the consumer's input channel (holding them while the channel is full). Returns
/// the records that entered the window tasks.
fn drive(plan: &JobPlan, config: &Config) -> u64 {
    let mut tasks = task_runners(plan, config);
    let first_task: Vec<usize> = plan
        .vertices
        .iter()
        .scan(0, |next, vertex| {
            let first = *next;
            *next += vertex.parallelism as usize;
            Some(first)
        })
        .collect();
    while tasks.iter().any(|task| !task.done) {
        for index in 0..tasks.len() {
            let task = &mut tasks[index];
            while let Some((channel, buffer)) = task.inbox.pop_front() {
                if let Err(refused) = task.runner.push_buffer(channel, buffer) {
                    task.inbox.push_front((channel, refused.item));
                    break;
                }
            }
            if !task.done {
                let status = task.runner.step(Time::ZERO, 1 << 16);
                task.done = matches!(status, StepStatus::Finished);
                assert!(!matches!(status, StepStatus::Failed | StepStatus::Canceled), "task {index}: {status:?}");
            }
            let producer = task.runner.execution().subtask;
            while let Some(output) = tasks[index].runner.poll_output() {
                let TaskOutput::Buffer { edge, consumer, buffer } = output else { continue };
                let target = &mut tasks[first_task[plan.edges[edge].target.index()] + consumer.index()];
                let channel = target.runner.input_channel(edge, producer).expect("a channel");
                target.inbox.push_back((channel, buffer));
            }
        }
    }
    let windows = first_task[plan.vertices.len() - 1]..tasks.len();
    tasks[windows].iter().map(|task| task.runner.metrics().records_in).sum()
}

fn bench_task_runners(parallelism: u32) {
    let plan = windowed_sum_at(RECORDS, parallelism);
    let mut config = Config::default();
    config.checkpoint.interval = None;
    let label = format!("task runners, p={parallelism}: sequence -> map => window");
    measure(&label, || {
        let records_in = drive(&plan, &config);
        assert_eq!(records_in, RECORDS as u64, "every record reached a window task");
        records_in
    });
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_task_runners_p1() {
    bench_task_runners(1);
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_task_runners_p2() {
    bench_task_runners(2);
}

#[test]
fn the_driven_task_runners_deliver_every_record_at_parallelism_2() {
    let plan = windowed_sum_at(200_000, 2);
    let config = Config::default();
    assert_eq!(drive(&plan, &config), 200_000);
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn bench_whole_job() {
    let plan = windowed_sum(RECORDS);
    measure("whole job: sequence -> map => window -> discard", || {
        let (mut source, mut window) = (chain(&plan, "numbers"), chain(&plan, "sums"));
        let mut pipe = [Pipe { window: &mut window }];
        while source.poll(Time::ZERO, BATCH, &mut pipe).expect("poll") != PollStatus::Finished {}
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

/// Collects the window's output rows.
#[derive(Default)]
struct Rows(Vec<Vec<Value>>);

impl Collector for Rows {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.0.push(row.to_vec());
        Ok(())
    }

    fn emit_watermark(&mut self, _: EventTime) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// The window chain's edge in the checked job: the window's rows leave through it.
struct CheckedPipe<'a> {
    window: &'a mut Chain,
    rows: &'a mut Rows,
}

impl Collector for CheckedPipe<'_> {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.window.process(0, row, std::slice::from_mut(self.rows))
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        self.window.watermark(watermark, std::slice::from_mut(self.rows))
    }
}

#[test]
fn the_benchmarked_chains_sum_every_thousand_records_of_a_key() {
    let records = 3_000_000i64;
    let env = StreamEnvironment::new("windowed-sum-checked");
    env.sequence(0, records - 1)
        .uid("numbers")
        .map(&[("k", "x % 1000"), ("v", "x % 101")])
        .key_by("k")
        .window(WindowAssigner::Count { size: 1000 })
        .aggregate(&[("v", "sum(v)")])
        .uid("sums")
        .rebalance()
        .discard();
    let plan = plan(&env.build().expect("valid job"), &PlanOptions::default()).expect("planned");
    let (mut source, mut window, mut rows) = (chain(&plan, "numbers"), chain(&plan, "sums"), Rows::default());
    let mut pipe = [CheckedPipe { window: &mut window, rows: &mut rows }];
    while source.poll(Time::ZERO, BATCH, &mut pipe).expect("poll") != PollStatus::Finished {}
    assert_eq!(rows.0.len() as i64, records / 1000, "one window per thousand records");
    for (position, row) in rows.0.iter().enumerate() {
        let (key, round) = ((position % 1000) as i64, (position / 1000) as i64);
        let expected: i64 = (0..1000).map(|n| (key + 1000 * (round * 1000 + n)) % 101).sum();
        assert_eq!(row, &vec![Value::Int(key), Value::Int(expected)], "window {position}");
    }
}

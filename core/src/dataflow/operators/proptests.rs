//! Property: a random windowed job fed in random batches, snapshotted, crashed and restored at
//! random points, commits exactly the output of the same schedule run without crashes.
//!
//! The job is `generator -> watermarks -> key_by -> window -> file_sink` at parallelism 1, as
//! two chains: the source chain's output edge feeds the window chain directly. A schedule is a
//! list of steps (poll a batch, advance processing time, checkpoint, complete the latest
//! checkpoint, deliver its notification, crash). A crash rebuilds both chains, restores them
//! from the last completed checkpoint and replays the schedule from the step after it (each
//! crash step fires once). Committed part files are the output.

use super::tests::{MemoryParts, Sink, TestIo, planned, vertex_of};
use super::*;
use crate::ids::{CheckpointId, SubtaskIndex};
use crate::job::builder::StreamEnvironment;
use crate::job::{FileFormat, TimeDomain, WindowAssigner};
use crate::plan::JobPlan;
use crate::row::{Row, RowBatch};
use crate::time::{Duration, Time};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug)]
enum Step {
    Poll(usize),
    Timers(u64),
    Checkpoint,
    Complete,
    Notify,
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (1usize..40).prop_map(Step::Poll),
        2 => (0u64..300).prop_map(Step::Timers),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Complete),
        1 => Just(Step::Notify),
        1 => Just(Step::Crash),
    ]
}

#[derive(Clone, Debug)]
struct Shape {
    assigner: WindowAssigner,
    lateness_ms: u64,
    keys: i64,
    records: u64,
    bound_ms: u64,
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn assigner() -> impl Strategy<Value = WindowAssigner> {
    prop_oneof![
        (1u64..6).prop_map(|size| WindowAssigner::Count { size }),
        (10u64..120).prop_map(|size| WindowAssigner::Tumbling { size: millis(size), time: TimeDomain::Event }),
        (10u64..80, 1u64..4).prop_map(|(slide, factor)| WindowAssigner::Sliding {
            size: millis(slide * factor),
            slide: millis(slide),
            time: TimeDomain::Event,
        }),
        (5u64..60).prop_map(|gap| WindowAssigner::Session { gap: millis(gap), time: TimeDomain::Event }),
        (50u64..400).prop_map(|size| WindowAssigner::Tumbling { size: millis(size), time: TimeDomain::Processing }),
        (50u64..400).prop_map(|gap| WindowAssigner::Session { gap: millis(gap), time: TimeDomain::Processing }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (assigner(), 0u64..60, 1i64..6, 20u64..300, 0u64..40).prop_map(
        |(assigner, lateness_ms, keys, records, bound_ms)| Shape { assigner, lateness_ms, keys, records, bound_ms },
    )
}

fn job(shape: &Shape) -> JobPlan {
    let env = StreamEnvironment::new("property");
    let key = format!("i % {}", shape.keys);
    env.generator(Some(shape.records), &[("k", &key), ("ts", "i * 10 + hash(i) % 40"), ("v", "i")])
        .uid("events")
        .assign_watermarks("ts", millis(shape.bound_ms))
        .uid("stamped")
        .key_by("k")
        .window(shape.assigner)
        .allowed_lateness(millis(shape.lateness_ms))
        .aggregate(&[("total", "sum(v)"), ("n", "count()"), ("first", "first(v)"), ("latest", "max(ts)")])
        .uid("window")
        .file_sink("/out", FileFormat::Text)
        .uid("sink");
    planned(&env.build().unwrap())
}

/// The source chain's output edge: calls the window chain directly.
struct Pipe<'a> {
    window: &'a mut Chain,
}

impl Collector for Pipe<'_> {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        self.window.process(0, row, &mut [] as &mut [Sink])
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        self.window.watermark(watermark, &mut [] as &mut [Sink])
    }
}

/// One attempt of the job: both chains.
struct Attempt {
    source: Chain,
    window: Chain,
    ended: bool,
}

struct Taken {
    id: CheckpointId,
    snapshots: Vec<ChainSnapshot>,
    step: usize,
    now: Time,
}

impl Attempt {
    fn new(plan: &JobPlan, io: &mut TestIo) -> Attempt {
        let options =
            ChainOptions { auto_watermark_interval: millis(50), checkpointing: true, ..ChainOptions::default() };
        let mut build = |head: &str| build_chain(plan, vertex_of(plan, head), SubtaskIndex(0), &options, io).unwrap();
        Attempt { source: build("events"), window: build("window"), ended: false }
    }

    fn poll(&mut self, now: Time, max_records: usize) {
        if self.ended {
            return;
        }
        let status = self.source.poll(now, max_records, &mut [Pipe { window: &mut self.window }]).unwrap();
        if status == PollStatus::Finished {
            self.source.end_of_input(&mut [Pipe { window: &mut self.window }]).unwrap();
            self.window.end_of_input(&mut [] as &mut [Sink]).unwrap();
            self.ended = true;
        }
    }

    fn timers(&mut self, now: Time) {
        self.source.fire_timers(now, &mut [Pipe { window: &mut self.window }]).unwrap();
        self.window.fire_timers(now, &mut [] as &mut [Sink]).unwrap();
    }

    fn snapshot(&mut self, id: CheckpointId) -> Vec<ChainSnapshot> {
        vec![self.source.snapshot(id, true).unwrap(), self.window.snapshot(id, true).unwrap()]
    }

    fn notify(&mut self, id: CheckpointId) {
        self.source.notify_checkpoint_complete(id).unwrap();
        self.window.notify_checkpoint_complete(id).unwrap();
    }
}

/// Runs the schedule (crash steps included when `crashes`) and returns the committed output.
fn run(plan: &JobPlan, steps: &[Step], crashes: bool) -> String {
    let mut io = TestIo::default();
    let mut attempt = Attempt::new(plan, &mut io);
    let (mut now, mut next_id, mut position) = (Time::ZERO, 1u64, 0usize);
    let (mut pending, mut completed, mut notified): (Vec<Taken>, Option<Taken>, bool) = (Vec::new(), None, false);
    let mut crashed = BTreeSet::new();
    while position < steps.len() {
        let index = position;
        position += 1;
        match steps[index] {
            Step::Poll(records) => attempt.poll(now, records),
            Step::Timers(ms) => {
                now = now.after(millis(ms));
                attempt.timers(now);
            }
            Step::Checkpoint => {
                let id = CheckpointId(next_id);
                next_id += 1;
                pending.push(Taken { id, snapshots: attempt.snapshot(id), step: index, now });
            }
            Step::Complete => {
                if let Some(latest) = pending.pop() {
                    pending.clear(); // a completed checkpoint subsumes older pending ones
                    (completed, notified) = (Some(latest), false);
                }
            }
            Step::Notify => {
                if let (Some(done), false) = (&completed, notified) {
                    attempt.notify(done.id);
                    notified = true;
                }
            }
            Step::Crash if crashes && crashed.insert(index) => {
                attempt = Attempt::new(plan, &mut io);
                pending.clear();
                notified = true; // the restore commits what the notification would have
                (now, position) = (Time::ZERO, 0);
                if let Some(done) = &completed {
                    attempt.source.restore(&done.snapshots[..1]).unwrap();
                    attempt.window.restore(&done.snapshots[1..]).unwrap();
                    (now, position) = (done.now, done.step + 1);
                }
            }
            Step::Crash => {}
        }
    }
    while !attempt.ended {
        attempt.poll(now, 1000);
    }
    let id = CheckpointId(next_id);
    attempt.snapshot(id);
    attempt.notify(id);
    committed(&io.parts)
}

/// Committed parts in the order they were written (by part number).
fn committed(parts: &MemoryParts) -> String {
    let parts = parts.0.lock().unwrap();
    assert!(parts.commits.values().all(|&count| count == 1), "a part committed twice: {:?}", parts.commits);
    let number = |name: &str| name.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let mut names: Vec<&String> = parts.committed.keys().collect();
    names.sort_by_key(|name| number(name));
    names.iter().map(|name| String::from_utf8_lossy(&parts.committed[*name]).into_owned()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_restored_windowed_job_commits_the_output_of_an_uninterrupted_run(
        shape in shape(),
        steps in proptest::collection::vec(step(), 5..80),
    ) {
        let plan = job(&shape);
        let uninterrupted = run(&plan, &steps, false);
        let restored = run(&plan, &steps, true);
        prop_assert_eq!(&restored, &uninterrupted);
        if matches!(shape.assigner, WindowAssigner::Count { size } if size == 1) {
            prop_assert_eq!(uninterrupted.lines().count() as u64, shape.records, "every record is a window");
        }
    }
}

/// `generator(k, v) -> key_by(key) -> count window(size) -> rebalance -> discard` at
/// `parallelism`, so that subtask 0 refuses the keys of the other subtasks.
fn count_window_job(key: &str, size: u64, parallelism: u32) -> JobPlan {
    let env = StreamEnvironment::new("batches");
    env.set_parallelism(parallelism);
    env.generator(Some(10), &[("k", "i % 7"), ("v", "i")])
        .uid("events")
        .key_by(key)
        .window(WindowAssigner::Count { size })
        .aggregate(&[("total", "sum(v)"), ("n", "count()"), ("first", "first(v)")])
        .uid("window")
        .rebalance()
        .discard();
    planned(&env.build().unwrap())
}

/// What a window chain gave for `rows` fed in batches cut at `cuts` (record by record without
/// cuts): its output, its error, and its snapshot when it did not fail.
fn feed_window(
    plan: &JobPlan,
    rows: &[Row],
    cuts: Option<&[usize]>,
) -> (Vec<Row>, Option<String>, Option<ChainSnapshot>) {
    let options = ChainOptions::default();
    let mut chain = build_chain(plan, vertex_of(plan, "window"), SubtaskIndex(0), &options, &mut TestIo::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let mut edges = vec![Sink::default()];
    let mut result = Ok(());
    match cuts {
        None => {
            for row in rows {
                result = chain.process(0, row, &mut edges);
                if result.is_err() {
                    break;
                }
            }
        }
        Some(cuts) => {
            let mut batch = RowBatch::new();
            let mut start = 0;
            while start < rows.len() && result.is_ok() {
                let end = cuts.iter().copied().filter(|&cut| cut > start).min().unwrap_or(rows.len()).min(rows.len());
                batch.start(2);
                rows[start..end].iter().for_each(|row| batch.push(row));
                result = chain.process_batch(0, &batch, &mut edges);
                start = end;
            }
        }
    }
    let snapshot = result.is_ok().then(|| chain.snapshot(CheckpointId(1), true).unwrap());
    (std::mem::take(&mut edges[0].rows), result.err().map(|error| error.to_string()), snapshot)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_count_window_fed_batches_does_what_it_does_fed_records(
        rows in prop::collection::vec((-2i64..6, -100i64..100), 0..120),
        cuts in prop::collection::vec(0usize..120, 0..10),
        key in prop_oneof![Just("k"), Just("100 / k"), Just("str(k)")],
        size in 1u64..5,
        parallelism in 1u32..3,
    ) {
        let plan = count_window_job(key, size, parallelism);
        let rows: Vec<Row> = rows.into_iter().map(|(k, v)| vec![Value::Int(k), Value::Int(v)]).collect();
        let records = feed_window(&plan, &rows, None);
        let batches = feed_window(&plan, &rows, Some(&cuts));
        prop_assert_eq!(records, batches);
    }
}

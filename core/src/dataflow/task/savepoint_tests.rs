//! Stop-with-savepoint, drain, resuming, and restoring at another parallelism, on the task
//! harness of `tests.rs` (which plays the coordinator and the JobMaster's restore rule).

use super::tests::{Cluster, Io, SinkKind, expected_sums, test_config, totals, windowed_sum};
use super::*;
use crate::dataflow::{Barrier, BarrierKind};
use crate::job::builder::StreamEnvironment;
use crate::job::{FileFormat, TimeDomain, WindowAssigner};
use crate::plan::{PlanOptions, plan};
use crate::time::Duration;

const STOP: BarrierKind = BarrierKind::Savepoint { stop: true, drain: false };
const STOP_AND_DRAIN: BarrierKind = BarrierKind::Savepoint { stop: true, drain: true };

/// Records the source tasks (the first `sources` tasks) have emitted.
fn emitted(cluster: &Cluster<'_>, sources: usize) -> u64 {
    cluster.tasks[..sources].iter().map(|task| task.runner.metrics().records_out).sum()
}

fn committed_lines(cluster: &Cluster<'_>) -> Vec<String> {
    cluster.io.parts.committed_lines().into_values().flatten().collect()
}

#[test]
fn stop_with_savepoint_emits_nothing_after_the_barrier_and_finishes_every_task() {
    let (records, keys, window) = (8_400, 7, 50);
    let plan = windowed_sum(records, keys, window, 2, SinkKind::File);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    for _ in 0..4 {
        cluster.round(200);
    }
    let savepoint = cluster.trigger_kind(STOP).unwrap_or_else(|| panic!("the sources take the trigger"));
    let at_barrier = emitted(&cluster, 2);
    cluster.run_to_end(200, 10_000);
    assert!(cluster.completed.contains(&savepoint));
    assert_eq!(emitted(&cluster, 2), at_barrier, "no record after the stop-with-savepoint's barrier");
    assert!(at_barrier < records as u64, "stopped before the sources were exhausted");
    assert_eq!(cluster.io.parts.pending_count(), 0, "everything the savepoint covers is committed");
    // Resuming from the savepoint (a resubmission) emits the rest: every record counted once.
    cluster.crash_and_restore();
    cluster.run_to_end(200, 20_000);
    assert_eq!(totals(committed_lines(&cluster)), totals(expected_sums(records, keys, window)));
}

#[test]
fn a_stop_with_savepoint_that_is_aborted_lets_the_sources_resume() {
    let plan = windowed_sum(4_000, 5, 20, 1, SinkKind::Discard);
    let config = test_config(true, false);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.round(100);
    let savepoint = cluster.trigger_kind(STOP).unwrap_or_else(|| panic!("the source takes the trigger"));
    let source = &mut cluster.tasks[0].runner;
    let before = source.metrics().records_out;
    assert_eq!(source.step(Time(5_000), 100), StepStatus::Idle, "a stopped source waits");
    assert_eq!(source.metrics().records_out, before);
    source.notify_checkpoint(savepoint, false);
    assert_eq!(source.step(Time(6_000), 100), StepStatus::Progress, "the aborted stop resumes the source");
    assert_eq!(source.metrics().records_out, before + 100);
    // If the abort is lost, the next checkpoint's barrier (triggered only after a failed stop)
    // resumes the source as well.
    let stop =
        Barrier { checkpoint: CheckpointId(savepoint.0 + 1), triggered_at: Time(7_000), kind: STOP, unaligned: false };
    source.trigger_checkpoint(stop);
    assert_eq!(source.step(Time(7_000), 100), StepStatus::Idle);
    let next = Barrier { checkpoint: CheckpointId(savepoint.0 + 2), kind: BarrierKind::Checkpoint, ..stop };
    source.trigger_checkpoint(next);
    assert_eq!(source.step(Time(8_000), 100), StepStatus::Progress, "a later checkpoint resumes the source");
}

/// sequence `0..records` → `ts = x` (ms), `k = x % 3`, `v = 1` → watermarks → key by `k` →
/// tumbling event-time windows of 100 ms counting `v` → file sink.
fn event_time_counts(records: i64) -> JobPlan {
    let env = StreamEnvironment::new("event-time-counts");
    env.set_parallelism(1);
    env.sequence(0, records - 1)
        .uid("numbers")
        .map(&[("ts", "x"), ("k", "x % 3"), ("v", "1")])
        .uid("stamped")
        .assign_watermarks("ts", Duration::ZERO)
        .uid("watermarks")
        .key_by("k")
        .window(WindowAssigner::Tumbling { size: Duration::from_millis(100), time: TimeDomain::Event })
        .aggregate(&[("n", "sum(v)")])
        .uid("counts")
        .file_sink("out", FileFormat::Csv)
        .uid("sink");
    let job = env.build().unwrap_or_else(|errors| panic!("{errors:?}"));
    plan(&job, &PlanOptions::default()).unwrap_or_else(|error| panic!("{error}"))
}

/// The records the committed window counts cover.
fn counted(cluster: &Cluster<'_>) -> u64 {
    let count = |line: &String| line.split(',').nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    committed_lines(cluster).iter().map(count).sum()
}

#[test]
fn drain_fires_every_event_time_window_before_the_savepoint_and_no_drain_keeps_them() {
    let plan = event_time_counts(1_000_000);
    let config = test_config(true, false);
    for (kind, drained) in [(STOP_AND_DRAIN, true), (STOP, false)] {
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        for _ in 0..3 {
            cluster.round(1_000);
        }
        cluster.trigger_kind(kind).unwrap_or_else(|| panic!("the source takes the trigger"));
        cluster.run_to_end(1_000, 10_000);
        let emitted = emitted(&cluster, 1);
        assert!(emitted < 1_000_000, "stopped early");
        match drained {
            true => assert_eq!(counted(&cluster), emitted, "every window fired before the savepoint"),
            false => assert!(counted(&cluster) < emitted, "open windows stay in the savepoint"),
        }
    }
}

/// Runs `from` until a checkpoint of `kind` completed and some more, then restores the job at
/// the other plan's parallelism and runs it to the end: every record and key counted once. The
/// completion is not notified before the restore, so the restored sinks commit what it covers.
fn rescale(from: &JobPlan, to: &JobPlan, kind: BarrierKind, job: (i64, i64, u64)) {
    rescale_after(from, to, kind, job, (3, 6, 200, true));
}

/// [`rescale`] with the checkpoint triggered after `before` rounds, the restore `after` rounds
/// after it completed, `budget` records per step, and the completion notified late or at once.
fn rescale_after(
    from: &JobPlan,
    to: &JobPlan,
    kind: BarrierKind,
    (records, keys, window): (i64, i64, u64),
    (before, after, budget, late): (u64, u64, usize, bool),
) {
    let config = test_config(true, false);
    let mut cluster = Cluster::new(from, &config, Io::default());
    cluster.notify_delay_rounds = if late { 1_000 } else { 0 };
    for _ in 0..before {
        cluster.round(budget);
    }
    let checkpoint = cluster.trigger_kind(kind).unwrap_or_else(|| panic!("the sources take the trigger"));
    for _ in 0..1_000 {
        if cluster.completed.contains(&checkpoint) {
            break;
        }
        cluster.round(budget);
    }
    assert!(cluster.completed.contains(&checkpoint), "the checkpoint completed");
    for _ in 0..after {
        cluster.round(budget);
    }
    let mut rescaled = Cluster::rescaled(&cluster, to);
    drop(cluster);
    rescaled.run_to_end(budget, 50_000);
    assert_eq!(rescaled.io.parts.pending_count(), 0);
    assert_eq!(totals(committed_lines(&rescaled)), totals(expected_sums(records, keys, window)));
}

#[test]
fn rescaling_from_two_to_three_restores_every_key_and_every_source_record_once() {
    let job = (8_400, 7, 50); // 1,200 records per key: 24 whole windows each
    let (two, three) =
        (windowed_sum(job.0, job.1, job.2, 2, SinkKind::File), windowed_sum(job.0, job.1, job.2, 3, SinkKind::File));
    rescale(&two, &three, BarrierKind::Checkpoint, job);
    rescale(&two, &three, BarrierKind::Savepoint { stop: false, drain: false }, job);
}

#[test]
fn rescaling_from_three_to_two_restores_every_key_and_every_source_record_once() {
    let job = (8_400, 7, 50);
    let (three, two) =
        (windowed_sum(job.0, job.1, job.2, 3, SinkKind::File), windowed_sum(job.0, job.1, job.2, 2, SinkKind::File));
    rescale(&three, &two, BarrierKind::Checkpoint, job);
    rescale(&three, &two, BarrierKind::Savepoint { stop: false, drain: false }, job);
}

#[test]
fn rescaling_one_to_four_and_back_keeps_the_result() {
    let job = (8_400, 7, 50);
    let one = windowed_sum(job.0, job.1, job.2, 1, SinkKind::File);
    let four = windowed_sum(job.0, job.1, job.2, 4, SinkKind::File);
    rescale(&one, &four, BarrierKind::Checkpoint, job);
    rescale(&four, &one, BarrierKind::Checkpoint, job);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Any change of parallelism, after any progress, from a checkpoint or a savepoint whose
    /// completion the old job may not have heard of: every key's windows and every record count once.
    #[test]
    fn any_rescale_counts_every_record_once(
        from in 1..5u32,
        to in 1..5u32,
        before in 0..6u64,
        after in 4..10u64,
        budget in 40..400usize,
        late in proptest::prelude::any::<bool>(),
        savepoint in proptest::prelude::any::<bool>(),
    ) {
        let job = (42_000, 7, 50); // 6,000 records per key: 120 whole windows each
        let old = windowed_sum(job.0, job.1, job.2, from, SinkKind::File);
        let new = windowed_sum(job.0, job.1, job.2, to, SinkKind::File);
        let plain_savepoint = BarrierKind::Savepoint { stop: false, drain: false };
        let kind = if savepoint { plain_savepoint } else { BarrierKind::Checkpoint };
        rescale_after(&old, &new, kind, job, (before, after, budget, late));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Stopping with a savepoint at any point (notified at once or late) and resuming from it,
    /// at the same or another parallelism, counts every record once; nothing is emitted between.
    #[test]
    fn stop_anywhere_then_resume_counts_every_record_once(
        parallelism in 1..4u32,
        resumed in 1..4u32,
        before in 0..8u64,
        budget in 40..400usize,
        notify_delay in 0..4u64,
    ) {
        let job = (42_000, 7, 50);
        let plan = windowed_sum(job.0, job.1, job.2, parallelism, SinkKind::File);
        let config = test_config(true, false);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        cluster.notify_delay_rounds = notify_delay;
        for _ in 0..before {
            cluster.round(budget);
        }
        let sources = parallelism as usize;
        cluster.trigger_kind(STOP).unwrap_or_else(|| panic!("the sources take the trigger"));
        let at_barrier = emitted(&cluster, sources);
        cluster.run_to_end(budget, 10_000);
        proptest::prop_assert_eq!(emitted(&cluster, sources), at_barrier);
        proptest::prop_assert_eq!(cluster.io.parts.pending_count(), 0);
        let other = windowed_sum(job.0, job.1, job.2, resumed, SinkKind::File);
        let mut resumed = Cluster::rescaled(&cluster, &other);
        resumed.run_to_end(budget, 50_000);
        let expected = totals(expected_sums(job.0, job.1, job.2));
        proptest::prop_assert_eq!(totals(committed_lines(&resumed)), expected);
    }
}

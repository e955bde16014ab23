//! Checkpoints after tasks finish, end to end through the [`Cluster`] harness: a bounded job
//! whose tasks wait for their final checkpoint commits all its output, and a job restored from a
//! checkpoint in which its source had finished commits it exactly once without re-emitting.

use super::tests::{Cluster, Io, SinkKind, expected_sums, test_config, totals, windowed_sum};
use super::*;

const RECORDS: i64 = 4_200;
const KEYS: i64 = 7;
const WINDOW: u64 = 20;

/// The committed csv lines of every sink subtask, as per-key totals.
fn committed_totals(cluster: &Cluster<'_>) -> std::collections::BTreeMap<i64, (i64, u64)> {
    totals(cluster.io.parts.committed_lines().into_values().flatten())
}

/// The harness's tasks of vertex 0 (the source chain).
fn sources(cluster: &Cluster<'_>) -> Vec<usize> {
    (0..cluster.tasks.len()).filter(|&t| cluster.tasks[t].vertex == VertexIndex(0)).collect()
}

#[test]
fn a_bounded_job_waiting_for_final_checkpoints_finishes_with_all_its_output_committed() {
    for parallelism in [1, 2] {
        let plan = windowed_sum(RECORDS, KEYS, WINDOW, parallelism, SinkKind::File);
        let config = test_config(true, false);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        // No checkpoint but the final ones, which the harness triggers once a task waits.
        cluster.run_to_end(300, 20_000);
        assert_eq!(committed_totals(&cluster), totals(expected_sums(RECORDS, KEYS, WINDOW)), "p {parallelism}");
        assert_eq!(cluster.io.parts.pending_count(), 0, "the last parts are committed, not left pending");
        let finished_sources: Vec<usize> =
            sources(&cluster).into_iter().filter(|t| cluster.restore_finished.contains(t)).collect();
        assert_eq!(finished_sources, sources(&cluster), "the last checkpoint records the sources as finished");
    }
}

#[test]
fn a_restore_from_a_checkpoint_with_the_source_finished_commits_exactly_once_and_emits_nothing_again() {
    for parallelism in [1, 2] {
        let plan = windowed_sum(RECORDS, KEYS, WINDOW, parallelism, SinkKind::File);
        let config = test_config(true, false);
        let mut cluster = Cluster::new(&plan, &config, Io::default());
        // Notifications come late, so a crash falls between a completion and the commit.
        cluster.notify_delay_rounds = 3;
        let sources = sources(&cluster);
        let mut rounds = 0;
        while !sources.iter().all(|t| cluster.restore_finished.contains(t)) {
            assert!(rounds < 20_000, "the sources never finished in a completed checkpoint");
            cluster.round(300);
            rounds += 1;
        }
        assert!(!cluster.all_finished(), "the window tasks still wait for their final checkpoint");
        cluster.crash_and_restore();
        for &t in &sources {
            assert!(cluster.tasks[t].runner.awaits_final_checkpoint() || cluster.tasks[t].runner.accepts_trigger());
        }
        cluster.run_to_end(300, 20_000);
        for &t in &sources {
            assert_eq!(cluster.tasks[t].runner.metrics().records_out, 0, "source task {t} emitted again");
        }
        assert_eq!(committed_totals(&cluster), totals(expected_sums(RECORDS, KEYS, WINDOW)), "p {parallelism}");
        assert_eq!(cluster.io.parts.pending_count(), 0);
    }
}

#[test]
fn a_task_deployed_as_finished_acknowledges_without_operator_state_and_then_finishes() {
    let plan = windowed_sum(100, 5, 10, 1, SinkKind::File);
    let config = test_config(true, false);
    let mut io = Io::default();
    let execution = ExecutionId {
        job: crate::ids::JobId(crate::ids::Hex128(7)),
        vertex: VertexIndex(0),
        subtask: SubtaskIndex(0),
        attempt: crate::ids::AttemptNumber(1),
    };
    let setup = |io: &mut Io, restore: Vec<&[u8]>| {
        let setup = TaskSetup {
            execution,
            plan: &plan,
            config: &config,
            restore,
            connectors: io,
            seed: 0,
            wait_for_final_checkpoint: true,
            restore_finished: true,
        };
        TaskRunner::new(setup)
    };
    let refused = setup(&mut io, vec![b"state".as_slice()]).map(|_| ());
    assert_eq!(refused, Err(TaskError::Restore(RestoreError::FinishedWithState)));
    let mut source = setup(&mut io, Vec::new()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(source.step(Time(1), 1_000), StepStatus::Idle);
    assert!(source.awaits_final_checkpoint(), "its input counts as ended at once");
    let barrier = crate::dataflow::Barrier {
        checkpoint: CheckpointId(9),
        triggered_at: Time(1),
        kind: crate::dataflow::BarrierKind::Checkpoint,
        unaligned: false,
    };
    source.trigger_checkpoint(barrier);
    let Some(TaskOutput::Snapshot { bytes, .. }) = source.poll_output() else { panic!("a snapshot") };
    let file = crate::checkpoint::storage::decode_task_state(&bytes).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(file.operators.len(), 1, "only the head, for the ended input");
    assert!(file.operators[0].keyed.is_empty() && !file.operators[0].channel_state.is_empty());
    let buffer = source.poll_output();
    assert!(matches!(buffer, Some(TaskOutput::Buffer { .. })), "the barrier, and not one record");
    assert_eq!(source.poll_output(), None);
    source.notify_checkpoint(CheckpointId(9), true);
    assert_eq!(source.step(Time(2), 1_000), StepStatus::Finished);
    let outputs: Vec<TaskOutput> = std::iter::from_fn(|| source.poll_output()).collect();
    assert!(matches!(outputs.last(), Some(TaskOutput::Finished)), "{outputs:?}");
    assert_eq!(source.metrics().records_out, 0);
}

//! Exactly-once under crashes: checkpoints and crashes at random rounds, late notifications,
//! every task restored from the latest completed checkpoint; the committed output of the file
//! sink equals that of an uninterrupted run.

use super::tests::{Cluster, Io, SinkKind, expected_sums, test_config, totals, windowed_sum};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// 600 records per key, 30 full windows per key: no partial window is dropped at the end, so
/// the per-key totals do not depend on the order records of one key arrive in.
const RECORDS: i64 = 4_200;
const KEYS: i64 = 7;
const WINDOW: u64 = 20;
const ROUNDS_MAX: u64 = 50_000;

/// What happens in one run.
#[derive(Clone, Debug)]
struct Script {
    budget: usize,
    /// Rounds at whose start a checkpoint is triggered (if none is pending).
    checkpoints: Vec<u64>,
    /// Rounds at whose start every task crashes and restarts from the latest checkpoint.
    crashes: Vec<u64>,
    /// Rounds between a checkpoint's completion and its notification (a crash may fall between).
    notify_delay: u64,
    unaligned: bool,
    /// Rounds the second source's buffers are held back after each triggered checkpoint, so
    /// its barrier reaches the window tasks late (parallelism 2).
    hold: u64,
}

impl Script {
    fn uninterrupted(budget: usize) -> Script {
        Script { budget, checkpoints: Vec::new(), crashes: Vec::new(), notify_delay: 0, unaligned: false, hold: 0 }
    }
}

/// Runs the windowed sum into the file sink; returns the committed lines per sink subtask.
fn run(parallelism: u32, script: &Script) -> BTreeMap<u32, Vec<String>> {
    let plan = windowed_sum(RECORDS, KEYS, WINDOW, parallelism, SinkKind::File);
    let config = test_config(true, script.unaligned);
    let mut cluster = Cluster::new(&plan, &config, Io::default());
    cluster.notify_delay_rounds = script.notify_delay;
    let mut release_at = None;
    while !cluster.all_finished() {
        assert!(cluster.round < ROUNDS_MAX, "not finished after {ROUNDS_MAX} rounds");
        if script.crashes.contains(&cluster.round) {
            cluster.crash_and_restore();
        }
        if release_at.is_some_and(|round| cluster.round >= round) {
            cluster.release(1);
            release_at = None;
        }
        if script.checkpoints.contains(&cluster.round) && release_at.is_none() {
            // The second source's barrier and the records before it are held back with it.
            cluster.held.insert(1);
            match cluster.trigger() {
                Some(_) if parallelism > 1 => release_at = Some(cluster.round + script.hold),
                _ => cluster.release(1),
            }
        }
        cluster.round(script.budget);
    }
    cluster.io.parts.committed_lines()
}

/// Scripts whose checkpoints and crashes fall while the sources still run (their rounds are
/// drawn below the rounds the sources need at the drawn budget) or just after.
fn script(parallelism: u64) -> impl Strategy<Value = Script> {
    (20usize..800)
        .prop_flat_map(move |budget| {
            let rounds = RECORDS as u64 / parallelism / budget as u64 + 6;
            let rounds_of = move |count| proptest::collection::vec(0..rounds, count);
            (Just(budget), rounds_of(0..8), rounds_of(0..3), 0u64..4, any::<bool>(), 0u64..8)
        })
        .prop_map(|(budget, checkpoints, crashes, notify_delay, unaligned, hold)| Script {
            budget,
            checkpoints,
            crashes,
            notify_delay,
            unaligned,
            hold,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Parallelism 1: the committed output equals the uninterrupted run's, record for record.
    #[test]
    fn crashes_and_restores_commit_exactly_the_uninterrupted_output(script in script(1)) {
        let uninterrupted = run(1, &Script::uninterrupted(script.budget));
        prop_assert_eq!(uninterrupted.get(&0).cloned().unwrap_or_default(), expected_sums(RECORDS, KEYS, WINDOW));
        let restored = run(1, &script);
        prop_assert_eq!(restored, uninterrupted);
    }

    /// Parallelism 2 with a hash edge (aligned or unaligned barriers over two channels): every
    /// record counted exactly once, whatever order the channels were read in.
    #[test]
    fn crashes_at_parallelism_two_count_every_record_once(script in script(2)) {
        let committed = run(2, &script);
        let expected = totals(expected_sums(RECORDS, KEYS, WINDOW));
        prop_assert_eq!(totals(committed.into_values().flatten()), expected);
    }
}

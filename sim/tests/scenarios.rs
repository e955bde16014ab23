//! Every scenario in `scenarios/` passes for many seeds, and a seed replays to the same trace.
//!
//! `WEIR_SIM_SEEDS` sets the number of seeds per scenario (default 500); long explorations use
//! `weir sim explore` instead.

mod common;

use std::path::{Path, PathBuf};
use weir_sim::scenario::load;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn run_all(name: &str) {
    assert!(scenario_files().iter().any(|path| path.file_stem().is_some_and(|stem| stem == name)), "no {name}");
    common::run_seeds(name, common::seeds_from("WEIR_SIM_SEEDS", 500), |_, _| {});
}

/// Runs a long scenario for `1 / divisor` of the seeds (at least one), to keep the suite's time.
fn run_fraction(name: &str, divisor: u64) {
    assert!(scenario_files().iter().any(|path| path.file_stem().is_some_and(|stem| stem == name)), "no {name}");
    let seeds = common::seeds_from("WEIR_SIM_SEEDS", 500).div_ceil(divisor);
    common::run_seeds(name, seeds, |_, _| {});
}

#[test]
fn happy_path() {
    run_all("happy-path");
}

#[test]
fn tm_crash() {
    run_all("tm-crash");
}

#[test]
fn not_enough_slots() {
    run_all("not-enough-slots");
}

#[test]
fn tm_partition() {
    run_all("tm-partition");
}

#[test]
fn two_jobs_cancel() {
    run_all("two-jobs-cancel");
}

#[test]
fn checkpoints_under_crash() {
    run_all("checkpoints-under-crash");
}

#[test]
fn nemesis_swarm() {
    run_all("nemesis-swarm");
}

#[test]
fn lossy_network() {
    run_all("lossy-network");
}

#[test]
fn wordcount_crashes() {
    run_all("wordcount-crashes");
}

#[test]
fn windowed_sum_checkpoint_crashes() {
    run_all("windowed-sum-checkpoint-crashes");
}

#[test]
fn rocksdb_state_crashes() {
    run_all("rocksdb-state-crashes");
}

#[test]
fn event_time_crash() {
    run_all("event-time-crash");
}

#[test]
fn at_least_once_crashes() {
    run_all("at-least-once-crashes");
}

#[test]
fn checkpoint_timeout() {
    run_all("checkpoint-timeout");
}

#[test]
fn tolerable_failures_exceeded() {
    run_all("tolerable-failures-exceeded");
}

#[test]
fn unaligned_checkpoint_crashes() {
    run_all("unaligned-checkpoint-crashes");
}

#[test]
fn corrupt_checkpoint() {
    run_all("corrupt-checkpoint");
}

#[test]
fn stop_savepoint_rescale() {
    run_all("stop-savepoint-rescale");
}

#[test]
fn real_nemesis_crashes() {
    run_all("real-nemesis-crashes");
}

#[test]
fn one_way_partition() {
    run_all("one-way-partition");
}

#[test]
fn split_halves() {
    run_all("split-halves");
}

#[test]
fn network_chaos() {
    run_all("network-chaos");
}

#[test]
fn clock_faults() {
    run_all("clock-faults");
}

#[test]
fn disk_full() {
    run_all("disk-full");
}

#[test]
fn slow_disk_and_cpu() {
    run_all("slow-disk-and-cpu");
}

#[test]
fn nemesis_every_fault() {
    run_all("nemesis-every-fault");
}

#[test]
fn real_nemesis_slow_faults() {
    run_all("real-nemesis-slow-faults");
}

#[test]
fn checkpointing_ten_minutes() {
    // Ten simulated minutes of checkpoints are ~37,000 events a seed (85 times happy-path's).
    run_fraction("checkpointing-ten-minutes", 25);
}

#[test]
fn every_scenario_file_has_a_test_and_parses() {
    let names: Vec<String> = scenario_files()
        .iter()
        .map(|path| {
            load(path).unwrap_or_else(|error| panic!("{error}"));
            path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
        })
        .collect();
    let source = [include_str!("scenarios.rs"), include_str!("ha.rs")].concat(); // ha-* run in ha.rs
    for name in names {
        let tested =
            source.contains(&format!("run_all(\"{name}\")")) || source.contains(&format!("run_fraction(\"{name}\","));
        assert!(tested, "scenarios/{name}.toml has no test here");
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    for path in scenario_files() {
        let scenario = load(&path).unwrap_or_else(|error| panic!("{error}"));
        let first = weir_sim::run(&scenario, 7);
        let second = weir_sim::run(&scenario, 7);
        assert_eq!(first.trace_hash, second.trace_hash, "{}", path.display());
        assert_eq!(first.events, second.events);
        let other = weir_sim::run(&scenario, 8);
        assert_ne!(first.trace_hash, other.trace_hash, "{}: seeds must matter", path.display());
    }
}

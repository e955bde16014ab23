//! The high-availability scenarios (`scenarios/ha-*.toml`) pass for many seeds.
//!
//! `WEIR_HA_SEEDS` sets the seeds per scenario (default 50); the 1000-seed runs use
//! `weir sim explore scenarios/ha-….toml --seeds 1000`.

use std::path::Path;
use weir_sim::scenario::load;

fn seeds() -> u64 {
    std::env::var("WEIR_HA_SEEDS").ok().and_then(|text| text.parse().ok()).unwrap_or(50)
}

fn run_all(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let scenario = load(&path).unwrap_or_else(|error| panic!("{error}"));
    for seed in 0..seeds() {
        let report = weir_sim::run(&scenario, seed);
        assert!(
            report.passed(),
            "{name} failed with seed {seed} (replay: weir sim run {} --seed {seed}):\n{}",
            path.display(),
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        // The fault the scenario is about happened: a second leader took over.
        assert!(
            report.faults.iter().any(|line| line.contains("leads in epoch") && !line.contains("epoch 1,")),
            "{name} seed {seed}: no leader change: {:?}",
            report.faults
        );
    }
}

#[test]
fn ha_leader_crash() {
    run_all("ha-leader-crash");
}

#[test]
fn ha_leader_pause() {
    run_all("ha-leader-pause");
}

#[test]
fn ha_leader_store_partition() {
    run_all("ha-leader-store-partition");
}

#[test]
fn ha_repeated_failover() {
    run_all("ha-repeated-failover");
}

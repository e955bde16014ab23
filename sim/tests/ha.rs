//! The high-availability scenarios (`scenarios/ha-*.toml`) pass for many seeds.
//!
//! `WEIR_HA_SEEDS` sets the seeds per scenario (default 50); the 1000-seed runs use
//! `weir sim explore scenarios/ha-….toml --seeds 1000`.

mod common;

fn run_all(name: &str) {
    common::run_seeds(name, common::seeds_from("WEIR_HA_SEEDS", 50), |seed, report| {
        // The fault the scenario is about happened: a second leader took over.
        assert!(
            report.faults.iter().any(|line| line.contains("leads in epoch") && !line.contains("epoch 1,")),
            "{name} seed {seed}: no leader change: {:?}",
            report.faults
        );
    });
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

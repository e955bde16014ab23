//! What the scenario test files share: running one scenario file for many seeds.

use std::path::Path;
use weir_sim::report::RunReport;
use weir_sim::scenario::load;

/// The number in the environment variable `variable`, else `default`.
pub fn seeds_from(variable: &str, default: u64) -> u64 {
    std::env::var(variable).ok().and_then(|text| text.parse().ok()).unwrap_or(default)
}

/// Runs `scenarios/<name>.toml` for seeds `0..seeds`: each must pass its invariants and
/// expectations (the failure names the replay command), then `check` its own.
pub fn run_seeds(name: &str, seeds: u64, check: impl Fn(u64, &RunReport)) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let scenario = load(&path).unwrap_or_else(|error| panic!("{error}"));
    for seed in 0..seeds {
        let report = weir_sim::run(&scenario, seed);
        assert!(
            report.passed(),
            "{name} failed with seed {seed} (replay: weir sim run {} --seed {seed}):\n{}",
            path.display(),
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        check(seed, &report);
    }
}

//! Shrinking: a deliberately wrong configuration is caught, and its faults reduce to a minimal
//! set that still fails and replays.

use std::path::Path;
use weir_sim::scenario::{parse, render_faults, without_faults};
use weir_sim::shrink::shrink;

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

#[test]
fn no_restarts_under_a_nemesis_fails_and_shrinks_to_at_most_two_faults() {
    let text = std::fs::read_to_string(scenarios_dir().join("nemesis-swarm.toml")).expect("the scenario exists");
    let wrong = text
        .replace("\"restart-strategy.fixed-delay.attempts\" = 1000", "\"restart-strategy.fixed-delay.attempts\" = 0");
    assert_ne!(wrong, text, "the wrong configuration was planted");
    let read_job = |name: &str| std::fs::read_to_string(scenarios_dir().join(name)).map_err(|error| error.to_string());
    let scenario = parse("wrong.toml", &wrong, &read_job).expect("parses");
    let failing = (0..20).find(|&seed| !weir_sim::run(&scenario, seed).passed()).expect("explore catches it");
    let shrunk = shrink(&scenario, failing).expect("the seed fails");
    assert!(shrunk.original.len() > shrunk.faults.len(), "{} faults did not shrink", shrunk.original.len());
    assert!(!shrunk.faults.is_empty() && shrunk.faults.len() <= 2, "{:?}", shrunk.faults);
    assert!(!weir_sim::run_with_faults(&scenario, failing, shrunk.faults.clone()).passed(), "the minimal set fails");
    let minimal = format!("{}\n{}", without_faults(&wrong), render_faults(&shrunk.faults));
    assert!(!minimal.contains("[nemesis]"));
    let reparsed = parse("minimal.toml", &minimal, &read_job).expect("the printed scenario parses");
    assert_eq!(reparsed.faults, shrunk.faults, "the printed scenario holds exactly the minimal faults");
}

#[test]
fn a_passing_seed_has_nothing_to_shrink() {
    let read_job = |name: &str| std::fs::read_to_string(scenarios_dir().join(name)).map_err(|error| error.to_string());
    let text = std::fs::read_to_string(scenarios_dir().join("happy-path.toml")).expect("exists");
    let scenario = parse("happy.toml", &text, &read_job).expect("parses");
    assert!(shrink(&scenario, 1).is_none());
}

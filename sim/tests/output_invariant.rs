//! The output invariant compares something real: the fault-free run's committed lines.

use std::path::Path;
use weir_sim::scenario::load;

fn scenario(name: &str) -> weir_sim::scenario::Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    load(&path).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_fault_free_wordcount_commits_one_line_per_word_occurrence() {
    let scenario = scenario("wordcount-crashes");
    let outputs = weir_sim::fault_free_output(&scenario).unwrap_or_else(|error| panic!("{error}"));
    let lines = outputs[0].as_ref().expect("the fault-free run finishes");
    let words = scenario.data.files[0].words as usize;
    assert_eq!(lines.len(), words, "a running count line per word read");
    assert!(lines.iter().any(|line| line == "w0,1"), "the first count of w0 is there");
}

//! `weir sim run SCENARIO [--seed N] [--json]`: one seeded run of a scenario.

use super::CliError;
use std::path::Path;
use std::time::Instant;

/// Runs one seed and prints the summary; fails (exit 1) on a violation or unmet expectation.
pub fn run(
    path: &Path,
    seed: u64,
    json: bool,
    log: bool,
    check_determinism: bool,
    record_to: Option<&Path>,
) -> Result<(), CliError> {
    let scenario = weir_sim::scenario::load(path).map_err(|error| CliError::input(error.to_string()))?;
    let started = Instant::now();
    let mut report = weir_sim::run_logged(&scenario, seed, log || check_determinism);
    report.wall_ms = started.elapsed().as_millis() as u64;
    if check_determinism {
        let again = weir_sim::run_logged(&scenario, seed, true);
        if let Some(divergence) = first_divergence(&report.log, &again.log) {
            return Err(CliError::failed(format!("seed {seed} is not deterministic: {divergence}")));
        }
        if report.trace_hash != again.trace_hash {
            return Err(CliError::failed(format!("seed {seed}: trace hashes differ with equal event logs")));
        }
        println!(
            "deterministic: two runs of seed {seed} agree on all {} events ({})",
            report.events, report.trace_hash
        );
        if !log {
            report.log.clear();
        }
    }
    if let Some(out) = record_to {
        record(path, &report, out)?;
    }
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| CliError::failed(format!("cannot render the report: {error}")))?;
        println!("{text}");
    } else {
        print_summary(&report);
    }
    if report.passed() {
        Ok(())
    } else {
        let replay = format!("weir sim run {} --seed {seed}", path.display());
        Err(CliError::failed(format!("scenario {} failed with seed {seed}; replay: {replay}", report.scenario)))
    }
}

fn print_summary(report: &weir_sim::RunReport) {
    for line in &report.log {
        println!("{line}");
    }
    println!(
        "scenario {} seed {}: {} events, {} ms virtual in {} ms wall, trace {}",
        report.scenario, report.seed, report.events, report.virtual_ms, report.wall_ms, report.trace_hash
    );
    for fault in &report.faults {
        println!("  fault   {fault}");
    }
    for site in &report.buggify {
        println!("  buggify {site}");
    }
    for job in &report.jobs {
        let failure = job.failure.as_deref().map(|f| format!(": {f}")).unwrap_or_default();
        println!(
            "  job     {} {} (restarts {}, checkpoints {}){failure}",
            job.name, job.status, job.restarts, job.checkpoints
        );
    }
    for violation in &report.violations {
        println!("  VIOLATED at event {} ({} ms): {}", violation.event, violation.time_ms, violation.message);
    }
    for unmet in &report.unmet {
        println!("  UNMET   {unmet}");
    }
    println!("{}", if report.passed() { "passed" } else { "FAILED" });
}

/// The first event where two logs of one seed differ.
fn first_divergence(first: &[String], second: &[String]) -> Option<String> {
    let position = first.iter().zip(second).position(|(a, b)| a != b);
    match position {
        Some(index) => Some(format!("event {index} differs:\n  first:  {}\n  second: {}", first[index], second[index])),
        None if first.len() != second.len() => {
            Some(format!("one run has {} events, the other {}", first.len(), second.len()))
        }
        None => None,
    }
}

/// Shrinks a failing seed's faults and prints the minimal scenario.
pub fn shrink(path: &Path, seed: u64, out: Option<&Path>) -> Result<(), CliError> {
    let scenario = weir_sim::scenario::load(path).map_err(|error| CliError::input(error.to_string()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::input(format!("{}: cannot read: {error}", path.display())))?;
    let Some(shrunk) = weir_sim::shrink::shrink(&scenario, seed) else {
        return Err(CliError::input(format!("seed {seed} of {} passes: nothing to shrink", path.display())));
    };
    let problem = shrunk
        .report
        .violations
        .first()
        .map(|violation| violation.message.clone())
        .or_else(|| shrunk.report.unmet.first().cloned())
        .unwrap_or_default();
    let header = format!(
        "# Shrunk by `weir sim shrink {} --seed {seed}`: {} fault(s) down to {} in {} runs.\n\
         # Still fails with seed {seed}: {problem}\n",
        path.display(),
        shrunk.original.len(),
        shrunk.faults.len(),
        shrunk.runs
    );
    let minimal = format!(
        "{header}{}\n\n{}",
        weir_sim::scenario::without_faults(&text).trim_end(),
        weir_sim::scenario::render_faults(&shrunk.faults)
    );
    match out {
        Some(out) => {
            std::fs::write(out, &minimal)
                .map_err(|error| CliError::failed(format!("{}: cannot write: {error}", out.display())))?;
            eprintln!("{}", header.trim_end());
            eprintln!(
                "minimal scenario written to {} (replay: weir sim run {} --seed {seed})",
                out.display(),
                out.display()
            );
        }
        None => print!("{minimal}"),
    }
    Ok(())
}

/// What `weir sim run --record FILE` writes and `weir sim replay --trace FILE` checks.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Recording {
    /// The scenario file, as given.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// The run's fingerprint.
    pub trace_hash: String,
}

/// Writes the recording of a run.
pub fn record(path: &Path, report: &weir_sim::RunReport, out: &Path) -> Result<(), CliError> {
    let recording = Recording {
        scenario: path.display().to_string(),
        seed: report.seed,
        events: report.events,
        trace_hash: report.trace_hash.clone(),
    };
    let text = serde_json::to_string_pretty(&recording).map_err(|error| CliError::failed(error.to_string()))?;
    std::fs::write(out, text).map_err(|error| CliError::failed(format!("{}: cannot write: {error}", out.display())))
}

/// Replays a recorded run and proves it identical (same events, same trace hash).
pub fn replay_recording(trace: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(trace)
        .map_err(|error| CliError::input(format!("{}: cannot read: {error}", trace.display())))?;
    let recording: Recording = serde_json::from_str(&text)
        .map_err(|error| CliError::input(format!("{}: not a weir recording: {error}", trace.display())))?;
    let scenario =
        weir_sim::scenario::load(Path::new(&recording.scenario)).map_err(|error| CliError::input(error.to_string()))?;
    let report = weir_sim::run(&scenario, recording.seed);
    if report.trace_hash != recording.trace_hash || report.events != recording.events {
        return Err(CliError::failed(format!(
            "replay differs: recorded {} events with trace {}, replayed {} events with trace {}",
            recording.events, recording.trace_hash, report.events, report.trace_hash
        )));
    }
    println!(
        "replayed {} seed {}: {} events, trace {} (identical)",
        recording.scenario, recording.seed, report.events, report.trace_hash
    );
    Ok(())
}

/// Whether an event line passes `--node` and `--filter`: it names the node (as a word) and
/// contains the text (case-insensitive).
fn event_matches(line: &str, node: Option<&str>, filter: Option<&str>) -> bool {
    let names_node =
        node.is_none_or(|node| line.split(|c: char| !(c.is_alphanumeric() || c == '-')).any(|word| word == node));
    names_node && filter.is_none_or(|filter| line.to_lowercase().contains(&filter.to_lowercase()))
}

/// Runs a seed and prints the events that involve `node` and contain `filter`.
pub fn replay_filtered(path: &Path, seed: u64, node: Option<&str>, filter: Option<&str>) -> Result<(), CliError> {
    let scenario = weir_sim::scenario::load(path).map_err(|error| CliError::input(error.to_string()))?;
    let report = weir_sim::run_logged(&scenario, seed, true);
    let mut shown = 0;
    for line in report.log.iter().filter(|line| event_matches(line, node, filter)) {
        println!("{line}");
        shown += 1;
    }
    println!("{shown} of {} events shown (seed {seed}, trace {})", report.events, report.trace_hash);
    Ok(())
}

/// Runs a seed and writes its timeline page.
pub fn replay_html(path: &Path, seed: u64, out: &Path) -> Result<(), CliError> {
    let scenario = weir_sim::scenario::load(path).map_err(|error| CliError::input(error.to_string()))?;
    let (report, timeline) = weir_sim::run_timeline(&scenario, seed).map_err(CliError::failed)?;
    let page = weir_sim::timeline::html(&timeline);
    std::fs::write(out, page).map_err(|error| CliError::failed(format!("{}: cannot write: {error}", out.display())))?;
    let dropped = if timeline.dropped > 0 { format!(" ({} more left out)", timeline.dropped) } else { String::new() };
    println!(
        "timeline of {} seed {seed}: {} events{dropped} in {} ({})",
        report.scenario,
        timeline.events.len(),
        out.display(),
        if report.passed() { "passed" } else { "FAILED" }
    );
    Ok(())
}

/// Runs a seed up to event `until` and prints every node's state (or one node's).
pub fn replay_until(
    path: &Path,
    seed: u64,
    until: u64,
    node: Option<&str>,
    filter: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let scenario = weir_sim::scenario::load(path).map_err(|error| CliError::input(error.to_string()))?;
    let (mut report, states) = weir_sim::states_at(&scenario, seed, until).map_err(CliError::failed)?;
    report.log.retain(|line| event_matches(line, None, filter));
    let states: Vec<(String, String)> = states.into_iter().filter(|(name, _)| node.is_none_or(|n| n == name)).collect();
    if states.is_empty() {
        return Err(CliError::input(format!("no node {:?}; nodes are jm, tm-0, tm-1, ...", node.unwrap_or(""))));
    }
    if json {
        let nodes: serde_json::Map<String, serde_json::Value> =
            states.into_iter().map(|(name, state)| (name, serde_json::Value::String(state))).collect();
        let document = serde_json::json!({
            "seed": seed, "event": report.events, "virtual_ms": report.virtual_ms,
            "last_events": report.log.iter().rev().take(20).rev().collect::<Vec<_>>(), "nodes": nodes,
        });
        println!("{}", serde_json::to_string_pretty(&document).map_err(|error| CliError::failed(error.to_string()))?);
        return Ok(());
    }
    println!("seed {seed} stopped after event {} at {} ms; the last events:", report.events, report.virtual_ms);
    for line in report.log.iter().rev().take(20).rev() {
        println!("  {line}");
    }
    for (name, state) in states {
        println!("\n===== {name} =====\n{state}");
    }
    Ok(())
}

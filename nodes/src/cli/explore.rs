//! `weir sim explore SCENARIO... [--seeds N | --duration D] [--jobs J]`: many seeds on every core.
//!
//! Seeds are handed out from a shared counter to `--jobs` worker threads (default: every core);
//! each failing seed is printed at once with the command that replays it. The summary gives
//! seeds per second, simulator events per second and simulated time per wall-clock second.

use super::CliError;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weir_sim::scenario::{Scenario, load};

/// How long to explore.
pub enum Budget {
    /// This many seeds per scenario, starting at `first`.
    Seeds { first: u64, count: u64 },
    /// As many seeds as fit in this wall-clock time.
    Duration(Duration),
}

#[derive(Default)]
struct Totals {
    seeds: AtomicU64,
    events: AtomicU64,
    virtual_ms: AtomicU64,
    failures: AtomicU64,
}

/// Explores every scenario; fails (exit 1) when any seed fails.
pub fn run(paths: &[PathBuf], budget: Budget, jobs: Option<usize>) -> Result<(), CliError> {
    let mut scenarios = Vec::new();
    for path in paths {
        let scenario = load(path).map_err(|error| CliError::input(error.to_string()))?;
        scenarios.push((path.clone(), scenario));
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let started = Instant::now();
    let totals = Arc::new(Totals::default());
    for (path, scenario) in &scenarios {
        explore_one(path, scenario, &budget, jobs, &totals)?;
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let seeds = totals.seeds.load(Ordering::Relaxed);
    let events = totals.events.load(Ordering::Relaxed);
    let virtual_s = totals.virtual_ms.load(Ordering::Relaxed) as f64 / 1_000.0;
    let failures = totals.failures.load(Ordering::Relaxed);
    eprintln!();
    println!(
        "explored {seeds} seeds of {} scenario(s) on {jobs} thread(s) in {wall:.1} s: {:.0} seeds/s, {:.0} events/s, \
         {:.0} simulated s per wall s; {failures} failing",
        scenarios.len(),
        seeds as f64 / wall,
        events as f64 / wall,
        virtual_s / wall,
    );
    if failures > 0 {
        return Err(CliError::failed(format!("{failures} seed(s) failed")));
    }
    Ok(())
}

fn explore_one(
    path: &std::path::Path,
    scenario: &Scenario,
    budget: &Budget,
    jobs: usize,
    totals: &Arc<Totals>,
) -> Result<(), CliError> {
    let (first, count) = match budget {
        Budget::Seeds { first, count } => (*first, Some(*count)),
        Budget::Duration(_) => (0, None),
    };
    let deadline = match budget {
        Budget::Duration(duration) => Some(Instant::now() + *duration),
        Budget::Seeds { .. } => None,
    };
    let next = Arc::new(AtomicU64::new(first));
    let done = Arc::new(AtomicU64::new(0));
    let workers_left = AtomicUsize::new(jobs);
    std::thread::scope(|scope| {
        let progress = scope.spawn(|| progress(scenario, count, &done, &workers_left, jobs));
        for _ in 0..jobs {
            let (next, done, workers_left, totals) = (&next, &done, &workers_left, totals);
            // The last worker to end wakes the progress line at once, so the wall time the
            // summary divides by is the work's, not rounded up to the line's next refresh.
            let progress = progress.thread().clone();
            scope.spawn(move || {
                loop {
                    if deadline.is_some_and(|at| Instant::now() >= at) {
                        break;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if count.is_some_and(|count| seed >= first + count) {
                        break;
                    }
                    let report = weir_sim::run(scenario, seed);
                    totals.seeds.fetch_add(1, Ordering::Relaxed);
                    totals.events.fetch_add(report.events, Ordering::Relaxed);
                    totals.virtual_ms.fetch_add(report.virtual_ms, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                    if !report.passed() {
                        totals.failures.fetch_add(1, Ordering::Relaxed);
                        let first_problem = report
                            .violations
                            .first()
                            .map(|violation| violation.message.clone())
                            .or_else(|| report.unmet.first().cloned())
                            .unwrap_or_default();
                        eprintln!("\nFAILED {} seed {seed}: {first_problem}", scenario.name);
                        eprintln!("  replay: weir sim run {} --seed {seed} --log", path.display());
                    }
                }
                workers_left.fetch_sub(1, Ordering::Release);
                progress.unpark();
            });
        }
    });
    Ok(())
}

/// A progress line on standard error until the workers are done (refreshed every 200 ms, and
/// at once when they are).
fn progress(scenario: &Scenario, count: Option<u64>, done: &AtomicU64, workers_left: &AtomicUsize, jobs: usize) {
    let started = Instant::now();
    loop {
        let complete = workers_left.load(Ordering::Acquire) == 0; // then `done` is final
        let finished = done.load(Ordering::Relaxed);
        let total = count.map(|count| count.to_string()).unwrap_or_else(|| "…".to_string());
        let elapsed = started.elapsed().as_secs_f64();
        let rate = if elapsed < 0.5 { String::new() } else { format!(", {:.0}/s", finished as f64 / elapsed) };
        eprint!("\r{}: {finished}/{total} seeds on {jobs} threads{rate}   ", scenario.name);
        let _ = std::io::stderr().flush();
        if complete {
            eprintln!();
            return;
        }
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

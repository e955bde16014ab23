//! Shrinking: the fewest, shortest faults that still make a seed fail.
//!
//! A failing run's faults are taken as they fired (every random choice resolved), then reduced
//! greedily, each candidate replayed with the same seed: drop a fault if the run still fails
//! without it, then halve the durations (downtime, isolation, partition) that remain while it
//! still fails. The result replays with `run_with_faults` and prints as a scenario file.

use crate::report::RunReport;
use crate::scenario::{FaultKind, FaultSpec, Scenario, TimeSpec};
use crate::world::{run, run_with_faults};
use weir_core::time::Duration;

/// Runs tried at most while shrinking, so a slow scenario still ends.
pub const SHRINK_RUNS_MAX: usize = 500;

/// The outcome of shrinking a failing seed.
pub struct Shrunk {
    /// The faults of the original failing run, resolved.
    pub original: Vec<FaultSpec>,
    /// The smallest fault list found that still fails.
    pub faults: Vec<FaultSpec>,
    /// The failing report of that smallest list.
    pub report: RunReport,
    /// Runs tried.
    pub runs: usize,
}

/// Shrinks the faults of `seed`; `None` when the seed does not fail.
pub fn shrink(scenario: &Scenario, seed: u64) -> Option<Shrunk> {
    let first = run(scenario, seed);
    if first.passed() {
        return None;
    }
    let original = first.fault_plan.clone();
    let mut state = Search { scenario, seed, runs: 0, best: original.clone(), report: first };
    state.drop_faults();
    state.shorten_faults();
    Some(Shrunk { original, faults: state.best, report: state.report, runs: state.runs })
}

struct Search<'a> {
    scenario: &'a Scenario,
    seed: u64,
    runs: usize,
    best: Vec<FaultSpec>,
    report: RunReport,
}

impl Search<'_> {
    /// Replays `candidate`; keeps it when the run still fails.
    fn try_candidate(&mut self, candidate: Vec<FaultSpec>) -> bool {
        if self.runs >= SHRINK_RUNS_MAX {
            return false;
        }
        self.runs += 1;
        let report = run_with_faults(self.scenario, self.seed, candidate.clone());
        if report.passed() {
            return false;
        }
        self.best = candidate;
        self.report = report;
        true
    }

    fn drop_faults(&mut self) {
        let mut index = 0;
        while index < self.best.len() {
            let mut candidate = self.best.clone();
            candidate.remove(index);
            if !self.try_candidate(candidate) {
                index += 1;
            }
        }
    }

    fn shorten_faults(&mut self) {
        for index in 0..self.best.len() {
            while let Some(shorter) = halved(&self.best[index]) {
                let mut candidate = self.best.clone();
                candidate[index] = shorter;
                if !self.try_candidate(candidate) {
                    break;
                }
            }
        }
    }
}

/// The fault with its downtime or duration halved; `None` when there is nothing to halve.
fn halved(fault: &FaultSpec) -> Option<FaultSpec> {
    let half = |spec: &Option<TimeSpec>| -> Option<Option<TimeSpec>> {
        let spec = (*spec)?;
        (spec.low > Duration::from_millis(10)).then(|| Some(TimeSpec::fixed(Duration(spec.low.0 / 2))))
    };
    let kind = match &fault.kind {
        FaultKind::Crash { restart_after } => FaultKind::Crash { restart_after: half(restart_after)? },
        FaultKind::Isolate { duration } => FaultKind::Isolate { duration: half(duration)? },
        FaultKind::Partition { peer, duration, one_way } => {
            FaultKind::Partition { peer: peer.clone(), duration: half(duration)?, one_way: *one_way }
        }
        FaultKind::Pause { duration } => FaultKind::Pause { duration: half(&Some(*duration))?? },
        FaultKind::Slow { duration, latency } => {
            FaultKind::Slow { duration: half(&Some(*duration))??, latency: *latency }
        }
        FaultKind::Split { duration } => FaultKind::Split { duration: half(duration)? },
        FaultKind::Link { fault, peer, duration, latency, probability_ppm, rate } => FaultKind::Link {
            fault: *fault,
            peer: peer.clone(),
            duration: half(&Some(*duration))??,
            latency: *latency,
            probability_ppm: *probability_ppm,
            rate: *rate,
        },
        FaultKind::DiskFull { duration } => FaultKind::DiskFull { duration: half(&Some(*duration))?? },
        FaultKind::SlowFsync { duration, latency } => {
            FaultKind::SlowFsync { duration: half(&Some(*duration))??, latency: *latency }
        }
        FaultKind::SlowTaskManager { duration, factor } => {
            FaultKind::SlowTaskManager { duration: half(duration)?, factor: *factor }
        }
        FaultKind::Heal | FaultKind::DamageCheckpoint { .. } | FaultKind::Clock { .. } => return None,
    };
    Some(FaultSpec { kind, ..fault.clone() })
}

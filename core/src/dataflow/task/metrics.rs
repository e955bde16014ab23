//! What a task counts: records and bytes in and out, and how its time was spent.
//!
//! Time is attributed from the `now` values of consecutive steps, as Flink's
//! `busyTimeMsPerSecond`, `idleTimeMsPerSecond` and `backPressuredTimeMsPerSecond` split a
//! task's wall time: the span from one step to the next counts as busy when the first step
//! stopped at its budget with work left, idle when it ran out of input, and backpressured when
//! its output backlog stopped it. Rates per second come from two readings
//! ([`TaskMetrics::time_shares_since`]).

use super::StepStatus;
use crate::time::{Duration, Time};
use serde::{Deserialize, Serialize};

/// Counters of one task, cumulative since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Records read from the input channels (Flink's `numRecordsIn`; zero for a source).
    pub records_in: u64,
    /// Records sent on the output edges (a broadcast record counts once).
    pub records_out: u64,
    /// Bytes of the buffers accepted on the input channels.
    pub bytes_in: u64,
    /// Bytes of the buffers closed on the output edges.
    pub bytes_out: u64,
    /// Buffers closed on the output edges.
    pub buffers_out: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Time spent working.
    pub busy: Duration,
    /// Time spent waiting for input.
    pub idle: Duration,
    /// Time spent waiting for the outputs to drain.
    pub backpressured: Duration,
}

/// Milliseconds per second of busy, idle and backpressured time over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeShares {
    /// Flink's `busyTimeMsPerSecond`.
    pub busy_ms_per_second: u64,
    /// Flink's `idleTimeMsPerSecond`.
    pub idle_ms_per_second: u64,
    /// Flink's `backPressuredTimeMsPerSecond`.
    pub backpressured_ms_per_second: u64,
}

impl TaskMetrics {
    /// The shares of busy, idle and backpressured time between `earlier` and `self`; all zero
    /// when no time passed.
    pub fn time_shares_since(&self, earlier: &TaskMetrics) -> TimeShares {
        let busy = self.busy.0.saturating_sub(earlier.busy.0);
        let idle = self.idle.0.saturating_sub(earlier.idle.0);
        let backpressured = self.backpressured.0.saturating_sub(earlier.backpressured.0);
        let total = u128::from(busy) + u128::from(idle) + u128::from(backpressured);
        let per_second = |part: u64| match total {
            0 => 0,
            total => (u128::from(part) * 1000 / total) as u64,
        };
        TimeShares {
            busy_ms_per_second: per_second(busy),
            idle_ms_per_second: per_second(idle),
            backpressured_ms_per_second: per_second(backpressured),
        }
    }
}

/// Splits the time between steps by how the earlier step ended.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TimeAccount {
    /// The previous step's time and status.
    last: Option<(Time, StepStatus)>,
}

impl TimeAccount {
    /// A step at `now` begins: the span since the previous step goes to what that step ended in.
    pub(super) fn begin(&mut self, now: Time, metrics: &mut TaskMetrics) {
        if let Some((then, status)) = self.last {
            assert!(now >= then, "time went backwards: {now} after {then}");
            let span = now.since(then);
            let counter = match status {
                StepStatus::Progress => &mut metrics.busy,
                StepStatus::Idle => &mut metrics.idle,
                StepStatus::Blocked => &mut metrics.backpressured,
                StepStatus::Finished | StepStatus::Failed | StepStatus::Canceled => return,
            };
            *counter = Duration(counter.0.saturating_add(span.0));
        }
    }

    /// The step at `now` ended in `status`.
    pub(super) fn end(&mut self, now: Time, status: StepStatus) {
        self.last = Some((now, status));
    }
}

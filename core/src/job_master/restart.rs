//! Restart strategies: whether a failed job restarts, and after how long.
//!
//! One [`RestartBackoff`] per job follows Flink's `RestartBackoffTimeStrategy` implementations for
//! the configured `restart-strategy.type`. It is pure: the caller passes the failure time and the
//! job's seeded [`Rng`] (for jitter), and gets a [`RestartDecision`]. Arithmetic is in whole
//! milliseconds, as Flink's, so fractional backoffs round down (initial 4 ms × 2.3 gives 9 ms).
//!
//! The JobMaster asks once per failure that is not merged into a restart already pending, so
//! concurrent failures (one lost TaskManager failing many tasks) cost one attempt.
//!
//! Invariants: the failure-rate window holds at most `max_failures_per_interval + 1` timestamps;
//! the exponential backoff always lies in `initial_backoff..=max_backoff`.

use crate::config::RestartStrategy;
use crate::rng::Rng;
use crate::time::{Duration, Time};
use std::collections::VecDeque;

/// What a restart strategy decided about one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart the affected tasks after `delay`.
    Restart {
        /// Time to wait before the new attempts are created.
        delay: Duration,
    },
    /// Do not restart: the job fails.
    Fail,
}

/// The restart strategy of one job, with the failure history it needs.
#[derive(Clone, Debug)]
pub struct RestartBackoff {
    strategy: RestartStrategy,
    /// Fixed-delay: failures so far; exponential-delay: attempts since the last reset.
    attempts: u32,
    /// Failure-rate: the recent failure times, oldest first.
    failures: VecDeque<Time>,
    /// Exponential-delay: when the restart of the current attempt is due, in ms.
    next_restart_ms: Option<u64>,
}

impl RestartBackoff {
    /// A strategy that has seen no failure yet.
    pub fn new(strategy: RestartStrategy) -> RestartBackoff {
        RestartBackoff { strategy, attempts: 0, failures: VecDeque::new(), next_restart_ms: None }
    }

    /// The configured strategy.
    pub fn strategy(&self) -> &RestartStrategy {
        &self.strategy
    }

    /// Records a failure at `now` and decides whether and when the job restarts.
    pub fn on_failure(&mut self, now: Time, rng: &mut Rng) -> RestartDecision {
        match self.strategy {
            RestartStrategy::None => RestartDecision::Fail,
            RestartStrategy::FixedDelay { attempts, delay } => {
                self.attempts = self.attempts.saturating_add(1);
                if self.attempts <= attempts { RestartDecision::Restart { delay } } else { RestartDecision::Fail }
            }
            RestartStrategy::FailureRate { max_failures_per_interval, failure_rate_interval, delay } => {
                self.failure_rate(now, max_failures_per_interval, failure_rate_interval, delay)
            }
            RestartStrategy::ExponentialDelay { .. } => self.exponential(now, rng),
        }
    }

    /// Fails when more than `max` failures fall within `interval` (a failure exactly `interval`
    /// ago still counts, as in Flink's check `now - earliest > interval`).
    fn failure_rate(&mut self, now: Time, max: u32, interval: Duration, delay: Duration) -> RestartDecision {
        self.failures.push_back(now);
        while self.failures.front().is_some_and(|&earliest| now.since(earliest) > interval) {
            self.failures.pop_front();
        }
        let limit = max as usize + 1;
        while self.failures.len() > limit {
            self.failures.pop_front();
        }
        if self.failures.len() > max as usize { RestartDecision::Fail } else { RestartDecision::Restart { delay } }
    }

    /// Flink's exponential delay: a failure before the pending restart is due merges into it;
    /// after `reset_backoff_threshold` past the last restart the attempt count starts over.
    fn exponential(&mut self, now: Time, rng: &mut Rng) -> RestartDecision {
        let RestartStrategy::ExponentialDelay {
            reset_backoff_threshold, attempts_before_reset_backoff: allowed, ..
        } = self.strategy
        else {
            unreachable!("exponential() is only called for the exponential-delay strategy");
        };
        let now_ms = now.as_millis();
        if let Some(next) = self.next_restart_ms {
            if now_ms <= next {
                return match self.attempts <= allowed {
                    true => RestartDecision::Restart { delay: Duration::from_millis(next - now_ms) },
                    false => RestartDecision::Fail,
                };
            }
            if now_ms - next >= reset_backoff_threshold.as_millis() {
                self.attempts = 0;
            }
        }
        let backoff_ms = self.backoff_ms(rng);
        self.next_restart_ms = Some(now_ms.saturating_add(backoff_ms));
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts <= allowed {
            RestartDecision::Restart { delay: Duration::from_millis(backoff_ms) }
        } else {
            RestartDecision::Fail
        }
    }

    /// `max(initial, min(initial × multiplier^attempts ± jitter, max))`, in whole ms.
    fn backoff_ms(&self, rng: &mut Rng) -> u64 {
        let RestartStrategy::ExponentialDelay {
            initial_backoff, max_backoff, backoff_multiplier, jitter_factor, ..
        } = self.strategy
        else {
            unreachable!("backoff_ms() is only called for the exponential-delay strategy");
        };
        let (initial, max) = (initial_backoff.as_millis() as i128, max_backoff.as_millis() as i128);
        // Past 2^11 attempts the power is infinite for any multiplier above 1 already.
        let exponent = self.attempts.min(2048) as i32;
        let current = (initial as f64 * backoff_multiplier.powi(exponent)) as u64 as i128;
        let jitter = if jitter_factor == 0.0 {
            0
        } else {
            let offset = (current as f64 * jitter_factor) as i64;
            rng.between(-offset, offset) as i128
        };
        let backoff = (current + jitter).min(max).max(initial);
        debug_assert!(backoff >= initial && (backoff <= max || initial > max));
        backoff as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart_delays_ms(backoff: &mut RestartBackoff, times_ms: &[u64]) -> Vec<Option<u64>> {
        let mut rng = Rng::new(7);
        times_ms
            .iter()
            .map(|&ms| match backoff.on_failure(Time(ms * 1_000), &mut rng) {
                RestartDecision::Restart { delay } => Some(delay.as_millis()),
                RestartDecision::Fail => None,
            })
            .collect()
    }

    fn exponential(initial_ms: u64, max_ms: u64, multiplier: f64, jitter: f64, attempts: u32) -> RestartBackoff {
        RestartBackoff::new(RestartStrategy::ExponentialDelay {
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            backoff_multiplier: multiplier,
            reset_backoff_threshold: Duration::from_secs(3600),
            jitter_factor: jitter,
            attempts_before_reset_backoff: attempts,
        })
    }

    #[test]
    fn no_restart_strategy_fails_at_the_first_failure() {
        let mut backoff = RestartBackoff::new(RestartStrategy::None);
        assert_eq!(restart_delays_ms(&mut backoff, &[0]), [None]);
    }

    #[test]
    fn fixed_delay_restarts_attempts_times_then_fails() {
        let strategy = RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_secs(1) };
        let mut backoff = RestartBackoff::new(strategy);
        assert_eq!(restart_delays_ms(&mut backoff, &[0, 10_000, 20_000, 30_000]), [Some(1000), Some(1000), None, None]);
    }

    #[test]
    fn fixed_delay_with_zero_attempts_never_restarts() {
        let strategy = RestartStrategy::FixedDelay { attempts: 0, delay: Duration::from_secs(1) };
        assert_eq!(restart_delays_ms(&mut RestartBackoff::new(strategy), &[5]), [None]);
    }

    fn failure_rate(max: u32, interval_ms: u64) -> RestartBackoff {
        RestartBackoff::new(RestartStrategy::FailureRate {
            max_failures_per_interval: max,
            failure_rate_interval: Duration::from_millis(interval_ms),
            delay: Duration::from_millis(500),
        })
    }

    #[test]
    fn failure_rate_fails_when_more_than_max_failures_fall_in_the_interval() {
        // Flink's documented example shape: 3 failures per 5 min are tolerated, the 4th fails.
        let mut backoff = failure_rate(3, 300_000);
        let delays = restart_delays_ms(&mut backoff, &[0, 60_000, 120_000, 180_000]);
        assert_eq!(delays, [Some(500), Some(500), Some(500), None]);
    }

    #[test]
    fn failure_rate_forgets_failures_older_than_the_interval() {
        let mut backoff = failure_rate(2, 10_000);
        // 0 and 5 s are in one window; at 10.001 s the failure at 0 has left it, at 16 s so has 5 s.
        let delays = restart_delays_ms(&mut backoff, &[0, 5_000, 10_001, 16_000, 17_000]);
        assert_eq!(delays, [Some(500), Some(500), Some(500), Some(500), None]);
    }

    #[test]
    fn failure_rate_counts_a_failure_exactly_one_interval_old() {
        let mut backoff = failure_rate(1, 10_000);
        assert_eq!(restart_delays_ms(&mut backoff, &[0, 10_000]), [Some(500), None]);
        let mut backoff = failure_rate(1, 10_000);
        assert_eq!(restart_delays_ms(&mut backoff, &[0, 10_001]), [Some(500), Some(500)]);
    }

    #[test]
    fn failure_rate_window_stays_bounded() {
        let mut backoff = failure_rate(3, 1_000_000_000);
        let times: Vec<u64> = (0..1_000).collect();
        restart_delays_ms(&mut backoff, &times);
        assert!(backoff.failures.len() <= 4);
    }

    #[test]
    fn exponential_delay_matches_flinks_example() {
        // initial 4, multiplier 2.3, no jitter, max 300: 4, 9, 21 (rounded down), then 48, 111, 257, 300.
        let mut backoff = exponential(4, 300, 2.3, 0.0, u32::MAX);
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            // Each failure comes after the previous restart, well within the reset threshold.
            let delay = restart_delays_ms(&mut backoff, &[now])[0].expect("restarts");
            delays.push(delay);
            now += delay + 1;
        }
        assert_eq!(delays, [4, 9, 21, 48, 111, 257, 300, 300]);
    }

    #[test]
    fn exponential_delay_merges_failures_before_the_pending_restart() {
        let mut backoff = exponential(1_000, 60_000, 2.0, 0.0, u32::MAX);
        assert_eq!(restart_delays_ms(&mut backoff, &[0, 400, 1_000]), [Some(1_000), Some(600), Some(0)]);
        // The merged failures did not advance the backoff.
        assert_eq!(restart_delays_ms(&mut backoff, &[1_001]), [Some(2_000)]);
    }

    #[test]
    fn exponential_delay_resets_after_the_threshold_without_failure() {
        let mut backoff = exponential(1_000, 60_000, 2.0, 0.0, u32::MAX);
        let delays = restart_delays_ms(&mut backoff, &[0, 2_000, 10_000]);
        assert_eq!(delays, [Some(1_000), Some(2_000), Some(4_000)]);
        // The last restart was due at 14 s; an hour later the backoff starts over.
        assert_eq!(restart_delays_ms(&mut backoff, &[14_000 + 3_600_000]), [Some(1_000)]);
    }

    #[test]
    fn exponential_delay_fails_after_attempts_before_reset() {
        let mut backoff = exponential(1_000, 60_000, 2.0, 0.0, 2);
        assert_eq!(restart_delays_ms(&mut backoff, &[0, 5_000, 20_000]), [Some(1_000), Some(2_000), None]);
    }

    #[test]
    fn exponential_jitter_stays_within_the_factor_and_follows_the_seed() {
        let draw = |seed| {
            let mut backoff = exponential(10_000, 1_000_000, 1.5, 0.1, u32::MAX);
            let mut rng = Rng::new(seed);
            match backoff.on_failure(Time::ZERO, &mut rng) {
                RestartDecision::Restart { delay } => delay.as_millis(),
                RestartDecision::Fail => panic!("restarts"),
            }
        };
        let delays: Vec<u64> = (0..200).map(draw).collect();
        // The floor is the initial backoff, so the jitter only shows upwards on the first attempt.
        assert!(delays.iter().all(|&delay| (10_000..=11_000).contains(&delay)), "{delays:?}");
        assert!(delays.iter().any(|&delay| delay > 10_000));
        assert_eq!(draw(3), draw(3));
    }

    #[test]
    fn exponential_jitter_spreads_both_ways_once_above_the_floor() {
        let mut backoff = exponential(1_000, 1_000_000, 10.0, 0.5, u32::MAX);
        let mut rng = Rng::new(11);
        backoff.on_failure(Time::ZERO, &mut rng);
        let RestartDecision::Restart { delay } = backoff.on_failure(Time(5_000_000), &mut rng) else {
            panic!("restarts")
        };
        assert!((5_000..=15_000).contains(&delay.as_millis()), "{delay}");
    }
}

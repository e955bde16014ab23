//! What happens after a task fails: the restart strategy (`restart-strategy.*`) decides whether
//! and when, the failover strategy (`jobmanager.execution.failover-strategy`) decides what.

use super::read::{Reader, choice, duration, number, whole};
use super::{ConfigError, Listing};
use crate::time::Duration;

/// Whether and when a failed job restarts, with the parameters of the chosen strategy.
///
/// Only the keys of the chosen strategy are read; the others have no effect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RestartStrategy {
    /// A failure fails the job.
    None,
    /// Restart after a fixed delay, `attempts` times; the next failure fails the job.
    FixedDelay {
        /// Restarts before the job fails.
        attempts: u32,
        /// Delay before each restart.
        delay: Duration,
    },
    /// Restart after a fixed delay until more than `max_failures_per_interval` failures fall
    /// inside one `failure_rate_interval`.
    FailureRate {
        /// Most failures within the window; one more fails the job. At least 1.
        max_failures_per_interval: u32,
        /// Window in which failures are counted; above zero.
        failure_rate_interval: Duration,
        /// Delay before each restart.
        delay: Duration,
    },
    /// Restart after a backoff that grows by `backoff_multiplier` per failure, up to
    /// `max_backoff`, and resets after `reset_backoff_threshold` without failure.
    ExponentialDelay {
        /// Backoff before the first restart; above zero and at most `max_backoff`.
        initial_backoff: Duration,
        /// Longest backoff.
        max_backoff: Duration,
        /// Growth factor of the backoff, at least 1.
        backoff_multiplier: f64,
        /// Time without failure after which the backoff resets; above zero.
        reset_backoff_threshold: Duration,
        /// Fraction of the backoff added or taken away at random, from 0 to 1.
        jitter_factor: f64,
        /// Restarts allowed before the backoff resets; one more fails the job. At least 1.
        attempts_before_reset_backoff: u32,
    },
}

/// The strategy names `restart-strategy.type` accepts (Flink's, with its aliases).
const TYPE_NAMES: [(&str, StrategyType); 9] = [
    ("none", StrategyType::None),
    ("off", StrategyType::None),
    ("disable", StrategyType::None),
    ("fixed-delay", StrategyType::FixedDelay),
    ("fixeddelay", StrategyType::FixedDelay),
    ("failure-rate", StrategyType::FailureRate),
    ("failurerate", StrategyType::FailureRate),
    ("exponential-delay", StrategyType::ExponentialDelay),
    ("exponentialdelay", StrategyType::ExponentialDelay),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrategyType {
    None,
    FixedDelay,
    FailureRate,
    ExponentialDelay,
}

impl RestartStrategy {
    /// The strategy's name as `restart-strategy.type` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::FixedDelay { .. } => "fixed-delay",
            RestartStrategy::FailureRate { .. } => "failure-rate",
            RestartStrategy::ExponentialDelay { .. } => "exponential-delay",
        }
    }

    /// Reads the configured strategy; when none is configured, Flink's default: exponential
    /// delay if checkpointing is on, else none.
    pub(super) fn read(reader: &Reader, checkpointing_enabled: bool) -> Result<RestartStrategy, ConfigError> {
        let configured = reader.optional("restart-strategy.type", choice(&TYPE_NAMES))?;
        let default = if checkpointing_enabled { StrategyType::ExponentialDelay } else { StrategyType::None };
        match configured.unwrap_or(default) {
            StrategyType::None => Ok(RestartStrategy::None),
            StrategyType::FixedDelay => read_fixed_delay(reader),
            StrategyType::FailureRate => read_failure_rate(reader),
            StrategyType::ExponentialDelay => read_exponential_delay(reader),
        }
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("restart-strategy.type", self.type_name());
        match *self {
            RestartStrategy::None => {}
            RestartStrategy::FixedDelay { attempts, delay } => {
                listing.put("restart-strategy.fixed-delay.attempts", attempts);
                listing.put("restart-strategy.fixed-delay.delay", delay);
            }
            RestartStrategy::FailureRate { max_failures_per_interval, failure_rate_interval, delay } => {
                const PREFIX: &str = "restart-strategy.failure-rate";
                listing.put_under(PREFIX, "max-failures-per-interval", max_failures_per_interval);
                listing.put_under(PREFIX, "failure-rate-interval", failure_rate_interval);
                listing.put_under(PREFIX, "delay", delay);
            }
            RestartStrategy::ExponentialDelay { .. } => self.list_exponential_delay(listing),
        }
    }

    fn list_exponential_delay(&self, listing: &mut Listing) {
        let RestartStrategy::ExponentialDelay {
            initial_backoff,
            max_backoff,
            backoff_multiplier,
            reset_backoff_threshold,
            jitter_factor,
            attempts_before_reset_backoff,
        } = *self
        else {
            return;
        };
        const PREFIX: &str = "restart-strategy.exponential-delay";
        listing.put_under(PREFIX, "initial-backoff", initial_backoff);
        listing.put_under(PREFIX, "max-backoff", max_backoff);
        listing.put_under(PREFIX, "backoff-multiplier", backoff_multiplier);
        listing.put_under(PREFIX, "reset-backoff-threshold", reset_backoff_threshold);
        listing.put_under(PREFIX, "jitter-factor", jitter_factor);
        listing.put_under(PREFIX, "attempts-before-reset-backoff", attempts_before_reset_backoff);
    }
}

fn read_fixed_delay(reader: &Reader) -> Result<RestartStrategy, ConfigError> {
    Ok(RestartStrategy::FixedDelay {
        attempts: reader.value("restart-strategy.fixed-delay.attempts", whole(0, u32::MAX))?,
        delay: reader.value("restart-strategy.fixed-delay.delay", duration)?,
    })
}

fn read_failure_rate(reader: &Reader) -> Result<RestartStrategy, ConfigError> {
    let interval_key = "restart-strategy.failure-rate.failure-rate-interval";
    let failure_rate_interval = reader.value(interval_key, duration)?;
    if failure_rate_interval == Duration::ZERO {
        return Err(ConfigError::invalid(interval_key, "0 ms", "a duration above zero"));
    }
    Ok(RestartStrategy::FailureRate {
        max_failures_per_interval: reader
            .value("restart-strategy.failure-rate.max-failures-per-interval", whole(1, u32::MAX))?,
        failure_rate_interval,
        delay: reader.value("restart-strategy.failure-rate.delay", duration)?,
    })
}

fn read_exponential_delay(reader: &Reader) -> Result<RestartStrategy, ConfigError> {
    const INITIAL: &str = "restart-strategy.exponential-delay.initial-backoff";
    const MAX: &str = "restart-strategy.exponential-delay.max-backoff";
    const RESET: &str = "restart-strategy.exponential-delay.reset-backoff-threshold";
    let initial_backoff = reader.value(INITIAL, duration)?;
    let max_backoff = reader.value(MAX, duration)?;
    let reset_backoff_threshold = reader.value(RESET, duration)?;
    for (key, span) in [(INITIAL, initial_backoff), (RESET, reset_backoff_threshold)] {
        if span == Duration::ZERO {
            return Err(ConfigError::invalid(key, "0 ms", "a duration above zero"));
        }
    }
    if initial_backoff > max_backoff {
        let expected = format!("a duration of at most `{MAX}` ({max_backoff})");
        return Err(ConfigError::invalid(INITIAL, initial_backoff.to_string(), expected));
    }
    Ok(RestartStrategy::ExponentialDelay {
        initial_backoff,
        max_backoff,
        backoff_multiplier: reader
            .value("restart-strategy.exponential-delay.backoff-multiplier", number(1.0, f64::MAX))?,
        reset_backoff_threshold,
        jitter_factor: reader.value("restart-strategy.exponential-delay.jitter-factor", number(0.0, 1.0))?,
        attempts_before_reset_backoff: reader
            .value("restart-strategy.exponential-delay.attempts-before-reset-backoff", whole(1, u32::MAX))?,
    })
}

/// What restarts after a task failure (`jobmanager.execution.failover-strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverStrategy {
    /// The failed task's pipelined region, the producers of data it lost and their consumers.
    Region,
    /// Every task of the job.
    Full,
}

impl FailoverStrategy {
    const NAMES: [(&str, FailoverStrategy); 2] =
        [("region", FailoverStrategy::Region), ("full", FailoverStrategy::Full)];

    /// The strategy's name as the key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverStrategy::Region => "region",
            FailoverStrategy::Full => "full",
        }
    }

    pub(super) fn read(reader: &Reader) -> Result<FailoverStrategy, ConfigError> {
        reader.value("jobmanager.execution.failover-strategy", choice(&FailoverStrategy::NAMES))
    }

    pub(super) fn list(self, listing: &mut Listing) {
        listing.put("jobmanager.execution.failover-strategy", self.as_str());
    }
}

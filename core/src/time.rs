//! Virtual and real time as plain values: the driver says what time it is, the core never asks.
//!
//! [`Time`] is microseconds since an epoch the driver picks (the simulator starts at zero, the
//! daemons use the Unix epoch). [`Duration`] is a span in microseconds. Both are `Copy` newtypes so
//! a timestamp can never be passed where a span is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time, in microseconds since the driver's epoch.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(pub u64);

/// A span of time, in microseconds.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Duration(pub u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);

    /// Microseconds since the epoch.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch, rounded down (Flink's REST timestamps are in ms).
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// The time `span` later, saturating at the end of time instead of wrapping.
    pub fn after(self, span: Duration) -> Time {
        Time(self.0.saturating_add(span.0))
    }

    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);
    /// The longest representable span; used for "never".
    pub const MAX: Duration = Duration(u64::MAX);

    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Duration {
        Duration(micros)
    }

    /// A span of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Duration {
        Duration(millis.saturating_mul(1_000))
    }

    /// A span of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs.saturating_mul(1_000_000))
    }

    /// Microseconds in the span.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds in the span.
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// The span multiplied by `factor`, saturating.
    pub fn saturating_mul(self, factor: u64) -> Duration {
        Duration(self.0.saturating_mul(factor))
    }
}

impl fmt::Display for Duration {
    /// Prints the largest whole unit, as Flink prints durations in its configuration (`10 s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us == 0 {
            return write!(f, "0 ms");
        }
        const UNITS: [(u64, &str); 6] = [
            (86_400_000_000, "d"),
            (3_600_000_000, "h"),
            (60_000_000, "min"),
            (1_000_000, "s"),
            (1_000, "ms"),
            (1, "us"),
        ];
        for (size, name) in UNITS {
            if us.is_multiple_of(size) {
                return write!(f, "{} {}", us / size, name);
            }
        }
        unreachable!("every span is a whole number of microseconds")
    }
}

impl fmt::Debug for Duration {
    /// As Display (`10 s`), so state dumps read like configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Time {
    /// As Display (seconds with microseconds), so state dumps read like the event log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Time(u64::MAX - 1).after(Duration(5)), Time(u64::MAX));
        assert_eq!(Time(3).since(Time(10)), Duration::ZERO);
        assert_eq!(Time(10).since(Time(3)), Duration(7));
    }

    #[test]
    fn duration_display_uses_the_largest_whole_unit() {
        assert_eq!(Duration::from_secs(10).to_string(), "10 s");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500 ms");
        assert_eq!(Duration::from_secs(300).to_string(), "5 min");
        assert_eq!(Duration::ZERO.to_string(), "0 ms");
    }
}

//! A node's clock against the simulation's: offset, drift, and jumps.
//!
//! A clock reads `anchor_local` at simulation time `anchor_global` and advances by
//! `1 + drift_ppm / 1_000_000` per simulated microsecond from there. A drift change or a jump
//! re-anchors it at the current time, so it never goes back (a process's monotonic clock can
//! jump forward, after a VM stall or an NTP step, but not back).

use weir_core::time::{Duration, Time};

/// One node's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    anchor_global: u64,
    anchor_local: u64,
    drift_ppm: i64,
}

impl Clock {
    /// A clock that reads `offset` more than the simulation at time zero and drifts by `drift_ppm`.
    pub fn new(offset: Duration, drift_ppm: i64) -> Clock {
        Clock { anchor_global: 0, anchor_local: offset.0, drift_ppm: drift_ppm.clamp(-999_999, 999_999) }
    }

    /// Whether it reads the simulation's time exactly.
    pub fn is_exact(&self) -> bool {
        *self == Clock::default()
    }

    /// What the clock reads at simulation time `now`.
    pub fn local(&self, now: Time) -> Time {
        let since = now.0 as i128 - self.anchor_global as i128;
        let drift = since * self.drift_ppm as i128 / 1_000_000;
        Time((self.anchor_local as i128 + since + drift).max(0) as u64)
    }

    /// The first simulation time at which the clock reads at least `local` (the anchor time if
    /// it read that already then).
    pub fn global(&self, local: Time) -> Time {
        let since = (local.0 as i128 - self.anchor_local as i128).max(0);
        let rate = 1_000_000 + self.drift_ppm as i128;
        Time(self.anchor_global + ((since * 1_000_000 + rate - 1) / rate) as u64)
    }

    /// The clock jumps forward by `by` at `now`.
    pub fn jump(&mut self, now: Time, by: Duration) {
        let reads = self.local(now);
        *self = Clock { anchor_global: now.0, anchor_local: reads.0 + by.0, drift_ppm: self.drift_ppm };
    }

    /// From `now` on the clock drifts by `drift_ppm`.
    pub fn set_drift(&mut self, now: Time, drift_ppm: i64) {
        let reads = self.local(now);
        *self = Clock { anchor_global: now.0, anchor_local: reads.0, drift_ppm: drift_ppm.clamp(-999_999, 999_999) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_global_are_inverse_and_never_go_back() {
        let mut clock = Clock::new(Duration::from_millis(3), 5_000);
        let at = Time(1_000_000);
        assert_eq!(clock.local(at), Time(3_000 + 1_000_000 + 5_000));
        assert!(clock.local(clock.global(Time(2_000_000))) >= Time(2_000_000));
        assert!(clock.local(Time(clock.global(Time(2_000_000)).0 - 1)) < Time(2_000_000));
        let before = clock.local(at);
        clock.jump(at, Duration::from_secs(2));
        assert_eq!(clock.local(at), Time(before.0 + 2_000_000));
        clock.set_drift(at, -500_000);
        let later = Time(3_000_000);
        assert_eq!(clock.local(later), Time(before.0 + 2_000_000 + 1_000_000));
        assert_eq!(clock.global(clock.local(later)), later);
    }
}

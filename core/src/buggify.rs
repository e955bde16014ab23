//! BUGGIFY-style fault points (after FoundationDB's): places in the code that, in simulation
//! only, sometimes take a rarer path — a timeout fires early, a heartbeat is skipped, a
//! checkpoint trigger comes late — so a simulated run explores the paths production meets once a
//! month.
//!
//! Off unless a simulation turned it on for the current thread with [`enable`]; then each named
//! site is switched on or off once per run (a quarter of them on), and a site that is on fires
//! with its own small probability each time it is reached. Every choice comes from the seed the
//! run gave, so the same seed takes the same rare paths. In production nothing enables it:
//! [`fires`] reads one relaxed atomic and returns false.
//!
//! ```
//! if weir_core::buggify::fires("example.site", 0.1) {
//!     // the rare path
//! }
//! ```

use crate::rng::Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether any thread of the process ever enabled fault points (never, outside simulation).
static EVER_ENABLED: AtomicBool = AtomicBool::new(false);

/// The share of sites switched on in one run.
const SITE_ON: f64 = 0.25;

thread_local! {
    static STATE: RefCell<Option<Points>> = const { RefCell::new(None) };
}

/// The fault points of one run.
struct Points {
    rng: Rng,
    /// Per site reached: whether it is on in this run, and how often it fired.
    sites: BTreeMap<&'static str, (bool, u64)>,
}

/// Turns fault points on for this thread with `seed` until the guard is dropped (which restores
/// what was there before, so a nested run cannot leak into its caller's).
pub fn enable(seed: u64) -> Guard {
    EVER_ENABLED.store(true, Ordering::Relaxed);
    let points = Points { rng: Rng::new(seed), sites: BTreeMap::new() };
    Guard { previous: STATE.with(|state| state.replace(Some(points))), active: true }
}

/// Turns fault points off for this thread until the guard is dropped (a fault-free reference
/// run inside a run with fault points).
pub fn disable() -> Guard {
    Guard { previous: STATE.with(|state| state.replace(None)), active: true }
}

/// Restores the fault points that were in force before [`enable`] or [`disable`].
pub struct Guard {
    previous: Option<Points>,
    active: bool,
}

impl Guard {
    /// Every site reached so far in this run: name, whether it is on, and how often it fired.
    pub fn sites(&self) -> Vec<(&'static str, bool, u64)> {
        STATE.with(|state| {
            let state = state.borrow();
            state.as_ref().map_or_else(Vec::new, |points| {
                points.sites.iter().map(|(name, (on, fired))| (*name, *on, *fired)).collect()
            })
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.active {
            self.active = false;
            let previous = self.previous.take();
            STATE.with(|state| state.replace(previous));
        }
    }
}

/// Whether the fault point `site` takes its rare path now: never outside simulation; in a
/// simulation with fault points on, when the site is on in this run, with `probability`.
#[inline]
pub fn fires(site: &'static str, probability: f64) -> bool {
    if !EVER_ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    fires_slow(site, probability)
}

#[cold]
fn fires_slow(site: &'static str, probability: f64) -> bool {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let Some(points) = state.as_mut() else { return false };
        let on = match points.sites.get(site) {
            Some((on, _)) => *on,
            None => {
                let on = points.rng.chance(SITE_ON);
                points.sites.insert(site, (on, 0));
                on
            }
        };
        let fired = on && points.rng.chance(probability);
        if fired && let Some((_, count)) = points.sites.get_mut(site) {
            *count += 1;
        }
        fired
    })
}

/// A value drawn from the fault points' generator in `0..bound` (0 when they are off): how far
/// a rare path goes, e.g. how late a delayed trigger comes.
pub fn below(bound: u64) -> u64 {
    if !EVER_ENABLED.load(Ordering::Relaxed) || bound == 0 {
        return 0;
    }
    STATE.with(|state| state.borrow_mut().as_mut().map_or(0, |points| points.rng.below(bound)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<bool> {
        let _guard = enable(seed);
        (0..200).map(|i| fires(["a", "b", "c", "d", "e", "f", "g", "h"][i % 8], 0.5)).collect()
    }

    #[test]
    fn off_without_enable_and_after_the_guard() {
        assert!(!(0..1000).any(|_| fires("never", 1.0)));
        let mut seeds_with_a_site_on = 0;
        for seed in 0..20 {
            let guard = enable(seed);
            for site in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"] {
                fires(site, 1.0);
            }
            let sites = guard.sites();
            assert_eq!(sites.len(), 12);
            seeds_with_a_site_on += usize::from(sites.iter().any(|(_, on, _)| *on));
            assert!(sites.iter().all(|(_, on, fired)| *on == (*fired == 1)), "an on site fires at probability 1");
            let _off = disable();
            assert!(!fires("a", 1.0) && !fires("b", 1.0), "disabled inside");
        }
        assert!(seeds_with_a_site_on >= 10, "about a quarter of the sites are on in a run");
        assert!(!(0..1000).any(|_| fires("a", 1.0)), "the guard restored the off state");
    }

    #[test]
    fn the_same_seed_takes_the_same_paths() {
        assert_eq!(run(7), run(7));
        assert!((0..20).map(run).collect::<std::collections::BTreeSet<_>>().len() > 1, "seeds matter");
    }
}

//! Candidates against the reference store under any interleaving: random delays and losses of
//! requests and replies, pauses of whole candidates (a paused process handles nothing until it
//! wakes), crashes and restarts, and clocks that are offset and drift by up to 15 % (the margin
//! of these timings covers 20 %). After every event, at most one candidate may act (`leading`
//! at its own clock's reading), and every grant that a candidate acts on has a higher epoch
//! than all before it.

use super::store::LeaseStore;
use super::*;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const CANDIDATES: usize = 3;
const TIMING: ElectionTiming = ElectionTiming {
    lease: Duration::from_millis(1000),
    renew_interval: Duration::from_millis(300),
    margin: Duration::from_millis(200),
};
const RUN_MS: u64 = 20_000;

#[derive(Clone, Copy, Debug)]
struct Clock {
    offset_us: u64,
    drift_ppm: i64,
}

impl Clock {
    /// The candidate's reading at real time `real`.
    fn local(self, real: Time) -> Time {
        let drift = (real.0 as i128) * (self.drift_ppm as i128) / 1_000_000;
        Time((self.offset_us as i128 + real.0 as i128 + drift) as u64)
    }

    /// The first real time at which the reading is at least `local`.
    fn real(self, local: Time) -> Time {
        let since = (local.0 as i128 - self.offset_us as i128).max(0);
        let real =
            (since * 1_000_000 + (1_000_000 + self.drift_ppm as i128) - 1) / (1_000_000 + self.drift_ppm as i128);
        Time(real as u64)
    }
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    ToStore(usize, u32, StoreRequest),
    ToCandidate(usize, u32, StoreReply),
    Crash(usize),
}

struct Harness {
    store: LeaseStore,
    candidates: Vec<LeaderElection>,
    incarnations: Vec<u32>,
    clocks: Vec<Clock>,
    /// Per candidate: real-time windows in which it is paused.
    pauses: Vec<Vec<(Time, Time)>>,
    delays: Vec<(u16, bool)>,
    delay_next: usize,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    events: Vec<Option<Event>>,
    last_epoch_led: Epoch,
    /// The earliest tick scheduled per candidate.
    tick_at: Vec<Option<Time>>,
}

impl Harness {
    fn schedule(&mut self, at: Time, event: Event) {
        let sequence = self.events.len() as u64;
        self.events.push(Some(event));
        self.queue.push(Reverse((at, sequence, self.events.len() - 1)));
    }

    fn next_delay(&mut self) -> Option<Duration> {
        let (ms, lost) = self.delays[self.delay_next % self.delays.len()];
        self.delay_next += 1;
        (!lost).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// When a candidate handles something due at `at`: after any pause covering it.
    fn awake_at(&self, candidate: usize, at: Time) -> Time {
        self.pauses[candidate].iter().find(|(from, to)| at >= *from && at < *to).map_or(at, |(_, to)| *to)
    }

    fn drain(&mut self, candidate: usize, now: Time) {
        while let Some(output) = self.candidates[candidate].poll_output() {
            match output {
                ElectionOutput::Store(request) => {
                    if let Some(delay) = self.next_delay() {
                        self.schedule(
                            now.after(delay),
                            Event::ToStore(candidate, self.incarnations[candidate], request),
                        );
                    }
                }
                ElectionOutput::Role(LeaderRole::Leading { epoch }) => {
                    assert!(epoch > self.last_epoch_led, "led {epoch} after {}", self.last_epoch_led);
                    self.last_epoch_led = epoch;
                }
                ElectionOutput::Role(_) => {}
            }
        }
        if let Some(local) = self.candidates[candidate].poll_timeout() {
            let at = self.clocks[candidate].real(local).max(now);
            if self.tick_at[candidate].is_none_or(|pending| at < pending) {
                self.tick_at[candidate] = Some(at);
                self.schedule(at, Event::Tick(candidate));
            }
        }
    }

    fn run(&mut self) {
        for candidate in 0..CANDIDATES {
            self.drain(candidate, Time::ZERO);
        }
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if at > Time::ZERO.after(Duration::from_millis(RUN_MS)) {
                break;
            }
            let event = self.events[index].take().expect("each event runs once");
            let node = match &event {
                Event::Tick(c) | Event::ToCandidate(c, ..) | Event::Crash(c) => Some(*c),
                Event::ToStore(..) => None,
            };
            if let Some(c) = node {
                let awake = self.awake_at(c, at);
                if awake > at {
                    self.schedule(awake, event); // paused: handled when it wakes
                    continue;
                }
            }
            self.step(at, event);
            self.check(at);
        }
    }

    fn step(&mut self, now: Time, event: Event) {
        match event {
            Event::Tick(c) => {
                self.tick_at[c] = None;
                let local = self.clocks[c].local(now);
                self.candidates[c].handle_tick(local);
                self.drain(c, now);
            }
            Event::ToStore(c, incarnation, request) => {
                let reply = self.store.apply(now, request);
                if let Some(delay) = self.next_delay() {
                    self.schedule(now.after(delay), Event::ToCandidate(c, incarnation, reply));
                }
            }
            Event::ToCandidate(c, incarnation, reply) => {
                if incarnation == self.incarnations[c] {
                    let local = self.clocks[c].local(now);
                    self.candidates[c].handle_reply(local, reply);
                    self.drain(c, now);
                }
            }
            Event::Crash(c) => {
                self.incarnations[c] += 1;
                let name = format!("jm-{c}-{}", self.incarnations[c]);
                let local = self.clocks[c].local(now);
                self.candidates[c] = LeaderElection::new(name, format!("jm-{c}"), TIMING, local);
                self.drain(c, now);
            }
        }
    }

    fn check(&self, now: Time) {
        let acting: Vec<(usize, Epoch)> = (0..CANDIDATES)
            .filter_map(|c| self.candidates[c].leading(self.clocks[c].local(now)).map(|epoch| (c, epoch)))
            .collect();
        assert!(acting.len() <= 1, "two leaders act at {now}: {acting:?}");
        if let Some((_, epoch)) = acting.first() {
            assert_eq!(*epoch, self.store.epoch(), "the acting leader holds the newest epoch");
        }
        for candidate in &self.candidates {
            candidate.check_invariants().expect("election invariants");
        }
    }
}

fn harness(
    clocks: Vec<Clock>,
    delays: Vec<(u16, bool)>,
    pauses: Vec<(usize, u64, u64)>,
    crashes: Vec<(usize, u64)>,
) -> Harness {
    let mut windows = vec![Vec::new(); CANDIDATES];
    for (c, from_ms, length_ms) in pauses {
        let from = Time::ZERO.after(Duration::from_millis(from_ms));
        windows[c].push((from, from.after(Duration::from_millis(length_ms))));
    }
    let mut harness = Harness {
        store: LeaseStore::new(),
        candidates: (0..CANDIDATES)
            .map(|c| LeaderElection::new(format!("jm-{c}-0"), format!("jm-{c}"), TIMING, clocks[c].local(Time::ZERO)))
            .collect(),
        incarnations: vec![0; CANDIDATES],
        clocks,
        pauses: windows,
        delays,
        delay_next: 0,
        queue: BinaryHeap::new(),
        events: Vec::new(),
        last_epoch_led: Epoch(0),
        tick_at: vec![None; CANDIDATES],
    };
    for (c, at_ms) in crashes {
        harness.schedule(Time::ZERO.after(Duration::from_millis(at_ms)), Event::Crash(c));
    }
    harness
}

fn clock() -> impl Strategy<Value = Clock> {
    (0u64..10_000_000, -150_000i64..150_000).prop_map(|(offset_us, drift_ppm)| Clock { offset_us, drift_ppm })
}

/// Mostly quick answers, sometimes very slow ones (a store or link that stalls).
fn delay() -> impl Strategy<Value = u16> {
    prop_oneof![8 => 0u16..40, 2 => 0u16..1500]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn never_two_leaders_and_epochs_grow(
        clocks in proptest::collection::vec(clock(), CANDIDATES),
        delays in proptest::collection::vec((delay(), proptest::bool::weighted(0.1)), 1..64),
        pauses in proptest::collection::vec((0..CANDIDATES, 0u64..RUN_MS, 0u64..4000), 0..4),
        crashes in proptest::collection::vec((0..CANDIDATES, 0u64..RUN_MS), 0..3),
    ) {
        let mut harness = harness(clocks, delays, pauses, crashes);
        harness.run();
    }
}

/// The harness is not vacuous: with a fast store and no faults, someone leads for most of the run.
#[test]
fn a_fault_free_run_elects_a_leader_that_stays() {
    let clocks = vec![Clock { offset_us: 0, drift_ppm: 0 }; CANDIDATES];
    let mut harness = harness(clocks, vec![(5, false)], Vec::new(), Vec::new());
    harness.run();
    assert_eq!(harness.store.epoch(), Epoch(1), "one election, kept by renewals");
    let end = Time::ZERO.after(Duration::from_millis(RUN_MS));
    let leaders = (0..CANDIDATES).filter(|&c| harness.candidates[c].leading(end).is_some()).count();
    assert_eq!(leaders, 1);
}

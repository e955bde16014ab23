//! Links between simulated nodes: latency with jitter, loss, duplication, partitions (both ways
//! or one way), and impairments for a while (latency spikes, slow links, duplication, reordering).
//!
//! By default a link is FIFO, as one TCP connection is: a message never arrives before one sent
//! earlier on the same link, whatever latency it drew. With `reorder` on, each message's own
//! latency decides, so a jitter wider than the gap between two sends reorders them.

use crate::scenario::NetworkSpec;
use std::collections::{BTreeMap, BTreeSet};
use weir_core::rng::Rng;
use weir_core::time::{Duration, Time};

/// Index of a simulated node.
pub type NodeIndex = usize;

/// The links' behaviour and which directions are cut.
pub struct Network {
    spec: NetworkSpec,
    /// Directed pairs (from, to) that cannot communicate.
    blocked: BTreeSet<(NodeIndex, NodeIndex)>,
    /// The latest arrival scheduled on each directed link, to keep links FIFO.
    last_arrival: BTreeMap<(NodeIndex, NodeIndex), Time>,
    /// The same for data connections (separate TCP connections from the RPC ones).
    data_last_arrival: BTreeMap<(NodeIndex, NodeIndex), Time>,
    /// Link faults in force, in the order they struck.
    impairments: Vec<Impairment>,
}

/// A link fault for a while: on the links of `a` (every link when `None`), or only those
/// between `a` and `b`, both directions.
#[derive(Clone, Debug, PartialEq)]
pub struct Impairment {
    /// One end (every link when `None`).
    pub a: Option<NodeIndex>,
    /// The other end (any when `None`).
    pub b: Option<NodeIndex>,
    /// When it ends.
    pub until: Time,
    /// Extra latency of every message and buffer (a latency spike, a slow link).
    pub latency: Duration,
    /// Extra latency drawn in `0..=reorder` per RPC message, FIFO order off (reordering).
    pub reorder: Duration,
    /// Probability an RPC message arrives twice.
    pub duplicate: f64,
    /// Bytes per second a data connection carries (a slow link), if limited.
    pub rate: Option<u64>,
}

impl Impairment {
    fn applies(&self, now: Time, from: NodeIndex, to: NodeIndex) -> bool {
        let ends = |x: NodeIndex, y: NodeIndex| self.a.is_none_or(|a| a == x) && self.b.is_none_or(|b| b == y);
        now < self.until && (ends(from, to) || ends(to, from))
    }
}

/// What the impairments in force do to one link.
#[derive(Default)]
struct Effect {
    latency: u64,
    reorder: u64,
    duplicate: f64,
    rate: Option<u64>,
}

impl Network {
    /// A network with every link up.
    pub fn new(spec: NetworkSpec) -> Network {
        Network {
            spec,
            blocked: BTreeSet::new(),
            last_arrival: BTreeMap::new(),
            data_last_arrival: BTreeMap::new(),
            impairments: Vec::new(),
        }
    }

    /// The arrival times of the copies of one message sent at `now` from `from` to `to`: none
    /// when the link is cut or the message is lost, two when it is duplicated.
    pub fn arrivals(&mut self, rng: &mut Rng, now: Time, from: NodeIndex, to: NodeIndex) -> Vec<Time> {
        if from == to {
            return vec![now];
        }
        if self.is_blocked(from, to) || rng.chance(self.spec.loss) {
            return Vec::new();
        }
        let effect = self.effect(now, from, to);
        let duplicated = rng.chance(self.spec.duplicate) || (effect.duplicate > 0.0 && rng.chance(effect.duplicate));
        let copies = if duplicated { 2 } else { 1 };
        let mut arrivals = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut latency = self.spec.latency.0 + rng.below(self.spec.jitter.0 + 1) + effect.latency;
            if effect.reorder > 0 {
                latency += rng.below(effect.reorder + 1);
            }
            // Fault point of the driver: a message is held up to 50 ms (a stalled socket); a
            // FIFO link still keeps the messages behind it in order.
            if weir_core::buggify::fires("sim.message.delay", 0.05) {
                latency += weir_core::buggify::below(50_000);
            }
            let mut at = now.after(Duration(latency));
            if !self.spec.reorder && effect.reorder == 0 {
                let last = self.last_arrival.entry((from, to)).or_insert(at);
                at = at.max(*last);
                *last = at;
            }
            arrivals.push(at);
        }
        arrivals
    }

    /// The arrival time of a data buffer of `bytes` sent at `now` on a TCP connection from `from`
    /// to `to`: never lost nor duplicated, FIFO on the link, with the link's latency; on a link
    /// limited to a rate it also waits for the buffers before it to pass.
    pub fn data_arrival(&mut self, rng: &mut Rng, now: Time, from: NodeIndex, to: NodeIndex, bytes: usize) -> Time {
        let effect = self.effect(now, from, to);
        let mut at = now.after(Duration(self.spec.latency.0 + rng.below(self.spec.jitter.0 + 1) + effect.latency));
        let last = self.data_last_arrival.entry((from, to)).or_insert(at);
        if let Some(rate) = effect.rate {
            let transfer = (bytes as u64).saturating_mul(1_000_000) / rate.max(1);
            at = at.max(last.after(Duration(transfer)));
        }
        at = at.max(*last);
        *last = at;
        at
    }

    /// Adds a link fault; those that ended are forgotten.
    pub fn impair(&mut self, now: Time, impairment: Impairment) {
        self.impairments.retain(|old| old.until > now);
        self.impairments.push(impairment);
    }

    fn effect(&self, now: Time, from: NodeIndex, to: NodeIndex) -> Effect {
        let mut effect = Effect::default();
        for impairment in self.impairments.iter().filter(|impairment| impairment.applies(now, from, to)) {
            effect.latency += impairment.latency.0;
            effect.reorder = effect.reorder.max(impairment.reorder.0);
            effect.duplicate = effect.duplicate.max(impairment.duplicate);
            effect.rate = match (effect.rate, impairment.rate) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        effect
    }

    /// Whether `from` cannot reach `to` now.
    pub fn is_blocked(&self, from: NodeIndex, to: NodeIndex) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut(&mut self, a: NodeIndex, b: NodeIndex) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Cuts only the direction from `from` to `to` (a one-way partition).
    pub fn cut_one_way(&mut self, from: NodeIndex, to: NodeIndex) {
        self.blocked.insert((from, to));
    }

    /// Restores only the direction from `from` to `to`.
    pub fn restore_one_way(&mut self, from: NodeIndex, to: NodeIndex) {
        self.blocked.remove(&(from, to));
    }

    /// Restores both directions between `a` and `b`.
    pub fn restore(&mut self, a: NodeIndex, b: NodeIndex) {
        self.blocked.remove(&(a, b));
        self.blocked.remove(&(b, a));
    }

    /// Restores every link and ends every link fault.
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.impairments.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> Network {
        let spec = NetworkSpec {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: false,
        };
        Network::new(spec)
    }

    #[test]
    fn a_one_way_cut_blocks_one_direction_only() {
        let mut network = network();
        network.cut_one_way(1, 2);
        let mut rng = Rng::new(1);
        assert!(network.arrivals(&mut rng, Time::ZERO, 1, 2).is_empty());
        assert_eq!(network.arrivals(&mut rng, Time::ZERO, 2, 1).len(), 1);
        network.restore_one_way(1, 2);
        assert_eq!(network.arrivals(&mut rng, Time::ZERO, 1, 2).len(), 1);
    }

    #[test]
    fn impairments_delay_duplicate_and_limit_their_links_until_they_end() {
        let mut network = network();
        let mut rng = Rng::new(1);
        let until = Time::ZERO.after(Duration::from_secs(1));
        let spike = Impairment {
            a: Some(1),
            b: Some(2),
            until,
            latency: Duration::from_millis(100),
            reorder: Duration::ZERO,
            duplicate: 1.0,
            rate: Some(1_000),
        };
        network.impair(Time::ZERO, spike);
        let arrivals = network.arrivals(&mut rng, Time::ZERO, 2, 1);
        assert_eq!(arrivals, vec![Time(101_000); 2], "both directions: late and twice");
        assert_eq!(network.arrivals(&mut rng, Time::ZERO, 1, 3), vec![Time(1_000)], "other links unharmed");
        // 1000 bytes at 1000 bytes/s: the second buffer waits a second behind the first.
        let first = network.data_arrival(&mut rng, Time::ZERO, 1, 2, 1_000);
        let second = network.data_arrival(&mut rng, Time::ZERO, 1, 2, 1_000);
        assert_eq!(second, first.after(Duration::from_secs(1)));
        assert_eq!(network.arrivals(&mut rng, until, 1, 2), vec![Time(until.0 + 1_000)], "ended");
    }
}

//! Links between simulated nodes: latency with jitter, loss, duplication, partitions.
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
}

impl Network {
    /// A network with every link up.
    pub fn new(spec: NetworkSpec) -> Network {
        Network { spec, blocked: BTreeSet::new(), last_arrival: BTreeMap::new(), data_last_arrival: BTreeMap::new() }
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
        let copies = if rng.chance(self.spec.duplicate) { 2 } else { 1 };
        let mut arrivals = Vec::with_capacity(copies);
        for _ in 0..copies {
            let mut at = now.after(Duration(self.spec.latency.0 + rng.below(self.spec.jitter.0 + 1)));
            if !self.spec.reorder {
                let last = self.last_arrival.entry((from, to)).or_insert(at);
                at = at.max(*last);
                *last = at;
            }
            arrivals.push(at);
        }
        arrivals
    }

    /// The arrival time of a data buffer sent at `now` on a TCP connection from `from` to `to`:
    /// never lost nor duplicated, FIFO on the link, with the link's latency.
    pub fn data_arrival(&mut self, rng: &mut Rng, now: Time, from: NodeIndex, to: NodeIndex) -> Time {
        let mut at = now.after(Duration(self.spec.latency.0 + rng.below(self.spec.jitter.0 + 1)));
        let last = self.data_last_arrival.entry((from, to)).or_insert(at);
        at = at.max(*last);
        *last = at;
        at
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

    /// Restores both directions between `a` and `b`.
    pub fn restore(&mut self, a: NodeIndex, b: NodeIndex) {
        self.blocked.remove(&(a, b));
        self.blocked.remove(&(b, a));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}

//! Links between simulated nodes: latency with jitter, loss, duplication, partitions.
//!
//! Messages are never reordered explicitly: each gets its own latency drawn from the seed, so a
//! jitter wider than the gap between two sends reorders them, as real networks do.

use crate::scenario::NetworkSpec;
use std::collections::BTreeSet;
use weir_core::rng::Rng;
use weir_core::time::Duration;

/// Index of a simulated node.
pub type NodeIndex = usize;

/// The links' behaviour and which directions are cut.
pub struct Network {
    spec: NetworkSpec,
    /// Directed pairs (from, to) that cannot communicate.
    blocked: BTreeSet<(NodeIndex, NodeIndex)>,
}

impl Network {
    /// A network with every link up.
    pub fn new(spec: NetworkSpec) -> Network {
        Network { spec, blocked: BTreeSet::new() }
    }

    /// The delays of the copies of one message from `from` to `to`: none when the link is
    /// cut or the message is lost, two when it is duplicated.
    pub fn deliveries(&self, rng: &mut Rng, from: NodeIndex, to: NodeIndex) -> Vec<Duration> {
        if from == to {
            return vec![Duration::ZERO];
        }
        if self.is_blocked(from, to) || rng.chance(self.spec.loss) {
            return Vec::new();
        }
        let copies = if rng.chance(self.spec.duplicate) { 2 } else { 1 };
        (0..copies).map(|_| Duration(self.spec.latency.0 + rng.below(self.spec.jitter.0 + 1))).collect()
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

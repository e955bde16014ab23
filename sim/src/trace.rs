//! The run's fingerprint: every processed event, hashed in order with a fixed hash.

use std::hash::{Hash, Hasher};

/// FNV-1a over the bytes `Hash` feeds it: the same on every machine and every run.
#[derive(Clone, Debug)]
pub struct TraceHasher {
    state: u64,
}

impl Default for TraceHasher {
    fn default() -> TraceHasher {
        TraceHasher { state: 0xcbf2_9ce4_8422_2325 }
    }
}

impl Hasher for TraceHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state ^= byte as u64;
            self.state = self.state.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl TraceHasher {
    /// Folds `value` into the fingerprint.
    pub fn record(&mut self, value: &impl Hash) {
        value.hash(self);
    }
}

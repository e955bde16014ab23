//! The run's fingerprint: every processed event, hashed in order with a fixed hash.

use std::hash::{Hash, Hasher};

/// A fixed word-at-a-time hash (FxHash's step: rotate, xor the word, multiply) over what `Hash`
/// feeds it: the same on every machine and every run. Equal traces give equal fingerprints;
/// the rotation carries every bit of a word into later steps, so a difference anywhere shows.
/// One multiply per word rather than per byte: hashing every event is on the simulator's hot
/// path.
#[derive(Clone, Debug)]
pub struct TraceHasher {
    state: u64,
}

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl Default for TraceHasher {
    fn default() -> TraceHasher {
        TraceHasher { state: SEED }
    }
}

impl TraceHasher {
    /// Folds `value` into the fingerprint.
    pub fn record(&mut self, value: &impl Hash) {
        value.hash(self);
    }

    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for TraceHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("chunks of 8")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length sets the top byte, so a short tail differs from the same bytes padded.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.mix(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.mix(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn write_u128(&mut self, value: u128) {
        self.mix(value as u64);
        self.mix((value >> 64) as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::TraceHasher;
    use std::hash::Hasher;

    fn fingerprint(values: &[&dyn Fn(&mut TraceHasher)]) -> u64 {
        let mut hasher = TraceHasher::default();
        for value in values {
            value(&mut hasher);
        }
        hasher.finish()
    }

    #[test]
    fn any_changed_bit_or_order_changes_the_fingerprint() {
        let base = fingerprint(&[&|h| h.write_u64(7), &|h| h.write_u64(9)]);
        assert_eq!(base, fingerprint(&[&|h| h.write_u64(7), &|h| h.write_u64(9)]), "fixed, not seeded per run");
        assert_ne!(base, fingerprint(&[&|h| h.write_u64(9), &|h| h.write_u64(7)]), "order matters");
        for bit in 0..64 {
            let flipped = fingerprint(&[&|h| h.write_u64(7 ^ (1 << bit)), &|h| h.write_u64(9)]);
            assert_ne!(base, flipped, "bit {bit} of the first word is lost");
        }
    }

    #[test]
    fn a_short_tail_differs_from_its_padding() {
        let short = fingerprint(&[&|h| h.write(&[1, 2, 3])]);
        assert_ne!(short, fingerprint(&[&|h| h.write(&[1, 2, 3, 0])]));
        assert_ne!(short, fingerprint(&[&|h| h.write(&[1, 2, 3, 0, 0, 0, 0, 0])]));
    }
}

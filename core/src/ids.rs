//! Identifiers as distinct types, so a vertex index can never be passed where a subtask index goes.
//!
//! Ids that users see in the REST API and the CLI ([`JobId`], the hex form of vertices) are
//! 32 lowercase hex characters, as Flink prints its 128-bit ids. Hex ids are derived with
//! [`stable_hash128`], a fixed function, so the same job file gives the same ids on every machine.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! index_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as a `usize`, for indexing the vectors it numbers.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

index_id!(
    /// Position of an operator in a job graph (the order of the job file or the builder calls).
    OperatorIndex(u32)
);
index_id!(
    /// Position of a job vertex (an operator chain) in a planned job.
    VertexIndex(u32)
);
index_id!(
    /// Which parallel instance of a vertex, `0..parallelism`.
    SubtaskIndex(u32)
);
index_id!(
    /// Which attempt of a subtask; a restart makes a new attempt with the next number.
    AttemptNumber(u32)
);
index_id!(
    /// A checkpoint's number within a job; strictly increasing, never reused.
    CheckpointId(u64)
);
index_id!(
    /// A leader's fencing epoch; only grows. Messages from a lower epoch are refused.
    Epoch(u64)
);
index_id!(
    /// A slot's position in its TaskManager's slot table.
    SlotIndex(u32)
);
index_id!(
    /// Position of a pipelined region (the unit of region failover) in a planned job.
    RegionIndex(u32)
);

/// A 128-bit id printed as 32 lowercase hex characters, as Flink prints `JobID` and friends.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hex128(pub u128);

impl fmt::Debug for Hex128 {
    /// The same 32 hex characters as Display, so logs and state dumps match the REST API.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for Hex128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The text was not 32 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an id of 32 hex characters, got {0:?}")]
pub struct BadHexId(pub String);

impl FromStr for Hex128 {
    type Err = BadHexId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadHexId(text.to_string()));
        }
        u128::from_str_radix(text, 16).map(Hex128).map_err(|_| BadHexId(text.to_string()))
    }
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Hex128);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = BadHexId;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }
    };
}

hex_id!(
    /// A submitted job.
    JobId
);
hex_id!(
    /// A job vertex as the REST API names it (derived from the vertex's head operator).
    VertexId
);
hex_id!(
    /// One slot allocation: a slot given to one job by the ResourceManager.
    AllocationId
);
hex_id!(
    /// One TaskManager process instance; a restarted TaskManager gets a new one.
    ResourceId
);

/// A fixed 128-bit hash (FNV-1a) of `parts`, for ids that must be the same on every machine.
///
/// Not a cryptographic hash: it names things, it does not protect them.
pub fn stable_hash128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for part in parts {
        for &byte in *part {
            hash ^= byte as u128;
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator so ["ab", "c"] and ["a", "bc"] differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_print_as_32_lowercase_hex_chars_and_parse_back() {
        let id = JobId(Hex128(0xABCDEF));
        let text = id.to_string();
        assert_eq!(text, "00000000000000000000000000abcdef");
        assert_eq!(text.parse::<JobId>().unwrap(), id);
    }

    #[test]
    fn malformed_hex_ids_are_rejected() {
        assert!("xyz".parse::<JobId>().is_err());
        assert!("0000000000000000000000000000000g".parse::<JobId>().is_err());
        assert!("+0000000000000000000000000000000".parse::<JobId>().is_err());
    }

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash128(&[b"ab", b"c"]), stable_hash128(&[b"a", b"bc"]));
        assert_eq!(stable_hash128(&[b"x"]), stable_hash128(&[b"x"]));
    }
}

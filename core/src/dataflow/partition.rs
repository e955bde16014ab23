//! Key groups and partitioners: which consumer subtask a record goes to, as Flink decides it.
//!
//! This module owns the mapping from keys to key groups and from key groups to subtasks, and the
//! [`ChannelSelector`] that a task's output uses per record.
//!
//! # Key groups
//!
//! Keyed state is split into `max_parallelism` key groups; a key belongs to key group
//! [`key_group_of`] and a key group to subtask [`subtask_of_key_group`] (`kg · p / max`), so each
//! subtask owns the contiguous range [`key_group_range`] and rescaling moves whole key groups.
//! The subtask formula and the ranges are Flink's (`KeyGroupRangeAssignment`); the hash is not:
//! Flink takes `murmurHash(key.hashCode())`, weir takes [`crate::expr::stable_hash`] (FNV-1a over
//! a canonical encoding of the value, the same on every machine) followed by murmur3's 64-bit
//! finalizer, since FNV-1a's low bits depend only on the low bits of each input byte (keys `0`
//! and `128` would share a key group modulo 128 without it); the key group is the low 32 bits of
//! that modulo max parallelism. So weir's key groups are stable
//! across machines and versions of weir, but differ from Flink's for the same key.
//!
//! # Channels
//!
//! A producer subtask writes to `channels()` output channels; channel `c` goes to consumer
//! subtask `consumers().start + c`. All-to-all partitioners (hash, rebalance, broadcast, shuffle)
//! have one channel per consumer subtask; pointwise ones (forward, rescale) have one channel per
//! connected consumer, the range [`crate::plan::execution::ExecutionGraph::consumers`] gives.
//!
//! Invariants: every choice names a channel below `channels()`; selection is a pure function of
//! the construction arguments (including the seed) and the rows seen so far.

use crate::expr::{EvalError, Expr, stable_hash};
use crate::ids::SubtaskIndex;
use crate::job::Partitioner;
use crate::plan::DistributionPattern;
use crate::plan::execution::{ExecutionEdge, ExecutionGraph};
use crate::rng::Rng;
use crate::row::{RowBatch, Value};
use std::fmt;
use std::ops::Range;

/// Largest max-parallelism accepted here, as [`crate::config::MAX_PARALLELISM_LIMIT`].
pub const MAX_PARALLELISM_LIMIT: u32 = crate::config::MAX_PARALLELISM_LIMIT;

/// An output channel of a producer subtask, or an input channel of a consumer subtask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelIndex(pub u32);

impl ChannelIndex {
    /// The channel as a `usize`, for indexing per-channel vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ChannelIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// murmur3's 64-bit finalizer: spreads every input bit over every output bit.
fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The key group of `key`: the low 32 bits of `mix(stable_hash(key))`, modulo `max_parallelism`
/// (see the module doc).
/// For many keys of one max parallelism, [`KeyGroups`] saves the division.
pub fn key_group_of(key: &Value, max_parallelism: u32) -> u32 {
    KeyGroups::new(max_parallelism).of(key)
}

/// The key group of a key made of several fields; one field gives the same as [`key_group_of`].
///
/// The fields' hashes are combined as Java combines a tuple's (`h · 31 + field`).
pub fn key_group_of_fields(key: &[Value], max_parallelism: u32) -> u32 {
    KeyGroups::new(max_parallelism).of_fields(key)
}

/// `stable_hash(&Value::Int(x))` inline: ints are the usual key, and the call and the match
/// cost as much as the hashing. A test keeps the two equal.
#[inline]
fn stable_hash_int(x: i64) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let tagged = (FNV_OFFSET_BASIS ^ 2).wrapping_mul(FNV_PRIME);
    x.to_le_bytes().iter().fold(tagged, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME))
}

#[inline]
fn hash_of(key: &Value) -> u64 {
    match key {
        Value::Int(x) => stable_hash_int(*x),
        other => stable_hash(other),
    }
}

/// Key groups for one max parallelism, with its division precomputed (Lemire's "faster
/// remainder by direct computation"): per key a few multiplications instead of two divisions.
///
/// `of` is the low 32 bits of the mixed hash modulo `max_parallelism`; `subtask_of` equals
/// [`subtask_of_key_group`]. Both are exact for every max parallelism up to 2^15 (tested).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGroups {
    max_parallelism: u32,
    /// `⌈2^64 / max_parallelism⌉` (0 for 1, which the helpers treat apart).
    reciprocal: u64,
}

impl KeyGroups {
    /// Key groups `0..max_parallelism`; `max_parallelism` in `1..=32768`.
    pub fn new(max_parallelism: u32) -> KeyGroups {
        assert!(
            (1..=MAX_PARALLELISM_LIMIT).contains(&max_parallelism),
            "max parallelism {max_parallelism} outside 1..={MAX_PARALLELISM_LIMIT}"
        );
        KeyGroups { max_parallelism, reciprocal: (u64::MAX / u64::from(max_parallelism)).wrapping_add(1) }
    }

    /// The number of key groups.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// The key group of `key`.
    #[inline]
    pub fn of(&self, key: &Value) -> u32 {
        self.reduce(hash_of(key))
    }

    /// The key group of a key whose [`stable_hash`] is `hash` (keyed state hashes each key once).
    #[inline]
    pub fn of_hash(&self, hash: u64) -> u32 {
        self.reduce(hash)
    }

    /// The key group of a key made of several fields (see [`key_group_of_fields`]).
    pub fn of_fields(&self, key: &[Value]) -> u32 {
        self.reduce(key.iter().fold(0u64, |h, field| h.wrapping_mul(31).wrapping_add(hash_of(field))))
    }

    /// The subtask of `parallelism` that owns `key_group`, as [`subtask_of_key_group`].
    #[inline]
    pub fn subtask_of(&self, key_group: u32, parallelism: u32) -> u32 {
        debug_assert!(0 < parallelism && parallelism <= self.max_parallelism && key_group < self.max_parallelism);
        // key_group · parallelism < 2^30, so the 32-bit exact division applies.
        let scaled = key_group * parallelism;
        if self.max_parallelism == 1 {
            return scaled;
        }
        ((u128::from(self.reciprocal) * u128::from(scaled)) >> 64) as u32
    }

    #[inline]
    fn reduce(&self, hash: u64) -> u32 {
        let low = u64::from(mix64(hash) as u32);
        let fraction = self.reciprocal.wrapping_mul(low);
        ((u128::from(fraction) * u128::from(self.max_parallelism)) >> 64) as u32
    }
}

/// The subtask that owns `key_group`: `key_group · parallelism / max_parallelism` (Flink's
/// `computeOperatorIndexForKeyGroup`).
pub fn subtask_of_key_group(key_group: u32, parallelism: u32, max_parallelism: u32) -> u32 {
    debug_assert!(0 < parallelism && parallelism <= max_parallelism);
    debug_assert!(key_group < max_parallelism);
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups subtask `subtask` owns, half-open (Flink's
/// `computeKeyGroupRangeForOperatorIndex`: from `⌈i·max/p⌉` to `⌊((i+1)·max − 1)/p⌋` inclusive).
pub fn key_group_range(subtask: u32, parallelism: u32, max_parallelism: u32) -> Range<u32> {
    assert!(0 < parallelism && parallelism <= max_parallelism, "need 0 < {parallelism} <= {max_parallelism}");
    assert!(subtask < parallelism, "subtask {subtask} of parallelism {parallelism}");
    let (i, p, max) = (u64::from(subtask), u64::from(parallelism), u64::from(max_parallelism));
    let start = (i * max).div_ceil(p);
    let end_inclusive = ((i + 1) * max - 1) / p;
    start as u32..(end_inclusive + 1) as u32
}

/// Where one record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelChoice {
    /// To this one channel.
    One(ChannelIndex),
    /// To every channel (broadcast).
    All,
}

/// What a [`ChannelSelector`] is built from, besides the partitioner.
#[derive(Clone, Debug)]
pub struct SelectorSpec {
    /// The producer subtask that owns the selector.
    pub producer: SubtaskIndex,
    /// Parallelism of the producing vertex.
    pub producer_parallelism: u32,
    /// Parallelism of the consuming vertex.
    pub consumer_parallelism: u32,
    /// The consuming vertex's max parallelism (its number of key groups); used by hash.
    pub max_parallelism: u32,
    /// The compiled key over the producer's rows; required by hash, ignored otherwise.
    pub key: Option<Expr>,
    /// Seed of rebalance's start position and of shuffle's choices.
    pub seed: u64,
}

/// A selector that cannot be built: the plan and the arguments disagree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A parallelism of zero, or a producer index not below the producer parallelism.
    #[error("producer subtask {producer} with parallelism {producer_parallelism} -> {consumer_parallelism}")]
    BadParallelism {
        /// The producer subtask.
        producer: u32,
        /// Producer parallelism.
        producer_parallelism: u32,
        /// Consumer parallelism.
        consumer_parallelism: u32,
    },
    /// Forward needs equal parallelism on both sides.
    #[error("forward edge between parallelism {producer_parallelism} and {consumer_parallelism}")]
    ForwardParallelism {
        /// Producer parallelism.
        producer_parallelism: u32,
        /// Consumer parallelism.
        consumer_parallelism: u32,
    },
    /// Hash partitioning without a compiled key.
    #[error("hash partitioning needs a compiled key")]
    MissingKey,
    /// Max parallelism outside `consumer parallelism ..= 32768`.
    #[error("max parallelism {max_parallelism} for consumer parallelism {consumer_parallelism}")]
    BadMaxParallelism {
        /// The max parallelism given.
        max_parallelism: u32,
        /// Consumer parallelism.
        consumer_parallelism: u32,
    },
}

/// How the key of a row is found: a field position read directly, or a general expression.
#[derive(Clone, Debug)]
enum KeySource {
    Field(usize),
    Expr(Expr),
}

#[derive(Clone, Debug)]
enum Strategy {
    Forward,
    Hash { key: KeySource, key_expr: Expr, key_groups: KeyGroups },
    RoundRobin { next: u32 },
    Broadcast,
    Shuffle { rng: Rng },
}

/// Chooses the output channel(s) of each record for one producer subtask on one edge.
#[derive(Clone, Debug)]
pub struct ChannelSelector {
    strategy: Strategy,
    consumers: Range<u32>,
}

impl ChannelSelector {
    /// A selector for `partitioner` as seen by the producer subtask `spec.producer`.
    ///
    /// Rebalance starts at a position drawn from `seed` and the producer index (Flink starts at
    /// a random one); rescale starts at the first channel, as Flink's does; shuffle draws each
    /// channel uniformly from a generator seeded by `seed` and the producer index.
    pub fn new(partitioner: &Partitioner, spec: SelectorSpec) -> Result<ChannelSelector, SelectorError> {
        check_parallelism(&spec)?;
        let pattern =
            if partitioner.is_pointwise() { DistributionPattern::Pointwise } else { DistributionPattern::AllToAll };
        let consumers = consumers_of(&spec, pattern);
        let channels = consumers.len() as u32;
        let producer_seed = spec.seed ^ mix64(u64::from(spec.producer.0).wrapping_add(0x5EED));
        let strategy = match partitioner {
            Partitioner::Forward => {
                if spec.producer_parallelism != spec.consumer_parallelism {
                    return Err(SelectorError::ForwardParallelism {
                        producer_parallelism: spec.producer_parallelism,
                        consumer_parallelism: spec.consumer_parallelism,
                    });
                }
                Strategy::Forward
            }
            Partitioner::Hash { .. } => hash_strategy(&spec)?,
            Partitioner::Rebalance => {
                Strategy::RoundRobin { next: Rng::new(producer_seed).below(channels.into()) as u32 }
            }
            Partitioner::Rescale => Strategy::RoundRobin { next: channels - 1 },
            Partitioner::Broadcast => Strategy::Broadcast,
            Partitioner::Shuffle => Strategy::Shuffle { rng: Rng::new(producer_seed) },
        };
        debug_assert!(channels > 0);
        Ok(ChannelSelector { strategy, consumers })
    }

    /// Number of output channels.
    pub fn channels(&self) -> u32 {
        self.consumers.len() as u32
    }

    /// The consumer subtasks the channels lead to: channel `c` is subtask `consumers().start + c`.
    pub fn consumers(&self) -> Range<u32> {
        self.consumers.clone()
    }

    /// The channel(s) `row` goes to; fails only when a hash key's expression fails on `row`.
    ///
    /// With a single channel the key is not evaluated: every record goes to channel 0.
    #[inline]
    pub fn select(&mut self, row: &[Value]) -> Result<ChannelChoice, EvalError> {
        let channels = self.consumers.len() as u32;
        let channel = match &mut self.strategy {
            Strategy::Forward => 0,
            Strategy::Broadcast => return Ok(ChannelChoice::All),
            Strategy::RoundRobin { next } => {
                *next = if *next + 1 >= channels { 0 } else { *next + 1 };
                *next
            }
            Strategy::Shuffle { rng } => rng.below(u64::from(channels)) as u32,
            Strategy::Hash { .. } if channels == 1 => 0,
            Strategy::Hash { key, key_expr, key_groups } => {
                let key_group = match key {
                    KeySource::Field(position) => match row.get(*position) {
                        Some(value) => key_groups.of(value),
                        None => key_groups.of(&key_expr.eval(row)?),
                    },
                    KeySource::Expr(expr) => key_groups.of(&expr.eval(row)?),
                };
                key_groups.subtask_of(key_group, channels)
            }
        };
        debug_assert!(channel < channels);
        Ok(ChannelChoice::One(ChannelIndex(channel)))
    }
}

impl ChannelSelector {
    /// The channel of each row of `rows`, in order, into `channels` (cleared first), as
    /// [`ChannelSelector::select`] row by row would choose them; `None` for broadcast (every
    /// row goes everywhere). A key that cannot be computed stops the choice there: `channels`
    /// holds the rows before it and the error is returned beside it.
    pub fn select_batch(&mut self, rows: &RowBatch, channels: &mut Vec<u32>) -> Option<Result<(), EvalError>> {
        channels.clear();
        if matches!(self.strategy, Strategy::Broadcast) {
            return None;
        }
        for row in rows.iter() {
            match self.select(row) {
                Ok(ChannelChoice::One(channel)) => channels.push(channel.0),
                Ok(ChannelChoice::All) => unreachable!("only broadcast sends everywhere"),
                Err(error) => return Some(Err(error)),
            }
        }
        Some(Ok(()))
    }
}

fn check_parallelism(spec: &SelectorSpec) -> Result<(), SelectorError> {
    if spec.producer_parallelism == 0 || spec.consumer_parallelism == 0 || spec.producer.0 >= spec.producer_parallelism
    {
        return Err(SelectorError::BadParallelism {
            producer: spec.producer.0,
            producer_parallelism: spec.producer_parallelism,
            consumer_parallelism: spec.consumer_parallelism,
        });
    }
    Ok(())
}

fn hash_strategy(spec: &SelectorSpec) -> Result<Strategy, SelectorError> {
    let key_expr = spec.key.clone().ok_or(SelectorError::MissingKey)?;
    let max_parallelism = spec.max_parallelism;
    if max_parallelism < spec.consumer_parallelism || max_parallelism > MAX_PARALLELISM_LIMIT {
        return Err(SelectorError::BadMaxParallelism {
            max_parallelism,
            consumer_parallelism: spec.consumer_parallelism,
        });
    }
    let key = match key_expr.field() {
        Some(position) => KeySource::Field(position),
        None => KeySource::Expr(key_expr.clone()),
    };
    Ok(Strategy::Hash { key, key_expr, key_groups: KeyGroups::new(max_parallelism) })
}

/// The consumer subtasks the producer writes to, by the plan's rule for `pattern`.
fn consumers_of(spec: &SelectorSpec, pattern: DistributionPattern) -> Range<u32> {
    let edge = ExecutionEdge {
        source: Default::default(),
        target: Default::default(),
        source_parallelism: spec.producer_parallelism,
        target_parallelism: spec.consumer_parallelism,
        pattern,
    };
    // `consumers` reads only the edge; an empty graph carries no vertices and allocates nothing.
    let graph = ExecutionGraph { parallelism: Vec::new(), offsets: Vec::new(), edges: Vec::new() };
    graph.consumers(&edge, spec.producer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::compile;
    use crate::row::{Schema, Type};

    fn spec(producer: u32, producer_parallelism: u32, consumer_parallelism: u32) -> SelectorSpec {
        SelectorSpec {
            producer: SubtaskIndex(producer),
            producer_parallelism,
            consumer_parallelism,
            max_parallelism: 128,
            key: None,
            seed: 7,
        }
    }

    fn keyed(producer: u32, consumer_parallelism: u32, max_parallelism: u32) -> SelectorSpec {
        let schema = Schema::new([("k", Type::Int), ("v", Type::Int)]);
        let key = compile("k", &schema).unwrap_or_else(|error| panic!("{error}"));
        SelectorSpec { max_parallelism, key: Some(key), ..spec(producer, 2, consumer_parallelism) }
    }

    fn one(choice: ChannelChoice) -> u32 {
        match choice {
            ChannelChoice::One(channel) => channel.0,
            ChannelChoice::All => panic!("expected one channel"),
        }
    }

    #[test]
    fn every_key_group_belongs_to_exactly_one_subtask_range_and_the_formula_agrees() {
        for max in 1..=512u32 {
            for p in 1..=max {
                let mut next = 0;
                for subtask in 0..p {
                    let range = key_group_range(subtask, p, max);
                    assert_eq!(range.start, next, "p={p} max={max}: ranges are contiguous");
                    assert!(!range.is_empty(), "p={p} max={max}: subtask {subtask} owns a key group");
                    let groups = KeyGroups::new(max);
                    for key_group in range.clone() {
                        assert_eq!(subtask_of_key_group(key_group, p, max), subtask, "p={p} max={max} kg={key_group}");
                        assert_eq!(groups.subtask_of(key_group, p), subtask, "p={p} max={max} kg={key_group}");
                    }
                    next = range.end;
                }
                assert_eq!(next, max, "p={p} max={max}: the ranges cover every key group");
            }
        }
    }

    #[test]
    fn key_groups_match_flink_ranges_on_known_values() {
        // Flink: KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(128, 3, i).
        assert_eq!(key_group_range(0, 3, 128), 0..43);
        assert_eq!(key_group_range(1, 3, 128), 43..86);
        assert_eq!(key_group_range(2, 3, 128), 86..128);
        assert_eq!(subtask_of_key_group(42, 3, 128), 0);
        assert_eq!(subtask_of_key_group(43, 3, 128), 1);
    }

    #[test]
    fn key_groups_are_stable_and_spread() {
        // Pinned: changing the hash would move keyed state between key groups across versions.
        assert_eq!(key_group_of(&Value::Int(42), 128), key_group_of(&Value::Int(42), 128));
        let pinned: Vec<u32> = (0..4).map(|k| key_group_of(&Value::Int(k), 128)).collect();
        assert_eq!(pinned, PINNED_KEY_GROUPS);
        let mut counts = [0u32; 128];
        for k in 0..128_000 {
            counts[key_group_of(&Value::Int(k), 128) as usize] += 1;
        }
        let (low, high) = (counts.iter().min().copied(), counts.iter().max().copied());
        assert!(low > Some(850) && high < Some(1150), "uneven spread: {low:?}..{high:?}");
        assert_ne!(key_group_of(&Value::Int(0), 128), key_group_of(&Value::Int(128), 128));
    }

    const PINNED_KEY_GROUPS: [u32; 4] = [50, 48, 38, 86];

    #[test]
    fn precomputed_division_is_exact_for_every_max_parallelism() {
        let mut rng = Rng::new(11);
        let maxes = (1..=512u32).chain([1000, 4096, 10_007, 32_767, 32_768]);
        for max in maxes {
            let groups = KeyGroups::new(max);
            for hash in [0, 1, u64::MAX, u64::from(u32::MAX)].into_iter().chain((0..64).map(|_| rng.next_u64())) {
                let expected = (u64::from(mix64(hash) as u32) % u64::from(max)) as u32;
                assert_eq!(groups.reduce(hash), expected, "max={max} hash={hash}");
            }
            let parallelisms = [1, 2, 3, max / 3 + 1, max - 1, max].into_iter().filter(|&p| 0 < p && p <= max);
            for p in parallelisms {
                let key_groups = (0..max.min(600)).chain((0..64).map(|_| rng.below(u64::from(max)) as u32));
                for key_group in key_groups.chain([max - 1]) {
                    assert_eq!(groups.subtask_of(key_group, p), subtask_of_key_group(key_group, p, max));
                }
            }
        }
    }

    #[test]
    fn the_inline_int_hash_is_stable_hash() {
        let edges = [0, 1, -1, 127, 128, 255, 256, i64::MIN, i64::MAX, 1 << 40, -(1 << 40)];
        let mut rng = Rng::new(3);
        let random = (0..10_000).map(|_| rng.next_u64() as i64);
        for x in edges.into_iter().chain(random) {
            assert_eq!(stable_hash_int(x), stable_hash(&Value::Int(x)), "{x}");
        }
    }

    #[test]
    fn one_field_composite_key_equals_the_plain_key() {
        for k in 0..1000 {
            let value = Value::Int(k);
            assert_eq!(key_group_of_fields(std::slice::from_ref(&value), 128), key_group_of(&value, 128));
        }
        let ab = [Value::str("a"), Value::Int(1)];
        let ba = [Value::Int(1), Value::str("a")];
        assert_ne!(key_group_of_fields(&ab, 1 << 15), key_group_of_fields(&ba, 1 << 15));
    }

    #[test]
    fn hash_sends_each_key_to_the_subtask_owning_its_key_group() {
        let mut selector = ChannelSelector::new(&Partitioner::Hash { key: "k".into() }, keyed(1, 4, 128))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(selector.channels(), 4);
        for k in 0..1000 {
            let row = [Value::Int(k), Value::Int(k * 3)];
            let channel = one(selector.select(&row).unwrap_or_else(|error| panic!("{error}")));
            let key_group = key_group_of(&Value::Int(k), 128);
            assert!(key_group_range(channel, 4, 128).contains(&key_group));
        }
    }

    #[test]
    fn hash_by_an_expression_and_its_errors() {
        let schema = Schema::new([("k", Type::Int), ("v", Type::Int)]);
        let key = compile("k % 10", &schema).unwrap_or_else(|error| panic!("{error}"));
        let spec = SelectorSpec { key: Some(key), ..keyed(0, 3, 16) };
        let mut selector =
            ChannelSelector::new(&Partitioner::Hash { key: "k % 10".into() }, spec).unwrap_or_else(|e| panic!("{e}"));
        let a = selector.select(&[Value::Int(3), Value::Int(0)]);
        let b = selector.select(&[Value::Int(13), Value::Int(0)]);
        assert_eq!(a, b, "same key, same channel");
        assert!(selector.select(&[Value::Null, Value::Int(0)]).is_err(), "null % 10 fails for that record");
    }

    #[test]
    fn rebalance_is_round_robin_from_a_seeded_start() {
        let mut selector =
            ChannelSelector::new(&Partitioner::Rebalance, spec(0, 2, 5)).unwrap_or_else(|e| panic!("{e}"));
        let picks: Vec<u32> = (0..10).map(|_| one(selector.select(&[]).unwrap_or_else(|e| panic!("{e}")))).collect();
        for pair in picks.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 5);
        }
        let starts: std::collections::BTreeSet<u32> = (0..64)
            .map(|producer| {
                let spec = SelectorSpec { seed: 3, ..spec(producer, 64, 5) };
                let mut selector =
                    ChannelSelector::new(&Partitioner::Rebalance, spec).unwrap_or_else(|e| panic!("{e}"));
                one(selector.select(&[]).unwrap_or_else(|e| panic!("{e}")))
            })
            .collect();
        assert!(starts.len() > 1, "producers start at different channels");
    }

    #[test]
    fn rescale_round_robins_over_the_pointwise_subset() {
        // 2 producers -> 6 consumers: producer 1 owns consumers 3..6.
        let mut selector = ChannelSelector::new(&Partitioner::Rescale, spec(1, 2, 6)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(selector.consumers(), 3..6);
        let picks: Vec<u32> = (0..6).map(|_| one(selector.select(&[]).unwrap_or_else(|e| panic!("{e}")))).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // 6 producers -> 2 consumers: producer 4 sends only to consumer 1.
        let mut selector = ChannelSelector::new(&Partitioner::Rescale, spec(4, 6, 2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(selector.consumers(), 1..2);
        assert_eq!(one(selector.select(&[]).unwrap_or_else(|e| panic!("{e}"))), 0);
    }

    #[test]
    fn forward_broadcast_and_shuffle() {
        let mut forward = ChannelSelector::new(&Partitioner::Forward, spec(2, 3, 3)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((forward.consumers(), forward.select(&[])), (2..3, Ok(ChannelChoice::One(ChannelIndex(0)))));
        let mut broadcast =
            ChannelSelector::new(&Partitioner::Broadcast, spec(0, 1, 4)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(broadcast.select(&[]), Ok(ChannelChoice::All));
        let mut shuffle = ChannelSelector::new(&Partitioner::Shuffle, spec(0, 1, 4)).unwrap_or_else(|e| panic!("{e}"));
        let mut again = shuffle.clone();
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            let channel = one(shuffle.select(&[]).unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(Ok(ChannelChoice::One(ChannelIndex(channel))), again.select(&[]), "seeded");
            counts[channel as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (850..1150).contains(&count)), "uniform: {counts:?}");
    }

    #[test]
    fn inconsistent_arguments_are_refused() {
        let forward = ChannelSelector::new(&Partitioner::Forward, spec(0, 2, 3));
        assert!(matches!(forward, Err(SelectorError::ForwardParallelism { .. })));
        let hash = ChannelSelector::new(&Partitioner::Hash { key: "k".into() }, spec(0, 2, 3));
        assert_eq!(hash.err(), Some(SelectorError::MissingKey));
        let too_few_groups = ChannelSelector::new(&Partitioner::Hash { key: "k".into() }, keyed(0, 8, 4));
        assert!(matches!(too_few_groups, Err(SelectorError::BadMaxParallelism { .. })));
        let producer = ChannelSelector::new(&Partitioner::Rebalance, spec(2, 2, 3));
        assert!(matches!(producer, Err(SelectorError::BadParallelism { .. })));
    }
}

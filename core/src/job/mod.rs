//! The logical job: operators, the edges between them, and how jobs are written down.
//!
//! A [`JobGraph`] is what a user describes, before planning: one node per operator (key-by is an
//! edge property, not a node, as in Flink), with optional parallelism, slot sharing group and
//! chaining strategy. Two front ends build it: job files ([`file`], TOML) and the Rust builder API
//! ([`builder`]). Both end in [`validate`], which checks the graph and derives every operator's
//! output [`crate::row::Schema`], so the same mistake gives the same error from either.
//!
//! Invariants of a graph that passed validation: operator ids are unique; every edge joins two
//! existing operators; there is no cycle; sources have no inputs and every other operator has at
//! least one; every hash edge has a key; explicit parallelisms lie in `1..=max_parallelism`.

pub mod builder;
pub mod file;
mod model;
pub mod validate;

pub use model::*;

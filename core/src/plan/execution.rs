//! The execution graph: every subtask of every vertex, and who reads from whom.
//!
//! Subtasks are numbered densely: vertex `v`'s subtask `i` is [`SubtaskRef`] `(v, i)` and has the
//! global ordinal `offset[v] + i`. Connections are not materialised per subtask pair: an
//! all-to-all edge between vertices of parallelism m and n would cost O(m·n) (Flink's
//! `ConsumedPartitionGroup` avoids the same trap). Instead each edge keeps its pattern and the
//! producers or consumers of one subtask are computed as a contiguous range on demand. Memory is
//! O(vertices + edges), and per-subtask state elsewhere is O(subtasks).

use super::{DistributionPattern, JobPlan};
use crate::ids::{SubtaskIndex, VertexIndex};
use serde::Serialize;
use std::ops::Range;

/// One subtask: a vertex and an index below its parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SubtaskRef {
    /// The vertex.
    pub vertex: VertexIndex,
    /// The parallel instance.
    pub subtask: SubtaskIndex,
}

/// An exchange between two vertices, as the execution graph keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExecutionEdge {
    /// Producing vertex.
    pub source: VertexIndex,
    /// Consuming vertex.
    pub target: VertexIndex,
    /// Producer parallelism.
    pub source_parallelism: u32,
    /// Consumer parallelism.
    pub target_parallelism: u32,
    /// How subtasks connect.
    pub pattern: DistributionPattern,
}

/// Subtasks and their connections, in O(vertices + edges) memory.
#[derive(Clone, Debug, Serialize)]
pub struct ExecutionGraph {
    /// Parallelism of each vertex.
    pub parallelism: Vec<u32>,
    /// Global ordinal of each vertex's subtask 0; the last entry is the total.
    pub offsets: Vec<u64>,
    /// The exchanges, in the plan's edge order.
    pub edges: Vec<ExecutionEdge>,
}

impl ExecutionGraph {
    /// Expands `plan` into subtasks.
    pub fn new(plan: &JobPlan) -> ExecutionGraph {
        let parallelism: Vec<u32> = plan.vertices.iter().map(|vertex| vertex.parallelism).collect();
        let mut offsets = Vec::with_capacity(parallelism.len() + 1);
        let mut total = 0u64;
        for &count in &parallelism {
            offsets.push(total);
            total += count as u64;
        }
        offsets.push(total);
        let edges = plan
            .edges
            .iter()
            .map(|edge| ExecutionEdge {
                source: edge.source,
                target: edge.target,
                source_parallelism: parallelism[edge.source.index()],
                target_parallelism: parallelism[edge.target.index()],
                pattern: edge.pattern,
            })
            .collect();
        ExecutionGraph { parallelism, offsets, edges }
    }

    /// Number of subtasks over all vertices.
    pub fn subtask_count(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// The global ordinal of a subtask.
    pub fn ordinal(&self, subtask: SubtaskRef) -> u64 {
        debug_assert!(subtask.subtask.0 < self.parallelism[subtask.vertex.index()]);
        self.offsets[subtask.vertex.index()] + subtask.subtask.0 as u64
    }

    /// The subtask with global ordinal `ordinal`.
    pub fn subtask_at(&self, ordinal: u64) -> SubtaskRef {
        assert!(ordinal < self.subtask_count(), "ordinal {ordinal} out of range");
        let vertex = self.offsets.partition_point(|&offset| offset <= ordinal) - 1;
        SubtaskRef {
            vertex: VertexIndex(vertex as u32),
            subtask: SubtaskIndex((ordinal - self.offsets[vertex]) as u32),
        }
    }

    /// Every subtask, vertex by vertex.
    pub fn subtasks(&self) -> impl Iterator<Item = SubtaskRef> + '_ {
        self.parallelism.iter().enumerate().flat_map(|(vertex, &count)| {
            (0..count).map(move |i| SubtaskRef { vertex: VertexIndex(vertex as u32), subtask: SubtaskIndex(i) })
        })
    }

    /// The consumer subtasks (of `edge.target`) that producer subtask `index` sends to.
    pub fn consumers(&self, edge: &ExecutionEdge, index: SubtaskIndex) -> Range<u32> {
        connected(edge.pattern, edge.source_parallelism, edge.target_parallelism, index.0)
    }

    /// The producer subtasks (of `edge.source`) that consumer subtask `index` reads from.
    pub fn producers(&self, edge: &ExecutionEdge, index: SubtaskIndex) -> Range<u32> {
        connected(edge.pattern, edge.target_parallelism, edge.source_parallelism, index.0)
    }

    /// Bytes this structure holds on the heap (its own vectors), for the memory bound's test.
    pub fn heap_bytes(&self) -> usize {
        self.parallelism.capacity() * size_of::<u32>()
            + self.offsets.capacity() * size_of::<u64>()
            + self.edges.capacity() * size_of::<ExecutionEdge>()
    }
}

/// The subtasks on the `to` side (parallelism `to_count`) connected to subtask `index` on the
/// `from` side (parallelism `from_count`).
///
/// Pointwise is Flink's rule: with equal parallelism `i → i`; otherwise the larger side maps onto
/// the smaller by `floor(i × small / large)`, so each subtask of the smaller side owns a
/// contiguous range of the larger side.
fn connected(pattern: DistributionPattern, from_count: u32, to_count: u32, index: u32) -> Range<u32> {
    debug_assert!(index < from_count);
    match pattern {
        DistributionPattern::AllToAll => 0..to_count,
        DistributionPattern::Pointwise if from_count >= to_count => {
            let target = (index as u64 * to_count as u64 / from_count as u64) as u32;
            target..target + 1
        }
        DistributionPattern::Pointwise => {
            // The `to` side is larger: j maps to floor(j × from / to); take the j that map to `index`.
            let (from, to, i) = (from_count as u64, to_count as u64, index as u64);
            let start = (i * to).div_ceil(from);
            let end = ((i + 1) * to).div_ceil(from);
            start as u32..end as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_connections_are_mutually_consistent() {
        for from in 1..12u32 {
            for to in 1..12u32 {
                for i in 0..from {
                    for j in connected(DistributionPattern::Pointwise, from, to, i) {
                        let back = connected(DistributionPattern::Pointwise, to, from, j);
                        assert!(back.contains(&i), "{from}->{to}: {i}->{j} but {j} reads {back:?}");
                    }
                }
                let covered: u32 =
                    (0..from).map(|i| connected(DistributionPattern::Pointwise, from, to, i).len() as u32).sum();
                assert!(covered >= to.min(from), "every consumer has a producer");
            }
        }
    }

    #[test]
    fn equal_parallelism_pointwise_is_one_to_one() {
        for i in 0..7 {
            assert_eq!(connected(DistributionPattern::Pointwise, 7, 7, i), i..i + 1);
        }
    }
}

//! Pipelined regions: the sets of subtasks that fail over together.
//!
//! Every exchange weir runs is pipelined, so producers and consumers of a connection restart
//! together: a region is a connected component of the subtask graph. An all-to-all edge joins
//! all subtasks of both vertices into one region; a job with only pointwise edges has one region
//! per parallel slice (as Flink's `PipelinedRegionComputeUtil` gives for streaming jobs).
//! Computed with a union-find over subtask ordinals in O(subtasks) time and memory.

use super::DistributionPattern;
use super::execution::{ExecutionGraph, SubtaskRef};
use crate::ids::{RegionIndex, SubtaskIndex};

/// The pipelined regions of an execution graph.
#[derive(Clone, Debug)]
pub struct Regions {
    /// Region of each subtask, by global ordinal.
    region_of: Vec<RegionIndex>,
    /// Subtask ordinals of each region, ascending.
    members: Vec<Vec<u64>>,
}

impl Regions {
    /// Computes the regions of `graph`.
    pub fn new(graph: &ExecutionGraph) -> Regions {
        let count = graph.subtask_count() as usize;
        let mut sets = UnionFind::new(count);
        for edge in &graph.edges {
            let source = graph.offsets[edge.source.index()];
            let target = graph.offsets[edge.target.index()];
            match edge.pattern {
                DistributionPattern::AllToAll => {
                    for i in 0..edge.source_parallelism as u64 {
                        sets.union(source, source + i);
                    }
                    for j in 0..edge.target_parallelism as u64 {
                        sets.union(source, target + j);
                    }
                }
                DistributionPattern::Pointwise => {
                    for i in 0..edge.source_parallelism {
                        for j in graph.consumers(edge, SubtaskIndex(i)) {
                            sets.union(source + i as u64, target + j as u64);
                        }
                    }
                }
            }
        }
        let mut region_of_root = vec![None; count];
        let mut region_of = Vec::with_capacity(count);
        let mut members: Vec<Vec<u64>> = Vec::new();
        for ordinal in 0..count as u64 {
            let root = sets.find(ordinal) as usize;
            let region = *region_of_root[root].get_or_insert_with(|| {
                members.push(Vec::new());
                RegionIndex(members.len() as u32 - 1)
            });
            members[region.index()].push(ordinal);
            region_of.push(region);
        }
        Regions { region_of, members }
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no regions (a job with no subtasks).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The region of `subtask`.
    pub fn region_of(&self, graph: &ExecutionGraph, subtask: SubtaskRef) -> RegionIndex {
        self.region_of[graph.ordinal(subtask) as usize]
    }

    /// The subtasks of `region`, as global ordinals in ascending order.
    pub fn members(&self, region: RegionIndex) -> &[u64] {
        &self.members[region.index()]
    }
}

/// Disjoint sets over `0..n` with path halving and union by size.
struct UnionFind {
    parent: Vec<u64>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(count: usize) -> UnionFind {
        UnionFind { parent: (0..count as u64).collect(), size: vec![1; count] }
    }

    fn find(&mut self, mut x: u64) -> u64 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    fn union(&mut self, a: u64, b: u64) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

//! Failover: which subtasks restart after a failure, and the restart in progress.
//!
//! [`Failover`] computes restart sets for `jobmanager.execution.failover-strategy`: `full`
//! restarts every subtask; `region` restarts the pipelined regions of the failed subtasks. Every
//! exchange weir runs is pipelined, so a region is a connected component of the subtask graph
//! and no edge leaves it: Flink's extra rule (also restart the producers of lost partitions and
//! the consumers of restarted regions) adds nothing here.
//!
//! [`PendingRestart`] follows one restart: the union of the restart sets of every failure merged
//! into it, how many members are still not terminal, and when the restart delay ends.
//!
//! Invariants: a restart set is sorted and duplicate-free; a pending restart's `live` count
//! equals the members that are not terminal (the caller reports every member turning terminal);
//! membership is a bitmap over ordinals, so memory is O(subtasks).

use crate::config::FailoverStrategy;
use crate::plan::execution::ExecutionGraph;
use crate::plan::regions::Regions;
use crate::time::Time;
use std::collections::BTreeSet;

/// Restart-set computation for one job.
#[derive(Clone, Debug)]
pub struct Failover {
    strategy: FailoverStrategy,
    /// The pipelined regions; computed only for region failover.
    regions: Option<Regions>,
}

impl Failover {
    /// Failover for `graph` under `strategy`.
    pub fn new(strategy: FailoverStrategy, graph: &ExecutionGraph) -> Failover {
        let regions = match strategy {
            FailoverStrategy::Region => Some(Regions::new(graph)),
            FailoverStrategy::Full => None,
        };
        Failover { strategy, regions }
    }

    /// The configured strategy.
    pub fn strategy(&self) -> FailoverStrategy {
        self.strategy
    }

    /// The subtasks (ordinals, ascending) to restart after `failed` failed together.
    pub fn restart_set(&self, graph: &ExecutionGraph, failed: &[u64]) -> Vec<u64> {
        let Some(regions) = &self.regions else {
            return (0..graph.subtask_count()).collect();
        };
        let chosen: BTreeSet<_> =
            failed.iter().map(|&ordinal| regions.region_of(graph, graph.subtask_at(ordinal))).collect();
        let mut set: Vec<u64> = chosen.iter().flat_map(|&region| regions.members(region).iter().copied()).collect();
        // Members of one region ascend; regions interleave, and are disjoint.
        set.sort_unstable();
        debug_assert!(set.windows(2).all(|pair| pair[0] < pair[1]));
        set
    }
}

/// A restart that waits for its members to stop and for its delay to pass.
#[derive(Clone, Debug)]
pub struct PendingRestart {
    /// Membership by ordinal.
    in_set: Vec<bool>,
    /// Members, in the order they were added.
    members: Vec<u64>,
    /// Members whose current attempt is not terminal yet.
    live: u64,
    /// When the restart delay ends; `None` when no restart is pending.
    not_before: Option<Time>,
}

impl PendingRestart {
    /// No restart pending, for a job of `subtasks` subtasks.
    pub fn new(subtasks: u64) -> PendingRestart {
        PendingRestart { in_set: vec![false; subtasks as usize], members: Vec::new(), live: 0, not_before: None }
    }

    /// Whether a restart is pending.
    pub fn is_pending(&self) -> bool {
        self.not_before.is_some()
    }

    /// Starts a restart whose delay ends at `not_before`.
    pub fn begin(&mut self, not_before: Time) {
        assert!(!self.is_pending(), "one restart at a time: later failures merge into it");
        self.not_before = Some(not_before);
    }

    /// Adds `ordinal` to the pending restart; returns whether it is new. `terminal` says whether
    /// its current attempt is terminal already.
    pub fn add(&mut self, ordinal: u64, terminal: bool) -> bool {
        assert!(self.is_pending(), "members join a pending restart");
        let slot = &mut self.in_set[ordinal as usize];
        if *slot {
            return false;
        }
        *slot = true;
        self.members.push(ordinal);
        self.live += u64::from(!terminal);
        true
    }

    /// Whether `ordinal` waits for the pending restart.
    pub fn contains(&self, ordinal: u64) -> bool {
        self.in_set[ordinal as usize]
    }

    /// Notes that member `ordinal` turned terminal.
    pub fn member_stopped(&mut self, ordinal: u64) {
        debug_assert!(self.contains(ordinal));
        assert!(self.live > 0, "member {ordinal} stopped twice");
        self.live -= 1;
    }

    /// When the restart can happen: once every member stopped, at the end of the delay.
    pub fn deadline(&self) -> Option<Time> {
        self.not_before.filter(|_| self.live == 0)
    }

    /// Ends the pending restart and returns its members, ascending.
    pub fn take(&mut self) -> Vec<u64> {
        let mut members = std::mem::take(&mut self.members);
        for &ordinal in &members {
            self.in_set[ordinal as usize] = false;
        }
        members.sort_unstable();
        self.live = 0;
        self.not_before = None;
        members
    }

    /// Members still running, as counted.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The members, in the order they were added.
    pub fn members(&self) -> &[u64] {
        &self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VertexIndex;
    use crate::plan::DistributionPattern;
    use crate::plan::execution::ExecutionEdge;

    /// Vertices of parallelism 3 and 3 joined by `pattern`.
    fn graph(pattern: DistributionPattern) -> ExecutionGraph {
        ExecutionGraph {
            parallelism: vec![3, 3],
            offsets: vec![0, 3, 6],
            edges: vec![ExecutionEdge {
                source: VertexIndex(0),
                target: VertexIndex(1),
                source_parallelism: 3,
                target_parallelism: 3,
                pattern,
            }],
        }
    }

    #[test]
    fn region_failover_restarts_the_failed_slices_only() {
        let graph = graph(DistributionPattern::Pointwise);
        let failover = Failover::new(FailoverStrategy::Region, &graph);
        assert_eq!(failover.restart_set(&graph, &[4]), [1, 4]);
        assert_eq!(failover.restart_set(&graph, &[5, 0, 3]), [0, 2, 3, 5]);
    }

    #[test]
    fn an_all_to_all_edge_makes_one_region() {
        let graph = graph(DistributionPattern::AllToAll);
        let failover = Failover::new(FailoverStrategy::Region, &graph);
        assert_eq!(failover.restart_set(&graph, &[2]), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn full_failover_restarts_everything() {
        let graph = graph(DistributionPattern::Pointwise);
        let failover = Failover::new(FailoverStrategy::Full, &graph);
        assert_eq!(failover.restart_set(&graph, &[4]), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn pending_restart_is_due_once_members_stopped_and_the_delay_passed() {
        let mut restart = PendingRestart::new(6);
        restart.begin(Time(100));
        assert!(restart.add(1, false));
        assert!(restart.add(4, true));
        assert!(!restart.add(1, false), "merging the same member twice counts it once");
        assert_eq!(restart.deadline(), None);
        restart.member_stopped(1);
        assert_eq!(restart.deadline(), Some(Time(100)));
        assert_eq!(restart.take(), [1, 4]);
        assert!(!restart.is_pending() && !restart.contains(1));
    }
}

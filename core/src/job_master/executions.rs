//! The current attempt of every subtask, with counts per state.
//!
//! Executions live in a `Vec` indexed by the subtask's global ordinal in the
//! [`ExecutionGraph`], so memory is O(subtasks) and a lookup by [`ExecutionId`] is O(log vertices).
//! Only the current attempt is kept: a report about an older attempt finds a different attempt
//! number and is ignored by the caller.
//!
//! Invariants: states change only along [`ExecutionState::can_become`] (asserted); a new attempt
//! replaces only a terminal one; the job-wide and per-vertex counts always equal a recount; a
//! location is set exactly when the attempt has been deployed.

use crate::ids::{AllocationId, AttemptNumber, JobId, ResourceId, SubtaskIndex, VertexIndex};
use crate::plan::execution::{ExecutionGraph, SubtaskRef};
use crate::protocol::{ExecutionId, ExecutionState};

/// Number of execution states, the length of a count array.
pub const STATE_COUNT: usize = ExecutionState::ALL.len();

/// Subtasks per execution state, indexed like [`ExecutionState::ALL`].
pub type StateCounts = [u32; STATE_COUNT];

/// Position of `state` in [`ExecutionState::ALL`].
pub fn state_index(state: ExecutionState) -> usize {
    let index = state as usize;
    debug_assert_eq!(ExecutionState::ALL[index], state);
    index
}

/// Where an attempt was deployed: its TaskManager and the allocation of its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The TaskManager.
    pub resource_id: ResourceId,
    /// The slot's allocation.
    pub allocation: AllocationId,
}

/// One subtask's current attempt, as queries see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionView {
    /// The attempt.
    pub id: ExecutionId,
    /// Its state.
    pub state: ExecutionState,
    /// Where it was deployed, if it was.
    pub location: Option<Location>,
}

#[derive(Clone, Copy, Debug)]
struct Execution {
    attempt: AttemptNumber,
    state: ExecutionState,
    location: Option<Location>,
}

/// Every subtask's current attempt.
#[derive(Clone, Debug)]
pub struct Executions {
    job_id: JobId,
    graph: ExecutionGraph,
    list: Vec<Execution>,
    counts: StateCounts,
    vertex_counts: Vec<StateCounts>,
}

impl Executions {
    /// Attempt 0 of every subtask of `graph`, all CREATED.
    pub fn new(job_id: JobId, graph: ExecutionGraph, first_attempt: AttemptNumber) -> Executions {
        let total = graph.subtask_count() as usize;
        let created = Execution { attempt: first_attempt, state: ExecutionState::Created, location: None };
        let mut counts = [0; STATE_COUNT];
        counts[state_index(ExecutionState::Created)] = total as u32;
        let vertex_counts = graph
            .parallelism
            .iter()
            .map(|&parallelism| {
                let mut vertex = [0; STATE_COUNT];
                vertex[state_index(ExecutionState::Created)] = parallelism;
                vertex
            })
            .collect();
        Executions { job_id, graph, list: vec![created; total], counts, vertex_counts }
    }

    /// The execution graph the executions follow.
    pub fn graph(&self) -> &ExecutionGraph {
        &self.graph
    }

    /// Number of subtasks.
    pub fn len(&self) -> u64 {
        self.list.len() as u64
    }

    /// Whether the job has no subtasks.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The subtask with global ordinal `ordinal`.
    pub fn subtask(&self, ordinal: u64) -> SubtaskRef {
        self.graph.subtask_at(ordinal)
    }

    /// The ordinal of the subtask `id` names, if it is one of this job's (any attempt).
    pub fn ordinal_of(&self, id: &ExecutionId) -> Option<u64> {
        let parallelism = *self.graph.parallelism.get(id.vertex.index())?;
        if id.job != self.job_id || id.subtask.0 >= parallelism {
            return None;
        }
        Some(self.graph.ordinal(SubtaskRef { vertex: id.vertex, subtask: id.subtask }))
    }

    /// The ordinal of `id` if it names the current attempt of a subtask.
    pub fn current(&self, id: &ExecutionId) -> Option<u64> {
        self.ordinal_of(id).filter(|&ordinal| self.list[ordinal as usize].attempt == id.attempt)
    }

    /// The current attempt's id.
    pub fn id(&self, ordinal: u64) -> ExecutionId {
        let SubtaskRef { vertex, subtask } = self.subtask(ordinal);
        ExecutionId { job: self.job_id, vertex, subtask, attempt: self.list[ordinal as usize].attempt }
    }

    /// The current attempt's state.
    pub fn state(&self, ordinal: u64) -> ExecutionState {
        self.list[ordinal as usize].state
    }

    /// Where the current attempt was deployed.
    pub fn location(&self, ordinal: u64) -> Option<Location> {
        self.list[ordinal as usize].location
    }

    /// The current attempt, for queries.
    pub fn view(&self, ordinal: u64) -> ExecutionView {
        let execution = &self.list[ordinal as usize];
        ExecutionView { id: self.id(ordinal), state: execution.state, location: execution.location }
    }

    /// Moves the current attempt to `to` and returns its previous state.
    ///
    /// Panics when the transition is illegal: callers check what a peer reports first.
    pub fn set_state(&mut self, ordinal: u64, to: ExecutionState) -> ExecutionState {
        let vertex = self.subtask(ordinal).vertex.index();
        let execution = &mut self.list[ordinal as usize];
        let from = execution.state;
        assert!(from.can_become(to), "execution {ordinal}: illegal transition {from} -> {to}");
        execution.state = to;
        self.counts[state_index(from)] -= 1;
        self.counts[state_index(to)] += 1;
        self.vertex_counts[vertex][state_index(from)] -= 1;
        self.vertex_counts[vertex][state_index(to)] += 1;
        from
    }

    /// Records where the current attempt was deployed.
    pub fn set_location(&mut self, ordinal: u64, location: Location) {
        let execution = &mut self.list[ordinal as usize];
        debug_assert!(execution.location.is_none(), "an attempt is deployed once");
        execution.location = Some(location);
    }

    /// Replaces the terminal current attempt with the next one, CREATED and undeployed.
    pub fn new_attempt(&mut self, ordinal: u64) -> ExecutionId {
        let vertex = self.subtask(ordinal).vertex.index();
        let execution = &mut self.list[ordinal as usize];
        let from = execution.state;
        assert!(from.is_terminal(), "execution {ordinal}: a new attempt replaces only a terminal one ({from})");
        let attempt = execution.attempt.0.checked_add(1).expect("attempt numbers do not run out");
        *execution = Execution { attempt: AttemptNumber(attempt), state: ExecutionState::Created, location: None };
        self.counts[state_index(from)] -= 1;
        self.counts[state_index(ExecutionState::Created)] += 1;
        self.vertex_counts[vertex][state_index(from)] -= 1;
        self.vertex_counts[vertex][state_index(ExecutionState::Created)] += 1;
        self.id(ordinal)
    }

    /// Subtasks per state over the whole job.
    pub fn counts(&self) -> &StateCounts {
        &self.counts
    }

    /// Subtasks in `state`.
    pub fn count(&self, state: ExecutionState) -> u32 {
        self.counts[state_index(state)]
    }

    /// Subtasks of `vertex` per state.
    pub fn vertex_counts(&self, vertex: VertexIndex) -> Option<&StateCounts> {
        self.vertex_counts.get(vertex.index())
    }

    /// Subtasks whose current attempt is not terminal.
    pub fn non_terminal(&self) -> u32 {
        let terminal = [ExecutionState::Finished, ExecutionState::Canceled, ExecutionState::Failed];
        self.list.len() as u32 - terminal.iter().map(|&state| self.count(state)).sum::<u32>()
    }

    /// The ordinal of subtask `subtask` of `vertex`, if the vertex has that many subtasks.
    pub fn ordinal_at(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Option<u64> {
        let parallelism = *self.graph.parallelism.get(vertex.index())?;
        (subtask.0 < parallelism).then(|| self.graph.ordinal(SubtaskRef { vertex, subtask }))
    }

    /// Checks the counts against a recount.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts = [0u32; STATE_COUNT];
        let mut vertex_counts = vec![[0u32; STATE_COUNT]; self.vertex_counts.len()];
        for (ordinal, execution) in self.list.iter().enumerate() {
            counts[state_index(execution.state)] += 1;
            vertex_counts[self.subtask(ordinal as u64).vertex.index()][state_index(execution.state)] += 1;
            let deployed = !matches!(execution.state, ExecutionState::Created | ExecutionState::Scheduled);
            if execution.location.is_some() && !deployed {
                return Err(format!("execution {ordinal} is {} but has a location", execution.state));
            }
        }
        if counts != self.counts || vertex_counts != self.vertex_counts {
            return Err(format!("state counts {:?} differ from a recount {counts:?}", self.counts));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Hex128;
    use crate::plan::DistributionPattern;
    use crate::plan::execution::ExecutionEdge;

    fn executions() -> Executions {
        let graph = ExecutionGraph {
            parallelism: vec![2, 3],
            offsets: vec![0, 2, 5],
            edges: vec![ExecutionEdge {
                source: VertexIndex(0),
                target: VertexIndex(1),
                source_parallelism: 2,
                target_parallelism: 3,
                pattern: DistributionPattern::AllToAll,
            }],
        };
        Executions::new(JobId(Hex128(1)), graph, AttemptNumber(0))
    }

    #[test]
    fn transitions_keep_counts_equal_to_a_recount() {
        let mut executions = executions();
        assert_eq!(executions.count(ExecutionState::Created), 5);
        executions.set_state(3, ExecutionState::Scheduled);
        executions.set_state(3, ExecutionState::Canceled);
        let id = executions.new_attempt(3);
        assert_eq!((id.vertex, id.subtask, id.attempt), (VertexIndex(1), SubtaskIndex(1), AttemptNumber(1)));
        assert_eq!(executions.count(ExecutionState::Created), 5);
        assert_eq!(executions.vertex_counts(VertexIndex(1)).map(|c| c[0]), Some(3));
        executions.check_invariants().expect("consistent");
    }

    #[test]
    #[should_panic(expected = "illegal transition")]
    fn illegal_transitions_are_bugs() {
        let mut executions = executions();
        executions.set_state(0, ExecutionState::Finished);
        executions.set_state(0, ExecutionState::Running);
    }

    #[test]
    fn only_the_current_attempt_of_a_real_subtask_is_current() {
        let mut executions = executions();
        let old = executions.id(4);
        executions.set_state(4, ExecutionState::Failed);
        let new = executions.new_attempt(4);
        assert_eq!(executions.current(&old), None);
        assert_eq!(executions.current(&new), Some(4));
        let made_up = ExecutionId { subtask: SubtaskIndex(3), ..new };
        assert_eq!(executions.ordinal_of(&made_up), None);
        let other_job = ExecutionId { job: JobId(Hex128(2)), ..new };
        assert_eq!(executions.ordinal_of(&other_job), None);
        let no_vertex = ExecutionId { vertex: VertexIndex(9), ..new };
        assert_eq!(executions.ordinal_of(&no_vertex), None);
    }
}

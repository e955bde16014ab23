//! The planner: from a validated job graph to job vertices, slots and the execution graph.
//!
//! Planning follows Flink's `StreamingJobGraphGenerator`: every operator's parallelism, max
//! parallelism, slot sharing group and edge partitioners are resolved ([`resolve`]), operators are
//! chained into job vertices by Flink's exact rules ([`chaining`]), the slots a job needs are
//! counted per slot sharing group, and the job expands into subtasks ([`execution`]) whose
//! pipelined regions are the unit of failover ([`regions`]).
//!
//! Invariants of a [`JobPlan`]: every operator sits in exactly one vertex; the operators of a
//! vertex are joined by chainable edges only; vertex inputs enter at the head; `required_slots`
//! is the sum over slot sharing groups of the group's highest parallelism.

pub mod chaining;
pub mod execution;
pub mod json;
pub mod regions;
pub mod resolve;
pub mod text;

use crate::ids::{OperatorIndex, VertexId, VertexIndex};
use crate::job::Partitioner;
use crate::job::validate::ValidatedJob;
use serde::Serialize;
use std::collections::BTreeMap;

/// Job-independent settings that planning needs, taken from the cluster's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// `parallelism.default`, or the CLI's `-p`.
    pub default_parallelism: u32,
    /// `pipeline.max-parallelism`; `None` derives it from each operator's parallelism.
    pub max_parallelism: Option<u32>,
    /// `pipeline.operator-chaining`.
    pub chaining_enabled: bool,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions { default_parallelism: 1, max_parallelism: None, chaining_enabled: true }
    }
}

/// A problem found while planning, naming the operators involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operator `{uid}`: {message}")]
pub struct PlanError {
    /// The operator at fault.
    pub uid: String,
    /// What is wrong.
    pub message: String,
}

/// A job vertex: one operator chain, deployed as one task per subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobVertex {
    /// Position in [`JobPlan::vertices`].
    pub index: VertexIndex,
    /// The REST id, derived from the head operator's uid.
    pub id: VertexId,
    /// Operator names joined by ` -> `, head first (Flink's vertex name).
    pub name: String,
    /// The chained operators, head first, in topological order.
    pub operators: Vec<OperatorIndex>,
    /// Parallel subtasks.
    pub parallelism: u32,
    /// Key groups (upper bound of parallelism on rescaling).
    pub max_parallelism: u32,
    /// The slot sharing group's name.
    pub slot_sharing_group: String,
    /// Whether the head is a source.
    pub is_source: bool,
}

/// How subtasks of two vertices connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum DistributionPattern {
    /// Each consumer subtask reads a local subset of producers (forward, rescale).
    Pointwise,
    /// Every consumer subtask reads every producer subtask.
    AllToAll,
}

/// A data exchange between two vertices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobEdge {
    /// The producing vertex.
    pub source: VertexIndex,
    /// The consuming vertex.
    pub target: VertexIndex,
    /// The producing operator (any operator of the source chain).
    pub source_operator: OperatorIndex,
    /// The consuming operator (the target chain's head).
    pub target_operator: OperatorIndex,
    /// The partitioner.
    pub partitioner: Partitioner,
    /// Pointwise or all-to-all, from the partitioner.
    pub pattern: DistributionPattern,
}

/// A planned job: vertices, edges and the slots it needs.
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// The validated job the plan was made from.
    pub job: ValidatedJob,
    /// Per operator: resolved parallelism, group and so on.
    pub operators: Vec<resolve::ResolvedOperator>,
    /// Job vertices in topological order of their heads.
    pub vertices: Vec<JobVertex>,
    /// Edges between vertices, ordered by consuming operator.
    pub edges: Vec<JobEdge>,
    /// Which vertex each operator belongs to.
    pub vertex_of: Vec<VertexIndex>,
    /// Slots needed per slot sharing group (the group's highest parallelism).
    pub slots_per_group: BTreeMap<String, u32>,
    /// Slots the job needs: the sum of `slots_per_group`.
    pub required_slots: u32,
}

/// Plans `job` under `options`.
pub fn plan(job: &ValidatedJob, options: &PlanOptions) -> Result<JobPlan, PlanError> {
    let operators = resolve::resolve(job, options)?;
    let chains = chaining::chain(job, &operators, options.chaining_enabled);
    let mut plan = JobPlan {
        job: job.clone(),
        operators,
        vertices: Vec::new(),
        edges: Vec::new(),
        vertex_of: Vec::new(),
        slots_per_group: BTreeMap::new(),
        required_slots: 0,
    };
    chaining::build_vertices(&mut plan, chains);
    for vertex in &plan.vertices {
        let slots = plan.slots_per_group.entry(vertex.slot_sharing_group.clone()).or_insert(0);
        *slots = (*slots).max(vertex.parallelism);
    }
    plan.required_slots = plan.slots_per_group.values().sum();
    debug_assert!(plan.check_invariants().is_ok());
    Ok(plan)
}

impl JobPlan {
    /// The vertex at `index`.
    pub fn vertex(&self, index: VertexIndex) -> &JobVertex {
        &self.vertices[index.index()]
    }

    /// Edges into `vertex`.
    pub fn inputs_of(&self, vertex: VertexIndex) -> impl Iterator<Item = &JobEdge> + '_ {
        self.edges.iter().filter(move |edge| edge.target == vertex)
    }

    /// Edges out of `vertex`.
    pub fn outputs_of(&self, vertex: VertexIndex) -> impl Iterator<Item = &JobEdge> + '_ {
        self.edges.iter().filter(move |edge| edge.source == vertex)
    }

    /// Total subtasks over all vertices.
    pub fn subtask_count(&self) -> u64 {
        self.vertices.iter().map(|vertex| vertex.parallelism as u64).sum()
    }

    /// Checks the plan's invariants (see the module doc); returns the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = vec![0u32; self.job.graph.operators.len()];
        for vertex in &self.vertices {
            for operator in &vertex.operators {
                seen[operator.index()] += 1;
                if self.vertex_of[operator.index()] != vertex.index {
                    return Err(format!(
                        "operator {operator} is listed in vertex {} but mapped elsewhere",
                        vertex.index
                    ));
                }
            }
        }
        if let Some(position) = seen.iter().position(|&count| count != 1) {
            return Err(format!("operator {position} is in {} vertices", seen[position]));
        }
        for edge in &self.edges {
            if self.vertex(edge.target).operators.first() != Some(&edge.target_operator) {
                return Err(format!("edge into vertex {} does not enter at its head", edge.target));
            }
        }
        let sum: u32 = self.slots_per_group.values().sum();
        if sum != self.required_slots {
            return Err(format!("required_slots {} != sum over groups {sum}", self.required_slots));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Operator chaining with Flink's rules (`StreamingJobGraphGenerator.isChainable`).
//!
//! An edge `up → down` is chained only if all hold: `down` has exactly one input; both are in
//! the same slot sharing group; `down` is `Always` and `up` is `Always` or `Head`; the edge is
//! forward; both have the same parallelism; chaining is enabled. A chain is a tree rooted at its
//! head (an operator may chain to several consumers), laid out head first in topological order.

use super::resolve::ResolvedOperator;
use super::{DistributionPattern, JobEdge, JobPlan, JobVertex};
use crate::ids::{Hex128, OperatorIndex, VertexId, VertexIndex, stable_hash128};
use crate::job::validate::ValidatedJob;
use crate::job::{ChainingStrategy, Partitioner};

/// Whether the edge `source → target` (with its resolved partitioner) may be chained.
pub fn is_chainable(
    job: &ValidatedJob,
    resolved: &[ResolvedOperator],
    source: OperatorIndex,
    target: OperatorIndex,
    partitioner: &Partitioner,
    chaining_enabled: bool,
) -> bool {
    let graph = &job.graph;
    let (up, down) = (graph.operator(source), graph.operator(target));
    let (up_resolved, down_resolved) = (&resolved[source.index()], &resolved[target.index()]);
    chaining_enabled
        && graph.inputs_of(target).count() == 1
        && up_resolved.slot_sharing_group == down_resolved.slot_sharing_group
        && down.chaining == ChainingStrategy::Always
        && matches!(up.chaining, ChainingStrategy::Always | ChainingStrategy::Head)
        && *partitioner == Partitioner::Forward
        && up_resolved.parallelism == down_resolved.parallelism
}

/// The chain head of every operator.
pub fn chain(job: &ValidatedJob, resolved: &[ResolvedOperator], chaining_enabled: bool) -> Vec<OperatorIndex> {
    let mut head_of: Vec<OperatorIndex> = (0..job.graph.operators.len() as u32).map(OperatorIndex).collect();
    for &target in &job.topological_order {
        let inputs = &resolved[target.index()].input_partitioners;
        if let [(source, partitioner)] = inputs.as_slice()
            && is_chainable(job, resolved, *source, target, partitioner, chaining_enabled)
        {
            head_of[target.index()] = head_of[source.index()];
        }
    }
    head_of
}

/// Fills the plan's vertices, edges and operator-to-vertex map from the chain heads.
pub fn build_vertices(plan: &mut JobPlan, head_of: Vec<OperatorIndex>) {
    let graph = &plan.job.graph;
    let mut vertex_of_head = vec![None; graph.operators.len()];
    for &operator in &plan.job.topological_order {
        let head = head_of[operator.index()];
        let vertex_index = match vertex_of_head[head.index()] {
            Some(index) => index,
            None => {
                let index = VertexIndex(plan.vertices.len() as u32);
                vertex_of_head[head.index()] = Some(index);
                plan.vertices.push(new_vertex(plan, index, head));
                index
            }
        };
        if operator != head {
            plan.vertices[vertex_index.index()].operators.push(operator);
        }
    }
    plan.vertex_of = head_of
        .iter()
        .map(|head| vertex_of_head[head.index()].unwrap_or_else(|| unreachable!("every head has a vertex")))
        .collect();
    for vertex in &mut plan.vertices {
        let names: Vec<&str> = vertex.operators.iter().map(|&o| graph.operator(o).name.as_str()).collect();
        vertex.name = names.join(" -> ");
    }
    plan.edges = vertex_edges(plan, &head_of);
}

fn new_vertex(plan: &JobPlan, index: VertexIndex, head: OperatorIndex) -> JobVertex {
    let operator = plan.job.graph.operator(head);
    let resolved = &plan.operators[head.index()];
    JobVertex {
        index,
        id: VertexId(Hex128(stable_hash128(&[b"vertex", operator.uid.as_bytes()]))),
        name: String::new(),
        operators: vec![head],
        parallelism: resolved.parallelism,
        max_parallelism: resolved.max_parallelism,
        slot_sharing_group: resolved.slot_sharing_group.clone(),
        is_source: operator.kind.is_source(),
    }
}

/// The job graph's edges that were not chained, as edges between vertices.
fn vertex_edges(plan: &JobPlan, head_of: &[OperatorIndex]) -> Vec<JobEdge> {
    let mut edges = Vec::new();
    for (target_position, resolved) in plan.operators.iter().enumerate() {
        let target = OperatorIndex(target_position as u32);
        for (source, partitioner) in &resolved.input_partitioners {
            if head_of[target.index()] != target {
                continue; // a chained edge lives inside the vertex
            }
            let pattern =
                if partitioner.is_pointwise() { DistributionPattern::Pointwise } else { DistributionPattern::AllToAll };
            edges.push(JobEdge {
                source: plan.vertex_of[source.index()],
                target: plan.vertex_of[target.index()],
                source_operator: *source,
                target_operator: target,
                partitioner: partitioner.clone(),
                pattern,
            });
        }
    }
    edges
}

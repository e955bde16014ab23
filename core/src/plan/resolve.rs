//! Resolves what the user left open: parallelism, max parallelism, slot sharing groups and
//! default partitioners, with Flink's rules.

use super::{PlanError, PlanOptions};
use crate::ids::OperatorIndex;
use crate::job::validate::ValidatedJob;
use crate::job::{MAX_PARALLELISM_LIMIT, Partitioner};
use serde::Serialize;

/// The slot sharing group of operators that name none and have no inputs to inherit from.
pub const DEFAULT_SLOT_SHARING_GROUP: &str = "default";

/// An operator's settings after planning filled in the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedOperator {
    /// Parallel instances.
    pub parallelism: u32,
    /// Key groups.
    pub max_parallelism: u32,
    /// Slot sharing group.
    pub slot_sharing_group: String,
    /// The partitioner of each input edge, in edge order.
    pub input_partitioners: Vec<(OperatorIndex, Partitioner)>,
}

/// Flink's default max parallelism: 1.5 × parallelism rounded up to a power of two, within
/// 128..=32768 (`KeyGroupRangeAssignment.computeDefaultMaxParallelism`).
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let wanted = parallelism as u64 + parallelism as u64 / 2;
    let rounded = wanted.max(1).next_power_of_two();
    rounded.clamp(128, MAX_PARALLELISM_LIMIT as u64) as u32
}

/// Resolves every operator of `job`, in operator order.
pub fn resolve(job: &ValidatedJob, options: &PlanOptions) -> Result<Vec<ResolvedOperator>, PlanError> {
    let graph = &job.graph;
    let mut resolved: Vec<Option<ResolvedOperator>> = vec![None; graph.operators.len()];
    for &index in &job.topological_order {
        let operator = graph.operator(index);
        let parallelism = operator.parallelism.or(graph.parallelism).unwrap_or(options.default_parallelism);
        let max_parallelism = operator
            .max_parallelism
            .or(graph.max_parallelism)
            .or(options.max_parallelism)
            .unwrap_or_else(|| default_max_parallelism(parallelism));
        let fail = |message: String| PlanError { uid: operator.uid.clone(), message };
        if parallelism == 0 || parallelism > max_parallelism {
            return Err(fail(format!("parallelism {parallelism} is outside 1..={max_parallelism}")));
        }
        let mut input_partitioners = Vec::new();
        let mut input_groups = Vec::new();
        for edge in graph.inputs_of(index) {
            let Some(source) = &resolved[edge.source.index()] else {
                unreachable!("topological order puts producers first");
            };
            let partitioner = match &edge.partitioner {
                Some(Partitioner::Forward) if source.parallelism != parallelism => {
                    let producer = &graph.operator(edge.source).uid;
                    return Err(fail(format!(
                        "forward partitioning does not allow a change of parallelism \
                         ({producer} has {}, this has {parallelism})",
                        source.parallelism
                    )));
                }
                Some(explicit) => explicit.clone(),
                None if source.parallelism == parallelism => Partitioner::Forward,
                None => Partitioner::Rebalance,
            };
            input_partitioners.push((edge.source, partitioner));
            input_groups.push(source.slot_sharing_group.clone());
        }
        let slot_sharing_group = match &operator.slot_sharing_group {
            Some(group) => group.clone(),
            None => inherited_group(&input_groups),
        };
        resolved[index.index()] =
            Some(ResolvedOperator { parallelism, max_parallelism, slot_sharing_group, input_partitioners });
    }
    Ok(resolved.into_iter().flatten().collect())
}

/// Flink's rule: inherit the inputs' group when they all share one, else the default group.
fn inherited_group(input_groups: &[String]) -> String {
    match input_groups.split_first() {
        Some((first, rest)) if rest.iter().all(|group| group == first) => first.clone(),
        _ => DEFAULT_SLOT_SHARING_GROUP.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_parallelism_matches_flink() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(100), 256);
        assert_eq!(default_max_parallelism(1000), 2048);
        assert_eq!(default_max_parallelism(30_000), 32_768);
    }

    #[test]
    fn operators_without_a_group_inherit_their_inputs_shared_group() {
        assert_eq!(inherited_group(&["w".into(), "w".into()]), "w");
        assert_eq!(inherited_group(&["w".into(), "v".into()]), "default");
        assert_eq!(inherited_group(&[]), "default");
    }
}

//! The plan as people read it: `weir info` without `--json`, and the planner's golden files.

use super::JobPlan;
use std::fmt::Write;

impl JobPlan {
    /// A readable plan: one block per vertex with its chain, then the slots.
    pub fn describe(&self) -> String {
        let graph = &self.job.graph;
        let mut out = String::new();
        let _ =
            writeln!(out, "job {:?}: {} vertices, {} subtasks", graph.name, self.vertices.len(), self.subtask_count());
        for vertex in &self.vertices {
            let _ = writeln!(
                out,
                "vertex {} [{}] parallelism {} (max {}), slot sharing group {:?}",
                vertex.index, vertex.id, vertex.parallelism, vertex.max_parallelism, vertex.slot_sharing_group
            );
            for &operator in &vertex.operators {
                let operator = graph.operator(operator);
                let _ = writeln!(out, "    {:<12} {} ({})", operator.uid, operator.name, operator.kind.type_name());
            }
            for edge in self.inputs_of(vertex.index) {
                let key = match &edge.partitioner {
                    crate::job::Partitioner::Hash { key } => format!(" by {key:?}"),
                    _ => String::new(),
                };
                let source = self.vertex(edge.source);
                let _ =
                    writeln!(out, "    <- {}{} from vertex {}", edge.partitioner.ship_strategy(), key, source.index);
            }
        }
        let groups: Vec<String> =
            self.slots_per_group.iter().map(|(group, slots)| format!("{group:?}: {slots}")).collect();
        let _ = writeln!(out, "required slots: {} ({})", self.required_slots, groups.join(", "));
        out
    }
}

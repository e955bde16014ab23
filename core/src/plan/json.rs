//! The plan as Flink's REST API shows it (`GET /jobs/:id/plan`), plus weir's own fields.
//!
//! Flink's fields keep Flink's names and spellings (`ship_strategy` in capitals, `exchange`
//! `pipelined_bounded`, empty `operator` and `operator_strategy`) so tools that read Flink's
//! plans read weir's. weir adds `required_slots` at the top, and per node `slot_sharing_group`,
//! `operators` (the chained operator names, head first) and `max_parallelism`.

use super::JobPlan;
use crate::ids::JobId;
use serde::Serialize;
use std::collections::BTreeMap;

/// `{"plan": …, "required_slots": …}`: the document `weir info --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct PlanDocument {
    /// The plan in Flink's shape.
    pub plan: PlanJson,
    /// Slots the job needs (weir).
    pub required_slots: u32,
    /// Slots per slot sharing group (weir).
    pub slots_per_group: BTreeMap<String, u32>,
}

/// Flink's `plan` object.
#[derive(Clone, Debug, Serialize)]
pub struct PlanJson {
    /// The job id.
    pub jid: String,
    /// The job name.
    pub name: String,
    /// Always `STREAMING`.
    #[serde(rename = "type")]
    pub job_type: &'static str,
    /// One node per job vertex.
    pub nodes: Vec<PlanNode>,
}

/// One job vertex in Flink's plan shape.
#[derive(Clone, Debug, Serialize)]
pub struct PlanNode {
    /// Vertex id (32 hex characters).
    pub id: String,
    /// Parallelism.
    pub parallelism: u32,
    /// Flink leaves this empty for streaming jobs.
    pub operator: String,
    /// Flink leaves this empty for streaming jobs.
    pub operator_strategy: String,
    /// The chain, in Flink's `A<br/>+- B<br/>` form.
    pub description: String,
    /// Always empty.
    pub optimizer_properties: BTreeMap<String, String>,
    /// Input exchanges; absent for sources, as in Flink.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<PlanInput>,
    /// The slot sharing group (weir).
    pub slot_sharing_group: String,
    /// Chained operator names, head first (weir).
    pub operators: Vec<String>,
    /// Max parallelism (weir).
    pub max_parallelism: u32,
}

/// One input exchange of a plan node.
#[derive(Clone, Debug, Serialize)]
pub struct PlanInput {
    /// Input number at the consumer.
    pub num: u32,
    /// Producing vertex id.
    pub id: String,
    /// `FORWARD`, `HASH`, `REBALANCE`, `RESCALE`, `BROADCAST` or `SHUFFLE`.
    pub ship_strategy: &'static str,
    /// Always `pipelined_bounded`: weir's exchanges are pipelined with bounded buffers.
    pub exchange: &'static str,
}

impl JobPlan {
    /// The plan document for job `jid`.
    pub fn to_document(&self, jid: JobId) -> PlanDocument {
        let graph = &self.job.graph;
        let nodes = self
            .vertices
            .iter()
            .map(|vertex| {
                let names: Vec<String> = vertex.operators.iter().map(|&o| graph.operator(o).name.clone()).collect();
                let mut description = String::new();
                for (position, name) in names.iter().enumerate() {
                    if position > 0 {
                        description.push_str("+- ");
                    }
                    description.push_str(name);
                    description.push_str("<br/>");
                }
                let inputs = self
                    .inputs_of(vertex.index)
                    .enumerate()
                    .map(|(num, edge)| PlanInput {
                        num: num as u32,
                        id: self.vertex(edge.source).id.to_string(),
                        ship_strategy: edge.partitioner.ship_strategy(),
                        exchange: "pipelined_bounded",
                    })
                    .collect();
                PlanNode {
                    id: vertex.id.to_string(),
                    parallelism: vertex.parallelism,
                    operator: String::new(),
                    operator_strategy: String::new(),
                    description,
                    optimizer_properties: BTreeMap::new(),
                    inputs,
                    slot_sharing_group: vertex.slot_sharing_group.clone(),
                    operators: names,
                    max_parallelism: vertex.max_parallelism,
                }
            })
            .collect();
        PlanDocument {
            plan: PlanJson { jid: jid.to_string(), name: graph.name.clone(), job_type: "STREAMING", nodes },
            required_slots: self.required_slots,
            slots_per_group: self.slots_per_group.clone(),
        }
    }
}

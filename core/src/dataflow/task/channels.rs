//! The task's channels: where each input channel comes from, and the writers of its output edges.
//!
//! Inputs: one channel per (input edge, producer subtask), laid out edge by edge in the chain's
//! input order (the plan's edges into the vertex), each edge's producers in ascending order, as
//! [`ExecutionGraph::producers`] gives them. Outputs: one [`RecordWriter`] per edge leaving the
//! chain, in [`Chain::outputs`] order, whose channel `c` leads to consumer subtask
//! `consumers.start + c`.

use super::TaskError;
use crate::dataflow::EventTime;
use crate::dataflow::buffer::RecordWriter;
use crate::dataflow::operators::{Chain, Collector, OperatorError, OperatorErrorKind};
use crate::dataflow::partition::{ChannelIndex, ChannelSelector, SelectorSpec};
use crate::expr;
use crate::ids::{SubtaskIndex, VertexIndex};
use crate::job::Partitioner;
use crate::plan::JobPlan;
use crate::plan::execution::ExecutionGraph;
use crate::row::{RowBatch, Value};
use crate::time::{Duration, Time};
use std::ops::Range;

/// The input channels of one subtask: which (edge, producer) each one reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLayout {
    /// Per chain input: the plan edge, its producer subtasks and its first channel.
    inputs: Vec<InputRange>,
    /// Per channel: the chain input it feeds.
    input_of_channel: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct InputRange {
    plan_edge: usize,
    producers: Range<u32>,
    first_channel: u32,
}

impl InputLayout {
    /// The channels of `subtask` of `vertex`.
    pub fn new(plan: &JobPlan, vertex: VertexIndex, subtask: SubtaskIndex) -> InputLayout {
        let graph = ExecutionGraph::new(plan);
        let mut inputs = Vec::new();
        let mut input_of_channel = Vec::new();
        for (plan_edge, edge) in plan.edges.iter().enumerate().filter(|(_, edge)| edge.target == vertex) {
            let producers = graph.producers(&graph.edges[plan_edge], subtask);
            let first_channel = input_of_channel.len() as u32;
            input_of_channel.extend(producers.clone().map(|_| inputs.len()));
            debug_assert_eq!(edge.target, vertex);
            inputs.push(InputRange { plan_edge, producers, first_channel });
        }
        InputLayout { inputs, input_of_channel }
    }

    /// The channel that carries what `producer` sends on plan edge `plan_edge` (its position in
    /// [`JobPlan::edges`]); `None` when that edge or producer does not feed this subtask.
    pub fn channel(&self, plan_edge: usize, producer: SubtaskIndex) -> Option<ChannelIndex> {
        let input = self.inputs.iter().find(|input| input.plan_edge == plan_edge)?;
        input
            .producers
            .contains(&producer.0)
            .then(|| ChannelIndex(input.first_channel + (producer.0 - input.producers.start)))
    }

    /// The plan edge and producer subtask of `channel`, if it exists.
    pub fn origin(&self, channel: ChannelIndex) -> Option<(usize, SubtaskIndex)> {
        let input = &self.inputs[*self.input_of_channel.get(channel.index())?];
        Some((input.plan_edge, SubtaskIndex(input.producers.start + (channel.0 - input.first_channel))))
    }

    /// The producer subtasks that feed this subtask on plan edge `plan_edge` (none if it does not).
    pub fn producers(&self, plan_edge: usize) -> impl Iterator<Item = SubtaskIndex> + '_ {
        let input = self.inputs.iter().find(|input| input.plan_edge == plan_edge);
        input.into_iter().flat_map(|input| input.producers.clone().map(SubtaskIndex))
    }

    /// Number of input channels (zero for a source).
    pub fn channels(&self) -> usize {
        self.input_of_channel.len()
    }

    /// The chain input `channel` feeds.
    #[inline]
    pub(super) fn input_of(&self, channel: ChannelIndex) -> usize {
        self.input_of_channel[channel.index()]
    }
}

/// One edge leaving the chain: its writer, and the clock the chain's emits are stamped with.
#[derive(Debug)]
pub(super) struct EdgeOutput {
    pub(super) writer: RecordWriter,
    /// Position in [`JobPlan::edges`].
    pub(super) plan_edge: usize,
    /// The consumer subtask of channel 0.
    pub(super) consumers_start: u32,
    /// The current step's time (when a buffer was opened, for the buffer timeout).
    pub(super) now: Time,
    /// The producing operator's uid, to name it when its key cannot be computed.
    operator: String,
}

impl Collector for EdgeOutput {
    #[inline]
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        match self.writer.emit(self.now, row) {
            Ok(()) => Ok(()),
            Err(error) => Err(OperatorError::new(&self.operator, OperatorErrorKind::Eval(error))),
        }
    }

    #[inline]
    fn collect_batch(&mut self, rows: &RowBatch) -> Result<(), OperatorError> {
        match self.writer.emit_batch(self.now, rows) {
            Ok(()) => Ok(()),
            Err(error) => Err(OperatorError::new(&self.operator, OperatorErrorKind::Eval(error))),
        }
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        self.writer.emit_watermark(self.now, watermark);
        Ok(())
    }
}

/// Buffer size and timeout of the writers.
#[derive(Clone, Copy, Debug)]
pub(super) struct WriterSettings {
    pub(super) segment_bytes: usize,
    pub(super) buffer_timeout: Duration,
    pub(super) seed: u64,
}

/// A writer per edge leaving `chain`, for `subtask` of `vertex`.
pub(super) fn build_outputs(
    plan: &JobPlan,
    vertex: VertexIndex,
    subtask: SubtaskIndex,
    chain: &Chain,
    settings: WriterSettings,
) -> Result<Vec<EdgeOutput>, TaskError> {
    let producer_parallelism = plan.vertex(vertex).parallelism;
    let mut outputs = Vec::with_capacity(chain.outputs().len());
    for output in chain.outputs() {
        let plan_edge = output.plan_edge;
        let edge = &plan.edges[plan_edge];
        let fail = |message: String| TaskError::Output { plan_edge, message };
        let operator = plan.job.graph.operator(edge.source_operator).uid.clone();
        let key = match &edge.partitioner {
            Partitioner::Hash { key } => {
                let schema = plan.job.schemas[edge.source_operator.index()].as_ref();
                let schema = schema.ok_or_else(|| fail(format!("the key `{key}` needs the rows' schema")))?;
                Some(expr::compile(key, schema).map_err(|error| fail(format!("bad key `{key}`: {error}")))?)
            }
            _ => None,
        };
        let consumer = plan.vertex(edge.target);
        let spec = SelectorSpec {
            producer: subtask,
            producer_parallelism,
            consumer_parallelism: consumer.parallelism,
            max_parallelism: consumer.max_parallelism,
            key,
            seed: settings.seed ^ (plan_edge as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let selector = ChannelSelector::new(&edge.partitioner, spec).map_err(|error| fail(error.to_string()))?;
        let consumers_start = selector.consumers().start;
        let writer = RecordWriter::new(selector, settings.segment_bytes, settings.buffer_timeout);
        outputs.push(EdgeOutput { writer, plan_edge, consumers_start, now: Time::ZERO, operator });
    }
    Ok(outputs)
}

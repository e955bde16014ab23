//! Operator chains: the operators of one job vertex, calling each other directly.
//!
//! A chain is a tree rooted at its head, laid out head first in topological order, so every
//! chained consumer sits after its producer: a producer's collector reaches its consumers
//! through the tail of the node vector (`split_at_mut`), with no queue and no copy. Outputs
//! that leave the vertex go to the caller's per-edge collectors, numbered as the plan's edges
//! out of the vertex ([`Chain::outputs`]); inputs are numbered as the plan's edges into it.

use super::aggregate::RunningAggregate;
use super::sinks::{Discard, FileSink, Print, SinkFormat};
use super::sources::{GeneratorRows, IndexSource, LineFormat, LineSource, SequenceRows};
use super::transform::{Filter, FlatMap, Map, WatermarkAssigner};
use super::window::{WindowOperator, WindowSettings};
use super::{
    Collector, LineWriter, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorMetrics,
    OperatorSnapshot, PartStore, PollStatus, RestoredState, SourceReader,
};
use crate::checkpoint::rescale::share_of_items;
use crate::config::{Config, StateBackendKind};
use crate::dataflow::EventTime;
use crate::dataflow::state::{HeapKeyedStateBackend, StateStore, StoreKeyedStateBackend};
use crate::expr::{self, AggregateSpec, Expr};
use crate::ids::{CheckpointId, OperatorIndex, SubtaskIndex, VertexIndex};
use crate::job::{OperatorKind, Partitioner};
use crate::plan::{JobEdge, JobPlan};
use crate::row::{RowBatch, Schema, Type, Value};
use crate::time::{Duration, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the chain's operators take from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainOptions {
    /// `pipeline.auto-watermark-interval`: time between periodic watermarks; zero turns them off.
    pub auto_watermark_interval: Duration,
    /// Whether the job checkpoints; without checkpoints the file sink commits at end of input.
    pub checkpointing: bool,
    /// The attempt number of the task the chain runs in.
    pub attempt: u32,
    /// Where keyed operators keep their state (`state.backend.type`).
    pub state_backend: StateBackendKind,
}

impl Default for ChainOptions {
    fn default() -> ChainOptions {
        ChainOptions {
            auto_watermark_interval: Duration::from_millis(200),
            checkpointing: false,
            attempt: 0,
            state_backend: StateBackendKind::Heap,
        }
    }
}

impl ChainOptions {
    /// The options of a job running under `config`.
    pub fn from_config(config: &Config) -> ChainOptions {
        ChainOptions {
            auto_watermark_interval: config.pipeline.auto_watermark_interval,
            checkpointing: config.checkpoint.interval.is_some(),
            attempt: 0,
            state_backend: config.state_backend.kind,
        }
    }
}

/// A keyed operator's backend, chosen when the chain is built.
enum KeyedState {
    Heap(HeapKeyedStateBackend),
    Store(StoreKeyedStateBackend),
}

/// Which external input a source reads, for [`Connectors::source_reader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderRequest<'a> {
    /// A file source's file.
    File {
        /// The path as the job names it.
        path: &'a str,
    },
    /// A socket source's connection.
    Socket {
        /// Host to connect to.
        host: &'a str,
        /// Port to connect to.
        port: u16,
    },
}

/// The driver's IO, handed to the operators that need it when a chain is built.
pub trait Connectors {
    /// A reader for a file or socket source instance (the driver may open it lazily).
    fn source_reader(
        &mut self,
        operator: &OperatorContext,
        request: ReaderRequest<'_>,
    ) -> Result<Box<dyn SourceReader>, String>;
    /// Where a print sink instance writes its lines.
    fn line_writer(&mut self, operator: &OperatorContext) -> Result<Box<dyn LineWriter>, String>;
    /// The part files of a file sink instance writing into `directory`.
    fn part_store(&mut self, operator: &OperatorContext, directory: &str) -> Result<Box<dyn PartStore>, String>;
    /// The store of a keyed operator instance's state with the `rocksdb` backend: a fresh,
    /// empty store that lives as long as the returned object (RocksDB in the daemons, memory
    /// in the simulator).
    fn keyed_state_store(&mut self, operator: &OperatorContext) -> Result<Box<dyn StateStore>, String>;
    /// An operator a Rust program registered under `name` (application mode); none by default.
    fn custom_operator(&mut self, operator: &OperatorContext, name: &str) -> Option<Box<dyn Operator>> {
        let _ = (operator, name);
        None
    }
}

/// A chain could not be built: names the operator and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operator `{operator}`: {message}")]
pub struct BuildError {
    /// The operator's uid.
    pub operator: String,
    /// What is wrong.
    pub message: String,
}

/// An edge leaving the chain, in the order of the chain's output collectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputEdge {
    /// Position in [`JobPlan::edges`].
    pub plan_edge: usize,
    /// The chain's operator that produces it.
    pub source_operator: OperatorIndex,
}

/// One subtask's chain state in a checkpoint: each operator's snapshot under its uid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSnapshot {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// The subtask that took it.
    pub subtask: SubtaskIndex,
    /// The vertex's parallelism then.
    pub parallelism: u32,
    /// `(uid, snapshot)` per operator, in chain order.
    pub operators: Vec<(String, OperatorSnapshot)>,
}

impl ChainSnapshot {
    /// The snapshot as bytes (bincode), for a checkpoint file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        crate::dataflow::state::encode_to_vec(self)
    }

    /// Reads a snapshot written by [`ChainSnapshot::to_bytes`]; corrupt bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<ChainSnapshot, String> {
        crate::dataflow::state::decode_exact(bytes)
    }
}

struct Node {
    uid: String,
    operator: Box<dyn Operator>,
    /// Positions of the chained consumers, all after this node.
    chained: Vec<usize>,
    /// Output collectors fed by this node.
    edges: Vec<usize>,
}

/// The operators of one job vertex for one subtask.
pub struct Chain {
    nodes: Vec<Node>,
    inputs: usize,
    outputs: Vec<OutputEdge>,
    subtask: SubtaskIndex,
    parallelism: u32,
    max_parallelism: u32,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uids: Vec<&str> = self.nodes.iter().map(|node| node.uid.as_str()).collect();
        f.debug_struct("Chain").field("operators", &uids).field("subtask", &self.subtask).finish()
    }
}

/// The collector of one node: its chained consumers and its output edges.
struct Downstream<'a, E> {
    nodes: &'a mut [Node],
    /// Chain position of `nodes[0]`.
    offset: usize,
    chained: &'a [usize],
    edges_out: &'a [usize],
    edges: &'a mut [E],
}

/// The operator at chain position `index` and the collector of its outputs.
#[inline]
fn split_node<'a, E>(
    nodes: &'a mut [Node],
    offset: usize,
    index: usize,
    edges: &'a mut [E],
) -> (&'a mut dyn Operator, Downstream<'a, E>) {
    let (left, right) = nodes.split_at_mut(index - offset + 1);
    let Node { operator, chained, edges: edges_out, .. } = &mut left[index - offset];
    (operator.as_mut(), Downstream { nodes: right, offset: index + 1, chained, edges_out, edges })
}

impl<E: Collector> Collector for Downstream<'_, E> {
    #[inline]
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        // The usual shapes first: one chained consumer, or one output edge.
        match (self.chained, self.edges_out) {
            ([next], []) => {
                let (operator, mut down) = split_node(self.nodes, self.offset, *next, self.edges);
                return operator.process(row, &mut down);
            }
            ([], [edge]) => return self.edges[*edge].collect(row),
            _ => {}
        }
        for &next in self.chained {
            let (operator, mut down) = split_node(self.nodes, self.offset, next, self.edges);
            operator.process(row, &mut down)?;
        }
        for &edge in self.edges_out {
            self.edges[edge].collect(row)?;
        }
        Ok(())
    }

    #[inline]
    fn collect_batch(&mut self, rows: &RowBatch) -> Result<(), OperatorError> {
        for &next in self.chained {
            let (operator, mut down) = split_node(self.nodes, self.offset, next, self.edges);
            operator.process_batch(0, rows, &mut down)?;
        }
        for &edge in self.edges_out {
            self.edges[edge].collect_batch(rows)?;
        }
        Ok(())
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        for &next in self.chained {
            let (operator, mut down) = split_node(self.nodes, self.offset, next, self.edges);
            operator.on_watermark(watermark, &mut down)?;
        }
        for &edge in self.edges_out {
            self.edges[edge].emit_watermark(watermark)?;
        }
        Ok(())
    }
}

impl Chain {
    /// Number of inputs (edges into the vertex); `process` takes an index below it.
    pub fn input_count(&self) -> usize {
        self.inputs
    }

    /// The edges leaving the chain, in the order of the collectors the methods take.
    pub fn outputs(&self) -> &[OutputEdge] {
        &self.outputs
    }

    /// The operators' uids, head first.
    pub fn operator_uids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.uid.as_str())
    }

    /// Whether the head is a source (use `poll`, not `process`).
    pub fn is_source(&mut self) -> bool {
        self.nodes[0].operator.as_source().is_some()
    }

    /// Polls the source head for at most `max_records` records.
    pub fn poll<E: Collector>(
        &mut self,
        now: Time,
        max_records: usize,
        edges: &mut [E],
    ) -> Result<PollStatus, OperatorError> {
        debug_assert_eq!(edges.len(), self.outputs.len());
        let (operator, mut down) = split_node(&mut self.nodes, 0, 0, edges);
        match operator.as_source() {
            Some(source) => source.poll(now, max_records, &mut down),
            None => Err(OperatorError::new(&self.nodes[0].uid, OperatorErrorKind::NotASource)),
        }
    }

    /// Feeds one record that arrived on input `input` to the head.
    #[inline]
    pub fn process<E: Collector>(&mut self, input: usize, row: &[Value], edges: &mut [E]) -> Result<(), OperatorError> {
        debug_assert!(input < self.inputs.max(1) && edges.len() == self.outputs.len());
        let (operator, mut down) = split_node(&mut self.nodes, 0, 0, edges);
        operator.process_input(input, row, &mut down)
    }

    /// Feeds the records of `rows`, which arrived in this order on input `input`, to the head.
    #[inline]
    pub fn process_batch<E: Collector>(
        &mut self,
        input: usize,
        rows: &RowBatch,
        edges: &mut [E],
    ) -> Result<(), OperatorError> {
        debug_assert!(input < self.inputs.max(1) && edges.len() == self.outputs.len());
        let (operator, mut down) = split_node(&mut self.nodes, 0, 0, edges);
        operator.process_batch(input, rows, &mut down)
    }

    /// Feeds a watermark (already the minimum over the inputs) to the head.
    pub fn watermark<E: Collector>(&mut self, watermark: EventTime, edges: &mut [E]) -> Result<(), OperatorError> {
        let (operator, mut down) = split_node(&mut self.nodes, 0, 0, edges);
        operator.on_watermark(watermark, &mut down)
    }

    /// Tells every operator, head first, that processing time is `now`; due timers fire.
    pub fn fire_timers<E: Collector>(&mut self, now: Time, edges: &mut [E]) -> Result<(), OperatorError> {
        for index in 0..self.nodes.len() {
            let (operator, mut down) = split_node(&mut self.nodes, 0, index, edges);
            operator.on_processing_time(now, &mut down)?;
        }
        Ok(())
    }

    /// The earliest time an operator wants `fire_timers` (or a rate-limited source `poll`).
    pub fn next_timer(&self) -> Option<Time> {
        self.nodes.iter().filter_map(|node| node.operator.next_timer()).min()
    }

    /// The inputs have ended: every operator, head first, flushes what it holds.
    pub fn end_of_input<E: Collector>(&mut self, edges: &mut [E]) -> Result<(), OperatorError> {
        for index in 0..self.nodes.len() {
            let (operator, mut down) = split_node(&mut self.nodes, 0, index, edges);
            operator.end_of_input(&mut down)?;
        }
        Ok(())
    }

    /// Snapshots every operator for `checkpoint`; with `native`, keyed state may be in its
    /// store's own format (an incremental checkpoint), else it is canonical (a savepoint).
    pub fn snapshot(&mut self, checkpoint: CheckpointId, native: bool) -> Result<ChainSnapshot, OperatorError> {
        let mut operators = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            node.operator.set_native_snapshots(native);
            operators.push((node.uid.clone(), node.operator.snapshot(checkpoint)?));
        }
        Ok(ChainSnapshot { checkpoint, subtask: self.subtask, parallelism: self.parallelism, operators })
    }

    /// Tells every operator that `checkpoint` completed (exactly-once sinks commit).
    pub fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        for node in &mut self.nodes {
            node.operator.notify_checkpoint_complete(checkpoint)?;
        }
        Ok(())
    }

    /// Each operator's counters, by uid.
    pub fn metrics(&self) -> Vec<(&str, OperatorMetrics)> {
        self.nodes.iter().map(|node| (node.uid.as_str(), node.operator.metrics())).collect()
    }

    /// Restores every operator from the snapshots of a checkpoint, before any other input.
    ///
    /// `snapshots` are chain snapshots of the checkpoint; each operator finds its state by uid.
    /// At the same parallelism this subtask's own snapshot suffices; after a rescale those of
    /// every old subtask whose key groups overlap this one's (`checkpoint::rescale`; more are
    /// allowed): keyed state is filtered by key group, the items of each old subtask are dealt
    /// out evenly among the new subtasks that read its snapshot, and scalars of all are shown.
    /// An operator without state starts empty.
    pub fn restore(&mut self, snapshots: &[ChainSnapshot]) -> Result<(), OperatorError> {
        for node in &mut self.nodes {
            let parts: Vec<(&ChainSnapshot, &OperatorSnapshot)> = snapshots
                .iter()
                .filter_map(|chain| chain.operators.iter().find(|(uid, _)| *uid == node.uid).map(|(_, s)| (chain, s)))
                .collect();
            if parts.is_empty() {
                continue;
            }
            let own = (self.subtask, self.parallelism, self.max_parallelism);
            let restored = redistribute(&node.uid, &parts, own)?;
            node.operator.restore(&restored)?;
        }
        Ok(())
    }
}

/// The state of operator `uid` for subtask `subtask` of `parallelism` (and `max_parallelism` key
/// groups), from the old subtasks'.
fn redistribute<'a>(
    uid: &str,
    parts: &[(&'a ChainSnapshot, &'a OperatorSnapshot)],
    (subtask, parallelism, max_parallelism): (SubtaskIndex, u32, u32),
) -> Result<RestoredState<'a>, OperatorError> {
    let fail = |message: String| OperatorError::new(uid, OperatorErrorKind::Snapshot(message));
    let old_parallelism = parts[0].0.parallelism;
    if parts.iter().any(|(chain, _)| chain.parallelism != old_parallelism) {
        return Err(fail("the snapshots disagree on the old parallelism".to_string()));
    }
    if old_parallelism == parallelism
        && let Some((_, own)) = parts.iter().find(|(chain, _)| chain.subtask == subtask)
    {
        let state = RestoredState {
            keyed: own.keyed.iter().collect(),
            items: own.items.iter().map(Vec::as_slice).collect(),
            scalars: own.scalars.iter().map(Vec::as_slice).collect(),
            rescaled: false,
        };
        return Ok(state);
    }
    let subtasks: BTreeSet<u32> = parts.iter().map(|(chain, _)| chain.subtask.0).collect();
    let in_range = subtasks.last().is_none_or(|&last| last < old_parallelism);
    if subtasks.len() != parts.len() || !in_range || old_parallelism == 0 || old_parallelism > max_parallelism {
        return Err(fail(format!("the state of subtasks {subtasks:?} of {old_parallelism} cannot be combined")));
    }
    let mut ordered: Vec<&(&ChainSnapshot, &OperatorSnapshot)> = parts.iter().collect();
    ordered.sort_by_key(|(chain, _)| chain.subtask);
    let mut mine = Vec::new();
    for (chain, state) in &ordered {
        let (old, count) = (chain.subtask.0, state.items.len());
        let share = share_of_items(count, old, old_parallelism, subtask.0, parallelism, max_parallelism);
        mine.extend(state.items[share].iter().map(Vec::as_slice));
    }
    Ok(RestoredState {
        keyed: ordered.iter().filter_map(|(_, s)| s.keyed.as_ref()).collect(),
        items: mine,
        scalars: ordered.iter().filter_map(|(_, s)| s.scalars.as_deref()).collect(),
        rescaled: old_parallelism != parallelism,
    })
}

/// Builds the chain of `vertex` for subtask `subtask`.
pub fn build_chain(
    plan: &JobPlan,
    vertex: VertexIndex,
    subtask: SubtaskIndex,
    options: &ChainOptions,
    connectors: &mut dyn Connectors,
) -> Result<Chain, BuildError> {
    let job_vertex = plan.vertex(vertex);
    assert!(subtask.0 < job_vertex.parallelism, "subtask {subtask} of {}", job_vertex.parallelism);
    let graph = &plan.job.graph;
    let inputs: Vec<&JobEdge> = plan.inputs_of(vertex).collect();
    let outputs: Vec<OutputEdge> = (plan.edges.iter().enumerate())
        .filter(|(_, edge)| edge.source == vertex)
        .map(|(plan_edge, edge)| OutputEdge { plan_edge, source_operator: edge.source_operator })
        .collect();
    let mut nodes = Vec::with_capacity(job_vertex.operators.len());
    for (position, &operator) in job_vertex.operators.iter().enumerate() {
        let context = OperatorContext {
            uid: graph.operator(operator).uid.clone(),
            subtask,
            parallelism: job_vertex.parallelism,
            max_parallelism: job_vertex.max_parallelism,
            attempt: options.attempt,
        };
        let site = Site { plan, operator, context: &context, head_inputs: &inputs, options };
        let built = site.build(position == 0, connectors)?;
        let chained: Vec<usize> = graph
            .outputs_of(operator)
            .filter(|edge| plan.vertex_of[edge.target.index()] == vertex)
            .filter_map(|edge| job_vertex.operators.iter().position(|&o| o == edge.target))
            .collect();
        assert!(chained.iter().all(|&next| next > position), "chained consumers follow their producer");
        let edges = (outputs.iter().enumerate()).filter(|(_, out)| out.source_operator == operator).map(|(k, _)| k);
        nodes.push(Node { uid: context.uid.clone(), operator: built, chained, edges: edges.collect() });
    }
    let (parallelism, max_parallelism) = (job_vertex.parallelism, job_vertex.max_parallelism);
    Ok(Chain { nodes, inputs: inputs.len(), outputs, subtask, parallelism, max_parallelism })
}

/// One operator being built, with what it needs from the plan.
struct Site<'a> {
    plan: &'a JobPlan,
    operator: OperatorIndex,
    context: &'a OperatorContext,
    head_inputs: &'a [&'a JobEdge],
    options: &'a ChainOptions,
}

impl Site<'_> {
    fn fail(&self, message: impl Into<String>) -> BuildError {
        BuildError { operator: self.context.uid.clone(), message: message.into() }
    }

    fn schema_of(&self, operator: OperatorIndex) -> Result<&Schema, BuildError> {
        let schema = self.plan.job.schemas[operator.index()].as_ref();
        schema.ok_or_else(|| self.fail("its input comes from a Rust operator with typed records"))
    }

    /// The schema of the rows this operator receives.
    fn input_schema(&self, is_head: bool) -> Result<Schema, BuildError> {
        let graph = &self.plan.job.graph;
        let producer = match is_head {
            true => self.head_inputs.first().map(|edge| edge.source_operator),
            false => graph.inputs_of(self.operator).next().map(|edge| edge.source),
        };
        match producer {
            Some(producer) => self.schema_of(producer).cloned(),
            None => Ok(Schema::default()),
        }
    }

    fn compile(&self, source: &str, schema: &Schema) -> Result<Expr, BuildError> {
        expr::compile(source, schema).map_err(|error| self.fail(format!("bad expression {source:?}: {error}")))
    }

    fn build(&self, is_head: bool, connectors: &mut dyn Connectors) -> Result<Box<dyn Operator>, BuildError> {
        let graph = &self.plan.job.graph;
        let kind = &graph.operator(self.operator).kind;
        let input = self.input_schema(is_head)?;
        let context = self.context.clone();
        let io = |error: String| self.fail(format!("io: {error}"));
        Ok(match kind {
            OperatorKind::Sequence { from, to, rate_per_second } => {
                Box::new(IndexSource::sequence(context, *from, *to, *rate_per_second, SequenceRows::new()))
            }
            OperatorKind::Generator { count, rate_per_second, fields } => {
                let index = Schema::new([("i", Type::Int)]);
                let exprs = fields.iter().map(|f| self.compile(&f.expr, &index)).collect::<Result<_, _>>()?;
                let rows = GeneratorRows::new(context.clone(), exprs);
                Box::new(IndexSource::generator(context, *count, *rate_per_second, rows))
            }
            OperatorKind::FileSource { path, format, columns } => {
                let reader = connectors.source_reader(&context, super::ReaderRequest::File { path }).map_err(io)?;
                let format = LineFormat::new(*format, columns).map_err(|message| self.fail(message))?;
                Box::new(LineSource::new(context, reader, format))
            }
            OperatorKind::SocketSource { host, port } => {
                let request = super::ReaderRequest::Socket { host, port: *port };
                let reader = connectors.source_reader(&context, request).map_err(io)?;
                Box::new(LineSource::new(context, reader, LineFormat::Text))
            }
            OperatorKind::Map { fields } => {
                let exprs = fields.iter().map(|f| self.compile(&f.expr, &input)).collect::<Result<_, _>>()?;
                Box::new(Map::new(context, exprs))
            }
            OperatorKind::Filter { predicate } => Box::new(Filter::new(context, self.compile(predicate, &input)?)),
            OperatorKind::FlatMap { expr, .. } => Box::new(FlatMap::new(context, self.compile(expr, &input)?)),
            OperatorKind::Watermarks { timestamp, out_of_orderness, .. } => {
                let timestamp = self.compile(timestamp, &input)?;
                let interval = self.options.auto_watermark_interval;
                Box::new(WatermarkAssigner::new(context, timestamp, *out_of_orderness, interval))
            }
            OperatorKind::Window { .. } | OperatorKind::Aggregate { .. } => {
                self.keyed_operator(kind, &input, is_head, context, connectors)?
            }
            OperatorKind::Discard => Box::new(Discard),
            OperatorKind::Print { prefix } => {
                Box::new(Print::new(context.clone(), prefix, connectors.line_writer(&context).map_err(io)?))
            }
            OperatorKind::FileSink { path, format } => {
                let store = connectors.part_store(&context, path).map_err(io)?;
                let format = SinkFormat::new(*format, &input);
                Box::new(FileSink::new(context, format, store, self.options.checkpointing))
            }
            OperatorKind::Custom { name, .. } => match connectors.custom_operator(&context, name) {
                Some(operator) => operator,
                None => return Err(self.fail(format!("no Rust operator is registered as `{name}`"))),
            },
        })
    }

    /// A window or a running aggregation over the keyed state backend the job chose.
    fn keyed_operator(
        &self,
        kind: &OperatorKind,
        input: &Schema,
        is_head: bool,
        context: OperatorContext,
        connectors: &mut dyn Connectors,
    ) -> Result<Box<dyn Operator>, BuildError> {
        let keys = self.keys(is_head)?;
        Ok(match kind {
            OperatorKind::Window { assigner, allowed_lateness, aggregates } => {
                let timestamps = match assigner.time() {
                    Some(crate::job::TimeDomain::Event) => self.timestamps()?,
                    _ => Vec::new(),
                };
                let settings = WindowSettings { assigner: *assigner, allowed_lateness: *allowed_lateness };
                let parts = (self.aggregates(aggregates, input)?, keys, timestamps);
                match self.keyed_state(&context, connectors)? {
                    KeyedState::Heap(backend) => Box::new(WindowOperator::new(context, settings, parts, backend)),
                    KeyedState::Store(backend) => Box::new(WindowOperator::new(context, settings, parts, backend)),
                }
            }
            OperatorKind::Aggregate { aggregates } => {
                let specs = self.aggregates(aggregates, input)?;
                match self.keyed_state(&context, connectors)? {
                    KeyedState::Heap(backend) => Box::new(RunningAggregate::new(context, specs, keys, backend)),
                    KeyedState::Store(backend) => Box::new(RunningAggregate::new(context, specs, keys, backend)),
                }
            }
            other => unreachable!("{other:?} is not a keyed operator"),
        })
    }

    /// The keyed state backend of a keyed operator instance, as `state.backend.type` says.
    fn keyed_state(
        &self,
        context: &OperatorContext,
        connectors: &mut dyn Connectors,
    ) -> Result<KeyedState, BuildError> {
        let (max_parallelism, range) = (context.max_parallelism, context.key_group_range());
        Ok(match self.options.state_backend {
            StateBackendKind::Heap => KeyedState::Heap(HeapKeyedStateBackend::new(max_parallelism, range)),
            StateBackendKind::RocksDb => {
                let store = connectors
                    .keyed_state_store(context)
                    .map_err(|error| self.fail(format!("cannot open the operator's RocksDB state: {error}")))?;
                KeyedState::Store(StoreKeyedStateBackend::new(max_parallelism, range, store))
            }
        })
    }

    fn aggregates(
        &self,
        aggregates: &[crate::job::NamedExpr],
        input: &Schema,
    ) -> Result<Vec<AggregateSpec>, BuildError> {
        let compile = |named: &crate::job::NamedExpr| {
            expr::compile_aggregate(&named.expr, input)
                .map_err(|error| self.fail(format!("bad aggregate {:?}: {error}", named.expr)))
        };
        aggregates.iter().map(compile).collect()
    }

    /// The key expression of every input (keyed operators are always chain heads).
    fn keys(&self, is_head: bool) -> Result<Vec<Expr>, BuildError> {
        if !is_head || self.head_inputs.is_empty() {
            return Err(self.fail("a keyed operator must read a key_by (hash) edge"));
        }
        let key_of = |edge: &&JobEdge| match &edge.partitioner {
            Partitioner::Hash { key } => self.compile(key, self.schema_of(edge.source_operator)?),
            other => Err(self.fail(format!("input partitioned by {} is not keyed", other.ship_strategy()))),
        };
        self.head_inputs.iter().map(key_of).collect()
    }

    /// The timestamp expression of every input: the nearest upstream `watermarks` operator's
    /// expression, compiled against the rows this operator receives on that input.
    fn timestamps(&self) -> Result<Vec<Expr>, BuildError> {
        let graph = &self.plan.job.graph;
        let mut timestamps = Vec::with_capacity(self.head_inputs.len());
        for edge in self.head_inputs {
            let mut frontier = vec![edge.source_operator];
            let mut found = None;
            while found.is_none() && !frontier.is_empty() {
                let mut next = Vec::new();
                for operator in frontier {
                    match &graph.operator(operator).kind {
                        OperatorKind::Watermarks { timestamp, .. } => found = found.or(Some(timestamp)),
                        _ => next.extend(graph.inputs_of(operator).map(|input| input.source)),
                    }
                }
                frontier = next;
            }
            let Some(timestamp) = found else {
                return Err(self.fail("an event-time window needs a `watermarks` operator upstream"));
            };
            let schema = self.schema_of(edge.source_operator)?;
            let compiled = expr::compile(timestamp, schema).map_err(|error| {
                self.fail(format!(
                    "the event timestamp {timestamp:?} must be computable from the window's input: {error}"
                ))
            })?;
            timestamps.push(compiled);
        }
        Ok(timestamps)
    }
}

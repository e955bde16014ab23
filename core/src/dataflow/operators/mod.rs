//! Operators on rows and the chains that run them inside one task.
//!
//! This module owns the operator contract ([`Operator`], [`SourceOperator`], [`Collector`]),
//! the built-in operators (every [`OperatorKind`](crate::job::OperatorKind) but `custom`) and
//! the operator chain ([`Chain`], built by [`build_chain`] from a planned job vertex).
//!
//! - An operator is a machine fed one element at a time: a record ([`Operator::process`]), a
//!   watermark, the current processing time, a checkpoint, a completed checkpoint, the end of
//!   its input. What it emits goes to the [`Collector`] it is handed, which in a chain calls
//!   the next operators directly: no queue, no copy; rows are lent (`&[Value]`) and operators
//!   write their results into scratch rows they reuse.
//! - Processing time is an input: [`Chain::fire_timers`] passes `now` to every operator, which
//!   fires what is due and remembers `now` as its processing time; [`Operator::next_timer`]
//!   says when it next wants to be called. An early or repeated call does nothing.
//! - Sources ([`SourceOperator::poll`]) emit at most the records asked for, so the task
//!   interleaves them with barriers and timers; their positions are checkpointed.
//! - IO is injected: file and socket sources read through a [`SourceReader`], the print sink
//!   writes through a [`LineWriter`], the file sink writes part files through a [`PartStore`];
//!   the driver supplies them ([`Connectors`]) and the core does no IO.
//!
//! State a snapshot carries ([`OperatorSnapshot`]) comes in three kinds that redistribute
//! differently when a job is restored at another parallelism: keyed state by key group (each
//! new subtask takes the groups it owns), items (source splits: dealt out among the new
//! subtasks, each item to exactly one) and scalars (watermarks and the like: every new subtask
//! sees those of all old subtasks and combines them). At the same parallelism every subtask
//! gets back exactly its own.
//!
//! Records travel in batches ([`RowBatch`]): [`Operator::process_batch`] and
//! [`Collector::collect_batch`] default to a loop over the rows, and the operators on the hot
//! path (sources, `map`, keyed windows) and the chain take a batch in one call, so the calls
//! through trait objects are paid per batch rather than per record. A batch is the same
//! records in the same order: an operator that fails on a record has emitted the records
//! before it, as one fed record by record would have.
//!
//! The record path allocates nothing for int and float rows once keys are known: operators
//! write into scratch rows they keep, plain field references are read in place, `count`,
//! `sum` and `avg` are folded inline (other aggregates through `expr`'s accumulators), and an
//! int or float replaces one in place (`put`) instead of moving a whole `Value`, which on
//! this path stalls store forwarding. The benchmark is `tests/windowed_sum_bench.rs`.

mod aggregate;
mod chain;
mod sinks;
mod sources;
mod transform;
mod window;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use chain::{BuildError, Chain, ChainOptions, ChainSnapshot, Connectors, OutputEdge, ReaderRequest, build_chain};
pub use sinks::{LineWriter, PENDING_PART_PREFIX, PartStore, SinkIoError};
pub use sources::{ReadOutcome, ReaderError, SourceReader};

use super::EventTime;
use super::state::{KeyGroupRange, KeyedSnapshot, StateError};
use crate::expr::EvalError;
use crate::ids::{CheckpointId, SubtaskIndex};
use crate::row::{RowBatch, Value};
use crate::time::Time;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an operator's output goes: the next operators of its chain and the edges that leave
/// the task.
pub trait Collector {
    /// Emits one record; the row is lent for the duration of the call.
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError>;
    /// Emits the rows of `rows` in order, as many `collect` calls would (the default).
    #[inline]
    fn collect_batch(&mut self, rows: &RowBatch) -> Result<(), OperatorError> {
        for row in rows.iter() {
            self.collect(row)?;
        }
        Ok(())
    }
    /// Emits a watermark: no record older than `watermark` follows.
    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError>;
}

impl<C: Collector + ?Sized> Collector for &mut C {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        (**self).collect(row)
    }

    fn collect_batch(&mut self, rows: &RowBatch) -> Result<(), OperatorError> {
        (**self).collect_batch(rows)
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        (**self).emit_watermark(watermark)
    }
}

impl<C: Collector + ?Sized> Collector for Box<C> {
    fn collect(&mut self, row: &[Value]) -> Result<(), OperatorError> {
        (**self).collect(row)
    }

    fn collect_batch(&mut self, rows: &RowBatch) -> Result<(), OperatorError> {
        (**self).collect_batch(rows)
    }

    fn emit_watermark(&mut self, watermark: EventTime) -> Result<(), OperatorError> {
        (**self).emit_watermark(watermark)
    }
}

/// An operator on rows, driven by its chain. Every method but `process` has a default that
/// suits a stateless operator.
pub trait Operator: Send {
    /// Handles one record.
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError>;

    /// Handles one record that arrived on input `input` of the chain (only the head of a
    /// chain has several inputs; keyed operators pick that input's key expression).
    fn process_input(&mut self, input: usize, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        let _ = input;
        self.process(row, out)
    }

    /// Handles the records of `rows`, in order, that arrived on input `input`: as many
    /// `process_input` calls (the default), which an operator may do in one pass.
    #[inline]
    fn process_batch(&mut self, input: usize, rows: &RowBatch, out: &mut dyn Collector) -> Result<(), OperatorError> {
        for row in rows.iter() {
            self.process_input(input, row, out)?;
        }
        Ok(())
    }

    /// Handles a watermark; the default forwards it.
    fn on_watermark(&mut self, watermark: EventTime, out: &mut dyn Collector) -> Result<(), OperatorError> {
        out.emit_watermark(watermark)
    }

    /// Processing time is now `now`: fire what is due.
    fn on_processing_time(&mut self, now: Time, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let _ = (now, out);
        Ok(())
    }

    /// When the operator next wants `on_processing_time` (or, for a source, `poll`).
    fn next_timer(&self) -> Option<Time> {
        None
    }

    /// Takes a snapshot for `checkpoint` (the barrier has reached the operator).
    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let _ = checkpoint;
        Ok(OperatorSnapshot::default())
    }

    /// Whether the next snapshot's keyed state may be in its store's own format (see
    /// [`crate::dataflow::state::KeyedStateBackend::set_native_snapshots`]).
    fn set_native_snapshots(&mut self, native: bool) {
        let _ = native;
    }

    /// Restores from a snapshot, before any other input.
    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        let _ = state;
        Ok(())
    }

    /// Checkpoint `checkpoint` completed on every task.
    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OperatorError> {
        let _ = checkpoint;
        Ok(())
    }

    /// The operator's input has ended: flush what it holds.
    fn end_of_input(&mut self, out: &mut dyn Collector) -> Result<(), OperatorError> {
        let _ = out;
        Ok(())
    }

    /// Counters for metrics.
    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// This operator as a source, if it is one.
    fn as_source(&mut self) -> Option<&mut dyn SourceOperator> {
        None
    }
}

/// A source: emits records when polled.
pub trait SourceOperator {
    /// Emits at most `max_records` records; `now` paces rate-limited sources.
    fn poll(&mut self, now: Time, max_records: usize, out: &mut dyn Collector) -> Result<PollStatus, OperatorError>;
}

/// What a source can do after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// More records are ready now.
    Available,
    /// Nothing now: poll again at `next_timer` or when the reader has data.
    Idle,
    /// The source has emitted everything.
    Finished,
}

/// Counters an operator keeps for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Records that arrived after their windows' allowed lateness and were dropped.
    pub late_records_dropped: u64,
}

/// Who an operator instance is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorContext {
    /// The operator's uid (the job file's `id`).
    pub uid: String,
    /// This instance.
    pub subtask: SubtaskIndex,
    /// Instances of the operator.
    pub parallelism: u32,
    /// Key groups of the job (for keyed state).
    pub max_parallelism: u32,
    /// The attempt number of the task running this instance.
    pub attempt: u32,
}

impl OperatorContext {
    /// The key groups this instance owns.
    pub fn key_group_range(&self) -> KeyGroupRange {
        KeyGroupRange::for_subtask(self.max_parallelism, self.parallelism, self.subtask)
    }

    /// An error of this operator.
    pub fn error(&self, kind: impl Into<OperatorErrorKind>) -> OperatorError {
        OperatorError::new(&self.uid, kind.into())
    }
}

/// One operator's state in a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// Keyed state, per key group.
    pub keyed: Option<KeyedSnapshot>,
    /// Items such as source splits or pending part files; dealt out on a rescale.
    pub items: Vec<Vec<u8>>,
    /// Facts of the instance (a watermark, a counter); shown to every instance on a rescale.
    pub scalars: Option<Vec<u8>>,
}

/// The state an operator instance restores from, already redistributed.
#[derive(Clone, Debug, Default)]
pub struct RestoredState<'a> {
    /// Keyed snapshots of every old instance; the backend takes the groups it owns.
    pub keyed: Vec<&'a KeyedSnapshot>,
    /// The items this instance owns.
    pub items: Vec<&'a [u8]>,
    /// Its own scalars at the same parallelism; every old instance's after a rescale.
    pub scalars: Vec<&'a [u8]>,
    /// Whether the parallelism changed.
    pub rescaled: bool,
}

/// A failure of one operator, naming it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("operator `{}`: {}", .0.operator, .0.kind)]
pub struct OperatorError(Box<OperatorFailure>);

/// The operator and what went wrong (boxed in [`OperatorError`] to keep results small).
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorFailure {
    /// The operator's uid.
    pub operator: String,
    /// What happened.
    pub kind: OperatorErrorKind,
}

/// What went wrong in an operator.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OperatorErrorKind {
    /// An expression failed on a record.
    #[error("{0}")]
    Eval(#[from] EvalError),
    /// Keyed state refused an access or a restore.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// A record from outside (a file line, a socket line) could not be read.
    #[error("bad input record: {0}")]
    Record(String),
    /// The injected reader, writer or part store failed.
    #[error("io: {0}")]
    Io(String),
    /// A snapshot could not be taken or restored.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A collector outside the chain (a record writer) failed.
    #[error("output: {0}")]
    Output(String),
    /// A record was given to a source.
    #[error("a source takes no input records")]
    NotAnInput,
    /// A chain without a source head was polled.
    #[error("the chain's head is not a source")]
    NotASource,
}

impl OperatorError {
    /// An error of operator `operator`.
    pub fn new(operator: &str, kind: OperatorErrorKind) -> OperatorError {
        OperatorError(Box::new(OperatorFailure { operator: operator.to_string(), kind }))
    }

    /// The operator's uid.
    pub fn operator(&self) -> &str {
        &self.0.operator
    }

    /// What went wrong.
    pub fn kind(&self) -> &OperatorErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for PollStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PollStatus::Available => "available",
            PollStatus::Idle => "idle",
            PollStatus::Finished => "finished",
        })
    }
}

/// Stores an evaluated value into `slot`. An int or float replaces one in place, reading only
/// the payload: building the whole enum in a temporary and copying it stalls store forwarding,
/// which on the per-record path costs more than the rest of a simple operator.
#[inline(always)]
fn put(slot: &mut Value, result: Result<Value, EvalError>) -> Result<(), EvalError> {
    match (&mut *slot, &result) {
        (Value::Int(target), Ok(Value::Int(x))) => *target = *x,
        (Value::Float(target), Ok(Value::Float(x))) => *target = *x,
        _ => *slot = result?,
    }
    Ok(())
}

/// Sets `slot` to the int `x`, in place when it holds an int (see [`put`]).
#[inline(always)]
fn put_int(slot: &mut Value, x: i64) {
    match slot {
        Value::Int(target) => *target = x,
        other => *other = Value::Int(x),
    }
}

/// Milliseconds in `span`, as event time counts them.
fn millis(span: crate::time::Duration) -> EventTime {
    i64::try_from(span.as_millis()).unwrap_or(EventTime::MAX)
}

/// Encodes operator scalars or items; a failure names the operator.
fn encode_state<T: Serialize>(context: &OperatorContext, value: &T) -> Result<Vec<u8>, OperatorError> {
    super::state::encode_to_vec(value).map_err(|message| context.error(OperatorErrorKind::Snapshot(message)))
}

/// Decodes operator scalars or items from a checkpoint (outside input: errors are typed).
fn decode_state<T: serde::de::DeserializeOwned>(context: &OperatorContext, bytes: &[u8]) -> Result<T, OperatorError> {
    super::state::decode_exact(bytes).map_err(|message| context.error(OperatorErrorKind::Snapshot(message)))
}

//! The job graph's types.

use crate::ids::OperatorIndex;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Flink's upper bound for max parallelism (the number of key groups).
pub const MAX_PARALLELISM_LIMIT: u32 = 32_768;

/// A job as the user described it, before chaining and scheduling.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct JobGraph {
    /// The job's name, shown in the REST API and the UI.
    pub name: String,
    /// Default parallelism for operators that set none; `None` uses `parallelism.default`.
    pub parallelism: Option<u32>,
    /// Job-wide max parallelism (number of key groups); `None` derives it as Flink does.
    pub max_parallelism: Option<u32>,
    /// Operators in definition order; [`OperatorIndex`] indexes this vector.
    pub operators: Vec<Operator>,
    /// Edges from producer to consumer.
    pub edges: Vec<Edge>,
    /// Configuration keys the job sets for itself (a job file's `[config]` table).
    pub config: BTreeMap<String, String>,
}

/// One operator of the job graph.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// The user's stable id (a job file's `id`, Flink's `uid`); unique within the job.
    pub uid: String,
    /// Display name; defaults to a name derived from the kind.
    pub name: String,
    /// What the operator does.
    pub kind: OperatorKind,
    /// Parallelism; `None` takes the job's default.
    pub parallelism: Option<u32>,
    /// Max parallelism; `None` takes the job's.
    pub max_parallelism: Option<u32>,
    /// Slot sharing group; `None` inherits the inputs' group when they agree, else `default`.
    pub slot_sharing_group: Option<String>,
    /// Whether the operator may be chained to its neighbours.
    pub chaining: ChainingStrategy,
}

/// Flink's chaining strategies.
#[derive(Clone, Copy, Debug, Hash, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainingStrategy {
    /// Chains to its predecessor and successor where the other rules allow (the default).
    #[default]
    Always,
    /// Starts a new chain but lets successors chain to it (`startNewChain()`).
    Head,
    /// Never chains (`disableChaining()`).
    Never,
}

/// How records move along an edge from producer subtasks to consumer subtasks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioner {
    /// Subtask i sends to subtask i; needs equal parallelism.
    Forward,
    /// By key: key → key group → subtask, as Flink's key-by.
    Hash {
        /// The key, as an expression over the producer's rows or the name of a Rust key function.
        key: String,
    },
    /// Round robin over all consumers.
    Rebalance,
    /// Round robin over a local subset of consumers (pointwise).
    Rescale,
    /// Every record to every consumer.
    Broadcast,
    /// Uniformly random consumer, from a seeded generator.
    Shuffle,
}

impl Partitioner {
    /// The name Flink's plan JSON uses in `ship_strategy`.
    pub fn ship_strategy(&self) -> &'static str {
        match self {
            Partitioner::Forward => "FORWARD",
            Partitioner::Hash { .. } => "HASH",
            Partitioner::Rebalance => "REBALANCE",
            Partitioner::Rescale => "RESCALE",
            Partitioner::Broadcast => "BROADCAST",
            Partitioner::Shuffle => "SHUFFLE",
        }
    }

    /// Whether subtasks connect pointwise (forward, rescale) rather than all-to-all.
    pub fn is_pointwise(&self) -> bool {
        matches!(self, Partitioner::Forward | Partitioner::Rescale)
    }
}

/// An edge of the job graph.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The producing operator.
    pub source: OperatorIndex,
    /// The consuming operator.
    pub target: OperatorIndex,
    /// The partitioner; `None` lets planning choose forward for equal parallelism, else rebalance.
    pub partitioner: Option<Partitioner>,
}

/// An output field computed by an expression: `name = "expression"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedExpr {
    /// The output field's name.
    pub name: String,
    /// The expression's source text.
    pub expr: String,
}

/// Text formats of the file source and sink.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// One record per line; a source emits the field `line`.
    Text,
    /// Comma-separated values.
    Csv,
    /// One JSON object per line (sinks only).
    Json,
}

/// Processing time (the machine's clock) or event time (timestamps in the data, with watermarks).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeDomain {
    /// Windows close by the TaskManager's clock.
    Processing,
    /// Windows close when the watermark passes their end.
    Event,
}

/// Which records fall into which window.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowAssigner {
    /// Every `size` records of a key (Flink's `countWindow(size)`).
    Count {
        /// Records per window.
        size: u64,
    },
    /// Fixed, non-overlapping windows of `size`.
    Tumbling {
        /// Window length.
        size: Duration,
        /// Event or processing time.
        time: TimeDomain,
    },
    /// Windows of `size` starting every `slide`.
    Sliding {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        slide: Duration,
        /// Event or processing time.
        time: TimeDomain,
    },
    /// A key's window closes after `gap` without records.
    Session {
        /// Inactivity that closes a session.
        gap: Duration,
        /// Event or processing time.
        time: TimeDomain,
    },
}

impl WindowAssigner {
    /// The time domain, `None` for count windows.
    pub fn time(&self) -> Option<TimeDomain> {
        match self {
            WindowAssigner::Count { .. } => None,
            WindowAssigner::Tumbling { time, .. }
            | WindowAssigner::Sliding { time, .. }
            | WindowAssigner::Session { time, .. } => Some(*time),
        }
    }
}

/// A CSV source column: name and declared type (`any` when not declared).
#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The field name.
    pub name: String,
    /// The declared type.
    pub ty: crate::row::Type,
}

/// What an operator does, with its parameters.
#[derive(Clone, Debug, Hash, PartialEq, Serialize, Deserialize)]
pub enum OperatorKind {
    /// Emits the integers `from..=to` as field `x`, split across subtasks.
    Sequence {
        /// First value.
        from: i64,
        /// Last value (inclusive, as Flink's `fromSequence`).
        to: i64,
        /// Records per second per subtask; `None` is as fast as possible.
        rate_per_second: Option<u64>,
    },
    /// Emits rows computed from the record index `i`; unbounded when `count` is `None`.
    Generator {
        /// Number of records; `None` runs until cancelled or stopped.
        count: Option<u64>,
        /// Records per second per subtask; `None` is as fast as possible.
        rate_per_second: Option<u64>,
        /// Output fields as expressions over `i`.
        fields: Vec<NamedExpr>,
    },
    /// Reads a text or CSV file.
    FileSource {
        /// The file's path.
        path: String,
        /// Text (field `line`) or CSV (the `columns`).
        format: FileFormat,
        /// CSV columns; empty for text.
        columns: Vec<Column>,
    },
    /// Reads lines from a TCP socket (field `line`); not replayable, so at-most-once on failure.
    SocketSource {
        /// Host to connect to.
        host: String,
        /// Port to connect to.
        port: u16,
    },
    /// Computes new fields from each record.
    Map {
        /// The output fields.
        fields: Vec<NamedExpr>,
    },
    /// Keeps the records for which the predicate is true.
    Filter {
        /// A boolean expression.
        predicate: String,
    },
    /// Evaluates a list expression and emits one record per element, in field `output`.
    FlatMap {
        /// An expression giving a list.
        expr: String,
        /// The name of the output field holding each element.
        output: String,
    },
    /// Assigns event timestamps and emits bounded-out-of-orderness watermarks.
    Watermarks {
        /// Expression giving each record's event time in milliseconds.
        timestamp: String,
        /// How late a record may be relative to the highest timestamp seen.
        out_of_orderness: Duration,
        /// A subtask without records for this long is marked idle; `None` never.
        idle_timeout: Option<Duration>,
    },
    /// Keyed windows with aggregations; output is the key, the aggregates and the window bounds.
    Window {
        /// Which records form a window.
        assigner: WindowAssigner,
        /// How late (event time) a record may arrive and still update its window.
        allowed_lateness: Duration,
        /// The aggregations, as `name = "sum(v)"`.
        aggregates: Vec<NamedExpr>,
    },
    /// A running keyed aggregation that emits the updated result for every record.
    Aggregate {
        /// The aggregations, as `name = "count()"`.
        aggregates: Vec<NamedExpr>,
    },
    /// Drops every record.
    Discard,
    /// Writes records to standard output.
    Print {
        /// Text printed before each record.
        prefix: String,
    },
    /// Exactly-once file sink: part files committed when a checkpoint completes.
    FileSink {
        /// The output directory.
        path: String,
        /// How records are written.
        format: FileFormat,
    },
    /// An operator a Rust program registered under `name`.
    Custom {
        /// The registered name.
        name: String,
        /// Whether it takes no input (a source).
        is_source: bool,
        /// Whether it emits nothing (a sink).
        is_sink: bool,
        /// The fields of the rows it emits, when it declares them (the builder's `returns`);
        /// `None`: typed records that only Rust operators read.
        #[serde(default)]
        output: Option<Vec<Column>>,
    },
}

impl OperatorKind {
    /// The type name used in job files.
    pub fn type_name(&self) -> &'static str {
        match self {
            OperatorKind::Sequence { .. } => "sequence",
            OperatorKind::Generator { .. } => "generator",
            OperatorKind::FileSource { .. } => "file_source",
            OperatorKind::SocketSource { .. } => "socket_source",
            OperatorKind::Map { .. } => "map",
            OperatorKind::Filter { .. } => "filter",
            OperatorKind::FlatMap { .. } => "flat_map",
            OperatorKind::Watermarks { .. } => "watermarks",
            OperatorKind::Window { .. } => "window",
            OperatorKind::Aggregate { .. } => "aggregate",
            OperatorKind::Discard => "discard",
            OperatorKind::Print { .. } => "print",
            OperatorKind::FileSink { .. } => "file_sink",
            OperatorKind::Custom { .. } => "custom",
        }
    }

    /// Whether the operator takes no input.
    pub fn is_source(&self) -> bool {
        match self {
            OperatorKind::Sequence { .. }
            | OperatorKind::Generator { .. }
            | OperatorKind::FileSource { .. }
            | OperatorKind::SocketSource { .. } => true,
            OperatorKind::Custom { is_source, .. } => *is_source,
            _ => false,
        }
    }

    /// Whether the operator emits nothing downstream.
    pub fn is_sink(&self) -> bool {
        match self {
            OperatorKind::Discard | OperatorKind::Print { .. } | OperatorKind::FileSink { .. } => true,
            OperatorKind::Custom { is_sink, .. } => *is_sink,
            _ => false,
        }
    }

    /// Whether the operator needs a keyed input (a hash edge).
    pub fn needs_key(&self) -> bool {
        matches!(self, OperatorKind::Window { .. } | OperatorKind::Aggregate { .. })
    }

    /// The default display name, in the style of Flink's vertex names (`Source: Sequence`).
    pub fn default_name(&self) -> String {
        match self {
            OperatorKind::Sequence { .. } => "Source: Sequence".to_string(),
            OperatorKind::Generator { .. } => "Source: Generator".to_string(),
            OperatorKind::FileSource { .. } => "Source: File".to_string(),
            OperatorKind::SocketSource { .. } => "Source: Socket".to_string(),
            OperatorKind::Map { .. } => "Map".to_string(),
            OperatorKind::Filter { .. } => "Filter".to_string(),
            OperatorKind::FlatMap { .. } => "Flat Map".to_string(),
            OperatorKind::Watermarks { .. } => "Timestamps/Watermarks".to_string(),
            OperatorKind::Window { assigner, .. } => format!("Window({})", assigner_label(assigner)),
            OperatorKind::Aggregate { .. } => "Keyed Aggregation".to_string(),
            OperatorKind::Discard => "Sink: Discard".to_string(),
            OperatorKind::Print { .. } => "Sink: Print".to_string(),
            OperatorKind::FileSink { .. } => "Sink: File".to_string(),
            OperatorKind::Custom { name, is_source, is_sink, .. } => match (is_source, is_sink) {
                (true, _) => format!("Source: {name}"),
                (_, true) => format!("Sink: {name}"),
                _ => name.clone(),
            },
        }
    }
}

fn assigner_label(assigner: &WindowAssigner) -> String {
    let domain = |time: &TimeDomain| match time {
        TimeDomain::Event => "EventTime",
        TimeDomain::Processing => "ProcessingTime",
    };
    match assigner {
        WindowAssigner::Count { size } => format!("Count {size}"),
        WindowAssigner::Tumbling { size, time } => format!("Tumbling{} {size}", domain(time)),
        WindowAssigner::Sliding { size, slide, time } => {
            format!("Sliding{} {size} every {slide}", domain(time))
        }
        WindowAssigner::Session { gap, time } => format!("Session{} gap {gap}", domain(time)),
    }
}

impl fmt::Display for ChainingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainingStrategy::Always => "always",
            ChainingStrategy::Head => "head",
            ChainingStrategy::Never => "never",
        })
    }
}

impl JobGraph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> JobGraph {
        JobGraph {
            name: name.into(),
            parallelism: None,
            max_parallelism: None,
            operators: Vec::new(),
            edges: Vec::new(),
            config: BTreeMap::new(),
        }
    }

    /// The operator at `index`.
    pub fn operator(&self, index: OperatorIndex) -> &Operator {
        &self.operators[index.index()]
    }

    /// Indexes of the edges into `target`, in edge order.
    pub fn inputs_of(&self, target: OperatorIndex) -> impl Iterator<Item = &Edge> + '_ {
        self.edges.iter().filter(move |edge| edge.target == target)
    }

    /// Edges out of `source`, in edge order.
    pub fn outputs_of(&self, source: OperatorIndex) -> impl Iterator<Item = &Edge> + '_ {
        self.edges.iter().filter(move |edge| edge.source == source)
    }

    /// The index of the operator with this uid.
    pub fn find(&self, uid: &str) -> Option<OperatorIndex> {
        let position = self.operators.iter().position(|operator| operator.uid == uid)?;
        Some(OperatorIndex(position as u32))
    }
}

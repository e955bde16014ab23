//! The Rust builder API: jobs written as code, in the style of Flink's `StreamExecutionEnvironment`.
//!
//! ```
//! use weir_core::job::builder::StreamEnvironment;
//! use weir_core::job::WindowAssigner;
//!
//! let env = StreamEnvironment::new("windowed-sum");
//! env.set_parallelism(2);
//! env.sequence(0, 999)
//!     .map(&[("k", "x % 10"), ("v", "x % 101")])
//!     .key_by("k")
//!     .window(WindowAssigner::Count { size: 100 })
//!     .aggregate(&[("v", "sum(v)")])
//!     .discard();
//! let job = env.build().expect("a valid job");
//! assert_eq!(job.graph.operators.len(), 4);
//! ```
//!
//! The builder produces the same [`JobGraph`] a job file does and goes through the same
//! validation. A program adds its own operators with [`StreamEnvironment::add_source`],
//! [`DataStream::transform`] and [`DataStream::add_sink`]; their records are typed Rust values
//! that the runtime hands to the implementations the program registers under the same names.
//! A Rust operator that declares its rows with [`DataStream::returns`] feeds built-in
//! operators too (a `key_by` expression, a map, a file sink).

use super::model::*;
use super::validate::{GraphError, ValidatedJob, validate};
use crate::ids::OperatorIndex;
use crate::row::Type;
use crate::time::Duration;
use std::cell::RefCell;
use std::rc::Rc;

type Shared = Rc<RefCell<JobGraph>>;

/// Where jobs are built; clone-free handle shared by the streams it creates.
pub struct StreamEnvironment {
    graph: Shared,
}

/// A stream of records: the outputs of one or more operators, plus the partitioner the next
/// operator's input edges will use.
#[derive(Clone)]
pub struct DataStream {
    graph: Shared,
    inputs: Vec<OperatorIndex>,
    partitioner: Option<Partitioner>,
}

/// A stream partitioned by key (a hash edge), ready for windows and keyed aggregations.
#[derive(Clone)]
pub struct KeyedStream {
    stream: DataStream,
}

/// A keyed stream with a window assigner, waiting for its aggregation.
pub struct WindowedStream {
    stream: DataStream,
    assigner: WindowAssigner,
    allowed_lateness: Duration,
}

fn named(fields: &[(&str, &str)]) -> Vec<NamedExpr> {
    fields.iter().map(|(name, expr)| NamedExpr { name: name.to_string(), expr: expr.to_string() }).collect()
}

impl StreamEnvironment {
    /// A new, empty job called `name`.
    pub fn new(name: &str) -> StreamEnvironment {
        StreamEnvironment { graph: Rc::new(RefCell::new(JobGraph::new(name))) }
    }

    /// The default parallelism of operators that set none.
    pub fn set_parallelism(&self, parallelism: u32) -> &Self {
        self.graph.borrow_mut().parallelism = Some(parallelism);
        self
    }

    /// The job's max parallelism (number of key groups).
    pub fn set_max_parallelism(&self, max_parallelism: u32) -> &Self {
        self.graph.borrow_mut().max_parallelism = Some(max_parallelism);
        self
    }

    /// Sets a configuration key for this job (as a job file's `[config]` table).
    pub fn set_config(&self, key: &str, value: &str) -> &Self {
        self.graph.borrow_mut().config.insert(key.to_string(), value.to_string());
        self
    }

    fn source(&self, kind: OperatorKind) -> DataStream {
        let index = add_operator(&self.graph, kind, &[], None);
        DataStream { graph: self.graph.clone(), inputs: vec![index], partitioner: None }
    }

    /// The integers `from..=to` as field `x`.
    pub fn sequence(&self, from: i64, to: i64) -> DataStream {
        self.source(OperatorKind::Sequence { from, to, rate_per_second: None })
    }

    /// Rows computed from the record index `i`; unbounded when `count` is `None`.
    pub fn generator(&self, count: Option<u64>, fields: &[(&str, &str)]) -> DataStream {
        self.source(OperatorKind::Generator { count, rate_per_second: None, fields: named(fields) })
    }

    /// The lines of a text file as field `line`.
    pub fn text_file(&self, path: &str) -> DataStream {
        self.source(OperatorKind::FileSource { path: path.to_string(), format: FileFormat::Text, columns: Vec::new() })
    }

    /// Lines read from a TCP socket as field `line`.
    pub fn socket(&self, host: &str, port: u16) -> DataStream {
        self.source(OperatorKind::SocketSource { host: host.to_string(), port })
    }

    /// A source implemented in Rust and registered under `name`.
    pub fn add_source(&self, name: &str) -> DataStream {
        self.source(OperatorKind::Custom { name: name.to_string(), is_source: true, is_sink: false, output: None })
    }

    /// Validates the job built so far.
    pub fn build(&self) -> Result<ValidatedJob, Vec<GraphError>> {
        validate(self.graph.borrow().clone())
    }
}

fn add_operator(
    graph: &Shared,
    kind: OperatorKind,
    inputs: &[OperatorIndex],
    partitioner: Option<Partitioner>,
) -> OperatorIndex {
    let mut graph = graph.borrow_mut();
    let index = OperatorIndex(graph.operators.len() as u32);
    let uid = format!("{}-{}", kind.type_name(), index.0);
    graph.operators.push(Operator {
        uid,
        name: kind.default_name(),
        kind,
        parallelism: None,
        max_parallelism: None,
        slot_sharing_group: None,
        chaining: ChainingStrategy::Always,
    });
    for &source in inputs {
        graph.edges.push(Edge { source, target: index, partitioner: partitioner.clone() });
    }
    index
}

impl DataStream {
    fn then(&self, kind: OperatorKind) -> DataStream {
        let index = add_operator(&self.graph, kind, &self.inputs, self.partitioner.clone());
        DataStream { graph: self.graph.clone(), inputs: vec![index], partitioner: None }
    }

    fn with_partitioner(&self, partitioner: Partitioner) -> DataStream {
        DataStream { partitioner: Some(partitioner), ..self.clone() }
    }

    /// Changes the operator that produced this stream; only for single-operator streams.
    fn configure(self, change: impl FnOnce(&mut Operator)) -> DataStream {
        if let [index] = self.inputs.as_slice() {
            change(&mut self.graph.borrow_mut().operators[index.index()]);
        } else {
            debug_assert!(false, "operator settings apply to a single operator, not a union");
        }
        self
    }

    /// New fields computed from each record.
    pub fn map(&self, fields: &[(&str, &str)]) -> DataStream {
        self.then(OperatorKind::Map { fields: named(fields) })
    }

    /// Keeps records for which `predicate` holds.
    pub fn filter(&self, predicate: &str) -> DataStream {
        self.then(OperatorKind::Filter { predicate: predicate.to_string() })
    }

    /// One record per element of the list `expr`, in field `output`.
    pub fn flat_map(&self, expr: &str, output: &str) -> DataStream {
        self.then(OperatorKind::FlatMap { expr: expr.to_string(), output: output.to_string() })
    }

    /// Event timestamps from `timestamp` (ms) with bounded-out-of-orderness watermarks.
    pub fn assign_watermarks(&self, timestamp: &str, out_of_orderness: Duration) -> DataStream {
        self.then(OperatorKind::Watermarks { timestamp: timestamp.to_string(), out_of_orderness, idle_timeout: None })
    }

    /// An operator implemented in Rust and registered under `name`.
    pub fn transform(&self, name: &str) -> DataStream {
        self.then(OperatorKind::Custom { name: name.to_string(), is_source: false, is_sink: false, output: None })
    }

    /// Partitions by `key` (an expression, or a Rust key function's name after a Rust operator).
    pub fn key_by(&self, key: &str) -> KeyedStream {
        KeyedStream { stream: self.with_partitioner(Partitioner::Hash { key: key.to_string() }) }
    }

    /// Round-robin to all consumers.
    pub fn rebalance(&self) -> DataStream {
        self.with_partitioner(Partitioner::Rebalance)
    }

    /// Round-robin to a local subset of consumers.
    pub fn rescale(&self) -> DataStream {
        self.with_partitioner(Partitioner::Rescale)
    }

    /// Every record to every consumer.
    pub fn broadcast(&self) -> DataStream {
        self.with_partitioner(Partitioner::Broadcast)
    }

    /// A uniformly random consumer.
    pub fn shuffle(&self) -> DataStream {
        self.with_partitioner(Partitioner::Shuffle)
    }

    /// Subtask i to subtask i (needs equal parallelism).
    pub fn forward(&self) -> DataStream {
        self.with_partitioner(Partitioner::Forward)
    }

    /// This stream and `other` as one input of the next operator.
    pub fn union(&self, other: &DataStream) -> DataStream {
        let mut inputs = self.inputs.clone();
        inputs.extend(&other.inputs);
        DataStream { graph: self.graph.clone(), inputs, partitioner: self.partitioner.clone() }
    }

    /// Drops every record.
    pub fn discard(&self) -> DataStream {
        self.then(OperatorKind::Discard)
    }

    /// Prints every record with `prefix`.
    pub fn print(&self, prefix: &str) -> DataStream {
        self.then(OperatorKind::Print { prefix: prefix.to_string() })
    }

    /// Writes to `path` exactly once (committed on checkpoints).
    pub fn file_sink(&self, path: &str, format: FileFormat) -> DataStream {
        self.then(OperatorKind::FileSink { path: path.to_string(), format })
    }

    /// A sink implemented in Rust and registered under `name`.
    pub fn add_sink(&self, name: &str) -> DataStream {
        self.then(OperatorKind::Custom { name: name.to_string(), is_source: false, is_sink: true, output: None })
    }

    /// Declares the fields of the rows the Rust operator just added emits (Flink's `returns`),
    /// so built-in operators can read them: `key_by` expressions, maps, filters, file sinks.
    /// Only after `add_source` or `transform` (a built-in operator's rows are known already).
    pub fn returns(self, fields: &[(&str, Type)]) -> DataStream {
        let columns: Vec<Column> = fields.iter().map(|(name, ty)| Column { name: name.to_string(), ty: *ty }).collect();
        self.configure(|operator| match &mut operator.kind {
            OperatorKind::Custom { output, .. } => *output = Some(columns),
            other => debug_assert!(false, "`returns` declares a Rust operator's rows, not a {}'s", other.type_name()),
        })
    }

    /// The stable id of the operator (Flink's `uid`).
    pub fn uid(self, uid: &str) -> DataStream {
        self.configure(|operator| operator.uid = uid.to_string())
    }

    /// The display name of the operator.
    pub fn name(self, name: &str) -> DataStream {
        self.configure(|operator| operator.name = name.to_string())
    }

    /// The operator's parallelism.
    pub fn set_parallelism(self, parallelism: u32) -> DataStream {
        self.configure(|operator| operator.parallelism = Some(parallelism))
    }

    /// The operator's max parallelism.
    pub fn set_max_parallelism(self, max_parallelism: u32) -> DataStream {
        self.configure(|operator| operator.max_parallelism = Some(max_parallelism))
    }

    /// The operator's slot sharing group.
    pub fn slot_sharing_group(self, group: &str) -> DataStream {
        self.configure(|operator| operator.slot_sharing_group = Some(group.to_string()))
    }

    /// Never chains this operator (Flink's `disableChaining()`).
    pub fn disable_chaining(self) -> DataStream {
        self.configure(|operator| operator.chaining = ChainingStrategy::Never)
    }

    /// Starts a new chain at this operator (Flink's `startNewChain()`).
    pub fn start_new_chain(self) -> DataStream {
        self.configure(|operator| operator.chaining = ChainingStrategy::Head)
    }
}

impl KeyedStream {
    /// Windows over each key.
    pub fn window(&self, assigner: WindowAssigner) -> WindowedStream {
        WindowedStream { stream: self.stream.clone(), assigner, allowed_lateness: Duration::ZERO }
    }

    /// A running aggregation per key, emitting the updated result for every record.
    pub fn aggregate(&self, aggregates: &[(&str, &str)]) -> DataStream {
        self.stream.then(OperatorKind::Aggregate { aggregates: named(aggregates) })
    }

    /// A Rust operator on the keyed stream.
    pub fn transform(&self, name: &str) -> DataStream {
        self.stream.transform(name)
    }
}

impl WindowedStream {
    /// How late (event time) records may arrive and still update their window.
    pub fn allowed_lateness(mut self, lateness: Duration) -> WindowedStream {
        self.allowed_lateness = lateness;
        self
    }

    /// Aggregates each window, e.g. `&[("total", "sum(v)")]`.
    pub fn aggregate(&self, aggregates: &[(&str, &str)]) -> DataStream {
        self.stream.then(OperatorKind::Window {
            assigner: self.assigner,
            allowed_lateness: self.allowed_lateness,
            aggregates: named(aggregates),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::file::parse_job_file;

    #[test]
    fn builder_and_job_file_give_the_same_graph() {
        let env = StreamEnvironment::new("windowed-sum");
        env.sequence(0, 99_999_999)
            .uid("numbers")
            .map(&[("k", "x % 1000"), ("v", "x % 101")])
            .uid("pairs")
            .key_by("k")
            .window(WindowAssigner::Count { size: 1000 })
            .aggregate(&[("v", "sum(v)")])
            .uid("sums")
            .discard()
            .uid("sink");
        let built = env.build().unwrap();
        let text = include_str!("../../../examples/windowed-sum.toml");
        let parsed = parse_job_file("windowed-sum.toml", text).unwrap();
        assert_eq!(built.graph, parsed.graph);
    }

    #[test]
    fn builder_errors_name_the_operator_uid() {
        let env = StreamEnvironment::new("bad");
        env.sequence(0, 9).map(&[("k", "")]).uid("broken").discard();
        let errors = env.build().unwrap_err();
        assert_eq!(errors[0].uid, "broken");
        assert_eq!(errors[0].field, "fields.k");
    }

    #[test]
    fn rust_operators_carry_typed_records_between_them() {
        let env = StreamEnvironment::new("custom");
        env.add_source("clicks").transform("sessionize").key_by("user_of").transform("count").add_sink("store");
        let job = env.build().unwrap();
        assert!(job.schemas[1].is_none(), "typed records have no row schema");
        let mixed = StreamEnvironment::new("mixed");
        mixed.add_source("clicks").filter("x > 1").discard();
        let errors = mixed.build().unwrap_err();
        assert!(errors[0].message.contains("typed records"), "{}", errors[0]);
    }

    #[test]
    fn rust_operators_that_declare_their_rows_feed_built_in_operators() {
        let env = StreamEnvironment::new("declared");
        env.add_source("numbers")
            .returns(&[("k", Type::Int), ("n", Type::Int)])
            .key_by("k")
            .transform("running-sum")
            .returns(&[("k", Type::Int), ("total", Type::Int)])
            .filter("total > 1")
            .file_sink("/tmp/out", FileFormat::Csv);
        let job = env.build().unwrap();
        let fields = |index: usize| job.schemas[index].as_ref().map(|schema| schema.fields.len());
        assert_eq!((fields(0), fields(1), fields(2)), (Some(2), Some(2), Some(2)));
        let unknown = StreamEnvironment::new("unknown-key");
        unknown.add_source("numbers").returns(&[("n", Type::Int)]).key_by("k").transform("t").add_sink("s");
        assert_eq!(unknown.build().unwrap_err()[0].field, "key");
        let twice = StreamEnvironment::new("twice");
        twice.add_source("numbers").returns(&[("n", Type::Int), ("n", Type::Str)]).discard();
        let errors = twice.build().unwrap_err();
        assert_eq!(
            (errors[0].field.as_str(), errors[0].message.as_str()),
            ("output.n", "output field `n` is declared twice")
        );
        let sink = StreamEnvironment::new("sink");
        sink.sequence(0, 9).add_sink("store").returns(&[("n", Type::Int)]);
        assert_eq!(sink.build().unwrap_err()[0].message, "a sink emits no rows to declare");
    }
}

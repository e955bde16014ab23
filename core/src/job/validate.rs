//! Checks a [`JobGraph`] and derives every operator's output schema.
//!
//! Errors point at an operator and one of its fields ([`GraphError::field`] uses the job file's
//! field names), so the job-file loader can name the file and line, and the builder API the
//! operator's uid. Checking continues past the first error where the rest still makes sense.

use super::model::*;
use crate::expr;
use crate::ids::OperatorIndex;
use crate::row::{Schema, Type};
use std::collections::BTreeSet;

/// A problem with one operator of a job graph.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operator `{uid}`, field `{field}`: {message}")]
pub struct GraphError {
    /// The operator at fault, `None` for job-level problems.
    pub operator: Option<OperatorIndex>,
    /// Its uid, or `job` for job-level problems.
    pub uid: String,
    /// The job-file field at fault (`input`, `parallelism`, `fields.k`, ...).
    pub field: String,
    /// What is wrong, with the offending value.
    pub message: String,
}

/// A graph that passed validation, with derived facts the planner and the runtime need.
#[derive(Clone, Debug)]
pub struct ValidatedJob {
    /// The graph itself.
    pub graph: JobGraph,
    /// Operators in a topological order (producers before consumers, ties by index).
    pub topological_order: Vec<OperatorIndex>,
    /// Each operator's output schema; `None` for Rust-API operators whose records are typed
    /// Rust values, and an empty schema for sinks.
    pub schemas: Vec<Option<Schema>>,
}

/// Checks `graph` and derives schemas; returns every error found.
pub fn validate(graph: JobGraph) -> Result<ValidatedJob, Vec<GraphError>> {
    let mut errors = Vec::new();
    check_job_level(&graph, &mut errors);
    check_operators(&graph, &mut errors);
    check_edges(&graph, &mut errors);
    let order = match topological_order(&graph) {
        Ok(order) => order,
        Err(error) => {
            errors.push(error);
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let schemas = derive_schemas(&graph, &order, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidatedJob { graph, topological_order: order, schemas })
}

fn error_at(graph: &JobGraph, operator: OperatorIndex, field: &str, message: String) -> GraphError {
    GraphError {
        operator: Some(operator),
        uid: graph.operator(operator).uid.clone(),
        field: field.to_string(),
        message,
    }
}

fn job_error(field: &str, message: String) -> GraphError {
    GraphError { operator: None, uid: "job".to_string(), field: field.to_string(), message }
}

fn check_job_level(graph: &JobGraph, errors: &mut Vec<GraphError>) {
    if graph.operators.is_empty() {
        errors.push(job_error("operator", "the job has no operators".to_string()));
    }
    if let Some(max) = graph.max_parallelism
        && !(1..=MAX_PARALLELISM_LIMIT).contains(&max)
    {
        let message = format!("max parallelism {max} is outside 1..={MAX_PARALLELISM_LIMIT}");
        errors.push(job_error("max_parallelism", message));
    }
    if let Some(parallelism) = graph.parallelism {
        let max = graph.max_parallelism.unwrap_or(MAX_PARALLELISM_LIMIT);
        if parallelism == 0 || parallelism > max {
            let message = format!("parallelism {parallelism} is outside 1..={max}");
            errors.push(job_error("parallelism", message));
        }
    }
}

fn check_operators(graph: &JobGraph, errors: &mut Vec<GraphError>) {
    let mut seen = BTreeSet::new();
    for (position, operator) in graph.operators.iter().enumerate() {
        let index = OperatorIndex(position as u32);
        if operator.uid.is_empty() {
            errors.push(error_at(graph, index, "id", "the id is empty".to_string()));
        } else if !seen.insert(operator.uid.as_str()) {
            let message = format!("duplicate id `{}`: ids must be unique in a job", operator.uid);
            errors.push(error_at(graph, index, "id", message));
        }
        let max = operator.max_parallelism.or(graph.max_parallelism).unwrap_or(MAX_PARALLELISM_LIMIT);
        if let Some(max) = operator.max_parallelism
            && !(1..=MAX_PARALLELISM_LIMIT).contains(&max)
        {
            let message = format!("max parallelism {max} is outside 1..={MAX_PARALLELISM_LIMIT}");
            errors.push(error_at(graph, index, "max_parallelism", message));
        }
        if let Some(parallelism) = operator.parallelism
            && (parallelism == 0 || parallelism > max)
        {
            let message = format!("parallelism {parallelism} is outside 1..={max}");
            errors.push(error_at(graph, index, "parallelism", message));
        }
        if let Some(group) = &operator.slot_sharing_group
            && group.is_empty()
        {
            let message = "the slot sharing group name is empty".to_string();
            errors.push(error_at(graph, index, "slot_sharing_group", message));
        }
    }
}

fn check_edges(graph: &JobGraph, errors: &mut Vec<GraphError>) {
    for (position, operator) in graph.operators.iter().enumerate() {
        let index = OperatorIndex(position as u32);
        let inputs: Vec<&Edge> = graph.inputs_of(index).collect();
        if operator.kind.is_source() && !inputs.is_empty() {
            let message = format!("`{}` is a source and takes no input", operator.kind.type_name());
            errors.push(error_at(graph, index, "input", message));
        }
        if !operator.kind.is_source() && inputs.is_empty() {
            let message = format!("`{}` needs an input", operator.kind.type_name());
            errors.push(error_at(graph, index, "input", message));
        }
        for edge in &inputs {
            check_edge(graph, edge, errors);
        }
        if operator.kind.needs_key() && !inputs.iter().all(|e| matches!(e.partitioner, Some(Partitioner::Hash { .. })))
        {
            let message = format!("`{}` needs a keyed input: put a key_by before it", operator.kind.type_name());
            errors.push(error_at(graph, index, "input", message));
        }
    }
}

fn check_edge(graph: &JobGraph, edge: &Edge, errors: &mut Vec<GraphError>) {
    let source = graph.operator(edge.source);
    let target = graph.operator(edge.target);
    if source.kind.is_sink() {
        let message = format!("`{}` is a sink and has no output to read", source.uid);
        errors.push(error_at(graph, edge.target, "input", message));
    }
    match &edge.partitioner {
        Some(Partitioner::Hash { key }) if key.trim().is_empty() => {
            let message = "a key-by (hash) edge needs a key".to_string();
            errors.push(error_at(graph, edge.target, "key", message));
        }
        Some(Partitioner::Forward) => {
            let source_parallelism = source.parallelism.or(graph.parallelism);
            let target_parallelism = target.parallelism.or(graph.parallelism);
            if let (Some(from), Some(to)) = (source_parallelism, target_parallelism)
                && from != to
            {
                let message = format!(
                    "forward partitioning does not allow a change of parallelism ({} has {from}, {} has {to})",
                    source.uid, target.uid
                );
                errors.push(error_at(graph, edge.target, "partition", message));
            }
        }
        _ => {}
    }
}

/// Kahn's algorithm with the smallest ready index first, so the order is deterministic.
fn topological_order(graph: &JobGraph) -> Result<Vec<OperatorIndex>, GraphError> {
    let count = graph.operators.len();
    let mut indegree = vec![0usize; count];
    for edge in &graph.edges {
        indegree[edge.target.index()] += 1;
    }
    let mut ready: BTreeSet<OperatorIndex> =
        (0..count).filter(|&i| indegree[i] == 0).map(|i| OperatorIndex(i as u32)).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for edge in graph.outputs_of(next) {
            indegree[edge.target.index()] -= 1;
            if indegree[edge.target.index()] == 0 {
                ready.insert(edge.target);
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    let in_cycle: Vec<&str> =
        (0..count).filter(|&i| indegree[i] > 0).map(|i| graph.operators[i].uid.as_str()).collect();
    let first = (0..count).find(|&i| indegree[i] > 0).unwrap_or(0);
    let message = format!("the job has a cycle through {}", in_cycle.join(" -> "));
    Err(error_at(graph, OperatorIndex(first as u32), "input", message))
}

fn derive_schemas(graph: &JobGraph, order: &[OperatorIndex], errors: &mut Vec<GraphError>) -> Vec<Option<Schema>> {
    let mut schemas: Vec<Option<Schema>> = vec![None; graph.operators.len()];
    for &index in order {
        let derived = derive_schema(graph, index, &schemas);
        match derived {
            Ok(schema) => schemas[index.index()] = schema,
            Err(error) => {
                errors.push(error);
                // Downstream operators would only repeat this error: give them an open schema.
                schemas[index.index()] = Some(Schema::default());
            }
        }
    }
    schemas
}

/// The schema of the rows an operator receives, or `None` for typed Rust records.
fn input_schema(
    graph: &JobGraph,
    index: OperatorIndex,
    schemas: &[Option<Schema>],
) -> Result<Option<Schema>, GraphError> {
    let mut result: Option<Option<Schema>> = None;
    for edge in graph.inputs_of(index) {
        let schema = schemas[edge.source.index()].clone();
        match &result {
            None => result = Some(schema),
            Some(first) if !same_rows(first, &schema) => {
                let describe = |schema: &Option<Schema>| match schema {
                    Some(schema) => format!("({})", schema.describe()),
                    None => "typed Rust records".to_string(),
                };
                let message = format!(
                    "inputs disagree on their fields: `{}` gives {}, another input gives {}",
                    graph.operator(edge.source).uid,
                    describe(&schema),
                    describe(first)
                );
                return Err(error_at(graph, index, "input", message));
            }
            Some(_) => {}
        }
    }
    Ok(result.flatten())
}

fn same_rows(a: &Option<Schema>, b: &Option<Schema>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.is_compatible(b),
        (None, None) => true,
        _ => false,
    }
}

fn derive_schema(
    graph: &JobGraph,
    index: OperatorIndex,
    schemas: &[Option<Schema>],
) -> Result<Option<Schema>, GraphError> {
    let operator = graph.operator(index);
    let input = input_schema(graph, index, schemas)?;
    if let OperatorKind::Custom { is_sink, output, .. } = &operator.kind {
        SchemaCheck { graph, index, input: &Schema::default() }.hash_keys(schemas)?;
        return match (is_sink, output) {
            (true, None) => Ok(Some(Schema::default())),
            (true, Some(_)) => Err(error_at(graph, index, "output", "a sink emits no rows to declare".to_string())),
            (false, None) => Ok(None),
            (false, Some(columns)) => declared_rows(graph, index, columns).map(Some),
        };
    }
    let needs_rows = !operator.kind.is_source();
    let input = match input {
        Some(schema) => schema,
        None if needs_rows => {
            let message = format!(
                "`{}` works on rows, but its input comes from a Rust operator with typed records",
                operator.kind.type_name()
            );
            return Err(error_at(graph, index, "input", message));
        }
        None => Schema::default(),
    };
    let check = SchemaCheck { graph, index, input: &input };
    check.hash_keys(schemas)?;
    check.output(&operator.kind).map(Some)
}

/// The rows a Rust operator declared it emits: at least one field, each named once.
fn declared_rows(graph: &JobGraph, index: OperatorIndex, columns: &[Column]) -> Result<Schema, GraphError> {
    if columns.is_empty() {
        return Err(error_at(graph, index, "output", "declare at least one output field".to_string()));
    }
    let mut names = BTreeSet::new();
    if let Some(twice) = columns.iter().find(|column| !names.insert(column.name.as_str())) {
        let message = format!("output field `{}` is declared twice", twice.name);
        return Err(error_at(graph, index, &format!("output.{}", twice.name), message));
    }
    Ok(Schema::new(columns.iter().map(|column| (column.name.as_str(), column.ty))))
}

/// Derives one operator's output schema from its input schema.
struct SchemaCheck<'a> {
    graph: &'a JobGraph,
    index: OperatorIndex,
    input: &'a Schema,
}

impl SchemaCheck<'_> {
    fn error(&self, field: &str, message: String) -> GraphError {
        error_at(self.graph, self.index, field, message)
    }

    fn compile(&self, field: &str, source: &str, schema: &Schema) -> Result<expr::Expr, GraphError> {
        expr::compile(source, schema).map_err(|error| self.error(field, format!("bad expression {source:?}: {error}")))
    }

    fn expect_type(&self, field: &str, compiled: &expr::Expr, wanted: &[Type]) -> Result<(), GraphError> {
        let ty = compiled.ty();
        if ty == Type::Any || wanted.contains(&ty) {
            return Ok(());
        }
        let names: Vec<&str> = wanted.iter().map(|t| t.name()).collect();
        let message = format!("{:?} has type {ty}, expected {}", compiled.source(), names.join(" or "));
        Err(self.error(field, message))
    }

    fn fields(&self, field: &str, fields: &[NamedExpr], schema: &Schema) -> Result<Schema, GraphError> {
        if fields.is_empty() {
            return Err(self.error(field, "at least one output field is needed".to_string()));
        }
        let mut output = Schema::default();
        for named in fields {
            let place = format!("{field}.{}", named.name);
            if output.position(&named.name).is_some() {
                return Err(self.error(&place, format!("output field `{}` is defined twice", named.name)));
            }
            let compiled = self.compile(&place, &named.expr, schema)?;
            output.fields.push(crate::row::Field { name: named.name.clone(), ty: compiled.ty() });
        }
        Ok(output)
    }

    /// Every hash edge's key must be a valid expression over its producer's rows.
    fn hash_keys(&self, schemas: &[Option<Schema>]) -> Result<(), GraphError> {
        for edge in self.graph.inputs_of(self.index) {
            if let (Some(Partitioner::Hash { key }), Some(schema)) = (&edge.partitioner, &schemas[edge.source.index()])
            {
                self.compile("key", key, schema)?;
            }
        }
        Ok(())
    }

    fn output(&self, kind: &OperatorKind) -> Result<Schema, GraphError> {
        let input = self.input;
        match kind {
            OperatorKind::Sequence { from, to, .. } => {
                if from > to {
                    return Err(self.error("to", format!("the sequence ends ({to}) before it starts ({from})")));
                }
                Ok(Schema::new([("x", Type::Int)]))
            }
            OperatorKind::Generator { fields, .. } => self.fields("fields", fields, &Schema::new([("i", Type::Int)])),
            OperatorKind::FileSource { format, columns, .. } => self.file_source(*format, columns),
            OperatorKind::SocketSource { .. } => Ok(Schema::new([("line", Type::Str)])),
            OperatorKind::Map { fields } => self.fields("fields", fields, input),
            OperatorKind::Filter { predicate } => {
                let compiled = self.compile("where", predicate, input)?;
                self.expect_type("where", &compiled, &[Type::Bool])?;
                Ok(input.clone())
            }
            OperatorKind::FlatMap { expr, output } => {
                let compiled = self.compile("expr", expr, input)?;
                self.expect_type("expr", &compiled, &[Type::List])?;
                Ok(Schema::new([(output.as_str(), Type::Any)]))
            }
            OperatorKind::Watermarks { timestamp, .. } => {
                let compiled = self.compile("timestamp", timestamp, input)?;
                self.expect_type("timestamp", &compiled, &[Type::Int])?;
                Ok(input.clone())
            }
            OperatorKind::Window { assigner, aggregates, .. } => {
                let mut schema = self.keyed_output(aggregates)?;
                if assigner.time().is_some() {
                    schema.fields.push(crate::row::Field { name: "window_start".into(), ty: Type::Int });
                    schema.fields.push(crate::row::Field { name: "window_end".into(), ty: Type::Int });
                }
                Ok(schema)
            }
            OperatorKind::Aggregate { aggregates } => self.keyed_output(aggregates),
            OperatorKind::Discard | OperatorKind::Print { .. } | OperatorKind::FileSink { .. } => Ok(Schema::default()),
            OperatorKind::Custom { .. } => Ok(Schema::default()),
        }
    }

    fn file_source(&self, format: FileFormat, columns: &[Column]) -> Result<Schema, GraphError> {
        match format {
            FileFormat::Text => Ok(Schema::new([("line", Type::Str)])),
            FileFormat::Json => Err(self.error("format", "json is a sink format; read text or csv".to_string())),
            FileFormat::Csv if columns.is_empty() => {
                Err(self.error("columns", "a csv source needs its columns, e.g. [\"word\", \"n:int\"]".to_string()))
            }
            FileFormat::Csv => Ok(Schema::new(columns.iter().map(|c| (c.name.as_str(), c.ty)))),
        }
    }

    /// Key field(s) then aggregates: the output of windows and running aggregations.
    fn keyed_output(&self, aggregates: &[NamedExpr]) -> Result<Schema, GraphError> {
        let input = self.input;
        if aggregates.is_empty() {
            return Err(
                self.error("aggregates", "at least one aggregate is needed, e.g. { total = \"sum(v)\" }".into())
            );
        }
        let key = self
            .graph
            .inputs_of(self.index)
            .find_map(|edge| match &edge.partitioner {
                Some(Partitioner::Hash { key }) => Some(key.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let compiled_key = self.compile("key", &key, input)?;
        let key_name = match compiled_key.field() {
            Some(position) => input.fields[position].name.clone(),
            None => "key".to_string(),
        };
        let mut output = Schema::new([(key_name.as_str(), compiled_key.ty())]);
        for named in aggregates {
            let place = format!("aggregates.{}", named.name);
            if output.position(&named.name).is_some() {
                return Err(self.error(&place, format!("output field `{}` is defined twice", named.name)));
            }
            let spec = expr::aggregate::compile_aggregate(&named.expr, input)
                .map_err(|error| self.error(&place, format!("bad aggregate {:?}: {error}", named.expr)))?;
            output.fields.push(crate::row::Field { name: named.name.clone(), ty: spec.ty() });
        }
        Ok(output)
    }
}

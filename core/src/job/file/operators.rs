//! Reads the job file's tables into the job graph, one operator type at a time.

use super::Places;
use super::reader::Reader;
use crate::ids::OperatorIndex;
use crate::job::model::*;
use crate::row::Type;
use crate::time::Duration;

/// The parsed graph and where its parts sit in the file.
pub(crate) struct ParsedJob {
    pub graph: JobGraph,
    pub places: Places,
}

/// Where an operator and its fields sit in the file.
pub(crate) struct OperatorPlace {
    table_offset: usize,
    fields: Vec<(String, usize)>,
}

impl OperatorPlace {
    /// Offset of field `name` (`fields.k` falls back to `fields`), else of the table.
    pub fn offset_of(&self, name: &str) -> usize {
        let mut candidate = name;
        loop {
            if let Some((_, offset)) = self.fields.iter().find(|(field, _)| field == candidate) {
                return *offset;
            }
            match candidate.rfind('.') {
                Some(dot) => candidate = &candidate[..dot],
                None => return self.table_offset,
            }
        }
    }
}

/// One `[[operator]]` table before its inputs are resolved.
struct Declared {
    uid: String,
    inputs: Vec<String>,
    role: Role,
    place: OperatorPlace,
}

/// What an `[[operator]]` table turned out to be.
enum Role {
    /// A real operator, with the partitioner its `partition` field asked for.
    Operator(Operator, Option<Partitioner>),
    /// A key_by: not an operator, but the key of its consumers' edges.
    KeyBy(String),
    /// The table had errors (already reported).
    Broken,
}

const JOB_FIELDS: [&str; 5] = ["name", "parallelism", "max_parallelism", "config", "operator"];

/// Reads the whole document; `None` when nothing usable could be read.
pub(crate) fn read_job(reader: &mut Reader) -> Option<ParsedJob> {
    let job_offsets = reader.field_offsets();
    let name = reader.string("name").unwrap_or_else(|| "job".to_string());
    let mut graph = JobGraph::new(name);
    graph.parallelism = reader.integer_in("parallelism", 1..32_769).map(|p| p as u32);
    graph.max_parallelism = reader.integer_in("max_parallelism", 1..32_769).map(|p| p as u32);
    if let Some(mut config) = reader.table("config") {
        graph.config = config.raw_entries().into_iter().collect();
        config.finish_nested();
    }
    let mut declared = Vec::new();
    for mut table in reader.tables("operator") {
        declared.push(read_operator(&mut table));
        table.finish_nested();
    }
    if declared.is_empty() {
        reader.fail("operator", "the job has no [[operator]] tables".to_string());
        return None;
    }
    let places = Places {
        operators: Vec::new(),
        job: job_offsets.into_iter().filter(|(key, _)| JOB_FIELDS.contains(&key.as_str())).collect(),
    };
    resolve(reader, graph, declared, places)
}

fn read_operator(table: &mut Reader) -> Declared {
    let place = OperatorPlace { table_offset: table.offset(), fields: table.field_offsets() };
    let uid = table.required_string("id").unwrap_or_default();
    if !uid.is_empty() {
        table.rename(format!("operator `{uid}`"));
    }
    let type_name = table.required_string("type").unwrap_or_default();
    let inputs = table.strings("input").unwrap_or_default();
    if type_name == "key_by" {
        if inputs.len() != 1 {
            table.fail("input", "a key_by reads exactly one input".to_string());
        }
        let role = match table.required_string("key") {
            Some(key) => Role::KeyBy(key),
            None => Role::Broken,
        };
        return Declared { uid, inputs, role, place };
    }
    let partitioner = read_partitioner(table);
    let kind = read_kind(table, &type_name);
    let name = table.string("name");
    let operator = kind.map(|kind| Operator {
        uid: uid.clone(),
        name: name.unwrap_or_else(|| kind.default_name()),
        parallelism: table.integer_in("parallelism", 1..32_769).map(|p| p as u32),
        max_parallelism: table.integer_in("max_parallelism", 1..32_769).map(|p| p as u32),
        slot_sharing_group: table.string("slot_sharing_group"),
        chaining: read_chaining(table),
        kind,
    });
    let role = match operator {
        Some(operator) => Role::Operator(operator, partitioner),
        None => Role::Broken,
    };
    Declared { uid, inputs, role, place }
}

fn read_chaining(table: &mut Reader) -> ChainingStrategy {
    match table.string("chaining").as_deref() {
        None | Some("always") => ChainingStrategy::Always,
        Some("head") => ChainingStrategy::Head,
        Some("never") => ChainingStrategy::Never,
        Some(other) => {
            table.fail("chaining", format!("unknown chaining {other:?}; use always, head or never"));
            ChainingStrategy::Always
        }
    }
}

fn read_partitioner(table: &mut Reader) -> Option<Partitioner> {
    let partition = table.string("partition")?;
    Some(match partition.as_str() {
        "forward" => Partitioner::Forward,
        "rebalance" => Partitioner::Rebalance,
        "rescale" => Partitioner::Rescale,
        "broadcast" => Partitioner::Broadcast,
        "shuffle" => Partitioner::Shuffle,
        "hash" => Partitioner::Hash { key: table.string("key").unwrap_or_default() },
        other => {
            let message =
                format!("unknown partition {other:?}; use forward, hash, rebalance, rescale, broadcast or shuffle");
            table.fail("partition", message);
            return None;
        }
    })
}

const TYPES: &str = "sequence, generator, file_source, socket_source, map, filter, flat_map, key_by, \
                     watermarks, window, aggregate, discard, print, file_sink";

fn read_kind(table: &mut Reader, type_name: &str) -> Option<OperatorKind> {
    Some(match type_name {
        "sequence" => OperatorKind::Sequence {
            from: table.integer("from").unwrap_or(0),
            to: table.required_integer_in("to", i64::MIN..i64::MAX, "the last value, inclusive")?,
            rate_per_second: read_rate(table),
        },
        "generator" => OperatorKind::Generator {
            count: table.integer_in("count", 0..i64::MAX).map(|count| count as u64),
            rate_per_second: read_rate(table),
            fields: read_fields(table, "fields")?,
        },
        "file_source" => read_file_source(table)?,
        "socket_source" => OperatorKind::SocketSource {
            host: table.string("host").unwrap_or_else(|| "localhost".to_string()),
            port: table.required_integer_in("port", 1..65_536, "the port to connect to")? as u16,
        },
        "map" => OperatorKind::Map { fields: read_fields(table, "fields")? },
        "filter" => OperatorKind::Filter { predicate: table.required_string("where")? },
        "flat_map" => OperatorKind::FlatMap {
            expr: table.required_string("expr")?,
            output: table.string("as").unwrap_or_else(|| "value".to_string()),
        },
        "watermarks" => OperatorKind::Watermarks {
            timestamp: table.required_string("timestamp")?,
            out_of_orderness: table.duration("max_out_of_orderness").unwrap_or(Duration::ZERO),
            idle_timeout: table.duration("idle_timeout"),
        },
        "window" => read_window(table)?,
        "aggregate" => OperatorKind::Aggregate { aggregates: read_fields(table, "aggregates")? },
        "discard" => OperatorKind::Discard,
        "print" => OperatorKind::Print { prefix: table.string("prefix").unwrap_or_default() },
        "file_sink" => OperatorKind::FileSink {
            path: table.required_string("path")?,
            format: read_format(table, FileFormat::Csv)?,
        },
        "" => return None,
        other => {
            table.fail("type", format!("unknown operator type {other:?}; known types: {TYPES}"));
            return None;
        }
    })
}

fn read_rate(table: &mut Reader) -> Option<u64> {
    table.integer_in("rate", 1..i64::MAX).map(|rate| rate as u64)
}

fn read_fields(table: &mut Reader, key: &str) -> Option<Vec<NamedExpr>> {
    let Some(entries) = table.string_entries(key) else {
        if table.value(key).is_none() {
            table.fail(key, format!("missing required table `{key}`, e.g. {key} = {{ total = \"...\" }}"));
        }
        return None;
    };
    Some(entries.into_iter().map(|(name, expr)| NamedExpr { name, expr }).collect())
}

fn read_format(table: &mut Reader, default: FileFormat) -> Option<FileFormat> {
    Some(match table.string("format").as_deref() {
        None => default,
        Some("text") => FileFormat::Text,
        Some("csv") => FileFormat::Csv,
        Some("json") => FileFormat::Json,
        Some(other) => {
            table.fail("format", format!("unknown format {other:?}; use text, csv or json"));
            return None;
        }
    })
}

fn read_file_source(table: &mut Reader) -> Option<OperatorKind> {
    let path = table.required_string("path")?;
    let format = read_format(table, FileFormat::Text)?;
    let mut columns = Vec::new();
    for column in table.strings("columns").unwrap_or_default() {
        let (name, ty) = match column.split_once(':') {
            Some((name, ty_name)) => match Type::from_name(ty_name.trim()) {
                Some(ty) => (name.trim().to_string(), ty),
                None => {
                    table.fail(
                        "columns",
                        format!("unknown type {ty_name:?} in column {column:?}; use int, float, str, bool or any"),
                    );
                    return None;
                }
            },
            None => (column.trim().to_string(), Type::Any),
        };
        columns.push(Column { name, ty });
    }
    Some(OperatorKind::FileSource { path, format, columns })
}

fn read_window(table: &mut Reader) -> Option<OperatorKind> {
    let Some(mut window) = table.table("window") else {
        if table.value("window").is_none() {
            table.fail("window", "missing `window`, e.g. window = { type = \"tumbling\", size = \"10 s\" }".into());
        }
        return None;
    };
    let assigner = read_assigner(&mut window);
    let allowed_lateness = window.duration("allowed_lateness").unwrap_or(Duration::ZERO);
    window.finish_nested();
    let aggregates = read_fields(table, "aggregates")?;
    Some(OperatorKind::Window { assigner: assigner?, allowed_lateness, aggregates })
}

fn read_assigner(window: &mut Reader) -> Option<WindowAssigner> {
    let kind = window.required_string("type")?;
    if kind == "count" {
        let size = window.required_integer_in("size", 1..i64::MAX, "the records per window")?;
        return Some(WindowAssigner::Count { size: size as u64 });
    }
    let time = match window.string("time").as_deref() {
        None | Some("processing") => TimeDomain::Processing,
        Some("event") => TimeDomain::Event,
        Some(other) => {
            window.fail("time", format!("unknown time {other:?}; use event or processing"));
            return None;
        }
    };
    let required = |window: &mut Reader, key: &str| {
        if window.value(key).is_none() {
            window.fail(key, format!("a {kind} window needs `{key}`, e.g. {key} = \"10 s\""));
            return None;
        }
        match window.duration(key)? {
            duration if duration > Duration::ZERO => Some(duration),
            _ => {
                window.fail(key, format!("`{key}` must be longer than zero"));
                None
            }
        }
    };
    Some(match kind.as_str() {
        "tumbling" => WindowAssigner::Tumbling { size: required(window, "size")?, time },
        "sliding" => {
            WindowAssigner::Sliding { size: required(window, "size")?, slide: required(window, "slide")?, time }
        }
        "session" => WindowAssigner::Session { gap: required(window, "gap")?, time },
        other => {
            window.fail("type", format!("unknown window type {other:?}; use count, tumbling, sliding or session"));
            return None;
        }
    })
}

/// Turns names into edges, folding key_by entries into hash edges of their consumers.
fn resolve(reader: &mut Reader, mut graph: JobGraph, declared: Vec<Declared>, mut places: Places) -> Option<ParsedJob> {
    // Operator indexes count real operators only; key_by entries become edge keys.
    let mut index_of_declared = Vec::with_capacity(declared.len());
    let mut next = 0u32;
    for entry in &declared {
        if let Role::Operator(..) = entry.role {
            index_of_declared.push(Some(OperatorIndex(next)));
            next += 1;
        } else {
            index_of_declared.push(None);
        }
    }
    let mut failed = declared.iter().any(|entry| matches!(entry.role, Role::Broken));
    let mut edges = Vec::new();
    for (position, entry) in declared.iter().enumerate() {
        let (Some(target), Role::Operator(_, explicit)) = (index_of_declared[position], &entry.role) else { continue };
        for input in &entry.inputs {
            let resolved = follow_input(&declared, &index_of_declared, input).and_then(|(source, key)| {
                let partitioner = match (key, explicit) {
                    (Some(_), Some(_)) => {
                        return Err(format!("input `{input}` is a key_by, which already sets the partitioning"));
                    }
                    (Some(key), None) => Some(Partitioner::Hash { key }),
                    (None, explicit) => explicit.clone(),
                };
                Ok(Edge { source, target, partitioner })
            });
            match resolved {
                Ok(edge) => edges.push(edge),
                Err(message) => {
                    let field = format!("operator `{}`.input", entry.uid);
                    reader.fail_at(entry.place.offset_of("input"), &field, message);
                    failed = true;
                }
            }
        }
    }
    if failed {
        return None;
    }
    for entry in declared {
        if let Role::Operator(operator, _) = entry.role {
            graph.operators.push(operator);
            places.operators.push(entry.place);
        }
    }
    graph.edges = edges;
    Some(ParsedJob { graph, places })
}

/// The operator an input name refers to, through at most one key_by, with the key if any.
fn follow_input(
    declared: &[Declared],
    index_of_declared: &[Option<OperatorIndex>],
    input: &str,
) -> Result<(OperatorIndex, Option<String>), String> {
    let position_of = |name: &str| declared.iter().position(|entry| entry.uid == name);
    let Some(position) = position_of(input) else {
        let ids: Vec<&str> = declared.iter().map(|entry| entry.uid.as_str()).collect();
        return Err(format!("unknown input `{input}`; operators are: {}", ids.join(", ")));
    };
    if let Some(index) = index_of_declared[position] {
        return Ok((index, None));
    }
    let entry = &declared[position];
    let Role::KeyBy(key) = &entry.role else {
        return Err(format!("input `{input}` has errors of its own"));
    };
    let [upstream] = entry.inputs.as_slice() else {
        return Err(format!("key_by `{input}` needs exactly one input"));
    };
    let Some(upstream_position) = position_of(upstream) else {
        return Err(format!("key_by `{input}` reads unknown input `{upstream}`"));
    };
    match index_of_declared[upstream_position] {
        Some(index) => Ok((index, Some(key.clone()))),
        None => Err(format!("key_by `{input}` reads another key_by `{upstream}`; key once")),
    }
}

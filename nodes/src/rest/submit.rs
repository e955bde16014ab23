//! The body of `POST /jobs`: a weir job file as JSON (or as TOML text), or a job graph built
//! with the Rust builder API (weir's own `graph` field), with the CLI's options.
//!
//! A job file goes through the same parser as a job file on disk (`parse_job_file`) and a graph
//! through the same validation (`validate`), so a bad job is refused with the same messages;
//! nothing reaches the Dispatcher unless the body is whole. A graph with Rust operators is
//! refused: a cluster of `weir` processes has none registered (only a program that links weir
//! and registers them runs such a job, see `crate::api`).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use weir_core::ids::JobId;
use weir_core::job::file::parse_job_file;
use weir_core::job::validate::validate;
use weir_core::job::{JobGraph, OperatorKind};
use weir_core::protocol::JobSubmission;

/// Where errors in a submitted job point to.
const ORIGIN: &str = "POST /jobs: job";
/// Where errors in a submitted graph point to.
const GRAPH_ORIGIN: &str = "POST /jobs: graph";

/// `{"job": …, "parallelism": N, "config": {…}, "savepointPath": "dir", "jobId": "hex"}`, or
/// `"graph"` in place of `"job"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The job file: its TOML document as JSON, or its TOML text as a string.
    job: Option<Value>,
    /// A job graph as serde JSON (what the Rust builder API builds).
    graph: Option<Value>,
    parallelism: Option<u32>,
    #[serde(default)]
    config: BTreeMap<String, Value>,
    #[serde(rename = "savepointPath")]
    savepoint_path: Option<String>,
    #[serde(rename = "jobId")]
    job_id: Option<String>,
}

/// Reads a `POST /jobs` body into a submission, or says what is wrong with it.
pub fn parse_submission(body: &[u8]) -> Result<JobSubmission, String> {
    let body: SubmitBody = serde_json::from_slice(body).map_err(|error| {
        format!(
            "the body must be a JSON object {{\"job\": {{…}}, \"parallelism\"?, \"config\"?, \
             \"savepointPath\"?, \"jobId\"?}} (weir takes a job file, not a jar upload): {error}"
        )
    })?;
    let graph = match (body.job, body.graph) {
        (Some(job), None) => job_file(job)?,
        (None, Some(graph)) => built_graph(graph)?,
        (None, None) => return Err("the body needs a \"job\" (a job file) or a \"graph\" (a built job)".to_string()),
        (Some(_), Some(_)) => return Err("the body has both \"job\" and \"graph\"; send one".to_string()),
    };
    let job_id = match body.job_id {
        Some(text) => Some(text.parse::<JobId>().map_err(|error| format!("\"jobId\": {error}"))?),
        None => None,
    };
    if body.parallelism == Some(0) {
        return Err("\"parallelism\" must be at least 1".to_string());
    }
    let mut config = BTreeMap::new();
    for (key, value) in body.config {
        let value = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            other => return Err(format!("\"config\".{key:?} must be a string, number or boolean, not {other}")),
        };
        config.insert(key, value);
    }
    Ok(JobSubmission { job_id, graph, parallelism: body.parallelism, config, savepoint: body.savepoint_path })
}

/// The graph of a job file sent as JSON or as TOML text.
fn job_file(job: Value) -> Result<JobGraph, String> {
    let text = match job {
        Value::String(text) => text,
        Value::Object(_) => toml::to_string(&job).map_err(|error| format!("\"job\" is not a job file: {error}"))?,
        other => return Err(format!("\"job\" must be a job file as a JSON object or TOML text, not {other}")),
    };
    Ok(parse_job_file(ORIGIN, &text).map_err(|errors| errors.to_string())?.graph)
}

/// A graph sent as serde JSON, validated as a job file's graph is; Rust operators are refused.
fn built_graph(graph: Value) -> Result<JobGraph, String> {
    let graph: JobGraph =
        serde_json::from_value(graph).map_err(|error| format!("{GRAPH_ORIGIN}: not a job graph: {error}"))?;
    let job = validate(graph).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|error| format!("{GRAPH_ORIGIN}: {error}")).collect();
        lines.join("\n")
    })?;
    let rust: Vec<String> = (job.graph.operators.iter())
        .filter_map(|operator| match &operator.kind {
            OperatorKind::Custom { name, .. } => Some(format!("`{}` (registered as `{name}`)", operator.uid)),
            _ => None,
        })
        .collect();
    if !rust.is_empty() {
        return Err(format!(
            "{GRAPH_ORIGIN}: this cluster has no Rust operators, and the job uses {}: run it in the program \
             that registers them (weir_nodes::api::LocalEnvironment, or weir_nodes::api::run_application \
             for a cluster of its own)",
            rust.join(", ")
        ));
    }
    Ok(job.graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::job::builder::StreamEnvironment;

    fn job() -> Value {
        json!({
            "name": "numbers",
            "operator": [
                {"id": "numbers", "type": "sequence", "from": 0, "to": 99},
                {"id": "sink", "type": "discard", "input": "numbers"}
            ]
        })
    }

    #[test]
    fn a_job_as_json_becomes_the_same_submission_as_its_options_say() {
        let body = json!({
            "job": job(),
            "parallelism": 3,
            "config": {"execution.checkpointing.interval": "1 s", "parallelism.default": 2, "x": true},
            "savepointPath": "/tmp/sp",
            "jobId": "000000000000000000000000000000ab"
        });
        let submission = parse_submission(body.to_string().as_bytes()).expect("valid");
        assert_eq!(submission.graph.name, "numbers");
        assert_eq!(submission.graph.operators.len(), 2);
        assert_eq!(submission.parallelism, Some(3));
        assert_eq!(submission.config["execution.checkpointing.interval"], "1 s");
        assert_eq!(submission.config["parallelism.default"], "2");
        assert_eq!(submission.config["x"], "true");
        assert_eq!(submission.savepoint.as_deref(), Some("/tmp/sp"));
        assert_eq!(submission.job_id.map(|id| id.to_string()).as_deref(), Some("000000000000000000000000000000ab"));
    }

    #[test]
    fn a_job_as_toml_text_is_read_as_a_job_file() {
        let text = "name = \"t\"\n[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 9\n\
                    [[operator]]\nid = \"d\"\ntype = \"discard\"\ninput = \"s\"\n";
        let submission = parse_submission(json!({ "job": text }).to_string().as_bytes()).expect("valid");
        assert_eq!(submission.graph.name, "t");
        assert_eq!(submission.job_id, None);
    }

    #[test]
    fn a_built_graph_is_submitted_as_it_was_built() {
        let env = StreamEnvironment::new("built");
        env.sequence(0, 99).map(&[("k", "x % 10")]).uid("keys").discard();
        let graph = env.build().expect("valid").graph;
        let body = json!({ "graph": serde_json::to_value(&graph).unwrap(), "parallelism": 2 });
        let submission = parse_submission(body.to_string().as_bytes()).expect("valid");
        assert_eq!(submission.graph, graph);
        assert_eq!(submission.parallelism, Some(2));
    }

    #[test]
    fn a_graph_is_validated_as_a_job_file_is_and_rust_operators_are_refused() {
        let env = StreamEnvironment::new("built");
        env.sequence(0, 99).map(&[("k", "x % 10")]).uid("keys").discard();
        let mut graph = serde_json::to_value(env.build().expect("valid").graph).unwrap();
        graph["operators"][1]["kind"]["Map"]["fields"][0]["expr"] = json!("y % 10");
        let error = parse_submission(json!({ "graph": graph }).to_string().as_bytes()).expect_err("refused");
        assert!(error.starts_with("POST /jobs: graph: operator `keys`, field `fields.k`: bad expression"), "{error}");
        let rust = StreamEnvironment::new("rust");
        rust.add_source("numbers").uid("source").add_sink("store").uid("sink");
        let graph = serde_json::to_value(rust.build().expect("valid").graph).unwrap();
        let error = parse_submission(json!({ "graph": graph }).to_string().as_bytes()).expect_err("refused");
        let expected = "this cluster has no Rust operators, and the job uses `source` (registered as `numbers`), \
                        `sink` (registered as `store`)";
        assert!(error.contains(expected), "{error}");
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a jar upload"),
            (json!({}).to_string().into_bytes(), "needs a \"job\""),
            (json!({"job": job(), "extra": 1}).to_string().into_bytes(), "unknown field `extra`"),
            (json!({"job": 5}).to_string().into_bytes(), "\"job\" must be"),
            (json!({"job": job(), "graph": {}}).to_string().into_bytes(), "both \"job\" and \"graph\""),
            (json!({"graph": {"name": "x"}}).to_string().into_bytes(), "not a job graph: missing field"),
            (json!({"job": job(), "jobId": "xyz"}).to_string().into_bytes(), "\"jobId\""),
            (json!({"job": job(), "parallelism": 0}).to_string().into_bytes(), "at least 1"),
            (json!({"job": job(), "config": {"a": [1]}}).to_string().into_bytes(), "\"config\""),
            (json!({"job": {"name": "x", "operator": [{"id": "s", "type": "nope"}]}}).to_string().into_bytes(), "nope"),
        ];
        for (body, expected) in cases {
            let error = parse_submission(&body).expect_err("refused");
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}

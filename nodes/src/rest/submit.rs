//! The body of `POST /jobs`: a weir job file as JSON (or as TOML text), with the CLI's options.
//!
//! The job goes through the same parser as a job file (`parse_job_file`), so a bad job is
//! refused with the same messages; nothing reaches the Dispatcher unless the body is whole.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use weir_core::ids::JobId;
use weir_core::job::file::parse_job_file;
use weir_core::protocol::JobSubmission;

/// Where errors in a submitted job point to.
const ORIGIN: &str = "POST /jobs: job";

/// `{"job": …, "parallelism": N, "config": {…}, "savepointPath": "dir", "jobId": "hex"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The job file: its TOML document as JSON, or its TOML text as a string.
    job: Value,
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
    let text = match body.job {
        Value::String(text) => text,
        Value::Object(_) => {
            toml::to_string(&body.job).map_err(|error| format!("\"job\" is not a job file: {error}"))?
        }
        other => return Err(format!("\"job\" must be a job file as a JSON object or TOML text, not {other}")),
    };
    let job = parse_job_file(ORIGIN, &text).map_err(|errors| errors.to_string())?;
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
    Ok(JobSubmission {
        job_id,
        graph: job.graph,
        parallelism: body.parallelism,
        config,
        savepoint: body.savepoint_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn malformed_bodies_are_refused_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a jar upload"),
            (json!({}).to_string().into_bytes(), "missing field `job`"),
            (json!({"job": job(), "extra": 1}).to_string().into_bytes(), "unknown field `extra`"),
            (json!({"job": 5}).to_string().into_bytes(), "\"job\" must be"),
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

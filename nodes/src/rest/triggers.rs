//! Savepoint and stop-with-savepoint triggers, Flink's asynchronous protocol: `POST
//! /jobs/:id/savepoints` or `/jobs/:id/stop` answers `{"request-id": …}` at once, and `GET
//! /jobs/:id/savepoints/:triggerid` reports IN_PROGRESS, then COMPLETED with the location or a
//! failure cause.
//!
//! Invariant: at most [`MAX_TRIGGERS`] triggers are remembered; the oldest is forgotten first
//! (its status then answers 404, as Flink's cache does once an entry expired).

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use weir_core::ids::{Hex128, JobId, stable_hash128};

/// Triggers remembered at once.
pub const MAX_TRIGGERS: usize = 256;

/// How a trigger stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerStatus {
    /// Not answered yet.
    InProgress,
    /// The savepoint's location, or why there is none.
    Done(Result<String, String>),
}

/// The remembered triggers, shared by the handlers.
#[derive(Clone, Debug, Default)]
pub struct Triggers {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    status: BTreeMap<(JobId, Hex128), TriggerStatus>,
    order: VecDeque<(JobId, Hex128)>,
    next: u64,
}

impl Triggers {
    /// A new trigger of `job_id`, IN_PROGRESS; returns its id.
    pub fn start(&self, job_id: JobId) -> Hex128 {
        let mut inner = self.lock();
        inner.next += 1;
        // Unique per process (the counter) and unlikely to repeat across restarts (the clock).
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = Hex128(stable_hash128(&[
            b"trigger",
            &job_id.0.0.to_le_bytes(),
            &inner.next.to_le_bytes(),
            &nanos.to_le_bytes(),
        ]));
        while inner.order.len() >= MAX_TRIGGERS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.status.remove(&oldest);
            }
        }
        inner.order.push_back((job_id, id));
        inner.status.insert((job_id, id), TriggerStatus::InProgress);
        id
    }

    /// Records how trigger `id` ended (ignored if it was forgotten meanwhile).
    pub fn finish(&self, job_id: JobId, id: Hex128, result: Result<String, String>) {
        if let Some(status) = self.lock().status.get_mut(&(job_id, id)) {
            *status = TriggerStatus::Done(result);
        }
    }

    /// Trigger `id` of `job_id`, if remembered.
    pub fn status(&self, job_id: JobId, id: Hex128) -> Option<TriggerStatus> {
        self.lock().status.get(&(job_id, id)).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (each change is one insert).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Flink's status body of a trigger.
pub fn status_body(status: &TriggerStatus) -> Value {
    match status {
        TriggerStatus::InProgress => json!({ "status": { "id": "IN_PROGRESS" }, "operation": null }),
        TriggerStatus::Done(Ok(location)) => {
            json!({ "status": { "id": "COMPLETED" }, "operation": { "location": location } })
        }
        TriggerStatus::Done(Err(reason)) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "failure-cause": {
                "class": "weir.SavepointFailure",
                "stack-trace": reason,
                "serialized-throwable": reason,
            } },
        }),
    }
}

/// What a savepoint or stop request asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct TriggerRequest {
    /// Target directory (`None`: `execution.checkpointing.savepoint-dir`).
    pub target: Option<String>,
    /// Stop the job after the savepoint.
    pub stop: bool,
    /// With `stop`: fire every window first.
    pub drain: bool,
}

/// Parses `POST /jobs/:id/savepoints` (`target-directory`, `cancel-job`, `formatType`) or, with
/// `stop`, `POST /jobs/:id/stop` (`targetDirectory`, `drain`, `formatType`). An empty body is
/// `{}`; a field of the wrong type, an unknown field or bad JSON is an error (400).
pub fn parse_trigger(body: &[u8], stop: bool) -> Result<TriggerRequest, String> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|error| format!("the request body is not JSON: {error}"))?
    };
    let Value::Object(fields) = value else { return Err("the request body must be a JSON object".to_string()) };
    let (target_key, flag_key) = if stop { ("targetDirectory", "drain") } else { ("target-directory", "cancel-job") };
    let mut request = TriggerRequest { target: None, stop, drain: false };
    for (key, value) in &fields {
        match (key.as_str(), value) {
            (key, Value::String(text)) if key == target_key => request.target = Some(text.clone()),
            (key, Value::Null) if key == target_key || key == flag_key => {}
            (key, Value::Bool(flag)) if key == flag_key => {
                if stop {
                    request.drain = *flag;
                } else {
                    // Flink's deprecated cancel-with-savepoint: weir stops the job after it.
                    request.stop = *flag;
                }
            }
            ("formatType", Value::String(format)) if format == "CANONICAL" || format == "NATIVE" => {}
            ("formatType", Value::Null) => {}
            ("triggerId", Value::String(_) | Value::Null) => {}
            (key, _) if key == target_key || key == flag_key || key == "formatType" || key == "triggerId" => {
                return Err(format!("field {key:?} has the wrong type or value: {value}"));
            }
            (key, _) => return Err(format!("unknown field {key:?}")),
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_of_both_endpoints_parse_and_bad_ones_are_refused() {
        let savepoint =
            parse_trigger(br#"{"target-directory": "/sp", "cancel-job": false, "formatType": "CANONICAL"}"#, false);
        assert_eq!(savepoint, Ok(TriggerRequest { target: Some("/sp".to_string()), stop: false, drain: false }));
        let stop = parse_trigger(br#"{"targetDirectory": "/sp", "drain": true}"#, true);
        assert_eq!(stop, Ok(TriggerRequest { target: Some("/sp".to_string()), stop: true, drain: true }));
        assert_eq!(parse_trigger(b"", false), Ok(TriggerRequest { target: None, stop: false, drain: false }));
        assert!(parse_trigger(b"{", false).is_err());
        assert!(parse_trigger(b"[]", true).is_err());
        assert!(parse_trigger(br#"{"drain": "yes"}"#, true).is_err());
        assert!(parse_trigger(br#"{"target-directory": 7}"#, false).is_err());
        assert!(parse_trigger(br#"{"targetDirectory": "/sp"}"#, false).is_err(), "the stop spelling on savepoints");
    }

    #[test]
    fn triggers_are_bounded_and_report_their_outcome() {
        let triggers = Triggers::default();
        let job = JobId(Hex128(1));
        let first = triggers.start(job);
        assert_eq!(triggers.status(job, first), Some(TriggerStatus::InProgress));
        assert_eq!(triggers.status(JobId(Hex128(2)), first), None, "a trigger belongs to its job");
        triggers.finish(job, first, Ok("/sp/savepoint-1".to_string()));
        assert_eq!(
            status_body(&triggers.status(job, first).expect("known"))["operation"]["location"],
            "/sp/savepoint-1"
        );
        for _ in 0..MAX_TRIGGERS {
            triggers.start(job);
        }
        assert_eq!(triggers.status(job, first), None, "the oldest was forgotten");
        assert_eq!(triggers.lock().status.len(), MAX_TRIGGERS);
    }
}

//! REST on a JobManager that does not lead: every request is answered `503 Service Unavailable`
//! with Flink's `{"errors": [...]}` and the leader's REST address in `leader` (and a `Location`
//! header), so clients retry there; the CLI does so by itself. The gate opens for good once this
//! process's JobManager runs (a process that loses its leadership exits).

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    leader: Option<String>,
}

/// Shared between the control task (which moves it) and REST (which reads it).
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    /// A closed gate with no known leader.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// An open gate (no high availability: the one JobManager always serves).
    pub fn open() -> Gate {
        let gate = Gate::default();
        gate.lead();
        gate
    }

    /// This process leads: REST reaches its JobManager.
    pub fn lead(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).open = true;
    }

    /// Another process leads (its REST `host:port`), or nobody known.
    pub fn follow(&self, leader: Option<String>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).leader = leader;
    }

    fn state(&self) -> (bool, Option<String>) {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (state.open, state.leader.clone())
    }
}

/// The middleware: passes requests through while the gate is open, else answers as a standby.
pub async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let (open, leader) = gate.state();
    if open {
        return next.run(request).await;
    }
    let message = match &leader {
        Some(address) => format!("this JobManager is a standby; the leader's REST API is at http://{address}"),
        None => "this JobManager is a standby and no leader is known yet; try again shortly".to_string(),
    };
    let body = serde_json::json!({ "errors": [message], "leader": leader });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let location = leader.map(|address| format!("http://{address}{}", request.uri()));
    if let Some(value) = location.and_then(|location| header::HeaderValue::from_str(&location).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::Gate;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    async fn get(gate: &Gate, uri: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let app = axum::Router::new()
            .route("/jobs/overview", axum::routing::get(|| async { "served" }))
            .layer(axum::middleware::from_fn_with_state(gate.clone(), super::gate));
        let request = Request::builder().uri(uri).body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|value| value.to_str().ok()).map(String::from);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, location, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn a_standby_names_the_leader_and_a_leader_serves() {
        let gate = Gate::new();
        let (status, location, body) = get(&gate, "/jobs/overview").await;
        assert_eq!((status, location), (StatusCode::SERVICE_UNAVAILABLE, None));
        assert_eq!(body["leader"], serde_json::Value::Null, "{body}");
        gate.follow(Some("127.0.0.1:8082".to_string()));
        let (status, location, body) = get(&gate, "/jobs/overview").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(location.as_deref(), Some("http://127.0.0.1:8082/jobs/overview"));
        assert_eq!(body["leader"], "127.0.0.1:8082");
        assert!(body["errors"][0].as_str().is_some_and(|error| error.contains("standby")), "{body}");
        gate.lead();
        let (status, _, _) = get(&gate, "/jobs/overview").await;
        assert_eq!(status, StatusCode::OK);
    }
}

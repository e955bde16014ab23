//! The axum routes: each request becomes one [`RestCall`] to the JobManager's owner.
//!
//! A handler never waits longer than [`ANSWER_TIMEOUT`]; a JobManager that does not answer is a
//! 503, not a hung connection. Input from the client (ids, query, body) is checked here and
//! refused with a 400 before anything is sent.

use super::submit::parse_submission;
use super::{ClusterState, RestCall, views};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use weir_core::ids::JobId;
use weir_core::protocol::{ClientMessage, DispatcherMessage};

/// Longest wait for the JobManager's owner to take and answer a call.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request: a status and Flink's `{"errors": [message]}`.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    message: String,
}

impl RestError {
    fn new(status: StatusCode, message: impl Into<String>) -> RestError {
        RestError { status, message: message.into() }
    }

    fn job_not_found(job_id: JobId) -> RestError {
        RestError::new(StatusCode::NOT_FOUND, format!("Job {job_id} not found"))
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "errors": [self.message] }))).into_response()
    }
}

type Answer = Result<Response, RestError>;

/// What every handler holds: the way to the JobManager's owner.
#[derive(Clone)]
struct Rest {
    calls: mpsc::Sender<RestCall>,
}

impl Rest {
    /// Runs `view` on the owner's thread.
    async fn view(&self, view: impl FnOnce(&ClusterState<'_>) -> Value + Send + 'static) -> Result<Value, RestError> {
        let (reply, answer) = oneshot::channel();
        self.call(RestCall::View { view: Box::new(view), reply }, answer).await
    }

    /// A view of one job: `None` from `view` is a 404.
    async fn job_view(&self, job_id: JobId, view: fn(&ClusterState<'_>, JobId) -> Option<Value>) -> Answer {
        let value = self.view(move |state| view(state, job_id).unwrap_or(Value::Null)).await?;
        if value.is_null() { Err(RestError::job_not_found(job_id)) } else { Ok(Json(value).into_response()) }
    }

    /// Sends `message` to the Dispatcher and waits for its answer.
    async fn dispatcher(&self, message: DispatcherMessage) -> Result<ClientMessage, RestError> {
        let (reply, answer) = oneshot::channel();
        self.call(RestCall::Dispatcher { message, reply }, answer).await
    }

    async fn call<T>(&self, call: RestCall, answer: oneshot::Receiver<T>) -> Result<T, RestError> {
        let unavailable = |why: &str| RestError::new(StatusCode::SERVICE_UNAVAILABLE, why.to_string());
        let exchange = async {
            self.calls.send(call).await.map_err(|_| unavailable("the JobManager is not running"))?;
            answer.await.map_err(|_| unavailable("the JobManager dropped the request without an answer"))
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(unavailable("the JobManager did not answer in time")),
        }
    }
}

/// Every route, at the root and under `/v1`, and the web UI at `/` and `/web/`.
pub fn router(calls: mpsc::Sender<RestCall>) -> Router {
    let api = Router::new()
        .route("/overview", get(overview))
        .route("/config", get(config))
        .route("/jobs", get(jobs).post(submit))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{id}", get(job).patch(patch_job))
        .route("/jobs/{id}/plan", get(plan))
        .route("/jobs/{id}/status", get(status))
        .route("/taskmanagers", get(task_managers));
    Router::new()
        .merge(api.clone())
        .nest("/v1", api)
        .merge(super::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Rest { calls })
}

fn job_id(path: Result<Path<String>, PathRejection>) -> Result<JobId, RestError> {
    let Path(text) = path.map_err(|rejection| RestError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    text.parse::<JobId>().map_err(|error| RestError::new(StatusCode::BAD_REQUEST, format!("bad job id: {error}")))
}

async fn overview(State(rest): State<Rest>) -> Answer {
    Ok(Json(rest.view(views::overview).await?).into_response())
}

async fn config() -> Json<Value> {
    Json(views::config())
}

async fn jobs(State(rest): State<Rest>) -> Answer {
    Ok(Json(rest.view(views::jobs).await?).into_response())
}

async fn jobs_overview(State(rest): State<Rest>) -> Answer {
    Ok(Json(rest.view(views::jobs_overview).await?).into_response())
}

async fn task_managers(State(rest): State<Rest>) -> Answer {
    Ok(Json(rest.view(views::task_managers).await?).into_response())
}

async fn job(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::job_detail).await
}

async fn plan(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::job_plan).await
}

async fn status(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::job_status).await
}

/// `PATCH /jobs/:id?mode=cancel` (the mode may be left out): 202 `{}` once cancellation began.
async fn patch_job(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Answer {
    let job_id = job_id(path)?;
    let query = query.unwrap_or_default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("mode", "cancel") => {}
            ("mode", other) => {
                let message = format!("mode {other:?} is not supported; the only mode is \"cancel\"");
                return Err(RestError::new(StatusCode::BAD_REQUEST, message));
            }
            (name, _) => {
                return Err(RestError::new(StatusCode::BAD_REQUEST, format!("unknown query parameter {name:?}")));
            }
        }
    }
    match rest.dispatcher(DispatcherMessage::Cancel { request: 0, job_id }).await? {
        ClientMessage::CancelAccepted { .. } => Ok((StatusCode::ACCEPTED, Json(json!({}))).into_response()),
        ClientMessage::NotFound { .. } => Err(RestError::job_not_found(job_id)),
        other => Err(unexpected(other)),
    }
}

/// `POST /jobs` with a weir job as JSON: 202 `{"jobid": …, "jobUrl": "/jobs/…"}`.
async fn submit(State(rest): State<Rest>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    if content_type.starts_with("multipart/") {
        let message = "Flink's jar upload is not supported: POST a weir job file as JSON, \
                       {\"job\": {…}} (see docs/rest.md)";
        return Err(RestError::new(StatusCode::BAD_REQUEST, message));
    }
    let body = body.map_err(|rejection| RestError::new(rejection.status(), rejection.body_text()))?;
    let submission = parse_submission(&body).map_err(|reason| RestError::new(StatusCode::BAD_REQUEST, reason))?;
    let message = DispatcherMessage::Submit { request: 0, submission: Box::new(submission) };
    match rest.dispatcher(message).await? {
        ClientMessage::Submitted { job_id, .. } => {
            let body = json!({"jobid": job_id.to_string(), "jobUrl": format!("/jobs/{job_id}")});
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        ClientMessage::Rejected { reason, .. } => Err(RestError::new(StatusCode::BAD_REQUEST, reason)),
        other => Err(unexpected(other)),
    }
}

fn unexpected(message: ClientMessage) -> RestError {
    let kind = format!("{message:?}");
    let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_string();
    RestError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected answer from the Dispatcher: {kind}"))
}

async fn not_found(uri: Uri) -> RestError {
    RestError::new(StatusCode::NOT_FOUND, format!("Not found: {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> RestError {
    RestError::new(StatusCode::METHOD_NOT_ALLOWED, format!("Method not allowed on {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Sends one request through the router with an owner that answers views from nothing and
    /// never answers Dispatcher calls.
    async fn request(method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let (calls, mut owner) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(call) = owner.recv().await {
                if let RestCall::View { reply, .. } = call {
                    let _ = reply.send(Value::Null);
                }
            }
        });
        let request = Request::builder().method(method).uri(uri).body(Body::from(body.to_string())).expect("request");
        let response = router(calls).oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn client_mistakes_are_flink_style_errors_with_their_status() {
        let id = "0123456789abcdef0123456789abcdef";
        let cases = [
            ("GET", "/jobs/not-an-id".to_string(), "{}", StatusCode::BAD_REQUEST),
            ("GET", "/v1/jobs/0123/plan".to_string(), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/jobs/{id}"), "{}", StatusCode::NOT_FOUND),
            ("GET", format!("/v1/jobs/{id}/status"), "", StatusCode::NOT_FOUND),
            ("PATCH", format!("/jobs/{id}?mode=stop"), "{}", StatusCode::BAD_REQUEST),
            ("PATCH", format!("/jobs/{id}?color=red"), "{}", StatusCode::BAD_REQUEST),
            ("POST", "/jobs".to_string(), "{\"job\": 1}", StatusCode::BAD_REQUEST),
            ("POST", "/v1/jobs".to_string(), "garbage", StatusCode::BAD_REQUEST),
            ("GET", "/nowhere".to_string(), "", StatusCode::NOT_FOUND),
            ("DELETE", "/jobs".to_string(), "", StatusCode::METHOD_NOT_ALLOWED),
        ];
        for (method, uri, body, expected) in cases {
            let (status, answer) = request(method, &uri, body).await;
            assert_eq!(status, expected, "{method} {uri}");
            let errors = answer["errors"].as_array().unwrap_or_else(|| panic!("{method} {uri}: {answer}"));
            assert_eq!(errors.len(), 1);
            assert!(errors[0].is_string());
        }
    }

    #[tokio::test]
    async fn the_config_is_served_with_a_body_on_get_and_under_v1() {
        let (status, answer) = request("GET", "/v1/config", "{}").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["flink-version"], views::WEIR_VERSION);
    }

    #[tokio::test]
    async fn a_jar_upload_is_refused_with_a_pointer_to_the_json_body() {
        let (calls, _owner) = mpsc::channel(1);
        let request = Request::builder()
            .method("POST")
            .uri("/v1/jobs")
            .header("content-type", "multipart/form-data; boundary=x")
            .body(Body::from("--x--"))
            .expect("request");
        let response = router(calls).oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&bytes).contains("jar upload is not supported"));
    }

    #[tokio::test]
    async fn the_web_ui_shares_the_port_without_shadowing_the_api() {
        let (calls, _owner) = mpsc::channel(1);
        let app = router(calls);
        let cases = [
            ("/", StatusCode::OK, "text/html"),
            ("/web/app.js", StatusCode::OK, "text/javascript"),
            ("/config", StatusCode::OK, "application/json"),
            ("/v1/config", StatusCode::OK, "application/json"),
            ("/v1/", StatusCode::NOT_FOUND, "application/json"),
            ("/v1/web/app.js", StatusCode::NOT_FOUND, "application/json"),
        ];
        for (uri, expected, content_type) in cases {
            let request = Request::builder().uri(uri).body(Body::empty()).expect("request");
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), expected, "{uri}");
            let header = response.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
            assert!(header.is_some_and(|value| value.starts_with(content_type)), "{uri}: {header:?}");
        }
    }

    #[tokio::test]
    async fn an_owner_that_is_gone_is_a_503() {
        let (calls, owner) = mpsc::channel(1);
        drop(owner);
        let request = Request::builder().uri("/overview").body(Body::empty()).expect("request");
        let response = router(calls).oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

//! The axum routes: each request becomes one [`RestCall`] to the JobManager's owner.
//!
//! A handler never waits longer than [`ANSWER_TIMEOUT`]; a JobManager that does not answer is a
//! 503, not a hung connection. Input from the client (ids, query, body) is checked here and
//! refused with a 400 before anything is sent.

use super::submit::parse_submission;
use super::triggers::{Triggers, parse_trigger, status_body};
use super::{ClusterState, RestCall, metrics, views};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use weir_core::ids::{Hex128, JobId, ResourceId, VertexId};
use weir_core::protocol::{ClientMessage, DispatcherMessage};

/// Longest wait for the JobManager's owner to take and answer a call.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a savepoint (Flink's default checkpoint timeout).
const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(600);

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
    triggers: Triggers,
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

    /// A view of one job's part (`vid`, a TaskManager…): `None` from `view` is a 404 with `missing`.
    async fn lookup(
        &self,
        missing: String,
        view: impl FnOnce(&ClusterState<'_>) -> Option<Value> + Send + 'static,
    ) -> Answer {
        let value = self.view(move |state| view(state).unwrap_or(Value::Null)).await?;
        if value.is_null() {
            Err(RestError::new(StatusCode::NOT_FOUND, missing))
        } else {
            Ok(Json(value).into_response())
        }
    }

    /// Sends `message` to the Dispatcher and waits for its answer.
    async fn dispatcher(&self, message: DispatcherMessage) -> Result<ClientMessage, RestError> {
        let (reply, answer) = oneshot::channel();
        self.call(RestCall::Dispatcher { message, reply }, answer).await
    }

    async fn call<T>(&self, call: RestCall, answer: oneshot::Receiver<T>) -> Result<T, RestError> {
        self.call_within(ANSWER_TIMEOUT, call, answer).await
    }

    async fn call_within<T>(
        &self,
        limit: Duration,
        call: RestCall,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, RestError> {
        let unavailable = |why: &str| RestError::new(StatusCode::SERVICE_UNAVAILABLE, why.to_string());
        let exchange = async {
            self.calls.send(call).await.map_err(|_| unavailable("the JobManager is not running"))?;
            answer.await.map_err(|_| unavailable("the JobManager dropped the request without an answer"))
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(unavailable("the JobManager did not answer in time")),
        }
    }
}

/// Every route, at the root and under `/v1`, and the web UI at `/` and `/web/`; with `token`,
/// every API request must carry `Authorization: Bearer <token>` or gets a 401 before anything
/// else happens (the UI's files hold no cluster data and stay open, so the page can ask for it).
pub fn router(calls: mpsc::Sender<RestCall>, token: Option<String>) -> Router {
    let api = Router::new()
        .route("/overview", get(overview))
        .route("/config", get(config))
        .route("/jobs", get(jobs).post(submit))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{id}", get(job).patch(patch_job))
        .route("/jobs/{id}/plan", get(plan))
        .route("/jobs/{id}/status", get(status))
        .route("/jobs/{id}/exceptions", get(exceptions))
        .route("/jobs/{id}/checkpoints", get(checkpoints))
        .route("/jobs/{id}/checkpoints/config", get(checkpoint_config))
        .route("/jobs/{id}/config", get(job_config))
        .route("/jobs/{id}/vertices/{vid}", get(vertex))
        .route("/jobs/{id}/savepoints", post(trigger_savepoint))
        .route("/jobs/{id}/savepoints/{trigger}", get(savepoint_status))
        .route("/jobs/{id}/stop", post(stop))
        .route("/taskmanagers", get(task_managers))
        .route("/taskmanagers/{id}", get(task_manager))
        .route("/jobmanager/config", get(job_manager_config))
        .route("/metrics", get(prometheus));
    Router::new()
        .merge(api.clone())
        .nest("/v1", api)
        .merge(super::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(token.map(std::sync::Arc::<str>::from), authorize))
        .with_state(Rest { calls, triggers: Triggers::default() })
}

/// Refuses a request without the configured bearer token (compared in constant time).
pub(super) async fn authorize(
    State(token): State<Option<std::sync::Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else { return next.run(request).await };
    if super::ui::is_ui_path(request.uri().path()) {
        return next.run(request).await; // the page and its files: no cluster data
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        let message = "missing or wrong token: send the cluster's security.token as `Authorization: Bearer <token>`";
        RestError::new(StatusCode::UNAUTHORIZED, message).into_response()
    }
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

fn job_and(path: Result<Path<(String, String)>, PathRejection>, what: &str) -> Result<(JobId, Hex128), RestError> {
    let Path((job, other)) =
        path.map_err(|rejection| RestError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let job_id = job
        .parse::<JobId>()
        .map_err(|error| RestError::new(StatusCode::BAD_REQUEST, format!("bad job id: {error}")))?;
    let id = other
        .parse::<Hex128>()
        .map_err(|error| RestError::new(StatusCode::BAD_REQUEST, format!("bad {what} id: {error}")))?;
    Ok((job_id, id))
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

async fn exceptions(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::exceptions).await
}

async fn checkpoints(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::checkpoints).await
}

async fn checkpoint_config(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::checkpoint_config).await
}

async fn job_config(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    rest.job_view(job_id(path)?, views::job_config).await
}

/// `GET /jobs/:id/vertices/:vid`: 404 names the job when it is unknown, else the vertex.
async fn vertex(State(rest): State<Rest>, path: Result<Path<(String, String)>, PathRejection>) -> Answer {
    let (job_id, vertex) = job_and(path, "vertex")?;
    let vertex_id = VertexId(vertex);
    let known = rest.view(move |state| json!(state.job_manager.dispatcher().jobs().contains_key(&job_id))).await?;
    if known != json!(true) {
        return Err(RestError::job_not_found(job_id));
    }
    let missing = format!("Vertex {vertex_id} not found in job {job_id} (an ended job's vertices are not kept)");
    rest.lookup(missing, move |state| views::vertex(state, job_id, vertex_id)).await
}

async fn task_manager(State(rest): State<Rest>, path: Result<Path<String>, PathRejection>) -> Answer {
    let Path(text) = path.map_err(|rejection| RestError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let resource_id = text
        .parse::<ResourceId>()
        .map_err(|error| RestError::new(StatusCode::BAD_REQUEST, format!("bad TaskManager id: {error}")))?;
    let missing = format!("TaskManager {resource_id} not found");
    rest.lookup(missing, move |state| views::task_manager(state, resource_id)).await
}

async fn job_manager_config(State(rest): State<Rest>) -> Answer {
    Ok(Json(rest.view(views::job_manager_config).await?).into_response())
}

/// `GET /metrics`: the JobManager's numbers as Prometheus text.
async fn prometheus(State(rest): State<Rest>) -> Answer {
    let text = rest.view(|state| Value::String(metrics::job_manager(state))).await?;
    let text = text.as_str().unwrap_or_default().to_string();
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// `POST /jobs/:id/savepoints`: 202 `{"request-id": …}` at once; the savepoint is taken meanwhile.
async fn trigger_savepoint(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    trigger(rest, job_id(path)?, body, false).await
}

/// `POST /jobs/:id/stop`: stop-with-savepoint, the same protocol.
async fn stop(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    trigger(rest, job_id(path)?, body, true).await
}

async fn trigger(rest: Rest, job_id: JobId, body: Result<Bytes, BytesRejection>, stop: bool) -> Answer {
    let body = body.map_err(|rejection| RestError::new(rejection.status(), rejection.body_text()))?;
    let request = parse_trigger(&body, stop).map_err(|reason| RestError::new(StatusCode::BAD_REQUEST, reason))?;
    let known = rest.view(move |state| json!(state.job_manager.dispatcher().jobs().contains_key(&job_id))).await?;
    if known != json!(true) {
        return Err(RestError::job_not_found(job_id));
    }
    let trigger_id = rest.triggers.start(job_id);
    let message = DispatcherMessage::TriggerSavepoint {
        request: 0,
        job_id,
        target: request.target,
        stop: request.stop,
        drain: request.drain,
    };
    tokio::spawn(async move {
        let (reply, answer) = oneshot::channel();
        let call = RestCall::Dispatcher { message, reply };
        let result = match rest.call_within(SAVEPOINT_TIMEOUT, call, answer).await {
            Ok(ClientMessage::SavepointDone { result, .. }) => result,
            Ok(ClientMessage::Rejected { reason, .. }) => Err(reason),
            Ok(ClientMessage::NotFound { .. }) => Err(format!("Job {job_id} not found")),
            Ok(other) => Err(unexpected(other).message),
            Err(error) => Err(error.message),
        };
        rest.triggers.finish(job_id, trigger_id, result);
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": trigger_id.to_string() }))).into_response())
}

/// `GET /jobs/:id/savepoints/:triggerid`: IN_PROGRESS or COMPLETED with a location or a cause.
async fn savepoint_status(State(rest): State<Rest>, path: Result<Path<(String, String)>, PathRejection>) -> Answer {
    let (job_id, trigger_id) = job_and(path, "trigger")?;
    match rest.triggers.status(job_id, trigger_id) {
        Some(status) => Ok(Json(status_body(&status)).into_response()),
        None => {
            let message = format!("There is no savepoint operation with triggerId={trigger_id} for job {job_id}");
            Err(RestError::new(StatusCode::NOT_FOUND, message))
        }
    }
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
        let response = router(calls, None).oneshot(request).await.expect("infallible");
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
            ("GET", format!("/jobs/{id}/exceptions"), "", StatusCode::NOT_FOUND),
            ("GET", "/jobs/xyz/exceptions".to_string(), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/jobs/{id}/checkpoints"), "", StatusCode::NOT_FOUND),
            ("GET", "/v1/jobs/12/checkpoints".to_string(), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/jobs/{id}/checkpoints/config"), "", StatusCode::NOT_FOUND),
            ("GET", format!("/jobs/{id}/config"), "", StatusCode::NOT_FOUND),
            ("GET", format!("/jobs/{id}/vertices/{id}"), "", StatusCode::NOT_FOUND),
            ("GET", format!("/jobs/{id}/vertices/not-a-vertex"), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/jobs/not-a-job/vertices/{id}"), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/taskmanagers/{id}"), "", StatusCode::NOT_FOUND),
            ("GET", "/taskmanagers/tm-0".to_string(), "", StatusCode::BAD_REQUEST),
            ("POST", format!("/jobs/{id}/savepoints"), "{}", StatusCode::NOT_FOUND),
            ("POST", format!("/jobs/{id}/savepoints"), "{\"cancel-job\": \"no\"}", StatusCode::BAD_REQUEST),
            ("POST", format!("/jobs/{id}/savepoints"), "[1]", StatusCode::BAD_REQUEST),
            ("POST", format!("/jobs/{id}/stop"), "{\"drain\": 1}", StatusCode::BAD_REQUEST),
            ("POST", format!("/jobs/{id}/stop"), "not json", StatusCode::BAD_REQUEST),
            ("POST", format!("/v1/jobs/{id}/stop"), "", StatusCode::NOT_FOUND),
            ("GET", format!("/jobs/{id}/savepoints/{id}"), "", StatusCode::NOT_FOUND),
            ("GET", format!("/jobs/{id}/savepoints/nope"), "", StatusCode::BAD_REQUEST),
            ("GET", format!("/jobs/{id}/stop"), "", StatusCode::METHOD_NOT_ALLOWED),
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
    async fn with_a_token_only_requests_that_carry_it_reach_the_owner() {
        let (calls, mut owner) = mpsc::channel(8);
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = reached.clone();
        tokio::spawn(async move {
            while let Some(call) = owner.recv().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let RestCall::View { reply, .. } = call {
                    let _ = reply.send(json!({"taskmanagers": []}));
                }
            }
        });
        let app = router(calls, Some("sesame".to_string()));
        let send = |authorization: Option<&str>, method: &str, uri: &str| {
            let mut builder = Request::builder().method(method).uri(uri);
            if let Some(value) = authorization {
                builder = builder.header("authorization", value);
            }
            app.clone().oneshot(builder.body(Body::from("{}")).expect("request"))
        };
        let id = "0123456789abcdef0123456789abcdef";
        for (authorization, method, uri) in [
            (None, "GET", "/overview".to_string()),
            (Some("Bearer wrong"), "GET", "/overview".to_string()),
            (Some("sesame"), "GET", "/overview".to_string()),
            (None, "POST", "/jobs".to_string()),
            (None, "PATCH", format!("/jobs/{id}?mode=cancel")),
            (None, "POST", format!("/jobs/{id}/stop")),
        ] {
            let response = send(authorization, method, &uri).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {uri} with {authorization:?}");
        }
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "no refused request reached the owner");
        let response = send(Some("Bearer sesame"), "GET", "/overview").await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
        for uri in ["/", "/web/app.js"] {
            let response = send(None, "GET", uri).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::OK, "the UI's {uri} loads without the token, to ask for it");
        }
        let response = send(None, "GET", "/v1/web/app.js").await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "only the UI's own paths are open");
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
        let response = router(calls, None).oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&bytes).contains("jar upload is not supported"));
    }

    #[tokio::test]
    async fn the_web_ui_shares_the_port_without_shadowing_the_api() {
        let (calls, _owner) = mpsc::channel(1);
        let app = router(calls, None);
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
        let response = router(calls, None).oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

//! The REST API: Flink's paths and JSON field names over the JobManager's state.
//!
//! The REST layer never touches a state machine. Every request becomes a [`RestCall`] sent to
//! whoever owns the JobManager (the embedded cluster's control thread, or a JobManager daemon's
//! control task), which answers on that owner's thread: a [`RestCall::View`] is a pure function
//! of [`ClusterState`] (see [`views`]), a [`RestCall::Dispatcher`] a message to the Dispatcher
//! from a fresh client address whose first answer comes back. Both owners handle calls the same
//! way through [`RestClients`].
//!
//! Every path is also served under `/v1`, and a GET or PATCH with a body (Flink's CLI sends
//! `{}`) is accepted. Errors are Flink's `{"errors": ["…"]}`. `docs/rest.md` is the reference.

mod clients;
mod handlers;
pub mod metrics;
mod submit;
mod triggers;
mod ui;
pub mod views;

pub use clients::RestClients;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};
use weir_core::dataflow::task::TaskMetrics;
use weir_core::ids::ResourceId;
use weir_core::job_manager::JobManager;
use weir_core::protocol::{ClientMessage, DispatcherMessage, ExecutionId};
use weir_core::time::Time;

/// A request from the REST layer to the process that owns the JobManager.
pub enum RestCall {
    /// Send `message` to the Dispatcher from a fresh client address; answer with the first
    /// ClientMessage that comes back to that address (dropped `reply` = no answer).
    Dispatcher { message: DispatcherMessage, reply: oneshot::Sender<ClientMessage> },
    /// Compute an answer from the cluster's state on the owner's thread.
    View {
        view: Box<dyn FnOnce(&ClusterState<'_>) -> serde_json::Value + Send>,
        reply: oneshot::Sender<serde_json::Value>,
    },
}

/// What a view may read.
pub struct ClusterState<'a> {
    /// The JobManager's roles.
    pub job_manager: &'a JobManager,
    /// Milliseconds since the Unix epoch at this process's core Time 0 (Time is µs since start).
    pub epoch_ms_at_zero: u64,
    /// The time now.
    pub now: Time,
    /// Known TaskManager addresses (host:port) by resource id; may be empty (embedded cluster).
    pub task_manager_addresses: &'a BTreeMap<ResourceId, String>,
    /// Data-channel addresses (host:port) of TaskManagers, from their slot offers; may be empty.
    pub task_manager_data_addresses: &'a BTreeMap<ResourceId, String>,
    /// Latest metrics of every task attempt the process knows (may be empty).
    pub task_metrics: &'a BTreeMap<ExecutionId, TaskMetrics>,
}

/// The router; `calls` goes to the owner; with `token`, every request must carry it as a
/// bearer token.
pub fn router(calls: mpsc::Sender<RestCall>, token: Option<String>) -> axum::Router {
    handlers::router(calls, token)
}

/// Binds `bind:port` (port 0 = any free port) and serves on a new thread with its own tokio
/// runtime (for the embedded cluster, which is not async); returns the bound address.
#[cfg(not(madsim))]
pub fn serve_in_thread(
    bind: &str,
    port: u16,
    calls: mpsc::Sender<RestCall>,
    token: Option<String>,
) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind((bind, port))
        .map_err(|error| format!("cannot bind the REST endpoint to {bind}:{port}: {error}"))?;
    let address = listener.local_addr().map_err(|error| format!("REST endpoint {bind}:{port}: {error}"))?;
    listener.set_nonblocking(true).map_err(|error| format!("REST endpoint {address}: {error}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the REST runtime: {error}"))?;
    std::thread::Builder::new()
        .name("rest".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, calls, token).await,
                    Err(error) => eprintln!("warning: REST endpoint {address}: {error}"),
                }
            })
        })
        .map_err(|error| format!("cannot start the REST thread: {error}"))?;
    Ok(address)
}

/// Serves on `listener` inside an existing runtime (the daemon uses this).
#[cfg(not(madsim))]
pub async fn serve(listener: tokio::net::TcpListener, calls: mpsc::Sender<RestCall>, token: Option<String>) {
    if let Err(error) = axum::serve(listener, router(calls, token)).await {
        eprintln!("warning: the REST endpoint stopped: {error}");
    }
}

/// Serves a TaskManager's Prometheus `/metrics` on `listener` (text from `render`), behind the
/// same bearer-token check as the REST API.
#[cfg(not(madsim))]
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    token: Option<String>,
    render: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
) {
    use axum::http::header;
    use axum::response::IntoResponse;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let render = render.clone();
                async move { ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], render()).into_response() }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(token.map(std::sync::Arc::<str>::from), handlers::authorize));
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("warning: the metrics endpoint stopped: {error}");
    }
}

/// As [`serve`], behind a JobManager's standby gate: while the process does not lead, every
/// request is answered as a standby ([`crate::daemon::ha::standby`]).
#[cfg(not(madsim))]
pub async fn serve_gated(
    listener: tokio::net::TcpListener,
    calls: mpsc::Sender<RestCall>,
    token: Option<String>,
    gate: crate::daemon::ha::standby::Gate,
) {
    // The token is checked before the gate, so a standby names its leader only to callers
    // that may use it.
    let key = token.clone().map(std::sync::Arc::<str>::from);
    let app = router(calls, token)
        .layer(axum::middleware::from_fn_with_state(gate, crate::daemon::ha::standby::gate))
        .layer(axum::middleware::from_fn_with_state(key, handlers::authorize));
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("warning: the REST endpoint stopped: {error}");
    }
}

/// Under madsim REST is not served (see [`serve`]).
#[cfg(madsim)]
pub async fn serve_gated(
    listener: tokio::net::TcpListener,
    calls: mpsc::Sender<RestCall>,
    token: Option<String>,
    gate: crate::daemon::ha::standby::Gate,
) {
    let _ = (listener, calls, token, gate);
}

/// Under madsim, axum cannot take the simulated listener: REST is not served in simulation (the
/// router itself is tested without a socket).
#[cfg(madsim)]
pub async fn serve(listener: tokio::net::TcpListener, calls: mpsc::Sender<RestCall>, token: Option<String>) {
    let _ = (listener, calls, token);
    tracing::warn!("REST is not served under madsim");
}

/// Under madsim there is no REST thread.
#[cfg(madsim)]
pub fn serve_in_thread(
    bind: &str,
    port: u16,
    calls: mpsc::Sender<RestCall>,
    token: Option<String>,
) -> Result<SocketAddr, String> {
    let _ = (calls, token);
    Err(format!("REST at {bind}:{port} is not served under madsim"))
}

//! The daemons: `weir jobmanager` and `weir taskmanager`, the core's state machines driven over
//! the network (`weir_net`) on one tokio runtime per process.
//!
//! - [`job_manager`]: ResourceManager, Dispatcher and JobMasters, the RPC endpoint, REST;
//! - [`task_manager`]: a TaskExecutor, its task threads and data channels;
//! - [`metadata`]: the JobManager's durable record of its jobs, for recovery after a restart;
//! - [`journal`]: each daemon's bounded journal of its state machine's inputs, for replay.

pub mod ha;
pub mod job_manager;
pub mod journal;
pub mod metadata;
pub mod task_manager;
pub mod termination;

use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use weir_core::config::Config;
use weir_core::time::Time;
use weir_net::rpc::RpcEvent;

/// Longest wait of a control task between two looks at its state machine's deadline.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Events waiting between a listener and its control task's inbox.
const INBOX: usize = 4096;

/// A peer's RPC endpoint.
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
}

impl Endpoint {
    /// The JobManager's RPC endpoint as configured.
    pub fn job_manager(config: &Config) -> Endpoint {
        Endpoint { address: format!("{}:{}", config.rpc.address, config.rpc.port) }
    }
}

/// Moves everything `from` yields into `to`, wrapped, until either side closes: every source of a
/// control task's inbox (the RPC listener, REST) goes through one of these.
pub fn forward<T: Send + 'static, U: Send + 'static>(
    mut from: mpsc::Receiver<T>,
    to: mpsc::Sender<U>,
    wrap: fn(T) -> U,
) {
    tokio::spawn(async move {
        while let Some(item) = from.recv().await {
            if to.send(wrap(item)).await.is_err() {
                return;
            }
        }
    });
}

/// Serves RPC on `listener`; what it reports reaches `inbox`, wrapped.
pub fn serve_rpc<U: Send + 'static>(
    listener: TcpListener,
    token: Option<String>,
    inbox: mpsc::Sender<U>,
    wrap: fn(RpcEvent) -> U,
) {
    let (events, receiver) = mpsc::channel(INBOX);
    tokio::spawn(weir_net::rpc::serve_events(listener, token, weir_net::frame::DEFAULT_MAX_FRAME_BYTES, events));
    forward(receiver, inbox, wrap);
}

/// How long a control task may wait for mail: until its state machine's `deadline`, at most
/// [`MAX_WAIT`].
pub fn wait_until(deadline: Option<Time>, now: Time) -> Duration {
    deadline.map_or(MAX_WAIT, |at| Duration::from_micros(at.0.saturating_sub(now.0))).min(MAX_WAIT)
}

/// Binds `host:port` (port 0: any free one); returns the listener and the address peers use.
pub async fn resolve_listen(host: &str, port: u16) -> Result<(TcpListener, String), String> {
    let listener =
        TcpListener::bind((host, port)).await.map_err(|error| format!("cannot listen on {host}:{port}: {error}"))?;
    let bound = listener.local_addr().map_err(|error| error.to_string())?;
    Ok((listener, format!("{host}:{}", bound.port())))
}

/// Logs to standard error (a daemon started by `weir cluster start` has it in its log file);
/// `RUST_LOG` filters (`level` or `target=level`, comma-separated), `info` by default.
///
/// A `Targets` filter rather than `EnvFilter`: the latter's span and field-value directives pull
/// in the regex crates, ~0.25 MB of code that every daemon maps (docs/performance.md, footprint).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, warning) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let _ = tracing_subscriber::registry().with(layer).with(filter).try_init();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
}

/// The filter `RUST_LOG` asks for; `info` and a warning when it does not parse.
fn log_filter(setting: Option<&str>) -> (tracing_subscriber::filter::Targets, Option<String>) {
    let default = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    match setting.map(str::trim) {
        None | Some("") => (default(), None),
        Some(text) => match text.parse() {
            Ok(filter) => (filter, None),
            Err(error) => (default(), Some(format!("RUST_LOG={text:?} ignored ({error}); logging at info"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_unset_or_empty_logs_info_and_above() {
        for setting in [None, Some(""), Some("  ")] {
            let (filter, warning) = log_filter(setting);
            assert!(warning.is_none());
            assert!(filter.would_enable("weir_nodes::daemon", &Level::INFO));
            assert!(!filter.would_enable("weir_nodes::daemon", &Level::DEBUG));
        }
    }

    #[test]
    fn rust_log_sets_levels_per_target() {
        let (filter, warning) = log_filter(Some("warn,weir_nodes::daemon=debug"));
        assert!(warning.is_none());
        assert!(filter.would_enable("weir_nodes::daemon::task_manager", &Level::DEBUG));
        assert!(!filter.would_enable("weir_nodes::rest", &Level::INFO));
        assert!(filter.would_enable("weir_nodes::rest", &Level::WARN));
    }

    #[test]
    fn unparsable_rust_log_falls_back_to_info_with_a_warning() {
        let (filter, warning) = log_filter(Some("weir_nodes=loud"));
        assert!(warning.is_some_and(|text| text.contains("weir_nodes=loud")));
        assert!(filter.would_enable("weir_nodes", &Level::INFO));
        assert!(!filter.would_enable("weir_nodes", &Level::DEBUG));
    }
}

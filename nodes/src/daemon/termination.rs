//! What a daemon does when it is asked to stop (SIGTERM or SIGINT): the hooks its parts
//! registered run in order (the journal flushes, a leading JobManager hands its lease over),
//! then the process ends of that signal, as it would have without them.

use std::sync::{Mutex, PoisonError};

type Hook = Box<dyn FnOnce() + Send>;

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());
#[cfg(all(unix, not(madsim)))]
static WATCHING: std::sync::Once = std::sync::Once::new();

/// Runs `hook` when the process is asked to stop. Call on the daemon's runtime.
pub fn on_termination(hook: impl FnOnce() + Send + 'static) {
    HOOKS.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(hook));
    #[cfg(all(unix, not(madsim)))]
    WATCHING.call_once(|| {
        tokio::spawn(watch());
    });
}

/// Waits for SIGTERM or SIGINT, runs the hooks, then ends the process of that signal.
#[cfg(all(unix, not(madsim)))]
async fn watch() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::warn!("cannot watch for SIGTERM; the daemon ends without its shutdown steps");
        return;
    };
    let number = tokio::select! {
        _ = terminate.recv() => libc::SIGTERM,
        _ = interrupt.recv() => libc::SIGINT,
    };
    let hooks = std::mem::take(&mut *HOOKS.lock().unwrap_or_else(PoisonError::into_inner));
    // The hooks block (files, the HA store): off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || hooks.into_iter().for_each(|hook| hook())).await;
    // SAFETY: resets one signal's disposition to the default (ending the process) and raises it
    // in this process; no memory is touched.
    unsafe {
        libc::signal(number, libc::SIG_DFL);
        libc::raise(number);
    }
}

//! The runtime of weir's processes: the IO the core's state machines ask for, done for real.
//!
//! - [`cluster`]: the embedded cluster of `weir local` (every role in this process);
//! - [`connectors`]: files, sockets and standard output for sources and sinks;
//! - [`task_thread`]: each task on its own thread around a `TaskRunner`;
//! - [`exchange`]: channels between task threads, in this process and to other TaskManagers;
//! - [`credit`]: their flow control: exclusive buffers per channel, floating buffers per gate;
//! - [`host`]: what the tasks of a process share, and how they are started and reached;
//! - [`plans`]: the plans of the jobs whose tasks run here, made from their deployments;
//! - [`operators`]: the Rust operators a program registered, for its tasks' chains;
//! - [`storage`]: checkpoint files on disk (temporary name, fsync, rename; `_metadata` last).

pub mod cluster;
pub mod connectors;
pub mod credit;
pub mod exchange;
pub mod host;
pub mod operators;
pub mod plans;
#[cfg(not(madsim))]
pub mod rocks_incremental;
pub mod rocks_state;
pub mod storage;
pub mod task_thread;

use std::time::Instant;
use weir_core::time::Time;

/// The process's clock: microseconds since it started, the core's `Time`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock { start: Instant::now() }
    }

    /// The time now.
    pub fn now(&self) -> Time {
        Time(self.start.elapsed().as_micros() as u64)
    }
}

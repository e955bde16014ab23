//! The data plane: what runs inside tasks, record for record, as pure code.
//!
//! Everything here is driven like the roles are: a task is a step function fed with input
//! buffers, timer firings and checkpoint commands, producing output buffers, acknowledgements
//! and state snapshots, so the simulator runs real operators in virtual time and the daemons
//! run the same code on threads.
//!
//! The pieces, each in its own module:
//! - [`StreamElement`] and [`Barrier`]: what flows on a channel besides records.
//! - `buffer`: rows encoded into byte buffers (32 KiB by default) and decoded back.
//! - `partition`: key groups and the partitioners (forward, hash, rebalance, rescale,
//!   broadcast, shuffle).
//! - `gate`: input channels with barrier alignment (exactly-once), no alignment
//!   (at-least-once) and unaligned checkpoints.
//! - `state`: keyed state (value, list, map, reducing) with snapshots per key group.
//! - `operators`: the built-in operators and windows, and operator chains.
//! - `task`: one task running one chain as a step function over its gate and writers.
//! - `checkpoint` (in the JobMaster) coordinates; `storage` encodes checkpoint files.

pub mod operators;
pub mod state;

use crate::ids::CheckpointId;
use crate::row::Row;
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// Event time in milliseconds since the Unix epoch, as Flink's timestamps and watermarks.
pub type EventTime = i64;

/// The lowest event time: the watermark before any was emitted.
pub const EVENT_TIME_MIN: EventTime = i64::MIN;

/// What a checkpoint barrier asks of the tasks it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BarrierKind {
    /// A periodic checkpoint.
    Checkpoint,
    /// A user savepoint; `stop` ends the job after it (stop-with-savepoint), `drain` first
    /// advances event time to the end so every window fires.
    Savepoint {
        /// Stop the job once the savepoint is taken.
        stop: bool,
        /// Fire every window before stopping.
        drain: bool,
    },
}

/// A checkpoint barrier, injected at the sources and flowing with the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Barrier {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// When the coordinator triggered it.
    pub triggered_at: Time,
    /// Checkpoint or savepoint.
    pub kind: BarrierKind,
    /// Whether this barrier may overtake buffered records (an unaligned checkpoint).
    pub unaligned: bool,
}

/// One element on a channel between tasks, or between operators of a chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StreamElement {
    /// A record.
    Record(Row),
    /// Event time has reached this point on the channel: no older record will follow.
    Watermark(EventTime),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The producer subtask has ended; nothing more will come on this channel.
    EndOfInput,
}

pub mod buffer;
pub mod gate;
pub mod partition;
pub mod task;

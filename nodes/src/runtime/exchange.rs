//! How task threads reach each other inside one process: a registry of running tasks' mailboxes
//! and per-channel credit.
//!
//! A buffer goes from a producer attempt to the consumer attempt with the same attempt number (a
//! pipelined region restarts as a whole, so its attempts share numbers); mail for an attempt that
//! has not registered yet waits here until it does, and is dropped once a newer attempt of that
//! subtask registers. Every (producer, consumer) channel has [`CHANNEL_CREDITS`] credits, as
//! Flink's exclusive buffers: the producer takes one per buffer and blocks without any, the
//! consumer gives it back once its task accepted the buffer, so a slow consumer holds back its
//! producers instead of growing memory, and a channel blocked by barrier alignment never stops
//! the others.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use weir_core::dataflow::Barrier;
use weir_core::dataflow::buffer::Buffer;
use weir_core::ids::{AttemptNumber, CheckpointId};
use weir_core::protocol::ExecutionId;

/// Buffers a producer may have in flight on one channel.
pub const CHANNEL_CREDITS: u32 = 8;

/// What a task thread receives.
pub enum Mail {
    /// A buffer from `producer` on plan edge `edge`; give `credit` back once it is accepted.
    Buffer {
        /// The producer attempt.
        producer: ExecutionId,
        /// The plan edge.
        edge: usize,
        /// The elements.
        buffer: Buffer,
        /// The channel's credit.
        credit: Arc<Credit>,
    },
    /// Inject a barrier (a source, or a task whose input ended).
    Trigger(Barrier, String),
    /// A checkpoint completed or was aborted.
    Notify(CheckpointId, bool),
    /// Stop at once.
    Cancel,
}

/// The credits of one channel.
#[derive(Default)]
pub struct Credit {
    used: Mutex<u32>,
    returned: Condvar,
}

impl Credit {
    /// Takes a credit, waiting at most `wait`; false when none came.
    pub fn take(&self, wait: Duration) -> bool {
        let used = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut used, _) = self
            .returned
            .wait_timeout_while(used, wait, |used| *used >= CHANNEL_CREDITS)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *used >= CHANNEL_CREDITS {
            return false;
        }
        *used += 1;
        true
    }

    /// Gives a credit back.
    pub fn give_back(&self) {
        let mut used = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *used = used.saturating_sub(1);
        self.returned.notify_all();
    }
}

#[derive(Default)]
struct Registry {
    mailboxes: BTreeMap<ExecutionId, Sender<Mail>>,
    waiting: BTreeMap<ExecutionId, Vec<Mail>>,
}

/// The running tasks of this process.
#[derive(Clone, Default)]
pub struct Exchange {
    registry: Arc<Mutex<Registry>>,
}

impl Exchange {
    /// A task started: mail for it goes to `mailbox`, starting with what waited for it.
    pub fn register(&self, execution: ExecutionId, mailbox: Sender<Mail>) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let older = ExecutionId { attempt: AttemptNumber(0), ..execution }..execution;
        let stale: Vec<ExecutionId> = registry.waiting.range(older).map(|(id, _)| *id).collect();
        for id in stale {
            registry.waiting.remove(&id);
        }
        for mail in registry.waiting.remove(&execution).unwrap_or_default() {
            let _ = mailbox.send(mail);
        }
        registry.mailboxes.insert(execution, mailbox);
    }

    /// A task ended: mail for it is dropped from now on.
    pub fn deregister(&self, execution: &ExecutionId) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.mailboxes.remove(execution);
    }

    /// Posts `mail` to `execution`: delivered, kept until it registers, or dropped when that
    /// attempt already ended. Returns false only for a dropped buffer's credit bookkeeping.
    pub fn post(&self, execution: ExecutionId, mail: Mail) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match registry.mailboxes.get(&execution) {
            Some(mailbox) => {
                if let Err(returned) = mailbox.send(mail) {
                    release(returned.0);
                }
            }
            None => {
                let newer = ExecutionId { attempt: AttemptNumber(execution.attempt.0.saturating_add(1)), ..execution };
                let superseded = registry.mailboxes.range(newer..).next().is_some_and(|(id, _)| {
                    (id.job, id.vertex, id.subtask) == (execution.job, execution.vertex, execution.subtask)
                });
                if superseded {
                    release(mail);
                } else {
                    registry.waiting.entry(execution).or_default().push(mail);
                }
            }
        }
    }
}

/// Gives back the credit of a buffer that will never be read.
pub fn release(mail: Mail) {
    if let Mail::Buffer { credit, .. } = mail {
        credit.give_back();
    }
}

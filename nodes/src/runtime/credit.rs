//! Credit-based flow control in Flink's model: exclusive buffers per channel, floating buffers
//! per input gate.
//!
//! A producer holds the [`Credit`] of each channel it sends on: it spends one per buffer and
//! waits when it has none. Its consumer's input gate ([`Gate`], one per consumer attempt and
//! plan edge) decides what comes back. Every channel starts with its exclusive buffers
//! (`taskmanager.network.memory.buffers-per-channel`, at least one); the gate also has floating
//! buffers (`taskmanager.network.memory.floating-buffers-per-gate`) that it lends to channels
//! with a backlog. A producer that spends its last credit says so on that buffer (its backlog);
//! the gate then lends it two floating buffers when they are free (one to replace the buffer in
//! flight, one to deepen the channel: Flink lends the announced backlog at once), one when one
//! is, or queues the channel for the next one that comes back. When the consumer's task
//! accepts a buffer ([`Receipt`]), a channel holding a floating buffer gives that back to the
//! gate (which lends it to a waiting channel, or keeps it); otherwise the channel's producer
//! gets its credit back.
//!
//! A producer's backlog is known only as "it spent its last credit", so a floating buffer lent
//! to a producer that then has nothing more to send stays with it, as unused credit, until its
//! next buffer is accepted or the consumer attempt ends.
//!
//! So a gate never holds more than `channels × exclusive + floating` buffers its task has not
//! accepted, a busy channel beside idle ones gets up to `exclusive + floating`, and a slow
//! consumer holds back its producers instead of growing memory. A channel blocked by barrier
//! alignment never stops the others: each keeps its exclusive buffers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use weir_core::config::TaskManagerConfig;
use weir_core::protocol::ExecutionId;
use weir_net::data::CreditReturn;

/// How many buffers channels and gates have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelBuffers {
    /// Each channel's own buffers: the credit its producer starts with (at least one, so the
    /// first buffer can carry the producer's backlog).
    pub exclusive: u32,
    /// Each gate's buffers lent to channels with a backlog.
    pub floating: u32,
}

impl Default for ChannelBuffers {
    /// Flink's defaults.
    fn default() -> ChannelBuffers {
        ChannelBuffers { exclusive: 2, floating: 8 }
    }
}

impl ChannelBuffers {
    /// The buffers a TaskManager's configuration gives.
    pub fn from_config(task_manager: &TaskManagerConfig) -> ChannelBuffers {
        let (exclusive, floating) = (task_manager.buffers_per_channel, task_manager.floating_buffers_per_gate);
        ChannelBuffers { exclusive: exclusive.max(1), floating }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Spends one of `available`: whether it was the last, or `None` when there is none.
fn take_one(available: &mut u32) -> Option<bool> {
    if *available == 0 {
        return None;
    }
    *available -= 1;
    Some(*available == 0)
}

/// A producer's credit on one channel: the buffers it may still send.
pub struct Credit {
    available: Mutex<u32>,
    granted: Condvar,
}

impl Credit {
    /// A channel's credit at its start: its exclusive buffers.
    pub fn new(buffers: ChannelBuffers) -> Credit {
        Credit { available: Mutex::new(buffers.exclusive.max(1)), granted: Condvar::new() }
    }

    /// Takes a credit, waiting at most `wait`: `None` when none came, else whether the
    /// producer has a backlog now (this was its last credit).
    pub fn take(&self, wait: Duration) -> Option<bool> {
        let mut available = locked(&self.available);
        if wait.is_zero() {
            // No condvar wait at all: under madsim a timed wait would run on the host's clock.
            return take_one(&mut available);
        }
        let (mut available, _) = self
            .granted
            .wait_timeout_while(available, wait, |available| *available == 0)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        take_one(&mut available)
    }

    /// The consumer side gives `credits` (back).
    pub fn grant(&self, credits: u32) {
        let mut available = locked(&self.available);
        *available = available.saturating_add(credits);
        self.granted.notify_all();
    }

    /// Credits not spent.
    #[cfg(test)]
    pub fn available(&self) -> u32 {
        *locked(&self.available)
    }
}

/// Where a gate sends a channel's credit: the producer's [`Credit`] in this process, or a
/// credit frame back to the producer's TaskManager.
pub enum Grantee {
    /// A producer of this process.
    Local(Arc<Credit>),
    /// A producer in another process, by the connection its buffers come on.
    Remote(CreditReturn),
}

impl Grantee {
    fn grant(&self, credits: u32) {
        match self {
            Grantee::Local(credit) => credit.grant(credits),
            // A connection that is gone fails the producer; its credit no longer matters.
            Grantee::Remote(back) => drop(back.give(credits)),
        }
    }
}

/// One channel as its gate sees it.
struct GateChannel {
    /// Floating buffers the channel holds.
    floating: u32,
    grantee: Grantee,
}

struct GateState {
    floating_free: u32,
    channels: BTreeMap<ExecutionId, GateChannel>,
    /// Channels with a backlog that wait for a floating buffer, first come first served.
    wanting: VecDeque<ExecutionId>,
}

/// A consumer attempt's input gate on one plan edge: the floating buffers its channels share.
pub struct Gate {
    state: Mutex<GateState>,
}

impl Gate {
    /// A gate with `floating` buffers to lend.
    pub fn new(floating: u32) -> Arc<Gate> {
        let state = GateState { floating_free: floating, channels: BTreeMap::new(), wanting: VecDeque::new() };
        Arc::new(Gate { state: Mutex::new(state) })
    }

    /// A buffer from `producer` (whose credit `grantee` reaches) arrived; `backlog`: the producer
    /// spent its last credit on it. The receipt gives the buffer's credit back.
    pub fn arrived(self: &Arc<Gate>, producer: ExecutionId, grantee: Grantee, backlog: bool) -> Receipt {
        let mut state = locked(&self.state);
        let state = &mut *state;
        let channel = match state.channels.get_mut(&producer) {
            Some(channel) => {
                channel.grantee = grantee; // a newer connection, for a remote producer
                channel
            }
            None => state.channels.entry(producer).or_insert(GateChannel { floating: 0, grantee }),
        };
        let queued = state.wanting.iter().position(|wanting| *wanting == producer);
        match (backlog, queued) {
            (true, None) if state.floating_free > 0 => {
                // Two when it can: one replaces the buffer in flight, one deepens the channel,
                // so a channel that stays busy grows towards `exclusive + floating` in flight
                // (Flink lends its announced backlog at once; weir's backlog is a flag).
                let lent = state.floating_free.min(2);
                state.floating_free -= lent;
                channel.floating += lent;
                channel.grantee.grant(lent);
            }
            (true, None) => state.wanting.push_back(producer),
            (false, Some(at)) => drop(state.wanting.remove(at)),
            (true, Some(_)) | (false, None) => {}
        }
        Receipt { gate: self.clone(), producer }
    }

    /// The consumer's task accepted (or dropped) a buffer from `producer`.
    fn accepted(&self, producer: ExecutionId) {
        let mut state = locked(&self.state);
        let Some(channel) = state.channels.get_mut(&producer) else { return };
        if channel.floating == 0 {
            channel.grantee.grant(1);
            // It has credit again: no longer waiting for a floating buffer.
            if let Some(at) = state.wanting.iter().position(|wanting| *wanting == producer) {
                state.wanting.remove(at);
            }
            return;
        }
        channel.floating -= 1;
        while let Some(wanting) = state.wanting.pop_front() {
            if let Some(channel) = state.channels.get_mut(&wanting) {
                channel.floating += 1;
                channel.grantee.grant(1);
                return;
            }
        }
        state.floating_free += 1;
    }

    /// Floating buffers not lent.
    #[cfg(test)]
    pub fn floating_free(&self) -> u32 {
        locked(&self.state).floating_free
    }
}

/// The credit of one buffer a consumer received: given back to its gate when the task accepts
/// the buffer, or when the buffer is dropped unread (so credit can never leak).
pub struct Receipt {
    gate: Arc<Gate>,
    producer: ExecutionId,
}

impl Receipt {
    /// The task accepted the buffer.
    pub fn give_back(self) {
        drop(self);
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.gate.accepted(self.producer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_core::ids::{AttemptNumber, Hex128, JobId, SubtaskIndex, VertexIndex};

    fn producer(subtask: u32) -> ExecutionId {
        ExecutionId {
            job: JobId(Hex128(1)),
            vertex: VertexIndex(0),
            subtask: SubtaskIndex(subtask),
            attempt: AttemptNumber(0),
        }
    }

    /// One producer of the gate: its credit and the receipts of what it sent and the consumer
    /// has not accepted yet.
    struct Sender {
        id: ExecutionId,
        credit: Arc<Credit>,
        unaccepted: VecDeque<Receipt>,
    }

    impl Sender {
        fn new(subtask: u32, buffers: ChannelBuffers) -> Sender {
            Sender { id: producer(subtask), credit: Arc::new(Credit::new(buffers)), unaccepted: VecDeque::new() }
        }

        /// Sends one buffer if it has credit.
        fn send(&mut self, gate: &Arc<Gate>) -> bool {
            let Some(backlog) = self.credit.take(Duration::ZERO) else { return false };
            self.unaccepted.push_back(gate.arrived(self.id, Grantee::Local(self.credit.clone()), backlog));
            true
        }

        /// Sends until its credit runs out; how many it sent.
        fn send_all(&mut self, gate: &Arc<Gate>) -> u32 {
            let mut sent = 0;
            while self.send(gate) {
                sent += 1;
            }
            sent
        }
    }

    const BUFFERS: ChannelBuffers = ChannelBuffers { exclusive: 2, floating: 8 };

    #[test]
    fn a_busy_channel_beside_idle_ones_gets_its_exclusive_and_every_floating_buffer() {
        let gate = Gate::new(BUFFERS.floating);
        let mut busy = Sender::new(0, BUFFERS);
        let idle = Sender::new(1, BUFFERS);
        assert_eq!(busy.send_all(&gate), 10, "2 exclusive + 8 floating");
        assert_eq!(gate.floating_free(), 0);
        assert_eq!(idle.credit.available(), 2, "the idle channel keeps its exclusive buffers");

        busy.unaccepted.pop_front().expect("sent").give_back();
        assert_eq!(busy.credit.available(), 1, "it waited for a floating buffer: the one given back goes to it");
        assert_eq!(gate.floating_free(), 0);
    }

    #[test]
    fn a_backlog_brings_two_floating_buffers_so_a_channel_that_stays_busy_deepens() {
        let gate = Gate::new(BUFFERS.floating);
        let mut sender = Sender::new(0, BUFFERS);
        assert!(sender.send(&gate) && sender.send(&gate), "its two exclusive buffers, the second with a backlog");
        assert_eq!(sender.credit.available(), 2, "one floating buffer replaces the one in flight, one deepens");
        assert_eq!(gate.floating_free(), 6);
        // The consumer keeps pace (one accepted per buffer sent): the channel still grows.
        for _ in 0..3 {
            assert!(sender.send(&gate) && sender.send(&gate));
            sender.unaccepted.pop_front().expect("sent").give_back();
        }
        assert!(sender.unaccepted.len() + sender.credit.available() as usize > 4, "deeper than its start");
    }

    #[test]
    fn floating_buffers_go_back_to_the_gate_once_the_backlog_ends() {
        let gate = Gate::new(BUFFERS.floating);
        let mut sender = Sender::new(0, BUFFERS);
        assert_eq!(sender.send_all(&gate), 10);
        // The consumer catches up: the producer has credit again and sends without a backlog.
        for _ in 0..9 {
            sender.unaccepted.pop_front().expect("sent").give_back();
        }
        assert!(sender.send(&gate), "credit came back");
        assert!(gate.floating_free() > 0, "a channel without a backlog gives floating buffers back");
        while let Some(receipt) = sender.unaccepted.pop_front() {
            receipt.give_back();
        }
        assert_eq!(gate.floating_free(), 8, "every floating buffer is back");
        assert_eq!(sender.credit.available(), 2, "and the channel has its exclusive buffers");
    }

    #[test]
    fn a_waiting_channel_gets_the_next_floating_buffer_another_channel_gives_back() {
        let gate = Gate::new(BUFFERS.floating);
        let (mut first, mut second) = (Sender::new(0, BUFFERS), Sender::new(1, BUFFERS));
        for _ in 0..9 {
            assert!(first.send(&gate), "2 exclusive, then 7 floating lent to it");
        }
        assert_eq!(first.credit.available(), 1, "the last floating buffer, not spent");
        assert_eq!(second.send_all(&gate), 2, "no floating buffer left: the second waits for one");
        first.unaccepted.pop_front().expect("sent").give_back();
        let available = (first.credit.available(), second.credit.available());
        assert_eq!(available, (1, 1), "the waiting channel got it; the first still has its unspent one");
    }

    #[test]
    fn a_dropped_receipt_gives_its_credit_back() {
        let gate = Gate::new(0);
        let mut sender = Sender::new(0, ChannelBuffers { exclusive: 1, floating: 0 });
        assert_eq!(sender.send_all(&gate), 1);
        sender.unaccepted.clear();
        assert_eq!(sender.credit.available(), 1);
    }

    #[test]
    fn a_producer_waits_for_credit_and_wakes_when_it_comes() {
        let credit = Arc::new(Credit::new(ChannelBuffers { exclusive: 1, floating: 0 }));
        assert_eq!(credit.take(Duration::ZERO), Some(true), "its only credit: a backlog from now on");
        assert_eq!(credit.take(Duration::from_millis(50)), None);
        let giver = credit.clone();
        let thread = std::thread::spawn(move || giver.grant(1));
        assert_eq!(credit.take(Duration::from_secs(10)), Some(true));
        thread.join().expect("granted");
    }

    proptest! {
        /// Whatever producers send and the consumer accepts, in any order: a gate never holds
        /// more than `channels × exclusive + floating` unaccepted buffers, no channel more than
        /// `exclusive + floating`, credit is never lost (once everything is accepted, every
        /// channel has at least its exclusive buffers, and the floating ones are in the gate or
        /// lent as credit to a producer that has not used them), and a channel without credit
        /// always has a buffer in flight (nothing can deadlock).
        #[test]
        fn a_gate_bounds_what_it_holds_and_loses_no_credit(
            exclusive in 1u32..4,
            floating in 0u32..6,
            steps in proptest::collection::vec((0usize..3, any::<bool>()), 1..200),
        ) {
            let buffers = ChannelBuffers { exclusive, floating };
            let gate = Gate::new(floating);
            let mut senders: Vec<Sender> = (0..3).map(|subtask| Sender::new(subtask, buffers)).collect();
            for (channel, send) in steps {
                let sender = &mut senders[channel];
                if send {
                    sender.send(&gate);
                } else if let Some(receipt) = sender.unaccepted.pop_front() {
                    receipt.give_back();
                }
                let held: usize = senders.iter().map(|sender| sender.unaccepted.len()).sum();
                prop_assert!(held <= (3 * exclusive + floating) as usize);
                for sender in &senders {
                    prop_assert!(sender.unaccepted.len() <= (exclusive + floating) as usize);
                    prop_assert!(sender.credit.available() > 0 || !sender.unaccepted.is_empty());
                }
            }
            for sender in &mut senders {
                sender.unaccepted.clear();
            }
            let mut lent = 0;
            for sender in &senders {
                prop_assert!(sender.credit.available() >= exclusive);
                lent += sender.credit.available() - exclusive;
            }
            prop_assert_eq!(gate.floating_free() + lent, floating);
        }
    }
}

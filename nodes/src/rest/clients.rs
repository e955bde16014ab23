//! The owner's half of the REST layer: turns [`RestCall`]s into Dispatcher envelopes from client
//! addresses and routes the answers back, so every owner of a JobManager handles calls alike.
//!
//! Invariants: client numbers start at 1 (0 is the embedded cluster's own submitter) and are
//! never reused; at most [`MAX_OUTSTANDING`] calls wait for an answer (older ones are answered by
//! dropping their reply, which the REST handler reports as "no answer").

use super::{ClusterState, RestCall};
use std::collections::BTreeMap;
use tokio::sync::oneshot;
use weir_core::ids::Epoch;
use weir_core::protocol::{Address, ClientMessage, DispatcherMessage, Envelope, Message};

/// Dispatcher calls that may wait for their answer at once.
pub const MAX_OUTSTANDING: usize = 1_024;

/// Client addresses of REST calls waiting for the Dispatcher's (or a JobMaster's) answer.
#[derive(Debug)]
pub struct RestClients {
    /// The next client number to hand out.
    client_next: u64,
    /// Reply channels by client number; the smallest is the oldest.
    waiting: BTreeMap<u64, oneshot::Sender<ClientMessage>>,
}

impl Default for RestClients {
    fn default() -> RestClients {
        RestClients { client_next: 1, waiting: BTreeMap::new() }
    }
}

impl RestClients {
    /// No call waiting; the first client is `Client(1)`.
    pub fn new() -> RestClients {
        RestClients::default()
    }

    /// Handles one call: a view is answered at once from `state`; a Dispatcher call becomes an
    /// envelope handed to `send`, answered later through [`RestClients::deliver`].
    pub fn answer(&mut self, call: RestCall, state: &ClusterState<'_>, mut send: impl FnMut(Envelope)) {
        match call {
            RestCall::View { view, reply } => {
                // The handler may have given up waiting; nothing to do then.
                let _ = reply.send(view(state));
            }
            RestCall::Dispatcher { message, reply } => send(self.dispatch(message, reply)),
        }
    }

    /// The envelope that carries `message` to the Dispatcher from a fresh client address whose
    /// first answer goes to `reply`.
    pub fn dispatch(&mut self, message: DispatcherMessage, reply: oneshot::Sender<ClientMessage>) -> Envelope {
        self.waiting.retain(|_, waiting| !waiting.is_closed());
        while self.waiting.len() >= MAX_OUTSTANDING {
            self.waiting.pop_first();
        }
        let client = self.client_next;
        self.client_next += 1;
        self.waiting.insert(client, reply);
        debug_assert!(self.waiting.len() <= MAX_OUTSTANDING);
        let message = Message::Dispatcher(message);
        Envelope { from: Address::Client(client), to: Address::Dispatcher, epoch: Epoch(0), message }
    }

    /// Completes the call waiting at `to` with `message`; false when no call waits there (not a
    /// REST client, answered already, or evicted).
    pub fn deliver(&mut self, to: Address, message: ClientMessage) -> bool {
        let Address::Client(client) = to else { return false };
        match self.waiting.remove(&client) {
            Some(reply) => {
                let _ = reply.send(message);
                true
            }
            None => false,
        }
    }

    /// Calls waiting for an answer.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::ids::{Hex128, JobId};

    fn cancel() -> DispatcherMessage {
        DispatcherMessage::Cancel { request: 0, job_id: JobId(Hex128(7)) }
    }

    fn accepted() -> ClientMessage {
        ClientMessage::CancelAccepted { request: 0, job_id: JobId(Hex128(7)) }
    }

    #[test]
    fn answers_reach_the_call_of_their_client_address_only() {
        let mut clients = RestClients::new();
        let (first, mut first_answer) = oneshot::channel();
        let (second, mut second_answer) = oneshot::channel();
        let first_envelope = clients.dispatch(cancel(), first);
        let second_envelope = clients.dispatch(cancel(), second);
        assert_eq!(first_envelope.from, Address::Client(1), "client 0 belongs to the embedded submitter");
        assert_eq!(second_envelope.from, Address::Client(2));
        assert_eq!(first_envelope.to, Address::Dispatcher);
        assert!(clients.deliver(Address::Client(2), accepted()));
        assert_eq!(second_answer.try_recv().ok(), Some(accepted()));
        assert!(first_answer.try_recv().is_err(), "the first call has no answer yet");
        assert!(!clients.deliver(Address::Client(2), accepted()), "only the first answer counts");
        assert!(!clients.deliver(Address::Client(0), accepted()), "client 0 is not a REST call");
        assert!(!clients.deliver(Address::Dispatcher, accepted()));
    }

    #[test]
    fn outstanding_calls_are_bounded_and_the_oldest_is_dropped() {
        let mut clients = RestClients::new();
        let mut receivers = Vec::new();
        for _ in 0..=MAX_OUTSTANDING {
            let (reply, receiver) = oneshot::channel();
            clients.dispatch(cancel(), reply);
            receivers.push(receiver);
        }
        assert_eq!(clients.outstanding(), MAX_OUTSTANDING);
        let oldest = &mut receivers[0];
        assert!(matches!(oldest.try_recv(), Err(oneshot::error::TryRecvError::Closed)), "evicted = dropped reply");
        assert!(clients.deliver(Address::Client(MAX_OUTSTANDING as u64 + 1), accepted()));
    }

    #[test]
    fn calls_whose_handler_gave_up_are_forgotten() {
        let mut clients = RestClients::new();
        let (reply, receiver) = oneshot::channel();
        clients.dispatch(cancel(), reply);
        drop(receiver);
        let (reply, _receiver) = oneshot::channel();
        clients.dispatch(cancel(), reply);
        assert_eq!(clients.outstanding(), 1);
    }
}

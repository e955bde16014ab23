//! How task threads reach each other: a registry of the running tasks' mailboxes, per-channel
//! credit, and (in a TaskManager daemon) routes to the tasks of other TaskManagers.
//!
//! A buffer goes from a producer attempt to the consumer attempt with the same attempt number (a
//! pipelined region restarts as a whole, so its attempts share numbers); mail for an attempt that
//! has not registered yet waits here until it does, and is dropped once a newer attempt of that
//! subtask registers. Flow control is credit-based, in Flink's model ([`super::credit`]): a
//! producer spends one credit of its channel per buffer ([`Exchange::send`]) and waits without
//! any; the consumer's input gate (one per consumer attempt and plan edge, kept here) gives it
//! back once the task accepted the buffer, and lends its floating buffers to channels with a
//! backlog.
//!
//! # Across processes
//!
//! [`Exchange::local`] (`weir local`) never leaves the process. [`Exchange::remote`] also knows
//! where other subtasks run ([`Exchange::set_location`]): a buffer for a consumer that is not
//! registered here and runs at another data address goes over that TaskManager's data link
//! (weir-net's [`DataLinks`]); [`Exchange::serve`] is the listener for buffers coming the other
//! way. Credit works the same across processes: the producer spends its local credit per buffer
//! as always, and the buffer carries its backlog; the consumer side's gate sends what it gives
//! (credit back, floating buffers lent) as credit frames, which the producer's side adds to the
//! producer's credit. Local channels never touch a socket.
//!
//! When a data connection to a TaskManager breaks (or never comes), every local task that sent
//! buffers to it or received buffers from it gets [`Mail::Fail`] and is cut off: its later
//! buffers go nowhere (their credit comes back at once), so a new connection never carries the
//! rest of a stream whose middle was lost.

use super::credit::{ChannelBuffers, Credit, Gate, Grantee, Receipt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use weir_core::dataflow::Barrier;
use weir_core::dataflow::buffer::Buffer;
use weir_core::ids::{AttemptNumber, CheckpointId, JobId, SubtaskIndex, VertexIndex};
use weir_core::protocol::ExecutionId;
use weir_net::data::{
    self, CreditReturn, DataBuffer, DataConfig, DataCredit, DataError, DataLinks, LinkEvent, ServeEvent,
};

/// What a task thread receives.
pub enum Mail {
    /// A buffer from `producer` on plan edge `edge`; give `receipt` back once it is accepted
    /// (dropping it gives it back too).
    Buffer {
        /// The producer attempt.
        producer: ExecutionId,
        /// The plan edge.
        edge: usize,
        /// The elements.
        buffer: Buffer,
        /// The buffer's credit, for its consumer's input gate.
        receipt: Receipt,
    },
    /// Inject a barrier (a source, or a task whose input ended).
    Trigger(Barrier, String),
    /// A checkpoint completed or was aborted.
    Notify(CheckpointId, bool),
    /// Stop at once.
    Cancel,
    /// Fail at once: an input or output of the task is gone (why).
    Fail(String),
}

/// Where a subtask runs, across attempts.
type SubtaskKey = (JobId, VertexIndex, SubtaskIndex);

#[derive(Default)]
struct Registry {
    buffers: ChannelBuffers,
    mailboxes: BTreeMap<ExecutionId, Sender<Mail>>,
    /// The input gates of the consumers here, by consumer attempt and plan edge.
    gates: BTreeMap<(ExecutionId, usize), Arc<Gate>>,
    waiting: BTreeMap<ExecutionId, Vec<Mail>>,
    /// The data address of each subtask's TaskManager, as deployments said (remote exchanges).
    locations: BTreeMap<SubtaskKey, String>,
    /// The credit of each channel from a local producer to a remote consumer, which the credit
    /// frames coming back give back to.
    remote_credits: BTreeMap<(ExecutionId, ExecutionId), Arc<Credit>>,
    /// By peer data address: the local tasks that sent buffers there or received from there.
    peers: BTreeMap<String, BTreeSet<ExecutionId>>,
    /// Local tasks told to fail because a data connection broke; their buffers go nowhere.
    severed: BTreeSet<ExecutionId>,
}

/// This TaskManager's side of the data links.
struct Remote {
    /// This TaskManager's data address (its listener, as peers know it).
    address: String,
    links: DataLinks,
    config: DataConfig,
}

/// The running tasks of this process, and the way to the others.
#[derive(Clone)]
pub struct Exchange {
    registry: Arc<Mutex<Registry>>,
    remote: Option<Arc<Remote>>,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange::local(ChannelBuffers::default())
    }
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Exchange {
    /// An exchange between the tasks of this process only (`weir local`), whose channels and
    /// gates have `buffers`.
    pub fn local(buffers: ChannelBuffers) -> Exchange {
        let registry = Registry { buffers, ..Registry::default() };
        Exchange { registry: Arc::new(Mutex::new(registry)), remote: None }
    }

    /// An exchange of the TaskManager whose data listener is `data_address` (host:port, as its
    /// peers reach it), with data links to other TaskManagers run on `runtime`. Its peers must
    /// know it by that same address (their `set_location`), and every TaskManager of the
    /// cluster must give channels the same exclusive `buffers` (the listener holds producers to
    /// that credit, whatever `config` says).
    #[allow(dead_code, reason = "called by the TaskManager daemon (nodes/src/daemon)")]
    pub fn remote(data_address: String, runtime: Handle, config: DataConfig, buffers: ChannelBuffers) -> Exchange {
        let config = DataConfig { channel_credits_max: buffers.exclusive.max(1), ..config };
        let registry = Arc::new(Mutex::new(Registry { buffers, ..Registry::default() }));
        let weak = Arc::downgrade(&registry);
        let on_event = Arc::new(move |event| on_link_event(&weak, event));
        let links = DataLinks::new(runtime, &data_address, config.clone(), on_event);
        Exchange { registry, remote: Some(Arc::new(Remote { address: data_address, links, config })) }
    }

    /// This TaskManager's data address; `None` for a local exchange.
    #[allow(dead_code, reason = "called by the TaskManager daemon (nodes/src/daemon)")]
    pub fn data_address(&self) -> Option<&str> {
        self.remote.as_ref().map(|remote| remote.address.as_str())
    }

    /// The data listener: accepts other TaskManagers' buffers on `listener` and delivers them
    /// to the tasks registered here, until the future is dropped (which closes every connection
    /// it accepted). Spawn it on the runtime. A local exchange has no listener: it ends at once.
    #[allow(dead_code, reason = "called by the TaskManager daemon (nodes/src/daemon)")]
    pub fn serve(&self, listener: TcpListener) -> impl Future<Output = ()> + Send + 'static {
        let weak = Arc::downgrade(&self.registry);
        let on_event = Arc::new(move |event| on_serve_event(&weak, event));
        let serving = self.remote.as_ref().map(|remote| data::serve(listener, remote.config.clone(), on_event));
        async move {
            if let Some(serving) = serving {
                serving.await;
            }
        }
    }

    /// Subtask `subtask` of `vertex` of `job` runs in the TaskManager at `data_address` (this
    /// one's own address included).
    #[allow(dead_code, reason = "called by the TaskManager daemon (nodes/src/daemon)")]
    pub fn set_location(&self, job: JobId, vertex: VertexIndex, subtask: SubtaskIndex, data_address: String) {
        lock(&self.registry).locations.insert((job, vertex, subtask), data_address);
    }

    /// Forgets everything about `job`: locations, channels, and mail still waiting (whose credit
    /// is given back).
    #[allow(dead_code, reason = "called by the TaskManager daemon (nodes/src/daemon)")]
    pub fn forget_job(&self, job: JobId) {
        let mut registry = lock(&self.registry);
        registry.locations.retain(|(of, _, _), _| *of != job);
        registry.gates.retain(|(consumer, _), _| consumer.job != job);
        registry.remote_credits.retain(|(producer, _), _| producer.job != job);
        for executions in registry.peers.values_mut() {
            executions.retain(|execution| execution.job != job);
        }
        registry.peers.retain(|_, executions| !executions.is_empty());
        registry.severed.retain(|execution| execution.job != job);
        let waiting: Vec<ExecutionId> = registry.waiting.keys().filter(|id| id.job == job).copied().collect();
        for execution in waiting {
            registry.waiting.remove(&execution); // dropped: their receipts give their credit back
        }
    }

    /// A new channel's credit, for a producer to spend on [`Exchange::send`].
    pub fn credit(&self) -> Arc<Credit> {
        Arc::new(Credit::new(lock(&self.registry).buffers))
    }

    /// A task started: mail for it goes to `mailbox`, starting with what waited for it.
    pub fn register(&self, execution: ExecutionId, mailbox: Sender<Mail>) {
        let mut registry = lock(&self.registry);
        let older = ExecutionId { attempt: AttemptNumber(0), ..execution }..execution;
        let stale: Vec<ExecutionId> = registry.waiting.range(older).map(|(id, _)| *id).collect();
        for id in stale {
            // Superseded: dropped, their credit goes back (to a producer in another process, too).
            registry.waiting.remove(&id);
            registry.forget_gates(&id);
        }
        for mail in registry.waiting.remove(&execution).unwrap_or_default() {
            let _ = mailbox.send(mail);
        }
        registry.mailboxes.insert(execution, mailbox);
    }

    /// A task ended: mail for it is dropped from now on, and its channels to other processes
    /// are forgotten.
    pub fn deregister(&self, execution: &ExecutionId) {
        let mut registry = lock(&self.registry);
        registry.mailboxes.remove(execution);
        registry.forget_gates(execution);
        if self.remote.is_some() {
            registry.remote_credits.retain(|(producer, _), _| producer != execution);
            for executions in registry.peers.values_mut() {
                executions.remove(execution);
            }
            registry.peers.retain(|_, executions| !executions.is_empty());
            registry.severed.remove(execution);
        }
    }

    /// Posts control mail to `execution`: delivered when it is registered here, else kept
    /// until it registers, or dropped when a newer attempt already did (or it runs in another
    /// process: control mail travels there by RPC).
    pub fn post(&self, execution: ExecutionId, mail: Mail) {
        let mut registry = lock(&self.registry);
        if !registry.mailboxes.contains_key(&execution)
            && let Some(remote) = &self.remote
            && let Some(address) = registry.remote_address(&execution, &remote.address)
        {
            tracing::debug!(%execution, %address, "control mail for a task of another TaskManager dropped");
            return;
        }
        registry.deliver(execution, mail);
    }

    /// Sends `buffer` from `producer` to `consumer` on plan edge `edge`, having spent a credit of
    /// the channel's `credit` (`backlog`: its last). The consumer's gate gives it back; a buffer
    /// that can never arrive gives it back at once.
    pub fn send(&self, channel: Channel<'_>, buffer: Buffer, backlog: bool) {
        let Channel { producer, consumer, edge, credit } = channel;
        let mut registry = lock(&self.registry);
        if !registry.mailboxes.contains_key(&consumer)
            && let Some(remote) = &self.remote
            && let Some(address) = registry.remote_address(&consumer, &remote.address)
        {
            remote.send(&mut registry, address, channel, buffer, backlog);
            return;
        }
        let receipt = registry.gate(consumer, edge).arrived(producer, Grantee::Local(credit.clone()), backlog);
        registry.deliver(consumer, Mail::Buffer { producer, edge, buffer, receipt });
    }
}

/// One channel, as its producer sends on it.
#[derive(Clone, Copy)]
pub struct Channel<'a> {
    /// The producer attempt.
    pub producer: ExecutionId,
    /// The consumer attempt.
    pub consumer: ExecutionId,
    /// The plan edge.
    pub edge: usize,
    /// The producer's credit on it.
    pub credit: &'a Arc<Credit>,
}

impl Registry {
    /// Delivers `mail` to a task of this process: to its mailbox, kept until it registers, or
    /// dropped when a newer attempt of its subtask is registered.
    fn deliver(&mut self, execution: ExecutionId, mail: Mail) {
        match self.mailboxes.get(&execution) {
            Some(mailbox) => {
                // A mailbox whose task is gone drops the mail, and with it the buffer's credit.
                let _ = mailbox.send(mail);
            }
            None => {
                let newer = ExecutionId { attempt: AttemptNumber(execution.attempt.0.saturating_add(1)), ..execution };
                let superseded = self.mailboxes.range(newer..).next().is_some_and(|(id, _)| {
                    (id.job, id.vertex, id.subtask) == (execution.job, execution.vertex, execution.subtask)
                });
                if superseded {
                    drop(mail); // its credit goes back
                    self.forget_gates(&execution);
                } else {
                    self.waiting.entry(execution).or_default().push(mail);
                }
            }
        }
    }

    /// The input gate of `consumer` on plan edge `edge`.
    fn gate(&mut self, consumer: ExecutionId, edge: usize) -> Arc<Gate> {
        let floating = self.buffers.floating;
        self.gates.entry((consumer, edge)).or_insert_with(|| Gate::new(floating)).clone()
    }

    /// Forgets the input gates of `consumer` (buffers still on their way keep theirs).
    fn forget_gates(&mut self, consumer: &ExecutionId) {
        let stale: Vec<(ExecutionId, usize)> =
            self.gates.range((*consumer, 0)..=(*consumer, usize::MAX)).map(|(key, _)| *key).collect();
        for key in stale {
            self.gates.remove(&key);
        }
    }

    /// The data address `execution` runs at, when known and not `own`.
    fn remote_address(&self, execution: &ExecutionId, own: &str) -> Option<String> {
        let address = self.locations.get(&(execution.job, execution.vertex, execution.subtask))?;
        (address != own).then(|| address.clone())
    }

    /// Remembers that `execution` exchanges buffers with `peer`.
    fn touch(&mut self, peer: &str, execution: ExecutionId) {
        match self.peers.get_mut(peer) {
            Some(executions) => {
                executions.insert(execution);
            }
            None => {
                self.peers.insert(peer.to_string(), BTreeSet::from([execution]));
            }
        }
    }

    /// The data connection to `peer` broke: every task that exchanged buffers with it fails.
    fn sever(&mut self, peer: &str, reason: &str) {
        let Some(executions) = self.peers.remove(peer) else { return };
        for execution in executions {
            self.fail(execution, format!("data connection to {peer} lost: {reason}"));
        }
    }

    /// Tells `execution` to fail (once) and cuts it off from other processes.
    fn fail(&mut self, execution: ExecutionId, reason: String) {
        if self.severed.insert(execution) {
            tracing::warn!(%execution, %reason, "failing a task");
            self.deliver(execution, Mail::Fail(reason));
        }
    }

    /// A consumer in another process gave credit (back).
    fn return_credits(&self, credit: &DataCredit) {
        if let Some(channel) = self.remote_credits.get(&(credit.producer, credit.consumer)) {
            channel.grant(credit.credits);
        }
    }

    /// A buffer from `peer` for a task of this process.
    fn receive(&mut self, peer: &str, buffer: DataBuffer, credit: CreditReturn) {
        let (producer, consumer, edge) = (buffer.producer, buffer.consumer, buffer.edge as usize);
        let receipt = self.gate(consumer, edge).arrived(producer, Grantee::Remote(credit), buffer.backlog);
        if self.severed.contains(&consumer) {
            return; // dropped with its receipt: the credit goes back
        }
        self.touch(peer, consumer);
        let buffer = Buffer::from_parts(buffer.bytes, buffer.elements);
        self.deliver(consumer, Mail::Buffer { producer, edge, buffer, receipt });
    }
}

impl Remote {
    /// Sends a buffer to its consumer at `address`; a buffer that cannot go gives its credit
    /// back and fails its producer.
    fn send(&self, registry: &mut Registry, address: String, channel: Channel<'_>, buffer: Buffer, backlog: bool) {
        let Channel { producer, consumer, edge, credit } = channel;
        if registry.severed.contains(&producer) {
            credit.grant(1);
            return;
        }
        registry.remote_credits.entry((producer, consumer)).or_insert_with(|| credit.clone());
        registry.touch(&address, producer);
        let edge = u32::try_from(edge).unwrap_or(u32::MAX);
        let (elements, bytes) = (buffer.elements(), buffer.into_bytes());
        let data = DataBuffer { producer, consumer, edge, elements, backlog, bytes };
        if let Err(error) = self.links.send(&address, data) {
            credit.grant(1);
            let reason = match error {
                DataError::TooLarge { .. } => format!("cannot send to {consumer} at {address}: {error}"),
                _ => format!("data connection to {address} lost: {error}"),
            };
            registry.fail(producer, reason);
        }
    }
}

fn on_link_event(registry: &Weak<Mutex<Registry>>, event: LinkEvent) {
    let Some(registry) = registry.upgrade() else { return };
    let mut registry = lock(&registry);
    match event {
        LinkEvent::Credit { credit, .. } => registry.return_credits(&credit),
        LinkEvent::Lost { peer, reason, undelivered } => {
            undelivered.iter().for_each(|credit| registry.return_credits(credit));
            registry.sever(&peer, &reason);
        }
    }
}

fn on_serve_event(registry: &Weak<Mutex<Registry>>, event: ServeEvent) {
    let Some(registry) = registry.upgrade() else { return };
    let mut registry = lock(&registry);
    match event {
        ServeEvent::Connected { peer } => tracing::debug!(%peer, "data connection from a TaskManager"),
        ServeEvent::Buffer { peer, buffer, credit } => registry.receive(&peer, buffer, credit),
        ServeEvent::Closed { peer, reason } => registry.sever(&peer, &reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Receiver, channel};
    use std::time::Duration;
    use weir_core::ids::Hex128;

    const WAIT: Duration = Duration::from_secs(10);
    /// A channel's credit with the default buffers and the gate's floating ones lent to it.
    const CREDITS: u32 = 2 + 8;

    /// One TaskManager's exchange with its data listener on 127.0.0.1.
    struct Node {
        exchange: Exchange,
        address: String,
        listener: tokio::task::JoinHandle<()>,
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
    }

    fn node(runtime: &tokio::runtime::Runtime) -> Node {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("bound").to_string();
        let buffers = ChannelBuffers::default();
        let exchange = Exchange::remote(address.clone(), runtime.handle().clone(), DataConfig::default(), buffers);
        let listener = runtime.spawn(exchange.serve(listener));
        Node { exchange, address, listener }
    }

    /// Registers `consumer` with `exchange`: its mailbox.
    fn register(exchange: &Exchange, consumer: ExecutionId) -> Receiver<Mail> {
        let (mail, mailbox) = channel();
        exchange.register(consumer, mail);
        mailbox
    }

    /// Two TaskManagers, the producer vertex on A and the consumer vertex on B.
    fn producer_on_a_consumer_on_b() -> (tokio::runtime::Runtime, Node, Node) {
        let runtime = runtime();
        let (a, b) = (node(&runtime), node(&runtime));
        place(&[&a, &b], &a, &b);
        (runtime, a, b)
    }

    fn job() -> JobId {
        JobId(Hex128(0x5eed))
    }

    fn execution(vertex: u32, attempt: u32) -> ExecutionId {
        producer_of(vertex, 0, attempt)
    }

    fn producer_of(vertex: u32, subtask: u32, attempt: u32) -> ExecutionId {
        ExecutionId {
            job: job(),
            vertex: VertexIndex(vertex),
            subtask: SubtaskIndex(subtask),
            attempt: AttemptNumber(attempt),
        }
    }

    /// Vertex 0 (the producer) runs at `producer_side`, vertex 1 (the consumer) at `consumer_side`.
    fn place(nodes: &[&Node], producer_side: &Node, consumer_side: &Node) {
        for node in nodes {
            for subtask in 0..2 {
                let at = producer_side.address.clone();
                node.exchange.set_location(job(), VertexIndex(0), SubtaskIndex(subtask), at);
            }
            node.exchange.set_location(job(), VertexIndex(1), SubtaskIndex(0), consumer_side.address.clone());
        }
    }

    fn buffer(sequence: u32) -> Buffer {
        Buffer::from_parts((0..100 + sequence).map(|at| (at ^ sequence) as u8).collect(), sequence)
    }

    /// Spends a credit of `credit` (waiting for it) and sends buffer `sequence` from `producer`.
    fn send_from(
        exchange: &Exchange,
        producer: ExecutionId,
        consumer: ExecutionId,
        sequence: u32,
        credit: &Arc<Credit>,
    ) {
        let backlog = credit.take(WAIT).unwrap_or_else(|| panic!("no credit for buffer {sequence} within {WAIT:?}"));
        exchange.send(Channel { producer, consumer, edge: 0, credit }, buffer(sequence), backlog);
    }

    /// Sends from vertex 0's subtask 0, of the consumer's attempt.
    fn send(exchange: &Exchange, consumer: ExecutionId, sequence: u32, credit: &Arc<Credit>) {
        send_from(exchange, execution(0, consumer.attempt.0), consumer, sequence, credit);
    }

    fn next_buffer(mailbox: &Receiver<Mail>) -> (ExecutionId, Buffer, Receipt) {
        match mailbox.recv_timeout(WAIT) {
            Ok(Mail::Buffer { producer, buffer, receipt, .. }) => (producer, buffer, receipt),
            Ok(_) => panic!("expected a buffer, got other mail"),
            Err(error) => panic!("no buffer within {WAIT:?}: {error}"),
        }
    }

    fn next_failure(mailbox: &Receiver<Mail>) -> String {
        loop {
            match mailbox.recv_timeout(WAIT) {
                Ok(Mail::Fail(reason)) => return reason,
                Ok(mail) => drop(mail),
                Err(error) => panic!("no failure within {WAIT:?}: {error}"),
            }
        }
    }

    fn peers(exchange: &Exchange) -> Vec<String> {
        exchange.remote.as_ref().expect("a remote exchange").links.peers()
    }

    /// No credit comes within a short wait.
    fn starved(credit: &Credit) -> bool {
        credit.take(Duration::from_millis(300)).is_none()
    }

    #[test]
    fn a_remote_consumer_gets_the_buffers_and_holds_back_its_producer_like_a_local_one() {
        let (_runtime, a, b) = producer_on_a_consumer_on_b();
        let (producer, consumer) = (execution(0, 0), execution(1, 0));
        let (producer_mail, producer_mailbox) = channel();
        a.exchange.register(producer, producer_mail);
        let consumer_mailbox = register(&b.exchange, consumer);

        let credit = a.exchange.credit();
        for sequence in 0..CREDITS {
            send(&a.exchange, consumer, sequence, &credit); // the floating ones come by credit frame
        }
        let mut accepted = Vec::new();
        for sequence in 0..CREDITS {
            let (from, arrived, receipt) = next_buffer(&consumer_mailbox);
            assert_eq!((from, &arrived), (producer, &buffer(sequence)), "in order, bytes and count intact");
            accepted.push(receipt);
        }
        assert!(starved(&credit), "the 11th buffer waits: B's consumer accepted nothing");
        accepted.pop().expect("ten buffers").give_back();
        assert!(credit.take(WAIT).is_some(), "a buffer accepted in B frees the producer in A");
        assert_eq!(peers(&a.exchange), vec![b.address.clone()]);
        assert!(peers(&b.exchange).is_empty(), "B sent nothing, so it opened no link");

        b.listener.abort(); // B's listener goes, with every connection it accepted
        let reason = next_failure(&producer_mailbox);
        assert!(reason.contains(&format!("data connection to {} lost", b.address)), "{reason}");
        let channel = Channel { producer, consumer, edge: 0, credit: &credit };
        a.exchange.send(channel, buffer(CREDITS), true);
        assert!(credit.take(WAIT).is_some(), "a buffer that can no longer be sent gives its credit back");
    }

    #[test]
    fn a_remote_gate_lends_its_floating_buffers_to_the_busy_channel_and_bounds_the_whole() {
        let (_runtime, a, b) = producer_on_a_consumer_on_b();
        let consumer = execution(1, 0);
        let consumer_mailbox = register(&b.exchange, consumer);
        let (busy, idle) = (producer_of(0, 0, 0), producer_of(0, 1, 0));
        let (busy_credit, idle_credit) = (a.exchange.credit(), a.exchange.credit());
        for sequence in 0..CREDITS {
            send_from(&a.exchange, busy, consumer, sequence, &busy_credit);
        }
        assert!(starved(&busy_credit), "exclusive and every floating buffer are out");
        send_from(&a.exchange, idle, consumer, 0, &idle_credit);
        send_from(&a.exchange, idle, consumer, 1, &idle_credit);
        assert!(starved(&idle_credit), "the other channel still has its exclusive buffers, and no more");
        let held: Vec<Receipt> = (0..CREDITS + 2).map(|_| next_buffer(&consumer_mailbox).2).collect();
        assert!(consumer_mailbox.try_recv().is_err(), "the gate holds channels × exclusive + floating, no more");
        drop(held);
        assert!(idle_credit.take(WAIT).is_some() && busy_credit.take(WAIT).is_some(), "all credit came back");
    }

    #[test]
    fn a_local_gate_lends_its_floating_buffers_too() {
        let exchange = Exchange::local(ChannelBuffers { exclusive: 1, floating: 3 });
        let consumer = execution(1, 0);
        let consumer_mailbox = register(&exchange, consumer);
        let credit = exchange.credit();
        for sequence in 0..4 {
            send(&exchange, consumer, sequence, &credit);
        }
        assert!(starved(&credit), "1 exclusive + 3 floating");
        let first = next_buffer(&consumer_mailbox).2;
        first.give_back();
        assert!(credit.take(WAIT).is_some(), "the channel still has a backlog: the floating buffer comes back to it");
    }

    #[test]
    fn a_consumer_fails_when_its_producers_taskmanager_goes() {
        let (_runtime, a, b) = producer_on_a_consumer_on_b();
        let consumer = execution(1, 0);
        let consumer_mailbox = register(&b.exchange, consumer);
        let credit = a.exchange.credit();
        send(&a.exchange, consumer, 0, &credit);
        assert_eq!(credit.available(), 1);
        next_buffer(&consumer_mailbox).2.give_back();
        let deadline = std::time::Instant::now() + WAIT;
        while credit.available() < 2 {
            assert!(std::time::Instant::now() < deadline, "the credit came back over the connection");
            std::thread::sleep(Duration::from_millis(5));
        }

        drop(a); // A's exchange, its links and its listener go
        let reason = next_failure(&consumer_mailbox);
        assert!(reason.contains("data connection to") && reason.contains("lost"), "{reason}");
    }

    #[test]
    fn a_buffer_for_a_superseded_remote_consumer_gives_its_credit_back() {
        let (_runtime, a, b) = producer_on_a_consumer_on_b();
        let (newer_mail, newer_mailbox) = channel();
        b.exchange.register(execution(1, 1), newer_mail);
        let credit = a.exchange.credit();
        for sequence in 0..CREDITS {
            send(&a.exchange, execution(1, 0), sequence, &credit);
        }
        assert!(credit.take(WAIT).is_some(), "B dropped the stale attempt's buffers and gave their credit back");
        assert!(newer_mailbox.try_recv().is_err(), "the newer attempt never sees them");
    }

    #[test]
    fn buffers_waiting_for_a_remote_consumer_give_their_credit_back_once_a_newer_attempt_registers() {
        let (_runtime, a, b) = producer_on_a_consumer_on_b();
        let credit = a.exchange.credit();
        for sequence in 0..CREDITS {
            send(&a.exchange, execution(1, 0), sequence, &credit);
        }
        assert!(starved(&credit), "held in B until attempt 0 registers");
        let (newer_mail, newer_mailbox) = channel();
        b.exchange.register(execution(1, 1), newer_mail);
        assert!(credit.take(WAIT).is_some(), "attempt 1 superseded them: their credit came back to A");
        assert!(newer_mailbox.try_recv().is_err(), "the newer attempt never sees them");
    }

    #[test]
    fn local_channels_of_a_remote_exchange_never_open_a_link() {
        let runtime = runtime();
        let (a, b) = (node(&runtime), node(&runtime));
        place(&[&a], &a, &a);
        let consumer = execution(1, 0);
        let credit = a.exchange.credit();
        send(&a.exchange, consumer, 0, &credit); // not registered yet: waits here
        let consumer_mailbox = register(&a.exchange, consumer);
        assert_eq!(next_buffer(&consumer_mailbox).1, buffer(0));

        a.exchange.set_location(job(), VertexIndex(1), SubtaskIndex(0), b.address.clone());
        send(&a.exchange, consumer, 1, &credit);
        assert_eq!(next_buffer(&consumer_mailbox).1, buffer(1), "a task registered here is served here");
        assert!(peers(&a.exchange).is_empty(), "no socket for channels inside one TaskManager");
    }
}

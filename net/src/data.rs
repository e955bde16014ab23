//! Data channels between TaskManagers: buffers from producer tasks to consumer tasks in another
//! process, and the consumers' credit coming back, over TCP.
//!
//! As in Flink, a TaskManager has one data listener, and between an ordered pair of TaskManagers
//! (producer side → consumer side) there is one connection, opened by the producer side, that
//! multiplexes every logical channel (producer attempt → consumer attempt) between the two:
//! [`DataFrame::Buffer`] goes out, [`DataFrame::Credit`] comes back on the same connection. A
//! buffer travels as the bytes its producer encoded (records are not re-encoded).
//!
//! - [`serve`]: the listener. It hands each buffer to a callback with a [`CreditReturn`] for the
//!   connection it came on, and reports each connection that opens and ends (peer, reason).
//! - [`DataLinks`]: the outgoing connections, one per remote data address, opened on first use
//!   (retrying with backoff for up to [`DataConfig::connect_give_up`]) and driven by tokio tasks;
//!   a plain std thread queues a buffer without touching the socket.
//!
//! Flow control is the caller's (weir-nodes' exchange): a producer sends no more than its
//! channel's credits, so what waits in a link's queue is bounded by the credits of the channels
//! on it, and by [`DataConfig::link_queue_buffers_max`] besides. A connection that breaks is not
//! resumed: buffers in flight are lost, so the link reports itself lost (and the tasks on it
//! fail and are restarted by their job); the next buffer for that address opens a new
//! connection. Garbage, an oversize frame, another protocol version, a wrong token or a frame in
//! the wrong direction closes that one connection with a warning; the others go on.

use crate::connection::{self, FrameReader, FrameWriter, NetError};
use crate::handshake::{Hello, PROTOCOL_VERSION, PeerRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use weir_core::protocol::ExecutionId;

/// The largest data frame accepted by default: a buffer holding one oversized record travels
/// whole (the default buffer is 32 KiB).
pub const DATA_FRAME_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// How long a link keeps trying to connect before it reports the peer lost.
pub const CONNECT_GIVE_UP_DEFAULT: Duration = Duration::from_secs(10);
/// Buffers that may wait in one link's queue by default (credit keeps it far lower in practice).
pub const LINK_QUEUE_BUFFERS_DEFAULT: usize = 64 * 1024;
/// The credit a channel starts with by default (Flink's exclusive buffers per channel).
pub const CHANNEL_CREDITS_DEFAULT: u32 = 2;
/// The most a buffer frame adds to the buffer's bytes (ids, edge, counts, lengths, header).
pub const BUFFER_FRAME_OVERHEAD_BYTES: usize = 128;

const CONNECT_BACKOFF_START: Duration = Duration::from_millis(20);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Frames gathered into one socket write when several are queued.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Settings of the data listener and links.
#[derive(Clone, Debug)]
pub struct DataConfig {
    /// The cluster token (`security.token`): required from peers, presented to them.
    pub token: Option<String>,
    /// The largest frame sent or accepted.
    pub frame_bytes_max: usize,
    /// How long a link tries to connect before it reports the peer lost.
    pub connect_give_up: Duration,
    /// Buffers that may wait in one link's queue; beyond it `send` refuses.
    pub link_queue_buffers_max: usize,
    /// The credit each channel's producer starts with (its exclusive buffers). A producer that
    /// sends more than that plus the credit given to it since is closed.
    pub channel_credits_max: u32,
}

impl Default for DataConfig {
    fn default() -> DataConfig {
        DataConfig {
            token: None,
            frame_bytes_max: DATA_FRAME_BYTES_MAX_DEFAULT,
            connect_give_up: CONNECT_GIVE_UP_DEFAULT,
            link_queue_buffers_max: LINK_QUEUE_BUFFERS_DEFAULT,
            channel_credits_max: CHANNEL_CREDITS_DEFAULT,
        }
    }
}

/// A buffer on its way from a producer attempt to a consumer attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBuffer {
    /// The producer attempt.
    pub producer: ExecutionId,
    /// The consumer attempt.
    pub consumer: ExecutionId,
    /// The plan edge.
    pub edge: u32,
    /// Elements in the buffer, as the producer counted them.
    pub elements: u32,
    /// The producer spent its last credit on this buffer: it asks for floating buffers.
    pub backlog: bool,
    /// The buffer's encoded elements.
    #[serde(with = "blob")]
    pub bytes: Vec<u8>,
}

/// Credits a consumer gives a producer: buffers its task accepted on that channel, or floating
/// buffers lent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCredit {
    /// The producer attempt.
    pub producer: ExecutionId,
    /// The consumer attempt.
    pub consumer: ExecutionId,
    /// How many.
    pub credits: u32,
}

/// A frame of a data connection after the hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFrame {
    /// Producer side → consumer side.
    Buffer(DataBuffer),
    /// Consumer side → producer side.
    Credit(DataCredit),
}

/// Why a data connection or a send failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The connection failed (socket, framing, decoding, handshake).
    #[error("{0}")]
    Net(#[from] NetError),
    /// The peer sent a frame that only goes the other way.
    #[error("the peer sent a {0} frame, which only goes the other way")]
    WrongDirection(&'static str),
    /// A producer sent beyond its channel's credit.
    #[error("the producer sent more than {max} buffers on channel {producer} -> {consumer} without credit")]
    CreditExceeded {
        /// The producer attempt.
        producer: ExecutionId,
        /// The consumer attempt.
        consumer: ExecutionId,
        /// The channel's credits.
        max: u32,
    },
    /// Something other than a TaskManager opened a data connection.
    #[error("a {0:?} may not open a data connection")]
    NotTaskManager(PeerRole),
    /// No connection could be made in time.
    #[error("no connection within {waited:?}: {last}")]
    Unreachable {
        /// How long the link tried.
        waited: Duration,
        /// The last attempt's failure.
        last: NetError,
    },
    /// The buffer cannot be sent in one frame.
    #[error("a buffer of {bytes} bytes does not fit a data frame (at most {max} bytes)")]
    TooLarge {
        /// The buffer's bytes.
        bytes: usize,
        /// The most a buffer may hold.
        max: usize,
    },
    /// The link's queue is full.
    #[error("{max} buffers already wait for the link")]
    QueueFull {
        /// The queue's bound.
        max: usize,
    },
    /// The link failed; it is being reported lost.
    #[error("the link to {0} is lost")]
    Lost(String),
}

/// Sends credit back on the connection a buffer came on.
#[derive(Clone, Debug)]
pub struct CreditReturn {
    producer: ExecutionId,
    consumer: ExecutionId,
    queue: mpsc::UnboundedSender<DataCredit>,
}

impl CreditReturn {
    /// Gives `credits` back to the buffer's producer; false when the connection is gone.
    pub fn give(&self, credits: u32) -> bool {
        let credit = DataCredit { producer: self.producer, consumer: self.consumer, credits };
        self.queue.send(credit).is_ok()
    }
}

/// What the listener reports.
#[derive(Debug)]
pub enum ServeEvent {
    /// A producer-side TaskManager connected and was welcomed.
    Connected {
        /// Its data address (from its hello).
        peer: Arc<str>,
    },
    /// A buffer arrived; give its credit back with `credit` once the consumer accepted it.
    Buffer {
        /// The TaskManager it came from.
        peer: Arc<str>,
        /// The buffer.
        buffer: DataBuffer,
        /// The way back to its producer.
        credit: CreditReturn,
    },
    /// A welcomed connection ended.
    Closed {
        /// The TaskManager it came from.
        peer: Arc<str>,
        /// Why.
        reason: String,
    },
}

/// Receives the listener's events, on its tokio tasks: must not block.
pub type ServeCallback = Arc<dyn Fn(ServeEvent) + Send + Sync>;

/// Accepts data connections on `listener` until this future is dropped, which also closes every
/// connection it accepted. Each connection's buffers go to `on_event`; a connection that fails
/// its handshake or sends something unreadable is closed with a warning, the others go on.
pub async fn serve(listener: TcpListener, config: DataConfig, on_event: ServeCallback) {
    let config = Arc::new(config);
    let mut connections = Connections::default();
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "data listener: accept failed");
                tokio::time::sleep(CONNECT_BACKOFF_START).await;
                continue;
            }
        };
        let (config, on_event) = (config.clone(), on_event.clone());
        let task = tokio::spawn(async move { serve_connection(stream, from, &config, &on_event).await });
        connections.add(task.abort_handle());
    }
}

/// The listener's connection tasks, aborted when the listener goes.
#[derive(Default)]
struct Connections(Vec<AbortHandle>);

impl Connections {
    fn add(&mut self, task: AbortHandle) {
        self.0.retain(|task| !task.is_finished());
        self.0.push(task);
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        self.0.iter().for_each(AbortHandle::abort);
    }
}

async fn serve_connection(stream: TcpStream, from: SocketAddr, config: &DataConfig, on_event: &ServeCallback) {
    let (hello, reader, writer) =
        match connection::accept(stream, config.token.as_deref(), config.frame_bytes_max).await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%from, %error, "refused a data connection");
                return;
            }
        };
    if hello.role != PeerRole::TaskManager {
        tracing::warn!(%from, error = %DataError::NotTaskManager(hello.role), "closed a data connection");
        return;
    }
    let peer: Arc<str> = hello.listen.unwrap_or(hello.name).into();
    on_event(ServeEvent::Connected { peer: peer.clone() });
    let reason = match receive_buffers(&peer, reader, writer, config.channel_credits_max, on_event).await {
        Ok(()) => "the peer closed the connection".to_string(),
        Err(error) => {
            tracing::warn!(%from, %peer, %error, "closed a data connection");
            error.to_string()
        }
    };
    on_event(ServeEvent::Closed { peer, reason });
}

/// Reads buffers and writes the credits given back, until the connection ends. A channel may
/// have at most `credits_max` buffers delivered beyond the credit sent back (which includes
/// floating buffers lent ahead of any buffer).
async fn receive_buffers(
    peer: &Arc<str>,
    mut reader: FrameReader,
    mut writer: FrameWriter,
    credits_max: u32,
    on_event: &ServeCallback,
) -> Result<(), DataError> {
    // Unbounded, yet bounded by credit: each entry is one buffer this connection delivered.
    let (queue, mut returned) = mpsc::unbounded_channel::<DataCredit>();
    let unanswered = Unanswered { credits_max, channels: Mutex::default() };
    let receiving = async {
        while let Some(frame) = reader.recv::<DataFrame>().await? {
            let DataFrame::Buffer(buffer) = frame else { return Err(DataError::WrongDirection("credit")) };
            unanswered.deliver(buffer.producer, buffer.consumer)?;
            let credit = CreditReturn { producer: buffer.producer, consumer: buffer.consumer, queue: queue.clone() };
            on_event(ServeEvent::Buffer { peer: peer.clone(), buffer, credit });
        }
        Ok(())
    };
    let returning = async {
        while let Some(first) = returned.recv().await {
            let mut owed: BTreeMap<(ExecutionId, ExecutionId), u32> = BTreeMap::new();
            for credit in std::iter::once(first).chain(std::iter::from_fn(|| returned.try_recv().ok())) {
                let entry = owed.entry((credit.producer, credit.consumer)).or_default();
                *entry = entry.saturating_add(credit.credits);
            }
            unanswered.answer(&owed);
            for ((producer, consumer), credits) in owed {
                writer.stage(&DataFrame::Credit(DataCredit { producer, consumer, credits }))?;
            }
            writer.flush().await?;
        }
        Ok::<(), DataError>(())
    };
    tokio::select! {
        ended = receiving => ended,
        ended = returning => ended,
    }
}

/// Per channel of one connection, buffers delivered minus credit sent back: negative while the
/// consumer side has lent the channel floating buffers it has not used yet.
struct Unanswered {
    credits_max: u32,
    /// Absent: zero.
    channels: Mutex<BTreeMap<(ExecutionId, ExecutionId), i64>>,
}

impl Unanswered {
    /// One more buffer on the channel, unless that is more than its credit.
    fn deliver(&self, producer: ExecutionId, consumer: ExecutionId) -> Result<(), DataError> {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = channels.entry((producer, consumer)).or_default();
        if *count >= i64::from(self.credits_max) {
            return Err(DataError::CreditExceeded { producer, consumer, max: self.credits_max });
        }
        *count += 1;
        Ok(())
    }

    /// Credit is on its way back for these buffers.
    fn answer(&self, owed: &BTreeMap<(ExecutionId, ExecutionId), u32>) {
        let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (channel, credits) in owed {
            let count = channels.entry(*channel).or_default();
            *count -= i64::from(*credits);
            if *count == 0 {
                channels.remove(channel);
            }
        }
    }
}

/// What outgoing links report, on their tokio tasks: must not block.
#[derive(Debug)]
pub enum LinkEvent {
    /// A consumer gave credit back.
    Credit {
        /// The consumer side's data address.
        peer: Arc<str>,
        /// The channel and how many.
        credit: DataCredit,
    },
    /// The link could not connect in time, or broke: buffers sent on it may be lost. The next
    /// buffer for `peer` opens a new connection.
    Lost {
        /// The consumer side's data address.
        peer: Arc<str>,
        /// Why.
        reason: String,
        /// Buffers that were queued and never written, counted per channel.
        undelivered: Vec<DataCredit>,
    },
}

/// Receives the links' events.
pub type LinkCallback = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// The outgoing data connections of one TaskManager, one per remote data address.
#[derive(Clone)]
pub struct DataLinks {
    shared: Arc<LinksShared>,
}

struct LinksShared {
    runtime: Handle,
    hello: Hello,
    config: DataConfig,
    on_event: LinkCallback,
    links: Mutex<BTreeMap<String, Link>>,
    link_id_next: AtomicU64,
}

struct Link {
    id: u64,
    queue: mpsc::Sender<DataBuffer>,
}

/// What a link's task needs.
struct LinkSetup {
    peer: Arc<str>,
    id: u64,
    hello: Hello,
    config: DataConfig,
    on_event: LinkCallback,
    links: Weak<LinksShared>,
}

impl DataLinks {
    /// Links of the TaskManager whose data listener is `own_address`, run on `runtime`; events
    /// go to `on_event`.
    pub fn new(runtime: Handle, own_address: &str, config: DataConfig, on_event: LinkCallback) -> DataLinks {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::TaskManager,
            name: own_address.to_string(),
            listen: Some(own_address.to_string()),
            token: config.token.clone(),
        };
        let links = Mutex::new(BTreeMap::new());
        DataLinks {
            shared: Arc::new(LinksShared { runtime, hello, config, on_event, links, link_id_next: AtomicU64::new(0) }),
        }
    }

    /// Queues `buffer` for the TaskManager listening at `address`, opening the link on first
    /// use. Never blocks; callable from any thread.
    pub fn send(&self, address: &str, buffer: DataBuffer) -> Result<(), DataError> {
        let shared = &self.shared;
        let max = shared.config.frame_bytes_max.saturating_sub(BUFFER_FRAME_OVERHEAD_BYTES);
        if buffer.bytes.len() > max {
            return Err(DataError::TooLarge { bytes: buffer.bytes.len(), max });
        }
        let mut links = shared.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let queue = match links.get(address) {
            Some(link) => link.queue.clone(),
            None => {
                // The first buffer goes in before the link's task starts, so a link that fails
                // at once still hands it back (as undelivered) rather than refusing it here.
                let (queue, receiver) = mpsc::channel(shared.config.link_queue_buffers_max.max(1));
                queue
                    .try_send(buffer)
                    .map_err(|_| DataError::QueueFull { max: shared.config.link_queue_buffers_max })?;
                let id = shared.link_id_next.fetch_add(1, Ordering::Relaxed);
                let setup = LinkSetup {
                    peer: address.into(),
                    id,
                    hello: shared.hello.clone(),
                    config: shared.config.clone(),
                    on_event: shared.on_event.clone(),
                    links: Arc::downgrade(shared),
                };
                links.insert(address.to_string(), Link { id, queue });
                shared.runtime.spawn(run_link(setup, receiver));
                return Ok(());
            }
        };
        drop(links);
        queue.try_send(buffer).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => DataError::QueueFull { max: shared.config.link_queue_buffers_max },
            mpsc::error::TrySendError::Closed(_) => DataError::Lost(address.to_string()),
        })
    }

    /// Data addresses with a link open or opening.
    pub fn peers(&self) -> Vec<String> {
        let links = self.shared.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        links.keys().cloned().collect()
    }
}

/// One link's life: connect, carry buffers and credits until it breaks or the links are
/// dropped; a broken link is reported (with what it never sent) before it leaves the map, so
/// the caller stops the channels on it before a new connection can carry any of them.
async fn run_link(setup: LinkSetup, mut queue: mpsc::Receiver<DataBuffer>) {
    let peer = setup.peer.clone();
    if let Err(error) = drive_link(&setup, &mut queue).await {
        queue.close();
        let mut owed: BTreeMap<(ExecutionId, ExecutionId), u32> = BTreeMap::new();
        while let Ok(buffer) = queue.try_recv() {
            *owed.entry((buffer.producer, buffer.consumer)).or_default() += 1;
        }
        let undelivered = owed
            .into_iter()
            .map(|((producer, consumer), credits)| DataCredit { producer, consumer, credits })
            .collect();
        tracing::warn!(%peer, %error, "data link lost");
        (setup.on_event)(LinkEvent::Lost { peer: peer.clone(), reason: error.to_string(), undelivered });
    }
    if let Some(shared) = setup.links.upgrade() {
        let mut links = shared.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if links.get(&*peer).is_some_and(|link| link.id == setup.id) {
            links.remove(&*peer);
        }
    }
}

/// Ok when the links were dropped (nothing more to send), the error when the link failed.
async fn drive_link(setup: &LinkSetup, queue: &mut mpsc::Receiver<DataBuffer>) -> Result<(), DataError> {
    let (mut reader, mut writer) = connect_within(&setup.peer, &setup.hello, &setup.config).await?;
    tracing::debug!(peer = %setup.peer, "data link connected");
    let receiving = async {
        loop {
            match reader.recv::<DataFrame>().await? {
                Some(DataFrame::Credit(credit)) => {
                    (setup.on_event)(LinkEvent::Credit { peer: setup.peer.clone(), credit })
                }
                Some(DataFrame::Buffer(_)) => return Err(DataError::WrongDirection("buffer")),
                None => return Err(DataError::Net(NetError::Closed)),
            }
        }
    };
    let sending = async {
        while let Some(buffer) = queue.recv().await {
            writer.stage(&DataFrame::Buffer(buffer))?;
            while writer.staged_bytes() < WRITE_BATCH_BYTES {
                let Ok(buffer) = queue.try_recv() else { break };
                writer.stage(&DataFrame::Buffer(buffer))?;
            }
            writer.flush().await?;
        }
        Ok(())
    };
    tokio::select! {
        ended = receiving => ended,
        ended = sending => ended,
    }
}

/// Connects to `address`, retrying with backoff until `config.connect_give_up` has passed; a
/// refused handshake is final at once.
async fn connect_within(
    address: &str,
    hello: &Hello,
    config: &DataConfig,
) -> Result<(FrameReader, FrameWriter), DataError> {
    let started = tokio::time::Instant::now();
    let deadline = started + config.connect_give_up;
    let mut backoff = CONNECT_BACKOFF_START;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = tokio::time::timeout(left, connection::connect(address, hello, config.frame_bytes_max)).await;
        let error = match attempt {
            Ok(Ok(halves)) => return Ok(halves),
            Ok(Err(error @ NetError::Refused(_))) => return Err(error.into()),
            Ok(Err(error)) => error,
            Err(_) => NetError::Timeout(config.connect_give_up),
        };
        let now = tokio::time::Instant::now();
        if now + backoff >= deadline {
            return Err(DataError::Unreachable { waited: now - started, last: error });
        }
        tracing::debug!(%address, %error, ?backoff, "data link: cannot connect yet");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
    }
}

/// A `Vec<u8>` as one length-prefixed run of bytes (serde's default is a sequence of `u8`s,
/// encoded and decoded one by one).
mod blob {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::Serializer;
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = sequence.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;
    use weir_core::ids::{AttemptNumber, JobId, SubtaskIndex, VertexIndex};

    fn execution(vertex: u32) -> ExecutionId {
        ExecutionId {
            job: JobId::default(),
            vertex: VertexIndex(vertex),
            subtask: SubtaskIndex(3),
            attempt: AttemptNumber(1),
        }
    }

    #[test]
    fn a_buffer_frame_carries_its_bytes_as_one_run_with_little_overhead() {
        let bytes: Vec<u8> = (0..32 * 1024).map(|at| (at % 251) as u8).collect();
        let frame = DataFrame::Buffer(DataBuffer {
            producer: execution(0),
            consumer: execution(1),
            edge: 2,
            elements: 4500,
            backlog: true,
            bytes: bytes.clone(),
        });
        let encoded = codec::encode(&frame).expect("encodes");
        assert!(encoded.len() <= bytes.len() + BUFFER_FRAME_OVERHEAD_BYTES, "{} bytes", encoded.len());
        assert_eq!(codec::decode::<DataFrame>(&encoded), Ok(frame));
    }

    #[test]
    fn a_credit_frame_survives_the_round_trip() {
        let frame = DataFrame::Credit(DataCredit { producer: execution(0), consumer: execution(1), credits: 8 });
        assert_eq!(codec::decode::<DataFrame>(&codec::encode(&frame).expect("encodes")), Ok(frame));
    }

    #[test]
    fn a_channel_sends_its_exclusive_credit_plus_what_was_given_since_and_no_more() {
        let unanswered = Unanswered { credits_max: 2, channels: Mutex::default() };
        let channel = (execution(0), execution(1));
        let deliver = || unanswered.deliver(channel.0, channel.1);
        assert!(deliver().is_ok() && deliver().is_ok(), "its exclusive credit");
        assert!(matches!(deliver(), Err(DataError::CreditExceeded { max: 2, .. })));
        unanswered.answer(&BTreeMap::from([(channel, 3)])); // two given back, one floating lent
        assert!(deliver().is_ok() && deliver().is_ok() && deliver().is_ok());
        assert!(deliver().is_err());
        unanswered.answer(&BTreeMap::from([(channel, 1)]));
        assert!(deliver().is_ok(), "a floating buffer lent before any buffer came is credit too");
    }

    proptest! {
        #[test]
        fn garbage_never_decodes_into_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = codec::decode::<DataFrame>(&bytes);
        }
    }
}

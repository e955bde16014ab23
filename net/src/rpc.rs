//! RPC between weir processes: a listener that turns every accepted connection's envelopes into
//! [`Incoming`] messages, and [`Peers`], which keeps one outgoing connection per remote address
//! and reconnects with exponential backoff.
//!
//! Delivery is at most once, like the simulated network the core is tested under: a message
//! queued for a peer that cannot be reached, or beyond a full queue, is dropped (and counted);
//! the roles' retries and heartbeats recover, as they do from lost messages in the simulator.

use crate::connection::{self, NetError};
use crate::handshake::Hello;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use weir_core::protocol::Envelope;

/// Envelopes waiting per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// First delay before reconnecting to a peer.
pub const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest delay between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// An envelope that arrived, with the introduction of the connection it came on.
#[derive(Debug)]
pub struct Incoming {
    /// Who sent it.
    pub peer: Hello,
    /// The message.
    pub envelope: Envelope,
}

/// What a listener reports.
#[derive(Debug)]
pub enum RpcEvent {
    /// An envelope arrived.
    Message(Box<Incoming>),
    /// A connection that had introduced itself ended (the peer closed it, died, or sent
    /// something unreadable): a closed connection is how a dead peer is noticed at once.
    Closed {
        /// Who it was.
        peer: Hello,
        /// Why it ended.
        reason: String,
    },
}

/// Accepts connections on `listener` until it fails; each connection's envelopes go to
/// `deliver`. A connection that fails its handshake or sends something unreadable is closed
/// with a warning; the others go on.
pub async fn serve(listener: TcpListener, token: Option<String>, max: usize, deliver: mpsc::Sender<Incoming>) {
    let (events, mut receiver) = mpsc::channel(PEER_QUEUE);
    tokio::spawn(serve_events(listener, token, max, events));
    while let Some(event) = receiver.recv().await {
        if let RpcEvent::Message(incoming) = event
            && deliver.send(*incoming).await.is_err()
        {
            return;
        }
    }
}

/// As [`serve`], and also reports every introduced connection that ends.
pub async fn serve_events(listener: TcpListener, token: Option<String>, max: usize, deliver: mpsc::Sender<RpcEvent>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(BACKOFF_START).await;
                continue;
            }
        };
        let (token, deliver) = (token.clone(), deliver.clone());
        tokio::spawn(async move {
            if let Err(error) = receive(stream, token.as_deref(), max, deliver).await {
                tracing::warn!(%from, %error, "closed an incoming connection");
            }
        });
    }
}

async fn receive(
    stream: tokio::net::TcpStream,
    token: Option<&str>,
    max: usize,
    deliver: mpsc::Sender<RpcEvent>,
) -> Result<(), NetError> {
    let (peer, mut reader, _writer) = connection::accept(stream, token, max).await?;
    let ended = loop {
        match reader.recv::<Envelope>().await {
            Ok(Some(envelope)) => {
                let incoming = Box::new(Incoming { peer: peer.clone(), envelope });
                if deliver.send(RpcEvent::Message(incoming)).await.is_err() {
                    return Ok(()); // the process is shutting down
                }
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    let reason = match &ended {
        Ok(()) => "closed by the peer".to_string(),
        Err(error) => error.to_string(),
    };
    let _ = deliver.send(RpcEvent::Closed { peer, reason }).await;
    ended
}

/// Outgoing connections, one per remote address, each with its own queue and task.
#[derive(Clone)]
pub struct Peers {
    hello: Hello,
    max: usize,
    queues: Arc<Mutex<BTreeMap<String, mpsc::Sender<Envelope>>>>,
    dropped: Arc<AtomicU64>,
}

impl Peers {
    /// Peers introduced as `hello`, sending frames of at most `max` bytes.
    pub fn new(hello: Hello, max: usize) -> Peers {
        Peers { hello, max, queues: Default::default(), dropped: Default::default() }
    }

    /// Queues `envelope` for the process at `address`; false when it was dropped (queue full).
    pub fn send(&self, address: &str, envelope: Envelope) -> bool {
        let sender = {
            let mut queues = self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let sender = queues.entry(address.to_string()).or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(keep_connected(address.to_string(), self.hello.clone(), self.max, receiver));
                sender
            });
            sender.clone()
        };
        let sent = sender.try_send(envelope).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Envelopes dropped so far because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Sends what `queue` holds to `address`, connecting and reconnecting with backoff; the queue
/// bounds what waits meanwhile. An envelope whose send failed is dropped (at most once).
async fn keep_connected(address: String, hello: Hello, max: usize, mut queue: mpsc::Receiver<Envelope>) {
    let mut backoff = BACKOFF_START;
    while let Some(next) = queue.recv().await {
        let mut writer = loop {
            match connection::connect(&address, &hello, max).await {
                Ok((_reader, writer)) => break writer,
                Err(NetError::Refused(reason)) => {
                    // Not a transient failure: say why, loudly (a wrong token, another version).
                    tracing::error!(%address, %reason, "the peer refused us");
                    tokio::time::sleep(BACKOFF_MAX).await;
                }
                Err(error) => {
                    tracing::debug!(%address, %error, ?backoff, "cannot connect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        backoff = BACKOFF_START;
        let mut pending = Some(next);
        loop {
            let envelope = match pending.take() {
                Some(envelope) => envelope,
                None => match queue.recv().await {
                    Some(envelope) => envelope,
                    None => return,
                },
            };
            if let Err(error) = writer.send(&envelope).await {
                tracing::debug!(%address, %error, "send failed; reconnecting");
                break;
            }
        }
    }
}

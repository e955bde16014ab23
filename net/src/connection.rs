//! One TCP connection between weir processes: the handshake, then frames of bincode messages.
//!
//! Every failure is a [`NetError`] for the caller to log and act on (close, reconnect): garbage,
//! an oversize or corrupt frame, a wrong version or token, a peer that says nothing within
//! [`HANDSHAKE_TIMEOUT`]. Nothing here panics on what a peer sends.

use crate::codec::{self, CodecError};
use crate::frame::{FrameDecoder, FrameError, encode_frame};
use crate::handshake::{self, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(not(madsim))]
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

// madsim's simulated TcpStream has no owned halves; the generic split serves there.
#[cfg(madsim)]
type OwnedReadHalf = tokio::io::ReadHalf<TcpStream>;
#[cfg(madsim)]
type OwnedWriteHalf = tokio::io::WriteHalf<TcpStream>;

/// How long a new connection may take to introduce itself.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The byte stream lost its framing.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A frame is not a message of the expected type.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// The handshake was refused (by us, or the peer told us why).
    #[error("handshake: {0}")]
    Refused(String),
    /// The peer said nothing in time.
    #[error("the peer did not complete the handshake within {0:?}")]
    Timeout(Duration),
    /// The peer closed the connection in the middle of a frame or the handshake.
    #[error("the peer closed the connection")]
    Closed,
}

impl From<HandshakeError> for NetError {
    fn from(error: HandshakeError) -> NetError {
        NetError::Refused(error.to_string())
    }
}

/// The receiving half.
pub struct FrameReader {
    read: OwnedReadHalf,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
}

/// The sending half.
pub struct FrameWriter {
    write: OwnedWriteHalf,
    max: usize,
    scratch: Vec<u8>,
}

impl FrameReader {
    /// The next message; `None` when the peer closed the connection between two frames.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, NetError> {
        match self.recv_payload().await? {
            Some(payload) => Ok(Some(codec::decode(&payload)?)),
            None => Ok(None),
        }
    }

    async fn recv_payload(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        loop {
            if let Some(payload) = self.decoder.next_frame()? {
                return Ok(Some(payload));
            }
            let read = self.read.read(&mut self.chunk).await?;
            if read == 0 {
                return if self.decoder.buffered() == 0 { Ok(None) } else { Err(NetError::Closed) };
            }
            self.decoder.push(&self.chunk[..read]);
        }
    }
}

impl FrameWriter {
    /// Sends one message (and whatever was staged before it).
    pub async fn send<T: Serialize>(&mut self, value: &T) -> Result<(), NetError> {
        self.stage(value)?;
        self.flush().await
    }

    /// Frames one message into the pending bytes, written by the next [`FrameWriter::flush`]:
    /// several small messages then cost one write. A message above the frame maximum is refused
    /// and leaves the pending bytes as they were.
    pub fn stage<T: Serialize>(&mut self, value: &T) -> Result<(), NetError> {
        let payload = codec::encode(value)?;
        encode_frame(&payload, self.max, &mut self.scratch)?;
        Ok(())
    }

    /// Bytes staged and not yet written.
    pub fn staged_bytes(&self) -> usize {
        self.scratch.len()
    }

    /// Writes every staged frame.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        if self.scratch.is_empty() {
            return Ok(());
        }
        let written = self.write.write_all(&self.scratch).await;
        self.scratch.clear();
        written?;
        // A no-op on a real socket; madsim's simulated one delivers only what is flushed.
        self.write.flush().await?;
        Ok(())
    }

    async fn send_payload(&mut self, payload: &[u8]) -> Result<(), NetError> {
        encode_frame(payload, self.max, &mut self.scratch)?;
        self.flush().await
    }
}

fn halves(stream: TcpStream, max: usize) -> (FrameReader, FrameWriter) {
    let _ = stream.set_nodelay(true);
    #[cfg(not(madsim))]
    let (read, write) = stream.into_split();
    #[cfg(madsim)]
    let (read, write) = tokio::io::split(stream);
    let reader = FrameReader { read, decoder: FrameDecoder::new(max), chunk: vec![0; READ_CHUNK] };
    (reader, FrameWriter { write, max, scratch: Vec::new() })
}

/// Connects to `address`, introduces itself with `hello` and waits for the welcome.
pub async fn connect(address: &str, hello: &Hello, max: usize) -> Result<(FrameReader, FrameWriter), NetError> {
    let stream = TcpStream::connect(address).await?;
    let (mut reader, mut writer) = halves(stream, max);
    let introduce = async {
        writer.send_payload(&handshake::encode_hello(hello)?).await?;
        match reader.recv::<HelloReply>().await? {
            Some(HelloReply::Welcome { version }) if version == PROTOCOL_VERSION => Ok(()),
            Some(HelloReply::Welcome { version }) => {
                Err(NetError::Refused(format!("the peer speaks protocol version {version}, we {PROTOCOL_VERSION}")))
            }
            Some(HelloReply::Refused { reason }) => Err(NetError::Refused(reason)),
            None => Err(NetError::Closed),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, introduce).await.map_err(|_| NetError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok((reader, writer))
}

/// Takes an accepted socket through the handshake: reads the hello, checks it against
/// `required_token`, answers. A refused peer is told why before the connection closes.
pub async fn accept(
    stream: TcpStream,
    required_token: Option<&str>,
    max: usize,
) -> Result<(Hello, FrameReader, FrameWriter), NetError> {
    let (mut reader, mut writer) = halves(stream, max);
    let hello = async {
        let payload = reader.recv_payload().await?.ok_or(NetError::Closed)?;
        match handshake::accept_hello(&payload, required_token) {
            Ok(hello) => {
                writer.send(&HelloReply::Welcome { version: PROTOCOL_VERSION }).await?;
                Ok(hello)
            }
            Err(error) => {
                let _ = writer.send(&HelloReply::Refused { reason: error.to_string() }).await;
                Err(NetError::from(error))
            }
        }
    };
    let hello =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, hello).await.map_err(|_| NetError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok((hello, reader, writer))
}

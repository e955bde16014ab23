//! Frames: how weir cuts a TCP byte stream into messages.
//!
//! A frame is `length (u32, little endian) | crc32 of the payload (u32, little endian) | payload`.
//! The length is checked against the connection's maximum before anything is allocated, and the
//! checksum before the payload is handed on, so a peer that sends garbage, a frame too large or a
//! corrupted one is caught at once. [`FrameDecoder`] is sans-IO: the connection pushes the bytes
//! it read and pulls whole payloads out. After its first error it stays failed (the stream has
//! lost its framing; the only safe move is to close the connection).

use std::fmt;

/// Bytes of a frame's header: length and checksum.
pub const HEADER_BYTES: usize = 8;

/// The largest RPC frame accepted by default (Flink's `pekko.framesize` is 10 MiB as well).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 10 * 1024 * 1024;

/// Why a stream of frames cannot be read on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The announced payload is larger than this connection accepts.
    #[error("a frame of {announced} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Bytes the header announced.
        announced: u64,
        /// The connection's maximum.
        max: usize,
    },
    /// The payload does not match its checksum.
    #[error("frame checksum mismatch: header says {expected:#010x}, payload has {found:#010x}")]
    Checksum {
        /// The checksum in the header.
        expected: u32,
        /// The payload's checksum.
        found: u32,
    },
}

/// Appends `payload` as one frame to `out`; refuses a payload above `max` bytes.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > max || u32::try_from(payload.len()).is_err() {
        return Err(FrameError::TooLarge { announced: payload.len() as u64, max });
    }
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Cuts a byte stream into payloads.
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already handed out (compacted lazily).
    consumed: usize,
    max: usize,
    failed: Option<FrameError>,
}

impl fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("buffered", &(self.buffer.len() - self.consumed))
            .field("max", &self.max)
            .field("failed", &self.failed)
            .finish()
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads of at most `max` bytes.
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder { buffer: Vec::new(), consumed: 0, max, failed: None }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.consumed > 0 && self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// The next whole payload, `None` until one has arrived, or why the stream is broken.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let rest = &self.buffer[self.consumed..];
        if rest.len() < HEADER_BYTES {
            return Ok(None);
        }
        let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let expected = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length > self.max {
            return Err(self.fail(FrameError::TooLarge { announced: length as u64, max: self.max }));
        }
        if rest.len() < HEADER_BYTES + length {
            return Ok(None);
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + length];
        let found = crc32fast::hash(payload);
        if found != expected {
            return Err(self.fail(FrameError::Checksum { expected, found }));
        }
        let payload = payload.to_vec();
        self.consumed += HEADER_BYTES + length;
        if self.consumed > self.buffer.len() / 2 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        Ok(Some(payload))
    }

    fn fail(&mut self, error: FrameError) -> FrameError {
        self.failed = Some(error.clone());
        self.buffer = Vec::new();
        self.consumed = 0;
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            encode_frame(payload, DEFAULT_MAX_FRAME_BYTES, &mut out).expect("small payloads fit");
        }
        out
    }

    #[test]
    fn a_frame_announcing_too_much_fails_before_its_payload_arrives() {
        let mut decoder = FrameDecoder::new(16);
        let mut header = (1u32 << 30).to_le_bytes().to_vec();
        header.extend_from_slice(&[0; 4]);
        decoder.push(&header);
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge { announced: 1 << 30, max: 16 }));
        decoder.push(&[1, 2, 3]);
        assert!(decoder.next_frame().is_err(), "a failed stream stays failed");
        assert_eq!(decoder.buffered(), 0, "nothing is kept of a failed stream");
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error() {
        let mut bytes = framed(&[b"hello".to_vec()]);
        bytes[HEADER_BYTES + 1] ^= 0x10;
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&bytes);
        assert!(matches!(decoder.next_frame(), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn encoding_refuses_a_payload_above_the_maximum() {
        let mut out = Vec::new();
        assert_eq!(encode_frame(&[0; 17], 16, &mut out), Err(FrameError::TooLarge { announced: 17, max: 16 }));
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn payloads_come_out_whole_and_in_order_however_the_stream_is_cut(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in prop::collection::vec(1usize..64, 1..50),
        ) {
            let bytes = framed(&payloads);
            let mut decoder = FrameDecoder::new(1024);
            let mut out = Vec::new();
            let (mut at, mut cut) = (0, 0);
            while at < bytes.len() {
                let end = (at + cuts[cut % cuts.len()]).min(bytes.len());
                decoder.push(&bytes[at..end]);
                while let Some(payload) = decoder.next_frame().expect("valid frames decode") {
                    out.push(payload);
                }
                at = end;
                cut += 1;
            }
            prop_assert_eq!(out, payloads);
            prop_assert_eq!(decoder.buffered(), 0);
        }

        #[test]
        fn garbage_never_panics_and_never_yields_an_oversized_payload(
            garbage in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut decoder = FrameDecoder::new(256);
            decoder.push(&garbage);
            for _ in 0..garbage.len() + 1 {
                match decoder.next_frame() {
                    Ok(Some(payload)) => prop_assert!(payload.len() <= 256),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

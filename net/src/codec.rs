//! Messages as bytes: bincode with a hard limit on what decoding may allocate, so a hostile
//! length prefix inside a payload cannot make a peer allocate gigabytes, and trailing bytes are
//! an error rather than silently ignored.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes decoding one message may claim (above every frame size weir accepts).
pub const DECODE_LIMIT_BYTES: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT_BYTES>()
}

/// A payload that is not a message of the expected type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes do not decode.
    #[error("undecodable message: {0}")]
    Undecodable(String),
    /// The message ended before the payload did.
    #[error("{0} bytes after the end of the message")]
    Trailing(usize),
    /// The value cannot be encoded.
    #[error("cannot encode the message: {0}")]
    Unencodable(String),
}

/// The bytes of `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|error| CodecError::Unencodable(error.to_string()))
}

/// The value in `bytes`, which must hold exactly one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|error| CodecError::Undecodable(error.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weir_core::ids::{Epoch, JobId};
    use weir_core::protocol::{Address, ClientMessage, Envelope, Message};

    fn envelope() -> Envelope {
        let message = Message::Client(ClientMessage::Submitted { request: 7, job_id: JobId::default() });
        Envelope { from: Address::Dispatcher, to: Address::Client(3), epoch: Epoch(2), message }
    }

    #[test]
    fn an_envelope_survives_the_round_trip() {
        let bytes = encode(&envelope()).expect("encodes");
        assert_eq!(decode::<Envelope>(&bytes), Ok(envelope()));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&envelope()).expect("encodes");
        bytes.push(0);
        assert_eq!(decode::<Envelope>(&bytes), Err(CodecError::Trailing(1)));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating_it() {
        // A Vec<u8> claiming 2^62 elements.
        let bytes = [0xFF, 0, 0, 0, 0, 0, 0, 0, 0x40];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Envelope>(&bytes);
        }
    }
}

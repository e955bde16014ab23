//! The first frame on every connection: who is calling, in which protocol version, with which
//! cluster token. A connection whose first frame is not a weir hello, speaks another protocol
//! version, or lacks the token the listener requires is refused with a reason and closed before
//! any message is read from it.

use crate::codec::{self, CodecError};
use serde::{Deserialize, Serialize};

/// The first bytes of a hello: tells a weir peer from anything else that connects.
pub const MAGIC: [u8; 4] = *b"WEIR";

/// The wire protocol's version; peers must speak the same one.
pub const PROTOCOL_VERSION: u16 = 2;

/// What kind of process is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    /// A JobManager (ResourceManager, Dispatcher, JobMasters).
    JobManager,
    /// A TaskManager (RPC or data channels).
    TaskManager,
    /// A command-line client.
    Client,
}

/// The caller's introduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its protocol version.
    pub version: u16,
    /// Its role.
    pub role: PeerRole,
    /// Its name, for logs (a resource id or a host:port).
    pub name: String,
    /// Where it accepts connections itself (host:port), so the listener can call back.
    pub listen: Option<String>,
    /// The cluster token (`security.token`), when the caller has one.
    pub token: Option<String>,
}

/// The listener's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Go on.
    Welcome {
        /// The listener's protocol version.
        version: u16,
    },
    /// Refused; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Why a hello is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first frame is not a weir hello.
    #[error("not a weir peer (the first frame does not start with WEIR)")]
    NotWeir,
    /// The hello does not decode.
    #[error("malformed hello: {0}")]
    Malformed(CodecError),
    /// Another protocol version.
    #[error("protocol version {theirs} is not ours ({ours})")]
    Version {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The listener requires a token and none came.
    #[error("this cluster requires a token (security.token) and the peer sent none")]
    TokenMissing,
    /// The token is wrong.
    #[error("wrong cluster token")]
    TokenWrong,
}

/// The payload of a hello frame.
pub fn encode_hello(hello: &Hello) -> Result<Vec<u8>, CodecError> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(codec::encode(hello)?);
    Ok(bytes)
}

/// Reads a hello frame's payload and decides whether to accept it under `required_token`.
pub fn accept_hello(payload: &[u8], required_token: Option<&str>) -> Result<Hello, HandshakeError> {
    let Some(rest) = payload.strip_prefix(&MAGIC) else { return Err(HandshakeError::NotWeir) };
    let hello: Hello = codec::decode(rest).map_err(HandshakeError::Malformed)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: hello.version });
    }
    if let Some(required) = required_token {
        match &hello.token {
            None => return Err(HandshakeError::TokenMissing),
            Some(token) if !same_secret(token.as_bytes(), required.as_bytes()) => {
                return Err(HandshakeError::TokenWrong);
            }
            Some(_) => {}
        }
    }
    Ok(hello)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (position, byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(position).copied().unwrap_or(!byte));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(token: Option<&str>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            role: PeerRole::TaskManager,
            name: "tm-1".into(),
            listen: Some("127.0.0.1:6124".into()),
            token: token.map(Into::into),
        }
    }

    #[test]
    fn a_hello_with_the_right_token_is_accepted() {
        let payload = encode_hello(&hello(Some("s3cret"))).expect("encodes");
        assert_eq!(accept_hello(&payload, Some("s3cret")), Ok(hello(Some("s3cret"))));
        assert!(accept_hello(&payload, None).is_ok(), "a token is not needed where none is required");
    }

    #[test]
    fn missing_or_wrong_tokens_and_other_versions_are_refused() {
        let without = encode_hello(&hello(None)).expect("encodes");
        assert_eq!(accept_hello(&without, Some("s3cret")), Err(HandshakeError::TokenMissing));
        for wrong in ["s3cres", "s3cret!", "", "S3CRET"] {
            let payload = encode_hello(&hello(Some(wrong))).expect("encodes");
            assert_eq!(accept_hello(&payload, Some("s3cret")), Err(HandshakeError::TokenWrong), "{wrong:?}");
        }
        let old = encode_hello(&Hello { version: 0, ..hello(None) }).expect("encodes");
        assert_eq!(accept_hello(&old, None), Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: 0 }));
    }

    #[test]
    fn anything_else_is_not_a_weir_peer() {
        assert_eq!(accept_hello(b"GET / HTTP/1.1\r\n", None), Err(HandshakeError::NotWeir));
        assert!(matches!(accept_hello(b"WEIR\xff\xff", None), Err(HandshakeError::Malformed(_))));
    }
}

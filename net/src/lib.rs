//! weir-net: weir's wire.
//!
//! - [`frame`]: a TCP byte stream cut into checksummed frames with a maximum size;
//! - [`codec`]: messages as bincode with a decode limit;
//! - [`handshake`]: the first frame of every connection (protocol version, role, cluster token).
//!
//! - [`connection`]: one TCP connection (tokio): handshake, then frames of messages;
//! - [`rpc`]: a listener delivering envelopes, and outgoing connections per peer that reconnect
//!   with backoff;
//! - [`data`]: data channels between TaskManagers (buffers out, credits back, one connection per
//!   ordered pair of TaskManagers).
//!
//! The first three are sans-IO and tested on their own; the others are tested over 127.0.0.1.

pub mod codec;
pub mod connection;
pub mod data;
pub mod frame;
pub mod handshake;
pub mod rpc;

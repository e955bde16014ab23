//! weir-net: weir's wire.
//!
//! - [`frame`]: a TCP byte stream cut into checksummed frames with a maximum size;
//! - [`codec`]: messages as bincode with a decode limit;
//! - [`handshake`]: the first frame of every connection (protocol version, role, cluster token).
//!
//! These pieces are sans-IO and tested on their own; the tokio connections that use them live
//! beside them as the daemons arrive.

pub mod codec;
pub mod frame;
pub mod handshake;

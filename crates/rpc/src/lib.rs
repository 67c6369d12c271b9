//! Shardline's transport: a lean framed protocol over mutual TLS.
//!
//! Every message is one [`frame`]: a fixed 12-byte preamble, a prost-encoded
//! header and a raw payload (shard bytes travel as payload, never inside a
//! protobuf). Every connection is TLS 1.3 with certificates on both sides
//! ([`tls`]), issued by the cluster CA ([`pki`]) and naming the holder's
//! role ([`principal`]). [`server`] runs a request/response loop per
//! connection under limits (connections, timeouts, memory for large frames)
//! and hands each request to its [`Handler`] with the peer's
//! [`Principal`]; [`pool`] keeps idle client connections per address so
//! concurrent callers each get their own stream. Connections to data
//! servers may opt into [`integrity`]-only records after the handshake.
//! [`acting`] names the user a client's metadata requests act for.

pub mod acting;
pub mod error;
pub mod frame;
pub mod integrity;
pub mod meta_client;
pub mod pki;
pub mod pool;
pub mod principal;
pub mod server;
pub mod shard_client;
pub mod tls;

#[cfg(test)]
mod fuzz_tests;

pub use error::RpcError;
pub use frame::{read_frame, write_frame, Frame, MAX_HEADER_LEN, MAX_PAYLOAD_LEN};
pub use meta_client::{code_from_wire, code_to_wire, MetaCallError, MetaClient};
pub use pool::{Pool, PoolStats};
pub use principal::{Principal, Role, UserMap};
pub use server::{serve, serve_with, Handler, ServerLimits};
pub use tls::{Tls, TlsFiles};

//! Shardline's transport: a lean framed protocol over TCP.
//!
//! Every message is one [`frame`]: a fixed 12-byte preamble, a prost-encoded
//! header and a raw payload (shard bytes travel as payload, never inside a
//! protobuf). [`server`] runs a request/response loop per connection;
//! [`pool`] keeps idle client connections per address so concurrent callers
//! each get their own stream. The framing works over any
//! `AsyncRead + AsyncWrite`, so TLS can wrap the stream without touching it.

pub mod error;
pub mod frame;
pub mod meta_client;
pub mod pool;
pub mod server;
pub mod shard_client;

pub use error::RpcError;
pub use frame::{read_frame, write_frame, Frame, MAX_HEADER_LEN, MAX_PAYLOAD_LEN};
pub use meta_client::{code_from_wire, code_to_wire, MetaCallError, MetaClient};
pub use pool::{Pool, PoolStats};
pub use server::{serve, Handler};

//! The data service: shards on local flash.
//!
//! A data server stores opaque, already-encrypted shards keyed by
//! [`ShardKey`](shardline_types::ShardKey), checks their CRC32C on the way in
//! and on every read, reports its capacity to the metadata service and answers
//! shard requests over the framed transport. It never sees plaintext or keys.
//!
//! Code map:
//! - [`store`]: the [`ShardStore`] trait every storage backend implements
//!   (synchronous; the service calls it from blocking tasks).
//! - [`file_store`]: the portable backend, one file per shard, written
//!   tmp → fsync → rename → fsync dir, in the on-disk format of
//!   [`shard_format`]. An io_uring / `O_DIRECT` backend will sit beside it
//!   behind the same trait and pass the same conformance suite.
//! - [`service`]: [`DataService`], the request handler: wire messages in,
//!   store calls out, errors as stable wire codes.
//! - [`heartbeat`]: registration with the metadata service and heartbeats.
//! - [`server`]: [`DataConfig`] and [`run`], which wire the parts together.

pub mod error;
pub mod file_store;
pub mod heartbeat;
pub mod server;
pub mod service;
pub mod shard_format;
pub mod store;

mod disk;

#[cfg(test)]
mod conformance;

pub use error::DataError;
pub use file_store::FileStore;
pub use server::{run, run_with_listener, DataConfig};
pub use service::DataService;
pub use store::{ShardStore, Usage};

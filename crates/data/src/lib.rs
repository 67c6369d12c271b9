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
//! - [`segment_store`]: the default backend, [`SegmentStore`]: shards
//!   appended to segment files with group commit (one fdatasync for every
//!   shard that arrived meanwhile), an in-memory index rebuilt at start,
//!   background compaction; migrates folders of the per-file stores.
//! - [`file_store`]: the portable backend, one file per shard through
//!   buffered I/O, in the on-disk format of [`shard_format`] (version 1).
//! - [`uring_store`]: the flash backend, the same files read and written with
//!   `O_DIRECT` through io_uring on a dedicated thread (`uring_thread.rs`,
//!   `aligned_buf.rs`), in format version 2 (4 KiB-aligned payload).
//! - `store_core.rs` + `shard_dir.rs`: what both per-file backends share:
//!   directory layout, per-key locks, space accounting and the tmp → fsync →
//!   rename → fsync dir protocol. They read each other's files.
//! - Every backend passes the conformance suite (`conformance.rs`, with the
//!   crash cases in `conformance_crash.rs`).
//! - [`store_kind`]: [`StoreKind`] (`segment`, `auto`, `uring`, `file`) and
//!   [`open_store`].
//! - [`service`]: [`DataService`], the request handler: wire messages in,
//!   store calls out, errors as stable wire codes.
//! - [`caps`]: capability checks on every shard request, and the tokens
//!   this server mints for its own peer reads (rebuild, scrub repair).
//! - [`heartbeat`]: registration with the metadata service and heartbeats.
//! - `rebuild.rs` + `peer_rebuild.rs`: rebuild tasks, throttled by the
//!   server's one [`throttle::TokenBucket`] shared by all of them.
//! - [`server`]: [`DataConfig`] and [`run`], which wire the parts together.
//! - [`fault_store`]: disk faults on demand behind the store trait, only
//!   when `SHARDLINE_DATA_FAULT_FILE` is set (fault injection).

pub mod authz;
pub mod caps;
pub mod error;
pub mod fault_store;
pub mod file_store;
pub mod fs_type;
pub mod gc;
pub mod heartbeat;
pub mod node_state;
pub mod peer_rebuild;
pub mod rebuild;
pub mod release;
pub mod scrub;
pub mod segment_store;
pub mod server;
pub mod service;
pub mod shard_format;
pub mod store;
pub mod store_kind;
pub mod throttle;
pub mod uring_store;

mod aligned_buf;
mod disk;
mod le_bytes;
mod shard_dir;
mod store_core;
mod uring_thread;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod conformance_crash;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod scrub_tests;

pub use error::DataError;
pub use file_store::FileStore;
pub use segment_store::{SegmentConfig, SegmentStore};
pub use server::{run, run_with_listener, DataConfig};
pub use service::DataService;
pub use store::{Backend, ShardStore, Usage};
pub use store_kind::{open_store, StoreKind};
pub use throttle::DEFAULT_REBUILD_RATE;
pub use uring_store::{uring_available, UringStore};

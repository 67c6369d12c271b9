//! The native Shardline client: the read and write pipelines.
//!
//! Write: [`writer`] gathers bytes into chunks; [`chunk_write`] seals each
//! chunk (XChaCha20-Poly1305 under the file's DEK, AAD binding file, chunk,
//! version and key), erasure-codes it into k+m shards, sends them in parallel
//! to the chunk's placement group (`shardline_rpc::shard_client`, [`placement`]) and then
//! commits the new chunk version to the metadata service.
//! Read: [`reader`] fetches chunks several at a time; [`chunk_read`] reads the
//! k data shards, falls back to parity for any missing or corrupt one, decodes
//! and decrypts. [`client`] holds the namespace operations by path.
//!
//! Every type is owned (`Arc` inside, no borrowed lifetimes) so that other
//! languages' bindings can hold them.

pub mod chunk_read;
pub mod chunk_write;
pub mod client;
mod create_open;
pub mod dir_cache;
mod dirty_chunk;
pub mod error;
mod file_ctx;
pub mod file_handle;
pub mod inode_api;
pub mod paths;
pub mod placement;
mod range_read;
mod read_pattern;
pub mod reader;
mod stripe_fetch;
pub mod writer;

pub use client::{Client, ClientConfig, DirEntry, FileKind, FileStat};
pub use error::ClientError;
pub use file_handle::FileHandle;
pub use reader::FileReader;
pub use shardline_crypto::{ChunkFormat, CipherSuite};
pub use writer::FileWriter;

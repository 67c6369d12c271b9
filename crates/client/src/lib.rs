//! The native Shardline client: the read and write pipelines.
//!
//! Write: [`writer`] gathers bytes into chunks; [`chunk_write`] seals each
//! chunk in format v2 (64 KiB segments, each with its own tag, under the
//! file's suite: AES-256-GCM on CPUs with AES instructions, else
//! XChaCha20-Poly1305; `shardline_crypto::seal_segments`), erasure-codes it
//! into k+m shards, sends them in parallel to the chunk's placement group
//! (`shardline_rpc::shard_client`, [`placement`]) and then commits the new
//! chunk version, with its format, to the metadata service.
//! Read: [`reader`] streams whole chunks several at a time; [`chunk_read`]
//! reads a chunk's k data cells (`stripe_fetch`: parity stands in for any
//! missing or corrupt one), decodes and decrypts off the async threads. A
//! byte range (`range_read`) fetches and decrypts only the segments holding
//! it, with ranged shard reads, straight into the caller's buffer
//! ([`FileReader::read_into`]). Chunks written in format v1 (whole-chunk
//! sealing, by older clients) still read. [`file_handle`] serves the mount:
//! sequential streams read ahead in whole chunks, random reads by range
//! (`read_pattern`). [`client`] holds the namespace operations by path.
//! [`prefetch`] is the data-loader API: an epoch's files or ranges read
//! with a bounded window in flight, in order, into buffers the caller may
//! recycle.
//!
//! Metadata reads go through the coherent cache ([`meta_cache`],
//! `inode_cached`); lookups that keep missing in one directory list it
//! ahead (`statahead`).
//!
//! Every shard request carries a capability token from the metadata
//! service (`caps`): get tokens come with chunk lists, put tokens are
//! granted per chunk version written, delete tokens come with released
//! chunks.
//!
//! Integrity: files made by this client carry an authenticated manifest of
//! their size and chunk versions (`manifest`); readers check the chunk list
//! against it before reading, writers send the next one with each change.
//!
//! Keys: the key file is a keyring of KEK versions (`keys`), read again when
//! it changes (key rotation), so a file re-wrapped under a new version
//! opens and new files are wrapped under the current one.
//!
//! Every type is owned (`Arc` inside, no borrowed lifetimes) so that other
//! languages' bindings can hold them.

mod batch;
mod cached_attr;
mod caps;
mod chunk_list;
pub mod chunk_read;
pub mod chunk_write;
pub mod client;
mod create_open;
pub mod dir_cache;
mod dirty_chunk;
pub mod error;
mod file_ctx;
pub mod file_handle;
mod hedge;
pub mod inode_api;
mod inode_cached;
mod keys;
mod manifest;
pub mod meta_cache;
pub mod meta_cache_watch;
pub mod paths;
mod per_caller;
pub mod placement;
pub mod prefetch;
mod prefetch_open;
mod range_read;
mod read_pattern;
pub mod reader;
mod stale;
mod statahead;
mod stripe_fetch;
mod subset_read;
pub mod writer;

pub use client::{Client, ClientConfig, DirEntry, FileKind, FileStat, DEFAULT_SMALL_FILE_MAX};
pub use error::ClientError;
pub use file_handle::FileHandle;
pub use prefetch::{Prefetch, PrefetchConfig, PrefetchItem, PrefetchStats, Prefetched};
pub use reader::FileReader;
pub use shardline_crypto::{ChunkFormat, CipherSuite, WrapFormat};
pub use writer::FileWriter;

//! Shardline's erasure coding: splitting a sealed chunk into k data cells and
//! m parity cells, and getting it back from any k of them.
//!
//! The code is systematic Reed–Solomon over GF(2^8) (`reed-solomon-erasure`
//! with SIMD): the data cells are the sealed chunk itself, cut into k equal
//! cells, so a healthy read is plain concatenation and only a degraded read
//! decodes. See DESIGN.md, "The data path".
//!
//! - [`Codec::cell_size`] — how big each cell is for a sealed chunk; the
//!   client pads the sealed chunk to `k * cell_size` as it seals it.
//! - [`Codec::encode`] — padded sealed chunk → k+m shards (data cells are
//!   zero-copy slices of the input).
//! - [`Codec::decode`] — any k shards → the sealed chunk (read path).
//! - [`Codec::reconstruct_data`] — any k shards, or the same byte range of
//!   any k shards, → the data cells (or that range of each): degraded range
//!   reads fetch and decode only the bytes asked for.
//! - [`Codec::rebuild`] — recompute every missing shard (repair path).
//!
//! This crate never sees keys or plaintext: it codes ciphertext only.

mod codec;
mod error;

pub use codec::{Codec, CELL_ALIGN};
pub use error::ErasureError;

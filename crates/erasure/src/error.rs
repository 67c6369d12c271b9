//! The crate's one error type.

/// Everything that can go wrong encoding, decoding or rebuilding shards.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The (k, m) layout cannot be coded.
    #[error("invalid erasure layout {data_shards}+{parity_shards}: {reason}")]
    InvalidParams { data_shards: usize, parity_shards: usize, reason: String },

    /// The shard slice does not have exactly k+m slots.
    #[error("expected {expected} shard slots (k+m), got {have}")]
    WrongShardCount { have: usize, expected: usize },

    /// Fewer than k shards are present: the chunk cannot be recovered.
    #[error("too few shards to recover the chunk: have {have}, need {need}")]
    TooFewShards { have: usize, need: usize },

    /// A present shard's length differs from the others (or is zero).
    #[error("shard {index} has {len} bytes, expected {expected} like the others")]
    ShardSizeMismatch { index: usize, len: usize, expected: usize },

    /// The padded buffer handed to `encode` cannot be split into k equal, non-empty cells.
    #[error("padded chunk of {len} bytes cannot be split into {data_shards} equal non-empty cells")]
    BadPaddedLength { len: usize, data_shards: usize },

    /// The caller asked for more bytes than the data cells hold.
    #[error("sealed length {sealed_len} exceeds the {capacity} bytes held by the data cells")]
    SealedLenTooLarge { sealed_len: usize, capacity: usize },

    /// The Reed–Solomon library rejected the shards (should be caught earlier).
    #[error("reed-solomon coding failed: {0}")]
    Codec(#[from] reed_solomon_erasure::Error),
}

//! The Reed–Solomon codec for one layout (k data + m parity cells).

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::ErasureError;

/// Cells are a multiple of this many bytes (SIMD- and cache-line-friendly).
pub const CELL_ALIGN: usize = 64;

/// A Reed–Solomon coder for a fixed k+m layout. Cheap to share (`&Codec`
/// across threads); decode matrices are cached inside.
#[derive(Clone)]
pub struct Codec {
    k: usize,
    m: usize,
    rs: ReedSolomon,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Codec(RS {}+{})", self.k, self.m)
    }
}

impl Codec {
    /// A codec with `data_shards` (k ≥ 1) data cells and `parity_shards`
    /// (m ≥ 1) parity cells, k+m ≤ 256.
    pub fn new(data_shards: usize, parity_shards: usize) -> Result<Codec, ErasureError> {
        let invalid = |reason: String| ErasureError::InvalidParams { data_shards, parity_shards, reason };
        if data_shards == 0 || parity_shards == 0 {
            return Err(invalid("need at least one data and one parity shard".into()));
        }
        if data_shards + parity_shards > 256 {
            return Err(invalid("k+m must be at most 256 over GF(2^8)".into()));
        }
        let rs = ReedSolomon::new(data_shards, parity_shards).map_err(|e| invalid(e.to_string()))?;
        Ok(Codec { k: data_shards, m: parity_shards, rs })
    }

    /// k, the number of data cells.
    pub fn data_shards(&self) -> usize {
        self.k
    }

    /// m, the number of parity cells.
    pub fn parity_shards(&self) -> usize {
        self.m
    }

    /// Cell (shard) size for a sealed chunk of `sealed_len` bytes:
    /// `ceil(sealed_len / k)` rounded up to a multiple of 64, at least 64.
    pub fn cell_size(&self, sealed_len: usize) -> usize {
        sealed_len.div_ceil(self.k).div_ceil(CELL_ALIGN).max(1) * CELL_ALIGN
    }

    /// Split `padded` (length `k * cell`) into k data cells — zero-copy
    /// slices of `padded` — and compute m parity cells. Returns k+m shards in
    /// order: data 0..k, then parity.
    pub fn encode(&self, padded: Bytes) -> Result<Vec<Bytes>, ErasureError> {
        let len = padded.len();
        if len == 0 || len % self.k != 0 {
            return Err(ErasureError::BadPaddedLength { len, data_shards: self.k });
        }
        let cell = len / self.k;
        let mut shards: Vec<Bytes> = (0..self.k).map(|i| padded.slice(i * cell..(i + 1) * cell)).collect();
        let mut parity = vec![vec![0u8; cell]; self.m];
        self.rs.encode_sep(&shards, &mut parity)?;
        shards.extend(parity.into_iter().map(Bytes::from));
        Ok(shards)
    }

    /// Recover the first `sealed_len` bytes of the data cells from k+m slots,
    /// at least k of them present and all present ones the same length.
    ///
    /// When all k data cells are present this is plain concatenation; otherwise
    /// the missing data cells are reconstructed from exactly k present shards.
    pub fn decode(&self, shards: Vec<Option<Bytes>>, sealed_len: usize) -> Result<Vec<u8>, ErasureError> {
        let cell = self.check_shards(&shards)?;
        let capacity = cell * self.k;
        if sealed_len > capacity {
            return Err(ErasureError::SealedLenTooLarge { sealed_len, capacity });
        }
        if shards[..self.k].iter().all(Option::is_some) {
            return Ok(concat_prefix(shards.iter().flatten(), sealed_len));
        }
        // Degraded read: hand the library exactly k present shards; it fills
        // the missing data cells in place.
        let mut taken = 0;
        let mut work: Vec<Option<Vec<u8>>> = shards
            .into_iter()
            .map(|s| match s {
                Some(b) if taken < self.k => {
                    taken += 1;
                    Some(Vec::from(b))
                }
                _ => None,
            })
            .collect();
        self.rs.reconstruct_data(&mut work)?;
        Ok(concat_prefix(work[..self.k].iter().flatten(), sealed_len))
    }

    /// The k data cells (or the same byte range of each) from k+m slots, at
    /// least k present and all present ones the same length: present data
    /// cells are returned as they are (no copy), missing ones are
    /// reconstructed from exactly k present shards.
    ///
    /// Reed–Solomon works on each byte position across the cells on its
    /// own, so the slots may hold any one range `[a, b)` of every shard, the
    /// same for all: the result is then `[a, b)` of each data cell. This is
    /// how a degraded read of a small range fetches and decodes only that
    /// range.
    pub fn reconstruct_data(&self, shards: Vec<Option<Bytes>>) -> Result<Vec<Bytes>, ErasureError> {
        self.check_shards(&shards)?;
        if shards[..self.k].iter().all(Option::is_some) {
            return Ok(shards.into_iter().take(self.k).flatten().collect());
        }
        let mut taken = 0;
        let mut work: Vec<Option<Vec<u8>>> = Vec::with_capacity(shards.len());
        let mut kept: Vec<Option<Bytes>> = Vec::with_capacity(self.k);
        for (i, s) in shards.into_iter().enumerate() {
            if i < self.k {
                kept.push(s.clone());
            }
            work.push(match s {
                Some(b) if taken < self.k => {
                    taken += 1;
                    Some(Vec::from(b))
                }
                _ => None,
            });
        }
        self.rs.reconstruct_data(&mut work)?;
        Ok(kept
            .into_iter()
            .zip(work)
            .map(|(kept, rebuilt)| match kept {
                Some(b) => b,
                None => Bytes::from(rebuilt.unwrap_or_default()),
            })
            .collect())
    }

    /// Recompute every missing shard (data or parity) in place, for repair.
    /// Present shards are left untouched.
    pub fn rebuild(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), ErasureError> {
        self.check_shards(shards)?;
        self.rs.reconstruct(shards)?;
        Ok(())
    }

    /// Validate slot count, present count and lengths; return the cell size.
    fn check_shards<T: AsRef<[u8]>>(&self, shards: &[Option<T>]) -> Result<usize, ErasureError> {
        let expected = self.k + self.m;
        if shards.len() != expected {
            return Err(ErasureError::WrongShardCount { have: shards.len(), expected });
        }
        let mut cell = None;
        let mut have = 0;
        for (index, shard) in shards.iter().enumerate() {
            let Some(shard) = shard else { continue };
            let len = shard.as_ref().len();
            let expected = *cell.get_or_insert(len);
            if len != expected || len == 0 {
                return Err(ErasureError::ShardSizeMismatch { index, len, expected });
            }
            have += 1;
        }
        match cell {
            Some(cell) if have >= self.k => Ok(cell),
            _ => Err(ErasureError::TooFewShards { have, need: self.k }),
        }
    }
}

/// The first `len` bytes of the concatenation of `cells`.
fn concat_prefix<'a, T: AsRef<[u8]> + 'a>(cells: impl Iterator<Item = &'a T>, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for cell in cells {
        let need = len - out.len();
        if need == 0 {
            break;
        }
        let cell = cell.as_ref();
        out.extend_from_slice(&cell[..need.min(cell.len())]);
    }
    out
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

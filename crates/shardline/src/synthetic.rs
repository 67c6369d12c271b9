//! Synthetic training shards: incompressible, reproducible content, cheap to
//! generate and to verify (a fixed random pool read at a per-file offset).

use std::sync::Arc;

use shardline_types::placement::mix64;

const POOL_LEN: usize = 64 << 20;

#[derive(Clone)]
pub struct Pattern {
    pool: Arc<Vec<u8>>,
}

impl Pattern {
    pub fn new(seed: u64) -> Self {
        let mut pool = Vec::with_capacity(POOL_LEN);
        let mut i = 0u64;
        while pool.len() < POOL_LEN {
            pool.extend_from_slice(&mix64(seed ^ i).to_le_bytes());
            i += 1;
        }
        Pattern { pool: Arc::new(pool) }
    }

    fn start(&self, file: u64, offset: u64) -> usize {
        ((offset + file.wrapping_mul(1_048_583)) % POOL_LEN as u64) as usize
    }

    /// Fill `buf` with file `file`'s bytes from `offset`.
    pub fn fill(&self, file: u64, offset: u64, buf: &mut [u8]) {
        let mut pos = self.start(file, offset);
        let mut done = 0;
        while done < buf.len() {
            let n = (POOL_LEN - pos).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.pool[pos..pos + n]);
            done += n;
            pos = 0;
        }
    }

    /// Whether `data` equals file `file`'s bytes from `offset`.
    pub fn matches(&self, file: u64, offset: u64, data: &[u8]) -> bool {
        let mut pos = self.start(file, offset);
        let mut done = 0;
        while done < data.len() {
            let n = (POOL_LEN - pos).min(data.len() - done);
            if data[done..done + n] != self.pool[pos..pos + n] {
                return false;
            }
            done += n;
            pos = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_match_agree_across_the_wrap() {
        let p = Pattern::new(1);
        let mut buf = vec![0u8; 3 << 20];
        let off = POOL_LEN as u64 - (1 << 20);
        p.fill(2, off, &mut buf);
        assert!(p.matches(2, off, &buf));
        buf[5] ^= 1;
        assert!(!p.matches(2, off, &buf));
        let mut other = vec![0u8; 4096];
        p.fill(3, off, &mut other);
        assert_ne!(&other[..], &buf[..4096], "files differ");
    }
}

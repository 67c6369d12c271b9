//! Erasure-coding layout: chunk size and Reed–Solomon k+m.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a file is cut into chunks and each chunk into shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Data shards per chunk (k).
    pub data_shards: u32,
    /// Parity shards per chunk (m).
    pub parity_shards: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("erasure code must look like K+M (for example 4+2), got {0:?}")]
    Syntax(String),
    #[error("invalid layout: {0}")]
    Invalid(String),
}

impl Default for Layout {
    fn default() -> Self {
        Layout { chunk_size: 4 << 20, data_shards: 4, parity_shards: 2 }
    }
}

impl Layout {
    pub const MIN_CHUNK: u32 = 4 << 10;
    pub const MAX_CHUNK: u32 = 64 << 20;

    /// Shards per chunk (k + m).
    pub fn width(&self) -> usize {
        (self.data_shards + self.parity_shards) as usize
    }

    pub fn validate(&self) -> Result<(), LayoutError> {
        if self.data_shards == 0 {
            return Err(LayoutError::Invalid("k must be at least 1".into()));
        }
        if self.width() > 32 {
            return Err(LayoutError::Invalid("k+m must be at most 32".into()));
        }
        if !(Self::MIN_CHUNK..=Self::MAX_CHUNK).contains(&self.chunk_size) {
            return Err(LayoutError::Invalid(format!(
                "chunk size must be between {} and {} bytes",
                Self::MIN_CHUNK,
                Self::MAX_CHUNK
            )));
        }
        Ok(())
    }

    /// Parse an erasure code "K+M" keeping this layout's chunk size.
    pub fn with_ec(self, ec: &str) -> Result<Layout, LayoutError> {
        let (k, m) = ec.split_once('+').ok_or_else(|| LayoutError::Syntax(ec.to_string()))?;
        let k: u32 = k.trim().parse().map_err(|_| LayoutError::Syntax(ec.to_string()))?;
        let m: u32 = m.trim().parse().map_err(|_| LayoutError::Syntax(ec.to_string()))?;
        let l = Layout { data_shards: k, parity_shards: m, ..self };
        l.validate()?;
        Ok(l)
    }

    /// "K+M".
    pub fn ec(&self) -> String {
        format!("{}+{}", self.data_shards, self.parity_shards)
    }
}

impl FromStr for Layout {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layout::default().with_ec(s)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RS {}+{}, {} KiB chunks", self.data_shards, self.parity_shards, self.chunk_size >> 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ec() {
        let l: Layout = "4+2".parse().unwrap();
        assert_eq!((l.data_shards, l.parity_shards, l.width()), (4, 2, 6));
        assert_eq!("8+3".parse::<Layout>().unwrap().ec(), "8+3");
        assert!("4-2".parse::<Layout>().is_err());
        assert!("0+2".parse::<Layout>().is_err());
        assert!("30+3".parse::<Layout>().is_err());
    }
}

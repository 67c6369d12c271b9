//! Identifiers.

use serde::{Deserialize, Serialize};

/// Inode number; also the file id that binds ciphertext to its file.
pub type Ino = u64;
/// The root directory's inode.
pub const ROOT_INO: Ino = 1;
/// A metadata or data server's id (unique within its kind).
pub type NodeId = u64;

/// One shard of one version of one chunk of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardKey {
    pub file_id: Ino,
    pub chunk_index: u64,
    pub version: u64,
    pub shard_index: u32,
}

impl ShardKey {
    /// A stable file name for the shard: hex fields, no user data.
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}-{:016x}-{:02x}", self.file_id, self.chunk_index, self.version, self.shard_index)
    }

    /// Parse [`ShardKey::file_name`]'s output.
    pub fn parse_file_name(name: &str) -> Option<ShardKey> {
        let mut it = name.split('-');
        let file_id = u64::from_str_radix(it.next()?, 16).ok()?;
        let chunk_index = u64::from_str_radix(it.next()?, 16).ok()?;
        let version = u64::from_str_radix(it.next()?, 16).ok()?;
        let shard_index = u32::from_str_radix(it.next()?, 16).ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(ShardKey { file_id, chunk_index, version, shard_index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_round_trips() {
        let k = ShardKey { file_id: 7, chunk_index: 1 << 40, version: u64::MAX, shard_index: 5 };
        assert_eq!(ShardKey::parse_file_name(&k.file_name()), Some(k));
        assert_eq!(ShardKey::parse_file_name("nonsense"), None);
        assert_eq!(ShardKey::parse_file_name(&(k.file_name() + "-1")), None);
    }
}

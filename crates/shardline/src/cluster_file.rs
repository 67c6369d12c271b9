//! `cluster.toml`: where a cluster's servers listen and which key file its
//! clients use. Written by `shardline up`, read by every client command.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shardline_types::Layout;

/// Current format version of cluster.toml.
pub const CLUSTER_FILE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    /// Format version of this file.
    pub version: u32,
    /// Erasure code of the root directory's layout, "K+M".
    pub ec: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Placement groups in the map.
    pub pg_count: u32,
    /// The key-encryption key file (mode 0600), absolute.
    pub key_file: PathBuf,
    /// Metadata servers.
    pub meta: Vec<Node>,
    /// Data servers.
    pub data: Vec<Node>,
}

/// One server of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Server id (1-based, unique per kind).
    pub id: u64,
    /// Address it listens on.
    pub addr: String,
    /// Its folder.
    pub dir: PathBuf,
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read cluster file {}", path.display()))?;
        let file: ClusterFile =
            toml::from_str(&text).with_context(|| format!("parse cluster file {}", path.display()))?;
        file.validate().with_context(|| format!("check cluster file {}", path.display()))?;
        Ok(file)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Written by `shardline up`. Clients use it via --cluster or SHARDLINE_CLUSTER.\n{}",
            toml::to_string_pretty(self)?
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("rename into {}", path.display()))?;
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if self.version != CLUSTER_FILE_VERSION {
            bail!("unsupported cluster file version {} (this build reads {})", self.version, CLUSTER_FILE_VERSION);
        }
        self.layout()?;
        if self.meta.is_empty() {
            bail!("no metadata servers listed");
        }
        Ok(())
    }

    pub fn layout(&self) -> Result<Layout> {
        let l = Layout { chunk_size: self.chunk_size, ..Layout::default() }.with_ec(&self.ec)?;
        Ok(l)
    }

    pub fn meta_addrs(&self) -> Vec<String> {
        self.meta.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn peers_arg(&self) -> String {
        self.meta.iter().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",")
    }
}

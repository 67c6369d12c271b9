//! After the heal: is every committed chunk fully redundant again? For each
//! file's chunks (their versions and groups from the metadata service) and
//! the placement map, every shard index of the chunk (k+m of them, m+1 for
//! a small file's copies) must be stored by the data server its group
//! names for it, as found behind the servers' backs in their
//! folders (`shardline_data::segment_store::inspect`). A healthy status
//! with shards missing means the next failures can lose data silently.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::MetaClient;
use shardline_types::ShardKey;

#[derive(Debug, Default)]
pub struct Redundancy {
    pub chunks: u64,
    pub shards_missing: u64,
    pub examples: Vec<String>,
}

/// Check the chunks of files `inos`; `data_dirs`: each data server's folder.
pub async fn check(
    meta_addrs: Vec<String>,
    tls: std::sync::Arc<shardline_rpc::Tls>,
    inos: &[u64],
    data_dirs: &BTreeMap<u64, PathBuf>,
) -> Result<Redundancy> {
    let meta = MetaClient::new(meta_addrs, Duration::from_secs(15), tls);
    let Some(RBody::Placement(map)) = meta.call(Body::GetPlacement(pb::GetPlacement {})).await?.body else {
        bail!("no placement map");
    };
    let mut stored: BTreeMap<u64, HashSet<ShardKey>> = BTreeMap::new();
    for (id, dir) in data_dirs {
        let shards = shardline_data::segment_store::inspect::stored_shards(dir)?;
        stored.insert(*id, shards.into_iter().map(|s| s.key).collect());
    }
    let mut out = Redundancy::default();
    for &ino in inos {
        let mut from = 0;
        loop {
            let body = Body::GetChunks(pb::GetChunks { ino, from_index: from, limit: 10_000 });
            let Some(RBody::Chunks(list)) = meta.call(body).await?.body else { bail!("no chunk list for {ino}") };
            let Some(layout) = list.attr.as_ref().and_then(|a| a.layout) else { bail!("no layout for {ino}") };
            for c in &list.chunks {
                out.chunks += 1;
                from = c.index + 1;
                let Some(group) = map.groups.iter().find(|g| g.id == c.pg) else { bail!("no group {}", c.pg) };
                // A small file's copies (`data_shards` 1) take the first m+1 slots.
                let k = if c.data_shards == 0 { layout.data_shards } else { c.data_shards };
                let width = (k + layout.parity_shards) as usize;
                for (i, target) in group.targets.iter().enumerate().take(width) {
                    let key =
                        ShardKey { file_id: ino, chunk_index: c.index, version: c.version, shard_index: i as u32 };
                    if !stored.get(target).is_some_and(|s| s.contains(&key)) {
                        out.shards_missing += 1;
                        if out.examples.len() < 5 {
                            out.examples.push(format!("file {ino} chunk {} shard {i} not on data-{target}", c.index));
                        }
                    }
                }
            }
            if !list.more {
                break;
            }
        }
    }
    Ok(out)
}

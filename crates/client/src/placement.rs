//! The client's cached copy of the placement map.

use std::collections::HashMap;

use shardline_proto::v1 as pb;
use shardline_types::pg_of;

use crate::ClientError;

/// An immutable snapshot of the map; replaced wholesale on refresh.
#[derive(Debug, Clone, Default)]
pub struct PlacementView {
    pub epoch: u64,
    groups: Vec<Vec<u64>>,
    addrs: HashMap<u64, String>,
}

impl PlacementView {
    pub fn from_wire(map: &pb::PlacementMap) -> Self {
        let mut groups = vec![Vec::new(); map.groups.len()];
        for g in &map.groups {
            if let Some(slot) = groups.get_mut(g.id as usize) {
                *slot = g.targets.clone();
            }
        }
        PlacementView { epoch: map.epoch, groups, addrs: map.servers.iter().map(|s| (s.id, s.addr.clone())).collect() }
    }

    /// Targets per group (k+m of the cluster's layout).
    pub fn groups_width_hint(&self) -> usize {
        self.groups.first().map(|g| g.len()).unwrap_or(0)
    }

    pub fn pg_count(&self) -> u32 {
        self.groups.len() as u32
    }

    /// The PG a new chunk goes to.
    pub fn pg_for(&self, file_id: u64, chunk_index: u64) -> Result<u32, ClientError> {
        if self.groups.is_empty() {
            return Err(ClientError::NoPlacement("fewer data servers registered than k+m".into()));
        }
        Ok(pg_of(file_id, chunk_index, self.pg_count()))
    }

    /// The addresses of a PG's targets, in shard order; `width` of them.
    pub fn targets(&self, pg: u32, width: usize) -> Result<Vec<String>, ClientError> {
        let group =
            self.groups.get(pg as usize).ok_or_else(|| ClientError::NoPlacement(format!("no placement group {pg}")))?;
        if group.len() < width {
            return Err(ClientError::NoPlacement(format!(
                "placement group {pg} has {} targets, need {width}",
                group.len()
            )));
        }
        group[..width]
            .iter()
            .map(|id| {
                self.addrs
                    .get(id)
                    .cloned()
                    .ok_or_else(|| ClientError::NoPlacement(format!("data server {id} has no address")))
            })
            .collect()
    }
}

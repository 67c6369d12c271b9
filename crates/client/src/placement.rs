//! The client's cached copy of the placement map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_proto::v1 as pb;
use shardline_types::pg_of;

use crate::client::Inner;
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

/// How often a write waiting for the first placement map asks again.
const NO_MAP_POLL: Duration = Duration::from_millis(200);

/// The map, the group of chunk `index` of `file_id` and its `width` targets,
/// for a write. Until `deadline`, a cluster with no map yet (fewer data
/// servers registered than k+m, as just after start-up) is waited for:
/// the map is read again until it exists.
pub(crate) async fn targets_for_write(
    inner: &Inner,
    file_id: u64,
    index: u64,
    width: usize,
    deadline: Instant,
) -> Result<(Arc<PlacementView>, u32, Vec<String>), ClientError> {
    let mut view = inner.placement();
    let mut asked = false;
    loop {
        if view.pg_count() > 0 {
            let pg = view.pg_for(file_id, index)?;
            let targets = view.targets(pg, width)?;
            return Ok((view, pg, targets));
        }
        if Instant::now() >= deadline {
            return Err(ClientError::NoPlacement(
                "fewer data servers registered than k+m, still at the end of the write window".into(),
            ));
        }
        if asked {
            tokio::time::sleep(NO_MAP_POLL).await;
        } else {
            tracing::info!(file_id, chunk = index, "no placement map yet: waiting for data servers to register");
        }
        asked = true;
        view = inner.refresh_placement().await?;
    }
}
